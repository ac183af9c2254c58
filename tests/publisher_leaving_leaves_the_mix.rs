//! A publisher that leaves by DELETE disappears from picture and sound at once (even if its
//! peer keeps sending); one that just
//! vanishes disappears within the 5 s liveness window. Neither stalls the others.

mod support;

use std::time::{Duration, Instant};

use support::analysis::{self, coverage, tone_level, ABSENT, PRESENT, TOLERANCE, TONE_ABSENT, TONE_PRESENT, WINDOW};
use support::client::{self, Publisher, Rgb, Viewer, BLUE, GREEN, RED};
use support::server::Server;
use support::wait_for;

const TONES: [u32; 3] = [500, 700, 900];
const COLOURS: [Rgb; 3] = [RED, GREEN, BLUE];

/// Waits until exactly the publishers in `present` are seen and heard, and the others are not.
fn wait_for_mix(viewer: &Viewer, present: [bool; 3], timeout: Duration, what: &str) {
    wait_for(timeout, what, || {
        let frame = viewer.frame();
        let audio = viewer.audio(WINDOW / 2);
        let ok = match (&frame, &audio) {
            (Some(f), Some(a)) => (0..3).all(|i| {
                let c = coverage(f, COLOURS[i], TOLERANCE);
                let t = tone_level(a, f64::from(TONES[i]));
                if present[i] { c >= PRESENT && t >= TONE_PRESENT } else { c <= ABSENT && t <= TONE_ABSENT }
            }),
            _ => false,
        };
        if ok { Ok(()) } else { Err(analysis::describe(frame.as_deref(), audio.as_deref(), &COLOURS, &TONES)) }
    });
}

#[test]
fn deleted_and_vanished_publishers_leave_picture_and_sound() {
    client::init();
    let server = Server::start_open();
    let room = "leaving";
    let mut publishers: Vec<Option<Publisher>> = COLOURS
        .iter()
        .zip(TONES)
        .map(|(c, t)| Some(Publisher::start(server.addr, room, *c, t)))
        .collect();
    let viewer = Viewer::start(server.addr, room, None);
    wait_for_mix(&viewer, [true, true, true], Duration::from_secs(15), "all three publishers");

    // DELETE: gone at once (allowing for the viewer's own pipeline and the analysis window),
    // even though this peer goes on sending.
    let left_at = Instant::now();
    assert_eq!(publishers[0].as_ref().unwrap().delete_but_keep_sending(), 200);
    wait_for_mix(&viewer, [false, true, true], Duration::from_secs(2), "red and 500 Hz to go after DELETE");
    eprintln!("DELETE to gone at the viewer: {} ms", left_at.elapsed().as_millis());
    let (frames, gap) = viewer.frames_since(left_at);
    assert!(frames > 0 && gap < Duration::from_millis(500), "picture froze after DELETE: {frames} frames, gap {gap:?}");

    drop(publishers[0].take());

    // Vanish: no DELETE, the peer just stops; the server notices within 5 s.
    let vanished_at = Instant::now();
    publishers[1].take().unwrap().vanish();
    wait_for_mix(&viewer, [false, false, true], Duration::from_secs(8), "green and 700 Hz to go after vanishing");
    let took = vanished_at.elapsed();
    eprintln!("vanish to gone at the viewer: {} ms", took.as_millis());
    assert!(took <= Duration::from_secs(5), "vanished publisher stayed {took:?}");
    let (frames, gap) = viewer.frames_since(vanished_at);
    assert!(frames > 0 && gap < Duration::from_millis(500), "picture froze after vanish: {frames} frames, gap {gap:?}");

    // The session of the vanished publisher is gone for the server too.
    let last = publishers[2].as_ref().unwrap();
    assert_eq!(last.location.split('/').count(), 4);
    wait_for(Duration::from_secs(2), "blue to stay", || {
        let f = viewer.frame().ok_or("no frame")?;
        if coverage(&f, BLUE, TOLERANCE) >= PRESENT { Ok(()) } else { Err("blue missing") }
    });
}
