//! The encoding ladder: a receiver may ask for less than the room's top picture (`?quality=`,
//! `?max_kbps=` on WHEP; `set_quality` on the control WebSocket for a participant's own view)
//! and gets a smaller encode of the same composite, shared with every receiver on that rung,
//! or sound only. Moving between rungs happens at a keyframe of the new rung, without a gap.

mod support;

use std::time::{Duration, Instant};

use serde_json::json;
use support::analysis::{self, coverage, tone_level, PRESENT, TOLERANCE, TONE_PRESENT, WINDOW};
use support::client::{self, Codec, Publisher, Viewer, RED};
use support::server::Server;
use support::wait_for;
use support::ws::Control;

/// The test canvas is 640x360; the shipped ladder then has the canvas (500 kbit/s) and 180p.
const TOP: i32 = 360;
const LOW: i32 = 180;

fn sees_red_at(viewer: &Viewer, height: i32, what: &str) {
    wait_for(Duration::from_secs(10), what, || {
        let (f, a) = (viewer.frame().ok_or("no frame")?, viewer.audio(WINDOW / 2).ok_or("no audio")?);
        let h = viewer.received.lock().unwrap().decoded_height;
        let ok = h == Some(height) && coverage(&f, RED, TOLERANCE) >= PRESENT && tone_level(&a, 440.0) >= TONE_PRESENT;
        if ok { Ok(()) } else { Err(format!("height {h:?}, {}", analysis::describe(Some(&f), Some(&a), &[RED], &[440]))) }
    });
}

#[test]
fn receivers_get_the_rung_they_ask_for() {
    client::init();
    let server = Server::start_open();
    let room = "ladder";
    let _camera = Publisher::start(server.addr, room, RED, 440);
    for codec in [Codec::Vp8, Codec::H264] {
        let top = Viewer::start_with(server.addr, room, None, codec);
        let low = Viewer::start_query(server.addr, room, "quality=low", None, codec);
        let capped = Viewer::start_query(server.addr, room, "max_kbps=300", None, codec);
        sees_red_at(&top, TOP, &format!("{codec:?}: the top rung at the canvas size"));
        sees_red_at(&low, LOW, &format!("{codec:?}: quality=low at 180p"));
        sees_red_at(&capped, LOW, &format!("{codec:?}: max_kbps=300 below the 500 kbit/s top rung"));
    }
    // Audio only: sound, and no picture at all.
    let listener = Viewer::start_query(server.addr, room, "quality=audio", None, Codec::Vp8);
    wait_for(Duration::from_secs(10), "the audio-only receiver hears the room", || {
        let a = listener.audio(WINDOW / 2).ok_or("no audio")?;
        if tone_level(&a, 440.0) >= TONE_PRESENT { Ok(()) } else { Err("no tone") }
    });
    std::thread::sleep(Duration::from_secs(1));
    assert!(listener.frame().is_none(), "an audio-only receiver got video");
    // Bad values are refused with a reason.
    for query in ["quality=best", "max_kbps=0", "max_kbps=lots"] {
        let headers = [("Content-Type", "application/sdp")];
        let r = server.request("POST", &format!("/whep/{room}?{query}"), &headers, b"v=0\r\n");
        assert_eq!(r.status, 400, "{query}: {}", r.body);
    }
}

#[test]
fn a_participant_moves_between_rungs_without_a_gap() {
    client::init();
    let server = Server::start_open();
    let room = "datasaver";
    let _camera = Publisher::start(server.addr, room, RED, 440);
    let (mut ada, _, token) = Control::join(server.addr, room, "Ada");
    let view = Viewer::start(server.addr, room, Some(&token));
    sees_red_at(&view, TOP, "Ada's view at the top rung");

    for (quality, height) in [("low", LOW), ("auto", TOP), ("low", LOW)] {
        let asked = Instant::now();
        ada.send_json(&json!({"type": "set_quality", "quality": quality}));
        sees_red_at(&view, height, &format!("Ada's view after set_quality {quality}"));
        let took = view.received.lock().unwrap().height_changes.last().map(|(t, _)| t.saturating_duration_since(asked));
        let (frames, gap) = view.frames_since(asked);
        eprintln!("set_quality {quality}: new size after {took:?}, {frames} frames, longest gap {gap:?}");
        assert!(gap < Duration::from_millis(300), "the picture stood still for {gap:?} when moving to {quality}");
    }

    // Sound only: the picture stops, the sound goes on; back to auto brings the picture back.
    ada.send_json(&json!({"type": "set_quality", "quality": "audio"}));
    std::thread::sleep(Duration::from_secs(1));
    let stopped = Instant::now();
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(view.frames_since(stopped).0, 0, "frames arrived while audio only");
    let a = view.audio(WINDOW / 2).expect("audio");
    assert!(tone_level(&a, 440.0) >= TONE_PRESENT, "the sound goes on while audio only");
    ada.send_json(&json!({"type": "set_quality", "quality": "auto"}));
    sees_red_at(&view, TOP, "the picture back after audio only");
}
