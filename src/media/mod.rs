//! All of GStreamer lives here: one pipeline per room, owned by one tokio task.
//!
//! The rest of the server talks to a room through [`RoomMedia`] (a command channel); GStreamer
//! threads talk to it through an event channel (signal handlers and the bus sync handler only
//! forward). Nothing outside this module holds an element.

pub mod audio_mix;
mod backlog;
mod broadcast;
mod egress;
mod ingest;
pub mod ladder;
mod link_stats;
pub mod rate;
mod mixer;
mod peer;
mod playout;
mod pipeline;
mod retransmit;
mod room;
mod tile;
pub mod sdp;

use std::sync::Arc;

use crate::config::IceConfig;
use crate::profiles::EncoderProfile;
use crate::room::layout::Size;

pub use mixer::{InputFeed, MixSink};
pub use pipeline::{mix_appsrc, AppSrcSink};
pub use room::{Answer, Hold, RoomMedia, ViewerOf};

use crate::ids::SessionId;
use crate::room::participants::ParticipantId;

/// Whose voice an audio input is: a participant of the room (joined over the control
/// WebSocket), or an anonymous WHIP session (OBS, a hall encoder).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Voice {
    Participant(ParticipantId),
    Session(SessionId),
}

/// The participant a WHIP session belongs to.
#[derive(Clone, Debug)]
pub struct Owner {
    pub participant: ParticipantId,
    pub name: String,
}

/// What a participant's tile shows besides the picture.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TileLabel {
    pub name: String,
    pub audio_muted: bool,
    pub video_muted: bool,
    pub active_speaker: bool,
    pub hand_raised: bool,
}

/// What the picture and the mix show, as the room's policy decides.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stage {
    pub layout: crate::room::layout::LayoutMode,
    /// Presentation mode: only these participants are seen and heard (anonymous WHIP
    /// publishers, such as a hall camera, always are). `None`: everyone.
    pub on_stage: Option<std::collections::BTreeSet<ParticipantId>>,
    /// Participants whose voice is left out of the mix (muted by themselves or a moderator).
    pub silenced: std::collections::BTreeSet<ParticipantId>,
    /// Who spoke most recently first (those speaking now lead); who never spoke is not listed.
    /// When not every tile fits, the picture keeps these.
    pub recent_speakers: Vec<ParticipantId>,
}

/// What a room's media tells the room's control.
#[derive(Debug)]
pub enum MediaEvent {
    /// A participant's WHIP session ended (DELETE, failure or silence).
    PublisherEnded { participant: ParticipantId, screen: bool },
    /// A WHIP/WHEP session that belongs to no participant (an external client) ended.
    ExternalEnded { session: SessionId },
    /// Audio levels (dBFS) of the participants that publish audio, every 100 ms.
    Levels(Vec<(ParticipantId, f32)>),
    /// The recording stopped by itself (its pipeline failed: a full disk).
    RecordingStopped { reason: String },
    /// The public broadcast stopped by itself (its pipeline failed).
    BroadcastStopped { reason: String },
    /// A live stream connected, went live, or dropped and will be tried again.
    Stream { id: String, target: String, state: crate::outputs::live::StreamState },
    /// A hall camera connected, delivers, or dropped and will be tried again.
    Camera { session: SessionId, state: crate::inputs::camera::CameraState },
    /// A participant's view moved to another rung: `None` the full picture, else the rung's
    /// name ("360p") or "audio".
    Receiving { participant: ParticipantId, rung: Option<String> },
}

/// Settings every room's pipeline is built with.
#[derive(Clone, Debug)]
pub struct MediaConfig {
    pub canvas: Size,
    pub fps: u32,
    pub jitterbuffer_ms: u32,
    /// Most tiles in the grid layout (see `room::layout::arrange`).
    pub max_tiles: usize,
    /// The codec a viewer gets when its offer has both.
    pub viewer_codec: crate::profiles::VideoCodec,
    pub ice: IceConfig,
    pub vp8_profile: EncoderProfile,
    pub h264_profile: EncoderProfile,
    /// Where recordings are written (`None`: recording is off on this server).
    pub recordings: Option<crate::outputs::recording::Recordings>,
    /// The rooms whose broadcast is public over HLS, read by the HTTP edge.
    pub hls: Arc<crate::outputs::hls::HlsDirectory>,
}

pub type SharedMediaConfig = Arc<MediaConfig>;

/// A GStreamer failure inside the engine, for the few calls that report one.
pub fn gst_err(e: impl std::fmt::Display) -> MediaError {
    MediaError::Internal(e.to_string())
}

#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    #[error(transparent)]
    Sdp(#[from] sdp::SdpError),
    #[error("no such session in this room")]
    UnknownSession,
    #[error("bearer token does not belong to a publisher in this room")]
    UnknownToken,
    #[error("GStreamer element missing: {0}")]
    Element(String),
    #[error("negotiation failed: {0}")]
    Negotiation(#[from] peer::PeerError),
    #[error("room is closing; try again")]
    RoomClosed,
    /// `--max-rooms` rooms are open already.
    #[error("this server holds as many rooms as it may ({0}); try again later")]
    ServerFull(usize),
    /// The room's policy says no (waiting room, password, presentation mode, ...).
    #[error("{0}")]
    Policy(crate::room::participants::RoomError),
    #[error("media engine error: {0}")]
    Internal(String),
}
