//! The load harness keeps working: a short run with 2 publishers produces every figure and the
//! three reports. No timing is asserted here; the figures live in the bench output.

mod support;

use std::time::Duration;

use support::bench::{report, run, Scenario};
use support::client::{self, Codec};

#[test]
fn a_two_publisher_run_produces_all_reports() {
    client::init();
    let tmp = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let scenario = Scenario {
        name: "smoke".into(),
        rooms: 1,
        publishers_per_room: 2,
        counting_receivers: 1,
        measure: Duration::from_secs(5),
        canvas: (640, 360),
        fps: 15,
        layout: None,
        max_tiles: None,
        viewer_codec: Codec::H264,
        presentation: false,
        // The counting receiver on the lowest rung: the harness's way to spread receivers.
        receiver_queries: &["quality=low"],
    };
    let outcome = run(&scenario, &tmp.join("clips"));
    eprintln!("{outcome:?}");
    assert_eq!(outcome.publishers, 2);
    assert!(outcome.probe_fps > 0.0, "the probe received frames");
    assert!(outcome.downstream_kbps_per_receiver > 0.0, "receivers received bytes");
    assert!(outcome.server_cpu_percent > 0.0 && outcome.engine_limit_cpu_percent > 0.0);
    assert!(outcome.glass_to_glass_ms.is_some(), "colour flips were seen at the probe");
    assert!(outcome.mouth_to_ear_ms.is_some(), "tone onsets were heard at the probe");
    let dir = tmp.join("bench-smoke");
    report(&dir, "smoke test", &[outcome]);
    for file in ["results.json", "results.md", "results.svg"] {
        let len = std::fs::metadata(dir.join(file)).map(|m| m.len()).unwrap_or(0);
        assert!(len > 100, "{file} written");
    }
}
