//! The control WebSocket's messages, in one place. JSON objects with a `type` field.
//!
//! Client → server:
//! - `{"type":"join","name":"Ada","password":"…","moderator_key":"…"}` — first message (password
//!   and key optional); the answer is `joined`, then `waiting` if a moderator must admit first.
//! - `{"type":"chat","text":"Hallo"}` — to everyone in the room.
//! - `{"type":"set_media","audio_muted":true,"video_muted":false}` — shown on the tile and in
//!   the list; the browser itself stops sending (track.enabled = false).
//! - `{"type":"raise_hand","raised":true}`.
//! - `{"type":"set_quality","quality":"auto"|"low"|"audio"}` — what this participant's views
//!   of the room receive from now on (data saver: the lowest picture, or sound only).
//! - `{"type":"leave"}`, `{"type":"ping"}`.
//! - Moderators only (others get `error` `forbidden`): `set_password {password|null}`,
//!   `set_waiting_room {on}`, `admit {id}`, `refuse {id}`, `mute {id}`, `mute_all`,
//!   `remove {id}`, `end_meeting`, `set_layout {layout: "grid"|"speaker"}`,
//!   `set_presentation {on}`, `set_presenter {id, on}`, `set_audience_chat {on}`,
//!   `allow_multiple_shares {on}`, `create_key {kind}` (a key for external publishers or
//!   viewers; the answer `key` goes to this moderator only), `revoke_key {kind}` (the key stops
//!   working and the sessions it let in end), `end_external {id}` (ends one external session),
//!   `set_recording {on}` (the room's recording; everyone sees `room.settings.recording`),
//!   `start_stream {url}` (`rtmp[s]://host/app/key` or `srt://host:port?streamid=…&passphrase=…`;
//!   everyone sees `room.settings.streaming`, moderators get `streams`), `stop_stream {id}`,
//!   `set_broadcast {on}` (public HLS at `/watch/{room}`; everyone sees `room.settings.broadcast`),
//!   `add_camera {url, name}` (a hall camera, `rtsp://…` or `srt://…`, listed for everyone as an
//!   external publisher with `access: "camera"` and its `state`; ended with `end_external`).
//!
//! Server → client:
//! - `joined` with the participant's `id` and `token`. The token authorises WHIP and WHEP
//!   (`Authorization: Bearer <token>`): the WHIP session becomes this participant's camera and
//!   microphone, the WHEP session their view of the room, without their own voice.
//! - `participants` (the whole list, on every change, with the `external` WHIP/WHEP sessions
//!   that are not participants and the presentation-mode `audience` count), `room` (the
//!   settings), `external_joined`/`external_left` (an external session came or went: the page
//!   announces it), `chat` (one message), `chat_history` (on admission), `pong`, `bye` (the
//!   server ends the session), and `error` with a stable `code`.
//! - To one participant: `waiting` (in the waiting room), `admitted`, `muted` (a moderator
//!   muted you), `speak {allowed}` (presentation mode: you may publish now / no longer);
//!   to moderators: `lobby {waiting: [{id, name}]}`; to the moderator who made it:
//!   `key {kind, key}`, shown once (the server keeps only a hash).
//!
//! Limits: a frame is at most [`MAX_FRAME_BYTES`]; chat text at most [`MAX_CHAT_CHARS`]
//! characters; names 1–[`MAX_NAME_CHARS`] characters.

use serde::{Deserialize, Serialize};

use crate::room::layout::LayoutMode;

pub const MAX_FRAME_BYTES: usize = 8 * 1024;
pub const MAX_CHAT_CHARS: usize = 1000;
pub const MAX_NAME_CHARS: usize = 40;

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ClientMessage {
    Join {
        name: String,
        #[serde(default)]
        password: Option<String>,
        #[serde(default)]
        moderator_key: Option<String>,
        /// The token this client had before a reload: lets it back in without waiting again.
        #[serde(default)]
        resume: Option<String>,
    },
    Chat { text: String },
    SetMedia { audio_muted: bool, video_muted: bool },
    RaiseHand { raised: bool },
    SetQuality { quality: QualityChoice },
    Leave,
    Ping,
    SetPassword { password: Option<String> },
    SetWaitingRoom { on: bool },
    Admit { id: String },
    Refuse { id: String },
    Mute { id: String },
    MuteAll,
    Remove { id: String },
    EndMeeting,
    SetLayout { layout: LayoutMode },
    SetPresentation { on: bool },
    SetPresenter { id: String, on: bool },
    MakeModerator { id: String },
    SetAudienceChat { on: bool },
    AllowMultipleShares { on: bool },
    CreateKey { kind: ExternalKind },
    RevokeKey { kind: ExternalKind },
    EndExternal { id: String },
    SetRecording { on: bool },
    StartStream { url: String },
    StopStream { id: String },
    SetBroadcast { on: bool },
    AddCamera { url: String, name: String },
}

/// A receiver's own choice of picture: as much as its link carries, the lowest rung, or none.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum QualityChoice {
    Auto,
    Low,
    Audio,
}

/// An external client: one that sends (OBS, a hall encoder) or receives (a hall display, a WHEP
/// player) without being a participant. Also the kind of a room key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ExternalKind {
    Publisher,
    Viewer,
}

/// How an external session got in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ExternalAccess {
    /// A room key a moderator made.
    Key,
    /// The room password.
    Password,
    /// The server runs with `--open-media`.
    Open,
    /// A viewer presenting an external publisher's session id (its return feed).
    Publisher,
    /// A hall camera a moderator added (pulled by the server).
    Camera,
}

/// One external WHIP or WHEP session, as everyone in the room sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExternalInfo {
    /// `x7`: for moderators to end it (never the session id, which is the client's secret).
    pub id: String,
    pub kind: ExternalKind,
    /// What the client calls itself (`?label=`, or "OBS"/"GStreamer" from its User-Agent).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    pub access: ExternalAccess,
    /// A hall camera's connection (connecting, live, or retrying after it dropped).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<StreamState>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LobbyEntry {
    pub id: String,
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomSettings {
    /// Whether a password is set (never the password itself).
    pub password: bool,
    pub waiting_room: bool,
    pub presentation: bool,
    pub audience_chat: bool,
    pub layout: LayoutMode,
    pub multiple_shares: bool,
    /// Whether a key for external publishers exists (never the key itself).
    pub publisher_key: bool,
    /// Whether a key for external viewers exists.
    pub viewer_key: bool,
    /// The room is being recorded: every client shows it for as long as it lasts.
    pub recording: bool,
    /// The room is streamed live (a moderator started a stream; it may be reconnecting).
    pub streaming: bool,
    /// The room is broadcast publicly: anyone may watch `/watch/{room}` (HLS).
    pub broadcast: bool,
}

/// A live stream of the room, as its moderators see it (the target without its key).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamInfo {
    pub id: String,
    pub target: String,
    #[serde(flatten)]
    pub state: StreamState,
}

/// What a live stream is doing, as moderators see it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum StreamState {
    /// Started, nothing confirmed yet.
    Connecting,
    /// Pictures go out and the target has not failed.
    Live,
    /// The target failed; tried again in `in_s` seconds.
    Retrying { in_s: u64, error: String },
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
    pub moderator: bool,
    pub hand_raised: bool,
    /// Seen and heard in presentation mode.
    pub presenter: bool,
    /// How the room's picture reaches this participant when less than the full picture: a
    /// rung of the ladder ("360p") or "audio" (sound only), because its link is weak or it
    /// chose the data saver. Absent: the full picture (or nothing known).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub receiving: Option<String>,
    /// Dialled in by phone (sound only). Absent: not.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub phone: bool,
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
    Joined {
        id: String,
        token: String,
        name: String,
        room: String,
        moderator: bool,
        /// Only for whoever opened the room: the key that makes its holder a moderator. Shown
        /// once; the server keeps it in memory only.
        #[serde(skip_serializing_if = "Option::is_none")]
        moderator_key: Option<String>,
        /// In the waiting room until a moderator admits (then `admitted`).
        waiting: bool,
    },
    Waiting,
    Admitted,
    Muted,
    Speak { allowed: bool },
    Lobby { waiting: Vec<LobbyEntry> },
    Room { settings: RoomSettings },
    Participants {
        participants: Vec<ParticipantInfo>,
        /// WHIP/WHEP sessions that are not participants.
        external: Vec<ExternalInfo>,
        /// Presentation mode: how many participants watch as audience (0 otherwise).
        audience: usize,
    },
    ExternalJoined { session: ExternalInfo },
    ExternalLeft { session: ExternalInfo },
    /// A new room key, to the moderator who made it; shown once.
    Key { kind: ExternalKind, key: String },
    /// To moderators: the room's live streams and what each is doing, on every change.
    Streams { streams: Vec<StreamInfo> },
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
    /// The server holds as many rooms as it may (`--max-rooms`); the room cannot open now.
    ServerFull,
    /// A moderator's action by someone who is not one, or something the room does not allow.
    Forbidden,
    /// In the waiting room: not yet admitted.
    Waiting,
    PasswordRequired,
    WrongPassword,
    /// Media without a participant token or a key from a moderator (HTTP 401).
    Unauthorized,
    /// The server could not do it (a recording that cannot be written).
    Unavailable,
    /// What the request names does not exist (a live stream id that is not running; HTTP 404).
    NotFound,
    /// The room lives on another node of the pool: the message is that node's URL (join there).
    Moved,
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
        assert_eq!(m, ClientMessage::Join { name: "Ada".into(), password: None, moderator_key: None, resume: None });
        let m: ClientMessage = serde_json::from_str(r#"{"type":"set_layout","layout":"speaker"}"#).unwrap();
        assert_eq!(m, ClientMessage::SetLayout { layout: LayoutMode::Speaker });
        assert_eq!(serde_json::from_str::<ClientMessage>(r#"{"type":"mute_all"}"#).unwrap(), ClientMessage::MuteAll);
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
