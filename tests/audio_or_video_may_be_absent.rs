//! A publisher may send only audio or only video, and a viewer may ask for only one of them.

mod support;

use std::time::Duration;

use support::analysis::{self, coverage, tone_level, ABSENT, PRESENT, TOLERANCE, TONE_ABSENT, TONE_PRESENT, WINDOW};
use support::client::{self, Publisher, Source, Viewer, BLUE, RED};
use support::server::Server;
use support::wait_for;

#[test]
fn audio_only_and_video_only_publishers_mix_as_expected() {
    client::init();
    let server = Server::start_open();
    let room = "partial";
    // Red sends only video (its tone must not be heard), blue only audio (no blue tile).
    let _red = Publisher::start_source(server.addr, room, Source { audio: false, ..Source::new(RED, 520) });
    let _blue = Publisher::start_source(server.addr, room, Source { video: false, ..Source::new(BLUE, 880) });
    let viewer = Viewer::start(server.addr, room, None);
    wait_for(Duration::from_secs(15), "red seen but not heard, blue heard but not seen", || {
        let frame = viewer.frame();
        let audio = viewer.audio(WINDOW);
        let ok = match (&frame, &audio) {
            (Some(f), Some(a)) => {
                coverage(f, RED, TOLERANCE) >= PRESENT
                    && coverage(f, BLUE, TOLERANCE) <= ABSENT
                    && tone_level(a, 880.0) >= TONE_PRESENT
                    && tone_level(a, 520.0) <= TONE_ABSENT
            }
            _ => false,
        };
        if ok { Ok(()) } else { Err(analysis::describe(frame.as_deref(), audio.as_deref(), &[RED, BLUE], &[520, 880])) }
    });
    // A single camera fills the canvas (16:9 canvas, 4:3 source: cropped to the canvas's shape
    // around its centre, no bars; the crop's geometry is unit-tested in room::framing).
    wait_for(Duration::from_secs(5), "a 4:3 camera filling the 16:9 canvas", || {
        let red = coverage(&viewer.frame().ok_or("no frame")?, RED, TOLERANCE);
        if red >= 0.9 { Ok(()) } else { Err(format!("red covers {red:.3}")) }
    });
}
