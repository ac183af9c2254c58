//! Room policy without IO: who is in, names, mute state, speaking, chat, and the layout.
//!
//! Nothing here touches GStreamer, sockets or the clock (time is an argument), so all of it is
//! unit-tested directly.

pub mod access;
pub mod framing;
pub mod kept;
pub mod layout;
pub mod moderation;
pub mod participants;
pub mod resume;
