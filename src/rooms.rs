//! The registry of live rooms: created on first use, dropped when their task reports idle.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::ids::{RoomId, SessionId};
use crate::media::sdp::{self, Role};
use crate::media::{Answer, MediaError, RoomMedia, SharedMediaConfig};

struct Entry {
    media: RoomMedia,
    generation: u64,
}

#[derive(Default)]
struct Inner {
    rooms: HashMap<RoomId, Entry>,
    generation: u64,
    closing: bool,
}

/// Shared by all HTTP handlers.
pub struct Rooms {
    inner: Arc<Mutex<Inner>>,
    cfg: SharedMediaConfig,
    empty_grace: Duration,
}

impl Rooms {
    pub fn new(cfg: SharedMediaConfig, empty_grace: Duration) -> Self {
        Self { inner: Arc::default(), cfg, empty_grace }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // Only map inserts and removals happen under this lock; a poisoned map is still valid.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn get(&self, room: &RoomId) -> Option<RoomMedia> {
        self.lock().rooms.get(room).map(|e| e.media.clone()).filter(|m| !m.is_closed())
    }

    fn get_or_create(&self, room: &RoomId) -> Result<RoomMedia, MediaError> {
        let mut inner = self.lock();
        if inner.closing {
            return Err(MediaError::RoomClosed);
        }
        if let Some(e) = inner.rooms.get(room).filter(|e| !e.media.is_closed()) {
            return Ok(e.media.clone());
        }
        inner.generation += 1;
        let generation = inner.generation;
        let weak = Arc::downgrade(&self.inner);
        let id = room.clone();
        let on_idle = Box::new(move || {
            if let Some(inner) = weak.upgrade() {
                let mut inner = inner.lock().unwrap_or_else(|p| p.into_inner());
                if inner.rooms.get(&id).is_some_and(|e| e.generation == generation) {
                    inner.rooms.remove(&id);
                }
            }
        });
        let media = RoomMedia::start(room.clone(), self.cfg.clone(), self.empty_grace, on_idle)?;
        inner.rooms.insert(room.clone(), Entry { media: media.clone(), generation });
        Ok(media)
    }

    /// Runs `op` on the room, creating it if needed; retried once if the room closed under us.
    async fn with_room<T, F, Fut>(&self, room: &RoomId, op: F) -> Result<T, MediaError>
    where
        F: Fn(RoomMedia) -> Fut,
        Fut: std::future::Future<Output = Result<T, MediaError>>,
    {
        match op(self.get_or_create(room)?).await {
            Err(MediaError::RoomClosed) => op(self.get_or_create(room)?).await,
            other => other,
        }
    }

    /// WHIP: a new publisher in `room`.
    pub async fn publish(&self, room: &RoomId, body: &[u8]) -> Result<Answer, MediaError> {
        let offer = sdp::parse_offer(body)?;
        let plan = sdp::plan(&offer, Role::Publish)?;
        self.with_room(room, |m| {
            let (offer, plan) = (offer.clone(), plan.clone());
            async move { m.publish(offer, plan).await }
        })
        .await
    }

    /// WHEP: a new viewer in `room`; `exclude` names a publisher whose voice is left out.
    pub async fn view(&self, room: &RoomId, body: &[u8], exclude: Option<SessionId>) -> Result<Answer, MediaError> {
        let offer = sdp::parse_offer(body)?;
        let plan = sdp::plan(&offer, Role::View)?;
        self.with_room(room, |m| {
            let (offer, plan) = (offer.clone(), plan.clone());
            async move { m.view(offer, plan, exclude).await }
        })
        .await
    }

    /// Ends a session; a room that does not exist has no sessions.
    pub async fn end(&self, room: &RoomId, session: SessionId) -> Result<(), MediaError> {
        match self.get(room) {
            Some(m) => m.end(session).await.map_err(|e| match e {
                MediaError::RoomClosed => MediaError::UnknownSession,
                e => e,
            }),
            None => Err(MediaError::UnknownSession),
        }
    }

    pub async fn trickle(&self, room: &RoomId, session: SessionId, candidates: Vec<String>) -> Result<(), MediaError> {
        match self.get(room) {
            Some(m) => m.trickle(session, candidates).await,
            None => Err(MediaError::UnknownSession),
        }
    }

    pub fn room_count(&self) -> usize {
        self.lock().rooms.len()
    }

    /// Closes every room (sessions ended, pipelines to NULL) and refuses new ones.
    pub async fn shutdown(&self) {
        let rooms: Vec<RoomMedia> = {
            let mut inner = self.lock();
            inner.closing = true;
            inner.rooms.drain().map(|(_, e)| e.media).collect()
        };
        for room in rooms {
            room.shutdown().await;
        }
    }
}
