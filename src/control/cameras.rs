//! Hall cameras as the room's control task sees them: added by a moderator (over the
//! WebSocket, or by a script with the moderator key), listed for everyone as an external
//! publisher with its name and connection state, ended like any external session.

use super::ControlTask;
use crate::ids::SessionId;
use crate::inputs::camera::{CameraSource, CameraState};
use crate::protocol::{ErrorCode, ExternalInfo};
use crate::room::access::clean_label;
use crate::room::participants::RoomError;

/// Hall cameras a room may pull at once (each is a decode on the server).
pub const MAX_CAMERAS: usize = 4;

fn refused(code: ErrorCode, message: impl Into<String>) -> RoomError {
    RoomError { code, message: message.into() }
}

impl ControlTask {
    /// Adds a hall camera pulled from `url`, shown as `name`; its listed id (`x…`) back.
    pub(super) async fn add_camera(&mut self, url: &str, name: &str) -> Result<String, RoomError> {
        let source = CameraSource::parse(url).map_err(|e| refused(ErrorCode::BadMessage, e))?;
        let name = clean_label(name)?;
        if self.state.cameras().len() >= MAX_CAMERAS {
            return Err(refused(ErrorCode::Unavailable, format!("at most {MAX_CAMERAS} hall cameras per room")));
        }
        let media = self.media(true).map_err(|e| refused(ErrorCode::Unavailable, e.to_string()))?;
        let session = SessionId::random();
        let redacted = source.redacted();
        media.add_camera(session, source, name.clone()).await.map_err(|e| refused(ErrorCode::Unavailable, e.to_string()))?;
        let id = self.state.add_camera(session, name);
        if let Some(info) = self.state.cameras().into_iter().find(|c| c.id == id.to_string()) {
            tracing::info!(room = %self.room, external = %info.id, source = %redacted, "hall camera added");
            let _ = self.broadcast.send(crate::protocol::ServerMessage::ExternalJoined { session: info });
        }
        self.changed().await;
        Ok(id.to_string())
    }

    /// What the media says a camera's connection does now: everyone's list shows it.
    pub(super) async fn camera_changed(&mut self, session: SessionId, state: CameraState) {
        if self.state.set_camera_state(session, state) {
            self.changed().await;
        }
    }

    /// Hall cameras end with the meeting: once nobody has been in the room for the grace
    /// period (a reload does not end them), nothing is pulled into it any more.
    pub(super) async fn end_cameras_of_an_empty_room(&mut self) {
        let empty_long_enough = self.state.is_empty() && self.empty_since.is_some_and(|t| t.elapsed() >= self.empty_grace);
        if !empty_long_enough {
            return;
        }
        for id in self.state.cameras().into_iter().filter_map(|c| crate::room::access::ExternalId::parse(&c.id)) {
            if let Some(session) = self.state.external_session(id) {
                tracing::info!(room = %self.room, external = %id, "hall camera ended: the room is empty");
                self.end_external(session).await;
            }
        }
    }

    /// The hall cameras, for a script.
    pub(super) fn cameras(&self) -> Vec<ExternalInfo> {
        self.state.cameras()
    }
}
