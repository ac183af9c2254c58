//! Shared harness for the integration tests: the server as a child process, a minimal HTTP
//! client, WHIP/WHEP test peers on webrtcbin, and media analysis.
#![allow(dead_code)]

pub mod analysis;
pub mod baresip;
pub mod bench;
pub mod bench_adapt;
pub mod bench_outputs;
pub mod bench_phone;
pub mod bench_pool;
pub mod bench_rungs;
pub mod browser;
pub mod client;
pub mod ffmpeg;
pub mod fixtures;
pub mod http;
pub mod link_watch;
pub mod phone;
pub mod proxy;
pub mod redis;
pub mod replay;
pub mod rtmp_server;
pub mod rtsp_camera;
pub mod server;
pub mod shaper;
pub mod tls;
pub mod ws;

use std::time::{Duration, Instant};

/// Polls `check` until it returns `Ok`, or fails the test with `what` and the last reason.
pub fn wait_for<T, E: std::fmt::Display>(timeout: Duration, what: &str, mut check: impl FnMut() -> Result<T, E>) -> T {
    let start = Instant::now();
    loop {
        match check() {
            Ok(v) => return v,
            Err(reason) if start.elapsed() >= timeout => {
                panic!("timed out after {timeout:?} waiting for {what}: {reason}")
            }
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}
