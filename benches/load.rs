//! Plenum's load harness: how large a room runs in real time on this machine, what it costs,
//! the delay it adds and the bandwidth a receiver needs.
//!
//! `./dev bench` (or `cargo bench --bench load`) runs every scenario below against a real
//! `plenum serve` (release build) and writes `benches/results/results.{json,md,svg}`.
//! Publishers replay a pre-encoded VP8 640x360@30 + Opus clip (own colour under camera-like
//! noise, own tone; encoded once and cached in target/) over real WebRTC: the load generator
//! encodes nothing. Only the marker publisher talks; the others murmur below the speaking
//! threshold. Receivers get H.264 unless the scenario says VP8. One probe receiver decodes and
//! measures; the other receivers only count the bytes on the wire. The server's CPU and RSS come
//! from /proc; the engine limit is the same decode + composite + encode work as a plain local
//! pipeline without network.
//!
//! Besides the scenarios, `rungs` measures what each rung of the encoding ladder costs (scale +
//! encode from a camera-like 720p30 canvas) and sends, into `benches/results/rungs.{json,md}`.
//!
//! `adapt` caps one receiver's downlink with `tc` (root only) and measures how fast its picture
//! follows, into `benches/results/adapt.{json,md}`.
//!
//! `outputs` turns a room's recording, public broadcast (HLS) and an RTMP stream on one after
//! the other and measures their CPU, what the meeting gets meanwhile and the HLS latency, into
//! `benches/results/outputs.{json,md}`.
//!
//! `pool` runs three nodes against a real redis-server: placement evenness, failover over ten
//! kills and the Redis commands a second, into `benches/results/pool.{json,md}`. `phone`
//! measures callers by phone: mouth-to-ear latency and CPU per caller, into `phone.{json,md}`.
//!
//! Arguments: scenario names to run only those (default: all), e.g. `./dev bench n2 n5 rungs`.

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::Duration;

use support::bench::{report, run, Scenario};
use support::client::Codec;

fn scenarios() -> Vec<Scenario> {
    let measure = Duration::from_secs(20);
    let base = |name: &str, rooms, publishers, receivers| Scenario {
        name: name.into(),
        rooms,
        publishers_per_room: publishers,
        counting_receivers: receivers,
        measure,
        canvas: (1280, 720),
        fps: 30,
        layout: None,
        // Every camera in the picture (the default grid holds 25).
        max_tiles: Some(publishers),
        viewer_codec: Codec::H264,
        presentation: false,
        receiver_queries: &[],
    };
    vec![
        base("n2", 1, 2, 0),
        base("n5", 1, 5, 0),
        base("n10", 1, 10, 0),
        base("n16", 1, 16, 0),
        base("n25", 1, 25, 0),
        base("n50", 1, 50, 0),
        // The same with libvpx for the composite (viewers that offer no H.264).
        Scenario { viewer_codec: Codec::Vp8, ..base("n25vp8", 1, 25, 0) },
        Scenario { viewer_codec: Codec::Vp8, ..base("n50vp8", 1, 50, 0) },
        // 50 present, 16 visible (a 4 x 4 grid): the others cost no decode.
        Scenario { max_tiles: Some(16), ..base("n50grid16", 1, 50, 0) },
        // 50 present, 9 visible (active speaker + strip).
        Scenario { layout: Some("speaker"), ..base("n50speaker", 1, 50, 0) },
        base("rooms8x5", 8, 5, 0),
        // 10 cameras and 8 more receivers: all on the top rung, or two on each rung of the
        // ladder (720p, 360p, 180p, sound only): what serving weak links costs.
        base("n10r9", 1, 10, 8),
        Scenario { receiver_queries: &["", "max_kbps=700", "quality=low", "quality=audio"], ..base("n10ladder", 1, 10, 8) },
        // A lecture: one presenter, 100 or 200 receive-only viewers sharing one encode.
        Scenario { presentation: true, ..base("presentation100", 1, 1, 99) },
        Scenario { presentation: true, ..base("presentation200", 1, 1, 199) },
    ]
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("model name")).map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string()))
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    format!("{cores} cores ({cpu}), {}", gst::version_string())
}

fn main() {
    support::client::init();
    let wanted: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with('-')).collect();
    let cache = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/bench-cache");
    let mut outcomes = Vec::new();
    for scenario in scenarios().into_iter().filter(|s| wanted.is_empty() || wanted.contains(&s.name)) {
        eprintln!("running {} ...", scenario.name);
        let outcome = run(&scenario, &cache);
        eprintln!("{outcome:?}");
        outcomes.push(outcome);
    }
    let dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("benches/results");
    if !outcomes.is_empty() {
        let md = report(&dir, &machine(), &outcomes);
        println!("{}", std::fs::read_to_string(md).unwrap_or_default());
    }
    if wanted.is_empty() || wanted.iter().any(|w| w == "adapt") {
        eprintln!("running adapt ...");
        let rows = support::bench_adapt::adaptations();
        if !rows.is_empty() {
            let md = support::bench_adapt::report(&dir, &machine(), &rows);
            println!("{}", std::fs::read_to_string(md).unwrap_or_default());
        }
    }
    if wanted.is_empty() || wanted.iter().any(|w| w == "outputs") {
        eprintln!("running outputs ...");
        if let Some(figures) = support::bench_outputs::outputs(&cache, Duration::from_secs(15)) {
            let md = support::bench_outputs::report(&dir, &machine(), &figures);
            println!("{}", std::fs::read_to_string(md).unwrap_or_default());
        }
    }
    if wanted.is_empty() || wanted.iter().any(|w| w == "pool") {
        eprintln!("running pool ...");
        if let Some(figures) = support::bench_pool::pool(&cache) {
            let md = support::bench_pool::report(&dir, &machine(), &figures);
            println!("{}", std::fs::read_to_string(md).unwrap_or_default());
        }
    }
    if wanted.is_empty() || wanted.iter().any(|w| w == "phone") {
        eprintln!("running phone ...");
        if let Some(figures) = support::bench_phone::phones() {
            let md = support::bench_phone::report(&dir, &machine(), &figures);
            println!("{}", std::fs::read_to_string(md).unwrap_or_default());
        }
    }
    if wanted.is_empty() || wanted.iter().any(|w| w == "rungs") {
        eprintln!("running rungs ...");
        let costs = support::bench_rungs::rung_costs(Duration::from_secs(8));
        let md = support::bench_rungs::report(&dir, &machine(), &costs);
        println!("{}", std::fs::read_to_string(md).unwrap_or_default());
    }
}
