//! Dial-in by phone (`--sip-listen`), with Debian's baresip as the phone: it calls, types the
//! room's PIN as RFC 4733 telephone-events and speaks a tone (440 Hz) while a WebRTC publisher
//! in the room speaks another (600 Hz). A WHEP viewer of the room hears the caller; the caller
//! hears the room and not themselves; the caller is listed as on the phone; moderators mute and
//! remove them like anyone; a wrong PIN three times ends the call; the caller's BYE takes them
//! out of the list.

mod support;

use std::net::{TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::analysis::{coverage, tone_level, TOLERANCE, TONE_ABSENT, TONE_PRESENT, WINDOW};
use support::baresip::Baresip;
use support::client::{self, Publisher, Viewer, GREEN};
use support::server::{Server, OPEN_TEST_ARGS};
use support::ws::Control;
use support::wait_for;

const SECRET: &str = "the test's dial-in secret";
const T: Duration = Duration::from_secs(15);

/// A port free for both UDP and TCP on loopback.
fn free_sip_port() -> u16 {
    loop {
        let udp = UdpSocket::bind("127.0.0.1:0").expect("a UDP port");
        let port = udp.local_addr().expect("its address").port();
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

struct Room {
    server: Server,
    /// What the server logged at info level.
    log: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    sip: u16,
    pin: String,
    _publisher: Publisher,
    viewer: Viewer,
    moderator: Control,
}

/// A server taking calls, a room with a publisher (green, 600 Hz), its viewer and a moderator.
fn room(name: &str) -> Room {
    room_with(name, &[])
}

fn room_with(name: &str, extra: &[&str]) -> Room {
    client::init();
    let sip = free_sip_port();
    let listen = format!("127.0.0.1:{sip}");
    let args = [OPEN_TEST_ARGS, &["--sip-listen", &listen, "--dial-in-secret", SECRET, "--dial-in-number", "+49 30 1234567"], extra].concat();
    let (server, log) = Server::start_logging(&[], &args, "info");
    let (moderator, _, _) = Control::join_first(server.addr, name, "Ada");
    let publisher = Publisher::start(server.addr, name, GREEN, 600);
    let viewer = Viewer::start(server.addr, name, None);
    let info: Value = serde_json::from_str(&server.get(&format!("/api/rooms/{name}")).body).expect("room info");
    assert_eq!(info["dial_in"]["number"], "+49 30 1234567", "{info}");
    let pin = info["dial_in"]["pin"].as_str().expect("a PIN").to_string();
    assert!(pin.len() == 8 && pin.chars().all(|c| c.is_ascii_digit()), "{pin}");
    Room { server, log, sip, pin, _publisher: publisher, viewer, moderator }
}

/// A minute of `hz` at 48 kHz mono, the phone's microphone.
fn tone_file(hz: u32) -> PathBuf {
    gst::init().expect("GStreamer");
    let path = std::env::temp_dir().join(format!("plenum-phone-{}-{hz}.wav", std::process::id()));
    let description = format!(
        "audiotestsrc num-buffers=3000 samplesperbuffer=960 wave=sine freq={hz} volume=0.3 \
         ! audio/x-raw,format=S16LE,rate=48000,channels=1 ! wavenc ! filesink location={}",
        path.display()
    );
    let pipeline = gst::parse::launch(&description).expect("the tone pipeline");
    use gst::prelude::*;
    pipeline.set_state(gst::State::Playing).expect("it plays");
    let bus = pipeline.bus().expect("a bus");
    let done = bus.timed_pop_filtered(gst::ClockTime::from_seconds(60), &[gst::MessageType::Eos, gst::MessageType::Error]);
    pipeline.set_state(gst::State::Null).expect("it stops");
    assert_eq!(done.map(|m| m.type_()), Some(gst::MessageType::Eos), "the tone file is written");
    path
}

/// The phone calls the room's node and is answered.
fn call(room: &Room, wav: &Path, number: &str) -> Baresip {
    call_with(room, wav, number, "PCMA/8000/1")
}

fn call_with(room: &Room, wav: &Path, number: &str, codec: &str) -> Baresip {
    let mut phone = Baresip::start(wav, number, codec);
    phone.dial(&format!("sip:dial@127.0.0.1:{}", room.sip));
    assert!(phone.wait_event("CALL_ESTABLISHED", T), "the call is answered; baresip said {:?}", phone.events);
    phone
}

/// Waits for a participant list in which `check` holds for the caller (`None`: not listed).
fn caller_listed(c: &mut Control, within: Duration, what: &str, check: impl Fn(Option<&Value>) -> bool) -> Option<Value> {
    let start = Instant::now();
    let mut last = String::new();
    while start.elapsed() < within {
        let Some(v) = c.next(within.saturating_sub(start.elapsed())) else { continue };
        if v["type"] == "participants" {
            let list = v["participants"].as_array().cloned().unwrap_or_default();
            let caller = list.iter().find(|p| p["phone"] == true).cloned();
            if check(caller.as_ref()) {
                return caller;
            }
            last = v["participants"].to_string();
        }
    }
    panic!("{what} within {within:?}; the list said {last}");
}

/// Both tones' levels in the viewer's latest half second.
fn viewer_hears(viewer: &Viewer) -> (f64, f64) {
    let audio = viewer.audio(WINDOW).unwrap_or_default();
    if audio.len() < WINDOW {
        return (0.0, 0.0);
    }
    (tone_level(&audio, 440.0), tone_level(&audio, 600.0))
}

#[test]
fn a_caller_with_the_pin_is_heard_and_hears_everyone_but_themselves() {
    let mut room = room("rathaus");
    let wav = tone_file(440);
    let green = |viewer: &Viewer| viewer.frame().map_or(0.0, |f| coverage(&f, GREEN, TOLERANCE));
    let alone = wait_for(T, "the camera alone filling the picture", || {
        let g = green(&room.viewer);
        if g >= 0.8 { Ok(g) } else { Err(format!("green {g:.3}")) }
    });
    let mut phone = call(&room, &wav, "0301234523");
    let keyed = Instant::now();
    phone.keys(&room.pin);
    let caller = caller_listed(&mut room.moderator, T, "the caller listed as on the phone", |c| c.is_some()).expect("listed");
    assert_eq!(caller["name"], "Telefon …23", "only the last two digits of the number: {caller}");
    assert_eq!(caller["moderator"], false);
    let heard = wait_for(T, "the room's viewer to hear the caller and the publisher", || {
        let (caller, publisher) = viewer_hears(&room.viewer);
        if caller >= TONE_PRESENT && publisher >= TONE_PRESENT { Ok(keyed.elapsed()) } else { Err(format!("440 Hz {caller:.3}, 600 Hz {publisher:.3}")) }
    });
    eprintln!("the caller heard in the room {heard:?} after typing the PIN");
    // The caller has a tile of their own (their name, no camera): the camera gets half the picture.
    let shared = wait_for(T, "the caller's name tile beside the camera", || {
        let g = green(&room.viewer);
        if (0.3..=0.65).contains(&g) { Ok(g) } else { Err(format!("green {g:.3}")) }
    });
    eprintln!("the camera's share of the picture: {alone:.2} alone, {shared:.2} beside the caller's tile");

    // Let the phone hear the room for a while, then hang up.
    std::thread::sleep(Duration::from_secs(4));
    phone.hang_up();
    assert!(phone.wait_event("CALL_CLOSED", T), "the call ends; baresip said {:?}", phone.events);
    caller_listed(&mut room.moderator, T, "the caller gone from the list after the BYE", |c| c.is_none());

    let file = phone.heard().expect("baresip wrote what it heard");
    let path = file.to_str().expect("a UTF-8 path");
    let length = support::ffmpeg::duration(path).expect("the phone's recording has a length");
    let sound = support::ffmpeg::audio_at(path, length - 2.0, 1.0).expect("the phone's recording decodes");
    assert!(sound.len() >= WINDOW, "{} samples heard", sound.len());
    let (own, others) = (tone_level(&sound[..WINDOW], 440.0), tone_level(&sound[..WINDOW], 600.0));
    eprintln!("the phone heard: 600 Hz (the room) {others:.3}, 440 Hz (itself) {own:.3}");
    assert!(others >= TONE_PRESENT, "the caller hears the room: 600 Hz at {others:.3}");
    assert!(own <= TONE_ABSENT, "the caller does not hear themselves: 440 Hz at {own:.3}");

    // At the start the phone heard the prompt: its signal (1000 Hz, then 1400 Hz), then speech.
    let start = support::ffmpeg::audio_at(path, 0.0, 1.6).expect("the start of the phone's recording");
    let signal = start.chunks(2400).take(16).map(|w| tone_level(w, 1000.0)).fold(0.0, f64::max);
    let speech = start.get(28_800..).map_or(0.0, |w| (w.iter().map(|v| f64::from(*v).powi(2)).sum::<f64>() / w.len() as f64).sqrt());
    eprintln!("the prompt: signal at 1000 Hz {signal:.3}, speech after it at RMS {speech:.3}");
    assert!(signal >= 0.1, "the caller hears the prompt's signal: {signal:.3}");
    assert!(speech >= 0.01, "the caller hears the prompt spoken (espeak-ng): RMS {speech:.3}");

    // The log at info level tells of the call, never of the number or the PIN.
    let log = room.log.lock().unwrap().join("\n");
    assert!(log.contains("phone call answered") && log.contains("a caller joined by phone"), "the call is logged");
    for secret in ["1234523", &room.pin] {
        assert!(!log.contains(secret), "the log names {secret}:\n{log}");
    }
}

#[test]
fn a_wrong_pin_three_times_ends_the_call() {
    let room = room("schule");
    let wav = tone_file(440);
    let mut phone = call(&room, &wav, "0301234599");
    let wrong: String = room.pin.chars().map(|c| if c == '9' { '0' } else { '9' }).collect();
    for _ in 0..3 {
        phone.keys(&wrong);
        std::thread::sleep(Duration::from_millis(2600));
    }
    assert!(phone.wait_event("CALL_CLOSED", T), "Plenum hangs up after three wrong PINs; baresip said {:?}", phone.events);
    let (caller, _) = viewer_hears(&room.viewer);
    assert!(caller <= TONE_ABSENT, "a caller without the PIN is never heard in the room: {caller:.3}");
    drop(room.server);
}

#[test]
fn moderators_mute_and_remove_a_caller() {
    let mut room = room("beirat");
    let wav = tone_file(440);
    let mut phone = call(&room, &wav, "0301234577");
    phone.keys(&room.pin);
    let caller = caller_listed(&mut room.moderator, T, "the caller listed", |c| c.is_some()).expect("listed");
    let id = caller["id"].as_str().expect("an id").to_string();
    wait_for(T, "the viewer to hear the caller", || {
        let (caller, _) = viewer_hears(&room.viewer);
        if caller >= TONE_PRESENT { Ok(()) } else { Err(format!("440 Hz {caller:.3}")) }
    });

    room.moderator.send_json(&json!({"type": "mute", "id": id}));
    caller_listed(&mut room.moderator, T, "the caller listed as muted", |c| c.is_some_and(|c| c["audio_muted"] == true));
    wait_for(T, "the caller's tone out of the mix", || {
        let (caller, publisher) = viewer_hears(&room.viewer);
        if caller <= TONE_ABSENT && publisher >= TONE_PRESENT { Ok(()) } else { Err(format!("440 Hz {caller:.3}, 600 Hz {publisher:.3}")) }
    });

    room.moderator.send_json(&json!({"type": "remove", "id": id}));
    assert!(phone.wait_event("CALL_CLOSED", T), "a removed caller's call ends; baresip said {:?}", phone.events);
    caller_listed(&mut room.moderator, T, "the removed caller gone from the list", |c| c.is_none());
}

#[test]
fn every_codec_carries_a_call() {
    let mut room = room("verein");
    let wav = tone_file(440);
    for codec in ["PCMU/8000/1", "G722/16000/1", "opus/48000/2"] {
        let mut phone = call_with(&room, &wav, "0301234511", codec);
        let keyed = Instant::now();
        phone.keys(&room.pin);
        caller_listed(&mut room.moderator, T, "the caller listed", |c| c.is_some());
        let heard = wait_for(T, &format!("the viewer to hear a caller on {codec}"), || {
            let (caller, _) = viewer_hears(&room.viewer);
            if caller >= TONE_PRESENT { Ok(keyed.elapsed()) } else { Err(format!("440 Hz {caller:.3}")) }
        });
        eprintln!("{codec}: the caller heard {heard:?} after the PIN");
        phone.hang_up();
        assert!(phone.wait_event("CALL_CLOSED", T), "{codec}: the call ends; baresip said {:?}", phone.events);
        caller_listed(&mut room.moderator, T, "the caller gone", |c| c.is_none());
    }
}

#[test]
fn a_caller_mutes_themselves_with_star_six() {
    let mut room = room("werkstatt");
    let wav = tone_file(440);
    let mut phone = call(&room, &wav, "0301234588");
    phone.keys(&room.pin);
    caller_listed(&mut room.moderator, T, "the caller listed", |c| c.is_some());
    phone.keys("*6");
    caller_listed(&mut room.moderator, T, "the caller muted by *6", |c| c.is_some_and(|c| c["audio_muted"] == true));
    wait_for(T, "the caller's tone out of the mix", || {
        let (caller, _) = viewer_hears(&room.viewer);
        if caller <= TONE_ABSENT { Ok(()) } else { Err(format!("440 Hz {caller:.3}")) }
    });
    phone.keys("*6");
    caller_listed(&mut room.moderator, T, "the caller unmuted by *6 again", |c| c.is_some_and(|c| c["audio_muted"] == false));
    wait_for(T, "the caller heard again", || {
        let (caller, _) = viewer_hears(&room.viewer);
        if caller >= TONE_PRESENT { Ok(()) } else { Err(format!("440 Hz {caller:.3}")) }
    });
}

#[test]
fn a_silent_caller_and_a_stopping_server_end_their_calls() {
    let mut room = room_with("ausschuss", &["--sip-silence-seconds", "2"]);
    let wav = tone_file(440);
    // A phone that vanishes without BYE (killed): its call ends when its sound stops.
    let mut phone = call(&room, &wav, "0301234566");
    phone.keys(&room.pin);
    caller_listed(&mut room.moderator, T, "the caller listed", |c| c.is_some());
    let killed = Instant::now();
    drop(phone);
    caller_listed(&mut room.moderator, T, "the vanished caller gone from the list", |c| c.is_none());
    eprintln!("a caller that vanished left the room after {:?}", killed.elapsed());
    assert!(killed.elapsed() < Duration::from_secs(6), "gone {:?} after its sound stopped (limit 2 s)", killed.elapsed());

    // The server stops: the caller gets a BYE.
    let mut phone = call(&room, &wav, "0301234567");
    phone.keys(&room.pin);
    caller_listed(&mut room.moderator, T, "the second caller listed", |c| c.is_some());
    let status = room.server.terminate();
    assert!(status.success(), "the server stops cleanly: {status:?}");
    assert!(phone.wait_event("CALL_CLOSED", Duration::from_secs(5)), "the server said goodbye (BYE); baresip said {:?}", phone.events);
}

/// Sends `request` over UDP to the SIP port; the status line of the answer.
fn ask(port: u16, request: &str) -> Option<String> {
    let socket = UdpSocket::bind("127.0.0.1:0").expect("a UDP socket");
    socket.set_read_timeout(Some(Duration::from_secs(3))).expect("a timeout");
    let me = socket.local_addr().expect("its address");
    let text = request.replace("{me}", &me.to_string()).replace("{port}", &port.to_string());
    socket.send_to(text.as_bytes(), ("127.0.0.1", port)).expect("sent");
    let mut buf = [0u8; 4096];
    let n = socket.recv(&mut buf).ok()?;
    String::from_utf8_lossy(&buf[..n]).lines().next().map(str::to_string)
}

const OPTIONS: &str = "OPTIONS sip:dial@127.0.0.1:{port} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bK-opt1\r\n\
    From: <sip:probe@127.0.0.1>;tag=1\r\nTo: <sip:dial@127.0.0.1:{port}>\r\nCall-ID: probe-1\r\nCSeq: 1 OPTIONS\r\n\
    Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n";

#[test]
fn bad_sip_gets_answers_and_a_burst_leaves_the_room_alone() {
    let room = room("plenum");
    let dir = format!("{}/tests/sipp", env!("CARGO_MANIFEST_DIR"));
    let sipp = |scenario: &str, extra: &[&str]| {
        let port = free_sip_port().to_string();
        let out = std::process::Command::new("timeout")
            .args(["-k", "3", "60", "sipp", &format!("127.0.0.1:{}", room.sip), "-sf", &format!("{dir}/{scenario}"), "-i", "127.0.0.1", "-p", &port, "-mi", "127.0.0.1"])
            .args(["-nostdin", "-recv_timeout", "5s", "-timeout", "40s", "-timeout_error"])
            .args(extra)
            .current_dir(std::env::temp_dir())
            .output()
            .expect("sipp runs (./dev test installs sip-tester)");
        (out.status, String::from_utf8_lossy(&out.stdout).into_owned())
    };

    // Not SDP: 400. Garbage, and a method nobody knows: the endpoint answers OPTIONS after them.
    let (status, said) = sipp("bad_sdp.xml", &["-m", "1"]);
    assert!(status.success(), "a broken offer gets 400: {status:?}\n{said}");
    let garbage = UdpSocket::bind("127.0.0.1:0").expect("a socket");
    for junk in [&b"\x00\xff garbage"[..], b"INVITE\r\n\r\n", b"FOO sip:x SIP/2.0\r\nContent-Length: 99999999\r\n\r\n"] {
        garbage.send_to(junk, ("127.0.0.1", room.sip)).expect("sent");
    }
    let unknown = OPTIONS.replace("OPTIONS sip", "PUBLISH sip").replace("1 OPTIONS", "1 PUBLISH").replace("opt1", "pub1");
    assert_eq!(ask(room.sip, &unknown).as_deref(), Some("SIP/2.0 405 Method Not Allowed"));
    assert_eq!(ask(room.sip, OPTIONS).as_deref(), Some("SIP/2.0 200 OK"));

    // 200 calls at 100 a second from one source: a few are answered, the rest refused (486);
    // the room's picture goes on meanwhile.
    let before = Instant::now();
    std::thread::sleep(Duration::from_secs(2));
    let usual = room.viewer.frames_since(before).0 as f64 / before.elapsed().as_secs_f64();
    let started = Instant::now();
    let (status, said) = sipp("burst.xml", &["-r", "100", "-m", "200", "-l", "200"]);
    let took = started.elapsed();
    let (frames, gap) = room.viewer.frames_since(started);
    let fps = frames as f64 / took.as_secs_f64();
    eprintln!("a burst of 200 INVITEs in {took:?}: the room's viewer got {fps:.1} frames/s (before: {usual:.1}), longest gap {gap:?}");
    assert!(status.success(), "every INVITE of the burst answered with 200 or 486: {status:?}\n{said}");
    assert!(fps >= 0.9 * usual && gap < Duration::from_millis(500), "the room kept its frame rate: {fps:.1} (before {usual:.1}), gap {gap:?}");
    let metrics = room.server.get("/healthz");
    assert_eq!(metrics.status, 200);
    assert_eq!(ask(room.sip, OPTIONS).as_deref(), Some("SIP/2.0 200 OK"), "the endpoint still answers");
}

#[test]
fn plenum_registers_with_a_trunk_that_asks_for_a_password() {
    let registrar_port = free_sip_port();
    let dir = format!("{}/tests/sipp", env!("CARGO_MANIFEST_DIR"));
    let registrar = std::process::Command::new("timeout")
        .args(["-k", "3", "30", "sipp", "-sf", &format!("{dir}/registrar.xml"), "-i", "127.0.0.1", "-p", &registrar_port.to_string()])
        .args(["-m", "1", "-nostdin", "-timeout", "20s", "-timeout_error"])
        .current_dir(std::env::temp_dir())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("sipp runs");
    std::thread::sleep(Duration::from_millis(300));
    let registrar_uri = format!("sip:127.0.0.1:{registrar_port}");
    let room = room_with("zentrale", &["--sip-registrar", &registrar_uri, "--sip-user", "plenum", "--sip-password", "geheim"]);
    let out = registrar.wait_with_output().expect("sipp ends");
    assert!(out.status.success(), "the registrar took Plenum's answer to its challenge: {:?}\n{}", out.status, String::from_utf8_lossy(&out.stdout));
    drop(room);
}

/// Waits until the viewer hears the caller (`true`) or no longer does (`false`).
fn caller_heard(viewer: &Viewer, heard: bool, what: &str) {
    wait_for(T, what, || {
        let (caller, publisher) = viewer_hears(viewer);
        let ok = if heard { caller >= TONE_PRESENT } else { caller <= TONE_ABSENT && publisher >= TONE_PRESENT };
        if ok { Ok(()) } else { Err(format!("440 Hz {caller:.3}, 600 Hz {publisher:.3}")) }
    });
}

#[test]
fn callers_wait_to_be_admitted_and_follow_presentation_mode() {
    let mut room = room("gemeinderat");
    room.moderator.send_json(&json!({"type": "set_waiting_room", "on": true}));
    room.moderator.told_setting("waiting_room", true, "the moderator");
    let wav = tone_file(440);
    let mut phone = call(&room, &wav, "0301234544");
    phone.keys(&room.pin);
    // The caller waits: the moderator sees them in the lobby; the room does not hear them.
    let start = Instant::now();
    let waiting = loop {
        let v = room.moderator.next(T).expect("a lobby message");
        if let Some(first) = v["waiting"].as_array().and_then(|w| w.first().cloned()).filter(|_| v["type"] == "lobby") {
            break first;
        }
        assert!(start.elapsed() < T, "no caller in the lobby");
    };
    assert_eq!(waiting["name"], "Telefon …44", "{waiting}");
    std::thread::sleep(Duration::from_secs(2));
    let (caller, _) = viewer_hears(&room.viewer);
    assert!(caller <= TONE_ABSENT, "a waiting caller is not heard: {caller:.3}");
    room.moderator.send_json(&json!({"type": "admit", "id": waiting["id"]}));
    caller_heard(&room.viewer, true, "the admitted caller heard");

    // Presentation mode: the caller is audience until made a presenter.
    room.moderator.send_json(&json!({"type": "set_presentation", "on": true}));
    caller_heard(&room.viewer, false, "the caller out of the mix in presentation mode");
    room.moderator.send_json(&json!({"type": "set_presenter", "id": waiting["id"], "on": true}));
    caller_heard(&room.viewer, true, "the caller heard as a presenter");
    phone.hang_up();
    assert!(phone.wait_event("CALL_CLOSED", T), "the call ends; baresip said {:?}", phone.events);
}
