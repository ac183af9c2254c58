//! `--metrics-listen` serves Prometheus metrics on a separate address (the public listener has
//! none): the Prometheus project's own OpenMetrics parser reads them, and they move with the
//! room: rooms, participants, publishers, viewers by codec and rung, the composite's frames,
//! each encoder's frames, drops and queue,
//! WebSocket connections, HTTP responses by status, the process's memory and threads; the
//! Grafana dashboard in `deploy/grafana` reads only metrics that are served.

mod support;

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;
use support::client::{self, Publisher, Source, Viewer, BLUE, RED};
use support::server::{Server, TEST_ARGS};
use support::ws::Control;

/// Every sample of `/metrics`, as the Prometheus parser reads it: (name, labels, value).
fn scrape(metrics: &str) -> Vec<(String, serde_json::Map<String, Value>, f64)> {
    let (host, path) = metrics.strip_prefix("http://").and_then(|r| r.split_once('/')).expect("a metrics URL");
    let r = support::http::request(host.parse().expect("an address"), "GET", &format!("/{path}"), &[], b"");
    assert_eq!(r.status, 200);
    assert!(r.header("content-type").is_some_and(|c| c.starts_with("application/openmetrics-text")), "{:?}", r.header("content-type"));
    let script = format!("{}/tests/support/parse_metrics.py", env!("CARGO_MANIFEST_DIR"));
    let mut parser = Command::new("/usr/bin/python3").arg(script).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("python3 runs");
    parser.stdin.take().expect("stdin").write_all(r.body.as_bytes()).expect("written");
    let out = parser.wait_with_output().expect("the parser ends");
    assert!(out.status.success(), "the Prometheus parser refuses the text: {}\n{}", String::from_utf8_lossy(&out.stderr), r.body);
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).expect("JSON from the parser");
            (v["name"].as_str().unwrap_or("").to_string(), v["labels"].as_object().cloned().unwrap_or_default(), v["value"].as_f64().unwrap_or(f64::NAN))
        })
        .collect()
}

/// The sum of `name`'s samples whose labels include `with`.
fn value(samples: &[(String, serde_json::Map<String, Value>, f64)], name: &str, with: &[(&str, &str)]) -> f64 {
    samples
        .iter()
        .filter(|(n, labels, _)| n == name && with.iter().all(|(k, v)| labels.get(*k).and_then(Value::as_str) == Some(*v)))
        .map(|(_, _, v)| v)
        .sum()
}

#[test]
fn metrics_parse_and_move_with_the_room() {
    client::init();
    let args: Vec<&str> = TEST_ARGS.iter().copied().chain(["--metrics-listen", "127.0.0.1:0"]).collect();
    let mut server = Server::start_with(&args);
    let line = server.stdout_line();
    let metrics = line.strip_prefix("plenum metrics on ").expect("the metrics address is printed").to_string();
    assert_eq!(server.get("/metrics").status, 404, "no metrics on the public listener");

    let before = scrape(&metrics);
    assert_eq!(value(&before, "plenum_rooms", &[]), 0.0);
    assert!(value(&before, "plenum_process_resident_memory_bytes", &[]) > 1e6);
    assert!(value(&before, "plenum_process_threads", &[]) >= 2.0);
    assert!(value(&before, "plenum_process_open_fds", &[]) >= 3.0);

    let room = "messraum";
    let (_ada, ada_token, _) = Control::join_first(server.addr, room, "Ada");
    let (_bo, _, bo_token) = Control::join(server.addr, room, "Bo");
    let _red = Publisher::start_as(server.addr, room, Source::new(RED, 440), Some(&ada_token));
    let _blue = Publisher::start_as(server.addr, room, Source::new(BLUE, 660), Some(&bo_token));
    let viewer = Viewer::start(server.addr, room, Some(&bo_token));
    support::wait_for(Duration::from_secs(15), "a picture at the viewer", || viewer.frame().map(|_| ()).ok_or("none yet"));
    let during = support::wait_for(Duration::from_secs(10), "the room's gauges", || {
        let s = scrape(&metrics);
        let (p, v) = (value(&s, "plenum_publishers", &[("room", room)]), value(&s, "plenum_viewers", &[("room", room)]));
        if p == 2.0 && v == 1.0 { Ok(s) } else { Err(format!("publishers {p}, viewers {v}")) }
    });
    // The frame counter's rate over the time between two scrapes (each taken when fetched).
    let (at_a, a) = (std::time::Instant::now(), scrape(&metrics));
    std::thread::sleep(Duration::from_secs(2));
    let (at_b, later) = (std::time::Instant::now(), scrape(&metrics));
    let frames = value(&later, "plenum_composite_frames_total", &[("room", room)]) - value(&a, "plenum_composite_frames_total", &[("room", room)]);
    let fps = frames / (at_b - at_a).as_secs_f64();
    // The viewer's encoder (VP8, the test canvas's top rung): it keeps up with the canvas, so
    // it encodes about as many frames, drops next to none and its queue is within bounds.
    let vp8 = [("room", room), ("codec", "vp8")];
    let encoded = value(&later, "plenum_encoder_frames_total", &vp8) - value(&a, "plenum_encoder_frames_total", &vp8);
    let encoder_fps = encoded / (at_b - at_a).as_secs_f64();
    let dropped = value(&later, "plenum_encoder_dropped_frames_total", &vp8) - value(&a, "plenum_encoder_dropped_frames_total", &vp8);
    let waiting = value(&later, "plenum_encoder_queue_frames", &vp8);
    eprintln!("VP8 encoder: {encoder_fps:.1} fps, {dropped} frames dropped in {:?}, {waiting} waiting", at_b - at_a);
    assert!((12.0..=17.0).contains(&encoder_fps), "the viewer's encoder keeps the canvas's rate: {encoder_fps}");
    assert!(dropped <= encoded * 0.05 && (0.0..=3.0).contains(&waiting), "dropped {dropped} of {encoded}, waiting {waiting}");
    let figures = [
        ("rooms", value(&during, "plenum_rooms", &[])),
        ("participants", value(&during, "plenum_participants", &[("room", room)])),
        ("publishers", value(&during, "plenum_publishers", &[("room", room)])),
        ("viewers vp8", value(&during, "plenum_viewers", &[("room", room), ("codec", "vp8")])),
        ("websockets", value(&during, "plenum_websocket_connections", &[])),
        ("HTTP 201", value(&during, "plenum_http_responses_total", &[("status", "201")])),
        ("keyframe requests", value(&during, "plenum_keyframe_requests_total", &[])),
    ];
    eprintln!("{figures:?}; composite {fps:.1} fps");
    assert_eq!(figures.map(|(_, v)| v)[..5], [1.0, 2.0, 2.0, 1.0, 2.0], "{figures:?}");
    assert!(figures[5].1 >= 3.0, "three sessions answered 201: {figures:?}");
    assert!((12.0..=17.0).contains(&fps), "the composite runs at the test's 15 fps: {fps}");

    // The dashboard in the repository reads only what is served.
    let dashboard: Value = serde_json::from_str(&std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/grafana/plenum.json")).expect("the dashboard")).expect("JSON");
    let served: std::collections::BTreeSet<&str> = later.iter().map(|(n, _, _)| n.as_str()).collect();
    for panel in dashboard["panels"].as_array().expect("panels") {
        let expr = panel["targets"][0]["expr"].as_str().expect("an expression");
        let named: Vec<&str> = expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).filter(|w| w.starts_with("plenum_")).collect();
        assert!(!named.is_empty() && named.iter().all(|m| served.contains(m)), "panel {:?} reads {named:?}, served: {served:?}", panel["title"]);
    }

    assert_eq!(viewer.leave(), 200);
    let after = support::wait_for(Duration::from_secs(10), "the viewer gone from the gauges", || {
        let s = scrape(&metrics);
        if value(&s, "plenum_viewers", &[("room", room)]) == 0.0 { Ok(s) } else { Err("still counted".to_string()) }
    });
    assert_eq!(value(&after, "plenum_publishers", &[("room", room)]), 2.0);
}
