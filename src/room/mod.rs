//! Room policy without IO: today the picture's layout; later who is in, roles and modes.
//!
//! Nothing here touches GStreamer, sockets or the clock, so all of it is unit-tested directly.

pub mod layout;
