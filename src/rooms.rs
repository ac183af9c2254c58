//! The registry of live rooms: created on first use, dropped when their control task reports
//! idle (no participants, no media, for the grace period).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::control::RoomControl;
use crate::ids::{RoomId, SessionId};
use crate::media::sdp::{self, Role};
use crate::media::{Answer, MediaError, SharedMediaConfig, Voice};

struct Entry {
    control: RoomControl,
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

    fn get(&self, room: &RoomId) -> Option<RoomControl> {
        self.lock().rooms.get(room).map(|e| e.control.clone()).filter(|c| !c.is_closed())
    }

    /// The room's control task, started if the room is not live.
    pub fn control(&self, room: &RoomId) -> Result<RoomControl, MediaError> {
        let mut inner = self.lock();
        if inner.closing {
            return Err(MediaError::RoomClosed);
        }
        if let Some(e) = inner.rooms.get(room).filter(|e| !e.control.is_closed()) {
            return Ok(e.control.clone());
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
        let control = RoomControl::start(room.clone(), self.cfg.clone(), self.empty_grace, on_idle);
        inner.rooms.insert(room.clone(), Entry { control: control.clone(), generation });
        Ok(control)
    }

    /// Runs `op` on the room, creating it if needed; retried once if the room closed under us.
    async fn with_room<T, F, Fut>(&self, room: &RoomId, op: F) -> Result<T, MediaError>
    where
        F: Fn(RoomControl) -> Fut,
        Fut: std::future::Future<Output = Result<T, MediaError>>,
    {
        match op(self.control(room)?).await {
            Err(MediaError::RoomClosed) => op(self.control(room)?).await,
            other => other,
        }
    }

    /// WHIP: a new publisher in `room`. With a bearer token it is that participant's camera
    /// and microphone; without, an anonymous publisher (OBS, a hall encoder).
    pub async fn publish(&self, room: &RoomId, body: &[u8], bearer: Option<SessionId>) -> Result<Answer, MediaError> {
        let offer = sdp::parse_offer(body)?;
        let plan = sdp::plan(&offer, Role::Publish)?;
        self.with_room(room, |control| {
            let (offer, plan) = (offer.clone(), plan.clone());
            async move {
                let access = control.media(bearer).await?;
                if bearer.is_some() && access.owner.is_none() {
                    return Err(MediaError::UnknownToken);
                }
                let owner = access.owner.clone();
                let answer = access.media.publish(offer, plan, access.owner).await?;
                if let Some(o) = owner {
                    control.publishing(o.participant).await;
                }
                Ok(answer)
            }
        })
        .await
    }

    /// WHEP: a new viewer in `room`. A participant's token (or a publisher's session id) as
    /// bearer leaves that voice out of what the viewer hears.
    pub async fn view(&self, room: &RoomId, body: &[u8], bearer: Option<SessionId>) -> Result<Answer, MediaError> {
        let offer = sdp::parse_offer(body)?;
        let plan = sdp::plan(&offer, Role::View)?;
        self.with_room(room, |control| {
            let (offer, plan) = (offer.clone(), plan.clone());
            async move {
                let access = control.media(bearer).await?;
                let owner = access.owner.as_ref().map(|o| o.participant);
                let exclude = match (owner, bearer) {
                    (Some(p), _) => Some(Voice::Participant(p)),
                    (None, Some(session)) => Some(Voice::Session(session)),
                    (None, None) => None,
                };
                access.media.view(offer, plan, exclude, owner).await
            }
        })
        .await
    }

    /// Ends a session; a room that is not live has no sessions.
    pub async fn end(&self, room: &RoomId, session: SessionId) -> Result<(), MediaError> {
        let control = self.get(room).ok_or(MediaError::UnknownSession)?;
        let media = control.existing_media().await?;
        media.end(session).await.map_err(|e| match e {
            MediaError::RoomClosed => MediaError::UnknownSession,
            e => e,
        })
    }

    pub async fn trickle(&self, room: &RoomId, session: SessionId, candidates: Vec<String>) -> Result<(), MediaError> {
        let control = self.get(room).ok_or(MediaError::UnknownSession)?;
        control.existing_media().await?.trickle(session, candidates).await
    }

    pub fn room_count(&self) -> usize {
        self.lock().rooms.len()
    }

    /// Closes every room (participants told, sessions ended, pipelines to NULL) and refuses
    /// new ones.
    pub async fn shutdown(&self) {
        let rooms: Vec<RoomControl> = {
            let mut inner = self.lock();
            inner.closing = true;
            inner.rooms.drain().map(|(_, e)| e.control).collect()
        };
        for room in rooms {
            room.shutdown().await;
        }
    }
}
