//! One feed that fits each receiver's link: a receiver whose downlink is capped moves down the
//! ladder (or to sound only) by itself, keeps a moving picture and its sound, and climbs back
//! when the cap is lifted; another receiver of the same room keeps the top rung throughout.
//! The cap is real: `tc` on loopback shapes the UDP ports of one receiver (see
//! `support::shaper`), with camera-like publishers so the encoders fill their bitrates.

mod support;

use std::time::{Duration, Instant};

use support::analysis::{coverage, PRESENT, TOLERANCE};
use support::link_watch::{self, height, mark, reaches, window};
use support::client::{self, Publisher, Rgb, Source, Viewer, BLUE, GREEN, RED};
use support::server::Server;
use support::shaper::{Shaper, PORTS};
use support::wait_for;

/// The test canvas is 640x360@15: the top rung is the canvas at 500 kbit/s, then 180p@15 at
/// 100 kbit/s, then sound only.
const TOP: i32 = 360;
const LOW: i32 = 180;
const FPS: f64 = 15.0;
const COLOURS: [Rgb; 3] = [RED, GREEN, BLUE];

/// Waits until `v` shows moving pictures `TOP` tall again (after `since`); how long it took.
fn back_on_top(v: &Viewer, since: Instant, within: Duration, what: &str) -> Duration {
    link_watch::back_to(v, TOP, since, within, what)
}

fn sees_everyone(v: &Viewer) -> Result<(), String> {
    let f = v.frame().ok_or("no frame")?;
    let seen: Vec<f64> = COLOURS.iter().map(|c| coverage(&f, *c, TOLERANCE)).collect();
    if seen.iter().all(|s| *s >= PRESENT) { Ok(()) } else { Err(format!("colour coverage {seen:?}")) }
}

/// A room of three camera-like publishers, a receiver on an unshaped link, and one on the
/// shaped ports (`reports_only`: a player without transport-wide feedback), both on the top rung.
struct Annex {
    _server: Server,
    _cameras: Vec<Publisher>,
    shaper: Shaper,
    free: Viewer,
    weak: Viewer,
}

fn annex(reports_only: bool) -> Annex {
    client::init();
    let server = Server::start_open();
    let room = "annex";
    let cameras: Vec<Publisher> =
        COLOURS.iter().zip([440, 660, 880]).map(|(c, t)| Publisher::start_source(server.addr, room, Source::camera(*c, t))).collect();
    let shaper = Shaper::install();
    let free = Viewer::start(server.addr, room, None);
    let weak = if reports_only { Viewer::start_on_ports_reports_only(server.addr, room, PORTS) } else { Viewer::start_on_ports(server.addr, room, PORTS) };
    for v in [&free, &weak] {
        wait_for(Duration::from_secs(15), "everyone in the picture at the top rung", || {
            sees_everyone(v)?;
            if height(v) == Some(TOP) { Ok(()) } else { Err(format!("height {:?}", height(v))) }
        });
    }
    std::thread::sleep(Duration::from_secs(2));
    Annex { _server: server, _cameras: cameras, shaper, free, weak }
}

/// Caps a receiver that sends transport-wide feedback (as browsers do) at 500 kbit/s, lifts
/// the cap, caps it at 100 kbit/s, lifts it again.
#[test]
fn a_capped_receiver_gets_a_picture_that_fits_and_its_sound() {
    let Annex { shaper, free, weak, _server, _cameras } = annex(false);

    // 500 kbit/s: less than the top rung and its sound.
    let capped = mark(&weak);
    let free_from = mark(&free);
    shaper.limit(500);
    let adapted = reaches(&weak, LOW, Duration::from_secs(10), "the capped receiver on the 180p rung");
    std::thread::sleep(Duration::from_secs(5).saturating_sub(capped.at.elapsed()));
    let first = window(&weak, &capped);
    let after5 = mark(&weak);
    std::thread::sleep(Duration::from_secs(15));
    let settled = window(&weak, &after5);
    sees_everyone(&weak).expect("every publisher in the capped receiver's picture");
    let free_during = window(&free, &free_from);
    eprintln!("500 kbit/s: 180p after {adapted:?}; first 5 s {first:?}; the 15 s after {settled:?}; uncapped receiver {free_during:?}");
    // A link a tenth slower than the rung shows in the sum of 1.5 s of feedback (see
    // src/media/backlog.rs): 1.0-2.4 s measured; up to 6.5 s before, when no single read did.
    assert!(adapted <= Duration::from_secs(5), "adapting took {adapted:?}");
    assert!(settled.fps >= 0.9 * FPS, "capped receiver's picture: {settled:?}");
    // Probes up that the link cannot carry are undone before the picture stalls (0.1 s measured).
    assert!(settled.longest_freeze < Duration::from_secs(1), "capped receiver froze: {settled:?}");
    assert!(settled.audio >= 0.97 && settled.longest_silence < Duration::from_millis(500), "capped receiver's sound: {settled:?}");
    assert!(free_during.fps >= 0.95 * FPS && height(&free) == Some(TOP), "the uncapped receiver: {free_during:?}, height {:?}", height(&free));

    // Lifted: back to the top within 10 s.
    let lifted = Instant::now();
    shaper.lift();
    let recovered = back_on_top(&weak, lifted, Duration::from_secs(10), "the receiver back on the top rung");
    eprintln!("cap lifted: top rung again after {recovered:?}");

    // 100 kbit/s: not even the lowest picture fits; the sound must.
    let capped = Instant::now();
    let free_from = mark(&free);
    shaper.limit(100);
    std::thread::sleep(Duration::from_secs(5));
    let settled = mark(&weak);
    std::thread::sleep(Duration::from_secs(20));
    let sound = window(&weak, &settled);
    let free_during = window(&free, &free_from);
    eprintln!("100 kbit/s (capped {:?} ago): the 20 s after the first 5 {sound:?}; uncapped receiver {free_during:?}", capped.elapsed());
    assert!(sound.audio >= 0.97 && sound.longest_silence < Duration::from_millis(500), "capped receiver's sound at 100 kbit/s: {sound:?}");
    assert!(free_during.fps >= 0.95 * FPS, "the uncapped receiver: {free_during:?}");
    let lifted = Instant::now();
    shaper.lift();
    // From sound only the way back is two probes, the first after a longer clean stretch.
    let recovered = back_on_top(&weak, lifted, Duration::from_secs(20), "the picture back after sound only");
    eprintln!("cap lifted after sound only: top rung again after {recovered:?}");
}

/// A player that sends receiver reports only (no transport-wide feedback, as plain GStreamer
/// and many standard players): capped at 250 kbit/s, then at full rate with 5 % random loss.
#[test]
fn a_player_without_feedback_adapts_from_its_reports_and_rides_out_loss() {
    let Annex { shaper, free, weak, _server, _cameras } = annex(true);

    let free_from = mark(&free);
    shaper.limit(250);
    // A second of heavy loss in its first report may send it through sound only (two rungs
    // down at once) before it probes back up to the picture that fits.
    let adapted = reaches(&weak, LOW, Duration::from_secs(20), "the capped receiver on the 180p rung");
    let on_low = mark(&weak);
    std::thread::sleep(Duration::from_secs(10));
    let settled = window(&weak, &on_low);
    sees_everyone(&weak).expect("every publisher in the capped receiver's picture");
    let free_during = window(&free, &free_from);
    eprintln!("250 kbit/s, reports only: 180p after {adapted:?}; the 10 s after {settled:?}; uncapped receiver {free_during:?}");
    assert!(settled.fps >= 0.9 * FPS, "capped receiver's picture: {settled:?}");
    assert!(settled.longest_freeze < Duration::from_millis(1500), "capped receiver froze: {settled:?}");
    assert!(settled.audio >= 0.97 && settled.longest_silence < Duration::from_millis(500), "capped receiver's sound: {settled:?}");
    // (The uncapped receiver shares two cores with the VP8 encoder that starts for the capped
    // one, and with a player whose way down goes through sound only and back: 13.8-15.0 fps
    // measured, so 90 % here; the feedback test above holds 95 %.)
    assert!(free_during.fps >= 0.9 * FPS && height(&free) == Some(TOP), "the uncapped receiver: {free_during:?}, height {:?}", height(&free));
    // Its reports showed that the link did not carry the top rung: that rung is probed
    // again only after 15 s of clean reports (a failed probe costs such a player seconds of
    // picture), so the way back takes up to that long.
    let lifted = Instant::now();
    shaper.lift();
    let recovered = back_on_top(&weak, lifted, Duration::from_secs(25), "the receiver back on the top rung");
    eprintln!("cap lifted: top rung again after {recovered:?}");
}

/// Pauses between decoded frames longer than 200 ms since `from`, in ms.
fn pauses(v: &Viewer, from: Instant) -> Vec<u128> {
    let r = v.received.lock().unwrap();
    let mut times: Vec<Instant> = r.frame_times.iter().copied().filter(|t| *t >= from).collect();
    times.sort();
    times.windows(2).map(|w| (w[1] - w[0]).as_millis()).filter(|ms| *ms > 200).collect()
}

/// 5 % random loss at full rate on a browser-like receiver's link (transport-wide feedback,
/// NACK): a smaller picture would not help, so it stays on the top rung. Lost video packets
/// are asked for again and sent again (RTX), so the picture goes on; the sound survives on
/// Opus' in-band FEC and concealment.
#[test]
fn random_loss_costs_neither_the_sound_nor_the_picture() {
    client::init();
    let server = Server::start_open();
    let room = "annex";
    let _cameras: Vec<Publisher> =
        COLOURS.iter().zip([440, 660, 880]).map(|(c, t)| Publisher::start_source(server.addr, room, Source::camera(*c, t))).collect();
    let shaper = Shaper::install();
    let viewer = Viewer::start_on_ports_with_nack(server.addr, room, PORTS);
    wait_for(Duration::from_secs(15), "everyone in the picture at the top rung", || {
        sees_everyone(&viewer)?;
        if height(&viewer) == Some(TOP) { Ok(()) } else { Err(format!("height {:?}", height(&viewer))) }
    });
    std::thread::sleep(Duration::from_secs(2));
    let from = mark(&viewer);
    shaper.lose(5);
    std::thread::sleep(Duration::from_secs(20));
    let lossy = window(&viewer, &from);
    shaper.stop_losing();
    eprintln!("5 % loss: {lossy:?}, pauses over 200 ms: {:?}", pauses(&viewer, from.at));
    // A lost packet holds the receiver's jitter buffer for its latency (200 ms) before the
    // decoder conceals it: decoded audio comes in bursts, but all of it comes.
    assert!(lossy.decoded >= 0.97 && lossy.longest_silence < Duration::from_millis(500), "sound through 5 % loss: {lossy:?}");
    // A retransmission lost too (5 % of 5 %, a few times in 20 s) costs a keyframe wait of
    // 0.4-0.7 s: 13.0-14.8 fps measured over ten runs.
    assert!(lossy.fps >= 0.85 * FPS && lossy.longest_freeze < Duration::from_secs(1), "the picture through 5 % loss: {lossy:?}");
    assert_eq!(height(&viewer), Some(TOP), "random loss is no reason for a smaller picture");
}
