//! A moderator records the room to a file on the server: everyone is told while it runs (also
//! who joins later, and the pre-join page); a killed server leaves a file that plays up to its
//! last seconds; only moderators (or a script with the moderator key) start, stop, list and
//! download. The files are read by Debian's ffmpeg, not by Plenum.

mod support;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::analysis::{coverage, tone_level, PRESENT, TOLERANCE, TONE_PRESENT, WINDOW};
use support::client::{self, Publisher, Source, GREEN, RED};
use support::ffmpeg;
use support::server::{Server, TEST_ARGS};
use support::ws::Control;

const T: Duration = Duration::from_secs(10);

/// A recordings directory of the test's own, removed afterwards (also on failure).
struct Dir(PathBuf);

impl Dir {
    fn new(tag: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("plenum-recordings-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        Self(dir)
    }

    fn files(&self) -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(&self.0).map(|d| d.filter_map(Result::ok).map(|e| e.path()).collect()).unwrap_or_default();
        files.sort();
        files
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn server(dir: &Dir) -> Server {
    client::init();
    let mut args: Vec<&str> = TEST_ARGS.to_vec();
    let path = dir.0.to_str().expect("a UTF-8 temp dir");
    args.extend(["--recordings-dir", path]);
    Server::start_with(&args)
}

/// Waits until both participants publish (their tiles are in the picture).
fn both_publishing(c: &mut Control) {
    let start = Instant::now();
    while start.elapsed() < T {
        if let Some(v) = c.next(T.saturating_sub(start.elapsed())) {
            let list = v["participants"].as_array().cloned().unwrap_or_default();
            if v["type"] == "participants" && list.iter().filter(|p| p["publishing"] == json!(true)).count() == 2 {
                return;
            }
        }
    }
    panic!("the two publishers were not both listed as publishing within {T:?}");
}

/// What the file shows and sounds like around `at_s`: each colour's share and each tone's level.
fn media_facts(file: &Path, at_s: f64) -> (f64, f64, f64, f64) {
    let input = file.to_str().expect("UTF-8 path");
    let frame = ffmpeg::frame_at(input, at_s).unwrap_or_else(|e| panic!("no picture at {at_s} s: {e}"));
    let sound = ffmpeg::audio_at(input, at_s, 1.0).unwrap_or_else(|e| panic!("no sound at {at_s} s: {e}"));
    assert!(sound.len() >= WINDOW, "{} samples of sound at {at_s} s", sound.len());
    let window = &sound[..WINDOW];
    (coverage(&frame, RED, TOLERANCE), coverage(&frame, GREEN, TOLERANCE), tone_level(window, 440.0), tone_level(window, 660.0))
}

fn assert_everyone_in(file: &Path, at_s: f64) {
    let (red, green, a440, a660) = media_facts(file, at_s);
    assert!(red >= PRESENT && green >= PRESENT, "both tiles at {at_s} s: red {red:.3}, green {green:.3}");
    assert!(a440 >= TONE_PRESENT && a660 >= TONE_PRESENT, "both voices at {at_s} s: 440 Hz {a440:.3}, 660 Hz {a660:.3}");
}

#[test]
fn a_killed_server_leaves_a_recording_that_plays() {
    let dir = Dir::new("killed");
    let server = server(&dir);
    let room = "rat";
    let (mut ada, ada_token, _key) = Control::join_first(server.addr, room, "Ada");
    let (mut bo, _, bo_token) = Control::join(server.addr, room, "Bo");
    let _red = Publisher::start_as(server.addr, room, Source::new(RED, 440), Some(&ada_token));
    let _green = Publisher::start_as(server.addr, room, Source::new(GREEN, 660), Some(&bo_token));
    both_publishing(&mut bo);

    ada.send_json(&json!({"type": "set_recording", "on": true}));
    let started = Instant::now();
    bo.told_setting("recording", true, "a participant");
    ada.told_setting("recording", true, "the moderator");
    let (mut cem, _, _) = Control::join(server.addr, room, "Cem");
    cem.told_setting("recording", true, "a participant who joins later");
    let info: Value = serde_json::from_str(&server.get(&format!("/api/rooms/{room}")).body).expect("room info is JSON");
    assert_eq!(info["recording"], json!(true), "the pre-join page says so: {info}");

    std::thread::sleep(Duration::from_secs(20).saturating_sub(started.elapsed()));
    drop(server); // SIGKILL: no chance to finish the file
    let killed_after = started.elapsed().as_secs_f64();

    let files = dir.files();
    assert_eq!(files.len(), 1, "one recording: {files:?}");
    let file = &files[0];
    let name = file.file_name().and_then(|n| n.to_str()).unwrap_or_default();
    assert!(name.starts_with("rat-") && name.ends_with(".ts"), "named after the room and its start: {name}");
    let input = file.to_str().expect("UTF-8 path");
    assert_eq!(ffmpeg::codecs(input).expect("ffprobe reads it"), vec!["h264", "aac"], "H.264 and AAC");
    let duration = ffmpeg::duration(input).expect("ffprobe gives a duration");
    eprintln!("killed {killed_after:.1} s after the start: the file plays {duration:.1} s ({} bytes)", file.metadata().map(|m| m.len()).unwrap_or(0));
    assert!((duration - killed_after).abs() <= 5.0, "a file of {duration:.1} s from a recording killed after {killed_after:.1} s");
    assert_everyone_in(file, 2.0);
    assert_everyone_in(file, (duration - 3.0).max(2.0));
}

#[test]
fn only_moderators_record_list_and_download() {
    let dir = Dir::new("api");
    let server = server(&dir);
    let room = "beratung";
    let (mut ada, ada_token, key) = Control::join_first(server.addr, room, "Ada");
    let (mut bo, _, bo_token) = Control::join(server.addr, room, "Bo");
    let _red = Publisher::start_as(server.addr, room, Source::new(RED, 440), Some(&ada_token));
    let _green = Publisher::start_as(server.addr, room, Source::new(GREEN, 660), Some(&bo_token));
    both_publishing(&mut bo);

    bo.send_json(&json!({"type": "set_recording", "on": true}));
    assert_eq!(bo.expect_type("error", T)["code"], "forbidden", "a guest may not record");
    let api = |method: &str, path: &str, bearer: Option<&str>, body: &str| {
        let auth = bearer.map(|b| format!("Bearer {b}"));
        let mut headers = vec![("Content-Type", "application/json")];
        if let Some(a) = &auth {
            headers.push(("Authorization", a.as_str()));
        }
        server.request(method, &format!("/api/rooms/{room}{path}"), &headers, body.as_bytes())
    };
    let on = r#"{"on": true}"#;
    assert_eq!(api("POST", "/recording", None, on).status, 401, "no key");
    assert_eq!(api("POST", "/recording", Some(&bo_token), on).status, 403, "a participant token is no moderator key");
    assert_eq!(api("POST", "/recording", Some(&"0".repeat(32)), on).status, 403, "a wrong key");
    assert_eq!(api("GET", "/recordings", Some(&bo_token), "").status, 403, "a guest may not list");
    let bad = api("POST", "/recording", Some(&key), "{\"start\": 1}");
    assert_eq!(bad.status, 400, "a bad body: {}", bad.body);
    assert!(dir.files().is_empty(), "nothing is recorded unless a moderator starts it");

    let started = api("POST", "/recording", Some(&key), on);
    assert_eq!(started.status, 200, "{}", started.body);
    bo.told_setting("recording", true, "a participant");
    std::thread::sleep(Duration::from_secs(8));
    let listed: Value = serde_json::from_str(&api("GET", "/recordings", Some(&key), "").body).expect("JSON list");
    assert_eq!(listed["recordings"].as_array().map(Vec::len), Some(1), "{listed}");
    assert_eq!(listed["recordings"][0]["recording"], json!(true), "being written: {listed}");

    ada.send_json(&json!({"type": "set_recording", "on": false}));
    bo.told_setting("recording", false, "a participant");
    let listed: Value = serde_json::from_str(&api("GET", "/recordings", Some(&key), "").body).expect("JSON list");
    let entry = &listed["recordings"][0];
    let name = entry["name"].as_str().expect("a name").to_string();
    let bytes = entry["bytes"].as_u64().expect("a size");
    let duration = entry["duration_s"].as_f64().expect("a duration");
    eprintln!("stopped after about 8 s: {name}, {bytes} bytes, {duration:.1} s");
    assert_eq!(entry["recording"], json!(false), "{listed}");
    assert!((5.0..=12.0).contains(&duration), "listed duration {duration}");

    let got = api("GET", &format!("/recordings/{name}"), Some(&key), "");
    assert_eq!(got.status, 200, "{}", got.body);
    assert_eq!(got.header("content-type"), Some("video/mp2t"));
    assert_eq!(got.bytes.len() as u64, bytes, "the whole file");
    assert_eq!(api("GET", &format!("/recordings/{name}"), Some(&bo_token), "").status, 403, "a guest may not download");
    for bogus in ["..%2F..%2Fetc%2Fpasswd", "rat-20261202-173000.ts", "beratung-20261202-17300.ts"] {
        assert_eq!(api("GET", &format!("/recordings/{bogus}"), Some(&key), "").status, 404, "{bogus}");
    }
    let file = dir.0.join(&name);
    let probed = ffmpeg::duration(file.to_str().expect("UTF-8")).expect("ffprobe reads it");
    assert!((probed - duration).abs() < 1.0, "ffprobe {probed:.1} s, listed {duration:.1} s");
    assert_everyone_in(&file, (probed / 2.0).max(1.0));
}

#[test]
fn a_recording_that_cannot_be_written_says_so_and_the_room_goes_on() {
    let dir = Dir::new("unwritable");
    std::fs::create_dir_all(&dir.0).expect("temp dir");
    // A file where the directory should be: nothing can be created under it.
    let blocked = dir.0.join("not-a-dir");
    std::fs::write(&blocked, b"x").expect("a file");
    client::init();
    let mut args: Vec<&str> = TEST_ARGS.to_vec();
    let path = blocked.join("recordings");
    args.extend(["--recordings-dir", path.to_str().expect("UTF-8")]);
    let server = Server::start_with(&args);
    let room = "kaputt";
    let (mut ada, ada_token, key) = Control::join_first(server.addr, room, "Ada");
    let _red = Publisher::start_as(server.addr, room, Source::new(RED, 440), Some(&ada_token));
    ada.send_json(&json!({"type": "set_recording", "on": true}));
    let error = ada.expect_type("error", T);
    assert_eq!(error["code"], "unavailable", "{error}");
    let r = server.request("POST", &format!("/api/rooms/{room}/recording"), &[("Authorization", &format!("Bearer {key}"))], br#"{"on": true}"#);
    assert_eq!(r.status, 503, "{}", r.body);
    let info: Value = serde_json::from_str(&server.get(&format!("/api/rooms/{room}")).body).expect("JSON");
    assert_eq!(info["recording"], json!(false), "nothing records: {info}");
    let viewer = support::client::Viewer::start(server.addr, room, Some(&ada_token));
    support::wait_for(T, "the room's picture after the failed recording", || {
        let frame = viewer.frame().ok_or("no frame yet")?;
        let red = coverage(&frame, RED, TOLERANCE);
        if red >= PRESENT { Ok(()) } else { Err(format!("red {red:.3}")) }
    });
}
