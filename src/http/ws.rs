//! The control WebSocket `GET /ws/{room}`: one task per connection, typed JSON both ways (see
//! [`crate::protocol`]). Bad frames get an `error` message; the connection stays up. A
//! connection that stops answering pings is closed and its participant leaves.

use std::net::IpAddr;
use std::time::Duration;

use axum::extract::ws::{Message, Utf8Bytes, WebSocket};
use tokio::sync::broadcast;
use tokio::sync::broadcast::error::RecvError;

use crate::control::{Direct, Membership, RoomControl};
use crate::ids::SessionId;
use crate::media::ladder::{Quality, ReceiverCap};
use crate::protocol::{ClientMessage, ErrorCode, QualityChoice, ServerMessage, MAX_FRAME_BYTES};
use crate::room::access::ExternalId;
use crate::room::moderation::ModAction;
use crate::room::participants::{ParticipantId, RoomError};
use crate::secret;

/// The first message must be `join` within this time.
const JOIN_TIMEOUT: Duration = Duration::from_secs(10);
/// Pings keep the connection alive and detect vanished peers...
const PING_INTERVAL: Duration = Duration::from_secs(2);
/// ...which are dropped after this much silence (well inside the 5 s a leave may take).
const SILENCE_LIMIT: Duration = Duration::from_millis(4500);
/// Hard limit for a frame at the WebSocket layer; larger ones close the connection.
pub const MAX_WS_MESSAGE: usize = 64 * 1024;

fn encode(msg: &ServerMessage) -> Message {
    // Serialising our own enums cannot fail: no maps with non-string keys, no custom impls.
    Message::Text(Utf8Bytes::from(serde_json::to_string(msg).expect("server messages serialise")))
}

fn error(e: RoomError) -> ServerMessage {
    ServerMessage::error(e.code, e.message)
}

enum Incoming {
    Message(ClientMessage),
    Refused(ErrorCode, &'static str),
    Alive,
    Closed,
}

fn classify(frame: Option<Result<Message, axum::Error>>) -> Incoming {
    match frame {
        None | Some(Err(_)) | Some(Ok(Message::Close(_))) => Incoming::Closed,
        Some(Ok(Message::Ping(_) | Message::Pong(_))) => Incoming::Alive,
        Some(Ok(Message::Binary(_))) => Incoming::Refused(ErrorCode::Binary, "binary frames are not part of the protocol"),
        Some(Ok(Message::Text(text))) if text.len() > MAX_FRAME_BYTES => {
            Incoming::Refused(ErrorCode::TooLarge, "message larger than 8 KiB")
        }
        Some(Ok(Message::Text(text))) => match serde_json::from_str::<ClientMessage>(text.as_str()) {
            Ok(m) => Incoming::Message(m),
            Err(_) => Incoming::Refused(ErrorCode::BadMessage, "not a known message (see the protocol description)"),
        },
    }
}

/// Says why the room cannot be entered (a typed error the page can show) and closes.
pub async fn refuse(mut socket: WebSocket, code: ErrorCode, message: String) {
    let _ = socket.send(encode(&ServerMessage::error(code, message))).await;
    let _ = socket.send(Message::Close(None)).await;
}

pub async fn serve(mut socket: WebSocket, control: RoomControl, address: IpAddr) {
    let _counted = OpenSocket::counted();
    let Some(membership) = wait_for_join(&mut socket, &control, address).await else { return };
    let id = membership.id;
    run_joined(socket, &control, membership).await;
    control.leave(id).await;
}

/// Checks the room password (if any) for a join from `address`.
async fn password_ok(control: &RoomControl, address: IpAddr, given: Option<String>) -> Result<(), RoomError> {
    let key = secret::address_key(address);
    let Some(hash) = control.password_gate(key).await? else { return Ok(()) };
    let Some(given) = given.filter(|g| !g.is_empty()) else {
        return Err(RoomError { code: ErrorCode::PasswordRequired, message: "this room needs a password".into() });
    };
    if secret::verify(hash, given).await {
        Ok(())
    } else {
        control.password_failed(key).await;
        Err(RoomError { code: ErrorCode::WrongPassword, message: "wrong password".into() })
    }
}

/// Reads until a valid `join`; answers everything else with an error.
async fn wait_for_join(socket: &mut WebSocket, control: &RoomControl, address: IpAddr) -> Option<Membership> {
    let deadline = tokio::time::Instant::now() + JOIN_TIMEOUT;
    loop {
        let frame = tokio::time::timeout_at(deadline, socket.recv()).await.ok()?;
        let reply = match classify(frame) {
            Incoming::Closed => return None,
            Incoming::Alive => continue,
            Incoming::Refused(code, why) => ServerMessage::error(code, why),
            Incoming::Message(ClientMessage::Join { name, password, moderator_key, resume }) => {
                let key = moderator_key.as_deref().map(|k| SessionId::parse(k).ok_or(k));
                // An unreadable previous token is just not one.
                let resume = resume.as_deref().and_then(SessionId::parse);
                let joined = match key {
                    Some(Err(_)) => Err(RoomError { code: ErrorCode::Forbidden, message: "the moderator key is not valid".into() }),
                    // A moderator key is the room's master secret: it needs no password.
                    Some(Ok(key)) => control.join(name, Some(key), resume).await,
                    None => {
                        // Who was let in a moment ago and reloads needs no password again.
                        let resumable = match resume {
                            Some(token) => control.may_resume(token).await,
                            None => false,
                        };
                        let allowed = if resumable { Ok(()) } else { password_ok(control, address, password).await };
                        match allowed {
                            Ok(()) => control.join(name, None, resume).await,
                            Err(e) => Err(e),
                        }
                    }
                };
                match joined {
                    Ok(membership) => {
                        for msg in &membership.greeting {
                            socket.send(encode(msg)).await.ok()?;
                        }
                        return Some(membership);
                    }
                    Err(e) => error(e),
                }
            }
            Incoming::Message(ClientMessage::Ping) => ServerMessage::Pong,
            Incoming::Message(_) => ServerMessage::error(ErrorCode::NotJoined, "send join first"),
        };
        socket.send(encode(&reply)).await.ok()?;
    }
}

/// Counts an open WebSocket for the metrics while it lives.
struct OpenSocket;

impl OpenSocket {
    fn counted() -> Self {
        crate::metrics::metrics().websockets.inc();
        Self
    }
}

impl Drop for OpenSocket {
    fn drop(&mut self) {
        crate::metrics::metrics().websockets.dec();
    }
}

/// A broadcast receiver that may not exist yet (waiting room).
async fn next_event(events: &mut Option<broadcast::Receiver<ServerMessage>>) -> Result<ServerMessage, RecvError> {
    match events {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

async fn run_joined(mut socket: WebSocket, control: &RoomControl, membership: Membership) {
    let Membership { id, mut direct, mut events, .. } = membership;
    let mut ping = tokio::time::interval(PING_INTERVAL);
    let mut last_heard = tokio::time::Instant::now();
    loop {
        tokio::select! {
            frame = socket.recv() => {
                let reply = match classify(frame) {
                    Incoming::Closed => return,
                    Incoming::Alive => None,
                    Incoming::Refused(code, why) => Some(ServerMessage::error(code, why)),
                    Incoming::Message(m) => handle(control, id, m).await,
                };
                last_heard = tokio::time::Instant::now();
                let bye = matches!(reply, Some(ServerMessage::Bye { .. }));
                if let Some(reply) = reply {
                    if socket.send(encode(&reply)).await.is_err() || bye {
                        return;
                    }
                }
            }
            message = direct.recv() => match message {
                Some(Direct::Message(msg)) => {
                    if socket.send(encode(&msg)).await.is_err() {
                        return;
                    }
                }
                Some(Direct::Subscribe(rx)) => events = Some(rx),
                Some(Direct::Close(reason)) => {
                    let _ = socket.send(encode(&ServerMessage::Bye { reason })).await;
                    return;
                }
                None => return,
            },
            event = next_event(&mut events) => match event {
                Ok(msg) => {
                    if socket.send(encode(&msg)).await.is_err() {
                        return;
                    }
                }
                Err(RecvError::Lagged(_)) => {
                    let _ = socket.send(encode(&ServerMessage::Bye { reason: "connection too slow".into() })).await;
                    return;
                }
                Err(RecvError::Closed) => return,
            },
            _ = ping.tick() => {
                if last_heard.elapsed() > SILENCE_LIMIT {
                    tracing::debug!(participant = %id, "control connection silent; closing");
                    return;
                }
                if socket.send(Message::Ping(Default::default())).await.is_err() {
                    return;
                }
            }
        }
    }
}

fn participant(raw: &str) -> Result<ParticipantId, RoomError> {
    ParticipantId::parse(raw).ok_or_else(|| RoomError { code: ErrorCode::BadMessage, message: "no participant with that id".into() })
}

async fn handle(control: &RoomControl, id: ParticipantId, msg: ClientMessage) -> Option<ServerMessage> {
    let action = match msg {
        ClientMessage::Join { .. } => return Some(ServerMessage::error(ErrorCode::AlreadyJoined, "already joined")),
        ClientMessage::Chat { text } => return control.chat(id, text).await.err().map(error),
        ClientMessage::SetMedia { audio_muted, video_muted } => {
            control.set_media(id, audio_muted, video_muted).await;
            return None;
        }
        ClientMessage::SetQuality { quality } => {
            let quality = match quality {
                QualityChoice::Auto => Quality::Auto,
                QualityChoice::Low => Quality::Low,
                QualityChoice::Audio => Quality::AudioOnly,
            };
            control.set_quality(id, ReceiverCap { quality, max_kbps: None }).await;
            return None;
        }
        ClientMessage::RaiseHand { raised } => {
            control.raise_hand(id, raised).await;
            return None;
        }
        ClientMessage::Ping => return Some(ServerMessage::Pong),
        ClientMessage::Leave => return Some(ServerMessage::Bye { reason: "left".into() }),
        ClientMessage::SetPassword { password } => {
            let password = password.unwrap_or_default();
            if password.chars().count() > secret::MAX_PASSWORD_CHARS {
                return Some(ServerMessage::error(ErrorCode::BadText, "password longer than 128 characters"));
            }
            ModAction::SetPassword(secret::hash(password).await)
        }
        ClientMessage::SetWaitingRoom { on } => ModAction::SetWaitingRoom(on),
        ClientMessage::Admit { id } => match participant(&id) {
            Ok(p) => ModAction::Admit(p),
            Err(e) => return Some(error(e)),
        },
        ClientMessage::Refuse { id } => match participant(&id) {
            Ok(p) => ModAction::Refuse(p),
            Err(e) => return Some(error(e)),
        },
        ClientMessage::Mute { id } => match participant(&id) {
            Ok(p) => ModAction::Mute(p),
            Err(e) => return Some(error(e)),
        },
        ClientMessage::MuteAll => ModAction::MuteAll,
        ClientMessage::Remove { id } => match participant(&id) {
            Ok(p) => ModAction::Remove(p),
            Err(e) => return Some(error(e)),
        },
        ClientMessage::EndMeeting => ModAction::End,
        ClientMessage::SetLayout { layout } => ModAction::SetLayout(layout),
        ClientMessage::SetPresentation { on } => ModAction::SetPresentation(on),
        ClientMessage::SetPresenter { id, on } => match participant(&id) {
            Ok(p) => ModAction::SetPresenter(p, on),
            Err(e) => return Some(error(e)),
        },
        ClientMessage::MakeModerator { id } => match participant(&id) {
            Ok(p) => ModAction::MakeModerator(p),
            Err(e) => return Some(error(e)),
        },
        ClientMessage::SetAudienceChat { on } => ModAction::SetAudienceChat(on),
        ClientMessage::AllowMultipleShares { on } => ModAction::AllowMultipleShares(on),
        ClientMessage::CreateKey { kind } => ModAction::CreateKey(kind),
        ClientMessage::RevokeKey { kind } => ModAction::RevokeKey(kind),
        ClientMessage::SetRecording { on } => ModAction::SetRecording(on),
        ClientMessage::StartStream { url } => ModAction::StartStream(url),
        ClientMessage::AddCamera { url, name } => ModAction::AddCamera { url, name },
        ClientMessage::StopStream { id } => ModAction::StopStream(id),
        ClientMessage::SetBroadcast { on } => ModAction::SetBroadcast(on),
        ClientMessage::EndExternal { id } => match ExternalId::parse(&id) {
            Some(x) => ModAction::EndExternal(x),
            None => return Some(ServerMessage::error(ErrorCode::BadMessage, "no external session with that id")),
        },
    };
    control.moderate(id, action).await.err().map(error)
}
