//! The room's outputs as its media task sees them: the broadcast encode, started with the
//! first output and stopped with the last, the recording, and the live streams (each tried
//! again by itself when its target drops).

use std::time::Instant;

use super::super::broadcast::Broadcast;
use super::{MediaError, MediaEvent, RoomTask};
use crate::outputs::live::{LiveStream, Target, Tick};

impl RoomTask {
    /// Starts (`Some` file name back) or stops (`None`) the room's recording.
    pub(super) fn set_recording(&mut self, on: bool) -> Result<Option<String>, MediaError> {
        if !on {
            if let Some(rec) = self.recording.take() {
                self.unfeed(&rec.output().feed);
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
        self.broadcast()?;
        let rec = match recordings.start(&self.room) {
            Ok(rec) => rec,
            Err(e) => {
                self.stop_broadcast_if_unused();
                return Err(MediaError::Internal(format!("recording: {e}")));
            }
        };
        self.feed(rec.output().feed.clone());
        tracing::info!(room = %self.room, "recording started");
        let name = rec.name.clone();
        self.recording = Some(rec);
        Ok(Some(name))
    }

    /// Starts a live stream to `target` under `id` (it connects, and reconnects, by itself).
    pub(super) fn start_stream(&mut self, id: String, target: Target) -> Result<(), MediaError> {
        if self.streams.contains_key(&id) {
            return Ok(());
        }
        self.broadcast()?;
        tracing::info!(room = %self.room, stream = %id, target = %target.redacted(), "live stream started");
        let stream = LiveStream::new(target, format!("live-{}-{id}", self.room));
        self.streams.insert(id.clone(), stream);
        self.tick_stream(&id, Instant::now());
        Ok(())
    }

    /// Stops a live stream; unknown ids are no error (it may have just been stopped).
    pub(super) fn stop_stream(&mut self, id: &str) {
        if let Some(stream) = self.streams.remove(id) {
            tracing::info!(room = %self.room, stream = %id, "live stream stopped");
            if let Some(feed) = stream.stop() {
                self.unfeed(&feed);
            }
        }
        self.stop_broadcast_if_unused();
    }

    fn tick_stream(&mut self, id: &str, now: Instant) {
        let Some(stream) = self.streams.get_mut(id) else { return };
        let Tick { state, added, removed } = stream.tick(now);
        let target = stream.target.redacted();
        if let Some(feed) = removed {
            self.unfeed(&feed);
        }
        if let Some(feed) = added {
            self.feed(feed);
        }
        if let Some(state) = state {
            match &state {
                crate::outputs::live::StreamState::Retrying { in_s, error } => {
                    tracing::warn!(room = %self.room, stream = %id, %target, %error, in_s, "live stream dropped; trying again")
                }
                other => tracing::info!(room = %self.room, stream = %id, state = ?other, "live stream"),
            }
            let _ = self.out.send(MediaEvent::Stream { id: id.to_string(), target, state });
        }
    }

    /// Starts or stops the public broadcast over HLS.
    pub(super) fn set_hls(&mut self, on: bool) -> Result<(), MediaError> {
        if !on {
            if let Some(hls) = self.hls.take() {
                self.unfeed(&hls.output().feed);
                hls.stop();
                tracing::info!(room = %self.room, "public broadcast stopped");
            }
            self.stop_broadcast_if_unused();
            return Ok(());
        }
        if self.hls.is_some() {
            return Ok(());
        }
        self.broadcast()?;
        match crate::outputs::hls::Hls::start(&self.room, self.cfg.hls.clone()) {
            Ok(hls) => {
                self.feed(hls.output().feed.clone());
                self.hls = Some(hls);
                tracing::info!(room = %self.room, "public broadcast started");
                Ok(())
            }
            Err(e) => {
                self.stop_broadcast_if_unused();
                Err(MediaError::Internal(format!("public broadcast: {e}")))
            }
        }
    }

    /// The broadcast encode, started on first use.
    fn broadcast(&mut self) -> Result<&Broadcast, MediaError> {
        if self.broadcast.is_none() {
            self.broadcast = Some(Broadcast::start(&mut self.pipe)?);
        }
        Ok(self.broadcast.as_ref().expect("just set"))
    }

    /// An output begins: it gets the broadcast from the next keyframe on (asked for now).
    fn feed(&mut self, feed: std::sync::Arc<crate::outputs::Feed>) {
        if let Some(b) = &mut self.broadcast {
            b.fanout.add(feed);
            b.keyframe(&self.pipe);
        }
    }

    fn unfeed(&self, feed: &std::sync::Arc<crate::outputs::Feed>) {
        if let Some(b) = &self.broadcast {
            b.fanout.remove(feed);
        }
    }

    fn stop_broadcast_if_unused(&mut self) {
        if self.recording.is_none() && self.streams.is_empty() && self.hls.is_none() {
            if let Some(b) = self.broadcast.take() {
                b.stop(&mut self.pipe);
            }
        }
    }

    /// On the housekeeping tick: a recording whose pipeline failed (a full disk) is stopped
    /// and the room's control told; live streams connect, fail and are tried again.
    pub(super) fn check_outputs(&mut self) {
        let failed = self.recording.as_ref().and_then(|r| r.output().failure());
        if let Some(reason) = failed {
            tracing::warn!(room = %self.room, error = %reason, "recording failed");
            let _ = self.set_recording(false);
            let _ = self.out.send(MediaEvent::RecordingStopped { reason });
        }
        let now = Instant::now();
        let ids: Vec<String> = self.streams.keys().cloned().collect();
        for id in ids {
            self.tick_stream(&id, now);
        }
        if let Some(reason) = self.hls.as_ref().and_then(|h| h.output().failure()) {
            tracing::warn!(room = %self.room, error = %reason, "public broadcast failed");
            let _ = self.set_hls(false);
            let _ = self.out.send(MediaEvent::BroadcastStopped { reason });
        }
        if let Some(b) = &mut self.broadcast {
            b.tick(&self.pipe);
        }
    }

    /// The room closes: every output ends (the recording's file stays whole).
    pub(super) fn stop_outputs(&mut self) {
        if self.recording.is_some() {
            let _ = self.set_recording(false);
            let _ = self.out.send(MediaEvent::RecordingStopped { reason: "the room's media closed".into() });
        }
        let ids: Vec<String> = self.streams.keys().cloned().collect();
        for id in ids {
            self.stop_stream(&id);
        }
        let _ = self.set_hls(false);
    }
}
