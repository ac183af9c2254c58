//! A room's control task: the participants of the control WebSocket, chat, who speaks, the
//! labels on their tiles, and which media sessions belong to whom.
//!
//! It owns the room's policy state ([`crate::room::participants::Room`], sans-IO) and the
//! handle to the room's media task, which it starts on demand and restarts if the media task
//! closed while the room was empty of media.

use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::sync::{broadcast, mpsc, oneshot};

use crate::ids::{RoomId, SessionId};
use crate::media::{MediaError, MediaEvent, Owner, RoomMedia, SharedMediaConfig, TileLabel};
use crate::protocol::{ErrorCode, ServerMessage};
use crate::room::participants::{ParticipantId, Room, RoomError};

/// Control commands queued before senders wait.
const COMMAND_CAPACITY: usize = 256;
/// Messages a slow WebSocket client may fall behind before it is disconnected.
pub const BROADCAST_CAPACITY: usize = 256;
const HOUSEKEEPING_INTERVAL: Duration = Duration::from_millis(500);

/// What a participant gets on joining.
pub struct Membership {
    pub id: ParticipantId,
    /// Sent to the client in `joined` and the chat history and participant list.
    pub greeting: Vec<ServerMessage>,
    pub events: broadcast::Receiver<ServerMessage>,
}

/// The media handle for a WHIP/WHEP request, with the participant its bearer token names.
pub struct MediaAccess {
    pub media: RoomMedia,
    pub owner: Option<Owner>,
}

enum Command {
    Join { name: String, reply: oneshot::Sender<Result<Membership, RoomError>> },
    Leave { id: ParticipantId },
    Chat { id: ParticipantId, text: String, reply: oneshot::Sender<Result<(), RoomError>> },
    SetMedia { id: ParticipantId, audio_muted: bool, video_muted: bool },
    Media { bearer: Option<SessionId>, create: bool, reply: oneshot::Sender<Result<MediaAccess, MediaError>> },
    Publishing { id: ParticipantId },
    Shutdown { reply: oneshot::Sender<()> },
}

#[derive(Clone)]
pub struct RoomControl {
    tx: mpsc::Sender<Command>,
}

pub type OnIdle = Box<dyn FnOnce() + Send>;

impl RoomControl {
    pub fn start(room: RoomId, cfg: SharedMediaConfig, empty_grace: Duration, on_idle: OnIdle) -> Self {
        let (tx, rx) = mpsc::channel(COMMAND_CAPACITY);
        let (media_tx, media_rx) = mpsc::unbounded_channel();
        let (broadcast, _) = broadcast::channel(BROADCAST_CAPACITY);
        let task = ControlTask {
            room,
            cfg,
            empty_grace,
            state: Room::default(),
            media: None,
            media_tx,
            broadcast,
            labels: HashMap::new(),
            epoch: Instant::now(),
            empty_since: Some(Instant::now()),
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

    pub async fn join(&self, name: String) -> Result<Membership, RoomError> {
        self.ask(|reply| Command::Join { name, reply }).await.unwrap_or_else(|| {
            Err(RoomError { code: ErrorCode::RoomFull, message: "the room is closing; reconnect".into() })
        })
    }

    pub async fn leave(&self, id: ParticipantId) {
        let _ = self.tx.send(Command::Leave { id }).await;
    }

    pub async fn chat(&self, id: ParticipantId, text: String) -> Result<(), RoomError> {
        self.ask(|reply| Command::Chat { id, text, reply })
            .await
            .unwrap_or_else(|| Err(RoomError { code: ErrorCode::NotJoined, message: "room closed".into() }))
    }

    pub async fn set_media(&self, id: ParticipantId, audio_muted: bool, video_muted: bool) {
        let _ = self.tx.send(Command::SetMedia { id, audio_muted, video_muted }).await;
    }

    /// The room's media (started if needed) and the participant `bearer` names, if any.
    pub async fn media(&self, bearer: Option<SessionId>) -> Result<MediaAccess, MediaError> {
        self.ask(|reply| Command::Media { bearer, create: true, reply }).await.unwrap_or(Err(MediaError::RoomClosed))
    }

    /// The room's media if it runs; a room without media has no sessions.
    pub async fn existing_media(&self) -> Result<RoomMedia, MediaError> {
        self.ask(|reply| Command::Media { bearer: None, create: false, reply })
            .await
            .unwrap_or(Err(MediaError::UnknownSession))
            .map(|a| a.media)
    }

    pub async fn publishing(&self, id: ParticipantId) {
        let _ = self.tx.send(Command::Publishing { id }).await;
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
    media: Option<RoomMedia>,
    media_tx: mpsc::UnboundedSender<MediaEvent>,
    broadcast: broadcast::Sender<ServerMessage>,
    /// The label last sent to the media task, per participant.
    labels: HashMap<ParticipantId, TileLabel>,
    epoch: Instant,
    empty_since: Option<Instant>,
}

fn wall_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

impl ControlTask {
    async fn run(
        mut self,
        mut commands: mpsc::Receiver<Command>,
        mut media_events: mpsc::UnboundedReceiver<MediaEvent>,
        on_idle: OnIdle,
    ) {
        let mut housekeeping = tokio::time::interval(HOUSEKEEPING_INTERVAL);
        let mut shutdown = None;
        loop {
            tokio::select! {
                cmd = commands.recv() => match cmd {
                    Some(Command::Shutdown { reply }) => { shutdown = Some(reply); break; }
                    Some(cmd) => self.handle(cmd).await,
                    None => break,
                },
                Some(event) = media_events.recv() => self.on_media_event(event).await,
                _ = housekeeping.tick() => {
                    if self.idle_expired() {
                        commands.close();
                        while let Ok(cmd) = commands.try_recv() {
                            refuse(cmd);
                        }
                        break;
                    }
                }
            }
        }
        let _ = self.broadcast.send(ServerMessage::Bye { reason: "room closed".into() });
        if let Some(media) = self.media.take() {
            media.shutdown().await;
        }
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

    fn media(&mut self) -> Result<RoomMedia, MediaError> {
        if let Some(m) = self.media.as_ref().filter(|m| !m.is_closed()) {
            return Ok(m.clone());
        }
        let media = RoomMedia::start(
            self.room.clone(),
            self.cfg.clone(),
            self.empty_grace,
            Box::new(|| {}),
            self.media_tx.clone(),
        )?;
        self.labels.clear();
        self.media = Some(media.clone());
        Ok(media)
    }

    async fn handle(&mut self, cmd: Command) {
        match cmd {
            Command::Join { name, reply } => {
                let result = self.state.join(&name, self.now()).map(|(id, token)| {
                    let events = self.broadcast.subscribe();
                    let greeting = vec![
                        ServerMessage::Joined {
                            id: id.to_string(),
                            token: token.to_string(),
                            name: self.state.name(id).unwrap_or_default().to_string(),
                            room: self.room.to_string(),
                        },
                        ServerMessage::ChatHistory { messages: self.state.history() },
                    ];
                    Membership { id, greeting, events }
                });
                if result.is_ok() {
                    self.empty_since = None;
                    tracing::info!(room = %self.room, "participant joined");
                }
                let _ = reply.send(result);
                self.publish_participants().await;
            }
            Command::Leave { id } => {
                if self.state.leave(id) {
                    tracing::info!(room = %self.room, participant = %id, "participant left");
                    if let Some(media) = self.media.as_ref() {
                        media.end_participant(id).await;
                    }
                    self.labels.remove(&id);
                    if self.state.is_empty() {
                        self.empty_since = Some(Instant::now());
                    }
                    self.publish_participants().await;
                }
            }
            Command::Chat { id, text, reply } => {
                let result = self.state.chat(id, &text, self.now(), wall_ms());
                let _ = reply.send(result.clone().map(|_| ()));
                if let Ok(line) = result {
                    let _ = self.broadcast.send(ServerMessage::Chat(line));
                }
            }
            Command::SetMedia { id, audio_muted, video_muted } => {
                if self.state.set_media(id, audio_muted, video_muted) {
                    self.publish_participants().await;
                }
            }
            Command::Media { bearer, create, reply } => {
                let owner = bearer.and_then(|t| self.state.by_token(t)).map(|participant| Owner {
                    participant,
                    name: self.state.name(participant).unwrap_or_default().to_string(),
                });
                let media = match self.media.as_ref().filter(|m| !m.is_closed()) {
                    Some(m) => Ok(m.clone()),
                    None if create => self.media(),
                    None => Err(MediaError::UnknownSession),
                };
                let _ = reply.send(media.map(|media| MediaAccess { media, owner }));
            }
            Command::Publishing { id } => {
                if self.state.set_publishing(id, true) {
                    self.publish_participants().await;
                }
            }
            Command::Shutdown { .. } => unreachable!("handled in run()"),
        }
    }

    async fn on_media_event(&mut self, event: MediaEvent) {
        match event {
            MediaEvent::PublisherEnded { participant } => {
                if self.state.set_publishing(participant, false) {
                    self.publish_participants().await;
                }
            }
            MediaEvent::Levels(levels) => {
                if self.state.levels(&levels, self.now()) {
                    self.publish_participants().await;
                }
            }
        }
    }

    /// Sends the participant list to everyone and updates the tiles' labels.
    async fn publish_participants(&mut self) {
        let entries = self.state.entries();
        let active = self.state.active_speaker();
        if let Some(media) = self.media.as_ref().filter(|m| !m.is_closed()) {
            for (pid, info) in &entries {
                let pid = *pid;
                let label = TileLabel {
                    name: info.name.clone(),
                    audio_muted: info.audio_muted,
                    video_muted: info.video_muted,
                    active_speaker: active == Some(pid),
                };
                if self.labels.get(&pid) != Some(&label) {
                    media.label(pid, label.clone()).await;
                    self.labels.insert(pid, label);
                }
            }
        }
        let participants = entries.into_iter().map(|(_, info)| info).collect();
        let _ = self.broadcast.send(ServerMessage::Participants { participants });
    }
}

fn refuse(cmd: Command) {
    let closed = || RoomError { code: ErrorCode::RoomFull, message: "the room is closing; reconnect".into() };
    match cmd {
        Command::Join { reply, .. } => {
            let _ = reply.send(Err(closed()));
        }
        Command::Chat { reply, .. } => {
            let _ = reply.send(Err(closed()));
        }
        Command::Media { reply, .. } => {
            let _ = reply.send(Err(MediaError::RoomClosed));
        }
        Command::Shutdown { reply } => {
            let _ = reply.send(());
        }
        Command::Leave { .. } | Command::SetMedia { .. } | Command::Publishing { .. } => {}
    }
}
