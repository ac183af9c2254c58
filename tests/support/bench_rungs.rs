//! What each rung of the encoding ladder costs: the scale and encode of one rung from a
//! camera-like 720p30 canvas (a moving ball under snow, so the encoder must fill its bitrate),
//! as one local pipeline per rung, measured against the same pipeline without the rung.
//! Part of `./dev bench` (the `rungs` row set); writes `rungs.{json,md}` beside the results.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use gst::prelude::*;
use serde::{Deserialize, Serialize};

use super::bench::cpu_seconds;

/// One rung's cost.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RungCost {
    pub profile: String,
    pub rung: String,
    pub width: u32,
    pub height: u32,
    pub fps: u32,
    /// The bitrate the profile asks for, if it says.
    pub target_kbps: Option<u32>,
    /// What the encoder wrote, measured.
    pub sent_kbps: f64,
    /// CPU of scaling and encoding the rung, in percent of one core in real time.
    pub cpu_percent: f64,
}

const CANVAS: (u32, u32, u32) = (1280, 720, 30);

/// The camera-like canvas every rung is made from (ends in a queue the rung links to).
fn canvas() -> String {
    let (w, h, fps) = CANVAS;
    format!(
        "videotestsrc is-live=true pattern=ball ! video/x-raw,format=I420,width={w},height={h},framerate={fps}/1 ! canvas.sink_0 \
         videotestsrc is-live=true pattern=snow ! video/x-raw,format=I420,width={w},height={h},framerate={fps}/1 ! canvas.sink_1 \
         compositor name=canvas sink_1::alpha=0.15 ! video/x-raw,format=I420,width={w},height={h},framerate={fps}/1 ! queue max-size-buffers=3 leaky=downstream "
    )
}

/// Runs `canvas ! chain ! fakesink` for `measure` after a warm-up: (CPU % of one core, kbit/s
/// that reached the sink).
fn run(chain: &str, measure: Duration) -> (f64, f64) {
    let desc = format!("{}! {chain} ! fakesink name=out sync=false", canvas());
    let pipeline = gst::parse::launch(&desc).expect("rung pipeline parses").downcast::<gst::Pipeline>().expect("a pipeline");
    let bytes = Arc::new(AtomicU64::new(0));
    let counted = bytes.clone();
    let sink = pipeline.by_name("out").expect("fakesink");
    sink.static_pad("sink").expect("sink pad").add_probe(gst::PadProbeType::BUFFER, move |_, info| {
        if let Some(gst::PadProbeData::Buffer(b)) = &info.data {
            counted.fetch_add(b.size() as u64, Ordering::Relaxed);
        }
        gst::PadProbeReturn::Ok
    });
    pipeline.set_state(gst::State::Playing).expect("rung pipeline plays");
    std::thread::sleep(Duration::from_secs(2));
    let (cpu0, bytes0, t0) = (cpu_seconds("self"), bytes.load(Ordering::Relaxed), Instant::now());
    std::thread::sleep(measure);
    let secs = t0.elapsed().as_secs_f64();
    let cpu = (cpu_seconds("self") - cpu0) / secs * 100.0;
    let kbps = (bytes.load(Ordering::Relaxed) - bytes0) as f64 * 8.0 / 1000.0 / secs;
    pipeline.set_state(gst::State::Null).expect("rung pipeline stops");
    (cpu, kbps)
}

/// Every rung of the default H.264 and VP8 profiles, `measure` each.
pub fn rung_costs(measure: Duration) -> Vec<RungCost> {
    let profiles = plenum::profiles::Profiles::load(None).expect("built-in profiles");
    let (w, h, fps) = CANVAS;
    let (baseline, _) = run("identity", measure);
    let mut costs = Vec::new();
    for (name, codec) in [
        (plenum::config::DEFAULT_H264_PROFILE, plenum::profiles::VideoCodec::H264),
        (plenum::config::DEFAULT_VP8_PROFILE, plenum::profiles::VideoCodec::Vp8),
    ] {
        let profile = profiles.select(name, codec).expect("default profile");
        let rungs = plenum::media::ladder::resolve(&profile, plenum::room::layout::Size { width: w, height: h }, fps);
        for (i, rung) in rungs.iter().enumerate() {
            let scale = if i == 0 {
                String::new()
            } else {
                format!(
                    "videoscale ! videorate drop-only=true ! video/x-raw,width={},height={},framerate={}/1,pixel-aspect-ratio=1/1 ! ",
                    rung.size.width, rung.size.height, rung.fps
                )
            };
            let (cpu, kbps) = run(&format!("{scale}{}", profile.encoder_for(rung.kbps)), measure);
            let cost = RungCost {
                profile: name.to_string(),
                rung: rung.name.clone(),
                width: rung.size.width,
                height: rung.size.height,
                fps: rung.fps,
                target_kbps: rung.kbps,
                sent_kbps: kbps,
                cpu_percent: (cpu - baseline).max(0.0),
            };
            eprintln!("{cost:?}");
            costs.push(cost);
        }
    }
    costs
}

/// Writes `rungs.json` and `rungs.md` into `dir`.
pub fn report(dir: &Path, machine: &str, costs: &[RungCost]) -> PathBuf {
    std::fs::create_dir_all(dir).expect("results directory");
    let json = serde_json::json!({ "machine": machine, "rungs": costs });
    std::fs::write(dir.join("rungs.json"), serde_json::to_string_pretty(&json).expect("json")).expect("write json");
    let mut md = format!(
        "Scale + encode of one rung from a camera-like 1280x720@30 canvas, measured on {machine}.\n\n\
         | profile | rung | size | fps | asked kbit/s | sent kbit/s | CPU % of a core |\n|---|---|---|---|---|---|---|\n"
    );
    for c in costs {
        md.push_str(&format!(
            "| {} | {} | {}x{} | {} | {} | {:.0} | {:.1} |\n",
            c.profile,
            c.rung,
            c.width,
            c.height,
            c.fps,
            c.target_kbps.map_or("profile's own".to_string(), |k| k.to_string()),
            c.sent_kbps,
            c.cpu_percent
        ));
    }
    std::fs::write(dir.join("rungs.md"), &md).expect("write md");
    dir.join("rungs.md")
}
