//! A publisher without a place in the layout is not decoded (its packets are dropped before
//! the decoder); when it gets a place again, a keyframe is requested and its picture is back.

mod support;

use std::time::Duration;

use serde_json::json;
use support::analysis::{coverage, ABSENT, PRESENT, TOLERANCE};
use support::client::{self, Publisher, Source, Viewer, BLUE, RED};
use support::server::Server;
use support::wait_for;
use support::ws::Control;

#[test]
fn a_tile_without_a_place_comes_back_with_a_keyframe() {
    client::init();
    let server = Server::start_open();
    let room = "crowd";
    let (mut moderator, _, _) = Control::join(server.addr, room, "Mod");
    moderator.send_json(&json!({"type": "set_layout", "layout": "speaker"}));
    let small = |colour, tone| Source { width: 160, height: 120, fps: 10, audio: false, ..Source::new(colour, tone) };
    // Nine red publishers fill the stage and the strip of eight; the tenth (blue) has no place.
    let mut publishers: Vec<Publisher> = (0..9).map(|i| Publisher::start_source(server.addr, room, small(RED, 300 + i))).collect();
    let viewer = Viewer::start(server.addr, room, None);
    wait_for(Duration::from_secs(15), "the speaker layout with nine red tiles", || {
        let f = viewer.frame().ok_or("no frame")?;
        let red = coverage(&f, RED, TOLERANCE);
        if red > 0.3 { Ok(()) } else { Err(format!("red {red:.3}")) }
    });
    publishers.push(Publisher::start_source(server.addr, room, small(BLUE, 900)));
    // Give the blue one time to arrive; it must stay out of the picture.
    std::thread::sleep(Duration::from_secs(2));
    let blue = coverage(&viewer.frame().expect("a frame"), BLUE, TOLERANCE);
    assert!(blue <= ABSENT, "the tenth publisher has no place in the speaker layout: blue {blue:.3}");

    moderator.send_json(&json!({"type": "set_layout", "layout": "grid"}));
    wait_for(Duration::from_secs(10), "the blue tile back in the grid", || {
        let blue = coverage(&viewer.frame().ok_or("no frame")?, BLUE, TOLERANCE);
        if blue >= PRESENT / 2.0 { Ok(()) } else { Err(format!("blue {blue:.3}")) }
    });
}
