//! A participant without a camera, or with the camera switched off, is a tile with their name
//! on a plain background (never a black hole); switching the camera on brings the picture back.

mod support;

use std::time::Duration;

use serde_json::json;
use support::analysis::{coverage, ABSENT, PRESENT, TOLERANCE};
use support::client::{self, Publisher, Rgb, Source, Viewer, RED};
use support::server::Server;
use support::wait_for;
use support::ws::Control;

/// The backdrop colour of a tile without a picture (src/media/tile.rs).
const BACKDROP: Rgb = Rgb(0x37, 0x47, 0x4f);

fn shares(viewer: &Viewer) -> Result<(f64, f64), String> {
    let f = viewer.frame().ok_or("no frame")?;
    Ok((coverage(&f, BACKDROP, 20), coverage(&f, RED, TOLERANCE)))
}

#[test]
fn no_camera_and_camera_off_show_a_name_tile() {
    client::init();
    let server = Server::start_open();
    let room = "cameras";
    let viewer = Viewer::start(server.addr, room, None);

    // Ada has no camera at all: audio only.
    let (_ada, _, ada_token) = Control::join(server.addr, room, "Ada");
    let _ada_mic = Publisher::start_as(server.addr, room, Source { video: false, ..Source::new(RED, 440) }, Some(&ada_token));
    wait_for(Duration::from_secs(10), "Ada's name tile", || {
        let (backdrop, red) = shares(&viewer)?;
        if backdrop >= PRESENT && red <= ABSENT { Ok((backdrop, red)) } else { Err(format!("backdrop {backdrop:.3} red {red:.3}")) }
    });

    // Bo has a (red) camera, then switches it off, then on again.
    let (mut bo, _, bo_token) = Control::join(server.addr, room, "Bo");
    let _bo_cam = Publisher::start_as(server.addr, room, Source::new(RED, 660), Some(&bo_token));
    let one_tile = wait_for(Duration::from_secs(10), "Bo's camera beside Ada's name tile", || {
        let (backdrop, red) = shares(&viewer)?;
        if red >= PRESENT && backdrop >= PRESENT { Ok(backdrop) } else { Err(format!("backdrop {backdrop:.3} red {red:.3}")) }
    });
    bo.send_json(&json!({"type": "set_media", "audio_muted": false, "video_muted": true}));
    wait_for(Duration::from_secs(5), "Bo's camera off: a second name tile, no picture", || {
        let (backdrop, red) = shares(&viewer)?;
        if red <= ABSENT && backdrop > one_tile * 1.5 { Ok(()) } else { Err(format!("backdrop {backdrop:.3} red {red:.3}")) }
    });
    bo.send_json(&json!({"type": "set_media", "audio_muted": false, "video_muted": false}));
    wait_for(Duration::from_secs(5), "Bo's picture back", || {
        let (_, red) = shares(&viewer)?;
        if red >= PRESENT { Ok(()) } else { Err(format!("red {red:.3}")) }
    });
}
