//! Three identical nodes and a real redis-server (`--redis`): every room has exactly one
//! owner, whichever node is asked and however many ask at once; new rooms spread evenly over
//! the nodes; WHIP and WHEP sent to a node that does not hold the room are redirected (307) to
//! the one that does, and the media works there (colours and tones).

mod support;

use std::collections::HashMap;
use std::sync::{Arc, Barrier};
use std::time::Duration;

use support::analysis::{self, coverage, tone_level, PRESENT, TOLERANCE, TONE_PRESENT, WINDOW};
use support::client::{self, Publisher, Viewer, GREEN};
use support::redis::Redis;
use support::server::{Server, OPEN_TEST_ARGS};
use support::wait_for;

const IDS: [&str; 3] = ["node-a", "node-b", "node-c"];

fn node(redis: &Redis, id: &str) -> Server {
    Server::start_with(&[OPEN_TEST_ARGS, &["--redis", &redis.url(), "--node-id", id]].concat())
}

/// Starts the nodes and waits until each one's heartbeat is in Redis.
fn pool(redis: &Redis, n: usize) -> Vec<Server> {
    let nodes: Vec<Server> = IDS[..n].iter().map(|id| node(redis, id)).collect();
    wait_for(Duration::from_secs(10), "every node's heartbeat in Redis", || {
        let missing: Vec<&str> = IDS[..n].iter().copied().filter(|id| redis.get(&format!("plenum:node:{id}")).is_none()).collect();
        if missing.is_empty() { Ok(()) } else { Err(format!("no heartbeat from {missing:?}")) }
    });
    nodes
}

/// The node that `via` says hosts `room`: its id and URL (`GET /api/rooms/{room}`).
fn host(via: &Server, room: &str) -> (String, String) {
    let r = via.get(&format!("/api/rooms/{room}"));
    assert_eq!(r.status, 200, "room info: {}", r.body);
    let v: serde_json::Value = serde_json::from_str(&r.body).expect("room info is JSON");
    let node = &v["node"];
    (node["id"].as_str().expect("a node id").to_string(), node["url"].as_str().expect("a node URL").to_string())
}

#[test]
fn rooms_spread_over_the_nodes_with_one_owner_each() {
    let redis = Redis::start();
    let nodes = pool(&redis, 3);
    let urls: HashMap<String, String> = IDS.iter().zip(&nodes).map(|(id, n)| (id.to_string(), format!("http://{}", n.addr))).collect();

    // 30 rooms, each asked for first through a node picked at random.
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut rooms_of: HashMap<String, u32> = HashMap::new();
    for i in 0..30 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let room = format!("room-{i}");
        let (id, url) = host(&nodes[(seed % 3) as usize], &room);
        assert_eq!(urls[&id], url, "a node's URL is the one it listens on");
        for other in &nodes {
            assert_eq!(host(other, &room).0, id, "every node names the same owner of {room}");
        }
        assert_eq!(redis.get(&format!("plenum:room:{room}")).as_deref(), Some(id.as_str()), "the lease in Redis");
        *rooms_of.entry(id).or_default() += 1;
    }
    eprintln!("30 rooms over three nodes: {rooms_of:?}");
    for id in IDS {
        let n = rooms_of.get(id).copied().unwrap_or(0);
        assert!((7..=13).contains(&n), "{id} got {n} of 30 rooms (even: 10 ± 30 %): {rooms_of:?}");
    }

    // Ten clients ask three nodes for one new room at the same moment: one owner.
    let start = Arc::new(Barrier::new(10));
    let addrs: Vec<std::net::SocketAddr> = nodes.iter().map(|n| n.addr).collect();
    let answers: Vec<String> = (0..10)
        .map(|i| {
            let (start, addr) = (start.clone(), addrs[i % 3]);
            std::thread::spawn(move || {
                start.wait();
                let r = support::http::request(addr, "GET", "/api/rooms/contested", &[], b"");
                let v: serde_json::Value = serde_json::from_str(&r.body).expect("room info is JSON");
                v["node"]["id"].as_str().expect("a node id").to_string()
            })
        })
        .collect::<Vec<_>>()
        .into_iter()
        .map(|t| t.join().expect("a racing client"))
        .collect();
    eprintln!("ten racing claims: {answers:?}");
    assert!(answers.iter().all(|a| *a == answers[0]), "one owner for a contested room: {answers:?}");
    assert_eq!(redis.get("plenum:room:contested").as_deref(), Some(answers[0].as_str()));
}

#[test]
fn whip_and_whep_to_another_node_are_sent_to_the_owner() {
    client::init();
    let redis = Redis::start();
    let nodes = pool(&redis, 2);
    let room = "town-hall";
    let (owner_id, owner_url) = host(&nodes[0], room);
    let (owner, other) = if owner_id == IDS[0] { (&nodes[0], &nodes[1]) } else { (&nodes[1], &nodes[0]) };
    assert_eq!(owner_url, format!("http://{}", owner.addr));

    // The redirect itself: 307, to the same path on the owner, absolute.
    let offer = "v=0\r\n";
    for flow in ["whip", "whep"] {
        let r = other.request("POST", &format!("/{flow}/{room}?label=x"), &[("Content-Type", "application/sdp")], offer.as_bytes());
        assert_eq!(r.status, 307, "{flow} to the node without the room: {} {}", r.status, r.body);
        assert_eq!(r.header("location"), Some(format!("{owner_url}/{flow}/{room}?label=x").as_str()));
    }

    // Media through the other node: the publisher and the viewer follow the redirect.
    let publisher = Publisher::start(other.addr, room, GREEN, 600);
    let viewer = Viewer::start(other.addr, room, None);
    assert_eq!(publisher.addr, owner.addr, "the publisher's session lives on the owner");
    assert!(publisher.location.starts_with("/whip/"), "{}", publisher.location);
    wait_for(Duration::from_secs(15), "the publisher's colour and tone at the viewer", || {
        let (frame, audio) = (viewer.frame(), viewer.audio(WINDOW / 2));
        match (&frame, &audio) {
            (Some(f), Some(a)) if coverage(f, GREEN, TOLERANCE) >= PRESENT && tone_level(a, 600.0) >= TONE_PRESENT => Ok(()),
            _ => Err(analysis::describe(frame.as_deref(), audio.as_deref(), &[GREEN], &[600])),
        }
    });
    // The room is live on the owner only, and its lease is renewed there.
    assert_eq!(redis.get(&format!("plenum:room:{room}")).as_deref(), Some(owner_id.as_str()));
    assert_eq!(host(other, room).0, owner_id);
    drop(publisher);
}
