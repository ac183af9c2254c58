//! What a room's outputs cost and what they do to the meeting: a room of three camera-like
//! publishers on the default canvas (1280x720@30), one of them a marker that flips colour, and
//! a WebRTC probe that measures fps, the longest gap between frames and glass-to-glass. The
//! outputs come on one after the other: the recording, then the public broadcast (HLS), then an
//! RTMP stream to Debian's nginx-rtmp. Then the HLS latency at the live edge: ffmpeg reads the
//! playlist as it grows and the marker's flips are timed in what it decodes. Part of
//! `./dev bench` (the `outputs` rows); writes `outputs.{json,md}`.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::analysis::{coverage, TOLERANCE};
use super::bench::{cpu_seconds, marker_clips, publisher_clip, MARKER_B, MARKER_TONE};
use super::client::{Codec, Viewer, VIEW_H, VIEW_W};
use super::replay::{Pacer, ReplayPublisher};
use super::rtmp_server::RtmpServer;
use super::server::Server;
use super::ws::Control;

/// One step of outputs and what the meeting got meanwhile.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OutputStep {
    pub outputs: String,
    pub server_cpu_percent: f64,
    pub probe_fps: f64,
    pub longest_gap_ms: f64,
    pub glass_to_glass_ms: Option<f64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OutputFigures {
    pub steps: Vec<OutputStep>,
    /// From a flip of the marker to ffmpeg decoding it from the HLS playlist (median).
    pub hls_edge_latency_ms: Option<f64>,
}

const ROOM: &str = "bench-out";
const FLIP_EVERY: Duration = Duration::from_secs(2);
/// HLS is seconds behind: its flips must be further apart than that.
const HLS_FLIP_EVERY: Duration = Duration::from_secs(12);

fn median(mut v: Vec<f64>) -> Option<f64> {
    v.sort_by(|a, b| a.total_cmp(b));
    (!v.is_empty()).then(|| v[v.len() / 2])
}

/// Flips the marker every `every` for `length`; the flips to the watched colour.
fn flip(publishers: &Arc<Mutex<Vec<ReplayPublisher>>>, clips: &(super::replay::Clip, super::replay::Clip), length: Duration, every: Duration) -> Vec<Instant> {
    let start = Instant::now();
    let mut flips = Vec::new();
    let mut on_b = false;
    let mut next = start + Duration::from_millis(300);
    while start.elapsed() < length {
        std::thread::sleep(next.saturating_duration_since(Instant::now()));
        on_b = !on_b;
        let at = publishers.lock().unwrap()[0].switch_to(if on_b { clips.1.clone() } else { clips.0.clone() });
        if on_b {
            flips.push(at);
        }
        next += every;
    }
    flips
}

/// The median time from each flip to the first onset after it (within `every`).
fn latency(flips: &[Instant], onsets: &[Instant], every: Duration) -> Option<f64> {
    median(flips.iter().filter_map(|f| onsets.iter().find(|o| **o >= *f && **o - *f < every).map(|o| (*o - *f).as_secs_f64() * 1000.0)).collect())
}

fn step(name: &str, server: &Server, probe: &Viewer, publishers: &Arc<Mutex<Vec<ReplayPublisher>>>, clips: &(super::replay::Clip, super::replay::Clip), measure: Duration) -> OutputStep {
    std::thread::sleep(Duration::from_secs(4));
    let pid = server.pid().to_string();
    let (cpu0, t0) = (cpu_seconds(&pid), Instant::now());
    let flips = flip(publishers, clips, measure, FLIP_EVERY);
    let elapsed = t0.elapsed().as_secs_f64();
    let cpu = (cpu_seconds(&pid) - cpu0) / elapsed * 100.0;
    let r = probe.received.lock().unwrap();
    let frames: Vec<Instant> = r.frame_times.iter().copied().filter(|t| *t >= t0).collect();
    let gap = frames.windows(2).map(|w| w[1] - w[0]).max().unwrap_or_default();
    let s = OutputStep {
        outputs: name.to_string(),
        server_cpu_percent: cpu,
        probe_fps: frames.len() as f64 / elapsed,
        longest_gap_ms: gap.as_secs_f64() * 1000.0,
        glass_to_glass_ms: latency(&flips, &r.colour_onsets, FLIP_EVERY),
    };
    eprintln!("{s:?}");
    s
}

/// The marker's onsets in what ffmpeg decodes from the HLS playlist, as it arrives.
fn hls_onsets(url: String, threshold: f64, stop: Arc<std::sync::atomic::AtomicBool>) -> std::thread::JoinHandle<Vec<Instant>> {
    std::thread::spawn(move || {
        let size = format!("scale={VIEW_W}:{VIEW_H}");
        let mut child = match Command::new("ffmpeg")
            .args(["-v", "error", "-live_start_index", "-1", "-i", &url, "-an", "-vf", &size, "-f", "rawvideo", "-pix_fmt", "rgb24", "-"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
        {
            Ok(c) => c,
            Err(_) => return Vec::new(),
        };
        let mut out = child.stdout.take().expect("piped");
        let mut frame = vec![0u8; VIEW_W * VIEW_H * 3];
        let (mut onsets, mut present) = (Vec::new(), false);
        while !stop.load(std::sync::atomic::Ordering::Relaxed) && out.read_exact(&mut frame).is_ok() {
            let now = coverage(&frame, MARKER_B, TOLERANCE) >= threshold;
            if now && !present {
                onsets.push(Instant::now());
            }
            present = now;
        }
        let _ = child.kill();
        let _ = child.wait();
        onsets
    })
}

/// The steps and the HLS latency; `None` without nginx (not installed).
pub fn outputs(cache: &Path, measure: Duration) -> Option<OutputFigures> {
    if Command::new("nginx").arg("-v").output().is_err() {
        eprintln!("outputs: skipped, nginx (nginx-light, libnginx-mod-rtmp) is not installed");
        return None;
    }
    let recordings = std::env::temp_dir().join(format!("plenum-bench-recordings-{}", std::process::id()));
    let server = Server::start_with(&[
        "--ice-address", "127.0.0.1", "--canvas", "1280x720", "--fps", "30", "--open-media", "--session-rate", "1000", "--recordings-dir",
        recordings.to_str().expect("UTF-8"),
    ]);
    let (mut moderator, _, _) = Control::join_first(server.addr, ROOM, "Bench");
    let clips = marker_clips(cache);
    let publishers = Arc::new(Mutex::new(Vec::new()));
    let pacer = Pacer::start(publishers.clone());
    publishers.lock().unwrap().push(ReplayPublisher::start(server.addr, ROOM, clips.0.clone(), None));
    for i in 1..3 {
        publishers.lock().unwrap().push(ReplayPublisher::start(server.addr, ROOM, publisher_clip(cache, i), None));
    }
    // The marker is one of three tiles: half its tile counts as "there".
    let threshold = 0.5 * 0.75 / 4.0;
    let probe = Viewer::start_probe(server.addr, ROOM, Codec::H264, MARKER_B, threshold, f64::from(MARKER_TONE));
    super::wait_for(Duration::from_secs(20), "the probe's first frame", || probe.received.lock().unwrap().first_frame.ok_or("none"));
    let rtmp = RtmpServer::start();
    let mut steps = vec![step("none", &server, &probe, &publishers, &clips, measure)];
    moderator.send_json(&serde_json::json!({"type": "set_recording", "on": true}));
    steps.push(step("recording", &server, &probe, &publishers, &clips, measure));
    moderator.send_json(&serde_json::json!({"type": "set_broadcast", "on": true}));
    steps.push(step("recording + HLS", &server, &probe, &publishers, &clips, measure));
    moderator.send_json(&serde_json::json!({"type": "start_stream", "url": rtmp.url("bench")}));
    steps.push(step("recording + HLS + RTMP", &server, &probe, &publishers, &clips, measure));

    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reader = hls_onsets(format!("http://{}/hls/{ROOM}/index.m3u8", server.addr), threshold, stop.clone());
    std::thread::sleep(Duration::from_secs(4));
    let flips = flip(&publishers, &clips, Duration::from_secs(60), HLS_FLIP_EVERY);
    std::thread::sleep(Duration::from_secs(8));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    drop(server);
    let onsets = reader.join().unwrap_or_default();
    let hls = latency(&flips, &onsets, HLS_FLIP_EVERY);
    eprintln!("HLS at the live edge: {hls:?} ms ({} flips, {} onsets)", flips.len(), onsets.len());
    drop(pacer);
    let _ = std::fs::remove_dir_all(&recordings);
    Some(OutputFigures { steps, hls_edge_latency_ms: hls })
}

/// Writes `outputs.json` and `outputs.md` into `dir`.
pub fn report(dir: &Path, machine: &str, figures: &OutputFigures) -> PathBuf {
    std::fs::create_dir_all(dir).expect("results directory");
    let json = serde_json::json!({ "machine": machine, "outputs": figures });
    std::fs::write(dir.join("outputs.json"), serde_json::to_string_pretty(&json).expect("json")).expect("write json");
    let base = figures.steps.first().map_or(0.0, |s| s.server_cpu_percent);
    let mut md = format!(
        "A room of three camera-like publishers (canvas 1280x720@30) with its outputs coming on one after the other, measured on {machine}; \
         a WebRTC probe (H.264) watches the meeting meanwhile.\n\n\
         | outputs | server CPU % | beyond none | probe fps | longest gap ms | glass-to-glass ms |\n|---|---|---|---|---|---|\n"
    );
    for s in &figures.steps {
        md.push_str(&format!(
            "| {} | {:.0} | {:+.0} | {:.1} | {:.0} | {} |\n",
            s.outputs,
            s.server_cpu_percent,
            s.server_cpu_percent - base,
            s.probe_fps,
            s.longest_gap_ms,
            s.glass_to_glass_ms.map_or("—".to_string(), |g| format!("{g:.0}"))
        ));
    }
    md.push_str(&format!(
        "\nHLS at the live edge (ffmpeg reading the playlist as it grows, from a flip of the marker to decoding it): {}\n",
        figures.hls_edge_latency_ms.map_or("—".to_string(), |l| format!("{l:.0} ms"))
    ));
    std::fs::write(dir.join("outputs.md"), &md).expect("write md");
    dir.join("outputs.md")
}
