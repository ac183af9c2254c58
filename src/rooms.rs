//! The registry of live rooms: created on first use, dropped when their control task reports
//! idle (no participants, no media, for the grace period).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use std::net::IpAddr;

use crate::control::{AdmitRequest, Admission, Purpose, RoomControl, RoomRules};
use crate::ids::{RoomId, SessionId};
use crate::media::sdp::{self, Role};
use crate::media::ladder::ReceiverCap;
use crate::media::{Answer, MediaError, Owner, SharedMediaConfig, ViewerOf, Voice};
use crate::protocol::ErrorCode;
use crate::room::participants::RoomError;
use crate::secret;

/// Who sent a WHIP/WHEP request: the `Authorization: Bearer` value, the client address (only
/// for the password rate limit; never stored or logged) and what the client calls itself
/// (shown in the room's list when it is an external client).
pub struct Caller {
    pub bearer: Option<String>,
    pub address: IpAddr,
    pub label: Option<String>,
    /// WHEP: which rungs of the ladder the receiver wants at most.
    pub cap: ReceiverCap,
    /// Kept with the session until it ends (the address's session permit).
    pub hold: Option<crate::media::Hold>,
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
    rules: RoomRules,
    /// Rooms open at once (`--max-rooms`).
    max_rooms: usize,
    /// Where rooms keep their rules beyond this node (a pool's Redis).
    keeper: std::sync::OnceLock<Arc<dyn crate::control::Keeper>>,
}

/// Whom a WHIP/WHEP session belongs to, once the gate let it in.
enum Admitted {
    Participant(Owner),
    External { exclude: Option<SessionId> },
}

impl Rooms {
    pub fn new(cfg: SharedMediaConfig, empty_grace: Duration, rules: RoomRules, max_rooms: usize) -> Self {
        Self { inner: Arc::default(), cfg, empty_grace, rules, max_rooms, keeper: Default::default() }
    }

    /// From now on rooms keep their rules with `keeper` (set once, when the node joins a pool).
    pub fn keep_with(&self, keeper: Arc<dyn crate::control::Keeper>) {
        let _ = self.keeper.set(keeper);
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
        // Rooms that closed but were not yet taken out do not count.
        inner.rooms.retain(|_, e| !e.control.is_closed());
        if inner.rooms.len() >= self.max_rooms {
            tracing::warn!(max_rooms = self.max_rooms, "a new room was refused: the server holds its most rooms");
            return Err(MediaError::ServerFull(self.max_rooms));
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
        let keeper = self.keeper.get().cloned();
        let control = RoomControl::start(room.clone(), self.cfg.clone(), self.rules, self.empty_grace, keeper, on_idle);
        inner.rooms.insert(room.clone(), Entry { control: control.clone(), generation });
        Ok(control)
    }

    /// Runs `op` on the room; retried once if the room closed under us. Media requests create
    /// a room only on a server with `--open-media`: elsewhere nobody could have let them in
    /// (no participant, no key), so a room that is not live stays so.
    async fn with_room<T, F, Fut>(&self, room: &RoomId, op: F) -> Result<T, MediaError>
    where
        F: Fn(RoomControl) -> Fut,
        Fut: std::future::Future<Output = Result<T, MediaError>>,
    {
        let control = || match self.rules.open_media {
            true => self.control(room),
            false => self.get(room).ok_or_else(|| {
                policy(ErrorCode::Unauthorized, "no meeting is running in this room; media needs a participant token or a key from a moderator")
            }),
        };
        match op(control()?).await {
            Err(MediaError::RoomClosed) => op(control()?).await,
            other => other,
        }
    }

    /// Resolves the caller to a participant (their token) or an external client (a room key,
    /// the room password, an external publisher's session id, or `--open-media`), checking
    /// the rights for `purpose`. An external client is listed under `session` from here on.
    async fn admit(control: &RoomControl, caller: &Caller, purpose: Purpose, session: SessionId) -> Result<Admitted, MediaError> {
        let mut password_ok = false;
        loop {
            let request = AdmitRequest { bearer: caller.bearer.clone(), purpose, password_ok, session, label: caller.label.clone() };
            match control.admit(request).await.map_err(MediaError::Policy)? {
                Admission::Participant(owner) => return Ok(Admitted::Participant(owner)),
                Admission::External { exclude } => return Ok(Admitted::External { exclude }),
                Admission::CheckPassword(_) if password_ok => {
                    return Err(MediaError::Internal("the gate asked for the password twice".into()))
                }
                Admission::CheckPassword(hash) => {
                    let key = secret::address_key(caller.address);
                    control.password_gate(key).await.map_err(MediaError::Policy)?;
                    let password = caller.bearer.clone().unwrap_or_default();
                    if !secret::verify(hash, password).await {
                        control.password_failed(key).await;
                        return Err(policy(ErrorCode::WrongPassword, "wrong password"));
                    }
                    password_ok = true;
                }
            }
        }
    }

    /// Runs `start` for a session the gate let in; an external client whose session does not
    /// start leaves the room's list again.
    async fn start_session<T, Fut>(control: &RoomControl, admitted: &Admitted, session: SessionId, start: Fut) -> Result<T, MediaError>
    where
        Fut: std::future::Future<Output = Result<T, MediaError>>,
    {
        let result = start.await;
        if result.is_err() && matches!(admitted, Admitted::External { .. }) {
            control.external_gone(session).await;
        }
        result
    }

    /// WHIP: a new publisher in `room`. With a participant's token it is that participant's
    /// camera and microphone (or screen, with `screen`); otherwise an external publisher (OBS,
    /// a hall encoder), let in by the room's publisher key or password (see [`Self::admit`]).
    pub async fn publish(&self, room: &RoomId, body: &[u8], caller: Caller, screen: bool) -> Result<Answer, MediaError> {
        let purpose = if screen { Purpose::Share } else { Purpose::Publish };
        self.with_room(room, |control| {
            let caller = &caller;
            async move {
                let session = SessionId::random();
                // Who asks comes first: 401 before the SDP is read.
                let admitted = Self::admit(&control, caller, purpose, session).await?;
                let start = async {
                    let offer = sdp::parse_offer(body)?;
                    let plan = sdp::plan(&offer, Role::Publish)?;
                    let owner = match &admitted {
                        Admitted::Participant(owner) => Some(owner.clone()),
                        Admitted::External { .. } => None,
                    };
                    let answer = control.media().await?.publish(session, offer, plan, owner.clone(), screen, caller.hold.clone()).await?;
                    if let Some(o) = owner {
                        control.publishing(o.participant, screen).await;
                    }
                    Ok(answer)
                };
                Self::start_session(&control, &admitted, session, start).await
            }
        })
        .await
    }

    /// WHEP: a new viewer in `room`. A participant's token as bearer leaves that participant's
    /// voice out of what the viewer hears (an external publisher's session id does the same
    /// for it); external viewers need the room's viewer key or password.
    pub async fn view(&self, room: &RoomId, body: &[u8], caller: Caller) -> Result<Answer, MediaError> {
        self.with_room(room, |control| {
            let caller = &caller;
            async move {
                let session = SessionId::random();
                let admitted = Self::admit(&control, caller, Purpose::View, session).await?;
                let start = async {
                    let offer = sdp::parse_offer(body)?;
                    let plan = sdp::plan(&offer, Role::View(self.cfg.viewer_codec))?;
                    let (exclude, participant) = match &admitted {
                        Admitted::Participant(o) => (Some(Voice::Participant(o.participant)), Some(o.participant)),
                        Admitted::External { exclude } => (exclude.map(Voice::Session), None),
                    };
                    let who = ViewerOf { exclude, owner: participant, cap: caller.cap };
                    control.media().await?.view(session, offer, plan, who, caller.hold.clone()).await
                };
                Self::start_session(&control, &admitted, session, start).await
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

    /// For a script with the room's moderator key: recordings and live streams. A room that
    /// is not live has no key.
    pub async fn automate(&self, room: &RoomId, key: SessionId, action: crate::control::Automation) -> Result<crate::control::Automated, MediaError> {
        let control = self.get(room).ok_or_else(|| MediaError::Policy(crate::room::participants::RoomError {
            code: crate::protocol::ErrorCode::Forbidden,
            message: "the room is not live: its moderator key is gone".into(),
        }))?;
        control.automate(key, action).await.map_err(MediaError::Policy)
    }

    /// A room's public broadcast, while it is on.
    pub fn hls(&self, room: &RoomId) -> Option<std::sync::Arc<crate::outputs::hls::HlsStore>> {
        self.cfg.hls.get(room)
    }

    /// Where recordings are written, if this server records.
    pub fn recordings(&self) -> Option<&crate::outputs::recording::Recordings> {
        self.cfg.recordings.as_ref()
    }

    /// A live room's settings, without creating the room.
    pub async fn info(&self, room: &RoomId) -> Option<crate::protocol::RoomSettings> {
        self.get(room)?.info().await
    }

    pub fn room_count(&self) -> usize {
        self.lock().rooms.len()
    }

    /// Whether the room is open on this node.
    pub fn is_live(&self, room: &RoomId) -> bool {
        self.get(room).is_some()
    }

    /// The rooms open on this node.
    pub fn live_rooms(&self) -> Vec<RoomId> {
        self.lock().rooms.iter().filter(|(_, e)| !e.control.is_closed()).map(|(id, _)| id.clone()).collect()
    }

    /// Closes every room (participants told, sessions ended, pipelines to NULL) and refuses
    /// new ones.
    pub async fn shutdown(&self) {
        self.lock().closing = true;
        self.close_all().await;
    }

    /// Closes every room as a shutdown does ("server restarting": the clients come back by
    /// themselves, in a pool on another node), but goes on serving.
    pub async fn close_all(&self) {
        let rooms: Vec<RoomControl> = self.lock().rooms.drain().map(|(_, e)| e.control).collect();
        for room in rooms {
            room.shutdown().await;
        }
    }
}
