//! Engine figures for the README: join time, server CPU and frame rate for one room with
//! 4 publishers (640x360@30 VP8 + Opus, over real WebRTC) and 1 viewer, at the default
//! canvas (1280x720@30). Run with `./dev bench` (or `cargo bench --bench engine`).
//!
//! The publishers encode in this process, so the machine's total load is higher than the
//! server's; the server's own CPU is read from /proc.

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use support::client::{self, Publisher, Source, Viewer, BLUE, GREEN, RED, YELLOW};
use support::server::Server;

const MEASURE: Duration = Duration::from_secs(20);

fn main() {
    client::init();
    let canvas = std::env::var("PLENUM_BENCH_CANVAS").unwrap_or_else(|_| "1280x720".into());
    let fps = std::env::var("PLENUM_BENCH_FPS").unwrap_or_else(|_| "30".into());
    let server = Server::start_with(&["--ice-address", "127.0.0.1", "--canvas", &canvas, "--fps", &fps]);
    let room = "bench";

    // Join time of a viewer into a running room (the encoder exists already).
    let warm = Viewer::start(server.addr, room, None);
    support::wait_for(Duration::from_secs(10), "a first frame", || warm.received.lock().unwrap().first_frame.ok_or("none"));
    let mut joins = Vec::new();
    for _ in 0..5 {
        let v = Viewer::start(server.addr, room, None);
        let first = support::wait_for(Duration::from_secs(10), "first frame", || v.received.lock().unwrap().first_frame.ok_or("none"));
        joins.push((first - v.posted_at).as_millis());
        v.leave();
    }
    drop(warm);
    joins.sort();

    let publishers: Vec<Publisher> = [RED, GREEN, BLUE, YELLOW]
        .iter()
        .zip([440, 620, 820, 1040])
        .map(|(c, t)| {
            Publisher::start_source(server.addr, room, Source { width: 640, height: 360, fps: 30, ..Source::new(*c, t) })
        })
        .collect();
    let viewer = Viewer::start(server.addr, room, None);
    support::wait_for(Duration::from_secs(15), "frames at the viewer", || viewer.frame().ok_or("none"));
    std::thread::sleep(Duration::from_secs(3));

    let (cpu0, t0) = (server.cpu_seconds(), Instant::now());
    std::thread::sleep(MEASURE);
    let elapsed = t0.elapsed().as_secs_f64();
    let server_cpu = (server.cpu_seconds() - cpu0) / elapsed;
    let (frames, gap) = viewer.frames_since(t0);
    let rss = std::fs::read_to_string(format!("/proc/{}/status", server_pid(&server)))
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("VmRSS")).map(|l| l.split_whitespace().nth(1).unwrap_or("?").to_string()))
        .unwrap_or_else(|| "?".into());

    println!("plenum engine bench, canvas {canvas}@{fps}, 4 publishers 640x360@30 VP8, 1 viewer (VP8)");
    println!("  WHEP POST -> first decoded frame: median {} ms (runs: {joins:?})", joins[joins.len() / 2]);
    println!("  server CPU: {:.0}% of one core ({:.1}% per publisher)", server_cpu * 100.0, server_cpu * 25.0);
    println!("  server RSS: {rss} kB");
    println!("  viewer: {:.1} fps, largest frame gap {} ms", frames as f64 / elapsed, gap.as_millis());
    drop(publishers);
}

fn server_pid(server: &Server) -> u32 {
    server.pid()
}
