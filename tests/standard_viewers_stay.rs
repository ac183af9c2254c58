//! A WHEP viewer with GStreamer's default RTCP timing (RFC 3550: a report every 2.5-7.5 s, as
//! webrtcbin and `whepsrc` send by default) stays as long as it likes, while a viewer that
//! vanishes is still ended within five of its report intervals (5 s for one that reports
//! every second, as browsers do).

mod support;

use std::time::{Duration, Instant};

use support::analysis::{coverage, tone_level, PRESENT, TOLERANCE, TONE_PRESENT, WINDOW};
use support::client::{self, Publisher, Viewer, GREEN};
use support::server::Server;
use support::wait_for;

const WATCH: Duration = Duration::from_secs(30);

#[test]
fn a_standard_viewer_stays_and_a_vanished_one_is_ended() {
    client::init();
    let server = Server::start_open();
    let room = "standard";
    let _camera = Publisher::start(server.addr, room, GREEN, 660);
    let standard = Viewer::start_standard(server.addr, room, None);
    let browser_like = Viewer::start(server.addr, room, None);
    wait_for(Duration::from_secs(10), "the standard viewer's first picture and sound", || {
        let (f, a) = (standard.frame().ok_or("no frame")?, standard.audio(WINDOW / 2).ok_or("no audio")?);
        if coverage(&f, GREEN, TOLERANCE) >= PRESENT && tone_level(&a, 660.0) >= TONE_PRESENT { Ok(()) } else { Err("not yet") }
    });
    let since = Instant::now();
    while since.elapsed() < WATCH {
        std::thread::sleep(Duration::from_secs(1));
        assert!(standard.session_exists(), "the standard viewer was ended after {:?}", since.elapsed());
    }
    let (frames, gap) = standard.frames_since(since);
    eprintln!("standard viewer: {frames} frames in {WATCH:?}, longest gap {gap:?}");
    assert!(frames as f64 >= 0.8 * 15.0 * WATCH.as_secs_f64(), "{frames} frames in {WATCH:?}");
    assert!(gap < Duration::from_secs(1), "the picture stood still for {gap:?}");

    // The browser-like viewer vanishes: gone within five of its intervals (1 s, randomised to
    // 0.5-1.5 s as RFC 3550 says: at most 7.5 s), and the server's 250 ms tick.
    let vanished = Instant::now();
    browser_like.vanish();
    let gone = wait_for(Duration::from_secs(10), "the vanished viewer to be ended", || {
        if browser_like.session_exists() { Err("still there") } else { Ok(vanished.elapsed()) }
    });
    eprintln!("vanished viewer ended after {} ms", gone.as_millis());
    assert!(gone >= Duration::from_secs(4), "ended too soon ({gone:?}): silence was not what ended it");
    assert!(standard.session_exists(), "the standard viewer is still there");
    assert_eq!(standard.leave(), 200, "and its DELETE finds it");
}
