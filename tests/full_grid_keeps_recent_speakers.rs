//! With more cameras than the grid holds (`--max-tiles`), the picture keeps those who spoke most
//! recently; the others stay in the mix. A participant who starts to talk comes into the
//! picture and pushes out the one who has been silent longest.

mod support;

use std::time::Duration;

use support::analysis::{self, coverage, tone_level, ABSENT, PRESENT, TOLERANCE, TONE_PRESENT, WINDOW};
use support::client::{self, Publisher, Source, Viewer, BLUE, GREEN, RED};
use support::server::Server;
use support::wait_for;
use support::ws::Control;

/// Waits until exactly the colours in `seen` are in the picture (the others absent) and every
/// tone in `heard` is in the sound.
fn picture(viewer: &Viewer, seen: [bool; 3], heard: &[u32], what: &str) {
    let colours = [RED, GREEN, BLUE];
    wait_for(Duration::from_secs(15), what, || {
        let frame = viewer.frame();
        let audio = viewer.audio(WINDOW / 2);
        let ok = match (&frame, &audio) {
            (Some(f), Some(a)) => {
                colours.iter().zip(seen).all(|(c, on)| {
                    let share = coverage(f, *c, TOLERANCE);
                    if on { share >= PRESENT } else { share <= ABSENT }
                }) && heard.iter().all(|t| tone_level(a, f64::from(*t)) >= TONE_PRESENT)
            }
            _ => false,
        };
        if ok { Ok(()) } else { Err(analysis::describe(frame.as_deref(), audio.as_deref(), &colours, heard)) }
    });
}

#[test]
fn a_full_grid_keeps_who_spoke_last() {
    client::init();
    let server = Server::start_with(&["--max-tiles", "2", "--open-media"]);
    let room = "assembly";
    let silent = |colour| Source { audio: false, ..Source::new(colour, 0) };
    let (_ada, _, ada_token) = Control::join(server.addr, room, "Ada");
    let (_bo, _, bo_token) = Control::join(server.addr, room, "Bo");
    let (_cy, _, cy_token) = Control::join(server.addr, room, "Cy");
    // Among those who never spoke, who came into the picture first stays longest: Ada's camera
    // is in the picture before Bo's starts (started together, either could be first: CI once
    // saw Bo's first frame before Ada's).
    let _ada_cam = Publisher::start_as(server.addr, room, silent(RED), Some(&ada_token));
    let viewer = Viewer::start(server.addr, room, None);
    picture(&viewer, [true, false, false], &[], "Ada in the picture");
    let bo_cam = Publisher::start_as(server.addr, room, silent(GREEN), Some(&bo_token));
    picture(&viewer, [true, true, false], &[], "Ada and Bo, the grid of two full");

    // Cy talks: in the picture at once; Bo, who joined after Ada and never spoke, makes room.
    let _cy_cam = Publisher::start_as(server.addr, room, Source::new(BLUE, 660), Some(&cy_token));
    picture(&viewer, [true, false, true], &[660], "Cy (talking) and Ada; Bo out of the picture");

    // Bo comes back with a microphone and talks too: now Ada, silent all along, leaves.
    assert_eq!(bo_cam.leave(), 200);
    let _bo_cam = Publisher::start_as(server.addr, room, Source::new(GREEN, 440), Some(&bo_token));
    picture(&viewer, [false, true, true], &[440, 660], "Bo and Cy talking; Ada out of the picture");
}
