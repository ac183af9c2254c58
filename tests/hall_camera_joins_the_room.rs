//! The hall camera: an RTSP IP camera (GStreamer's RTSP server, started by the test) serving
//! blue and 880 Hz is added by the moderator's script with the moderator key. It appears as a
//! named external publisher in everyone's list, its colour in the picture and its tone in the
//! mix. The camera hangs (stopped with its connection open), then dies: the list says it is
//! away and its tile shows its name instead of its picture; started again, it comes back by
//! itself. A guest cannot add one, bad URLs get a
//! clear 400, and the moderator ends it.

mod support;

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::analysis::{coverage, tone_level, ABSENT, PRESENT, TOLERANCE, TONE_ABSENT, TONE_PRESENT, WINDOW};
use support::client::{self, Publisher, Source, Viewer, BLUE, RED};
use support::rtsp_camera::RtspCamera;
use support::server::Server;
use support::ws::Control;

const ROOM: &str = "buergerversammlung";
const CAMERA_TONE: f64 = 880.0;

/// Waits for a `participants` message whose hall camera entry passes `check`.
fn camera_listed(c: &mut Control, within: Duration, what: &str, check: impl Fn(&Value) -> bool) -> Value {
    let start = Instant::now();
    let mut seen = Vec::new();
    while start.elapsed() < within {
        let Some(v) = c.next(within.saturating_sub(start.elapsed())) else { continue };
        if v["type"] != "participants" {
            continue;
        }
        let cameras: Vec<&Value> = v["external"].as_array().into_iter().flatten().filter(|e| e["access"] == "camera").collect();
        if let Some(found) = cameras.iter().find(|e| check(e)) {
            return (*found).clone();
        }
        seen.push(json!(cameras).to_string());
    }
    panic!("{what}: not within {within:?}; the list said {seen:?}");
}

/// The camera's colour and tone in what `viewer` gets: `Ok` when `present` holds for both.
fn camera_in(viewer: &Viewer, present: bool) -> Result<(), String> {
    let frame = viewer.frame().ok_or("no picture")?;
    let sound = viewer.audio(WINDOW).ok_or("no sound")?;
    let (blue, red) = (coverage(&frame, BLUE, TOLERANCE), coverage(&frame, RED, TOLERANCE));
    let (tone, other) = (tone_level(&sound, CAMERA_TONE), tone_level(&sound, 440.0));
    let camera = if present { blue >= PRESENT && tone >= TONE_PRESENT } else { blue <= ABSENT && tone <= TONE_ABSENT };
    if camera && red >= PRESENT && other >= TONE_PRESENT {
        Ok(())
    } else {
        Err(format!("blue {blue:.3}, red {red:.3}, {CAMERA_TONE} Hz {tone:.3}, 440 Hz {other:.3}"))
    }
}

fn api(server: &Server, method: &str, path: &str, key: Option<&str>, body: &Value) -> (u16, Value) {
    let auth = key.map(|k| format!("Bearer {k}"));
    let mut headers = vec![("Content-Type", "application/json")];
    if let Some(a) = &auth {
        headers.push(("Authorization", a.as_str()));
    }
    let body = if body.is_null() { Vec::new() } else { body.to_string().into_bytes() };
    let r = server.request(method, path, &headers, &body);
    let text = r.body.clone();
    (r.status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

#[test]
fn a_hall_camera_joins_drops_comes_back_and_leaves() {
    client::init();
    let mut camera = RtspCamera::start(BLUE, CAMERA_TONE as u32);
    let server = Server::start();
    let (ada, ada_token, key) = Control::join_first(server.addr, ROOM, "Ada");
    let (mut bo, _, bo_token) = Control::join(server.addr, ROOM, "Bo");
    let _ada_camera = Publisher::start_as(server.addr, ROOM, Source::new(RED, 440), Some(&ada_token));
    let viewer = Viewer::start(server.addr, ROOM, Some(&bo_token));
    let cameras = format!("/api/rooms/{ROOM}/cameras");

    // Refused: no key, a guest, URLs that are no camera.
    let (status, _) = api(&server, "POST", &cameras, None, &json!({"url": camera.url(), "name": "Saal"}));
    assert_eq!(status, 401, "without the moderator key");
    bo.send_json(&json!({"type": "add_camera", "url": camera.url(), "name": "Saal"}));
    let refused = bo.expect_type("error", Duration::from_secs(5));
    assert_eq!(refused["code"], "forbidden", "a guest adds no camera: {refused}");
    for (url, why) in [("http://127.0.0.1/cam", "rtsp:// or srt://"), ("srt://127.0.0.1", "port"), ("rtsp://", "host")] {
        let (status, body) = api(&server, "POST", &cameras, Some(&key), &json!({"url": url, "name": "Saal"}));
        assert_eq!(status, 400, "{url}: {body}");
        assert!(body.as_str().is_some_and(|e| e.trim().lines().count() == 1 && e.contains(why)), "{url}: a one-line reason naming {why:?}: {body}");
    }
    let (status, body) = api(&server, "POST", &cameras, Some(&key), &json!({"url": camera.url()}));
    assert_eq!(status, 400, "a camera needs a name: {body}");

    // Added by the moderator's script: listed for everyone, seen and heard.
    let (status, body) = api(&server, "POST", &cameras, Some(&key), &json!({"url": camera.url(), "name": "Saal"}));
    assert_eq!(status, 201, "{body}");
    let id = body["id"].as_str().expect("the camera's id").to_string();
    let added = Instant::now();
    let listed = camera_listed(&mut bo, Duration::from_secs(5), "the camera in the guest's list", |e| e["label"] == "Saal");
    assert_eq!((listed["id"].as_str(), listed["kind"].as_str()), (Some(id.as_str()), Some("publisher")), "{listed}");
    camera_listed(&mut bo, Duration::from_secs(15), "the camera live in the list", |e| e["state"]["state"] == "live");
    support::wait_for(Duration::from_secs(15), "the camera's colour and tone in the room", || camera_in(&viewer, true));
    eprintln!("camera added → seen and heard: {:.1} s", added.elapsed().as_secs_f64());
    let (status, body) = api(&server, "GET", &cameras, Some(&key), &Value::Null);
    assert_eq!(status, 200);
    assert_eq!(body["cameras"][0]["state"]["state"], "live", "{body}");
    assert!(!body.to_string().contains("rtsp://"), "the list names no camera URL (it may carry a password): {body}");

    // The camera hangs (its connection stays open, nothing comes): away in the list, its tile
    // shows its name, the room goes on.
    camera.freeze();
    let lost = Instant::now();
    camera_listed(&mut bo, Duration::from_secs(15), "the hanging camera away in the list", |e| e["state"]["state"] == "retrying");
    eprintln!("camera hangs → listed as away: {:.1} s", lost.elapsed().as_secs_f64());
    support::wait_for(Duration::from_secs(5), "the camera's picture and tone gone", || camera_in(&viewer, false));
    let (frames, gap) = viewer.frames_since(lost);
    assert!(frames > 0 && gap < Duration::from_secs(1), "the room's picture goes on without the camera: {frames} frames, longest gap {gap:?}");
    // Then it loses power.
    camera.kill();

    // Power back: the camera returns by itself.
    camera.restart();
    let back = Instant::now();
    camera_listed(&mut bo, Duration::from_secs(40), "the camera live again", |e| e["state"]["state"] == "live");
    support::wait_for(Duration::from_secs(10), "the camera's colour and tone back", || camera_in(&viewer, true));
    eprintln!("camera restarted → back in the room: {:.1} s", back.elapsed().as_secs_f64());

    // Ended by the moderator: off the list and out of the picture; a second end is a 404.
    let (status, _) = api(&server, "DELETE", &format!("{cameras}/{id}"), Some(&key), &Value::Null);
    assert_eq!(status, 200);
    support::wait_for(Duration::from_secs(10), "the camera out of the room", || camera_in(&viewer, false));
    let (status, body) = api(&server, "GET", &cameras, Some(&key), &Value::Null);
    assert_eq!((status, body["cameras"].as_array().map(Vec::len)), (200, Some(0)), "{body}");
    let (status, _) = api(&server, "DELETE", &format!("{cameras}/{id}"), Some(&key), &Value::Null);
    assert_eq!(status, 404, "a camera that is gone");
    drop(ada);
}

/// An encoder that sends over SRT (ffmpeg, listening, as OBS or a hardware encoder can):
/// Plenum calls it, with a stream id, and the room sees and hears it (a camera that does not
/// answer is tried again while the room goes on). When everyone has left, the camera ends
/// with the meeting.
#[test]
fn an_srt_encoder_is_a_hall_camera_too() {
    client::init();
    let port = std::net::UdpSocket::bind("127.0.0.1:0").and_then(|s| s.local_addr()).expect("a free port").port();
    let encoder = std::process::Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-re"])
        .args(["-f", "lavfi", "-i", "color=c=0x283ce6:s=320x240:r=15"])
        .args(["-f", "lavfi", "-i", "aevalsrc=0.5*sin(880*2*PI*t):s=48000"])
        .args(["-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency", "-g", "15", "-pix_fmt", "yuv420p"])
        .args(["-c:a", "aac", "-f", "mpegts"])
        .arg(format!("srt://127.0.0.1:{port}?mode=listener&streamid=saal"))
        .stdin(std::process::Stdio::null())
        .spawn()
        .expect("ffmpeg runs (./dev test installs it)");
    let _encoder = KilledOnDrop(encoder);
    let server = Server::start();
    let (ada, ada_token, key) = Control::join_first(server.addr, ROOM, "Ada");
    let (bo, _, bo_token) = Control::join(server.addr, ROOM, "Bo");
    let ada_camera = Publisher::start_as(server.addr, ROOM, Source::new(RED, 440), Some(&ada_token));
    let viewer = Viewer::start(server.addr, ROOM, Some(&bo_token));
    // A camera that does not answer (nobody on its port): tried again and again, while the
    // room goes on as before.
    let silent_port = std::net::UdpSocket::bind("127.0.0.1:0").and_then(|s| s.local_addr()).expect("a free port").port();
    let asked = Instant::now();
    let (status, body) = api(&server, "POST", &format!("/api/rooms/{ROOM}/cameras"), Some(&key), &json!({"url": format!("srt://127.0.0.1:{silent_port}"), "name": "Nirgends"}));
    assert_eq!(status, 201, "{body}");
    assert!(asked.elapsed() < Duration::from_secs(1), "adding a camera does not wait for it: {:?}", asked.elapsed());
    let silent_id = body["id"].as_str().expect("id").to_string();
    support::wait_for(Duration::from_secs(20), "the silent camera listed as retrying", || {
        let (_, list) = api(&server, "GET", &format!("/api/rooms/{ROOM}/cameras"), Some(&key), &Value::Null);
        if list["cameras"][0]["state"]["state"] == "retrying" { Ok(()) } else { Err(list.to_string()) }
    });
    let (frames, gap) = viewer.frames_since(asked);
    assert!(frames > 0 && gap < Duration::from_secs(1), "the room goes on while a camera does not answer: {frames} frames, longest gap {gap:?}");
    let (status, _) = api(&server, "DELETE", &format!("/api/rooms/{ROOM}/cameras/{silent_id}"), Some(&key), &Value::Null);
    assert_eq!(status, 200);

    let url = format!("srt://127.0.0.1:{port}?streamid=saal");
    let (status, body) = api(&server, "POST", &format!("/api/rooms/{ROOM}/cameras"), Some(&key), &json!({"url": url, "name": "Podium"}));
    assert_eq!(status, 201, "{body}");
    let added = Instant::now();
    support::wait_for(Duration::from_secs(20), "the SRT camera's colour and tone in the room", || camera_in(&viewer, true));
    eprintln!("SRT camera added → seen and heard: {:.1} s", added.elapsed().as_secs_f64());
    // Everyone leaves: the camera ends with the meeting and does not keep the room open.
    drop((ada, bo, ada_camera, viewer));
    let left = Instant::now();
    support::wait_for(Duration::from_secs(30), "the empty room closed, camera and all", || {
        let body = server.get(&format!("/api/rooms/{ROOM}")).body;
        if body.contains("\"live\":false") { Ok(()) } else { Err(body) }
    });
    eprintln!("last participant gone → room closed: {:.1} s", left.elapsed().as_secs_f64());
}

/// A child process that ends with the test, also when the test fails (ffmpeg with `-re`
/// would send for ever).
struct KilledOnDrop(std::process::Child);

impl Drop for KilledOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
