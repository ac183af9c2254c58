//! The task that owns one room's pipeline: sessions in and out, layout, liveness.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use gst::prelude::*;
use gst_webrtc::WebRTCPeerConnectionState;
use tokio::sync::{mpsc, oneshot};

use super::egress::TeeLink;
use super::ladder::{ReceiverCap, RungIndex};
use super::link_stats::LinkCounts;
use super::rate::RungPolicy;

mod cameras;
mod metrics;
mod outputs;
mod phones;
mod sessions;
mod viewers;
use super::ingest;
use super::tile::Tile;
use super::mixer::MixKey;
use super::peer::{self, Liveness};
use super::pipeline::RoomPipeline;
use super::sdp::OfferPlan;
use super::{MediaError, MediaEvent, Owner, SharedMediaConfig, Stage, TileLabel, Voice};
use crate::room::participants::ParticipantId;
use crate::ids::{RoomId, SessionId};
use crate::profiles::VideoCodec;
use crate::room::layout;

/// Commands queued for a room before senders wait.
const COMMAND_CAPACITY: usize = 64;
/// A viewer is ended when nothing (RTCP, DTLS) arrived from it for this many of its own report
/// intervals (RFC 3550 §6.3.5 times members out after five)...
const VIEWER_SILENT_INTERVALS: u32 = 5;
/// ...but never sooner than this (browsers report about every second)...
pub const VIEWER_SILENCE_MIN: Duration = Duration::from_secs(5);
/// ...nor later (a standard client reports every 2.5-7.5 s; lost reports lengthen the gaps).
pub const VIEWER_SILENCE_MAX: Duration = Duration::from_secs(30);
/// A publisher sends media continuously (even muted: silence, DTX every 400 ms, black frames),
/// so a shorter silence already means it is gone; this keeps "gone within 5 s" for its tile.
pub const PUBLISHER_SILENCE_TIMEOUT: Duration = Duration::from_secs(4);
/// Time a new session has to complete ICE and DTLS (relayed candidates can be slow).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How often liveness and emptiness are checked.
const HOUSEKEEPING_INTERVAL: Duration = Duration::from_millis(250);
/// More keyframe requests after a viewer connects: the first may race DTLS, the next the
/// receiver's own decoder setup (a loaded machine takes seconds). A receiver that lost them
/// all would otherwise wait for its PLI or the encoder's next regular keyframe (10 s).
const LATER_KEYFRAME_DELAYS: [Duration; 3] = [Duration::from_millis(600), Duration::from_millis(1500), Duration::from_millis(3000)];
/// After a viewer moved down, its new rung's first keyframe went into the queue the old rung
/// filled and is often lost there (headless chromium then asked again only 2.5 s later and
/// the picture stood still 3.4 s): two more once that queue has drained.
const KEYFRAMES_AFTER_MOVE_DOWN: [Duration; 2] = [Duration::from_millis(700), Duration::from_millis(1500)];
/// Viewers' link statistics are read every this many housekeeping ticks (once a second).
const LINK_POLL_TICKS: u64 = 4;
/// How long tearing down the pipeline may take before the task gives up waiting.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);

/// A negotiated session: its id (also the `Location`) and the SDP answer.
#[derive(Debug)]
pub struct Answer {
    pub session: SessionId,
    pub sdp: String,
}

type Reply<T> = oneshot::Sender<Result<T, MediaError>>;

/// Whatever the caller wants held while a session lives (an address's session permit):
/// dropped when the session ends, however it ends (DELETE, a vanished peer, the room closing).
pub type Hold = std::sync::Arc<dyn Send + Sync>;

enum Command {
    Publish {
        id: SessionId,
        offer: gst_sdp::SDPMessage,
        plan: OfferPlan,
        owner: Option<Owner>,
        screen: bool,
        hold: Option<Hold>,
        reply: Reply<Answer>,
    },
    View {
        id: SessionId,
        offer: gst_sdp::SDPMessage,
        plan: OfferPlan,
        exclude: Option<Voice>,
        owner: Option<ParticipantId>,
        cap: ReceiverCap,
        hold: Option<Hold>,
        reply: Reply<Answer>,
    },
    /// What `participant`'s views may receive from now on.
    Cap { participant: ParticipantId, cap: ReceiverCap },
    Label { participant: ParticipantId, label: TileLabel },
    Stage(Stage),
    EndParticipant { participant: ParticipantId, publishers_only: bool },
    End { session: SessionId, reply: Reply<()> },
    Trickle { session: SessionId, candidates: Vec<String>, reply: Reply<()> },
    /// Start (the new file's name back) or stop the room's recording.
    Record { on: bool, reply: Reply<Option<String>> },
    /// Start a live stream to a target under an id, or stop one.
    StartStream { id: String, target: crate::outputs::live::Target, reply: Reply<()> },
    StopStream { id: String },
    /// The public broadcast (HLS) on or off.
    PublicBroadcast { on: bool, reply: Reply<()> },
    /// A hall camera under a session id, shown with a name; ended like any session.
    AddCamera { id: SessionId, source: crate::inputs::camera::CameraSource, name: String, reply: Reply<()> },
    /// A phone caller under a session id: their voice in through the feed sent back, the mix
    /// without them out into the sink; ended like any session.
    AddPhone { id: SessionId, owner: Owner, sink: Box<dyn super::mixer::MixSink>, reply: Reply<super::mixer::InputFeed> },
    Shutdown { reply: oneshot::Sender<()> },
}

enum Event {
    Connection { session: SessionId, state: WebRTCPeerConnectionState },
    NegotiationFailed { session: SessionId },
    /// A publisher's first decoded frame is ready for the canvas.
    FirstFrame { session: SessionId },
    Keyframe(VideoCodec, usize),
    Bus(gst::Message),
}

/// A handle to a room's media task. Cloning is cheap; the task ends when it empties or on
/// [`RoomMedia::shutdown`].
#[derive(Clone)]
pub struct RoomMedia {
    tx: mpsc::Sender<Command>,
}

/// What the task reports when it ends by itself (empty room after the grace period).
pub type OnIdle = Box<dyn FnOnce() + Send>;

impl RoomMedia {
    /// Builds the room's pipeline and starts its task.
    pub fn start(
        room: RoomId,
        cfg: SharedMediaConfig,
        empty_grace: Duration,
        on_idle: OnIdle,
        out: mpsc::UnboundedSender<MediaEvent>,
    ) -> Result<Self, MediaError> {
        let level_out = out.clone();
        let levels = Box::new(move |levels: Vec<(Voice, f32)>| {
            let ours: Vec<(ParticipantId, f32)> = levels
                .into_iter()
                .filter_map(|(v, db)| match v {
                    Voice::Participant(p) => Some((p, db)),
                    Voice::Session(_) => None,
                })
                .collect();
            if !ours.is_empty() {
                let _ = level_out.send(MediaEvent::Levels(ours));
            }
        });
        let pipe = RoomPipeline::new(room.as_str(), cfg.clone(), levels)?;
        let (tx, rx) = mpsc::channel(COMMAND_CAPACITY);
        let (events_tx, events_rx) = mpsc::unbounded_channel();
        let bus_tx = events_tx.clone();
        pipe.pipeline.bus().expect("a pipeline has a bus").set_sync_handler(move |_, msg| {
            if matches!(msg.view(), gst::MessageView::Error(_) | gst::MessageView::Latency(_)) {
                let _ = bus_tx.send(Event::Bus(msg.clone()));
            }
            gst::BusSyncReply::Drop
        });
        let task = RoomTask {
            room,
            cfg,
            pipe,
            sessions: HashMap::new(),
            tiles: Vec::new(),
            events: events_tx,
            epoch: Instant::now(),
            empty_since: Some(Instant::now()),
            empty_grace,
            next_element_id: 0,
            labels: HashMap::new(),
            stage: Stage::default(),
            out,
            ticks: 0,
            broadcast: None,
            recording: None,
            streams: Default::default(),
            hls: None,
            cameras: HashMap::new(),
            phones: Default::default(),
        };
        tokio::spawn(task.run(rx, events_rx, on_idle));
        Ok(Self { tx })
    }

    async fn call<T>(&self, make: impl FnOnce(Reply<T>) -> Command) -> Result<T, MediaError> {
        let (reply, rx) = oneshot::channel();
        self.tx.send(make(reply)).await.map_err(|_| MediaError::RoomClosed)?;
        rx.await.map_err(|_| MediaError::RoomClosed)?
    }

    /// A publisher under the session id `id` (drawn by the caller, which may have listed it);
    /// `hold` is kept until the session ends.
    pub async fn publish(
        &self,
        id: SessionId,
        offer: gst_sdp::SDPMessage,
        plan: OfferPlan,
        owner: Option<Owner>,
        screen: bool,
        hold: Option<Hold>,
    ) -> Result<Answer, MediaError> {
        self.call(|reply| Command::Publish { id, offer, plan, owner, screen, hold, reply }).await
    }

    /// A viewer of the room under the session id `id`; `exclude` leaves that voice out of what
    /// it hears, `owner` ties the session to a participant (ended with them), `cap` says which
    /// rung of the ladder it may get.
    pub async fn view(&self, id: SessionId, offer: gst_sdp::SDPMessage, plan: OfferPlan, who: ViewerOf, hold: Option<Hold>) -> Result<Answer, MediaError> {
        let ViewerOf { exclude, owner, cap } = who;
        self.call(|reply| Command::View { id, offer, plan, exclude, owner, cap, hold, reply }).await
    }

    /// Moves `participant`'s views to the highest rung `cap` allows (at a keyframe).
    pub async fn cap(&self, participant: ParticipantId, cap: ReceiverCap) {
        let _ = self.tx.send(Command::Cap { participant, cap }).await;
    }

    /// What `participant`'s tile shows (name, mute marks, active speaker).
    pub async fn label(&self, participant: ParticipantId, label: TileLabel) {
        let _ = self.tx.send(Command::Label { participant, label }).await;
    }

    /// Ends every session of `participant` at once.
    pub async fn end_participant(&self, participant: ParticipantId) {
        let _ = self.tx.send(Command::EndParticipant { participant, publishers_only: false }).await;
    }

    /// Ends `participant`'s camera, microphone and screen sessions (they keep watching).
    pub async fn end_participant_publishers(&self, participant: ParticipantId) {
        let _ = self.tx.send(Command::EndParticipant { participant, publishers_only: true }).await;
    }

    /// Who is seen and heard, and how the picture is arranged.
    pub async fn stage(&self, stage: Stage) {
        let _ = self.tx.send(Command::Stage(stage)).await;
    }

    pub async fn end(&self, session: SessionId) -> Result<(), MediaError> {
        self.call(|reply| Command::End { session, reply }).await
    }

    pub async fn trickle(&self, session: SessionId, candidates: Vec<String>) -> Result<(), MediaError> {
        self.call(|reply| Command::Trickle { session, candidates, reply }).await
    }

    pub fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }

    /// Starts the room's recording (the file's name back; the one running if one does) or
    /// stops it (`None`).
    pub async fn record(&self, on: bool) -> Result<Option<String>, MediaError> {
        self.call(|reply| Command::Record { on, reply }).await
    }

    /// Starts a live stream of the room to `target` under `id`; it reconnects by itself.
    pub async fn start_stream(&self, id: String, target: crate::outputs::live::Target) -> Result<(), MediaError> {
        self.call(|reply| Command::StartStream { id, target, reply }).await
    }

    /// Starts or stops the room's public broadcast over HLS.
    pub async fn public_broadcast(&self, on: bool) -> Result<(), MediaError> {
        self.call(|reply| Command::PublicBroadcast { on, reply }).await
    }

    /// Adds a hall camera under `id` (ended with [`RoomMedia::end`]); it connects, and
    /// reconnects, by itself.
    pub async fn add_camera(&self, id: SessionId, source: crate::inputs::camera::CameraSource, name: String) -> Result<(), MediaError> {
        self.call(|reply| Command::AddCamera { id, source, name, reply }).await
    }

    /// Adds a phone caller under `id` (ended with [`RoomMedia::end`]).
    pub async fn add_phone(&self, id: SessionId, owner: Owner, sink: Box<dyn super::mixer::MixSink>) -> Result<super::mixer::InputFeed, MediaError> {
        self.call(|reply| Command::AddPhone { id, owner, sink, reply }).await
    }

    pub async fn stop_stream(&self, id: String) {
        let _ = self.tx.send(Command::StopStream { id }).await;
    }

    /// Ends every session and stops the pipeline; returns when done.
    pub async fn shutdown(&self) {
        let (reply, rx) = oneshot::channel();
        if self.tx.send(Command::Shutdown { reply }).await.is_ok() {
            let _ = rx.await;
        }
    }
}

/// Whom a viewer belongs to and what it may receive.
#[derive(Clone, Debug, Default)]
pub struct ViewerOf {
    /// The voice it does not hear (its own).
    pub exclude: Option<Voice>,
    /// The participant it belongs to (ended with them).
    pub owner: Option<ParticipantId>,
    pub cap: ReceiverCap,
}

/// A viewer's picture: its branch, the rung that feeds it (`None`: audio only, unlinked), and
/// what decides the rung from the receiver's reports.
struct VideoOut {
    link: TeeLink,
    codec: VideoCodec,
    rung: RungIndex,
    policy: RungPolicy,
    /// The link's totals at the last look.
    counts: Option<LinkCounts>,
    /// Its RTP session's view of the link, once negotiated.
    reader: Option<super::link_stats::LinkReader>,
    /// After a move down: the last video packet sent on the old rung, and when. Reports that
    /// do not reach past it describe the old rung and their loss is not judged.
    old_rung_until: Option<(u16, Duration)>,
    /// Loss on this link, smoothed over the last several seconds (0..=1).
    loss: f64,
    /// What its retransmissions may take, once its session is connected (`None` when it asks
    /// for none), and whether that was looked for.
    retransmit: Option<super::retransmit::RetransmitBudget>,
    retransmit_looked: bool,
}

enum Kind {
    Publisher { tile: Option<Tile>, has_audio: bool, voice: Voice, owner: Option<ParticipantId>, screen: bool },
    Viewer {
        video: Option<VideoOut>,
        /// The branch off one of the mixes (`mix` says which), moved when its owner's
        /// microphone comes or goes.
        audio: Option<TeeLink>,
        mix: Option<MixKey>,
        owner: Option<ParticipantId>,
        cap: ReceiverCap,
    },
}

impl Kind {
    fn owner(&self) -> Option<ParticipantId> {
        match self {
            Kind::Publisher { owner, .. } | Kind::Viewer { owner, .. } => *owner,
        }
    }
}

struct Session {
    name: String,
    bin: gst::Bin,
    /// `None` for a hall camera, which comes in through its own pipeline.
    webrtc: Option<gst::Element>,
    liveness: Liveness,
    connected: bool,
    kind: Kind,
    /// Released when the session ends (see [`Hold`]).
    hold: Option<Hold>,
}

/// What [`RoomTask::start_session`] hands back for wiring the media.
struct NewSession {
    id: SessionId,
    name: String,
    bin: gst::Bin,
    webrtc: gst::Element,
    liveness: Liveness,
    gate: ingest::VideoGate,
}

struct RoomTask {
    room: RoomId,
    cfg: SharedMediaConfig,
    pipe: RoomPipeline,
    sessions: HashMap<SessionId, Session>,
    /// Publishers with video, in the order they appear on the canvas.
    tiles: Vec<SessionId>,
    events: mpsc::UnboundedSender<Event>,
    epoch: Instant,
    empty_since: Option<Instant>,
    empty_grace: Duration,
    next_element_id: u64,
    /// Tile labels by participant, applied when their tile appears.
    labels: HashMap<ParticipantId, TileLabel>,
    stage: Stage,
    out: mpsc::UnboundedSender<MediaEvent>,
    ticks: u64,
    /// The broadcast encode, while an output uses it, and the recording being written.
    broadcast: Option<super::broadcast::Broadcast>,
    recording: Option<crate::outputs::recording::Recording>,
    streams: std::collections::BTreeMap<String, crate::outputs::live::LiveStream>,
    hls: Option<crate::outputs::hls::Hls>,
    /// Hall cameras, by the session that holds their tile.
    cameras: HashMap<SessionId, crate::inputs::camera::Camera>,
    /// Phone callers, by the session that holds their tile and mix output.
    phones: std::collections::HashSet<SessionId>,
}

impl RoomTask {
    async fn run(
        mut self,
        mut commands: mpsc::Receiver<Command>,
        mut events: mpsc::UnboundedReceiver<Event>,
        on_idle: OnIdle,
    ) {
        tracing::info!(room = %self.room, "room opened");
        let mut housekeeping = tokio::time::interval(HOUSEKEEPING_INTERVAL);
        let mut shutdown_reply = None;
        loop {
            tokio::select! {
                cmd = commands.recv() => match cmd {
                    Some(Command::Shutdown { reply }) => { shutdown_reply = Some(reply); break; }
                    Some(cmd) => self.handle_command(cmd).await,
                    None => break,
                },
                Some(event) = events.recv() => self.handle_event(event),
                _ = housekeeping.tick() => {
                    self.check_liveness();
                    self.check_outputs();
                    self.check_cameras();
                    self.pipe.reap_rungs();
                    self.ticks += 1;
                    self.read_feedback();
                    if self.ticks % LINK_POLL_TICKS == 0 {
                        self.poll_links();
                        self.report_metrics();
                    }
                    if self.idle_expired() {
                        // Refuse new commands first, so nobody queues behind a closing room.
                        commands.close();
                        while let Ok(cmd) = commands.try_recv() {
                            reject(cmd);
                        }
                        break;
                    }
                }
            }
        }
        self.stop_outputs();
        crate::metrics::metrics().forget_room(self.room.as_str());
        let ids: Vec<SessionId> = self.sessions.keys().copied().collect();
        for id in ids {
            self.remove(id, "room closing");
        }
        let pipeline = self.pipe.pipeline.clone();
        let stopped = tokio::task::spawn_blocking(move || {
            let _ = pipeline.set_state(gst::State::Null);
        });
        if tokio::time::timeout(SHUTDOWN_TIMEOUT, stopped).await.is_err() {
            tracing::warn!(room = %self.room, "pipeline did not stop in time");
        }
        tracing::info!(room = %self.room, "room closed");
        if shutdown_reply.is_none() {
            on_idle();
        }
        drop(self);
        if let Some(reply) = shutdown_reply {
            let _ = reply.send(());
        }
    }

    fn idle_expired(&self) -> bool {
        self.sessions.is_empty() && self.empty_since.is_some_and(|t| t.elapsed() >= self.empty_grace)
    }

    async fn handle_command(&mut self, cmd: Command) {
        match cmd {
            Command::Publish { id, offer, plan, owner, screen, hold, reply } => {
                match self.add_publisher(id, offer, plan, owner, screen).await {
                    Ok((id, webrtc, liveness)) => {
                        self.hold(id, hold);
                        self.negotiate(id, webrtc, liveness, reply)
                    }
                    Err(e) => {
                        let _ = reply.send(Err(e));
                    }
                }
            }
            Command::View { id, offer, plan, exclude, owner, cap, hold, reply } => {
                match self.add_viewer(id, offer, plan, ViewerOf { exclude, owner, cap }).await {
                    Ok((id, webrtc, liveness)) => {
                        self.hold(id, hold);
                        self.negotiate(id, webrtc, liveness, reply)
                    }
                    Err(e) => {
                        let _ = reply.send(Err(e));
                    }
                }
            }
            Command::End { session, reply } => {
                let found = self.remove(session, "ended by client");
                let _ = reply.send(if found { Ok(()) } else { Err(MediaError::UnknownSession) });
            }
            Command::Trickle { session, candidates, reply } => {
                let result = match self.sessions.get(&session).and_then(|s| s.webrtc.as_ref()) {
                    Some(webrtc) => {
                        // Bundled sessions share one transport: every candidate goes to m-line 0.
                        for c in &candidates {
                            peer::add_remote_candidate(webrtc, 0, c);
                        }
                        Ok(())
                    }
                    None => Err(MediaError::UnknownSession),
                };
                let _ = reply.send(result);
            }
            Command::Label { participant, label } => {
                for id in self.sessions_of(participant, |k| matches!(k, Kind::Publisher { .. })) {
                    if let Some(Session { kind: Kind::Publisher { tile: Some(tile), screen, .. }, .. }) = self.sessions.get_mut(&id) {
                        // A shared screen is never "camera off".
                        let label = TileLabel { video_muted: label.video_muted && !*screen, ..label.clone() };
                        if let Err(e) = tile.set_label(label, &self.pipe) {
                            tracing::warn!(room = %self.room, error = %e, "tile label not applied");
                        }
                    }
                    self.refresh_tile(id);
                }
                self.labels.insert(participant, label);
                // The active speaker may have changed, and with it the speaker layout.
                self.relayout();
            }
            Command::Stage(stage) => {
                let silenced = self
                    .sessions
                    .values()
                    .filter_map(|s| match &s.kind {
                        Kind::Publisher { voice: v @ Voice::Participant(p), .. } => {
                            let off_stage = stage.on_stage.as_ref().is_some_and(|on| !on.contains(p));
                            (off_stage || stage.silenced.contains(p)).then(|| v.clone())
                        }
                        _ => None,
                    })
                    .collect();
                self.pipe.mixer.set_silenced(silenced);
                self.stage = stage;
                self.relayout();
            }
            Command::Cap { participant, cap } => {
                for id in self.sessions_of(participant, |k| matches!(k, Kind::Viewer { .. })) {
                    self.set_cap(id, cap);
                }
            }
            Command::EndParticipant { participant, publishers_only } => {
                for id in self.sessions_of(participant, |k| !publishers_only || matches!(k, Kind::Publisher { .. })) {
                    // A caller sent to the audience keeps hearing the room: the stage takes
                    // their voice and tile out, not their call.
                    if publishers_only && self.phones.contains(&id) {
                        continue;
                    }
                    self.remove(id, "participant left");
                }
                self.labels.remove(&participant);
            }
            Command::Shutdown { .. } => unreachable!("handled in run()"),
            other => self.handle_io_command(other),
        }
    }

    /// What goes out of the room (recording, live streams, HLS) and what comes into it
    /// besides WebRTC (hall cameras).
    fn handle_io_command(&mut self, cmd: Command) {
        match cmd {
            Command::Record { on, reply } => {
                let _ = reply.send(self.set_recording(on));
            }
            Command::StartStream { id, target, reply } => {
                let _ = reply.send(self.start_stream(id, target));
            }
            Command::StopStream { id } => self.stop_stream(&id),
            Command::PublicBroadcast { on, reply } => {
                let _ = reply.send(self.set_hls(on));
            }
            Command::AddPhone { id, owner, sink, reply } => {
                let _ = reply.send(self.add_phone(id, owner, sink));
            }
            Command::AddCamera { id, source, name, reply } => {
                let _ = reply.send(self.add_camera(id, source, name));
            }
            other => reject(other),
        }
    }

    /// The sessions of `participant` whose kind passes `which`.
    fn sessions_of(&self, participant: ParticipantId, which: impl Fn(&Kind) -> bool) -> Vec<SessionId> {
        self.sessions
            .iter()
            .filter(|(_, s)| s.kind.owner() == Some(participant) && which(&s.kind))
            .map(|(id, _)| *id)
            .collect()
    }

    fn handle_event(&mut self, event: Event) {
        match event {
            Event::Connection { session, state } => self.on_connection_state(session, state),
            Event::NegotiationFailed { session } => {
                self.remove(session, "negotiation failed");
            }
            Event::Keyframe(codec, rung) => self.pipe.force_keyframe(codec, rung),
            Event::FirstFrame { session } => self.show_tile(session),
            Event::Bus(msg) => self.on_bus_message(&msg),
        }
    }

    /// Asks rung `rung` of `codec` for a keyframe after each of `delays` (from now).
    fn keyframes_later(&self, codec: VideoCodec, rung: usize, delays: &'static [Duration]) {
        let events = self.events.clone();
        tokio::spawn(async move {
            let mut waited = Duration::ZERO;
            for delay in delays {
                tokio::time::sleep(*delay - waited).await;
                waited = *delay;
                let _ = events.send(Event::Keyframe(codec, rung));
            }
        });
    }

    fn on_connection_state(&mut self, id: SessionId, state: WebRTCPeerConnectionState) {
        let Some(session) = self.sessions.get_mut(&id) else { return };
        tracing::debug!(room = %self.room, session = %session.name, ?state, "connection state");
        match state {
            WebRTCPeerConnectionState::Connected => {
                session.connected = true;
                session.liveness.touch();
                tracing::debug!(room = %self.room, session = %session.name, "connected");
                if let Kind::Viewer { video: Some(VideoOut { codec, rung: Some(rung), .. }), .. } = session.kind {
                    self.pipe.force_keyframe(codec, rung);
                    self.keyframes_later(codec, rung, &LATER_KEYFRAME_DELAYS);
                }
            }
            WebRTCPeerConnectionState::Failed | WebRTCPeerConnectionState::Closed => {
                self.remove(id, "connection failed");
            }
            _ => {}
        }
    }

    fn on_bus_message(&mut self, msg: &gst::Message) {
        match msg.view() {
            gst::MessageView::Latency(_) => {
                let _ = self.pipe.pipeline.recalculate_latency();
                let mut q = gst::query::Latency::new();
                if self.pipe.pipeline.query(&mut q) {
                    let (live, min, max) = q.result();
                    tracing::debug!(room = %self.room, live, min = %min, max = ?max, from = %msg.src().map(|s| s.path_string()).unwrap_or_default(), "pipeline latency");
                }
            }
            gst::MessageView::Error(err) => {
                let owner = self.session_owning(msg.src());
                match owner {
                    Some(id) => {
                        tracing::warn!(room = %self.room, error = %err.error(), debug = ?err.debug(), "media error in a session; ending it");
                        self.remove(id, "media error");
                    }
                    None => tracing::error!(room = %self.room, error = %err.error(), debug = ?err.debug(), "room pipeline error"),
                }
            }
            _ => {}
        }
    }

    /// The session whose bin contains `src`, if any.
    fn session_owning(&self, src: Option<&gst::Object>) -> Option<SessionId> {
        let mut obj = src.cloned();
        while let Some(o) = obj {
            if let Some((id, _)) = self.sessions.iter().find(|(_, s)| s.bin.upcast_ref::<gst::Object>() == &o) {
                return Some(*id);
            }
            obj = o.parent();
        }
        None
    }

    fn check_liveness(&mut self) {
        let now = Instant::now();
        let silent: Vec<SessionId> = self
            .sessions
            .iter()
            // A hall camera is watched by its own pull, which tries again when it drops.
            .filter(|(_, s)| s.webrtc.is_some())
            .filter(|(_, s)| {
                let limit = match s.kind {
                    _ if !s.connected => CONNECT_TIMEOUT,
                    Kind::Publisher { .. } => PUBLISHER_SILENCE_TIMEOUT,
                    Kind::Viewer { .. } => viewer_silence_limit(s.liveness.report_interval()),
                };
                s.liveness.silent_for(now) > limit
            })
            .map(|(id, _)| *id)
            .collect();
        for id in silent {
            self.remove(id, "nothing received");
        }
    }

    /// Puts a publisher's camera on the canvas once its video is decoded.
    fn show_tile(&mut self, id: SessionId) {
        let Some(Session { kind: Kind::Publisher { tile: Some(tile), .. }, name, .. }) = self.sessions.get_mut(&id) else {
            return;
        };
        match tile.connect_camera(&self.pipe) {
            Ok(()) => tracing::debug!(room = %self.room, session = %name, "camera shown"),
            Err(e) => {
                tracing::warn!(room = %self.room, error = %e, "could not composite a publisher");
                self.remove(id, "compositor refused its video");
                return;
            }
        }
        self.refresh_tile(id);
    }

    /// Keeps the grid in step with which tiles have something to show.
    fn refresh_tile(&mut self, id: SessionId) {
        let visible = matches!(
            self.sessions.get(&id),
            Some(Session { kind: Kind::Publisher { tile: Some(t), .. }, .. }) if t.is_visible()
        );
        let listed = self.tiles.iter().position(|t| *t == id);
        match (visible, listed) {
            (true, None) => self.tiles.push(id),
            (false, Some(pos)) => {
                self.tiles.remove(pos);
            }
            _ => return,
        }
        self.relayout();
    }

    /// A participant's views hear "everyone but me" only while their microphone is in the mix;
    /// otherwise they share the full mix's encode (listeners, audience: one Opus encode for all).
    fn retarget_own_mix(&mut self, participant: ParticipantId, own: bool) {
        let key: MixKey = own.then_some(Voice::Participant(participant));
        let theirs: Vec<SessionId> = self
            .sessions
            .iter()
            .filter(|(_, s)| matches!(&s.kind, Kind::Viewer { owner: Some(o), mix: Some(m), audio: Some(_), .. } if *o == participant && *m != key))
            .map(|(id, _)| *id)
            .collect();
        for id in theirs {
            let tee = match self.pipe.audio_tee(key.clone()) {
                Ok(tee) => tee,
                Err(e) => {
                    tracing::warn!(room = %self.room, error = %e, "could not switch a viewer's mix");
                    continue;
                }
            };
            let Some(Session { kind: Kind::Viewer { audio: Some(link), mix: Some(mix), .. }, .. }) = self.sessions.get_mut(&id) else {
                continue;
            };
            let old = std::mem::replace(mix, key.clone());
            if let Err(e) = link.move_to(&tee) {
                tracing::warn!(room = %self.room, error = %e, "could not switch a viewer's mix");
            }
            self.pipe.release_audio(old);
        }
    }

    fn relayout(&mut self) {
        let on_stage = |s: &Session| match (&self.stage.on_stage, s.kind.owner()) {
            (Some(set), Some(p)) => set.contains(&p),
            _ => true,
        };
        let shown_ids: Vec<SessionId> =
            self.tiles.iter().copied().filter(|id| self.sessions.get(id).is_some_and(on_stage)).collect();
        let shown: Vec<layout::Shown> = shown_ids
            .iter()
            .map(|id| {
                let (screen, owner) = match self.sessions.get(id).map(|s| &s.kind) {
                    Some(Kind::Publisher { screen, owner, .. }) => (*screen, *owner),
                    _ => (false, None),
                };
                let active = !screen && owner.and_then(|o| self.labels.get(&o)).is_some_and(|l| l.active_speaker);
                // Anonymous feeds (a hall camera over WHIP) were put there on purpose: first.
                let priority = match owner {
                    None => 0,
                    Some(o) => self.stage.recent_speakers.iter().position(|p| *p == o).map_or(u32::MAX, |i| i as u32 + 1),
                };
                layout::Shown { screen, active_speaker: active, priority }
            })
            .collect();
        let rects = layout::arrange(self.stage.layout, &shown, self.cfg.canvas, self.cfg.max_tiles);
        for id in self.tiles.clone() {
            let rect = shown_ids.iter().position(|s| *s == id).and_then(|i| rects[i]);
            if let Some(Session { kind: Kind::Publisher { tile: Some(tile), .. }, .. }) = self.sessions.get_mut(&id) {
                match rect {
                    // Unchanged: setting the same caps and position again is not free.
                    Some(rect) if tile.rect() == Some(rect) => {}
                    Some(rect) => tile.place(rect),
                    None => tile.hide(),
                }
            }
        }
    }

    /// Ends a session: out of the picture and the mix at once, then its elements are stopped
    /// off the task. Returns whether it existed.
    fn remove(&mut self, id: SessionId, why: &str) -> bool {
        let Some(mut session) = self.sessions.remove(&id) else { return false };
        match &mut session.kind {
            Kind::Publisher { tile, voice, owner, screen, has_audio } => {
                if let Some(camera) = self.cameras.remove(&id) {
                    camera.stop();
                }
                self.pipe.mixer.remove_input(voice);
                let voice = voice.clone();
                self.forget_phone(id, &voice);
                if let Some(participant) = owner {
                    let _ = self.out.send(MediaEvent::PublisherEnded { participant: *participant, screen: *screen });
                }
                if let (Voice::Participant(p), true) = (&voice, *has_audio) {
                    let p = *p;
                    self.retarget_own_mix(p, false);
                }
                if let Some(tile) = tile.as_mut() {
                    tile.release(&self.pipe);
                }
                if let Some(pos) = self.tiles.iter().position(|t| *t == id) {
                    self.tiles.remove(pos);
                    self.relayout();
                }
                tracing::info!(room = %self.room, session = %session.name, reason = why, "publisher left");
            }
            Kind::Viewer { video, audio, mix, .. } => {
                if let Some(v) = video.as_mut() {
                    v.link.detach();
                    if let Some(rung) = v.rung {
                        self.pipe.release_video(v.codec, rung);
                    }
                }
                if let Some(a) = audio.as_mut() {
                    a.detach();
                }
                if let Some(mix) = mix {
                    self.pipe.release_audio(mix.clone());
                }
                tracing::info!(room = %self.room, session = %session.name, reason = why, "viewer left");
            }
        }
        if session.kind.owner().is_none() {
            let _ = self.out.send(MediaEvent::ExternalEnded { session: id });
        }
        // A viewer hearing "everyone but X" keeps its mix after X leaves: with X's input gone
        // it simply equals the full mix.
        // webrtcbin's teardown can block (DTLS, ICE threads): never on this task.
        self.pipe.discard(vec![session.bin.upcast()]);
        if self.sessions.is_empty() {
            self.empty_since = Some(Instant::now());
        }
        true
    }
}

/// How long a viewer that reports every `interval` may stay silent before it counts as gone.
fn viewer_silence_limit(interval: Duration) -> Duration {
    (interval * VIEWER_SILENT_INTERVALS).clamp(VIEWER_SILENCE_MIN, VIEWER_SILENCE_MAX)
}

fn reject(cmd: Command) {
    match cmd {
        Command::Publish { reply, .. } | Command::View { reply, .. } => {
            let _ = reply.send(Err(MediaError::RoomClosed));
        }
        Command::End { reply, .. } | Command::Trickle { reply, .. } => {
            let _ = reply.send(Err(MediaError::RoomClosed));
        }
        Command::Record { reply, .. } => {
            let _ = reply.send(Err(MediaError::RoomClosed));
        }
        Command::StartStream { reply, .. } => {
            let _ = reply.send(Err(MediaError::RoomClosed));
        }
        Command::StopStream { .. } => {}
        Command::AddPhone { reply, .. } => {
            let _ = reply.send(Err(MediaError::RoomClosed));
        }
        Command::PublicBroadcast { reply, .. } | Command::AddCamera { reply, .. } => {
            let _ = reply.send(Err(MediaError::RoomClosed));
        }
        Command::Shutdown { reply } => {
            let _ = reply.send(());
        }
        Command::Label { .. } | Command::Stage(_) | Command::EndParticipant { .. } | Command::Cap { .. } => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn viewers_are_given_five_of_their_report_intervals_within_bounds() {
        assert_eq!(viewer_silence_limit(Duration::from_secs(1)), VIEWER_SILENCE_MIN, "a browser");
        assert_eq!(viewer_silence_limit(Duration::from_secs(5)), Duration::from_secs(25), "RFC 3550's default");
        assert_eq!(viewer_silence_limit(Duration::from_millis(7500)), VIEWER_SILENCE_MAX, "a standard client's longest gap");
        assert_eq!(viewer_silence_limit(Duration::from_secs(60)), VIEWER_SILENCE_MAX);
    }
}
