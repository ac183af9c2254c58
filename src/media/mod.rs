//! All of GStreamer lives here: one pipeline per room, owned by one tokio task.
//!
//! The rest of the server talks to a room through [`RoomMedia`] (a command channel); GStreamer
//! threads talk to it through an event channel (signal handlers and the bus sync handler only
//! forward). Nothing outside this module holds an element.

pub mod audio_mix;
mod egress;
mod ingest;
mod mixer;
mod peer;
mod pipeline;
mod room;
pub mod sdp;

use std::sync::Arc;

use crate::config::IceConfig;
use crate::profiles::EncoderProfile;
use crate::room::layout::Size;

pub use room::{Answer, RoomMedia};

/// Settings every room's pipeline is built with.
#[derive(Clone, Debug)]
pub struct MediaConfig {
    pub canvas: Size,
    pub fps: u32,
    pub jitterbuffer_ms: u32,
    pub ice: IceConfig,
    pub vp8_profile: EncoderProfile,
    pub h264_profile: EncoderProfile,
}

pub type SharedMediaConfig = Arc<MediaConfig>;

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
    #[error("media engine error: {0}")]
    Internal(String),
}
