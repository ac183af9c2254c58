//! The room's outputs as its control task sees them: the recording and the live streams,
//! started and stopped by moderators (over the WebSocket, or by a script with the moderator
//! key), shown to everyone as long as they run (`room.settings.recording` and `.streaming`:
//! the consent banner), and what each stream is doing to the moderators (`streams`).

use super::kept::Running;
use super::{ControlTask, Direct};
use crate::ids::SessionId;
use crate::media::MediaError;
use crate::outputs::live::{StreamState, Target};
use crate::protocol::{ErrorCode, ServerMessage, StreamInfo};
use crate::room::participants::{ParticipantId, RoomError};

/// Live streams a room may run at once.
pub const MAX_STREAMS: usize = 5;

/// What a script with the moderator key asks.
#[derive(Debug)]
pub enum Automation {
    /// Start or stop the recording, or (`None`) only say which file is being written.
    Recording(Option<bool>),
    StartStream(String),
    StopStream(String),
    Streams,
    /// The public broadcast (HLS) on or off.
    Broadcast(bool),
    /// A hall camera from a URL, shown with a name.
    AddCamera { url: String, name: String },
    Cameras,
    /// Ends the hall camera listed under this id.
    EndCamera(String),
}

/// What it gets back.
#[derive(Debug)]
pub enum Automated {
    /// The file being written, if any.
    Recording(Option<String>),
    /// The new stream's id.
    Started(String),
    Stopped,
    Streams(Vec<StreamInfo>),
    Cameras(Vec<crate::protocol::ExternalInfo>),
}

fn refused(code: ErrorCode, message: impl Into<String>) -> RoomError {
    RoomError { code, message: message.into() }
}

impl ControlTask {
    /// Starts or stops the recording in the media; the room's state follows what the media did.
    async fn set_recording(&mut self, on: bool) -> Result<Option<String>, MediaError> {
        let result = match self.media(on) {
            Ok(media) => media.record(on).await,
            // No media and asked to stop: nothing records.
            Err(_) => Ok(None),
        };
        if let Ok(file) = &result {
            let was = self.recording.is_some();
            self.recording = file.clone();
            self.state.set_recording(file.is_some());
            if was != file.is_some() {
                self.changed().await;
            }
        }
        result
    }

    /// A moderator's `set_recording`; a failure is told to that moderator.
    pub(super) async fn record(&mut self, on: bool, by: ParticipantId) {
        if let Err(e) = self.set_recording(on).await {
            tracing::warn!(room = %self.room, error = %e, "recording did not start");
            let message = ServerMessage::error(ErrorCode::Unavailable, format!("the recording could not start: {e}"));
            self.send_to(by, Direct::Message(message));
        }
    }

    /// The media ended the recording by itself (a failed disk, the media closed).
    pub(super) async fn recording_stopped(&mut self, reason: String) {
        tracing::warn!(room = %self.room, %reason, "recording ended by itself");
        self.recording = None;
        self.state.set_recording(false);
        let message = ServerMessage::error(ErrorCode::Unavailable, format!("the recording stopped: {reason}"));
        for id in self.state.ids().into_iter().filter(|id| self.state.is_moderator(*id)) {
            self.send_to(id, Direct::Message(message.clone()));
        }
        self.changed().await;
    }

    /// Starts a live stream to `url`; its id back.
    pub(super) async fn start_stream(&mut self, url: &str) -> Result<String, RoomError> {
        let target = Target::parse(url).map_err(|e| refused(ErrorCode::BadMessage, e))?;
        if self.streams.len() >= MAX_STREAMS {
            return Err(refused(ErrorCode::Unavailable, format!("at most {MAX_STREAMS} live streams per room")));
        }
        let media = self.media(true).map_err(|e| refused(ErrorCode::Unavailable, e.to_string()))?;
        self.last_stream += 1;
        let id = self.last_stream.to_string();
        let info = StreamInfo { id: id.clone(), target: target.redacted(), state: StreamState::Connecting };
        media.start_stream(id.clone(), target).await.map_err(|e| refused(ErrorCode::Unavailable, e.to_string()))?;
        self.streams.entry(id.clone()).or_insert(info);
        self.stream_urls.insert(id.clone(), url.trim().to_string());
        self.broadcast_with_first_stream().await;
        self.streams_changed().await;
        Ok(id)
    }

    /// A room without a password that goes live is public anyway: its broadcast over HLS
    /// (`/watch/{room}`) starts with the first live stream and ends with the last. A room with
    /// a password keeps its HLS off unless a moderator turns the public broadcast on.
    async fn broadcast_with_first_stream(&mut self) {
        if self.streams.len() != 1 || self.state.settings().broadcast || self.state.has_password() {
            return;
        }
        match self.public_broadcast(true).await {
            Ok(()) => self.broadcast_with_streams = true,
            Err(e) => tracing::warn!(room = %self.room, error = %e.message, "the broadcast did not start with the live stream"),
        }
    }

    pub(super) async fn stop_stream(&mut self, id: &str) {
        self.stream_urls.remove(id);
        if self.streams.remove(id).is_none() {
            return;
        }
        if let Some(media) = self.media.as_ref().filter(|m| !m.is_closed()) {
            media.stop_stream(id.to_string()).await;
        }
        if self.streams.is_empty() && std::mem::take(&mut self.broadcast_with_streams) {
            let _ = self.public_broadcast(false).await;
        }
        self.streams_changed().await;
    }

    /// What the media says a stream does now.
    pub(super) fn stream_changed(&mut self, id: String, target: String, state: StreamState) {
        let Some(info) = self.streams.get_mut(&id) else { return };
        *info = StreamInfo { id, target, state };
        self.tell_moderators_streams();
    }

    async fn streams_changed(&mut self) {
        let streaming = !self.streams.is_empty();
        if self.state.settings().streaming != streaming {
            self.state.set_streaming(streaming);
            self.changed().await;
        }
        self.tell_moderators_streams();
    }

    fn tell_moderators_streams(&self) {
        let streams: Vec<StreamInfo> = self.streams.values().cloned().collect();
        for id in self.state.ids().into_iter().filter(|id| self.state.is_moderator(*id)) {
            self.send_to(id, Direct::Message(ServerMessage::Streams { streams: streams.clone() }));
        }
    }

    /// The public broadcast (HLS) on or off; the room's state follows what the media did.
    pub(super) async fn public_broadcast(&mut self, on: bool) -> Result<(), RoomError> {
        // Turned on or off by a moderator, it is theirs from now on, not the streams'.
        self.broadcast_with_streams = false;
        let result = match self.media(on) {
            Ok(media) => media.public_broadcast(on).await,
            Err(_) => Ok(()),
        };
        result.map_err(|e| refused(ErrorCode::Unavailable, format!("the public broadcast could not start: {e}")))?;
        if self.state.settings().broadcast != on {
            tracing::info!(room = %self.room, on, "public broadcast");
            self.state.set_broadcast(on);
            self.changed().await;
        }
        Ok(())
    }

    /// The media ended the public broadcast by itself.
    pub(super) async fn broadcast_stopped(&mut self, reason: String) {
        tracing::warn!(room = %self.room, %reason, "public broadcast ended by itself");
        self.state.set_broadcast(false);
        let message = ServerMessage::error(ErrorCode::Unavailable, format!("the public broadcast stopped: {reason}"));
        for id in self.state.ids().into_iter().filter(|id| self.state.is_moderator(*id)) {
            self.send_to(id, Direct::Message(message.clone()));
        }
        self.changed().await;
    }

    /// The outputs running now, as they would be started again on another node.
    pub(super) fn running(&self) -> Running {
        let settings = self.state.settings();
        Running {
            streams: self.stream_urls.values().cloned().collect(),
            broadcast: settings.broadcast && !self.broadcast_with_streams,
            recording: self.recording.is_some(),
        }
    }

    /// Starts again what the room's last node ran (it died or drained while the outputs were
    /// on; everyone was told then and is told again, by the room's state, when they join).
    pub(super) async fn resume_outputs(&mut self, running: Running) {
        tracing::info!(room = %self.room, streams = running.streams.len(), broadcast = running.broadcast, recording = running.recording, "outputs of the room's last node start again here");
        if running.recording {
            if let Err(e) = self.set_recording(true).await {
                tracing::warn!(room = %self.room, error = %e, "the recording did not start again");
            }
        }
        for url in &running.streams {
            if let Err(e) = self.start_stream(url).await {
                tracing::warn!(room = %self.room, error = %e.message, "a live stream did not start again");
            }
        }
        if running.broadcast {
            if let Err(e) = self.public_broadcast(true).await {
                tracing::warn!(room = %self.room, error = %e.message, "the public broadcast did not start again");
            }
        }
    }

    /// A script with the moderator key.
    pub(super) async fn automate(&mut self, key: SessionId, action: Automation) -> Result<Automated, RoomError> {
        if !self.state.is_moderator_key(key) {
            return Err(refused(ErrorCode::Forbidden, "the moderator key is not valid for this room"));
        }
        let unavailable = |e: MediaError| refused(ErrorCode::Unavailable, e.to_string());
        match action {
            Automation::Recording(Some(on)) => {
                tracing::info!(room = %self.room, on, "recording switched by the API");
                self.set_recording(on).await.map(Automated::Recording).map_err(unavailable)
            }
            Automation::Recording(None) => Ok(Automated::Recording(self.recording.clone())),
            Automation::StartStream(url) => self.start_stream(&url).await.map(Automated::Started),
            Automation::StopStream(id) => {
                if !self.streams.contains_key(&id) {
                    return Err(refused(ErrorCode::NotFound, "no live stream of this room with that id"));
                }
                self.stop_stream(&id).await;
                Ok(Automated::Stopped)
            }
            Automation::Streams => Ok(Automated::Streams(self.streams.values().cloned().collect())),
            Automation::Broadcast(on) => self.public_broadcast(on).await.map(|_| Automated::Stopped),
            Automation::AddCamera { url, name } => self.add_camera(&url, &name).await.map(Automated::Started),
            Automation::Cameras => Ok(Automated::Cameras(self.cameras())),
            Automation::EndCamera(id) => {
                let session = crate::room::access::ExternalId::parse(&id)
                    .filter(|_| self.cameras().iter().any(|c| c.id == id))
                    .and_then(|x| self.state.external_session(x))
                    .ok_or_else(|| refused(ErrorCode::NotFound, "no hall camera of this room with that id"))?;
                self.end_external(session).await;
                Ok(Automated::Stopped)
            }
        }
    }
}
