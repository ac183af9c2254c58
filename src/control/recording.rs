//! The room's recording as its control task sees it: started and stopped by a moderator (over
//! the WebSocket, or by a script with the moderator key), shown to everyone as long as it
//! runs (`room.settings.recording`: the consent banner), ended when the media says so.

use super::{ControlTask, Direct};
use crate::ids::SessionId;
use crate::media::MediaError;
use crate::protocol::{ErrorCode, ServerMessage};
use crate::room::participants::{ParticipantId, RoomError};

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

    /// A script with the moderator key.
    pub(super) async fn automate(&mut self, key: SessionId, on: Option<bool>) -> Result<Option<String>, RoomError> {
        if !self.state.is_moderator_key(key) {
            return Err(RoomError { code: ErrorCode::Forbidden, message: "the moderator key is not valid for this room".into() });
        }
        match on {
            Some(on) => {
                tracing::info!(room = %self.room, on, "recording switched by the API");
                self.set_recording(on).await.map_err(|e| RoomError { code: ErrorCode::Unavailable, message: e.to_string() })
            }
            None => Ok(self.recording.clone()),
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
}
