//! The registry of live rooms: created on first use, dropped when their control task reports
//! idle (no participants, no media, for the grace period).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use std::net::IpAddr;

use crate::control::{Gate, Purpose, RoomControl};
use crate::ids::{RoomId, SessionId};
use crate::media::sdp::{self, Role};
use crate::media::{Answer, MediaError, Owner, SharedMediaConfig, Voice};
use crate::protocol::ErrorCode;
use crate::room::participants::RoomError;
use crate::secret;

/// Who sent a WHIP/WHEP request: the `Authorization: Bearer` value and the client address
/// (only for the password rate limit; never stored or logged).
pub struct Caller {
    pub bearer: Option<String>,
    pub address: IpAddr,
}

fn policy(code: ErrorCode, message: &str) -> MediaError {
    MediaError::Policy(RoomError { code, message: message.to_string() })
}

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
    /// (participants, presentation-mode audience) per room.
    limits: (usize, usize),
}

impl Rooms {
    pub fn new(cfg: SharedMediaConfig, empty_grace: Duration, limits: (usize, usize)) -> Self {
        Self { inner: Arc::default(), cfg, empty_grace, limits }
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
        let control = RoomControl::start(room.clone(), self.cfg.clone(), self.limits, self.empty_grace, on_idle);
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

    /// Resolves the caller to a participant (their token) or an anonymous client, checking the
    /// room's password and the participant's rights for `purpose`.
    async fn admit(control: &RoomControl, caller: &Caller, purpose: Purpose) -> Result<Option<Owner>, MediaError> {
        let token = caller.bearer.as_deref().and_then(SessionId::parse);
        match control.gate(token, false, purpose).await.map_err(MediaError::Policy)? {
            Gate::Participant(owner) => Ok(Some(owner)),
            // Without a password, a bearer must be a token (or a publisher's session id).
            Gate::Anonymous if caller.bearer.is_some() && token.is_none() => Err(MediaError::UnknownToken),
            Gate::Anonymous => Ok(None),
            Gate::CheckPassword(hash) => {
                let key = secret::address_key(caller.address);
                control.password_gate(key).await.map_err(MediaError::Policy)?;
                let Some(password) = caller.bearer.clone() else {
                    return Err(policy(ErrorCode::PasswordRequired, "this room needs a password (Authorization: Bearer <password>)"));
                };
                if secret::verify(hash, password).await {
                    Ok(None)
                } else {
                    control.password_failed(key).await;
                    Err(policy(ErrorCode::WrongPassword, "wrong password"))
                }
            }
        }
    }

    /// WHIP: a new publisher in `room`. With a participant's token it is that participant's
    /// camera and microphone (or screen, with `screen`); without, an anonymous publisher (OBS,
    /// a hall encoder), which needs the room password as bearer if there is one.
    pub async fn publish(&self, room: &RoomId, body: &[u8], caller: Caller, screen: bool) -> Result<Answer, MediaError> {
        let purpose = if screen { Purpose::Share } else { Purpose::Publish };
        self.with_room(room, |control| {
            let caller = &caller;
            async move {
                // Who asks comes first: a room with a password says 401 before reading SDP.
                let owner = Self::admit(&control, caller, purpose).await?;
                let offer = sdp::parse_offer(body)?;
                let plan = sdp::plan(&offer, Role::Publish)?;
                let is_session_token = caller.bearer.as_deref().and_then(SessionId::parse).is_some();
                if owner.is_none() && is_session_token {
                    return Err(MediaError::UnknownToken);
                }
                if screen && owner.is_none() {
                    return Err(policy(ErrorCode::Forbidden, "screen sharing needs a participant token"));
                }
                let media = control.media().await?;
                let answer = media.publish(offer, plan, owner.clone(), screen).await?;
                if let Some(o) = owner {
                    control.publishing(o.participant, screen).await;
                }
                Ok(answer)
            }
        })
        .await
    }

    /// WHEP: a new viewer in `room`. A participant's token as bearer leaves that participant's
    /// voice out of what the viewer hears (a publisher's session id does the same for
    /// anonymous publishers); in a room with a password, anonymous viewers give it as bearer.
    pub async fn view(&self, room: &RoomId, body: &[u8], caller: Caller) -> Result<Answer, MediaError> {
        self.with_room(room, |control| {
            let caller = &caller;
            async move {
                let owner = Self::admit(&control, caller, Purpose::View).await?;
                let offer = sdp::parse_offer(body)?;
                let plan = sdp::plan(&offer, Role::View(self.cfg.viewer_codec))?;
                let participant = owner.as_ref().map(|o| o.participant);
                let session = caller.bearer.as_deref().and_then(SessionId::parse);
                let exclude = match (participant, session) {
                    (Some(p), _) => Some(Voice::Participant(p)),
                    (None, Some(s)) => Some(Voice::Session(s)),
                    (None, None) => None,
                };
                control.media().await?.view(offer, plan, exclude, participant).await
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

    /// A live room's settings, without creating the room.
    pub async fn info(&self, room: &RoomId) -> Option<crate::protocol::RoomSettings> {
        self.get(room)?.info().await
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
