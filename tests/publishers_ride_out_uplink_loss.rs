//! A publisher behind a lossy uplink (a phone in a basement, a school's overloaded Wi-Fi): the
//! server asks for lost video packets again (NACK, answered by the publisher's RTX), rebuilds
//! lost sound from Opus' in-band FEC or conceals it, so everyone hears the publisher without a
//! gap and its tile goes on moving. The loss is real: nftables drops a share of the UDP
//! packets the publisher sends from its ICE ports on loopback (see `support::shaper`); what
//! the server sends back (NACKs, keyframe requests) passes.
//!
//! The publisher's picture switches between two colours four times a second under camera
//! noise, so a frozen tile shows as a colour that stays (a still frame would look fine). Its
//! sound is a tone, sent as GStreamer sends it by default (Opus' CELT mode, whose concealment
//! carries a tone on; in-band FEC exists in the speech modes only, which a browser uses and
//! which the server asks for in its answer).

mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use support::client::{self, Publisher, Rgb, Source, Viewer, BLUE, RED};
use support::server::Server;
use support::shaper::{Shaper, PORTS};
use support::wait_for;

const ROOM: &str = "basement";
const TONE: f64 = 440.0;
/// How often the publisher's colour switches.
const SWITCH: Duration = Duration::from_millis(250);
const SAMPLE_RATE: f64 = 48_000.0;

/// Switches the publisher's colour every [`SWITCH`] until dropped.
struct Switching {
    stop: Arc<AtomicBool>,
}

impl Switching {
    fn start(publisher: &Publisher) -> Self {
        let set = publisher.colour_switch();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        std::thread::spawn(move || {
            let colours: [Rgb; 2] = [RED, BLUE];
            let mut i = 0;
            while !flag.load(Ordering::Relaxed) {
                i += 1;
                set(colours[i % 2]);
                std::thread::sleep(SWITCH);
            }
        });
        Self { stop }
    }
}

impl Drop for Switching {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// What the viewer got from `from` to `to`.
#[derive(Debug)]
struct Span {
    /// Share of the span's sound (48 kHz) in which the publisher's tone sounds.
    tone: f64,
    /// Share of the span's sound that came at all.
    #[allow(dead_code)] // (shown in the figures)
    decoded: f64,
    /// The longest stretch in which the tile kept one colour (a healthy one switches every
    /// [`SWITCH`]).
    longest_still: Duration,
    fps: f64,
}

fn span(v: &Viewer, from: Instant, to: Instant) -> Span {
    let r = v.received.lock().unwrap();
    let toned: u64 = r.tone_log.iter().filter(|(t, _, on)| *on && *t >= from && *t < to).map(|(_, n, _)| n).sum();
    let secs = (to - from).as_secs_f64();
    let decoded: u64 = r.tone_log.iter().filter(|(t, _, _)| *t >= from && *t < to).map(|(_, n, _)| n).sum();
    let frames: Vec<&(Instant, Option<usize>)> = r.colour_log.iter().filter(|(t, _)| *t >= from && *t < to).collect();
    let mut longest_still = Duration::ZERO;
    let mut since = from;
    let mut last: Option<Option<usize>> = None;
    for (t, seen) in &frames {
        if last != Some(*seen) {
            longest_still = longest_still.max(*t - since);
            since = *t;
            last = Some(*seen);
        }
    }
    longest_still = longest_still.max(to - since);
    if std::env::var("PLENUM_DEBUG_TONE").is_ok() {
        let mut runs: std::collections::BTreeMap<usize, usize> = Default::default();
        let mut run = 0;
        for (_, _, on) in r.tone_log.iter().filter(|(t, _, _)| *t >= from && *t < to) {
            if *on { if run > 0 { *runs.entry(run).or_default() += 1; } run = 0; } else { run += 1; }
        }
        eprintln!("missing-window runs (length: count): {runs:?}");
    }
    Span { tone: toned as f64 / (SAMPLE_RATE * secs), decoded: decoded as f64 / (SAMPLE_RATE * secs), longest_still, fps: frames.len() as f64 / secs }
}

/// How long after `since` the tile showed a new colour (nothing from before a dropout is
/// still on its way a second later: what switches is new).
fn moving_again(v: &Viewer, since: Instant, within: Duration) -> Duration {
    wait_for(within, "the tile switching colours again after the burst", || {
        let r = v.received.lock().unwrap();
        let mut changes = Vec::new();
        let mut last = None;
        for (t, seen) in r.colour_log.iter().filter(|(_, s)| s.is_some()) {
            if last.is_some_and(|l| l != *seen) && *t >= since {
                changes.push(*t);
            }
            last = Some(*seen);
        }
        match changes.first() {
            Some(t) => Ok(*t - since),
            None => Err(format!("{} changes since", changes.len())),
        }
    })
}

#[test]
fn a_publisher_on_a_lossy_uplink_is_heard_without_gaps_and_its_tile_moves_on() {
    client::init();
    // PLENUM_DEBUG_TONE: the server's mixer underruns after each phase, and the runs of 20 ms
    // windows without the tone.
    let debug = std::env::var("PLENUM_DEBUG_TONE").is_ok();
    let mut args = support::server::OPEN_TEST_ARGS.to_vec();
    if debug { args.extend(["--metrics-listen", "127.0.0.1:0"]); }
    let mut server = Server::start_with(&args);
    let metrics = if debug { Some(server.stdout_line().trim_start_matches("plenum metrics on http://").trim_end_matches("/metrics").to_string()) } else { None };
    let underruns = || metrics.as_ref().map(|m| {
        let r = support::http::request(m.parse().unwrap(), "GET", "/metrics", &[], b"");
        r.body.lines().filter(|l| l.starts_with("plenum_mixer_underruns_total")).map(str::to_string).collect::<Vec<_>>().join(" ")
    });
    let shaper = Shaper::install_from_ports();
    let publisher = Publisher::start_source(server.addr, ROOM, Source { ports: Some(PORTS), resend: true, ..Source::camera(RED, TONE as u32) });
    let _switching = Switching::start(&publisher);
    let viewer = Viewer::start_watching(server.addr, ROOM, &[RED, BLUE], TONE);
    let clean_from = Instant::now();
    wait_for(Duration::from_secs(15), "the publisher's tile switching colours and its tone", || {
        let now = Instant::now();
        let s = span(&viewer, now - Duration::from_secs(2), now);
        if now - clean_from > Duration::from_secs(3) && s.longest_still < Duration::from_millis(600) && s.tone > 0.9 { Ok(()) } else { Err(format!("{s:?}")) }
    });
    let start = Instant::now();
    std::thread::sleep(Duration::from_secs(3));
    let clean = span(&viewer, start, Instant::now());
    eprintln!("clean uplink: {clean:?} underruns {:?}", underruns());

    let mut figures = Vec::new();
    for percent in [5, 10] {
        shaper.lose_from_ports(percent);
        let from = Instant::now();
        std::thread::sleep(Duration::from_secs(15));
        shaper.stop_losing();
        // (The first half second still plays what came before the loss.)
        let lossy = span(&viewer, from + Duration::from_millis(500), Instant::now());
        eprintln!("{percent} % uplink loss: {lossy:?} underruns {:?}", underruns());
        figures.push((percent, lossy));
        std::thread::sleep(Duration::from_secs(2));
    }

    // Bursts: the uplink drops out for a second, three times.
    let mut recoveries = Vec::new();
    for _ in 0..3 {
        shaper.lose_from_ports(100);
        std::thread::sleep(Duration::from_secs(1));
        shaper.stop_losing();
        let ended = Instant::now();
        let back = moving_again(&viewer, ended, Duration::from_secs(5));
        recoveries.push(back);
        std::thread::sleep(Duration::from_secs(3));
    }
    eprintln!("after one-second dropouts the tile switched colours again after {recoveries:?}");

    for (percent, lossy) in &figures {
        // In 20 ms windows: 99.1-100 % at 5 %, 98.2-100 % at 10 % measured (before: 92.9 % and
        // 87 %, each loss holding the voice 40 ms). Until rtpbin's lip-sync offsets were
        // turned off (`media::ingest`), about one run in five lost a fifth of the voice: the
        // offset held it 260 ms behind each loss. PLENUM_DEBUG_TONE=1 prints the runs of
        // missing 20 ms windows and the mixer's underruns.
        assert!(lossy.tone >= 0.98, "the tone through {percent} % uplink loss: {lossy:?}");
        // A packet whose retransmission is lost too costs a keyframe, and a request that
        // follows an early one waits for the next regular report (RFC 4585; see
        // `media::peer::RTCP_INTERVAL`): 0.44-1.27 s of a still tile at most measured.
        assert!(lossy.longest_still < Duration::from_secs(2), "the tile through {percent} % uplink loss: {lossy:?}");
        assert!(lossy.fps >= 14.0, "the picture through {percent} % uplink loss: {lossy:?}");
    }
    assert!(recoveries.iter().all(|d| *d < Duration::from_secs(1)), "recovery after a dropout: {recoveries:?}");
}
