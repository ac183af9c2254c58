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
use support::ws::Control;
use support::wait_for;

const IDS: [&str; 3] = ["node-a", "node-b", "node-c"];

fn node(redis: &Redis, id: &str) -> Server {
    Server::start_with(&[OPEN_TEST_ARGS, &["--redis", &redis.url(), "--node-id", id]].concat())
}

/// Waits until the heartbeat of each of `ids` is in Redis.
fn wait_for_heartbeats(redis: &Redis, ids: &[&str]) {
    wait_for(Duration::from_secs(10), "every node's heartbeat in Redis", || {
        let missing: Vec<&str> = ids.iter().copied().filter(|id| redis.get(&format!("plenum:node:{id}")).is_none()).collect();
        if missing.is_empty() { Ok(()) } else { Err(format!("no heartbeat from {missing:?}")) }
    });
}

/// Starts the nodes and waits until each one's heartbeat is in Redis.
fn pool(redis: &Redis, n: usize) -> Vec<Server> {
    let nodes: Vec<Server> = IDS[..n].iter().map(|id| node(redis, id)).collect();
    wait_for_heartbeats(redis, &IDS[..n]);
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

    // What an idle pool of three costs Redis (heartbeats, the pool's list, drain checks).
    let (before, at) = (redis.commands_processed(), std::time::Instant::now());
    std::thread::sleep(Duration::from_secs(5));
    let per_second = (redis.commands_processed() - before) as f64 / at.elapsed().as_secs_f64();
    eprintln!("an idle pool of three: {per_second:.1} Redis commands a second");
    assert!(per_second < 50.0, "a node's heartbeat costs Redis a handful of commands a second: {per_second:.1}/s");
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
    // Its heartbeat counts the two clients (no WebSocket: counted by their media sessions).
    wait_for(Duration::from_secs(5), "the owner's heartbeat to count its WHIP and WHEP clients", || {
        let beat: serde_json::Value = serde_json::from_str(&redis.get(&format!("plenum:node:{owner_id}")).unwrap_or_default()).map_err(|e| e.to_string())?;
        if beat["participants"] == 1 && beat["rooms"] == 1 { Ok(()) } else { Err(beat.to_string()) }
    });
    drop(publisher);
}

/// Waits until the viewer sees and hears `colour` and `tone`.
fn wait_for_media(viewer: &Viewer, colour: client::Rgb, tone: u32, within: Duration, what: &str) {
    wait_for(within, what, || {
        let (frame, audio) = (viewer.frame(), viewer.audio(WINDOW / 2));
        match (&frame, &audio) {
            (Some(f), Some(a)) if coverage(f, colour, TOLERANCE) >= PRESENT && tone_level(a, f64::from(tone)) >= TONE_PRESENT => Ok(()),
            _ => Err(analysis::describe(frame.as_deref(), audio.as_deref(), &[colour], &[tone])),
        }
    });
}

#[test]
fn a_room_whose_node_dies_opens_again_on_another() {
    client::init();
    let redis = Redis::start();
    let mut nodes: Vec<Option<Server>> = pool(&redis, 3).into_iter().map(Some).collect();
    let room = "council";
    let (owner_id, _) = host(nodes[0].as_ref().unwrap(), room);
    let owner = IDS.iter().position(|id| *id == owner_id).expect("one of the nodes");
    let via = (owner + 1) % 3;
    let publisher = Publisher::start(nodes[via].as_ref().unwrap().addr, room, GREEN, 600);
    let viewer = Viewer::start(nodes[via].as_ref().unwrap().addr, room, None);
    wait_for_media(&viewer, GREEN, 600, Duration::from_secs(15), "the meeting on its first node");

    // A second room on the same node, locked by its moderator: a password and the waiting room.
    let locked = (0..100).map(|i| format!("locked-{i}")).find(|r| host(nodes[via].as_ref().unwrap(), r).0 == owner_id).expect("a room placed on the same node");
    let owner_addr = nodes[owner].as_ref().unwrap().addr;
    let (mut moderator, _, key) = Control::join_first(owner_addr, &locked, "Ada");
    moderator.send_json(&serde_json::json!({"type": "set_password", "password": "Rathaus 2026"}));
    moderator.told_setting("password", true, "the moderator");
    moderator.send_json(&serde_json::json!({"type": "set_waiting_room", "on": true}));
    moderator.told_setting("waiting_room", true, "the moderator");
    wait_for(Duration::from_secs(5), "the locked room's rules kept in Redis", || {
        let kept = redis.get(&format!("plenum:kept:{locked}")).unwrap_or_default();
        if kept.contains("argon2id") && kept.contains("\"waiting_room\":true") { Ok(()) } else { Err(kept) }
    });
    assert!(!redis.get(&format!("plenum:kept:{locked}")).unwrap().contains(&key), "only the moderator key's digest is kept");

    // SIGKILL: no goodbye, its leases stay in Redis until they run out.
    let killed = std::time::Instant::now();
    drop(nodes[owner].take());
    drop((publisher, viewer));
    // The clients ask again (as the web client does when its connection drops) until a live
    // node is named, and start again there.
    let survivor = nodes[via].as_ref().unwrap();
    let (new_id, _) = wait_for(Duration::from_secs(15), "a live node named for the room", || {
        let (id, url) = host(survivor, room);
        if id != owner_id { Ok((id, url)) } else { Err(format!("still {id}")) }
    });
    let publisher = Publisher::start(survivor.addr, room, GREEN, 600);
    let viewer = Viewer::start(survivor.addr, room, None);
    wait_for_media(&viewer, GREEN, 600, Duration::from_secs(15), "the meeting on another node");
    let took = killed.elapsed();
    eprintln!("owner {owner_id} killed: the room opened again on {new_id}, media back after {took:?}");
    assert!(took < Duration::from_secs(15), "back in the mix within 15 s: {took:?}");
    assert_eq!(redis.get(&format!("plenum:room:{room}")).as_deref(), Some(new_id.as_str()));
    drop((publisher, viewer));
    drop(moderator);

    // The locked room, opened again elsewhere, keeps its password, waiting room and moderator key.
    let (locked_id, locked_url) = host(survivor, &locked);
    assert_ne!(locked_id, owner_id);
    let locked_addr = client::at(survivor.addr, &format!("{locked_url}/")).0;
    let mut stranger = Control::connect(locked_addr, &locked);
    stranger.send_json(&serde_json::json!({"type": "join", "name": "Cem"}));
    let refused = stranger.expect_type("error", Duration::from_secs(5));
    assert_eq!(refused["code"], "password_required", "{refused}");
    let join = serde_json::json!({"type": "join", "name": "Ada", "password": "Rathaus 2026", "moderator_key": key});
    let mut back = Control::connect(locked_addr, &locked);
    back.send_json(&join);
    let joined = back.expect_type("joined", Duration::from_secs(10));
    assert_eq!(joined["moderator"], true, "the moderator key still holds: {joined}");
    let mut guest = Control::connect(locked_addr, &locked);
    guest.send_json(&serde_json::json!({"type": "join", "name": "Bo", "password": "Rathaus 2026"}));
    let waiting = guest.expect_type("joined", Duration::from_secs(10));
    assert_eq!(waiting["waiting"], true, "the waiting room still holds: {waiting}");
}

#[test]
fn without_redis_nodes_go_on_and_rejoin_when_it_is_back() {
    client::init();
    let mut redis = Redis::start();
    let nodes = pool(&redis, 2);
    let room = "ongoing";
    let (owner_id, _) = host(&nodes[0], room);
    let owner = &nodes[IDS.iter().position(|id| *id == owner_id).expect("one of the nodes")];
    let other = &nodes[if std::ptr::eq(owner, &nodes[0]) { 1 } else { 0 }];
    let publisher = Publisher::start(owner.addr, room, GREEN, 600);
    let viewer = Viewer::start(owner.addr, room, None);
    wait_for_media(&viewer, GREEN, 600, Duration::from_secs(15), "the meeting before Redis goes");

    redis.kill();
    let gone = std::time::Instant::now();
    // The room in progress keeps its media.
    std::thread::sleep(Duration::from_secs(3));
    let (frames, gap) = viewer.frames_since(gone);
    eprintln!("Redis gone: {frames} frames in 3 s, longest gap {gap:?}");
    assert!(frames >= 30 && gap < Duration::from_millis(500), "the room went on: {frames} frames, gap {gap:?}");
    wait_for_media(&viewer, GREEN, 600, Duration::from_secs(2), "the meeting without Redis");
    // A new room opens on the node it is asked of.
    let asked = std::time::Instant::now();
    let (id, _) = host(other, "fresh");
    eprintln!("a new room without Redis: placed in {:?}", asked.elapsed());
    assert_ne!(id, owner_id, "a new room stays local without Redis");
    let fresh = Publisher::start(other.addr, "fresh", client::RED, 800);
    assert_eq!(fresh.addr, other.addr, "no redirect without Redis");

    // Redis back (empty: it kept nothing): both nodes beat again and claim their rooms.
    let redis = Redis::start_on(redis.port);
    let back = std::time::Instant::now();
    wait_for(Duration::from_secs(10), "both rooms claimed again by their nodes", || {
        let (a, b) = (redis.get(&format!("plenum:room:{room}")), redis.get("plenum:room:fresh"));
        if a.as_deref() == Some(owner_id.as_str()) && b.as_deref() == Some(id.as_str()) { Ok(()) } else { Err(format!("leases {a:?} {b:?}")) }
    });
    eprintln!("Redis back: rooms claimed again after {:?}", back.elapsed());
    for id in &IDS[..2] {
        assert!(redis.get(&format!("plenum:node:{id}")).is_some(), "{id} beats again");
    }
    wait_for_media(&viewer, GREEN, 600, Duration::from_secs(2), "the meeting after Redis is back");
    drop((publisher, fresh));
}

/// Green and 600 Hz in what ffmpeg reads from the RTMP server a second in.
fn on_the_rtmp_server(url: &str) -> Result<(), String> {
    let frame = support::ffmpeg::frame_at(url, 1.0)?;
    let sound = support::ffmpeg::audio_at(url, 1.0, 1.0)?;
    let green = coverage(&frame, GREEN, TOLERANCE);
    let tone = if sound.len() >= WINDOW { tone_level(&sound[..WINDOW], 600.0) } else { 0.0 };
    if green >= PRESENT && tone >= TONE_PRESENT { Ok(()) } else { Err(format!("green {green:.3}, 600 Hz {tone:.3}")) }
}

#[test]
fn live_streams_and_the_broadcast_follow_their_room() {
    client::init();
    let redis = Redis::start();
    let rtmp = support::rtmp_server::RtmpServer::start();
    let redis_url = redis.url();
    let start = |id: &str| Some(Server::start_with(&[OPEN_TEST_ARGS, &["--redis", &redis_url, "--node-id", id, "--empty-room-grace-secs", "2"]].concat()));
    let mut nodes: Vec<Option<Server>> = IDS[..2].iter().map(|id| start(id)).collect();
    wait_for_heartbeats(&redis, &IDS[..2]);
    let room = "assembly";
    let (owner_id, owner_url) = host(nodes[0].as_ref().unwrap(), room);
    let owner = IDS.iter().position(|id| *id == owner_id).expect("one of the nodes");
    let other = 1 - owner;
    let (owner_addr, other_addr) = (nodes[owner].as_ref().unwrap().addr, nodes[other].as_ref().unwrap().addr);
    let (_moderator, _, key) = Control::join_first(owner_addr, room, "Ada");
    let publisher = Publisher::start(owner_addr, room, GREEN, 600);
    let bearer = format!("Bearer {key}");
    let api = |addr, method: &str, path: &str, body: &str| {
        support::http::request(addr, method, &format!("/api/rooms/{room}{path}"), &[("authorization", &bearer), ("content-type", "application/json")], body.as_bytes())
    };

    // The outputs API and the HLS broadcast asked of the other node are sent to the room's node.
    let url = rtmp.url("ratssitzung");
    let body = serde_json::json!({ "url": url }).to_string();
    let sent_on = api(other_addr, "POST", "/streams", &body);
    assert_eq!(sent_on.status, 307, "{}", sent_on.body);
    assert_eq!(sent_on.header("location"), Some(format!("{owner_url}/api/rooms/{room}/streams").as_str()));
    assert_eq!(api(owner_addr, "POST", "/streams", &body).status, 201);
    assert_eq!(api(owner_addr, "POST", "/broadcast", r#"{"on": true}"#).status, 200);
    wait_for(Duration::from_secs(60), "the stream on the RTMP server", || on_the_rtmp_server(&url));
    let hls = support::http::request(other_addr, "GET", &format!("/hls/{room}/index.m3u8"), &[], b"");
    assert_eq!(hls.status, 307, "HLS asked of the other node: {}", hls.body);
    assert_eq!(hls.header("location"), Some(format!("{owner_url}/hls/{room}/index.m3u8").as_str()));
    // The watch page served by the other node plays the broadcast from the room's node.
    let script = format!("{}/tests/browser/watch.mjs", env!("CARGO_MANIFEST_DIR"));
    let green = format!("{},{},{}", GREEN.0, GREEN.1, GREEN.2);
    let out = std::process::Command::new("node")
        .arg(script)
        .args([format!("http://{other_addr}"), room.to_string(), green])
        .env("PLENUM_POOL", &owner_url)
        .output()
        .expect("node runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && stdout.contains("RESULT watch ok"), "the watch page on the other node:\n{stdout}{}", String::from_utf8_lossy(&out.stderr));
    wait_for(Duration::from_secs(5), "the running outputs kept in Redis", || {
        let running = redis.get(&format!("plenum:running:{room}")).unwrap_or_default();
        if running.contains("ratssitzung") && running.contains("\"broadcast\":true") { Ok(()) } else { Err(running) }
    });

    // The room's node dies: the room opens on the other one, which starts its outputs again.
    let killed = std::time::Instant::now();
    drop(nodes[owner].take());
    drop(publisher);
    let survivor = nodes[other].as_ref().unwrap();
    wait_for(Duration::from_secs(15), "the room placed on the surviving node", || {
        let (id, _) = host(survivor, room);
        if id == IDS[other] { Ok(()) } else { Err(format!("still {id}")) }
    });
    let publisher = Publisher::start(survivor.addr, room, GREEN, 600);
    wait_for(Duration::from_secs(60), "the stream on the RTMP server from the surviving node", || on_the_rtmp_server(&url));
    let back = killed.elapsed();
    eprintln!("the room's node killed: its live stream is back on the RTMP server after {back:?}");
    assert!(back < Duration::from_secs(30), "the stream came back after {back:?}");
    let streams = api(survivor.addr, "GET", "/streams", "");
    assert!(streams.status == 200 && streams.body.contains("/live/…") && !streams.body.contains("ratssitzung"), "{}", streams.body);
    wait_for(Duration::from_secs(15), "the broadcast again on the surviving node", || {
        let r = survivor.get(&format!("/hls/{room}/index.m3u8"));
        if r.status == 200 { Ok(()) } else { Err(format!("{} {}", r.status, r.body)) }
    });

    // Everyone leaves: the room ends, and its outputs are not kept for another day.
    drop(publisher);
    drop(_moderator);
    wait_for(Duration::from_secs(30), "the room's outputs forgotten when it ends", || match redis.get(&format!("plenum:running:{room}")) {
        None => Ok(()),
        Some(running) => Err(running),
    });
}

/// How the room's node goes away under a browser meeting.
#[derive(Clone, Copy)]
enum Gone {
    /// SIGKILL.
    Killed,
    /// `plenum drain` with a 2 s deadline.
    Drained,
}

/// Two browsers (the web client in headless chromium) open the room's page on a node that
/// does not host the room; the room's node goes mid-meeting (`tests/browser/pool.mjs`).
fn browsers_follow_their_room(how: Gone) {
    use std::io::{BufRead, BufReader, Write};
    use std::process::{Command, Stdio};

    client::init();
    let dir = std::env::temp_dir().join(format!("plenum-pool-{}", std::process::id()));
    let people = [support::fixtures::Fake::plain(0xffe6_1e1e, 500), support::fixtures::Fake::plain(0xff1e_c828, 700)];
    support::fixtures::make(&dir, &people);
    let redis = Redis::start();
    let mut nodes: Vec<Option<Server>> = IDS
        .iter()
        .map(|id| Some(Server::start_with(&[support::server::TEST_ARGS, &["--redis", &redis.url(), "--node-id", id]].concat())))
        .collect();
    wait_for_heartbeats(&redis, &IDS);
    let (owner_id, owner_url) = host(nodes[0].as_ref().unwrap(), "e2e-pool");
    let owner = IDS.iter().position(|id| *id == owner_id).expect("one of the nodes");
    let page_node = nodes[(owner + 1) % 3].as_ref().unwrap().addr;
    let mut node = Command::new("node")
        .arg(format!("{}/tests/browser/pool.mjs", env!("CARGO_MANIFEST_DIR")))
        .arg(format!("http://{page_node}"))
        .arg(&dir)
        .arg(&owner_url)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("node runs (./dev test installs it)");
    let mut input = node.stdin.take().expect("stdin");
    let mut said = Vec::new();
    for line in BufReader::new(node.stdout.take().expect("stdout")).lines().map_while(Result::ok) {
        eprintln!("{line}");
        said.push(line.clone());
        if line == "READY" {
            match how {
                Gone::Killed => {
                    drop(nodes[owner].take()); // SIGKILL
                    writeln!(input, "GONE killed").expect("node reads");
                }
                Gone::Drained => {
                    let drain = Command::new(env!("CARGO_BIN_EXE_plenum"))
                        .args(["drain", "--redis", &redis.url(), "--node-id", &owner_id, "--within", "2"])
                        .output()
                        .expect("plenum drain runs");
                    assert!(drain.status.success(), "plenum drain: {}", String::from_utf8_lossy(&drain.stderr));
                    writeln!(input, "GONE drained").expect("node reads");
                }
            }
        }
    }
    let status = node.wait().expect("node ends");
    let _ = std::fs::remove_dir_all(&dir);
    assert!(status.success() && said.iter().any(|l| l.starts_with("RESULT ")), "the browsers' checks failed:\n{}", said.join("\n"));
}

#[test]
fn browsers_follow_their_room_when_its_node_dies() {
    browsers_follow_their_room(Gone::Killed);
}

#[test]
fn browsers_follow_their_room_when_its_node_drains() {
    browsers_follow_their_room(Gone::Drained);
}

#[test]
fn a_draining_node_gets_no_new_rooms_and_its_meetings_move_at_the_deadline() {
    client::init();
    let redis = Redis::start();
    let nodes = pool(&redis, 2);
    let room = "morning";
    let (owner_id, _) = host(&nodes[0], room);
    let (owner, other) = if owner_id == IDS[0] { (&nodes[0], &nodes[1]) } else { (&nodes[1], &nodes[0]) };
    let other_id = if owner_id == IDS[0] { IDS[1] } else { IDS[0] };
    let publisher = Publisher::start(owner.addr, room, GREEN, 600);
    let viewer = Viewer::start(owner.addr, room, None);
    wait_for_media(&viewer, GREEN, 600, Duration::from_secs(15), "the meeting before the drain");

    let said = std::process::Command::new(env!("CARGO_BIN_EXE_plenum"))
        .args(["drain", "--redis", &redis.url(), "--node-id", &owner_id, "--within", "5"])
        .output()
        .expect("plenum drain runs");
    assert!(said.status.success(), "plenum drain: {}", String::from_utf8_lossy(&said.stderr));
    eprintln!("{}", String::from_utf8_lossy(&said.stdout).trim());
    let drained_at = std::time::Instant::now();
    wait_for(Duration::from_secs(3), "the node's heartbeat to say it drains", || {
        let beat = redis.get(&format!("plenum:node:{owner_id}")).unwrap_or_default();
        if beat.contains("\"draining\"") { Ok(()) } else { Err(beat) }
    });
    // New rooms, asked of either node, go to the other one.
    for i in 0..10 {
        let via = if i % 2 == 0 { owner } else { other };
        assert_eq!(host(via, &format!("new-{i}")).0, other_id, "new room {i} while {owner_id} drains");
    }
    // The meeting goes on there until the deadline.
    let (frames, gap) = viewer.frames_since(drained_at);
    assert!(frames > 0 && gap < Duration::from_millis(500), "the meeting went on while draining: {frames} frames, gap {gap:?}");
    assert_eq!(host(other, room).0, owner_id, "its room stays where it is until the deadline");

    // At the deadline its participants are told to reconnect; asked again, the room is on the other node.
    let moved = wait_for(Duration::from_secs(15), "the room to move at the deadline", || {
        let (id, _) = host(other, room);
        if id == other_id { Ok(drained_at.elapsed()) } else { Err(format!("still on {id}")) }
    });
    eprintln!("drain within 5 s: the room moved after {moved:?}");
    assert!(moved >= Duration::from_secs(4), "not before the deadline: {moved:?}");
    drop((publisher, viewer));
    let publisher = Publisher::start(owner.addr, room, GREEN, 600);
    let viewer = Viewer::start(owner.addr, room, None);
    assert_eq!(publisher.addr, other.addr, "the draining node sends the room's clients on");
    wait_for_media(&viewer, GREEN, 600, Duration::from_secs(15), "the meeting on the other node");
}

#[test]
fn sigterm_with_drain_seconds_lets_the_meetings_end_first() {
    client::init();
    let redis = Redis::start();
    let nodes: Vec<Server> = IDS[..2]
        .iter()
        .map(|id| Server::start_with(&[OPEN_TEST_ARGS, &["--redis", &redis.url(), "--node-id", id, "--drain-seconds", "30"]].concat()))
        .collect();
    wait_for_heartbeats(&redis, &IDS[..2]);
    let room = "evening";
    let (owner_id, _) = host(&nodes[0], room);
    let mut nodes = nodes;
    let owner_at = IDS.iter().position(|id| *id == owner_id).expect("one of the nodes");
    let mut owner = nodes.remove(owner_at);
    let other = &nodes[0];
    let publisher = Publisher::start(owner.addr, room, GREEN, 600);
    let viewer = Viewer::start(owner.addr, room, None);
    wait_for_media(&viewer, GREEN, 600, Duration::from_secs(15), "the meeting before SIGTERM");

    let _ = std::process::Command::new("kill").args(["-TERM", &owner.pid().to_string()]).status();
    let termed = std::time::Instant::now();
    wait_for(Duration::from_secs(3), "the node's heartbeat to say it drains", || {
        let beat = redis.get(&format!("plenum:node:{owner_id}")).unwrap_or_default();
        if beat.contains("\"draining\"") { Ok(()) } else { Err(beat) }
    });
    assert_ne!(host(other, "late-room").0, owner_id, "a new room goes elsewhere while the node drains");
    std::thread::sleep(Duration::from_secs(2));
    let (frames, gap) = viewer.frames_since(termed);
    assert!(frames > 0 && gap < Duration::from_millis(500), "the meeting goes on after SIGTERM: {frames} frames, gap {gap:?}");
    assert!(owner.is_running(), "the node waits for its meeting");
    // The meeting ends (both leave by DELETE): the node exits after the room's grace, long
    // before the 30 s are up.
    assert_eq!(publisher.leave(), 200);
    assert_eq!(viewer.leave(), 200);
    let ended = std::time::Instant::now();
    wait_for(Duration::from_secs(20), "the drained node to exit", || if owner.is_running() { Err("still running") } else { Ok(()) });
    eprintln!("SIGTERM with --drain-seconds 30: the meeting went on; the node exited {:?} after it ended", ended.elapsed());
    assert!(redis.get(&format!("plenum:node:{owner_id}")).is_none(), "it left the pool");
}
