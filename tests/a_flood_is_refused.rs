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
