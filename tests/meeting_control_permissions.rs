//! Moderators decide, guests are refused with `forbidden`; a room password guards the
//! WebSocket and WHIP/WHEP (401, then 429 after 5 wrong tries a minute); the waiting room keeps
//! newcomers away from media and chat until admitted.

mod support;

use std::time::Duration;

use serde_json::json;
use support::client::{self, Viewer};
use support::server::Server;
use support::ws::Control;

const T: Duration = Duration::from_secs(5);

fn code(c: &mut Control) -> String {
    c.expect_type("error", T)["code"].as_str().unwrap_or("").to_string()
}

/// A recvonly offer with no usable codec: past the gate it gets 406, so the status tells
/// whether the gate let it through.
fn viewer_offer() -> &'static str {
    "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=fingerprint:sha-256 AB\r\na=ice-ufrag:abcd\r\n\
a=ice-pwd:0123456789012345678901\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\n\
a=recvonly\r\na=rtpmap:96 AV1/90000\r\n"
}

fn whep_status(server: &Server, room: &str, bearer: Option<&str>) -> u16 {
    let auth = bearer.map(|b| format!("Bearer {b}"));
    let mut headers = vec![("Content-Type", "application/sdp")];
    if let Some(a) = &auth {
        headers.push(("Authorization", a.as_str()));
    }
    server.request("POST", &format!("/whep/{room}"), &headers, viewer_offer().as_bytes()).status
}

#[test]
fn only_moderators_moderate() {
    let server = Server::start_with(&[]);
    let (mut ada, _, _) = Control::join(server.addr, "perm", "Ada");
    let (mut bo, bo_id, _) = Control::join(server.addr, "perm", "Bo");
    let (_cem, cem_id, _) = Control::join(server.addr, "perm", "Cem");
    for action in [
        json!({"type": "mute", "id": cem_id}),
        json!({"type": "mute_all"}),
        json!({"type": "remove", "id": cem_id}),
        json!({"type": "end_meeting"}),
        json!({"type": "set_layout", "layout": "speaker"}),
        json!({"type": "set_presentation", "on": true}),
        json!({"type": "set_presenter", "id": bo_id, "on": true}),
        json!({"type": "set_waiting_room", "on": true}),
        json!({"type": "set_password", "password": "x"}),
        json!({"type": "set_audience_chat", "on": false}),
        json!({"type": "allow_multiple_shares", "on": true}),
        json!({"type": "admit", "id": cem_id}),
    ] {
        bo.send_json(&action);
        let got = code(&mut bo);
        assert!(got == "forbidden", "a guest's {action}: got {got}");
    }
    // The opener moderates: muting Bo reaches Bo and shows in everyone's list.
    ada.send_json(&json!({"type": "mute", "id": bo_id}));
    bo.expect_type("muted", T);
    support::wait_for(T, "Bo muted in the list", || {
        let m = ada.next(Duration::from_millis(200)).ok_or("nothing")?;
        let list = m["participants"].as_array().ok_or("no list")?;
        let bo = list.iter().find(|p| p["name"] == "Bo").ok_or("no Bo")?;
        if bo["audio_muted"] == true { Ok(()) } else { Err("not muted") }
    });
    // Removing Cem ends Cem's connection.
    ada.send_json(&json!({"type": "remove", "id": cem_id}));
    support::wait_for(T, "Cem gone", || {
        let m = ada.next(Duration::from_millis(200)).ok_or("nothing")?;
        let list = m["participants"].as_array().ok_or("no list")?;
        if list.iter().all(|p| p["name"] != "Cem") { Ok(()) } else { Err("Cem listed") }
    });
}

#[test]
fn the_moderator_key_makes_a_second_moderator_and_is_shown_once() {
    let server = Server::start_with(&[]);
    let mut ada = Control::connect(server.addr, "keys");
    ada.send_json(&json!({"type": "join", "name": "Ada"}));
    let joined = ada.expect_type("joined", T);
    assert_eq!(joined["moderator"], true);
    let key = joined["moderator_key"].as_str().expect("the opener gets the key").to_string();
    assert_eq!(key.len(), 32, "128 bits, hex");
    let mut bo = Control::connect(server.addr, "keys");
    bo.send_json(&json!({"type": "join", "name": "Bo"}));
    let joined = bo.expect_type("joined", T);
    assert_eq!(joined["moderator"], false);
    assert!(joined.get("moderator_key").is_none(), "only the opener sees the key");
    let mut cem = Control::connect(server.addr, "keys");
    cem.send_json(&json!({"type": "join", "name": "Cem", "moderator_key": key}));
    let joined = cem.expect_type("joined", T);
    assert_eq!(joined["moderator"], true);
    assert!(joined.get("moderator_key").is_none());
    let mut eve = Control::connect(server.addr, "keys");
    eve.send_json(&json!({"type": "join", "name": "Eve", "moderator_key": "0123456789abcdef0123456789abcdef"}));
    assert_eq!(code(&mut eve), "forbidden");
}

#[test]
fn passwords_guard_the_room_and_wrong_ones_are_rate_limited() {
    client::init();
    let server = Server::start();
    let room = "locked";
    let (mut ada, _, ada_token) = Control::join(server.addr, room, "Ada");
    ada.send_json(&json!({"type": "set_password", "password": "Rathaus 2026"}));
    support::wait_for(T, "the password to be set", || {
        let m = ada.next(Duration::from_millis(200)).ok_or("nothing")?;
        if m["type"] == "room" && m["settings"]["password"] == true { Ok(()) } else { Err("not yet") }
    });

    // WebSocket joins.
    let mut c = Control::connect(server.addr, room);
    c.send_json(&json!({"type": "join", "name": "Bo"}));
    assert_eq!(code(&mut c), "password_required");
    c.send_json(&json!({"type": "join", "name": "Bo", "password": "rathaus 2026"}));
    assert_eq!(code(&mut c), "wrong_password");
    c.send_json(&json!({"type": "join", "name": "Bo", "password": "Rathaus 2026"}));
    c.expect_type("joined", T);

    // WHEP: the participant token works; anonymous viewers need the password.
    assert_eq!(whep_status(&server, room, None), 401);
    for _ in 0..3 {
        assert_eq!(whep_status(&server, room, Some("guess")), 401);
    }
    // One more wrong try on the WebSocket makes five from this address: then all are refused.
    let mut c = Control::connect(server.addr, room);
    c.send_json(&json!({"type": "join", "name": "Eve", "password": "guess"}));
    assert_eq!(code(&mut c), "wrong_password");
    assert_eq!(whep_status(&server, room, Some("Rathaus 2026")), 429, "even the right password waits now");
    let mut c = Control::connect(server.addr, room);
    c.send_json(&json!({"type": "join", "name": "Eve", "password": "Rathaus 2026"}));
    assert_eq!(code(&mut c), "rate_limited");
    // Participants who are in keep their access.
    let viewer = Viewer::start(server.addr, room, Some(&ada_token));
    assert!(viewer.location.starts_with("/whep/locked/"));
}

#[test]
fn the_waiting_room_keeps_newcomers_out_until_admitted() {
    let server = Server::start_with(&[]);
    let room = "lobby";
    let (mut ada, _, _) = Control::join(server.addr, room, "Ada");
    ada.send_json(&json!({"type": "set_waiting_room", "on": true}));
    // Only once the room says so: a newcomer who joined before the switch was applied is in.
    support::wait_for(T, "the waiting room on", || {
        let m = ada.next(Duration::from_millis(200)).ok_or("nothing")?;
        if m["type"] == "room" && m["settings"]["waiting_room"] == true { Ok(()) } else { Err("not yet") }
    });
    let (mut bo, bo_id, bo_token) = Control::join(server.addr, room, "Bo");
    bo.expect_type("waiting", T);
    // Waiting: no media, no chat, not listed.
    assert_eq!(whep_status(&server, room, Some(&bo_token)), 403);
    bo.send_json(&json!({"type": "chat", "text": "let me in"}));
    assert_eq!(code(&mut bo), "waiting");
    let lobby = support::wait_for(T, "Bo in Ada's lobby", || {
        let m = ada.next(Duration::from_millis(200)).ok_or("nothing")?;
        match m["waiting"].as_array() {
            Some(w) if m["type"] == "lobby" && w.len() == 1 => Ok(w[0].clone()),
            _ => Err("no lobby entry"),
        }
    });
    assert_eq!(lobby["name"], "Bo");
    ada.send_json(&json!({"type": "chat", "text": "secret"}));
    ada.send_json(&json!({"type": "admit", "id": bo_id}));
    bo.expect_type("admitted", T);
    let history = bo.expect_type("chat_history", T);
    assert_eq!(history["messages"][0]["text"], "secret", "admitted people see the history");
    assert_eq!(whep_status(&server, room, Some(&bo_token)), 406, "past the gate (the test offer has no usable codec)");

    // Refused: told and disconnected.
    let (mut eve, eve_id, _) = Control::join(server.addr, room, "Eve");
    eve.expect_type("waiting", T);
    ada.send_json(&json!({"type": "refuse", "id": eve_id}));
    let bye = eve.expect_type("bye", T);
    assert_eq!(bye["reason"], "refused");
}
