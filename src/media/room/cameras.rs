//! Hall cameras in the room: each is a publisher without WebRTC. Its pictures come from its
//! own pull pipeline (`inputs::camera`) through an `appsrc` in front of its tile, its sound
//! straight into the mixer's queue for it; while the camera is away (connecting, dropped,
//! tried again) its tile shows its name on the plain background.
//!
//! ```text
//!  camera pipeline (own)                 │ room pipeline, bin cam-N
//!  uridecodebin ─▶ I420 ─▶ appsink ─────▶ appsrc ─▶ tile (scale, name) ─▶ compositor
//!               └▶ S16 48k ─▶ appsink ──▶ mixer input (the camera's own voice)
//! ```

use std::sync::{Arc, Mutex};
use std::time::Instant;

use gst::prelude::*;

use super::super::ingest::{VideoGate, VIDEO_HEAD};
use super::super::peer::Liveness;
use super::super::pipeline::gst_err;
use super::super::tile::Tile;
use super::{Event, Kind, MediaError, MediaEvent, RoomTask, Session, TileLabel, Voice};
use crate::ids::SessionId;
use crate::room::framing::Fit;
use crate::inputs::camera::{Camera, CameraSinks, CameraSource, CameraState};

/// Pictures the camera's appsrc holds before it drops the oldest (the room is behind).
const QUEUED_PICTURES: u64 = 3;

impl RoomTask {
    /// A hall camera under `id`, shown as `name`: its placeholder tile at once, its picture
    /// and sound once the pull delivers them.
    pub(super) fn add_camera(&mut self, id: SessionId, source: CameraSource, name: String) -> Result<(), MediaError> {
        if self.sessions.contains_key(&id) {
            return Err(MediaError::Internal("session id drawn twice".into()));
        }
        self.next_element_id += 1;
        let element_name = format!("cam-{}", self.next_element_id);
        let bin = gst::Bin::with_name(&element_name);
        self.pipe.pipeline.add(&bin).map_err(gst_err)?;
        let voice = Voice::Session(id);
        let label = TileLabel { name: name.clone(), video_muted: true, ..Default::default() };
        let events = self.events.clone();
        let built = (|| {
            // A hall camera's wide shot is shown whole: cropped, people at its edges would be lost.
            let tile = Tile::new(&bin, true, Fit::Whole, VideoGate::default(), label.clone(), move || {
                let _ = events.send(Event::FirstFrame { session: id });
            })?;
            let src = gst_app::AppSrc::builder().name("camera-src").is_live(true).do_timestamp(true).format(gst::Format::Time).build();
            src.set_property("max-buffers", QUEUED_PICTURES);
            src.set_property_from_str("leaky-type", "downstream");
            bin.add(&src).map_err(gst_err)?;
            let head = bin.by_name(VIDEO_HEAD).ok_or_else(|| MediaError::Internal("the tile has no video head".into()))?;
            src.link(&head).map_err(gst_err)?;
            Ok::<_, MediaError>((tile, src))
        })();
        let (tile, src) = match built {
            Ok(parts) => parts,
            Err(e) => {
                let _ = self.pipe.pipeline.remove(&bin);
                return Err(e);
            }
        };
        let session = Session {
            name: element_name.clone(),
            bin,
            webrtc: None,
            liveness: Liveness::new(self.epoch),
            connected: true,
            kind: Kind::Publisher { tile: Some(tile), has_audio: true, voice: voice.clone(), owner: None, screen: false },
            hold: None,
        };
        self.insert_session(id, session)?;
        let sinks = CameraSinks { video: Arc::new(picture_into(src)), audio: Arc::new({
            let feed = self.pipe.mixer.add_input(voice);
            move |samples: &[i16]| feed.push(samples)
        }) };
        self.set_camera_label(id, label);
        tracing::info!(room = %self.room, session = %element_name, source = %source.redacted(), "hall camera added");
        self.cameras.insert(id, Camera::new(source, format!("{}-{element_name}", self.room), sinks));
        self.tick_camera(id, Instant::now());
        Ok(())
    }

    /// Shows the camera's name on its placeholder while it is away, its picture while it is there.
    fn set_camera_label(&mut self, id: SessionId, label: TileLabel) {
        if let Some(Session { kind: Kind::Publisher { tile: Some(tile), .. }, .. }) = self.sessions.get_mut(&id) {
            if let Err(e) = tile.set_label(label, &self.pipe) {
                tracing::warn!(room = %self.room, error = %e, "camera tile not updated");
            }
        }
        self.refresh_tile(id);
        self.relayout();
    }

    fn tick_camera(&mut self, id: SessionId, now: Instant) {
        let Some(camera) = self.cameras.get_mut(&id) else { return };
        let Some(state) = camera.tick(now) else { return };
        match &state {
            CameraState::Retrying { in_s, error } => tracing::warn!(room = %self.room, %error, in_s, "hall camera away; trying again"),
            other => tracing::info!(room = %self.room, state = ?other, "hall camera"),
        }
        let name = match self.sessions.get(&id) {
            Some(Session { kind: Kind::Publisher { tile: Some(tile), .. }, .. }) => tile.label().name.clone(),
            _ => String::new(),
        };
        self.set_camera_label(id, TileLabel { name, video_muted: state != CameraState::Live, ..Default::default() });
        let _ = self.out.send(MediaEvent::Camera { session: id, state });
    }

    /// On the housekeeping tick: cameras connect, fail and are tried again.
    pub(super) fn check_cameras(&mut self) {
        let now = Instant::now();
        let ids: Vec<SessionId> = self.cameras.keys().copied().collect();
        for id in ids {
            self.tick_camera(id, now);
        }
    }
}

/// Hands each decoded picture to the camera's appsrc, stamped on arrival (the camera's own
/// clock means nothing to the room's).
fn picture_into(src: gst_app::AppSrc) -> impl Fn(&gst::Sample) + Send + Sync {
    let caps_now: Mutex<Option<gst::Caps>> = Mutex::new(None);
    move |sample| {
        let (Some(buffer), Some(caps)) = (sample.buffer_owned(), sample.caps()) else { return };
        {
            let mut current = caps_now.lock().unwrap_or_else(|p| p.into_inner());
            if current.as_ref().is_none_or(|c| c.as_ref() != caps) {
                let caps = caps.to_owned();
                src.set_caps(Some(&caps));
                *current = Some(caps);
            }
        }
        let mut buffer = buffer;
        {
            let b = buffer.make_mut();
            b.set_pts(gst::ClockTime::NONE);
            b.set_dts(gst::ClockTime::NONE);
            b.set_duration(gst::ClockTime::NONE);
        }
        let _ = src.push_buffer(buffer);
    }
}
