//! H.264 works both ways: a publisher may send H.264, and a viewer whose offer has only H.264
//! gets the composite encoded with the H.264 profile (alongside VP8 viewers, each encoded once).

mod support;

use std::time::Duration;

use support::analysis::{self, coverage, tone_level, PRESENT, TOLERANCE, TONE_PRESENT, WINDOW};
use support::client::{self, Codec, Publisher, Viewer, GREEN, RED};
use support::server::Server;
use support::wait_for;

#[test]
fn h264_publishers_and_viewers_take_part() {
    client::init();
    let server = Server::start_open();
    let room = "h264";
    let _vp8 = Publisher::start_with(server.addr, room, RED, 450, Codec::Vp8);
    let _h264 = Publisher::start_with(server.addr, room, GREEN, 750, Codec::H264);
    let h264_viewer = Viewer::start_with(server.addr, room, None, Codec::H264);
    let vp8_viewer = Viewer::start_with(server.addr, room, None, Codec::Vp8);
    for (name, viewer) in [("H.264 viewer", &h264_viewer), ("VP8 viewer", &vp8_viewer)] {
        wait_for(Duration::from_secs(15), &format!("both publishers at the {name}"), || {
            let frame = viewer.frame();
            let audio = viewer.audio(WINDOW);
            let ok = match (&frame, &audio) {
                (Some(f), Some(a)) => {
                    [RED, GREEN].iter().all(|c| coverage(f, *c, TOLERANCE) >= PRESENT)
                        && [450, 750].iter().all(|t| tone_level(a, f64::from(*t)) >= TONE_PRESENT)
                }
                _ => false,
            };
            if ok { Ok(()) } else { Err(analysis::describe(frame.as_deref(), audio.as_deref(), &[RED, GREEN], &[450, 750])) }
        });
    }
}
