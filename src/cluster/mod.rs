//! A pool of identical nodes coordinated in Redis (`--redis`). Every node answers every
//! request; a room lives on exactly one node, the one its lease in Redis names. The HTTP edge
//! asks [`Cluster::place`] before it opens a room: here, or elsewhere (a redirect, or the
//! owner's address for the web client).
//!
//! - [`placement`]: where a new room goes (pure: heartbeats, time and dice in, a node out);
//! - [`lease`]: who owns a room (pure rules, and the Lua scripts Redis runs for them);
//! - [`store`]: the Redis calls, each bounded in time;
//! - here: the node's heartbeat and lease renewals (a task), and the placement of a request.
//!
//! Without Redis, or when it is gone, a node serves every room itself: rooms in progress go
//! on, new rooms open where they are asked for, and the node claims its rooms again when
//! Redis is back (a room another node took meanwhile stays with both: the one here keeps its
//! participants, new ones go to the other).

pub mod lease;
pub mod placement;
pub mod store;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures_util::future::BoxFuture;

use crate::control::Running;
use crate::ids::RoomId;
use crate::room::kept::Kept;
use crate::rooms::Rooms;
use lease::Renewal;
use placement::{NodeLoad, NodeState};
use store::{Store, StoreError};

/// How often a node says it is alive (its heartbeat expires after [`placement::STALE_MS`]).
const HEARTBEAT: Duration = Duration::from_secs(1);
/// A room's lease; renewed every [`RENEW_EVERY`] while the room is live here.
pub const LEASE_MS: u64 = 10_000;
const RENEW_EVERY: Duration = Duration::from_secs(2);

/// This node as others reach it.
#[derive(Clone, Debug)]
pub struct Me {
    pub id: String,
    pub url: String,
}

/// Where a request for a room is served.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Placement {
    Here,
    /// On another node, reached at `url` (its `--public-url`).
    There { node: String, url: String },
}

pub struct Cluster {
    me: Me,
    store: Store,
    draining: AtomicBool,
    /// The deadline of a drain asked for with `plenum drain` (ms since the epoch), if any.
    drain_deadline: Mutex<Option<u64>>,
    /// Whether the last Redis call worked (for the log: said once on each change).
    reachable: AtomicBool,
    /// Rooms this node renewed on its last round (released when they are no longer live).
    leased: Mutex<HashSet<RoomId>>,
    dice: Mutex<u64>,
    /// The URLs of the pool's nodes with a fresh heartbeat, this one included, as of the
    /// last heartbeat (pages may talk to them; a page whose node is gone asks another).
    peers: Mutex<Vec<String>>,
}

pub(crate) fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

impl Cluster {
    pub fn new(me: Me, redis_url: &str) -> Result<Arc<Self>, StoreError> {
        let seed = now_ms() ^ (u64::from(std::process::id()) << 32) ^ me.id.bytes().fold(0u64, |h, b| h.rotate_left(5) ^ u64::from(b));
        let cluster = Arc::new(Self {
            me,
            store: Store::new(redis_url)?,
            draining: AtomicBool::new(false),
            drain_deadline: Mutex::new(None),
            reachable: AtomicBool::new(true),
            leased: Mutex::default(),
            dice: Mutex::new(seed | 1),
            peers: Mutex::default(),
        });
        Ok(cluster)
    }

    pub fn me(&self) -> &Me {
        &self.me
    }

    /// The pool's nodes as of the last heartbeat (at least this one).
    pub fn peer_urls(&self) -> Vec<String> {
        let peers = self.peers.lock().unwrap_or_else(|p| p.into_inner()).clone();
        if peers.is_empty() { vec![self.me.url.clone()] } else { peers }
    }

    /// The pool's nodes with a fresh heartbeat, read from Redis now (what a page may talk to:
    /// its content security policy lists them); the last known ones while Redis is away.
    pub async fn fresh_peer_urls(&self) -> Vec<String> {
        if let Some(nodes) = self.noted(self.store.nodes().await) {
            let now = now_ms();
            let mut urls: Vec<String> =
                nodes.into_iter().filter(|(n, _)| now.saturating_sub(n.at_ms) <= placement::STALE_MS).map(|(n, _)| n.url).collect();
            urls.sort();
            if !urls.is_empty() {
                *self.peers.lock().unwrap_or_else(|p| p.into_inner()) = urls;
            }
        }
        self.peer_urls()
    }

    /// No new rooms here from now on (SIGTERM with `--drain-seconds`, the process ending).
    pub fn drain(&self) {
        self.draining.store(true, Ordering::Relaxed);
    }

    fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed) || self.drain_deadline.lock().unwrap_or_else(|p| p.into_inner()).is_some()
    }

    /// Reads whether `plenum drain` was said for this node; whether its deadline has passed
    /// with rooms still open here.
    async fn drain_deadline_passed(&self, rooms: &Rooms) -> bool {
        let Some(deadline) = self.noted(self.store.drain_deadline(&self.me.id).await) else { return false };
        let before = std::mem::replace(&mut *self.drain_deadline.lock().unwrap_or_else(|p| p.into_inner()), deadline);
        match (before, deadline) {
            (None, Some(at)) => tracing::info!(within_s = at.saturating_sub(now_ms()) / 1000, "draining: no new rooms here"),
            (Some(_), None) => tracing::info!("drain taken back: new rooms come here again"),
            _ => {}
        }
        deadline.is_some_and(|at| now_ms() >= at) && rooms.room_count() > 0
    }

    fn roll(&self) -> (u64, u64) {
        let mut s = self.dice.lock().unwrap_or_else(|p| p.into_inner());
        let mut next = || {
            *s ^= *s << 13;
            *s ^= *s >> 7;
            *s ^= *s << 17;
            *s
        };
        (next(), next())
    }

    fn noted<T>(&self, result: Result<T, StoreError>) -> Option<T> {
        match result {
            Ok(v) => {
                if !self.reachable.swap(true, Ordering::Relaxed) {
                    tracing::info!("Redis is reachable again: rooms are placed over the pool");
                }
                Some(v)
            }
            Err(e) => {
                if self.reachable.swap(false, Ordering::Relaxed) {
                    tracing::warn!(error = %e, "Redis is not reachable: this node serves its rooms and opens new ones itself");
                }
                None
            }
        }
    }

    /// Where `room` is served. `live_here`: the room is open on this node already.
    pub async fn place(&self, room: &RoomId, live_here: bool) -> Placement {
        if live_here {
            return Placement::Here;
        }
        let Some(owner) = self.noted(self.store.owner(room.as_str()).await) else { return Placement::Here };
        let Some(nodes) = self.noted(self.store.nodes().await) else { return Placement::Here };
        let now = now_ms();
        let alive = |id: &str| nodes.iter().find(|(n, _)| n.id == id && now.saturating_sub(n.at_ms) <= placement::STALE_MS).map(|(n, _)| n);
        let owner = match owner {
            Some(owner) if owner == self.me.id => return Placement::Here,
            Some(owner) if alive(&owner).is_some() => owner,
            Some(dead) => {
                // Its node is gone: the room opens anew where the placement says.
                let chosen = self.choose(&nodes, now);
                tracing::info!(room = %room, "a room's node is gone: placed anew");
                match self.noted(self.store.take_over(room.as_str(), &chosen, &dead, LEASE_MS).await) {
                    Some(owner) => owner,
                    None => return Placement::Here,
                }
            }
            None => {
                let chosen = self.choose(&nodes, now);
                match self.noted(self.store.claim(room.as_str(), &chosen, LEASE_MS).await) {
                    Some(owner) => owner,
                    None => return Placement::Here,
                }
            }
        };
        if owner == self.me.id {
            return Placement::Here;
        }
        match alive(&owner) {
            Some(n) => Placement::There { node: n.id.clone(), url: n.url.clone() },
            // Claimed for a node that vanished between the two reads: serve it here.
            None => Placement::Here,
        }
    }

    /// The URL of the room's node if it is open on another live node (nothing is claimed).
    pub async fn owner_elsewhere(&self, room: &RoomId) -> Option<String> {
        let owner = self.noted(self.store.owner(room.as_str()).await)??;
        if owner == self.me.id {
            return None;
        }
        let nodes = self.noted(self.store.nodes().await)?;
        let now = now_ms();
        nodes.into_iter().find(|(n, _)| n.id == owner && now.saturating_sub(n.at_ms) <= placement::STALE_MS).map(|(n, _)| n.url)
    }

    /// The node for a new room: the placement's choice, or this node if none may take it.
    fn choose(&self, nodes: &[(NodeLoad, u32)], now: u64) -> String {
        let loads: Vec<NodeLoad> = nodes.iter().map(|(n, _)| n.clone()).collect();
        let recent: HashMap<String, u32> = nodes.iter().map(|(n, r)| (n.id.clone(), *r)).collect();
        placement::choose(&loads, &recent, now, self.roll()).map(|n| n.id.clone()).unwrap_or_else(|| self.me.id.clone())
    }

    /// Sends the heartbeat every second and renews the leases of the rooms live here every
    /// two, until the process ends.
    pub fn start(self: &Arc<Self>, rooms: Arc<Rooms>) {
        let cluster = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(HEARTBEAT);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut cpu = CpuMeter::new();
            let mut renewed_at = Instant::now() - RENEW_EVERY;
            loop {
                tick.tick().await;
                if let Err(e) = cluster.store.connect().await {
                    cluster.noted::<()>(Err(e));
                    continue;
                }
                let load = NodeLoad {
                    id: cluster.me.id.clone(),
                    url: cluster.me.url.clone(),
                    state: if cluster.is_draining() { NodeState::Draining } else { NodeState::Serving },
                    rooms: rooms.room_count() as u32,
                    participants: people_here(),
                    cpu: cpu.cores_busy(),
                    cores: std::thread::available_parallelism().map(|n| n.get() as u32).unwrap_or(1),
                    at_ms: now_ms(),
                };
                if cluster.noted(cluster.store.heartbeat(&load).await).is_none() {
                    continue;
                }
                cluster.fresh_peer_urls().await;
                if cluster.drain_deadline_passed(&rooms).await {
                    // Its meetings move now: everyone is told to reconnect, the leases go.
                    tracing::info!(rooms = rooms.room_count(), "drained: the rooms left here move to other nodes");
                    rooms.close_all().await;
                    renewed_at = Instant::now() - RENEW_EVERY;
                }
                if renewed_at.elapsed() >= RENEW_EVERY {
                    renewed_at = Instant::now();
                    cluster.renew(rooms.live_rooms()).await;
                }
            }
        });
    }

    /// Renews the lease of every room live here; releases those that closed.
    async fn renew(&self, live: Vec<RoomId>) {
        let mut reachable = true;
        for room in &live {
            if !reachable {
                break;
            }
            match self.noted(self.store.renew(room.as_str(), &self.me.id, LEASE_MS).await) {
                Some(Renewal::Renewed) => {}
                Some(Renewal::Reclaimed) => tracing::info!(room = %room, "a room's lease ran out while Redis was away: claimed again"),
                Some(Renewal::TakenBy(other)) => {
                    tracing::warn!(room = %room, other = %other, "a room live here is owned by another node now: its participants stay, new ones go there")
                }
                None => reachable = false,
            }
        }
        let mut leased = self.leased.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let live: HashSet<RoomId> = live.into_iter().collect();
        for room in leased.difference(&live).cloned().collect::<Vec<_>>() {
            if reachable && self.noted(self.store.release(room.as_str(), &self.me.id).await).is_some() {
                leased.remove(&room);
            }
        }
        leased.extend(live);
        *self.leased.lock().unwrap_or_else(|p| p.into_inner()) = leased;
    }
}

impl Cluster {
    /// Leaving the pool (the process ends): every lease this node holds is released and its
    /// heartbeat removed, so that other nodes take its rooms at once.
    pub async fn leave(&self) {
        let leased: Vec<RoomId> = self.leased.lock().unwrap_or_else(|p| p.into_inner()).drain().collect();
        for room in leased {
            if self.noted(self.store.release(room.as_str(), &self.me.id).await).is_none() {
                return;
            }
        }
        let _ = self.noted(self.store.forget(&self.me.id).await);
    }
}

/// `plenum drain`: tells a node of the pool (through Redis) to drain, or to stop draining.
pub async fn drain(args: &crate::config::DrainArgs) -> anyhow::Result<String> {
    let store = Store::new(&args.redis)?;
    store.connect().await?;
    let deadline = (!args.undo).then(|| now_ms() + args.within * 1000);
    store.set_drain(&args.node_id, deadline).await?;
    let known = store.nodes().await?.iter().any(|(n, _)| n.id == args.node_id);
    let warning = if known { "" } else { " (no heartbeat from that node now: it drains when it starts)" };
    Ok(match deadline {
        Some(_) => format!("node {} drains: no new rooms; its meetings move to other nodes within {} s{warning}", args.node_id, args.within),
        None => format!("node {} takes new rooms again{warning}", args.node_id),
    })
}

/// Rooms keep their rules in Redis (loaded when a room opens on a node, saved when they
/// change) and, while they run, their outputs.
impl crate::control::Keeper for Cluster {
    fn load<'a>(&'a self, room: &'a RoomId) -> BoxFuture<'a, Option<Kept>> {
        Box::pin(self.load_shelf(RULES, room))
    }

    fn save<'a>(&'a self, room: &'a RoomId, kept: &'a Kept) -> BoxFuture<'a, ()> {
        Box::pin(self.save_shelf(RULES, room, Some(kept), crate::room::kept::KEPT_FOR))
    }

    fn load_running<'a>(&'a self, room: &'a RoomId) -> BoxFuture<'a, Option<Running>> {
        Box::pin(self.load_shelf(RUNNING, room))
    }

    fn save_running<'a>(&'a self, room: &'a RoomId, running: Option<&'a Running>) -> BoxFuture<'a, ()> {
        Box::pin(self.save_shelf(RUNNING, room, running, crate::control::RUNNING_FOR))
    }
}

/// Where in Redis a room's rules and its running outputs are kept.
const RULES: &str = "kept";
const RUNNING: &str = "running";

impl Cluster {
    async fn load_shelf<T: serde::de::DeserializeOwned>(&self, shelf: &str, room: &RoomId) -> Option<T> {
        let json = self.noted(self.store.kept(shelf, room.as_str()).await)??;
        match serde_json::from_str(&json) {
            Ok(kept) => Some(kept),
            Err(e) => {
                tracing::warn!(room = %room, shelf, error = %e, "what a room kept in Redis does not parse: the room starts afresh");
                None
            }
        }
    }

    async fn save_shelf<T: serde::Serialize>(&self, shelf: &str, room: &RoomId, value: Option<&T>, keep_for: Duration) {
        let json = match value.map(serde_json::to_string) {
            Some(Ok(json)) => Some(json),
            Some(Err(_)) => return,
            None => None,
        };
        let _ = self.noted(self.store.keep(shelf, room.as_str(), json, keep_for.as_millis() as u64).await);
    }
}

/// The people on this node for its heartbeat: the web client's participants (each with a
/// camera and the mix: two media sessions), or half the media sessions where more clients
/// come without the WebSocket (WHIP publishers, WHEP viewers, hall cameras' watchers).
fn people_here() -> u32 {
    let m = crate::metrics::metrics();
    m.participants_total().max(m.media_sessions_total().div_ceil(2))
}

/// The process' CPU use, in cores: measured between readings at least half a second apart and
/// smoothed over a few (the first heartbeat, right after the start, would otherwise divide a
/// tick or two by a few microseconds and keep a fresh node out of the placements).
struct CpuMeter {
    ticks: u64,
    at: Instant,
    smoothed: f32,
    primed: bool,
}

impl CpuMeter {
    fn new() -> Self {
        Self { ticks: crate::metrics::cpu_ticks(), at: Instant::now(), smoothed: 0.0, primed: false }
    }

    fn cores_busy(&mut self) -> f32 {
        let (ticks, at) = (crate::metrics::cpu_ticks(), Instant::now());
        let secs = (at - self.at).as_secs_f32();
        if secs < 0.5 {
            return self.smoothed;
        }
        let busy = ticks.saturating_sub(self.ticks) as f32 / 100.0 / secs;
        self.smoothed = if self.primed { 0.5 * self.smoothed + 0.5 * busy } else { busy };
        self.primed = true;
        (self.ticks, self.at) = (ticks, at);
        self.smoothed
    }
}
