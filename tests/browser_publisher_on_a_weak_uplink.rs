//! A browser publisher behind a slow uplink: the answer to its WHIP offer keeps the
//! transport-wide sequence number, so the server's RTP session sends it congestion feedback
//! and chromium's own congestion control lowers its bitrate to fit the link instead of losing
//! packets; the web client (`web/uplink.js`) has it send a smaller picture while its estimate
//! is low. Its tile keeps moving in another participant's view meanwhile, the server's decoder
//! follows its changes of resolution, and the full picture comes back once the link is free.
//!
//! The cap is real: the server's media ports are 20480-20607 and `tc` slows everything sent
//! *to* them (see `support::shaper`), which here is the browser's media (the viewer only sends
//! reports). Chromium shows a red picture under snow (camera-like: it costs bits).

mod support;

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::time::{Duration, Instant};

use support::analysis::{coverage, PRESENT, TOLERANCE};
use support::browser::{number, Script};
use support::client::{self, Rgb, Viewer};
use support::fixtures::{self, Fake};
use support::server::{Server, OPEN_TEST_ARGS};
use support::shaper::{Shaper, PORTS};
use support::wait_for;

const ROOM: &str = "uplink";
const RED: Rgb = client::RED;
const CAP_KBIT: u32 = 500;
const CAPPED_FOR: Duration = Duration::from_secs(30);

/// The browser's view of its sending, once a second.
#[derive(Debug, Default, Clone, Copy)]
struct Sending {
    at: Option<Instant>,
    estimate: f64,
    bytes_sent: f64,
    height: f64,
    fraction_lost: f64,
}

fn sending(script: &Script) -> Vec<Sending> {
    script
        .stats()
        .into_iter()
        .map(|(at, v)| Sending {
            at: Some(at),
            estimate: number(&v, "estimate"),
            bytes_sent: number(&v, "bytesSent"),
            height: number(&v, "frameHeight"),
            fraction_lost: number(&v, "fractionLost"),
        })
        .collect()
}

/// Distinct pictures the viewer decoded per second, and the longest time the picture stood
/// still, sampling its latest frame every 20 ms between `from` and `to`.
fn motion(v: &Viewer, for_how_long: Duration) -> (f64, Duration) {
    let start = Instant::now();
    let (mut last_hash, mut last_change, mut changes, mut longest) = (0u64, start, 0u32, Duration::ZERO);
    while start.elapsed() < for_how_long {
        if let Some(f) = v.frame() {
            let mut h = DefaultHasher::new();
            f.hash(&mut h);
            let hash = h.finish();
            if hash != last_hash {
                longest = longest.max(last_change.elapsed());
                last_change = Instant::now();
                last_hash = hash;
                changes += 1;
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    longest = longest.max(last_change.elapsed());
    (f64::from(changes) / for_how_long.as_secs_f64(), longest)
}

#[test]
fn a_browser_behind_a_slow_uplink_lowers_its_sending_and_stays_in_the_picture() {
    client::init();
    let dir = std::env::temp_dir().join(format!("plenum-uplink-{}", std::process::id()));
    fixtures::make(&dir, &[Fake { argb: 0xffe6_1e1e, tone_hz: 500, width: 640, height: 360, snow: true }]);
    let ports = format!("{}-{}", PORTS.0, PORTS.1);
    let server = Server::start_with(&[OPEN_TEST_ARGS, &["--rtp-ports", &ports]].concat());
    let shaper = Shaper::install();

    let seconds = (CAPPED_FOR + Duration::from_secs(80)).as_secs().to_string();
    let base = format!("http://{}", server.addr);
    let script = Script::start("weak_uplink.mjs", &[&base, dir.to_str().unwrap(), ROOM, &seconds]);
    script.wait_ready(Duration::from_secs(30));

    let viewer = Viewer::start(server.addr, ROOM, None);
    wait_for(Duration::from_secs(15), "the browser's camera in the viewer's picture", || {
        let f = viewer.frame().ok_or("no frame")?;
        let c = coverage(&f, RED, TOLERANCE + 20);
        if c >= PRESENT { Ok(()) } else { Err(format!("red coverage {c}")) }
    });
    let (free_rate, free_still) = motion(&viewer, Duration::from_secs(5));

    shaper.limit(CAP_KBIT);
    let capped = Instant::now();
    // Chromium needs a few seconds to find the link's rate; then it has to fit.
    let (early_rate, early_still) = motion(&viewer, Duration::from_secs(10));
    let (late_rate, late_still) = motion(&viewer, CAPPED_FOR - Duration::from_secs(10));
    shaper.lift();
    let lifted = Instant::now();
    let log = sending(&script);
    let back = wait_for(Duration::from_secs(40), "the browser sending its full picture again", || {
        let heights: Vec<f64> = sending(&script).iter().rev().take(3).map(|s| s.height).collect();
        if heights.len() == 3 && heights.iter().all(|h| *h >= 360.0) { Ok(lifted.elapsed()) } else { Err(format!("last heights {heights:?}")) }
    });
    eprintln!("the link free again: the full picture sent again after {back:?}");
    drop(script);
    let _ = std::fs::remove_dir_all(&dir);

    let before: Vec<&Sending> = log.iter().filter(|s| s.at.is_some_and(|t| t < capped)).collect();
    let late: Vec<&Sending> = log.iter().filter(|s| s.at.is_some_and(|t| t >= capped + Duration::from_secs(10) && t < capped + CAPPED_FOR)).collect();
    let rate = |w: &[&Sending]| match (w.first(), w.last()) {
        (Some(a), Some(b)) if b.at > a.at => (b.bytes_sent - a.bytes_sent) * 8.0 / (b.at.unwrap() - a.at.unwrap()).as_secs_f64() / 1000.0,
        _ => f64::NAN,
    };
    let mean = |w: &[&Sending], f: fn(&Sending) -> f64| w.iter().map(|s| f(s)).filter(|x| x.is_finite()).sum::<f64>() / w.len().max(1) as f64;
    let heights = |w: &[&Sending]| w.iter().map(|s| s.height).filter(|h| h.is_finite()).map(|h| h as u32).collect::<Vec<_>>();
    eprintln!(
        "free: {:.0} kbit/s sent, estimate {:.0} kbit/s, heights {:?}; the viewer's picture changed {free_rate:.1}/s, stood still at most {free_still:?}",
        rate(&before[before.len().saturating_sub(5)..]),
        mean(&before, |s| s.estimate) / 1000.0,
        heights(&before)
    );
    eprintln!(
        "capped at {CAP_KBIT} kbit/s: first 10 s {early_rate:.1} changes/s, still at most {early_still:?}; then {late_rate:.1}/s, still at most {late_still:?}; \
         sent {:.0} kbit/s, estimate {:.0} kbit/s, server-reported loss {:.3}, heights {:?}",
        rate(&late),
        mean(&late, |s| s.estimate) / 1000.0,
        mean(&late, |s| s.fraction_lost),
        heights(&late)
    );
    assert!(late.len() >= 10, "the browser reported its sending: {log:?}");
    assert!(mean(&late, |s| s.estimate) <= 1000.0 * f64::from(CAP_KBIT) * 1.2, "chromium's estimate follows the cap: {late:?}");
    assert!(rate(&late) <= f64::from(CAP_KBIT), "it sends what fits: {:.0} kbit/s", rate(&late));
    assert!(mean(&late, |s| s.fraction_lost) < 0.05, "instead of losing packets: {late:?}");
    assert!(heights(&late).iter().all(|h| *h <= 180), "a smaller picture: {:?}", heights(&late));
    assert!(late_rate >= 5.0 && late_still < Duration::from_secs(1), "its tile keeps moving: {late_rate:.1}/s, still {late_still:?}");
    assert!(early_still < Duration::from_secs(3), "even while it adapts: still {early_still:?}");
}
