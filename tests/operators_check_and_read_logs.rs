//! What an operator runs before and while serving: `plenum check` validates a config file and
//! the profiles without starting; `--log-format json` writes one JSON object a line, and at
//! info level nothing personal reaches the log over a whole meeting (no names, no chat, no
//! client addresses).

mod support;

use std::process::Command;
use std::time::Duration;

use serde_json::{json, Value};
use support::client::{self, Publisher, Source, Viewer, BLUE, RED};
use support::server::{Server, TEST_ARGS};
use support::ws::Control;

fn check(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_plenum")).arg("check").args(args).output().expect("plenum runs");
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn plenum_check_validates_without_starting() {
    let dir = std::env::temp_dir().join(format!("plenum-check-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let good = dir.join("good.toml");
    std::fs::write(&good, "listen = \"127.0.0.1:8099\"\ncanvas = \"1280x720\"\nfps = 25\n").unwrap();
    let (ok, stdout, stderr) = check(&["--config", good.to_str().unwrap()]);
    assert!(ok && stdout.starts_with("ok:") && stdout.contains("1280x720@25") && stdout.contains("127.0.0.1:8099"), "{stdout}{stderr}");
    // Nothing listens: the address is free for the real start.
    assert!(std::net::TcpListener::bind("127.0.0.1:8099").is_ok(), "check must not listen");

    for (text, names) in [("fps = 99\n", "fps"), ("canvas = \"huge\"\n", "canvas"), ("fpz = 3\n", "fpz"), ("listen = [\n", "config")] {
        let bad = dir.join("bad.toml");
        std::fs::write(&bad, text).unwrap();
        let (ok, stdout, stderr) = check(&["--config", bad.to_str().unwrap()]);
        assert!(!ok && stdout.is_empty() && stderr.contains(names), "{text:?}: {stdout}{stderr}");
        eprintln!("{text:?} -> {}", stderr.lines().last().unwrap_or(""));
    }
    let (ok, _, stderr) = check(&["--h264-profile", "no-such-profile"]);
    assert!(!ok && stderr.contains("no-such-profile"), "{stderr}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn json_logs_carry_nothing_personal_over_a_meeting() {
    client::init();
    let (server, lines) = Server::start_logging(&["--log-format", "json"], TEST_ARGS, "info");
    let room = "vertraulich";
    let (mut ada, ada_token, _) = Control::join_first(server.addr, room, "Adelheid Mustermann");
    let (mut bo, _, bo_token) = Control::join(server.addr, room, "Bonifaz Beispiel");
    let _red = Publisher::start_as(server.addr, room, Source::new(RED, 440), Some(&ada_token));
    let _blue = Publisher::start_as(server.addr, room, Source::new(BLUE, 660), Some(&bo_token));
    let viewer = Viewer::start(server.addr, room, Some(&bo_token));
    support::wait_for(Duration::from_secs(15), "a picture at the viewer", || viewer.frame().map(|_| ()).ok_or("none yet"));
    bo.send_json(&json!({"type": "chat", "text": "Meine Diagnose ist vertraulich 4711"}));
    ada.expect_type("chat", Duration::from_secs(5));
    ada.send_json(&json!({"type": "set_password", "password": "Kennwort-0815"}));
    ada.send_json(&json!({"type": "mute", "id": "p2"}));
    drop(viewer);
    bo.send_json(&json!({"type": "leave"}));
    std::thread::sleep(Duration::from_secs(2));
    drop(server);
    std::thread::sleep(Duration::from_millis(300));

    let lines = lines.lock().unwrap().clone();
    assert!(lines.len() >= 5, "a meeting is logged at info: {lines:?}");
    for line in &lines {
        let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}"));
        assert!(v["level"].is_string() && v["message"].is_string() && v["timestamp"].is_string(), "{line}");
        for secret in ["Adelheid", "Mustermann", "Bonifaz", "Beispiel", "Diagnose", "4711", "Kennwort", &ada_token, &bo_token] {
            assert!(!line.contains(secret), "the log carries {secret:?}: {line}");
        }
        // The server's own listening address is logged once; no other address is.
        if v["message"] != "listening" {
            assert!(!line.contains("127.0.0.1"), "the log carries an address: {line}");
        }
    }
    let messages: Vec<&str> = lines.iter().filter_map(|l| l.split("\"message\":\"").nth(1)?.split('"').next()).collect();
    eprintln!("{} JSON lines at info, e.g. {:?}", lines.len(), &messages[..messages.len().min(12)]);
}
