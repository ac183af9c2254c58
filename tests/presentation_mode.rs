//! Presentation mode ("Vortragsmodus"): only presenters are seen and heard. An audience member
//! may not send; a moderator lets a raised hand speak (their colour and tone join the mix) and
//! takes the word back (they leave it again).

mod support;

use std::time::Duration;

use serde_json::json;
use support::analysis::{self, coverage, tone_level, ABSENT, PRESENT, TOLERANCE, TONE_ABSENT, TONE_PRESENT, WINDOW};
use support::client::{self, Publisher, Source, Viewer, GREEN, RED};
use support::server::Server;
use support::wait_for;
use support::ws::Control;

const T: Duration = Duration::from_secs(5);

fn mix(viewer: &Viewer, ada: bool, bo: bool, what: &str) {
    wait_for(Duration::from_secs(10), what, || {
        let frame = viewer.frame();
        let audio = viewer.audio(WINDOW / 2);
        let ok = match (&frame, &audio) {
            (Some(f), Some(a)) => [(RED, 440.0, ada), (GREEN, 660.0, bo)].iter().all(|(c, t, on)| {
                let (seen, heard) = (coverage(f, *c, TOLERANCE), tone_level(a, *t));
                if *on { seen >= PRESENT && heard >= TONE_PRESENT } else { seen <= ABSENT && heard <= TONE_ABSENT }
            }),
            _ => false,
        };
        if ok { Ok(()) } else { Err(analysis::describe(frame.as_deref(), audio.as_deref(), &[RED, GREEN], &[440, 660])) }
    });
}

fn whip_status(server: &Server, room: &str, token: &str) -> u16 {
    let offer = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=fingerprint:sha-256 AB\r\na=ice-ufrag:abcd\r\n\
a=ice-pwd:0123456789012345678901\r\nm=audio 9 UDP/TLS/RTP/SAVPF 9\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\na=sendonly\r\na=rtpmap:9 G722/8000\r\n";
    let auth = format!("Bearer {token}");
    let headers = [("Content-Type", "application/sdp"), ("Authorization", auth.as_str())];
    server.request("POST", &format!("/whip/{room}"), &headers, offer.as_bytes()).status
}

#[test]
fn only_presenters_are_seen_and_heard() {
    client::init();
    let server = Server::start_open();
    let room = "council";
    let (mut ada, _, ada_token) = Control::join(server.addr, room, "Ada");
    let (mut bo, bo_id, bo_token) = Control::join(server.addr, room, "Bo");
    let _ada_cam = Publisher::start_as(server.addr, room, Source::new(RED, 440), Some(&ada_token));
    let bo_cam = Publisher::start_as(server.addr, room, Source::new(GREEN, 660), Some(&bo_token));
    let viewer = Viewer::start(server.addr, room, None);
    mix(&viewer, true, true, "both before presentation mode");

    ada.send_json(&json!({"type": "set_presentation", "on": true}));
    let speak = bo.expect_type("speak", T);
    assert_eq!(speak["allowed"], false);
    mix(&viewer, true, false, "only the presenter (Ada) in presentation mode");
    wait_for(T, "the audience counted (Bo) in Ada's list", || {
        let m = ada.next(Duration::from_millis(200)).ok_or("nothing")?;
        if m["type"] == "participants" && m["audience"] == 1 { Ok(()) } else { Err(format!("last: {m}")) }
    });
    drop(bo_cam);
    assert_eq!(whip_status(&server, room, &bo_token), 403, "the audience may not send");

    // Bo raises his hand; the moderator sees it and lets him speak.
    bo.send_json(&json!({"type": "raise_hand", "raised": true}));
    wait_for(T, "Bo's raised hand at the moderator", || {
        let m = ada.next(Duration::from_millis(200)).ok_or("nothing")?;
        let list = m["participants"].as_array().ok_or("no list")?;
        if list.iter().any(|p| p["name"] == "Bo" && p["hand_raised"] == true) { Ok(()) } else { Err("no hand") }
    });
    ada.send_json(&json!({"type": "set_presenter", "id": bo_id, "on": true}));
    let speak = bo.expect_type("speak", T);
    assert_eq!(speak["allowed"], true);
    let _bo_cam = Publisher::start_as(server.addr, room, Source::new(GREEN, 660), Some(&bo_token));
    mix(&viewer, true, true, "Bo seen and heard once allowed to speak");

    // The word taken back: Bo leaves the mix at once.
    ada.send_json(&json!({"type": "set_presenter", "id": bo_id, "on": false}));
    assert_eq!(bo.expect_type("speak", T)["allowed"], false);
    mix(&viewer, true, false, "Bo gone after the word was taken back");

    // Presentation mode off: everyone may send again.
    ada.send_json(&json!({"type": "set_presentation", "on": false}));
    let speak = bo.expect_type("speak", T);
    assert_eq!(speak["allowed"], true);
}
