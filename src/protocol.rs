//! The control WebSocket's messages, in one place. JSON objects with a `type` field.
//!
//! Client → server:
//! - `{"type":"join","name":"Ada"}` — first message; the answer is `joined`.
//! - `{"type":"chat","text":"Hallo"}` — to everyone in the room.
//! - `{"type":"set_media","audio_muted":true,"video_muted":false}` — shown on the tile and in
//!   the list; the browser itself stops sending (track.enabled = false).
//! - `{"type":"leave"}`, `{"type":"ping"}`.
//!
//! Server → client:
//! - `joined` with the participant's `id` and `token`. The token authorises WHIP and WHEP
//!   (`Authorization: Bearer <token>`): the WHIP session becomes this participant's camera and
//!   microphone, the WHEP session their view of the room, without their own voice.
//! - `participants` (the whole list, on every change), `chat` (one message), `chat_history`
//!   (on join), `pong`, `bye` (the server ends the session), and `error` with a stable `code`.
//!
//! Limits: a frame is at most [`MAX_FRAME_BYTES`]; chat text at most [`MAX_CHAT_CHARS`]
//! characters; names 1–[`MAX_NAME_CHARS`] characters.

use serde::{Deserialize, Serialize};

pub const MAX_FRAME_BYTES: usize = 8 * 1024;
pub const MAX_CHAT_CHARS: usize = 1000;
pub const MAX_NAME_CHARS: usize = 40;

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ClientMessage {
    Join { name: String },
    Chat { text: String },
    SetMedia { audio_muted: bool, video_muted: bool },
    Leave,
    Ping,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParticipantInfo {
    pub id: String,
    pub name: String,
    pub audio_muted: bool,
    pub video_muted: bool,
    pub speaking: bool,
    /// Whether camera/microphone reach the server (a WHIP session is live).
    pub publishing: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatLine {
    pub from: String,
    pub name: String,
    pub text: String,
    /// Unix time in milliseconds.
    pub at: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMessage {
    Joined { id: String, token: String, name: String, room: String },
    Participants { participants: Vec<ParticipantInfo> },
    Chat(ChatLine),
    ChatHistory { messages: Vec<ChatLine> },
    Pong,
    Bye { reason: String },
    Error { code: ErrorCode, message: String },
}

/// Machine-readable error codes; `message` says the same for people.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// Not JSON, or not an object with a known `type` and the right fields.
    BadMessage,
    /// The frame was larger than [`MAX_FRAME_BYTES`].
    TooLarge,
    /// Binary frames are not part of the protocol.
    Binary,
    NotJoined,
    AlreadyJoined,
    BadName,
    BadText,
    RateLimited,
    RoomFull,
}

impl ServerMessage {
    pub fn error(code: ErrorCode, message: impl Into<String>) -> Self {
        ServerMessage::Error { code, message: message.into() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_messages_parse_from_their_documented_form() {
        let m: ClientMessage = serde_json::from_str(r#"{"type":"join","name":"Ada"}"#).unwrap();
        assert_eq!(m, ClientMessage::Join { name: "Ada".into() });
        let m: ClientMessage = serde_json::from_str(r#"{"type":"set_media","audio_muted":true,"video_muted":false}"#).unwrap();
        assert_eq!(m, ClientMessage::SetMedia { audio_muted: true, video_muted: false });
        assert_eq!(serde_json::from_str::<ClientMessage>(r#"{"type":"leave"}"#).unwrap(), ClientMessage::Leave);
        assert!(serde_json::from_str::<ClientMessage>(r#"{"type":"shout"}"#).is_err());
        assert!(serde_json::from_str::<ClientMessage>(r#"{"type":"chat"}"#).is_err());
    }

    #[test]
    fn server_messages_have_a_type_tag() {
        let json = serde_json::to_string(&ServerMessage::error(ErrorCode::RateLimited, "slow down")).unwrap();
        assert_eq!(json, r#"{"type":"error","code":"rate_limited","message":"slow down"}"#);
        let line = ChatLine { from: "p1".into(), name: "Ada".into(), text: "hi".into(), at: 5 };
        let json = serde_json::to_string(&ServerMessage::Chat(line)).unwrap();
        assert!(json.starts_with(r#"{"type":"chat","from":"p1""#), "{json}");
    }
}
