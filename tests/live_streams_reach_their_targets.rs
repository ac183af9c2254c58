//! A moderator streams the room live: to an RTMP server (Debian's nginx with its RTMP module,
//! as PeerTube or Owncast take it) and to an SRT listener (ffmpeg), read back by ffmpeg, which
//! must find every publisher's colour and tone. The RTMP server is killed and started again:
//! Plenum says so, tries again by itself and the stream resumes, while the room's own viewer
//! sees no stall.

mod support;

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::analysis::{coverage, tone_level, PRESENT, TOLERANCE, TONE_PRESENT, WINDOW};
use support::client::{self, Publisher, Source, Viewer, GREEN, RED};
use support::ffmpeg;
use support::rtmp_server::RtmpServer;
use support::server::Server;
use support::ws::Control;

const T: Duration = Duration::from_secs(10);

/// A room of two publishers (red 440 Hz, green 660 Hz): the moderator's and a guest's control
/// connections, the publishers, and the moderator key.
struct Room {
    ada: Control,
    bo: Control,
    key: String,
    ada_token: String,
    _publishers: Vec<Publisher>,
}

fn room(server: &Server, name: &str) -> Room {
    client::init();
    let (ada, ada_token, key) = Control::join_first(server.addr, name, "Ada");
    let (bo, _, bo_token) = Control::join(server.addr, name, "Bo");
    let publishers = vec![
        Publisher::start_as(server.addr, name, Source::new(RED, 440), Some(&ada_token)),
        Publisher::start_as(server.addr, name, Source::new(GREEN, 660), Some(&bo_token)),
    ];
    Room { ada, bo, key, ada_token, _publishers: publishers }
}

/// Waits for a `streams` message to the moderator whose first stream is in `state`.
fn stream_state(c: &mut Control, state: &str, within: Duration) -> Value {
    let start = Instant::now();
    let mut seen = Vec::new();
    while start.elapsed() < within {
        let Some(v) = c.next(within.saturating_sub(start.elapsed())) else { continue };
        if v["type"] == "streams" {
            if v["streams"][0]["state"] == state {
                return v["streams"][0].clone();
            }
            seen.push(v["streams"].to_string());
        }
    }
    panic!("no stream {state} within {within:?}; streams said {seen:?}");
}

/// Both colours and both tones in what ffmpeg reads from `input` a second in.
fn everyone_in(input: &str) -> Result<(), String> {
    let frame = ffmpeg::frame_at(input, 1.0)?;
    let (red, green) = (coverage(&frame, RED, TOLERANCE), coverage(&frame, GREEN, TOLERANCE));
    let sound = ffmpeg::audio_at(input, 1.0, 1.0)?;
    if sound.len() < WINDOW {
        return Err(format!("{} samples of sound", sound.len()));
    }
    let (a, b) = (tone_level(&sound[..WINDOW], 440.0), tone_level(&sound[..WINDOW], 660.0));
    if red >= PRESENT && green >= PRESENT && a >= TONE_PRESENT && b >= TONE_PRESENT {
        Ok(())
    } else {
        Err(format!("red {red:.3}, green {green:.3}, 440 Hz {a:.3}, 660 Hz {b:.3}"))
    }
}

#[test]
fn an_rtmp_stream_comes_back_after_its_server_restarts() {
    let mut rtmp = RtmpServer::start();
    let server = Server::start();
    let name = "rat";
    let Room { mut ada, mut bo, ada_token, _publishers: _keep, .. } = room(&server, name);
    let watcher = Viewer::start(server.addr, name, Some(&ada_token));
    support::wait_for(T, "the room's own viewer to see the picture", || {
        let frame = watcher.frame().ok_or("no frame")?;
        let red = coverage(&frame, RED, TOLERANCE);
        if red >= PRESENT { Ok(()) } else { Err(format!("red {red:.3}")) }
    });

    let url = rtmp.url("sitzung");
    ada.send_json(&json!({"type": "start_stream", "url": url}));
    bo.told_setting("streaming", true, "a participant");
    let live = stream_state(&mut ada, "live", T);
    assert_eq!(live["target"], format!("rtmp://127.0.0.1:{}/live/…", rtmp.port), "the stream key is never shown");
    let read = ffmpeg_until(&url, "the stream on the RTMP server");
    eprintln!("RTMP read back after {read:?}");
    // A room without a password that goes live is public anyway: its HLS runs with the stream.
    bo.told_setting("broadcast", true, "a participant (HLS with the live stream)");
    support::wait_for(T, "the room's HLS playlist while it streams", || {
        let r = server.get(&format!("/hls/{name}/index.m3u8"));
        if r.status == 200 { Ok(()) } else { Err(format!("{} {}", r.status, r.body)) }
    });

    let killed = Instant::now();
    rtmp.kill();
    let dropped = stream_state(&mut ada, "retrying", T);
    eprintln!("RTMP server killed: Plenum says {dropped} after {:?}", killed.elapsed());
    std::thread::sleep(Duration::from_secs(3));
    rtmp.restart();
    let restarted = Instant::now();
    stream_state(&mut ada, "live", Duration::from_secs(45));
    let back = restarted.elapsed();
    let read = ffmpeg_until(&url, "the stream on the restarted RTMP server");
    eprintln!("RTMP server restarted: live again after {back:?}, read back after {read:?}");
    let (frames, gap) = watcher.frames_since(killed);
    eprintln!("the room's own viewer meanwhile: {frames} frames, longest gap {gap:?}");
    assert!(gap < Duration::from_millis(700), "the room stalled for {gap:?} while its stream's server was away");
    assert!(back < Duration::from_secs(35), "back {back:?} after the restart");

    ada.send_json(&json!({"type": "stop_stream", "id": live["id"]}));
    bo.told_setting("streaming", false, "a participant");
    bo.told_setting("broadcast", false, "a participant (HLS ends with the last stream)");
    assert_eq!(server.get(&format!("/hls/{name}/index.m3u8")).status, 404, "no HLS after the stream");
}

/// Waits until ffmpeg finds everyone in `url`; how long that took.
fn ffmpeg_until(url: &str, what: &str) -> Duration {
    let start = Instant::now();
    support::wait_for(Duration::from_secs(60), what, || everyone_in(url));
    start.elapsed()
}

#[test]
fn an_srt_stream_reaches_a_listener_and_bad_targets_are_refused() {
    let server = Server::start();
    let name = "saal";
    let Room { mut ada, mut bo, key, _publishers: _keep, .. } = room(&server, name);

    // Refusals first: a guest, bad URLs, no key.
    bo.send_json(&json!({"type": "start_stream", "url": "rtmp://127.0.0.1/live/x"}));
    assert_eq!(bo.expect_type("error", T)["code"], "forbidden");
    for bad in ["http://example.org/live/x", "rtmp://example.org/live", "srt://127.0.0.1", "srt://127.0.0.1:9000?passphrase=short"] {
        ada.send_json(&json!({"type": "start_stream", "url": bad}));
        let e = ada.expect_type("error", T);
        assert_eq!(e["code"], "bad_message", "{bad}: {e}");
    }
    let api = |method: &str, path: &str, bearer: Option<&str>, body: &str| {
        let auth = bearer.map(|b| format!("Bearer {b}"));
        let mut headers = vec![("Content-Type", "application/json")];
        if let Some(a) = &auth {
            headers.push(("Authorization", a.as_str()));
        }
        server.request(method, &format!("/api/rooms/{name}{path}"), &headers, body.as_bytes())
    };
    assert_eq!(api("POST", "/streams", None, r#"{"url": "srt://127.0.0.1:9000"}"#).status, 401);
    assert_eq!(api("POST", "/streams", Some(&key), r#"{"url": "ftp://x"}"#).status, 400);

    // A target that does not answer (nobody on its port): the request does not wait for it,
    // the moderators are told it is tried again, and it can be stopped.
    let silent_port = std::net::UdpSocket::bind("127.0.0.1:0").and_then(|s| s.local_addr()).expect("a port").port();
    let asked = Instant::now();
    let silent = api("POST", "/streams", Some(&key), &json!({"url": format!("srt://127.0.0.1:{silent_port}")}).to_string());
    assert_eq!(silent.status, 201, "{}", silent.body);
    assert!(asked.elapsed() < Duration::from_secs(1), "starting a stream does not wait for its target: {:?}", asked.elapsed());
    stream_state(&mut ada, "retrying", Duration::from_secs(20));
    let silent_id = silent.body.split('"').nth(3).unwrap_or_default().to_string();
    assert_eq!(api("DELETE", &format!("/streams/{silent_id}"), Some(&key), "").status, 200);
    bo.told_setting("streaming", false, "a participant");

    // A room with a password: its HLS does not go public with the live stream.
    ada.send_json(&json!({"type": "set_password", "password": "geheim-2026"}));
    bo.told_setting("password", true, "a participant");

    // An SRT listener (ffmpeg) that keeps what it receives.
    let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a port").port();
    let out = std::env::temp_dir().join(format!("plenum-srt-{}.ts", std::process::id()));
    let _ = std::fs::remove_file(&out);
    let passphrase = "plenum-test-pass";
    let listen = format!("srt://127.0.0.1:{port}?mode=listener&passphrase={passphrase}");
    let mut listener = std::process::Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-i", &listen, "-t", "6", "-c", "copy", "-f", "mpegts", out.to_str().expect("UTF-8")])
        .stdin(std::process::Stdio::null())
        .spawn()
        .expect("ffmpeg runs");
    std::thread::sleep(Duration::from_millis(500));
    let started = api("POST", "/streams", Some(&key), &json!({"url": format!("srt://127.0.0.1:{port}?passphrase={passphrase}")}).to_string());
    assert_eq!(started.status, 201, "{}", started.body);
    let listed: Value = serde_json::from_str(&api("GET", "/streams", Some(&key), "").body).expect("JSON");
    assert_eq!(listed["streams"][0]["target"], format!("srt://127.0.0.1:{port}"), "no passphrase in the list: {listed}");
    bo.told_setting("streaming", true, "a participant");
    let done = support::wait_for(Duration::from_secs(40), "the SRT listener to have 6 s", || match listener.try_wait() {
        Ok(Some(status)) => Ok(status),
        _ => Err("still receiving"),
    });
    assert!(done.success(), "ffmpeg as SRT listener: {done}");
    let hls = server.get(&format!("/hls/{name}/index.m3u8"));
    assert_eq!(hls.status, 404, "a room with a password streams live without a public HLS: {}", hls.body);
    let file = out.to_str().expect("UTF-8").to_string();
    let result = everyone_in(&file);
    let _ = std::fs::remove_file(&out);
    result.expect("everyone in the SRT stream");
    let id = started.body.split('"').nth(3).unwrap_or_default().to_string();
    assert_eq!(api("DELETE", &format!("/streams/{id}"), Some(&key), "").status, 200);
    bo.told_setting("streaming", false, "a participant");
    let again = api("DELETE", &format!("/streams/{id}"), Some(&key), "");
    assert_eq!(again.status, 404, "a stream that no longer runs: {}", again.body);
}
