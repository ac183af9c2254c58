//! Plenum: a self-hosted MCU video-conference server on GStreamer.
//!
//! Every participant's stream comes in (WHIP), is decoded, composited into one picture and mixed
//! into one sound, and one stream goes back to each viewer (WHEP). Layering, top to bottom:
//!
//! - [`http`]: the axum edge; maps errors to statuses once.
//! - [`rooms`]: the registry of live rooms.
//! - [`media`]: everything GStreamer; one pipeline per room, owned by one task.
//! - [`room`]: pure policy (layout), no IO, no clock.
//!
//! Contracts: errors come from bad input or a failing peer and end at most that peer's session;
//! a panic is a bug. The few `expect`s left say why they cannot fire. GStreamer callbacks never
//! block and never touch room state; they forward into the room task's channel.

pub mod app;
pub mod cluster;
pub mod config;
pub mod control;
pub mod http;
pub mod ids;
pub mod metrics;
pub mod inputs;
pub mod media;
pub mod memory;
pub mod outputs;
pub mod profiles;
pub mod protocol;
pub mod room;
pub mod rooms;
pub mod secret;
pub mod sip;
