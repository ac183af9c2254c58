//! A pool of three nodes on one machine, coordinated in a real redis-server: rooms of five
//! camera-like publishers opened through random nodes, how evenly rooms spread, how long a
//! meeting takes to be seen and heard again on another node when its node is killed (ten
//! kills, the node started again after each), and what the pool costs Redis. Part of
//! `./dev bench` (the `pool` rows); writes `pool.{json,md}`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::analysis::{coverage, tone_level, PRESENT, TOLERANCE, TONE_PRESENT, WINDOW};
use super::bench::{cpu_seconds, publisher_clip};
use super::client::{Publisher, Viewer, GREEN};
use super::redis::Redis;
use super::replay::{Pacer, ReplayPublisher};
use super::server::Server;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PoolFigures {
    /// 30 rooms asked of random nodes: how many each node got.
    pub rooms_per_node: BTreeMap<String, u32>,
    /// The rooms of five with media: where they went.
    pub media_rooms_per_node: BTreeMap<String, u32>,
    /// Each node's CPU while the rooms of five ran (% of one core).
    pub node_cpu_percent: BTreeMap<String, f64>,
    /// From killing the probe room's node to its publisher seen and heard again elsewhere.
    pub failover_ms: Vec<f64>,
    pub redis_commands_per_second_idle: f64,
    pub redis_commands_per_second_busy: f64,
}

const IDS: [&str; 3] = ["node-a", "node-b", "node-c"];
const ROOMS_OF_FIVE: usize = 6;
const KILLS: usize = 10;

fn args(redis: &Redis, id: &str) -> Vec<String> {
    ["--ice-address", "127.0.0.1", "--canvas", "640x360", "--fps", "15", "--open-media", "--redis", &redis.url(), "--node-id", id]
        .iter()
        .map(|s| s.to_string())
        .collect()
}

fn start(redis: &Redis, id: &str, at: Option<std::net::SocketAddr>) -> Server {
    let a = args(redis, id);
    let a: Vec<&str> = a.iter().map(String::as_str).collect();
    match at {
        Some(addr) => Server::start_at(addr, &a),
        None => Server::start_with(&a),
    }
}

fn beating(redis: &Redis, id: &str) -> bool {
    redis.get(&format!("plenum:node:{id}")).is_some()
}

/// The id of the node that `via` names for `room`.
fn host(via: &Server, room: &str) -> Option<String> {
    let r = via.get(&format!("/api/rooms/{room}"));
    let v: serde_json::Value = serde_json::from_str(&r.body).ok()?;
    v["node"]["id"].as_str().map(str::to_string)
}

fn commands_per_second(redis: &Redis, over: Duration) -> f64 {
    let (before, at) = (redis.commands_processed(), Instant::now());
    std::thread::sleep(over);
    (redis.commands_processed() - before) as f64 / at.elapsed().as_secs_f64()
}

fn media_back(viewer: &Viewer, within: Duration) -> bool {
    let start = Instant::now();
    while start.elapsed() < within {
        if let (Some(f), Some(a)) = (viewer.frame(), viewer.audio(WINDOW / 2)) {
            if coverage(&f, GREEN, TOLERANCE) >= PRESENT && tone_level(&a, 600.0) >= TONE_PRESENT {
                return true;
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

pub fn pool(cache: &Path) -> Option<PoolFigures> {
    if std::process::Command::new("redis-server").arg("--version").output().is_err() {
        eprintln!("pool: redis-server is not installed (./dev test installs it); skipped");
        return None;
    }
    let redis = Redis::start();
    let mut nodes: Vec<Option<Server>> = IDS.iter().map(|id| Some(start(&redis, id, None))).collect();
    let addrs: Vec<std::net::SocketAddr> = nodes.iter().map(|n| n.as_ref().expect("a node").addr).collect();
    super::wait_for(Duration::from_secs(10), "three heartbeats", || if IDS.iter().all(|id| beating(&redis, id)) { Ok(()) } else { Err("not yet") });
    let redis_commands_per_second_idle = commands_per_second(&redis, Duration::from_secs(5));

    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut roll = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let mut rooms_per_node = BTreeMap::new();
    for i in 0..30 {
        let via = nodes[(roll() % 3) as usize].as_ref().expect("a node");
        if let Some(id) = host(via, &format!("spread-{i}")) {
            *rooms_per_node.entry(id).or_insert(0) += 1;
        }
    }

    // Rooms of five camera-like publishers, each opened through a random node (once the
    // placements above no longer count as recent: they were never opened).
    std::thread::sleep(Duration::from_secs(3));
    let publishers = Arc::new(Mutex::new(Vec::new()));
    let mut media_rooms_per_node = BTreeMap::new();
    for r in 0..ROOMS_OF_FIVE {
        let room = format!("five-{r}");
        let via = addrs[(roll() % 3) as usize];
        for i in 0..5 {
            publishers.lock().unwrap().push(ReplayPublisher::start(via, &room, publisher_clip(cache, r * 5 + i), None));
        }
        if let Some(id) = host(nodes[0].as_ref().expect("a node"), &room) {
            *media_rooms_per_node.entry(id).or_insert(0) += 1;
        }
    }
    let pacer = Pacer::start(publishers.clone());
    std::thread::sleep(Duration::from_secs(3));
    let pids: Vec<String> = nodes.iter().map(|n| n.as_ref().expect("a node").pid().to_string()).collect();
    let cpu_before: Vec<f64> = pids.iter().map(|p| cpu_seconds(p)).collect();
    let measured = Instant::now();
    let redis_commands_per_second_busy = commands_per_second(&redis, Duration::from_secs(10));
    let node_cpu_percent: BTreeMap<String, f64> = IDS
        .iter()
        .zip(pids.iter().zip(cpu_before))
        .map(|(id, (pid, before))| (id.to_string(), (cpu_seconds(pid) - before) / measured.elapsed().as_secs_f64() * 100.0))
        .collect();
    drop(pacer);
    publishers.lock().unwrap().clear();

    // Ten kills of the node that holds the probe room.
    let mut failover_ms = Vec::new();
    let mut clients: Option<(Publisher, Viewer)> = None;
    for kill in 0..KILLS {
        let alive = nodes.iter().position(Option::is_some).expect("a node");
        let Some(owner_id) = host(nodes[alive].as_ref().expect("a node"), "probe") else { continue };
        let owner = IDS.iter().position(|id| *id == owner_id).expect("one of the nodes");
        if clients.is_none() {
            let (p, v) = (Publisher::start(addrs[owner], "probe", GREEN, 600), Viewer::start(addrs[owner], "probe", None));
            if !media_back(&v, Duration::from_secs(15)) {
                eprintln!("pool: the probe room never showed its publisher");
                return None;
            }
            clients = Some((p, v));
        }
        drop(nodes[owner].take()); // SIGKILL
        let killed = Instant::now();
        drop(clients.take());
        let survivor = nodes.iter().flatten().next().expect("a node left");
        let mut moved = false;
        while killed.elapsed() < Duration::from_secs(20) && !moved {
            moved = host(survivor, "probe").is_some_and(|id| id != owner_id);
            std::thread::sleep(Duration::from_millis(100));
        }
        let (p, v) = (Publisher::start(survivor.addr, "probe", GREEN, 600), Viewer::start(survivor.addr, "probe", None));
        if moved && media_back(&v, Duration::from_secs(20)) {
            failover_ms.push(killed.elapsed().as_secs_f64() * 1000.0);
        } else {
            eprintln!("pool: kill {kill}: the probe room did not come back within 40 s");
        }
        clients = Some((p, v));
        nodes[owner] = Some(start(&redis, IDS[owner], Some(addrs[owner])));
        super::wait_for(Duration::from_secs(10), "the killed node to beat again", || if beating(&redis, IDS[owner]) { Ok(()) } else { Err("not yet") });
    }
    drop(clients);
    Some(PoolFigures { rooms_per_node, media_rooms_per_node, node_cpu_percent, failover_ms, redis_commands_per_second_idle, redis_commands_per_second_busy })
}

pub fn report(dir: &Path, machine: &str, f: &PoolFigures) -> PathBuf {
    std::fs::create_dir_all(dir).expect("results directory");
    let json = serde_json::json!({ "machine": machine, "pool": f });
    std::fs::write(dir.join("pool.json"), serde_json::to_string_pretty(&json).expect("json")).expect("write json");
    let mut sorted = f.failover_ms.clone();
    sorted.sort_by(|a, b| a.total_cmp(b));
    let median = sorted.get(sorted.len() / 2).copied();
    let worst = sorted.last().copied();
    let spread = |m: &BTreeMap<String, u32>| m.iter().map(|(k, v)| format!("{k} {v}")).collect::<Vec<_>>().join(", ");
    let ms = |v: Option<f64>| v.map_or("—".to_string(), |v| format!("{v:.0} ms"));
    let md = format!(
        "A pool of three nodes on one machine ({machine}; canvas 640x360@15), a real redis-server.\n\n\
         | what | measured |\n|---|---|\n\
         | 30 rooms asked of random nodes | {} |\n\
         | {ROOMS_OF_FIVE} rooms of five camera-like publishers | {} |\n\
         | node CPU while they ran (% of a core) | {} |\n\
         | failover: node killed to the publisher seen and heard again on another node ({} kills) | median {}, worst {} |\n\
         | Redis commands a second, idle / with the rooms of five | {:.1} / {:.1} |\n",
        spread(&f.rooms_per_node),
        spread(&f.media_rooms_per_node),
        f.node_cpu_percent.iter().map(|(k, v)| format!("{k} {v:.0}")).collect::<Vec<_>>().join(", "),
        f.failover_ms.len(),
        ms(median),
        ms(worst),
        f.redis_commands_per_second_idle,
        f.redis_commands_per_second_busy,
    );
    std::fs::write(dir.join("pool.md"), &md).expect("write md");
    dir.join("pool.md")
}
