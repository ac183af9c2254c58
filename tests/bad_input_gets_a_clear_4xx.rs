//! Every kind of bad request gets a 4xx with a one-line reason, and the server goes on serving:
//! after each one /healthz answers, and at the end a real publisher still gets in.

mod support;

use support::client::{self, Publisher, Viewer, RED};
use support::server::Server;

const NO_USABLE_CODEC: &str = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n\
a=group:BUNDLE 0 1\r\na=fingerprint:sha-256 AB:CD\r\na=ice-ufrag:abcd\r\na=ice-pwd:0123456789012345678901\r\n\
m=audio 9 UDP/TLS/RTP/SAVPF 0\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\na=sendonly\r\na=rtpmap:0 PCMU/8000\r\n\
m=video 9 UDP/TLS/RTP/SAVPF 45\r\nc=IN IP4 0.0.0.0\r\na=mid:1\r\na=sendonly\r\na=rtpmap:45 AV1/90000\r\n";

fn check(server: &Server, what: &str, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8], want: u16) {
    let r = server.request(method, path, headers, body);
    assert_eq!(r.status, want, "{what}: got {} {:?}", r.status, r.body);
    let reason = r.body.trim();
    assert!(!reason.is_empty() && reason.lines().count() == 1, "{what}: reason must be one line, got {:?}", r.body);
    let health = server.get("/healthz");
    assert_eq!(health.status, 200, "{what}: server stopped serving");
}

#[test]
fn bad_requests_are_refused_with_reasons_and_harm_nothing() {
    client::init();
    let server = Server::start_open();
    let sdp = [("Content-Type", "application/sdp")];
    // Another room is live throughout and must not notice any of it.
    let bystander = Publisher::start(server.addr, "bystanders", client::GREEN, 660);
    let watcher = Viewer::start(server.addr, "bystanders", None);
    support::wait_for(std::time::Duration::from_secs(10), "the bystander room in steady state", || {
        let f = watcher.frame().ok_or("no frame")?;
        let steady = watcher.frames_since(std::time::Instant::now() - std::time::Duration::from_secs(1)).0 >= 10;
        let green = support::analysis::coverage(&f, client::GREEN, support::analysis::TOLERANCE) >= support::analysis::PRESENT;
        if steady && green { Ok(()) } else { Err("not yet") }
    });
    let barrage = std::time::Instant::now();

    for flow in ["whip", "whep"] {
        let path = format!("/{flow}/room-1");
        check(&server, "garbage SDP", "POST", &path, &sdp, b"this is not sdp", 400);
        check(&server, "SDP without media", "POST", &path, &sdp, b"v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n", 400);
        check(&server, "binary body", "POST", &path, &sdp, &[0xff, 0xfe, 0x00, 0x80], 400);
        check(&server, "no usable codec", "POST", &path, &sdp, NO_USABLE_CODEC.as_bytes(), 406);
        let long_label = format!("{path}?label={}", "x".repeat(41));
        check(&server, "label over 40 characters", "POST", &long_label, &sdp, NO_USABLE_CODEC.as_bytes(), 400);
        check(&server, "wrong content type", "POST", &path, &[("Content-Type", "application/json")], b"{}", 415);
        check(&server, "missing content type", "POST", &path, &[], NO_USABLE_CODEC.as_bytes(), 415);
        let huge = format!("v=0\r\n{}", "a=x\r\n".repeat(14_000));
        check(&server, "body over 64 KiB", "POST", &path, &sdp, huge.as_bytes(), 413);
        for bad_room in ["Bad%20Room", "a.b", "%C3%A4", &"x".repeat(65)] {
            check(&server, "bad room name", "POST", &format!("/{flow}/{bad_room}"), &sdp, NO_USABLE_CODEC.as_bytes(), 400);
        }
        let unknown = "0123456789abcdef0123456789abcdef";
        check(&server, "unknown session", "DELETE", &format!("/{flow}/room-1/{unknown}"), &[], b"", 404);
        check(&server, "malformed session", "DELETE", &format!("/{flow}/room-1/xyz"), &[], b"", 404);
        check(&server, "unknown room", "DELETE", &format!("/{flow}/never-used/{unknown}"), &[], b"", 404);
        check(
            &server,
            "trickle with wrong type",
            "PATCH",
            &format!("/{flow}/room-1/{unknown}"),
            &[("Content-Type", "text/plain")],
            b"a=candidate:1 1 UDP 1 127.0.0.1 9 typ host",
            415,
        );
        check(
            &server,
            "trickle for unknown session",
            "PATCH",
            &format!("/{flow}/room-1/{unknown}"),
            &[("Content-Type", "application/trickle-ice-sdpfrag")],
            b"a=candidate:1 1 UDP 1 127.0.0.1 9 typ host",
            404,
        );
    }
    check(&server, "unknown endpoint", "GET", "/nope", &[], b"", 404);
    // A browser that opens an address leading nowhere gets a page in the client's style (its
    // language chosen there) with the way back, and the same status.
    let html = [("Accept", "text/html,application/xhtml+xml,*/*;q=0.8")];
    for (path, want, kind) in [("/r/Bad%20Name!", 400, "bad_room_name"), ("/r/", 404, "page_not_found"), ("/nope", 404, "page_not_found"), ("/watch/no%20room!", 400, "bad_room_name")] {
        let r = server.request("GET", path, &html, b"");
        assert_eq!(r.status, want, "{path}: {}", r.body);
        assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"), "{path}");
        assert!(r.body.contains(&format!(r#"data-error="{kind}""#)) && r.body.contains(r#"href="/""#), "{path}: {}", r.body);
    }
    let bad_bearer = [("Content-Type", "application/sdp"), ("Authorization", "Bearer nonsense")];
    check(&server, "malformed bearer", "POST", "/whep/room-1", &bad_bearer, NO_USABLE_CODEC.as_bytes(), 401);

    // Look at the barrage and one second after it.
    std::thread::sleep(std::time::Duration::from_secs(1));
    let (frames, gap) = watcher.frames_since(barrage);
    assert!(frames > 0 && gap < std::time::Duration::from_millis(500), "the other room stalled: {frames} frames, gap {gap:?}");
    drop((bystander, watcher));

    // After all that, real sessions work, and a bearer that names no publisher is refused.
    let publisher = Publisher::start(server.addr, "room-1", RED, 440);
    let viewer = Viewer::start(server.addr, "room-1", Some(&publisher.token()));
    assert!(viewer.location.starts_with("/whep/room-1/"));
    let stranger = [("Content-Type", "application/sdp"), ("Authorization", "Bearer 0123456789abcdef0123456789abcdef")];
    let r = server.request("POST", "/whep/room-1", &stranger, NO_USABLE_CODEC.replace("AV1", "VP8").as_bytes());
    assert_eq!(r.status, 401, "{}", r.body);
    assert_eq!(publisher.leave(), 200);
    assert_eq!(viewer.leave(), 200);
}

#[test]
fn browsers_on_other_origins_may_use_whip_and_whep() {
    let server = Server::start_with(&[]);
    for path in ["/whip/r", "/whep/r"] {
        let r = server.request("OPTIONS", path, &[("Origin", "https://example.org"), ("Access-Control-Request-Method", "POST")], b"");
        assert_eq!(r.status, 204, "{path}");
        assert_eq!(r.header("access-control-allow-origin"), Some("*"));
        assert!(r.header("access-control-allow-methods").unwrap_or("").contains("POST"));
        assert!(r.header("access-control-allow-headers").unwrap_or("").contains("Authorization"));
        assert!(r.header("access-control-expose-headers").unwrap_or("").contains("Location"));
        assert_eq!(r.header("accept-post"), Some("application/sdp"));
    }
}
