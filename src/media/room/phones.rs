//! Phone callers in the room (`crate::sip`): a participant without WebRTC and without a
//! picture. Their call's own pipeline decodes and encodes at the edge; here they are a name
//! tile, an input of the mixer (their voice, 48 kHz) and an output of it (everyone but them).
//!
//! ```text
//!  call pipeline (own, crate::sip::call)     │ room, bin phone-N
//!  RTP ─▶ decode ─▶ S16 48k ─▶ appsink ──────▶ mixer input (the caller's voice)
//!  RTP ◀─ encode ◀─ appsrc ◀──────────────────── mixer output: everyone but the caller
//!                                              name tile ─▶ compositor
//! ```

use gst::prelude::*;

use super::super::ingest::VideoGate;
use super::super::mixer::{InputFeed, MixSink};
use super::super::peer::Liveness;
use super::super::pipeline::gst_err;
use super::super::tile::Tile;
use super::{Kind, MediaError, Owner, RoomTask, Session, TileLabel, Voice};
use crate::ids::SessionId;
use crate::room::framing::Fit;

impl RoomTask {
    /// A caller under `id`, belonging to `owner`: their name tile at once, their voice into
    /// the mix through the feed returned, everyone but them into `sink`.
    pub(super) fn add_phone(&mut self, id: SessionId, owner: Owner, sink: Box<dyn MixSink>) -> Result<InputFeed, MediaError> {
        if self.sessions.contains_key(&id) {
            return Err(MediaError::Internal("session id drawn twice".into()));
        }
        self.next_element_id += 1;
        let element_name = format!("phone-{}", self.next_element_id);
        let bin = gst::Bin::with_name(&element_name);
        self.pipe.pipeline.add(&bin).map_err(gst_err)?;
        let voice = Voice::Participant(owner.participant);
        let label = TileLabel { name: owner.name.clone(), video_muted: true, ..Default::default() };
        let tile = match Tile::new(&bin, false, Fit::Whole, VideoGate::default(), label.clone(), || {}) {
            Ok(tile) => tile,
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
            kind: Kind::Publisher { tile: Some(tile), has_audio: true, voice: voice.clone(), owner: Some(owner.participant), screen: false },
            hold: None,
        };
        self.insert_session(id, session)?;
        let feed = self.pipe.mixer.add_input(voice.clone());
        self.pipe.mixer.add_output(Some(voice), sink);
        self.phones.insert(id);
        if let Some(Session { kind: Kind::Publisher { tile: Some(tile), .. }, .. }) = self.sessions.get_mut(&id) {
            if let Err(e) = tile.set_label(label, &self.pipe) {
                tracing::warn!(room = %self.room, error = %e, "caller's tile not shown");
            }
        }
        self.refresh_tile(id);
        tracing::info!(room = %self.room, session = %element_name, "phone caller added");
        Ok(feed)
    }

    /// A caller's session ends: their mix output goes with them.
    pub(super) fn forget_phone(&mut self, id: SessionId, voice: &Voice) {
        if self.phones.remove(&id) {
            self.pipe.mixer.remove_output(&Some(voice.clone()));
        }
    }
}
