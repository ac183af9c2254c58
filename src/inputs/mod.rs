//! What comes into a room other than by WebRTC: cameras pulled from the network (an RTSP IP
//! camera in the assembly hall, an SRT stream from OBS or a hardware encoder).
//!
//! Each pull runs in its own small pipeline, like the outputs: a camera that hangs, drops or
//! sends garbage fails its own pipeline, never the room's. Decoded pictures and sound are
//! handed to the room through callbacks (an `appsrc` in front of the camera's tile, the
//! mixer's input queue).

pub mod camera;
