//! The room's outputs as its media task sees them: the broadcast encode, started with the
//! first output and stopped with the last, and the recording.

use super::super::broadcast::Broadcast;
use super::{MediaError, MediaEvent, RoomTask};

impl RoomTask {
    /// Starts (`Some` file name back) or stops (`None`) the room's recording.
    pub(super) fn set_recording(&mut self, on: bool) -> Result<Option<String>, MediaError> {
        if !on {
            if let Some(rec) = self.recording.take() {
                self.pipe_outputs_remove(&rec.output().feed);
                tracing::info!(room = %self.room, seconds = rec.started.elapsed().as_secs(), "recording stopped");
                rec.stop();
            }
            self.stop_broadcast_if_unused();
            return Ok(None);
        }
        if let Some(rec) = &self.recording {
            return Ok(Some(rec.name.clone()));
        }
        let recordings = self.cfg.recordings.clone().ok_or_else(|| MediaError::Internal("recording is not configured".into()))?;
        let broadcast = self.broadcast()?;
        let fanout = broadcast.fanout.clone();
        let rec = match recordings.start(&self.room) {
            Ok(rec) => rec,
            Err(e) => {
                self.stop_broadcast_if_unused();
                return Err(MediaError::Internal(format!("recording: {e}")));
            }
        };
        fanout.add(rec.output().feed.clone());
        if let Some(b) = &self.broadcast {
            b.keyframe(&self.pipe);
        }
        tracing::info!(room = %self.room, "recording started");
        let name = rec.name.clone();
        self.recording = Some(rec);
        Ok(Some(name))
    }

    /// The broadcast encode, started on first use.
    fn broadcast(&mut self) -> Result<&Broadcast, MediaError> {
        if self.broadcast.is_none() {
            self.broadcast = Some(Broadcast::start(&mut self.pipe)?);
        }
        Ok(self.broadcast.as_ref().expect("just set"))
    }

    fn pipe_outputs_remove(&self, feed: &std::sync::Arc<crate::outputs::Feed>) {
        if let Some(b) = &self.broadcast {
            b.fanout.remove(feed);
        }
    }

    fn stop_broadcast_if_unused(&mut self) {
        if self.broadcast.as_ref().is_some_and(|b| b.fanout.is_empty()) {
            if let Some(b) = self.broadcast.take() {
                b.stop(&mut self.pipe);
            }
        }
    }

    /// On the housekeeping tick: an output whose pipeline failed (a full disk) is stopped and
    /// the room's control told.
    pub(super) fn check_outputs(&mut self) {
        let failed = self.recording.as_ref().and_then(|r| r.output().failure());
        if let Some(reason) = failed {
            tracing::warn!(room = %self.room, error = %reason, "recording failed");
            let _ = self.set_recording(false);
            let _ = self.out.send(MediaEvent::RecordingStopped { reason });
        }
    }
}
