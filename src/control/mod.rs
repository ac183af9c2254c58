//! A room's control task: the participants of the control WebSocket, moderation, chat, who
//! speaks, the labels and stage of the picture, and which media sessions belong to whom.
//!
//! It owns the room's policy state ([`crate::room::participants::Room`], sans-IO) and the
//! handle to the room's media task, which it starts on demand and restarts if the media task
//! closed while the room had no media.

mod cameras;
mod kept;
mod outputs;

pub use kept::{Keeper, Running, RUNNING_FOR};

pub use outputs::{Automated, Automation};

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::sync::{broadcast, mpsc, oneshot};

use crate::ids::{RoomId, SessionId};
use crate::media::ladder::ReceiverCap;
use crate::media::{MediaError, MediaEvent, Owner, RoomMedia, SharedMediaConfig, Stage, TileLabel};
use crate::protocol::{ErrorCode, RoomSettings, ServerMessage};
use crate::room::access::{Gate, Request};
pub use crate::room::access::Purpose;
use crate::room::moderation::{Effect, ModAction};
use crate::room::participants::{Joined, ParticipantId, Room, RoomError};

/// Control commands queued before senders wait.
const COMMAND_CAPACITY: usize = 256;
/// Messages a slow WebSocket client may fall behind before it is disconnected.
pub const BROADCAST_CAPACITY: usize = 256;
const HOUSEKEEPING_INTERVAL: Duration = Duration::from_millis(500);

/// Messages for one participant's connection.
#[derive(Debug)]
pub enum Direct {
    Message(ServerMessage),
    /// Admitted from the waiting room: from now on, the room's broadcasts too.
    Subscribe(broadcast::Receiver<ServerMessage>),
    /// The server ends this participant's connection (removed, refused, meeting ended).
    Close(String),
}

/// What a participant gets on joining.
pub struct Membership {
    pub id: ParticipantId,
    /// Sent to the client at once (`joined`, then `waiting` or history and list).
    pub greeting: Vec<ServerMessage>,
    pub direct: mpsc::UnboundedReceiver<Direct>,
    /// `None` while waiting for admission.
    pub events: Option<broadcast::Receiver<ServerMessage>>,
}

/// Who a WHIP/WHEP request is, as far as the room is concerned.
#[derive(Debug)]
pub enum Admission {
    /// A participant's token, allowed for the purpose.
    Participant(Owner),
    /// An external client, let in and listed; a viewer presenting an external publisher's
    /// session id hears the mix without it (`exclude`).
    External { exclude: Option<SessionId> },
    /// Only the room password can let this request in: check the bearer against this
    /// argon2id hash (off the control task), then ask again with `password_ok`.
    CheckPassword(String),
}

/// A WHIP/WHEP request for the gate (see [`crate::room::access::Room::gate`]).
pub struct AdmitRequest {
    pub bearer: Option<String>,
    pub purpose: Purpose,
    pub password_ok: bool,
    /// The session id the request will get if it is let in.
    pub session: SessionId,
    pub label: Option<String>,
}

/// What every room of this server is built with.
#[derive(Clone, Copy, Debug)]
pub struct RoomRules {
    pub max_participants: usize,
    pub max_audience: usize,
    /// `--open-media`: anonymous WHIP/WHEP clients are let in (and listed).
    pub open_media: bool,
}

pub struct MediaAccess {
    pub media: RoomMedia,
}

enum Command {
    Join { name: String, key: Option<SessionId>, resume: Option<SessionId>, phone: bool, reply: oneshot::Sender<Result<Membership, RoomError>> },
    MayResume { token: SessionId, reply: oneshot::Sender<bool> },
    PasswordGate { address: u64, reply: oneshot::Sender<Result<Option<String>, RoomError>> },
    PasswordFailed { address: u64 },
    Leave { id: ParticipantId },
    Chat { id: ParticipantId, text: String, reply: oneshot::Sender<Result<(), RoomError>> },
    SetMedia { id: ParticipantId, audio_muted: bool, video_muted: bool },
    RaiseHand { id: ParticipantId, raised: bool },
    SetQuality { id: ParticipantId, cap: ReceiverCap },
    Moderate { id: ParticipantId, action: ModAction, reply: oneshot::Sender<Result<(), RoomError>> },
    Admit { request: AdmitRequest, reply: oneshot::Sender<Result<Admission, RoomError>> },
    ExternalGone { session: SessionId },
    Media { create: bool, reply: oneshot::Sender<Result<MediaAccess, MediaError>> },
    Publishing { id: ParticipantId, screen: bool },
    Info { reply: oneshot::Sender<RoomSettings> },
    /// A script with the room's moderator key: what the outputs API asks.
    Automate { key: SessionId, action: Automation, reply: oneshot::Sender<Result<Automated, RoomError>> },
    Shutdown { reply: oneshot::Sender<()> },
}

#[derive(Clone)]
pub struct RoomControl {
    tx: mpsc::Sender<Command>,
}

pub type OnIdle = Box<dyn FnOnce() + Send>;

fn closed() -> RoomError {
    RoomError { code: ErrorCode::RoomFull, message: "the room is closing; reconnect".into() }
}

impl RoomControl {
    pub fn start(
        room: RoomId,
        cfg: SharedMediaConfig,
        rules: RoomRules,
        empty_grace: Duration,
        keeper: Option<std::sync::Arc<dyn Keeper>>,
        on_idle: OnIdle,
    ) -> Self {
        let (tx, rx) = mpsc::channel(COMMAND_CAPACITY);
        let (media_tx, media_rx) = mpsc::unbounded_channel();
        let (broadcast, _) = broadcast::channel(BROADCAST_CAPACITY);
        let room_id = room.clone();
        let task = ControlTask {
            room,
            cfg,
            empty_grace,
            state: Room::with_limits(rules.max_participants, rules.max_audience),
            open_media: rules.open_media,
            media: None,
            media_tx,
            broadcast,
            direct: HashMap::new(),
            labels: HashMap::new(),
            stage: None,
            shares: HashMap::new(),
            epoch: Instant::now(),
            empty_since: Some(Instant::now()),
            recording: None,
            streams: Default::default(),
            stream_urls: Default::default(),
            last_stream: 0,
            broadcast_with_streams: false,
            keeper: kept::Keeping::new(room_id, keeper),
        };
        tokio::spawn(task.run(rx, media_rx, on_idle));
        Self { tx }
    }

    pub fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }

    async fn ask<T>(&self, make: impl FnOnce(oneshot::Sender<T>) -> Command) -> Option<T> {
        let (reply, rx) = oneshot::channel();
        self.tx.send(make(reply)).await.ok()?;
        rx.await.ok()
    }

    /// Joins `name` (with the moderator key `key`, or coming back with the previous token
    /// `resume` after a reload).
    pub async fn join(&self, name: String, key: Option<SessionId>, resume: Option<SessionId>) -> Result<Membership, RoomError> {
        self.ask(|reply| Command::Join { name, key, resume, phone: false, reply }).await.unwrap_or_else(|| Err(closed()))
    }

    /// A phone caller joins (`crate::sip`): as anyone else, marked as on the phone.
    pub async fn join_by_phone(&self, name: String) -> Result<Membership, RoomError> {
        self.ask(|reply| Command::Join { name, key: None, resume: None, phone: true, reply }).await.unwrap_or_else(|| Err(closed()))
    }

    /// Whether a participant who had `token` may come back without a password or waiting.
    pub async fn may_resume(&self, token: SessionId) -> bool {
        self.ask(|reply| Command::MayResume { token, reply }).await.unwrap_or(false)
    }

    /// The room's password hash if it has one, unless `address` tried too many wrong ones.
    pub async fn password_gate(&self, address: u64) -> Result<Option<String>, RoomError> {
        self.ask(|reply| Command::PasswordGate { address, reply }).await.unwrap_or_else(|| Err(closed()))
    }

    pub async fn password_failed(&self, address: u64) {
        let _ = self.tx.send(Command::PasswordFailed { address }).await;
    }

    pub async fn leave(&self, id: ParticipantId) {
        let _ = self.tx.send(Command::Leave { id }).await;
    }

    pub async fn chat(&self, id: ParticipantId, text: String) -> Result<(), RoomError> {
        self.ask(|reply| Command::Chat { id, text, reply }).await.unwrap_or_else(|| Err(closed()))
    }

    pub async fn set_media(&self, id: ParticipantId, audio_muted: bool, video_muted: bool) {
        let _ = self.tx.send(Command::SetMedia { id, audio_muted, video_muted }).await;
    }

    pub async fn raise_hand(&self, id: ParticipantId, raised: bool) {
        let _ = self.tx.send(Command::RaiseHand { id, raised }).await;
    }

    /// What `id`'s views of the room may receive from now on.
    pub async fn set_quality(&self, id: ParticipantId, cap: ReceiverCap) {
        let _ = self.tx.send(Command::SetQuality { id, cap }).await;
    }

    pub async fn moderate(&self, id: ParticipantId, action: ModAction) -> Result<(), RoomError> {
        self.ask(|reply| Command::Moderate { id, action, reply }).await.unwrap_or_else(|| Err(closed()))
    }

    /// Who a WHIP/WHEP bearer is, and whether it may do `purpose`.
    /// Who a WHIP/WHEP request is; an external client let in is listed at once (under
    /// `request.session`), so it must be followed by [`RoomControl::external_gone`] if its
    /// session does not start.
    pub async fn admit(&self, request: AdmitRequest) -> Result<Admission, RoomError> {
        self.ask(|reply| Command::Admit { request, reply }).await.unwrap_or_else(|| Err(closed()))
    }

    /// An external session did not start (or ended): off the list.
    pub async fn external_gone(&self, session: SessionId) {
        let _ = self.tx.send(Command::ExternalGone { session }).await;
    }

    /// The room's media, started if needed.
    pub async fn media(&self) -> Result<RoomMedia, MediaError> {
        self.ask(|reply| Command::Media { create: true, reply })
            .await
            .unwrap_or(Err(MediaError::RoomClosed))
            .map(|a| a.media)
    }

    /// The room's media if it runs; a room without media has no sessions.
    pub async fn existing_media(&self) -> Result<RoomMedia, MediaError> {
        self.ask(|reply| Command::Media { create: false, reply })
            .await
            .unwrap_or(Err(MediaError::UnknownSession))
            .map(|a| a.media)
    }

    pub async fn publishing(&self, id: ParticipantId, screen: bool) {
        let _ = self.tx.send(Command::Publishing { id, screen }).await;
    }

    /// The room's settings as anyone may see them before joining.
    pub async fn info(&self) -> Option<RoomSettings> {
        self.ask(|reply| Command::Info { reply }).await
    }

    /// For scripts holding the room's moderator key: recordings and live streams.
    pub async fn automate(&self, key: SessionId, action: Automation) -> Result<Automated, RoomError> {
        self.ask(|reply| Command::Automate { key, action, reply }).await.unwrap_or_else(|| Err(closed()))
    }

    pub async fn shutdown(&self) {
        let _ = self.ask(|reply| Command::Shutdown { reply }).await;
    }
}

struct ControlTask {
    room: RoomId,
    cfg: SharedMediaConfig,
    empty_grace: Duration,
    state: Room,
    open_media: bool,
    media: Option<RoomMedia>,
    media_tx: mpsc::UnboundedSender<MediaEvent>,
    broadcast: broadcast::Sender<ServerMessage>,
    direct: HashMap<ParticipantId, mpsc::UnboundedSender<Direct>>,
    /// The label last sent to the media task, per participant.
    labels: HashMap<ParticipantId, TileLabel>,
    /// The stage last sent to the media task.
    stage: Option<Stage>,
    /// Running screen shares per participant.
    shares: HashMap<ParticipantId, usize>,
    epoch: Instant,
    empty_since: Option<Instant>,
    /// The file the room's recording is being written to.
    recording: Option<String>,
    /// The room's live streams by id, as the media last reported them, and the last id given.
    streams: std::collections::BTreeMap<String, crate::protocol::StreamInfo>,
    /// Each live stream's target URL as the moderator gave it (with its key: never shown).
    stream_urls: std::collections::BTreeMap<String, String>,
    last_stream: u32,
    /// The public broadcast (HLS) was started with the live streams, not on its own: it ends
    /// with the last of them.
    broadcast_with_streams: bool,
    /// Where the room's rules are kept beyond this node (a pool's Redis), if anywhere.
    keeper: kept::Keeping,
}

fn wall_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

impl ControlTask {
    async fn run(mut self, mut commands: mpsc::Receiver<Command>, mut media_events: mpsc::UnboundedReceiver<MediaEvent>, on_idle: OnIdle) {
        let mut housekeeping = tokio::time::interval(HOUSEKEEPING_INTERVAL);
        let mut shutdown = None;
        crate::metrics::metrics().rooms.inc();
        // What the room kept from an earlier life (another node, yesterday), before anyone joins.
        if let Some(kept) = self.keeper.load(&self.room).await {
            self.state.restore(kept);
        }
        // What it ran when its last node went away (died, drained): started again here.
        if let Some(running) = self.keeper.load_running(&self.room).await {
            self.resume_outputs(running).await;
        }
        loop {
            tokio::select! {
                cmd = commands.recv() => match cmd {
                    Some(Command::Shutdown { reply }) => { shutdown = Some(reply); break; }
                    Some(cmd) => {
                        self.handle(cmd).await;
                        self.keeper.keep(&self.state, self.running());
                    }
                    None => break,
                },
                Some(event) = media_events.recv() => {
                    self.on_media_event(event).await;
                    self.keeper.keep(&self.state, self.running());
                }
                _ = housekeeping.tick() => {
                    self.keeper.refresh(&self.state, self.running());
                    self.end_cameras_of_an_empty_room().await;
                    if self.idle_expired() {
                        commands.close();
                        while let Ok(cmd) = commands.try_recv() {
                            refuse(cmd);
                        }
                        self.keeper.ended();
                        break;
                    }
                }
            }
        }
        // Closed by the server's shutdown: the clients come back when it is up again.
        self.close_everyone(if shutdown.is_some() { "server restarting" } else { "room closed" });
        if let Some(media) = self.media.take() {
            media.shutdown().await;
        }
        crate::metrics::metrics().rooms.dec();
        crate::metrics::metrics().forget_participants(self.room.as_str());
        match shutdown {
            Some(reply) => {
                let _ = reply.send(());
            }
            None => on_idle(),
        }
    }

    fn now(&self) -> Duration {
        self.epoch.elapsed()
    }

    fn idle_expired(&self) -> bool {
        let media_gone = self.media.as_ref().is_none_or(RoomMedia::is_closed);
        self.state.is_empty() && media_gone && self.empty_since.is_some_and(|t| t.elapsed() >= self.empty_grace)
    }

    fn media(&mut self, create: bool) -> Result<RoomMedia, MediaError> {
        if let Some(m) = self.media.as_ref().filter(|m| !m.is_closed()) {
            return Ok(m.clone());
        }
        if !create {
            return Err(MediaError::UnknownSession);
        }
        let media = RoomMedia::start(self.room.clone(), self.cfg.clone(), self.empty_grace, Box::new(|| {}), self.media_tx.clone())?;
        self.labels.clear();
        self.stage = None;
        self.media = Some(media.clone());
        Ok(media)
    }

    fn send_to(&self, id: ParticipantId, msg: Direct) {
        if let Some(tx) = self.direct.get(&id) {
            let _ = tx.send(msg);
        }
    }

    fn close_everyone(&mut self, reason: &str) {
        for tx in self.direct.values() {
            let _ = tx.send(Direct::Close(reason.to_string()));
        }
    }

    fn greeting(&self, joined: &Joined) -> Vec<ServerMessage> {
        let mut greeting = vec![ServerMessage::Joined {
            id: joined.id.to_string(),
            token: joined.token.to_string(),
            name: self.state.name(joined.id).unwrap_or_default().to_string(),
            room: self.room.to_string(),
            moderator: joined.moderator,
            moderator_key: joined.new_moderator_key.map(|k| k.to_string()),
            waiting: joined.waiting,
        }];
        if joined.waiting {
            greeting.push(ServerMessage::Waiting);
        } else {
            greeting.extend(self.admitted_greeting(joined.id));
        }
        greeting
    }

    fn admitted_greeting(&self, id: ParticipantId) -> Vec<ServerMessage> {
        let mut msgs = vec![
            ServerMessage::ChatHistory { messages: self.state.history() },
            ServerMessage::Room { settings: self.state.settings() },
        ];
        if self.state.is_moderator(id) {
            msgs.push(ServerMessage::Lobby { waiting: self.state.lobby() });
            msgs.push(ServerMessage::Streams { streams: self.streams.values().cloned().collect() });
        }
        msgs
    }

    /// One function per command family: membership, moderation, media access.
    async fn handle(&mut self, cmd: Command) {
        match cmd {
            Command::Join { name, key, resume, phone, reply } => self.join(name, key, resume, phone, reply).await,
            Command::MayResume { token, reply } => {
                let now = self.now();
                let _ = reply.send(self.state.may_resume(token, now));
            }
            Command::Leave { id } => self.remove(id, None).await,
            Command::Chat { id, text, reply } => {
                let result = self.state.chat(id, &text, self.now(), wall_ms());
                let _ = reply.send(result.clone().map(|_| ()));
                if let Ok(line) = result {
                    let _ = self.broadcast.send(ServerMessage::Chat(line));
                }
            }
            Command::SetMedia { id, audio_muted, video_muted } => {
                if self.state.set_media(id, audio_muted, video_muted) {
                    self.changed().await;
                }
            }
            Command::RaiseHand { id, raised } => {
                if self.state.raise_hand(id, raised) {
                    self.changed().await;
                }
            }
            Command::SetQuality { id, cap } => {
                if let Some(media) = self.media.as_ref().filter(|m| !m.is_closed()) {
                    media.cap(id, cap).await;
                }
            }
            Command::Moderate { id, action, reply } => self.moderate(id, action, reply).await,
            Command::Info { reply } => {
                let _ = reply.send(self.state.settings());
            }
            Command::Automate { key, action, reply } => {
                let result = self.automate(key, action).await;
                let _ = reply.send(result);
            }
            Command::Shutdown { .. } => unreachable!("handled in run()"),
            cmd => self.handle_media_access(cmd).await,
        }
    }

    /// Passwords, the WHIP/WHEP gate, the media task and the sessions that come and go.
    async fn handle_media_access(&mut self, cmd: Command) {
        match cmd {
            Command::PasswordGate { address, reply } => {
                let now = self.now();
                let result = self.state.may_try_password(address, now).map(|_| self.state.password_hash().map(str::to_string));
                let _ = reply.send(result);
            }
            Command::PasswordFailed { address } => {
                let now = self.now();
                self.state.password_failed(address, now);
            }
            Command::Admit { request, reply } => {
                let result = self.admit(request);
                let external = matches!(result, Ok(Admission::External { .. }));
                let _ = reply.send(result);
                if external {
                    self.changed().await;
                }
            }
            Command::ExternalGone { session } => self.external_ended(session).await,
            Command::Media { create, reply } => {
                let _ = reply.send(self.media(create).map(|media| MediaAccess { media }));
                self.push_stage().await;
            }
            Command::Publishing { id, screen } => {
                if screen {
                    *self.shares.entry(id).or_default() += 1;
                }
                self.state.set_publishing(id, true);
                self.changed().await;
            }
            _ => unreachable!("handle() routes only media access here"),
        }
    }

    async fn join(&mut self, name: String, key: Option<SessionId>, resume: Option<SessionId>, phone: bool, reply: oneshot::Sender<Result<Membership, RoomError>>) {
        let now = self.now();
        let joined = if phone { self.state.join_by_phone(&name, now) } else { self.state.join_resuming(&name, key, resume, now) };
        let result = joined.map(|joined| {
            let (tx, rx) = mpsc::unbounded_channel();
            self.direct.insert(joined.id, tx);
            let events = (!joined.waiting).then(|| self.broadcast.subscribe());
            Membership { id: joined.id, greeting: self.greeting(&joined), direct: rx, events }
        });
        if result.is_ok() {
            self.empty_since = None;
            tracing::info!(room = %self.room, "participant joined");
        }
        let _ = reply.send(result);
        self.changed().await;
    }

    async fn moderate(&mut self, id: ParticipantId, action: ModAction, reply: oneshot::Sender<Result<(), RoomError>>) {
        let logged = format!("{action:?}").split(['(', ' ']).next().unwrap_or("").to_string();
        match self.state.moderate(id, action) {
            Ok(effects) => {
                tracing::info!(room = %self.room, action = %logged, "moderation");
                let _ = reply.send(Ok(()));
                self.apply(effects).await;
                self.changed().await;
            }
            Err(e) => {
                let _ = reply.send(Err(e));
            }
        }
    }

    /// The gate for WHIP/WHEP; an external client let in is announced to everyone.
    fn admit(&mut self, request: AdmitRequest) -> Result<Admission, RoomError> {
        let AdmitRequest { bearer, purpose, password_ok, session, label } = request;
        let request = Request { bearer: bearer.as_deref(), purpose, password_ok, session, label };
        let shares = self.shares.values().sum();
        match self.state.gate(request, self.open_media, shares)? {
            Gate::Participant(participant) => {
                let name = self.state.name(participant).unwrap_or_default().to_string();
                Ok(Admission::Participant(Owner { participant, name }))
            }
            Gate::External { id, exclude } => {
                if let Some(info) = self.state.external(id) {
                    tracing::info!(room = %self.room, external = %info.id, kind = ?info.kind, access = ?info.access, "external session admitted");
                    let _ = self.broadcast.send(ServerMessage::ExternalJoined { session: info });
                }
                Ok(Admission::External { exclude })
            }
            Gate::CheckPassword(hash) => Ok(Admission::CheckPassword(hash)),
        }
    }

    /// An external session ended (by itself, by a moderator, or it never started).
    async fn external_ended(&mut self, session: SessionId) {
        if let Some(info) = self.state.external_ended(session) {
            tracing::info!(room = %self.room, external = %info.id, "external session ended");
            let _ = self.broadcast.send(ServerMessage::ExternalLeft { session: info });
            self.changed().await;
        }
    }

    async fn apply(&mut self, effects: Vec<Effect>) {
        for effect in effects {
            match effect {
                Effect::Admitted(id) => {
                    self.send_to(id, Direct::Message(ServerMessage::Admitted));
                    for msg in self.admitted_greeting(id) {
                        self.send_to(id, Direct::Message(msg));
                    }
                    self.send_to(id, Direct::Subscribe(self.broadcast.subscribe()));
                }
                Effect::Removed(id, why) => self.remove(id, Some(why)).await,
                Effect::Muted(id) => self.send_to(id, Direct::Message(ServerMessage::Muted)),
                Effect::Promoted(id) => {
                    // The participant list says who moderates; this one now also sees the lobby
                    // and the streams.
                    self.send_to(id, Direct::Message(ServerMessage::Lobby { waiting: self.state.lobby() }));
                    self.send_to(id, Direct::Message(ServerMessage::Streams { streams: self.streams.values().cloned().collect() }));
                }
                Effect::Speak(id, allowed) => {
                    self.send_to(id, Direct::Message(ServerMessage::Speak { allowed }));
                    if !allowed {
                        // Demoted: out of picture and mix now, whatever the client does.
                        if let Some(media) = self.media.as_ref() {
                            media.end_participant_publishers(id).await;
                        }
                    }
                }
                Effect::Ended => {
                    tracing::info!(room = %self.room, "meeting ended by a moderator");
                    for id in self.state.ids() {
                        self.remove(id, Some("the meeting was ended")).await;
                    }
                    for session in self.state.external_sessions() {
                        self.end_external(session).await;
                    }
                }
                Effect::KeyCreated { to, kind, key } => self.send_to(to, Direct::Message(ServerMessage::Key { kind, key })),
                Effect::EndSession(session) => self.end_external(session).await,
                Effect::Record { on, by } => self.record(on, by).await,
                Effect::StartStream { url, by } => {
                    if let Err(e) = self.start_stream(&url).await {
                        self.send_to(by, Direct::Message(ServerMessage::error(e.code, e.message)));
                    }
                }
                Effect::StopStream(id) => self.stop_stream(&id).await,
                Effect::AddCamera { url, name, by } => {
                    if let Err(e) = self.add_camera(&url, &name).await {
                        self.send_to(by, Direct::Message(ServerMessage::error(e.code, e.message)));
                    }
                }
                Effect::PublicBroadcast { on, by } => {
                    if let Err(e) = self.public_broadcast(on).await {
                        self.send_to(by, Direct::Message(ServerMessage::error(e.code, e.message)));
                    }
                }
            }
        }
    }

    /// Ends an external session in the media and takes it off the list at once.
    async fn end_external(&mut self, session: SessionId) {
        if let Some(media) = self.media.as_ref().filter(|m| !m.is_closed()) {
            // Unknown there: it had not started or has just ended by itself.
            let _ = media.end(session).await;
        }
        self.external_ended(session).await;
    }

    /// Takes a participant out: connection told (unless it left by itself), media ended.
    async fn remove(&mut self, id: ParticipantId, reason: Option<&str>) {
        if reason.is_none() {
            let now = self.now();
            self.state.left_by_itself(id, now);
        }
        self.state.leave(id);
        if let Some(tx) = self.direct.remove(&id) {
            if let Some(reason) = reason {
                let _ = tx.send(Direct::Close(reason.to_string()));
            }
            tracing::info!(room = %self.room, participant = %id, "participant left");
        }
        if let Some(media) = self.media.as_ref() {
            media.end_participant(id).await;
        }
        self.labels.remove(&id);
        self.shares.remove(&id);
        if self.state.is_empty() {
            self.empty_since = Some(Instant::now());
        }
        self.changed().await;
    }

    async fn on_media_event(&mut self, event: MediaEvent) {
        match event {
            MediaEvent::PublisherEnded { participant, screen } => {
                if screen {
                    if let Some(n) = self.shares.get_mut(&participant) {
                        *n = n.saturating_sub(1);
                    }
                } else if self.state.set_publishing(participant, false) {
                    self.changed().await;
                }
                self.push_stage().await;
            }
            MediaEvent::ExternalEnded { session } => self.external_ended(session).await,
            MediaEvent::Levels(levels) => {
                if self.state.levels(&levels, self.now()) {
                    self.changed().await;
                }
            }
            MediaEvent::RecordingStopped { reason } => self.recording_stopped(reason).await,
            MediaEvent::Stream { id, target, state } => self.stream_changed(id, target, state),
            MediaEvent::BroadcastStopped { reason } => self.broadcast_stopped(reason).await,
            MediaEvent::Camera { session, state } => self.camera_changed(session, state).await,
            MediaEvent::Receiving { participant, rung } => {
                if self.state.set_receiving(participant, rung) {
                    self.changed().await;
                }
            }
        }
    }

    /// After any change: the list and settings to everyone, the lobby to moderators, labels and
    /// stage to the media task.
    async fn changed(&mut self) {
        crate::metrics::metrics().set_participants(self.room.as_str(), self.state.count());
        let entries = self.state.entries();
        let active = self.state.active_speaker();
        if let Some(media) = self.media.as_ref().filter(|m| !m.is_closed()) {
            for (pid, info) in &entries {
                let label = TileLabel {
                    name: info.name.clone(),
                    audio_muted: info.audio_muted,
                    video_muted: info.video_muted,
                    active_speaker: active == Some(*pid),
                    hand_raised: info.hand_raised,
                };
                if self.labels.get(pid) != Some(&label) {
                    media.label(*pid, label.clone()).await;
                    self.labels.insert(*pid, label);
                }
            }
        }
        self.push_stage().await;
        let participants = entries.into_iter().map(|(_, info)| info).collect();
        let external = self.state.externals();
        let audience = self.state.audience();
        let _ = self.broadcast.send(ServerMessage::Participants { participants, external, audience });
        let _ = self.broadcast.send(ServerMessage::Room { settings: self.state.settings() });
        let lobby = self.state.lobby();
        for id in self.state.ids().into_iter().filter(|id| self.state.is_moderator(*id)) {
            self.send_to(id, Direct::Message(ServerMessage::Lobby { waiting: lobby.clone() }));
        }
    }

    async fn push_stage(&mut self) {
        let stage = Stage {
            layout: self.state.layout(),
            on_stage: self.state.on_stage(),
            silenced: self
                .state
                .entries()
                .into_iter()
                .filter(|(_, p)| p.audio_muted)
                .map(|(id, _)| id)
                .collect::<BTreeSet<_>>(),
            recent_speakers: self.state.recent_speakers(),
        };
        if self.stage.as_ref() == Some(&stage) {
            return;
        }
        if let Some(media) = self.media.as_ref().filter(|m| !m.is_closed()) {
            media.stage(stage.clone()).await;
            self.stage = Some(stage);
        }
    }
}

fn refuse(cmd: Command) {
    match cmd {
        Command::Join { reply, .. } => {
            let _ = reply.send(Err(closed()));
        }
        Command::Chat { reply, .. } | Command::Moderate { reply, .. } => {
            let _ = reply.send(Err(closed()));
        }
        Command::PasswordGate { reply, .. } => {
            let _ = reply.send(Err(closed()));
        }
        Command::Admit { reply, .. } => {
            let _ = reply.send(Err(closed()));
        }
        Command::Automate { reply, .. } => {
            let _ = reply.send(Err(closed()));
        }
        Command::Media { reply, .. } => {
            let _ = reply.send(Err(MediaError::RoomClosed));
        }
        Command::Shutdown { reply } => {
            let _ = reply.send(());
        }
        Command::MayResume { reply, .. } => {
            let _ = reply.send(false);
        }
        Command::Leave { .. }
        | Command::SetMedia { .. }
        | Command::RaiseHand { .. }
        | Command::SetQuality { .. }
        | Command::PasswordFailed { .. }
        | Command::Info { .. }
        | Command::ExternalGone { .. }
        | Command::Publishing { .. } => {}
    }
}
