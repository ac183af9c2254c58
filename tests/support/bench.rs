//! The load harness behind `cargo bench --bench load` (and its smoke test): scenarios of
//! replaying publishers and receivers against a real `plenum serve`, the same media work as a
//! plain local pipeline (the engine limit), and the reports (JSON, Markdown, SVG).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gst::prelude::*;
use serde::Serialize;

use super::client::{Codec, Rgb, Viewer};
use super::replay::{clip, Clip, Pacer, ReplayPublisher};
use super::server::Server;

const MARKER_A: Rgb = Rgb(200, 40, 200);
pub const MARKER_B: Rgb = Rgb(40, 200, 200);
pub const MARKER_TONE: u32 = 1500;
/// The marker publisher switches clips this often (a colour flip and a tone onset each time).
const FLIP_EVERY: Duration = Duration::from_secs(2);

#[derive(Clone, Debug)]
pub struct Scenario {
    pub name: String,
    pub rooms: usize,
    pub publishers_per_room: usize,
    /// Receivers in the first room, besides the decoding probe (they only count bytes).
    pub counting_receivers: usize,
    pub measure: Duration,
    /// Canvas and frame rate of the server (and of the engine-limit pipeline).
    pub canvas: (u32, u32),
    pub fps: u32,
    /// A layout set by a moderator before publishers join (`"speaker"`: 9 of them visible).
    pub layout: Option<&'static str>,
    /// The server's `--max-tiles` (grid capacity); `None`: its default.
    pub max_tiles: Option<usize>,
    /// What the receivers offer (and so get); the engine limit encodes the same.
    pub viewer_codec: Codec,
    /// Presentation mode: the publishers (anonymous, like a hall camera) present, the
    /// receivers are the audience.
    pub presentation: bool,
    /// What the counting receivers ask for, in turn (a WHEP query such as `quality=low`;
    /// empty: the top rung). None given: all on the top rung.
    pub receiver_queries: &'static [&'static str],
}

#[derive(Clone, Debug, Serialize, serde::Deserialize, Default)]
pub struct Outcome {
    pub scenario: String,
    pub rooms: usize,
    pub publishers: usize,
    pub receivers: usize,
    pub probe_fps: f64,
    pub frame_interval_jitter_ms: f64,
    pub audio_gaps: usize,
    pub mouth_to_ear_ms: Option<f64>,
    pub glass_to_glass_ms: Option<f64>,
    pub join_to_first_frame_ms: f64,
    pub downstream_kbps_per_receiver: f64,
    pub server_cpu_percent: f64,
    pub cpu_percent_per_participant: f64,
    pub server_rss_mb: f64,
    pub rss_mb_per_participant: f64,
    pub engine_limit_cpu_percent: f64,
    pub cpu_ratio_to_engine_limit: f64,
}

fn median(mut v: Vec<f64>) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    Some(v[v.len() / 2])
}

/// CPU seconds (user + system) of a process, from /proc.
/// CPU seconds (user + system) that process `pid` (or "self") has used.
pub fn cpu_seconds(pid: &str) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat.rsplit_once(')').map(|(_, r)| r.split_whitespace().collect()).unwrap_or_default();
    let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}

fn rss_mb(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("VmRSS")).and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok()))
        .unwrap_or(0.0)
        / 1024.0
}

const COLOURS: [Rgb; 6] = [Rgb(230, 30, 30), Rgb(30, 200, 40), Rgb(40, 60, 230), Rgb(240, 220, 30), Rgb(240, 140, 20), Rgb(120, 120, 120)];

/// Everyone but the marker murmurs (below the speaking threshold): one talks at a time.
pub fn publisher_clip(cache: &Path, i: usize) -> Clip {
    clip(cache, COLOURS[i % COLOURS.len()], 300 + 37 * (i as u32 % 20), false)
}

/// The marker's two clips: its usual colour, silent, and the watched colour with its tone.
pub fn marker_clips(cache: &Path) -> (Clip, Clip) {
    (clip(cache, MARKER_A, 0, true), clip(cache, MARKER_B, MARKER_TONE, true))
}

/// How many of `scenario`'s publishers the layout shows (and the server decodes).
pub fn visible(scenario: &Scenario) -> usize {
    let n = scenario.publishers_per_room;
    match scenario.layout {
        Some("speaker") => n.min(1 + plenum::room::layout::STRIP_MAX),
        _ => n.min(scenario.max_tiles.unwrap_or(plenum::config::DEFAULT_MAX_TILES)),
    }
}

/// The same decode + composite + encode work as the server does for `n` publishers, as one
/// local pipeline without network: CPU in percent of one core.
pub fn engine_limit(cache: &Path, n: usize, canvas: (u32, u32), fps: u32, codec: Codec, measure: Duration) -> f64 {
    let profiles = plenum::profiles::Profiles::load(None).expect("built-in profiles");
    let profile = match codec {
        Codec::Vp8 => profiles.select(plenum::config::DEFAULT_VP8_PROFILE, plenum::profiles::VideoCodec::Vp8),
        Codec::H264 => profiles.select(plenum::config::DEFAULT_H264_PROFILE, plenum::profiles::VideoCodec::H264),
    }
    .expect("default profile");
    let (cw, ch) = canvas;
    // The top rung: what the server encodes for receivers that get everything.
    let top = plenum::media::ladder::resolve(&profile, plenum::room::layout::Size { width: cw, height: ch }, fps);
    let encoder = profile.encoder_for(top[0].kbps);
    let tiles = plenum::room::layout::grid(n, plenum::room::layout::Size { width: cw, height: ch });
    let mut desc = format!(
        "compositor name=comp force-live=true ! video/x-raw,format=I420,width={cw},height={ch},framerate={fps}/1 ! {encoder} ! fakesink sync=false \
         audiomixer name=amix ! opusenc ! fakesink sync=false "
    );
    for (i, t) in tiles.iter().enumerate() {
        desc.push_str(&format!(
            "appsrc name=v{i} is-live=true do-timestamp=true format=time caps=video/x-vp8,width=640,height=360,framerate=30/1 \
             ! vp8dec ! videoconvert ! videoscale add-borders=true ! video/x-raw,width={},height={},pixel-aspect-ratio=1/1 \
             ! comp.sink_{i} \
             appsrc name=a{i} is-live=true do-timestamp=true format=time caps=audio/x-opus,channel-mapping-family=0,channels=1,rate=48000 \
             ! opusdec ! amix. ",
            t.width, t.height
        ));
    }
    let pipeline = gst::parse::launch(&desc).expect("engine pipeline parses").downcast::<gst::Pipeline>().expect("a pipeline");
    let comp = pipeline.by_name("comp").expect("compositor");
    for (i, t) in tiles.iter().enumerate() {
        if let Some(pad) = comp.static_pad(&format!("sink_{i}")) {
            pad.set_property("xpos", t.x as i32);
            pad.set_property("ypos", t.y as i32);
        }
    }
    let sources: Vec<(gst_app::AppSrc, gst_app::AppSrc, Clip)> = (0..n)
        .map(|i| {
            let v = pipeline.by_name(&format!("v{i}")).unwrap().downcast::<gst_app::AppSrc>().unwrap();
            let a = pipeline.by_name(&format!("a{i}")).unwrap().downcast::<gst_app::AppSrc>().unwrap();
            (v, a, publisher_clip(cache, i))
        })
        .collect();
    pipeline.set_state(gst::State::Playing).expect("engine pipeline plays");
    let start = Instant::now();
    let mut cpu0 = None;
    let (mut vn, mut an) = (0usize, 0usize);
    let warmup = Duration::from_secs(2);
    while start.elapsed() < warmup + measure {
        let video_due = start + Duration::from_secs(1) * vn as u32 / 30;
        let audio_due = start + Duration::from_millis(20) * an as u32;
        if let Some(w) = video_due.min(audio_due).checked_duration_since(Instant::now()) {
            std::thread::sleep(w);
        }
        if Instant::now() >= video_due {
            for (v, _, c) in &sources {
                let _ = v.push_buffer(gst::Buffer::from_mut_slice(c.video[vn % c.video.len()].clone()));
            }
            vn += 1;
        }
        if Instant::now() >= audio_due {
            for (_, a, c) in &sources {
                let _ = a.push_buffer(gst::Buffer::from_mut_slice(c.audio[an % c.audio.len()].clone()));
            }
            an += 1;
        }
        if cpu0.is_none() && start.elapsed() >= warmup {
            cpu0 = Some((cpu_seconds("self"), Instant::now()));
        }
    }
    let (c0, t0) = cpu0.unwrap_or((0.0, start));
    let percent = (cpu_seconds("self") - c0) / t0.elapsed().as_secs_f64() * 100.0;
    pipeline.set_state(gst::State::Null).expect("engine pipeline stops");
    percent
}

/// Runs one scenario against a fresh server.
pub fn run(scenario: &Scenario, cache: &Path) -> Outcome {
    // With a layout that shows only some, the engine limit is what the visible ones cost.
    let decoded = visible(scenario);
    let engine = engine_limit(cache, decoded, scenario.canvas, scenario.fps, scenario.viewer_codec, scenario.measure.min(Duration::from_secs(8)))
        * scenario.rooms as f64;
    let canvas = format!("{}x{}", scenario.canvas.0, scenario.canvas.1);
    let fps = scenario.fps.to_string();
    let max_tiles = scenario.max_tiles.unwrap_or(plenum::config::DEFAULT_MAX_TILES).to_string();
    let codec = match scenario.viewer_codec {
        Codec::Vp8 => "vp8",
        Codec::H264 => "h264",
    };
    // The load generator's publishers and receivers are anonymous clients, all from one
    // address (which the server would otherwise hold to 5 new sessions a second).
    let server = Server::start_with(&[
        "--ice-address", "127.0.0.1", "--canvas", &canvas, "--fps", &fps, "--max-tiles", &max_tiles, "--viewer-codec", codec,
        "--open-media", "--session-rate", "1000",
    ]);
    let pid = server.pid();
    let moderator = (scenario.layout.is_some() || scenario.presentation).then(|| {
        let (mut c, _, token) = super::ws::Control::join(server.addr, "bench-0", "Bench");
        if let Some(layout) = scenario.layout {
            c.send_json(&serde_json::json!({"type": "set_layout", "layout": layout}));
        }
        if scenario.presentation {
            c.send_json(&serde_json::json!({"type": "set_presentation", "on": true}));
        }
        (c, token)
    });
    // In presentation mode only presenters send: the moderator, who presents, is the marker.
    let presenter = moderator.as_ref().filter(|_| scenario.presentation).map(|(_, token)| token.clone());
    let publishers = Arc::new(Mutex::new(Vec::new()));
    let pacer = Pacer::start(publishers.clone());
    let marker_a = clip(cache, MARKER_A, 0, true);
    let marker_b = clip(cache, MARKER_B, MARKER_TONE, true);
    for room in 0..scenario.rooms {
        for i in 0..scenario.publishers_per_room {
            let c = if room == 0 && i == 0 { marker_a.clone() } else { publisher_clip(cache, i) };
            let token = if room == 0 && i == 0 { presenter.as_deref() } else { None };
            let p = ReplayPublisher::start(server.addr, &format!("bench-{room}"), c, token);
            publishers.lock().unwrap().push(p);
        }
    }
    // The marker's tile share shrinks with the grid; half of it counts as "there".
    let (cols, rows) = plenum::room::layout::grid_shape(decoded);
    let threshold = 0.5 * 0.75 / (cols * rows).max(1) as f64;
    let probe = Viewer::start_probe(server.addr, "bench-0", scenario.viewer_codec, MARKER_B, threshold, f64::from(MARKER_TONE));
    let join = super::wait_for(Duration::from_secs(20), "the probe's first frame", || {
        probe.received.lock().unwrap().first_frame.ok_or("none")
    }) - probe.posted_at;
    let counting: Vec<Viewer> = (0..scenario.counting_receivers)
        .map(|i| {
            let room = match scenario.receiver_queries.get(i % scenario.receiver_queries.len().max(1)) {
                Some(q) if !q.is_empty() => format!("bench-0?{q}"),
                _ => "bench-0".to_string(),
            };
            Viewer::start_counting(server.addr, &room, scenario.viewer_codec)
        })
        .collect();
    std::thread::sleep(Duration::from_secs(3));

    let (cpu0, t0) = (cpu_seconds(&pid.to_string()), Instant::now());
    let bytes0: Vec<u64> = std::iter::once(&probe).chain(&counting).map(|v| v.received.lock().unwrap().bytes).collect();
    let mut flips = Vec::new();
    let mut on_b = false;
    let mut next_flip = t0 + Duration::from_millis(500);
    while t0.elapsed() < scenario.measure {
        std::thread::sleep(next_flip.saturating_duration_since(Instant::now()));
        let publishers = publishers.lock().unwrap();
        let marker = &publishers[0];
        on_b = !on_b;
        let at = marker.switch_to(if on_b { marker_b.clone() } else { marker_a.clone() });
        if on_b {
            flips.push(at);
        }
        next_flip += FLIP_EVERY;
    }
    std::thread::sleep(Duration::from_millis(500));
    let elapsed = t0.elapsed().as_secs_f64();
    let cpu = (cpu_seconds(&pid.to_string()) - cpu0) / elapsed * 100.0;
    let rss = rss_mb(pid);
    let r = probe.received.lock().unwrap();
    let frames: Vec<Instant> = r.frame_times.iter().copied().filter(|t| *t >= t0).collect();
    let intervals: Vec<f64> = frames.windows(2).map(|w| (w[1] - w[0]).as_secs_f64() * 1000.0).collect();
    let mean = intervals.iter().sum::<f64>() / intervals.len().max(1) as f64;
    let jitter = (intervals.iter().map(|i| (i - mean).powi(2)).sum::<f64>() / intervals.len().max(1) as f64).sqrt();
    let audio: Vec<Instant> = r.audio_times.iter().copied().filter(|t| *t >= t0).collect();
    let gaps = audio.windows(2).filter(|w| w[1] - w[0] > Duration::from_millis(60)).count();
    let latency = |onsets: &[Instant]| {
        median(
            flips
                .iter()
                .filter_map(|f| onsets.iter().find(|o| **o >= *f && **o - *f < FLIP_EVERY).map(|o| (*o - *f).as_secs_f64() * 1000.0))
                .collect(),
        )
    };
    let glass = latency(&r.colour_onsets);
    let mouth = latency(&r.tone_onsets);
    drop(r);
    let bytes1: Vec<u64> = std::iter::once(&probe).chain(&counting).map(|v| v.received.lock().unwrap().bytes).collect();
    let kbps = bytes0.iter().zip(&bytes1).map(|(a, b)| (b - a) as f64 * 8.0 / elapsed / 1000.0).sum::<f64>() / bytes0.len() as f64;
    drop(pacer);
    let participants = (scenario.rooms * scenario.publishers_per_room) as f64;
    Outcome {
        scenario: scenario.name.clone(),
        rooms: scenario.rooms,
        publishers: scenario.rooms * scenario.publishers_per_room,
        receivers: 1 + scenario.counting_receivers,
        probe_fps: frames.len() as f64 / elapsed,
        frame_interval_jitter_ms: jitter,
        audio_gaps: gaps,
        mouth_to_ear_ms: mouth,
        glass_to_glass_ms: glass,
        join_to_first_frame_ms: join.as_secs_f64() * 1000.0,
        downstream_kbps_per_receiver: kbps,
        server_cpu_percent: cpu,
        cpu_percent_per_participant: cpu / participants,
        server_rss_mb: rss,
        rss_mb_per_participant: rss / participants,
        engine_limit_cpu_percent: engine,
        cpu_ratio_to_engine_limit: if engine > 0.0 { cpu / engine } else { 0.0 },
    }
}

fn ms(v: Option<f64>) -> String {
    v.map(|v| format!("{v:.0}")).unwrap_or_else(|| "–".into())
}

/// Writes `results.json`, `results.md` and `results.svg` into `dir`. Scenarios of an earlier
/// run that this run did not repeat are kept (a partial run updates its own rows).
pub fn report(dir: &Path, machine: &str, outcomes: &[Outcome]) -> PathBuf {
    std::fs::create_dir_all(dir).expect("results directory");
    let earlier: Vec<serde_json::Value> = std::fs::read_to_string(dir.join("results.json"))
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .and_then(|v| v["results"].as_array().cloned())
        .unwrap_or_default();
    let mut merged: Vec<Outcome> = Vec::new();
    for old in earlier {
        let name = old["scenario"].as_str().unwrap_or_default().to_string();
        if outcomes.iter().any(|o| o.scenario == name) {
            continue;
        }
        if let Ok(o) = serde_json::from_value::<Outcome>(old) {
            merged.push(o);
        }
    }
    merged.extend(outcomes.iter().cloned());
    // One room growing first, then its variants, several rooms, and large audiences.
    merged.sort_by_key(|o| (o.receivers > 1, o.rooms > 1, !is_plain_room(o), o.publishers, o.scenario.clone()));
    let outcomes = &merged[..];
    let json = serde_json::json!({ "machine": machine, "results": outcomes });
    std::fs::write(dir.join("results.json"), serde_json::to_string_pretty(&json).expect("json")).expect("write json");
    let mut md = format!(
        "Measured on {machine}.\n\n| scenario | publishers | receivers | fps at probe | jitter ms | audio gaps | mouth-to-ear ms | glass-to-glass ms | join ms | kbps/receiver | server CPU % | CPU %/participant | RSS MB | MB/participant | engine limit CPU % | ratio |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n"
    );
    for o in outcomes {
        md.push_str(&format!(
            "| {} | {} | {} | {:.1} | {:.1} | {} | {} | {} | {:.0} | {:.0} | {:.0} | {:.1} | {:.0} | {:.1} | {:.0} | {:.2} |\n",
            o.scenario, o.publishers, o.receivers, o.probe_fps, o.frame_interval_jitter_ms, o.audio_gaps, ms(o.mouth_to_ear_ms),
            ms(o.glass_to_glass_ms), o.join_to_first_frame_ms, o.downstream_kbps_per_receiver, o.server_cpu_percent,
            o.cpu_percent_per_participant, o.server_rss_mb, o.rss_mb_per_participant, o.engine_limit_cpu_percent,
            o.cpu_ratio_to_engine_limit
        ));
    }
    std::fs::write(dir.join("results.md"), &md).expect("write md");
    std::fs::write(dir.join("results.svg"), svg(outcomes)).expect("write svg");
    dir.join("results.md")
}

/// One room, everyone visible, the default codec: the scenarios named `n<N>`.
fn is_plain_room(o: &Outcome) -> bool {
    o.scenario.strip_prefix('n').is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// CPU (and engine limit) and latency against the number of publishers, one room scenarios.
fn svg(outcomes: &[Outcome]) -> String {
    let mut points: Vec<&Outcome> = outcomes.iter().filter(|o| is_plain_room(o)).collect();
    points.sort_by_key(|o| o.publishers);
    let (w, h, pad) = (640.0, 360.0, 50.0);
    let max_n = points.iter().map(|o| o.publishers).max().unwrap_or(1).max(1) as f64;
    let max_cpu = points.iter().map(|o| o.server_cpu_percent.max(o.engine_limit_cpu_percent)).fold(100.0, f64::max);
    let max_lat = points.iter().flat_map(|o| [o.glass_to_glass_ms, o.mouth_to_ear_ms]).flatten().fold(200.0, f64::max);
    let x = |n: usize| pad + (n as f64 / max_n) * (w - 2.0 * pad);
    let y = |v: f64, max: f64| h - pad - (v / max) * (h - 2.0 * pad);
    let line = |f: &dyn Fn(&Outcome) -> Option<f64>, max: f64| {
        points.iter().filter_map(|o| f(o).map(|v| format!("{:.1},{:.1}", x(o.publishers), y(v, max)))).collect::<Vec<_>>().join(" ")
    };
    format!(
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="12">
<rect width="100%" height="100%" fill="white"/>
<line x1="{pad}" y1="{b}" x2="{r}" y2="{b}" stroke="black"/><line x1="{pad}" y1="{pad}" x2="{pad}" y2="{b}" stroke="black"/>
<text x="{cx}" y="{tx}" text-anchor="middle">publishers in one room (max {max_n})</text>
<text x="10" y="20">CPU % of one core (max {max_cpu:.0}) / latency ms (max {max_lat:.0})</text>
<polyline fill="none" stroke="#d62728" stroke-width="2" points="{cpu}"/>
<polyline fill="none" stroke="#d62728" stroke-dasharray="4" points="{engine}"/>
<polyline fill="none" stroke="#1f77b4" stroke-width="2" points="{glass}"/>
<polyline fill="none" stroke="#2ca02c" stroke-width="2" points="{mouth}"/>
<text x="{r}" y="40" text-anchor="end" fill="#d62728">server CPU (dashed: engine limit)</text>
<text x="{r}" y="56" text-anchor="end" fill="#1f77b4">glass-to-glass ms</text>
<text x="{r}" y="72" text-anchor="end" fill="#2ca02c">mouth-to-ear ms</text>
</svg>
"##,
        b = h - pad,
        r = w - pad,
        cx = w / 2.0,
        tx = h - 15.0,
        cpu = line(&|o| Some(o.server_cpu_percent), max_cpu),
        engine = line(&|o| Some(o.engine_limit_cpu_percent), max_cpu),
        glass = line(&|o| o.glass_to_glass_ms, max_lat),
        mouth = line(&|o| o.mouth_to_ear_ms, max_lat),
    )
}
