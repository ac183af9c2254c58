//! What the cluster keeps in Redis, and nothing else talks to Redis. Keys (all under `plenum:`):
//!
//! - `node:{id}`: a node's heartbeat ([`NodeLoad`] as JSON), expiring after [`STALE_MS`];
//! - `nodes`: the set of node ids that ever sent one (members without a heartbeat are gone);
//! - `room:{room}`: a room's lease, its owner's id, expiring when the lease runs out;
//! - `recent:{id}`: rooms placed on a node in the last two seconds (its heartbeat does not
//!   show them yet);
//! - `drain:{id}`: the deadline of a node's drain (`plenum drain`);
//! - `kept:{room}`: a room's rules and the digests of its keys ([`crate::room::kept`]), for
//!   two weeks after its last use;
//! - `running:{room}`: the outputs a room runs ([`crate::control::Running`]: live streams with
//!   their target URLs, broadcast, recording), for a minute after its node last said so.
//!
//! Every call is bounded by [`OP_LIMIT`]: a Redis that is slow or gone costs a request half a
//! second at most, and after a failure the store says "unavailable" at once for a second
//! while the heartbeat task tries again.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{AsyncCommands, Script};

use super::lease::{self, Renewal};
use super::placement::{NodeLoad, STALE_MS};

const PREFIX: &str = "plenum:";
/// Longest a Redis call may take.
pub const OP_LIMIT: Duration = Duration::from_millis(500);
/// After a failed call, how long the store does not try (the heartbeat task does).
const BACK_OFF: Duration = Duration::from_secs(1);
/// How long a placement counts as recent.
const RECENT_MS: u64 = 2_000;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("Redis is not reachable")]
    Unavailable,
    #[error("Redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("Redis did not answer within {} ms", OP_LIMIT.as_millis())]
    Timeout,
    #[error("a heartbeat in Redis is not valid: {0}")]
    Corrupt(#[from] serde_json::Error),
}

pub struct Store {
    client: redis::Client,
    conn: Mutex<Option<ConnectionManager>>,
    failed_at: Mutex<Option<Instant>>,
    claim: Script,
    renew: Script,
    release: Script,
    take_over: Script,
}

fn key(kind: &str, name: &str) -> String {
    format!("{PREFIX}{kind}:{name}")
}

impl Store {
    /// Checks the URL; connects later (the heartbeat task), so a node starts without Redis.
    pub fn new(url: &str) -> Result<Self, StoreError> {
        Ok(Self {
            client: redis::Client::open(url)?,
            conn: Mutex::new(None),
            failed_at: Mutex::new(None),
            claim: Script::new(lease::CLAIM),
            renew: Script::new(lease::RENEW),
            release: Script::new(lease::RELEASE),
            take_over: Script::new(lease::TAKE_OVER),
        })
    }

    /// Opens the connection if there is none; the connection manager reconnects by itself
    /// after that.
    pub async fn connect(&self) -> Result<(), StoreError> {
        if self.conn.lock().unwrap_or_else(|p| p.into_inner()).is_some() {
            return Ok(());
        }
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(OP_LIMIT))
            .set_response_timeout(Some(OP_LIMIT))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(500));
        let manager = tokio::time::timeout(OP_LIMIT * 2, ConnectionManager::new_with_config(self.client.clone(), config))
            .await
            .map_err(|_| StoreError::Timeout)??;
        *self.conn.lock().unwrap_or_else(|p| p.into_inner()) = Some(manager);
        Ok(())
    }

    fn handle(&self) -> Result<ConnectionManager, StoreError> {
        let failed = *self.failed_at.lock().unwrap_or_else(|p| p.into_inner());
        if failed.is_some_and(|t| t.elapsed() < BACK_OFF) {
            return Err(StoreError::Unavailable);
        }
        self.conn.lock().unwrap_or_else(|p| p.into_inner()).clone().ok_or(StoreError::Unavailable)
    }

    /// Runs one call on the connection within [`OP_LIMIT`], noting a failure.
    async fn call<T, F, Fut>(&self, op: F) -> Result<T, StoreError>
    where
        F: FnOnce(ConnectionManager) -> Fut,
        Fut: std::future::Future<Output = redis::RedisResult<T>>,
    {
        let conn = self.handle()?;
        let result = match tokio::time::timeout(OP_LIMIT, op(conn)).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(StoreError::Redis(e)),
            Err(_) => Err(StoreError::Timeout),
        };
        *self.failed_at.lock().unwrap_or_else(|p| p.into_inner()) = result.is_err().then(Instant::now);
        result
    }

    /// The heartbeat task's call: tries even while the store backs off.
    pub async fn heartbeat(&self, me: &NodeLoad) -> Result<(), StoreError> {
        *self.failed_at.lock().unwrap_or_else(|p| p.into_inner()) = None;
        let value = serde_json::to_string(me)?;
        let (node, id) = (key("node", &me.id), me.id.clone());
        self.call(|mut c| async move {
            redis::pipe()
                .cmd("SET").arg(&node).arg(value).arg("PX").arg(STALE_MS).ignore()
                .sadd(format!("{PREFIX}nodes"), id).ignore()
                .query_async::<()>(&mut c)
                .await
        })
        .await
    }

    /// Every node with a heartbeat, and the rooms placed on each lately.
    pub async fn nodes(&self) -> Result<Vec<(NodeLoad, u32)>, StoreError> {
        let ids: Vec<String> = self.call(|mut c| async move { c.smembers(format!("{PREFIX}nodes")).await }).await?;
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let keys: Vec<String> = ids.iter().map(|id| key("node", id)).chain(ids.iter().map(|id| key("recent", id))).collect();
        let values: Vec<Option<String>> = self.call(|mut c| async move { c.mget(keys).await }).await?;
        let (beats, recent) = values.split_at(ids.len());
        let mut nodes = Vec::new();
        for (beat, recent) in beats.iter().zip(recent) {
            if let Some(beat) = beat {
                let load: NodeLoad = serde_json::from_str(beat)?;
                nodes.push((load, recent.as_deref().and_then(|r| r.parse().ok()).unwrap_or(0)));
            }
        }
        Ok(nodes)
    }

    /// The node a room's lease names, if any.
    pub async fn owner(&self, room: &str) -> Result<Option<String>, StoreError> {
        let k = key("room", room);
        self.call(|mut c| async move { c.get(k).await }).await
    }

    /// Claims a free room for `node`; the owner afterwards.
    pub async fn claim(&self, room: &str, node: &str, ttl_ms: u64) -> Result<String, StoreError> {
        let (k, chosen, recent) = (key("room", room), node.to_string(), key("recent", node));
        let script = self.claim.clone();
        let owner: String = self.call(|mut c| async move { script.key(k).arg(chosen).arg(ttl_ms).invoke_async(&mut c).await }).await?;
        if owner == node {
            // Counted only when the claim placed the room (best effort: a lost count only
            // makes the next placement a little less even).
            let _ = self
                .call(|mut c| async move {
                    redis::pipe().incr(&recent, 1).ignore().pexpire(&recent, RECENT_MS as i64).ignore().query_async::<()>(&mut c).await
                })
                .await;
        }
        Ok(owner)
    }

    /// Gives a room whose owner `dead` is gone to `node`; the owner afterwards.
    pub async fn take_over(&self, room: &str, node: &str, dead: &str, ttl_ms: u64) -> Result<String, StoreError> {
        let (k, node, dead) = (key("room", room), node.to_string(), dead.to_string());
        let script = self.take_over.clone();
        self.call(|mut c| async move { script.key(k).arg(node).arg(dead).arg(ttl_ms).invoke_async(&mut c).await }).await
    }

    pub async fn renew(&self, room: &str, node: &str, ttl_ms: u64) -> Result<Renewal, StoreError> {
        let (k, node) = (key("room", room), node.to_string());
        let script = self.renew.clone();
        let answer: redis::Value = self.call(|mut c| async move { script.key(k).arg(node).arg(ttl_ms).invoke_async(&mut c).await }).await?;
        Ok(match answer {
            redis::Value::Int(1) => Renewal::Renewed,
            redis::Value::Int(_) => Renewal::Reclaimed,
            other => Renewal::TakenBy(redis::from_redis_value(other).unwrap_or_default()),
        })
    }

    /// What a room kept on `shelf` ("kept": its rules, "running": its outputs), if anything.
    pub async fn kept(&self, shelf: &str, room: &str) -> Result<Option<String>, StoreError> {
        let k = key(shelf, room);
        self.call(|mut c| async move { c.get(k).await }).await
    }

    /// Keeps what a room keeps on `shelf` (JSON) for `for_ms`, or (`None`) forgets it.
    pub async fn keep(&self, shelf: &str, room: &str, json: Option<String>, for_ms: u64) -> Result<(), StoreError> {
        let k = key(shelf, room);
        match json {
            Some(json) => self.call(|mut c| async move { c.pset_ex(k, json, for_ms).await }).await,
            None => self.call(|mut c| async move { c.del(k).await }).await,
        }
    }

    /// When the node's drain ends (milliseconds since the epoch), if it is draining.
    pub async fn drain_deadline(&self, node: &str) -> Result<Option<u64>, StoreError> {
        let k = key("drain", node);
        self.call(|mut c| async move { c.get(k).await }).await
    }

    /// Drains `node` until `deadline_ms` (kept a day beyond it), or takes the drain back.
    pub async fn set_drain(&self, node: &str, deadline_ms: Option<u64>) -> Result<(), StoreError> {
        let k = key("drain", node);
        match deadline_ms {
            Some(at) => {
                let keep = at.saturating_sub(super::now_ms()) + 24 * 3600 * 1000;
                self.call(|mut c| async move { c.pset_ex(k, at, keep).await }).await
            }
            None => self.call(|mut c| async move { c.del(k).await }).await,
        }
    }

    /// Removes a node's heartbeat (it leaves the pool).
    pub async fn forget(&self, node: &str) -> Result<(), StoreError> {
        let (k, id) = (key("node", node), node.to_string());
        self.call(|mut c| async move { redis::pipe().del(k).ignore().srem(format!("{PREFIX}nodes"), id).ignore().query_async::<()>(&mut c).await })
            .await
    }

    pub async fn release(&self, room: &str, node: &str) -> Result<bool, StoreError> {
        let (k, node) = (key("room", room), node.to_string());
        let script = self.release.clone();
        let n: i64 = self.call(|mut c| async move { script.key(k).arg(node).invoke_async(&mut c).await }).await?;
        Ok(n == 1)
    }
}
