//! One client opening sessions as fast as it can is held to its rate: after its burst it gets
//! `429` with `Retry-After` (before any SDP is parsed), while another room's viewer keeps its
//! frame rate and another client still gets in.

mod support;

use std::net::IpAddr;
use std::time::{Duration, Instant};

use support::client::{self, Publisher, Viewer, GREEN};
use support::http;
use support::server::Server;

/// A receive-only offer a real peer could send (VP8 and Opus): every accepted one builds a
/// session on the server.
const OFFER: &str = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0 1\r\n\
a=fingerprint:sha-256 AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89\r\n\
a=ice-ufrag:abcd\r\na=ice-pwd:0123456789012345678901\r\n\
m=video 9 UDP/TLS/RTP/SAVPF 96\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\na=recvonly\r\na=rtcp-mux\r\na=setup:actpass\r\na=rtpmap:96 VP8/90000\r\n\
m=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\na=mid:1\r\na=recvonly\r\na=rtcp-mux\r\na=setup:actpass\r\na=rtpmap:111 opus/48000/2\r\n";

#[test]
fn a_flooding_address_gets_429_and_other_rooms_keep_their_frame_rate() {
    client::init();
    let server = Server::start_open();
    let _publisher = Publisher::start(server.addr, "bystanders", GREEN, 660);
    let watcher = Viewer::start(server.addr, "bystanders", None);
    support::wait_for(Duration::from_secs(15), "the bystander room in steady state", || {
        let steady = watcher.frames_since(Instant::now() - Duration::from_secs(1)).0 >= 12;
        if steady { Ok(()) } else { Err("not yet") }
    });

    // From 127.0.0.2: as many WHEP offers as it can send in 3 s.
    let flooder: IpAddr = "127.0.0.2".parse().unwrap();
    let headers = [("Content-Type", "application/sdp")];
    let start = Instant::now();
    let (mut accepted, mut refused, mut other) = (0, 0, Vec::new());
    let mut retry_after = None;
    while start.elapsed() < Duration::from_secs(3) {
        let r = http::request_from(flooder, server.addr, "POST", "/whep/flood", &headers, OFFER.as_bytes());
        match r.status {
            201 => accepted += 1,
            429 => {
                refused += 1;
                retry_after = r.header("retry-after").map(str::to_string);
                assert!(r.body.contains("too many new sessions"), "{}", r.body);
            }
            s => other.push(s),
        }
    }
    let (frames, gap) = watcher.frames_since(start);
    let fps = frames as f64 / start.elapsed().as_secs_f64();
    eprintln!("flood of 3 s: {accepted} sessions accepted, {refused} refused (Retry-After {retry_after:?}), other {other:?}; the bystanders' viewer {fps:.1} fps, longest gap {gap:?}");
    assert!(other.is_empty(), "every offer is answered 201 or 429: {other:?}");
    assert!((30..=50).contains(&accepted), "a burst of 30 and 5 a second: {accepted}");
    assert!(refused > accepted, "the rest is refused: {refused}");
    assert!(retry_after.as_deref().and_then(|s| s.parse::<u64>().ok()).is_some_and(|s| (1..=2).contains(&s)), "Retry-After: {retry_after:?}");
    // The test's canvas runs at 15 fps.
    assert!(fps >= 13.5 && gap < Duration::from_millis(300), "the other room kept its picture: {fps:.1} fps, gap {gap:?}");
    // Another address is not held back.
    let r = http::request(server.addr, "POST", "/whep/flood", &headers, OFFER.as_bytes());
    assert_eq!(r.status, 201, "another client still gets in: {}", r.body);
}

/// At most `--sessions-per-address` sessions open at once per address: the next gets `429`
/// until one ends, however it ends (DELETE, or a peer that never connects and is dropped after
/// 10 s); another address is not affected.
#[test]
fn an_address_holds_a_bounded_number_of_open_sessions() {
    client::init();
    let mut args = support::server::OPEN_TEST_ARGS.to_vec();
    args.extend(["--sessions-per-address", "3"]);
    let server = Server::start_with(&args);
    let (a, b): (IpAddr, IpAddr) = ("127.0.0.2".parse().unwrap(), "127.0.0.3".parse().unwrap());
    let headers = [("Content-Type", "application/sdp")];
    let offer = |from: IpAddr| http::request_from(from, server.addr, "POST", "/whep/bounded", &headers, OFFER.as_bytes());
    let opened: Vec<String> = (0..3)
        .map(|_| {
            let r = offer(a);
            assert_eq!(r.status, 201, "{}", r.body);
            r.header("location").expect("a Location").to_string()
        })
        .collect();
    let refused = offer(a);
    assert_eq!(refused.status, 429, "{}", refused.body);
    assert!(refused.body.contains("too many open sessions") && refused.header("retry-after").is_some(), "{refused:?}");
    assert_eq!(offer(b).status, 201, "another address has its own sessions");

    // One ends by DELETE: its place is free at once.
    assert_eq!(http::request(server.addr, "DELETE", &opened[0], &[], b"").status, 200);
    assert_eq!(offer(a).status, 201, "a session ended by DELETE gives its place back");
    assert_eq!(offer(a).status, 429);

    // None of these peers ever connects: the server drops each 10 s after it came, and its
    // place with it.
    let start = Instant::now();
    for _ in 0..3 {
        support::wait_for(Duration::from_secs(25), "the places of sessions that never connected to be free", || {
            let r = offer(a);
            if r.status == 201 { Ok(()) } else { Err(format!("{} {}", r.status, r.body.trim())) }
        });
    }
    eprintln!("the three places of never-connected sessions free after {:?}", start.elapsed());
    assert_eq!(offer(a).status, 429, "and the bound holds again");
}

/// At most `--max-rooms` rooms at once: one more gets `503` with the reason (a room that is
/// open still takes new sessions; a WebSocket gets the typed error `server_full`); when a room has
/// closed, a new one opens.
#[test]
fn a_server_holds_at_most_its_rooms() {
    client::init();
    let mut args = support::server::OPEN_TEST_ARGS.to_vec();
    args.extend(["--max-rooms", "2", "--empty-room-grace-secs", "1"]);
    let server = Server::start_with(&args);
    let headers = [("Content-Type", "application/sdp")];
    let offer = |room: &str| http::request(server.addr, "POST", &format!("/whep/{room}"), &headers, OFFER.as_bytes());
    assert_eq!(offer("first").status, 201);
    let second = offer("second");
    assert_eq!(second.status, 201);
    let third = offer("third");
    assert_eq!(third.status, 503, "{}", third.body);
    assert!(third.body.contains("as many rooms as it may (2)") && third.header("retry-after").is_some(), "{third:?}");
    assert_eq!(offer("first").status, 201, "an open room still takes sessions");
    // A browser opening a third room is told why on its WebSocket (a page cannot read the
    // status of a refused upgrade).
    let mut socket = support::ws::Control::connect(server.addr, "third");
    let told = socket.expect_type("error", Duration::from_secs(5));
    assert_eq!(told["code"], "server_full", "{told}");
    // The second room's only session ends; a second later the room is gone and the third opens.
    let location = second.header("location").expect("a Location");
    assert_eq!(http::request(server.addr, "DELETE", location, &[], b"").status, 200);
    let start = Instant::now();
    support::wait_for(Duration::from_secs(10), "the emptied room to close and the third to open", || {
        let r = offer("third");
        if r.status == 201 { Ok(()) } else { Err(format!("{} {}", r.status, r.body.trim())) }
    });
    eprintln!("the third room opened {:?} after the second emptied", start.elapsed());
}
