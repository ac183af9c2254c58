//! The control WebSocket answers bad input with typed errors or a clean close, never a crash,
//! and other participants notice nothing.

mod support;

use std::time::Duration;

use serde_json::json;
use support::server::Server;
use support::ws::Control;

const T: Duration = Duration::from_secs(5);

fn error_code(c: &mut Control) -> String {
    c.expect_type("error", T)["code"].as_str().unwrap_or("").to_string()
}

#[test]
fn bad_messages_get_typed_errors_and_others_are_unaffected() {
    let server = Server::start_with(&[]);
    let (mut ada, ada_id, _) = Control::join(server.addr, "protocol", "Ada");
    let (mut bo, _, _) = Control::join(server.addr, "protocol", "Bo");

    // Before joining: everything but join (and ping) is refused.
    let mut early = Control::connect(server.addr, "protocol");
    early.send_json(&json!({"type": "chat", "text": "hi"}));
    assert_eq!(error_code(&mut early), "not_joined");
    early.send_json(&json!({"type": "join", "name": "   "}));
    assert_eq!(error_code(&mut early), "bad_name");

    // Unknown type, malformed JSON, wrong fields, binary, oversized text frame.
    ada.send_json(&json!({"type": "teleport"}));
    assert_eq!(error_code(&mut ada), "bad_message");
    ada.send_text("{not json").unwrap();
    assert_eq!(error_code(&mut ada), "bad_message");
    ada.send_json(&json!({"type": "chat", "txt": "typo"}));
    assert_eq!(error_code(&mut ada), "bad_message");
    ada.send_binary(vec![1, 2, 3]).unwrap();
    assert_eq!(error_code(&mut ada), "binary");
    ada.send_json(&json!({"type": "chat", "text": "x".repeat(9000)}));
    assert_eq!(error_code(&mut ada), "too_large");
    ada.send_json(&json!({"type": "join", "name": "Again"}));
    assert_eq!(error_code(&mut ada), "already_joined");
    ada.send_json(&json!({"type": "chat", "text": "y".repeat(1001)}));
    assert_eq!(error_code(&mut ada), "bad_text");

    // A chat flood is rate limited with typed errors; the first messages still arrive.
    for i in 0..20 {
        ada.send_json(&json!({"type": "chat", "text": format!("flood {i}")}));
    }
    let mut limited = 0;
    let mut delivered = 0;
    while let Some(m) = ada.next(Duration::from_millis(500)) {
        if m["type"] == "error" && m["code"] == "rate_limited" {
            limited += 1;
        }
        if m["type"] == "chat" {
            delivered += 1;
        }
    }
    assert!(limited >= 10, "flood: {limited} rate-limited replies");
    assert!((1..=6).contains(&delivered), "flood: {delivered} delivered");

    // Bo saw Ada's accepted lines with her name, and nothing of her mistakes.
    let line = bo.expect_type("chat", T);
    assert_eq!(line["name"], "Ada");
    assert_eq!(line["from"], ada_id.as_str());
    assert_eq!(line["text"], "flood 0");

    // A frame beyond the transport limit closes that connection cleanly; the server lives on.
    let mut huge = Control::connect(server.addr, "protocol");
    let _ = huge.send_text(&"z".repeat(200_000));
    assert!(huge.closed_within(T), "oversized frame should close the connection");
    assert_eq!(server.get("/healthz").status, 200);

    // Bo is unaffected: ping still answered, chat still works.
    bo.send_json(&json!({"type": "ping"}));
    bo.expect_type("pong", T);
    bo.send_json(&json!({"type": "chat", "text": "still here"}));
    let echo = bo.expect_type("chat", T);
    assert_eq!(echo["text"], "still here");
}

#[test]
fn late_joiners_get_history_and_leavers_leave_the_list() {
    let server = Server::start_with(&[]);
    let (mut ada, _, _) = Control::join(server.addr, "history", "Ada");
    ada.send_json(&json!({"type": "chat", "text": "<b>hello</b>"}));
    ada.expect_type("chat", T);
    let mut late = Control::connect(server.addr, "history");
    late.send_json(&json!({"type": "join", "name": "Late"}));
    late.expect_type("joined", T);
    let history = late.expect_type("chat_history", T);
    assert_eq!(history["messages"][0]["text"], "<b>hello</b>", "text is passed on verbatim, never interpreted");
    let list = late.expect_type("participants", T);
    let names: Vec<&str> = list["participants"].as_array().unwrap().iter().filter_map(|p| p["name"].as_str()).collect();
    assert_eq!(names, ["Ada", "Late"]);

    // Ada's mute shows in the list; then she leaves.
    ada.send_json(&json!({"type": "set_media", "audio_muted": true, "video_muted": false}));
    let muted = support::wait_for(T, "Ada's mute in the list", || {
        let m = late.next(Duration::from_millis(200)).ok_or("nothing")?;
        let ada = m["participants"].as_array().and_then(|l| l.iter().find(|p| p["name"] == "Ada").cloned()).ok_or("no list")?;
        if ada["audio_muted"] == true { Ok(ada) } else { Err("not muted yet") }
    });
    assert_eq!(muted["video_muted"], false);
    ada.send_json(&json!({"type": "leave"}));
    ada.expect_type("bye", T);
    support::wait_for(T, "Ada gone from the list", || {
        let m = late.next(Duration::from_millis(200)).ok_or("nothing")?;
        let list = m["participants"].as_array().ok_or("not a list")?;
        if list.len() == 1 && list[0]["name"] == "Late" { Ok(()) } else { Err("Ada still listed") }
    });
}
