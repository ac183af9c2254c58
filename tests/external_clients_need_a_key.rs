//! No silent guests: WHIP and WHEP without a participant token are refused (401) unless a
//! moderator made a room key (or the server runs with `--open-media`); every external session
//! is listed for everyone in the room and announced, and moderators can end it.

mod support;

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::analysis::{self, coverage, tone_level, ABSENT, PRESENT, TOLERANCE, TONE_ABSENT, TONE_PRESENT, WINDOW};
use support::client::{self, Publisher, Source, Viewer, BLUE, RED};
use support::server::Server;
use support::wait_for;
use support::ws::Control;

const T: Duration = Duration::from_secs(5);

/// A receive-only offer with VP8 and Opus: past the gate it would get 201.
const VIEW_OFFER: &str = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=fingerprint:sha-256 AB\r\na=ice-ufrag:abcd\r\n\
a=ice-pwd:0123456789012345678901\r\na=group:BUNDLE 0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\n\
a=recvonly\r\na=rtcp-mux\r\na=setup:actpass\r\na=rtpmap:96 VP8/90000\r\n";

fn post(server: &Server, path: &str, bearer: Option<&str>) -> support::http::Response {
    let auth = bearer.map(|b| format!("Bearer {b}"));
    let mut headers = vec![("Content-Type", "application/sdp")];
    if let Some(a) = &auth {
        headers.push(("Authorization", a.as_str()));
    }
    server.request("POST", path, &headers, VIEW_OFFER.as_bytes())
}

/// Waits for a `participants` message whose external list satisfies `check`.
fn wait_external(c: &mut Control, what: &str, check: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    wait_for(T, what, || {
        let m = c.next(Duration::from_millis(200)).ok_or("no message")?;
        match m["external"].as_array() {
            Some(list) if m["type"] == "participants" && check(list) => Ok(list.clone()),
            _ => Err(format!("last message: {m}")),
        }
    })
}

/// Creates a room key of `kind`; the key, and the room settings that say it exists (the
/// server sends both; their order is not fixed).
fn new_key(moderator: &mut Control, kind: &str) -> (String, Value) {
    moderator.send_json(&json!({"type": "create_key", "kind": kind}));
    let (mut key, mut settings) = (None, None);
    wait_for(T, "the key and the room settings with it", || {
        if let Some(m) = moderator.next(Duration::from_millis(200)) {
            if m["type"] == "key" {
                key = Some(m);
            } else if m["type"] == "room" && m["settings"][format!("{kind}_key")] == true {
                settings = Some(m);
            }
        }
        if key.is_some() && settings.is_some() { Ok(()) } else { Err(format!("key {}, settings {}", key.is_some(), settings.is_some())) }
    });
    let (key, settings) = (key.expect("the key"), settings.expect("the settings"));
    assert_eq!(key["kind"], kind);
    (key["key"].as_str().expect("the key").to_string(), settings)
}

/// Whether `viewer` sees `colour` and hears `tone` (`on`), or neither.
fn hears(viewer: &Viewer, colour: client::Rgb, tone: u32, on: bool, what: &str) {
    wait_for(Duration::from_secs(10), what, || {
        let (frame, audio) = (viewer.frame(), viewer.audio(WINDOW / 2));
        let ok = match (&frame, &audio) {
            (Some(f), Some(a)) => {
                let (seen, heard) = (coverage(f, colour, TOLERANCE), tone_level(a, f64::from(tone)));
                if on { seen >= PRESENT && heard >= TONE_PRESENT } else { seen <= ABSENT && heard <= TONE_ABSENT }
            }
            _ => false,
        };
        if ok { Ok(()) } else { Err(analysis::describe(frame.as_deref(), audio.as_deref(), &[colour], &[tone])) }
    });
}

#[test]
fn anonymous_whip_and_whep_are_refused_and_reach_nothing() {
    client::init();
    let server = Server::start();
    // A room nobody is in is not even started by a refused request.
    for path in ["/whip/empty", "/whep/empty"] {
        let r = post(&server, path, None);
        assert_eq!(r.status, 401, "{path}: {}", r.body);
        assert_eq!(r.body.lines().count(), 1, "one line of reason: {}", r.body);
    }
    assert_eq!(server.get("/api/rooms/empty").body, r#"{"live":false}"#);

    let room = "beratung";
    let (mut ada, _, ada_token) = Control::join(server.addr, room, "Ada");
    let (_bo, _, bo_token) = Control::join(server.addr, room, "Bo");
    let _ada_cam = Publisher::start_as(server.addr, room, Source::new(RED, 440), Some(&ada_token));
    let bo_view = Viewer::start(server.addr, room, Some(&bo_token));
    assert_eq!(post(&server, "/whep/beratung", None).status, 401);
    assert_eq!(post(&server, "/whep/beratung", Some("0123456789abcdef0123456789abcdef")).status, 401);
    let intruder = Publisher::try_start_at(server.addr, "/whip/beratung", Source::new(BLUE, 880), None);
    let refusal = intruder.err().expect("an anonymous publisher is refused");
    assert_eq!(refusal.status, 401, "{}", refusal.body);
    assert!(refusal.body.contains("participant"), "the reason says why: {}", refusal.body);
    // Bo sees and hears Ada; no stranger's colour or voice got in.
    hears(&bo_view, RED, 440, true, "Ada in Bo's picture and sound");
    std::thread::sleep(Duration::from_secs(1));
    hears(&bo_view, BLUE, 880, false, "no stranger in the picture or the sound");
    let list = wait_external(&mut ada, "a list", |_| true);
    assert!(list.is_empty(), "nothing external is listed: {list:?}");
}

#[test]
fn a_viewer_key_lets_a_listed_viewer_in_until_ended_or_revoked() {
    client::init();
    let server = Server::start();
    let room = "sprechstunde";
    let (mut ada, _, ada_token) = Control::join(server.addr, room, "Ada");
    let (mut bo, _, bo_token) = Control::join(server.addr, room, "Bo");
    let _ada_cam = Publisher::start_as(server.addr, room, Source::new(RED, 440), Some(&ada_token));
    let bo_view = Viewer::start(server.addr, room, Some(&bo_token));

    bo.send_json(&json!({"type": "create_key", "kind": "viewer"}));
    assert_eq!(bo.expect_type("error", T)["code"], "forbidden", "a guest cannot make keys");
    let (key, _) = new_key(&mut ada, "viewer");
    assert!(key.starts_with("whep-") && key.len() == 37, "{key}");
    assert_eq!(post(&server, "/whep/sprechstunde", None).status, 401, "still no anonymous viewers");
    assert_eq!(post(&server, "/whip/sprechstunde", Some(&key)).status, 401, "a viewer key does not publish");

    let started = Instant::now();
    let hall = Viewer::start(server.addr, room, Some(&key));
    let joined = bo.expect_type("external_joined", T);
    assert_eq!(joined["session"]["kind"], "viewer");
    let listed = wait_external(&mut bo, "the external viewer in Bo's list", |l| l.len() == 1);
    let shown = started.elapsed();
    assert!(shown < Duration::from_secs(1), "listed after {shown:?}");
    assert_eq!(listed[0]["kind"], "viewer");
    assert_eq!(listed[0]["access"], "key");
    let id = listed[0]["id"].as_str().unwrap().to_string();
    hears(&hall, RED, 440, true, "the external viewer gets the room's picture and sound");
    eprintln!("external viewer listed {} ms after its POST", shown.as_millis());

    // The moderator ends it; its own DELETE afterwards changes nothing.
    let ending = Instant::now();
    ada.send_json(&json!({"type": "end_external", "id": id}));
    assert_eq!(bo.expect_type("external_left", T)["session"]["id"], id.as_str());
    wait_external(&mut bo, "the list without the viewer", |l| l.is_empty());
    assert_eq!(hall.leave(), 404, "the session is already gone");
    std::thread::sleep(Duration::from_millis(500));
    let (frames, gap) = bo_view.frames_since(ending);
    eprintln!("since ending: {frames} frames in {:?}, longest gap {gap:?}", ending.elapsed());
    assert!(gap < Duration::from_millis(500), "Bo's picture went on ({frames} frames, longest gap {gap:?})");

    // Revoking the key ends what it let in and refuses it from then on.
    let second = Viewer::start(server.addr, room, Some(&key));
    wait_external(&mut ada, "a second external viewer", |l| l.len() == 1);
    ada.send_json(&json!({"type": "revoke_key", "kind": "viewer"}));
    wait_external(&mut ada, "the list emptied by revoking", |l| l.is_empty());
    let r = post(&server, "/whep/sprechstunde", Some(&key));
    assert_eq!(r.status, 401, "a revoked key: {}", r.body);
    drop(second);
    hears(&bo_view, RED, 440, true, "the room goes on");
}

#[test]
fn a_publisher_key_lets_obs_send_and_it_is_listed() {
    client::init();
    let server = Server::start();
    let room = "ratssitzung";
    let (mut ada, _, ada_token) = Control::join(server.addr, room, "Ada");
    let ada_view = Viewer::start(server.addr, room, Some(&ada_token));
    let (key, settings) = new_key(&mut ada, "publisher");
    assert!(key.starts_with("whip-"), "{key}");
    assert_eq!(settings["settings"]["viewer_key"], false);

    let obs = Publisher::try_start_at(server.addr, "/whip/ratssitzung?label=Saalkamera", Source::new(BLUE, 880), Some(&key))
        .unwrap_or_else(|r| panic!("the publisher key works: {} {}", r.status, r.body));
    let listed = wait_external(&mut ada, "the hall camera in the list", |l| l.len() == 1);
    assert_eq!(listed[0]["kind"], "publisher");
    assert_eq!(listed[0]["label"], "Saalkamera");
    hears(&ada_view, BLUE, 880, true, "the hall camera in Ada's picture and sound");

    // OBS's own return feed (its session id as bearer) has the picture but not its own voice.
    let back = Viewer::start(server.addr, room, Some(&obs.token()));
    wait_external(&mut ada, "the return feed listed too", |l| l.len() == 2 && l[1]["access"] == "publisher");
    wait_for(Duration::from_secs(10), "the return feed without OBS's own tone", || {
        let (f, a) = (back.frame().ok_or("no frame")?, back.audio(WINDOW / 2).ok_or("no audio")?);
        let ok = coverage(&f, BLUE, TOLERANCE) >= PRESENT && tone_level(&a, 880.0) <= TONE_ABSENT;
        if ok { Ok(()) } else { Err(analysis::describe(Some(&f), Some(&a), &[BLUE], &[880])) }
    });
    assert_eq!(obs.leave(), 200);
    hears(&ada_view, BLUE, 880, false, "the hall camera gone after its DELETE");
    wait_external(&mut ada, "only the return feed listed", |l| l.len() == 1);
}

#[test]
fn open_media_lets_anonymous_clients_in_and_lists_them() {
    client::init();
    let server = Server::start_open();
    let room = "labor";
    let (mut ada, _, _) = Control::join(server.addr, room, "Ada");
    let _cam = Publisher::start(server.addr, room, BLUE, 880);
    let viewer = Viewer::start(server.addr, room, None);
    let listed = wait_external(&mut ada, "both anonymous clients listed", |l| l.len() == 2);
    assert!(listed.iter().all(|e| e["access"] == "open"), "{listed:?}");
    hears(&viewer, BLUE, 880, true, "an open room works as before");
    // The switch does not get past the waiting room.
    ada.send_json(&json!({"type": "set_waiting_room", "on": true}));
    wait_for(T, "the waiting room on", || {
        let m = ada.next(Duration::from_millis(200)).ok_or("nothing")?;
        if m["type"] == "room" && m["settings"]["waiting_room"] == true { Ok(()) } else { Err("not yet") }
    });
    assert_eq!(post(&server, "/whep/labor", None).status, 403);
}
