//! Phone callers (`--sip-listen`): mouth-to-ear latency from one caller to another through the
//! room (each phone of the bench's own, G.711 A-law, a 40 ms jitterbuffer like a desk phone's),
//! measured from the sample the speaking phone starts its tone on to the 20 ms in which the
//! listening phone first hears it, ten times; and the server's CPU per caller (ten callers
//! speaking at once, against the same room without them). Part of `./dev bench` (the `phone`
//! rows); writes `phone.{json,md}`.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::bench::cpu_seconds;
use super::client::{Publisher, Viewer, GREEN};
use super::phone::Phone;
use super::server::{Server, OPEN_TEST_ARGS};
use super::ws::Control;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PhoneFigures {
    /// From the speaking phone's first sample of tone to the listening phone hearing it.
    pub mouth_to_ear_ms: Vec<f64>,
    pub callers: usize,
    /// The server's CPU (% of one core) in the room with a camera, a viewer and two silent
    /// callers, then with the callers speaking as well.
    pub cpu_without_percent: f64,
    pub cpu_with_percent: f64,
}

const ROUNDS: usize = 10;
const CALLERS: usize = 10;
const SECRET: &str = "the bench's dial-in secret";
/// How long CPU is measured each time.
const MEASURE: Duration = Duration::from_secs(15);

/// How many callers the room lists (waits up to 10 s for `wanted`).
fn phones_listed(moderator: &mut Control, wanted: usize) -> usize {
    let start = Instant::now();
    let mut last = 0;
    while start.elapsed() < Duration::from_secs(10) && last < wanted {
        if let Some(v) = moderator.next(Duration::from_millis(500)) {
            if v["type"] == "participants" {
                last = v["participants"].as_array().map_or(0, |l| l.iter().filter(|p| p["phone"] == true).count());
            }
        }
    }
    last
}

fn cpu_over(server: &Server, over: Duration) -> f64 {
    let pid = server.pid().to_string();
    let (before, at) = (cpu_seconds(&pid), Instant::now());
    std::thread::sleep(over);
    100.0 * (cpu_seconds(&pid) - before) / at.elapsed().as_secs_f64()
}

pub fn phones() -> Option<PhoneFigures> {
    let sip = std::net::UdpSocket::bind("127.0.0.1:0").and_then(|s| s.local_addr()).ok()?.port();
    let listen = format!("127.0.0.1:{sip}");
    let server = Server::start_with(&[OPEN_TEST_ARGS, &["--sip-listen", &listen, "--dial-in-secret", SECRET]].concat());
    let room = "bench-phone";
    let (_moderator, _, _) = Control::join_first(server.addr, room, "Ada");
    let info: serde_json::Value = serde_json::from_str(&server.get(&format!("/api/rooms/{room}")).body).ok()?;
    let pin = info["dial_in"]["pin"].as_str()?.to_string();
    let _camera = Publisher::start(server.addr, room, GREEN, 600);
    let _viewer = Viewer::start(server.addr, room, None);

    let mut speaker = Phone::call(sip, "0301234501", 440.0);
    speaker.keys(&pin);
    let mut listener = Phone::call(sip, "0301234502", 1700.0);
    listener.keys(&pin);
    std::thread::sleep(Duration::from_secs(3));
    let mut mouth_to_ear_ms = Vec::new();
    for _ in 0..ROUNDS {
        let started = Instant::now();
        speaker.speak(true);
        let deadline = started + Duration::from_secs(3);
        while Instant::now() < deadline {
            if let Some(at) = listener.heard_from(started, 440.0, 0.05) {
                mouth_to_ear_ms.push(at.duration_since(started).as_secs_f64() * 1000.0);
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        speaker.speak(false);
        std::thread::sleep(Duration::from_millis(1200));
    }
    speaker.speak(false);

    // The CPU of the room as it is (a camera, a viewer, two silent callers), then with ten
    // more callers speaking.
    let cpu_without_percent = cpu_over(&server, MEASURE);
    let mut callers = Vec::new();
    for i in 0..CALLERS {
        let mut phone = Phone::call(sip, &format!("03012345{:02}", 10 + i), 300.0 + 90.0 * i as f64);
        phone.keys(&pin);
        phone.speak(true);
        callers.push(phone);
        // Within the per-source allowance of new calls.
        std::thread::sleep(Duration::from_millis(600));
    }
    // A fresh connection counts them (one left unread this long is cut off as too slow).
    let (mut counter, _, _) = Control::join(server.addr, room, "Zählung");
    let listed = phones_listed(&mut counter, CALLERS + 2);
    assert_eq!(listed, CALLERS + 2, "every caller is in the room");
    std::thread::sleep(Duration::from_secs(2));
    let cpu_with_percent = cpu_over(&server, MEASURE);
    for phone in callers {
        phone.hang_up();
    }
    speaker.hang_up();
    listener.hang_up();
    Some(PhoneFigures { mouth_to_ear_ms, callers: CALLERS, cpu_without_percent, cpu_with_percent })
}

pub fn report(dir: &Path, machine: &str, f: &PhoneFigures) -> PathBuf {
    std::fs::create_dir_all(dir).expect("results directory");
    let json = serde_json::json!({ "machine": machine, "phone": f });
    std::fs::write(dir.join("phone.json"), serde_json::to_string_pretty(&json).expect("json")).expect("write json");
    let mut sorted = f.mouth_to_ear_ms.clone();
    sorted.sort_by(|a, b| a.total_cmp(b));
    let ms = |v: Option<&f64>| v.map_or("—".to_string(), |v| format!("{v:.0} ms"));
    let per_caller = (f.cpu_with_percent - f.cpu_without_percent) / f.callers as f64;
    let md = format!(
        "Phone callers ({machine}; canvas 640x360@15; G.711 A-law, 20 ms packets).\n\n\
         | what | measured |\n|---|---|\n\
         | mouth to ear, caller to caller through the room ({} of {ROUNDS} heard) | median {}, best {}, worst {} |\n\
         | server CPU, a room with a camera, a viewer and two silent callers | {:.1} % of a core |\n\
         | the same with {} callers speaking | {:.1} % of a core |\n\
         | per caller | {per_caller:.1} % of a core |\n",
        sorted.len(),
        ms(sorted.get(sorted.len() / 2)),
        ms(sorted.first()),
        ms(sorted.last()),
        f.cpu_without_percent,
        f.callers,
        f.cpu_with_percent,
    );
    std::fs::write(dir.join("phone.md"), &md).expect("write md");
    dir.join("phone.md")
}
