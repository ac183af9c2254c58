//! How fast a receiver's picture follows its link, on the default canvas (1280x720@30, rungs
//! 720p/360p/180p): a receiver on loopback whose downlink `tc` caps at 1000, 500, 250 and
//! 100 kbit/s in turn (lifted in between), in a room of three camera-like publishers. Per cap:
//! the time to the rung that fits (or to sound only), what it gets there, and the time back
//! to the top once the cap is lifted. Once as a browser-like receiver (transport-wide feedback,
//! NACK), once as a player with receiver reports only; both get H.264, as browsers do. Part of `./dev bench` (the `adapt`
//! rows); needs root for `tc`, skipped otherwise. Writes `adapt.{json,md}`.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::client::{Publisher, Source, Viewer, BLUE, GREEN, RED};
use super::link_watch::{back_to, height, mark, reaches, window};
use super::server::Server;
use super::shaper::{Shaper, PORTS};
use super::wait_for;

/// One cap's figures.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Adaptation {
    pub receiver: String,
    pub cap_kbit: u32,
    /// The rung it settled on, by picture height; `None`: sound only.
    pub rung_height: Option<i32>,
    pub adapt_s: f64,
    /// Over the 10 s after adapting.
    pub fps: f64,
    pub longest_freeze_s: f64,
    pub audio_packets: f64,
    pub recover_s: f64,
}

const TOP: i32 = 720;
/// Each cap and where the default ladder should put a receiver behind it.
const CAPS: [(u32, Option<i32>); 4] = [(1000, Some(360)), (500, Some(180)), (250, Some(180)), (100, None)];
const ROOM: &str = "adapt";

fn is_root() -> bool {
    std::process::Command::new("id").arg("-u").output().is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// Waits until `v` has decoded nothing for two seconds: how long after `since` its last frame came.
fn to_sound_only(v: &Viewer, since: Instant) -> Duration {
    wait_for(Duration::from_secs(20), "sound only", || {
        let r = v.received.lock().unwrap();
        let last = r.frame_times.last().copied().unwrap_or(since);
        if last.elapsed() >= Duration::from_secs(2) { Ok(last.saturating_duration_since(since)) } else { Err("still frames".to_string()) }
    })
}

fn one_receiver(receiver: &str, reports_only: bool) -> Vec<Adaptation> {
    let server = Server::start_with(&["--ice-address", "127.0.0.1", "--canvas", "1280x720", "--fps", "30", "--open-media", "--session-rate", "1000"]);
    let _cameras: Vec<Publisher> =
        [RED, GREEN, BLUE].iter().zip([440, 660, 880]).map(|(c, t)| Publisher::start_source(server.addr, ROOM, Source::camera(*c, t))).collect();
    let shaper = Shaper::install();
    let weak = Viewer::start_on_ports_h264(server.addr, ROOM, PORTS, !reports_only);
    reaches(&weak, TOP, Duration::from_secs(20), "the receiver on the top rung");
    std::thread::sleep(Duration::from_secs(3));
    let mut rows = Vec::new();
    for (cap, expected) in CAPS {
        let capped = Instant::now();
        shaper.limit(cap);
        let adapted = match expected {
            Some(h) => reaches(&weak, h, Duration::from_secs(30), &format!("the rung that fits {cap} kbit/s")),
            None => to_sound_only(&weak, capped),
        };
        let from = mark(&weak);
        std::thread::sleep(Duration::from_secs(10));
        let got = window(&weak, &from);
        let settled_on = expected.and(height(&weak));
        let lifted = Instant::now();
        shaper.lift();
        let recovered = back_to(&weak, TOP, lifted, Duration::from_secs(40), "back on the top rung");
        let row = Adaptation {
            receiver: receiver.to_string(),
            cap_kbit: cap,
            rung_height: settled_on,
            adapt_s: adapted.as_secs_f64(),
            fps: got.fps,
            longest_freeze_s: got.longest_freeze.as_secs_f64(),
            audio_packets: got.audio,
            recover_s: recovered.as_secs_f64(),
        };
        eprintln!("{row:?}");
        rows.push(row);
        std::thread::sleep(Duration::from_secs(3));
    }
    rows
}

/// Both receivers through every cap; empty (with a message) when not root.
pub fn adaptations() -> Vec<Adaptation> {
    if !is_root() {
        eprintln!("adapt: skipped, shaping loopback with tc needs root");
        return Vec::new();
    }
    let mut rows = one_receiver("feedback + NACK (as browsers)", false);
    rows.extend(one_receiver("receiver reports only", true));
    rows
}

/// Writes `adapt.json` and `adapt.md` into `dir`.
pub fn report(dir: &Path, machine: &str, rows: &[Adaptation]) -> PathBuf {
    std::fs::create_dir_all(dir).expect("results directory");
    let json = serde_json::json!({ "machine": machine, "adapt": rows });
    std::fs::write(dir.join("adapt.json"), serde_json::to_string_pretty(&json).expect("json")).expect("write json");
    let mut md = format!(
        "A receiver's downlink capped on loopback (canvas 1280x720@30, three camera-like publishers), measured on {machine}.\n\n\
         | receiver | cap kbit/s | settles on | after s | fps then | longest freeze s | audio packets | back on top s |\n|---|---|---|---|---|---|---|---|\n"
    );
    for r in rows {
        md.push_str(&format!(
            "| {} | {} | {} | {:.1} | {} | {} | {:.1} % | {:.1} |\n",
            r.receiver,
            r.cap_kbit,
            r.rung_height.map_or("sound only".to_string(), |h| format!("{h}p")),
            r.adapt_s,
            if r.rung_height.is_some() { format!("{:.1}", r.fps) } else { "—".into() },
            if r.rung_height.is_some() { format!("{:.2}", r.longest_freeze_s) } else { "—".into() },
            r.audio_packets * 100.0,
            r.recover_s
        ));
    }
    std::fs::write(dir.join("adapt.md"), &md).expect("write md");
    dir.join("adapt.md")
}
