//! A shared screen (a second WHIP session with `?screen=1`) switches the picture to the
//! presentation layout: the screen large, the cameras in a strip. One share at a time unless a
//! moderator allows more; stopping the share returns to the grid.

mod support;

use std::time::Duration;

use serde_json::json;
use support::analysis::{self, coverage, PRESENT, TOLERANCE};
use support::client::{self, Publisher, Source, Viewer, BLUE, GREEN, RED};
use support::server::Server;
use support::wait_for;
use support::ws::Control;

fn shares(viewer: &Viewer) -> Result<[f64; 3], String> {
    let f = viewer.frame().ok_or("no frame")?;
    Ok([RED, GREEN, BLUE].map(|c| coverage(&f, c, TOLERANCE)))
}

#[test]
fn a_shared_screen_is_shown_large() {
    client::init();
    let server = Server::start_open();
    let room = "slides";
    let (mut ada, _, ada_token) = Control::join(server.addr, room, "Ada");
    let (_bo, _, bo_token) = Control::join(server.addr, room, "Bo");
    let _ada_cam = Publisher::start_as(server.addr, room, Source::new(RED, 440), Some(&ada_token));
    let _bo_cam = Publisher::start_as(server.addr, room, Source::new(GREEN, 660), Some(&bo_token));
    let viewer = Viewer::start(server.addr, room, None);
    wait_for(Duration::from_secs(10), "two cameras side by side", || {
        let [r, g, _] = shares(&viewer)?;
        if r >= 0.25 && g >= 0.25 { Ok(()) } else { Err(format!("red {r:.3} green {g:.3}")) }
    });

    // The moderator's speaker layout: one of the two (the first to speak) large.
    ada.send_json(&json!({"type": "set_layout", "layout": "speaker"}));
    wait_for(Duration::from_secs(10), "one camera large, one small", || {
        let [r, g, _] = shares(&viewer)?;
        let (big, small) = if r > g { (r, g) } else { (g, r) };
        // The stage is 1280x562 (78 % of the canvas); a camera is cropped to fill it.
        if big >= 0.35 && small > 0.005 && small < 0.1 { Ok(()) } else { Err(format!("red {r:.3} green {g:.3}")) }
    });
    ada.send_json(&json!({"type": "set_layout", "layout": "grid"}));

    let screen = Publisher::share_screen(server.addr, room, Source { audio: false, width: 640, height: 360, ..Source::new(BLUE, 0) }, &bo_token);
    wait_for(Duration::from_secs(10), "the screen large, the cameras small", || {
        let [r, g, b] = shares(&viewer)?;
        // A 16:9 screen shown whole on the 1280x562 stage covers 61 % of the canvas, less the
        // presenter's name plate inside it.
        if b >= 0.55 && (0.01..0.15).contains(&r) && (0.01..0.15).contains(&g) {
            Ok(())
        } else {
            Err(analysis::describe(viewer.frame().as_deref(), None, &[RED, GREEN, BLUE], &[]))
        }
    });

    // A second share is refused while one runs...
    let sdp = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=fingerprint:sha-256 AB\r\na=ice-ufrag:abcd\r\n\
a=ice-pwd:0123456789012345678901\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\na=sendonly\r\na=rtpmap:96 VP8/90000\r\n";
    let auth = format!("Bearer {ada_token}");
    let headers = [("Content-Type", "application/sdp"), ("Authorization", auth.as_str())];
    let r = server.request("POST", &format!("/whip/{room}?screen=1"), &headers, sdp.as_bytes());
    assert_eq!(r.status, 403, "{}", r.body);
    // ...unless the moderator allows more.
    ada.send_json(&json!({"type": "allow_multiple_shares", "on": true}));
    wait_for(Duration::from_secs(5), "the setting", || {
        let m = ada.next(Duration::from_millis(200)).ok_or("nothing")?;
        if m["type"] == "room" && m["settings"]["multiple_shares"] == true { Ok(()) } else { Err("not yet") }
    });
    let r = server.request("POST", &format!("/whip/{room}?screen=1"), &headers, sdp.as_bytes());
    assert_ne!(r.status, 403, "allowed now: {}", r.body);

    // Stopping the share returns to the grid.
    assert_eq!(screen.leave(), 200);
    wait_for(Duration::from_secs(10), "back to two cameras", || {
        let [r, g, b] = shares(&viewer)?;
        if r >= 0.25 && g >= 0.25 && b < PRESENT { Ok(()) } else { Err(format!("red {r:.3} green {g:.3} blue {b:.3}")) }
    });
}
