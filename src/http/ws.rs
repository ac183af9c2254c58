//! The control WebSocket `GET /ws/{room}`: one task per connection, typed JSON both ways (see
//! [`crate::protocol`]). Bad frames get an `error` message; the connection stays up. A
//! connection that stops answering pings is closed and its participant leaves.

use std::time::Duration;

use axum::extract::ws::{Message, Utf8Bytes, WebSocket};
use tokio::sync::broadcast::error::RecvError;

use crate::control::RoomControl;
use crate::protocol::{ClientMessage, ErrorCode, ServerMessage, MAX_FRAME_BYTES};
use crate::room::participants::ParticipantId;

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

pub async fn serve(mut socket: WebSocket, control: RoomControl) {
    let Some((id, events)) = wait_for_join(&mut socket, &control).await else { return };
    run_joined(socket, &control, id, events).await;
    control.leave(id).await;
}

/// Reads until a valid `join`; answers everything else with an error.
async fn wait_for_join(socket: &mut WebSocket, control: &RoomControl) -> Option<(ParticipantId, Events)> {
    let deadline = tokio::time::Instant::now() + JOIN_TIMEOUT;
    loop {
        let frame = tokio::time::timeout_at(deadline, socket.recv()).await.ok()?;
        let reply = match classify(frame) {
            Incoming::Closed => return None,
            Incoming::Alive => continue,
            Incoming::Refused(code, why) => ServerMessage::error(code, why),
            Incoming::Message(ClientMessage::Join { name }) => match control.join(name).await {
                Ok(membership) => {
                    for msg in &membership.greeting {
                        socket.send(encode(msg)).await.ok()?;
                    }
                    // The participant list follows through the broadcast receiver.
                    return Some((membership.id, membership.events));
                }
                Err(e) => ServerMessage::error(e.code, e.message),
            },
            Incoming::Message(ClientMessage::Ping) => ServerMessage::Pong,
            Incoming::Message(_) => ServerMessage::error(ErrorCode::NotJoined, "send join first"),
        };
        socket.send(encode(&reply)).await.ok()?;
    }
}

type Events = tokio::sync::broadcast::Receiver<ServerMessage>;

async fn run_joined(mut socket: WebSocket, control: &RoomControl, id: ParticipantId, mut events: Events) {
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
                if matches!(reply, Some(ServerMessage::Bye { .. })) {
                    let _ = socket.send(encode(reply.as_ref().expect("matched Some"))).await;
                    return;
                }
                if let Some(reply) = reply {
                    if socket.send(encode(&reply)).await.is_err() {
                        return;
                    }
                }
            }
            event = events.recv() => match event {
                Ok(msg) => {
                    let bye = matches!(msg, ServerMessage::Bye { .. });
                    if socket.send(encode(&msg)).await.is_err() || bye {
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

async fn handle(control: &RoomControl, id: ParticipantId, msg: ClientMessage) -> Option<ServerMessage> {
    match msg {
        ClientMessage::Join { .. } => Some(ServerMessage::error(ErrorCode::AlreadyJoined, "already joined")),
        ClientMessage::Chat { text } => control.chat(id, text).await.err().map(|e| ServerMessage::error(e.code, e.message)),
        ClientMessage::SetMedia { audio_muted, video_muted } => {
            control.set_media(id, audio_muted, video_muted).await;
            None
        }
        ClientMessage::Ping => Some(ServerMessage::Pong),
        ClientMessage::Leave => Some(ServerMessage::Bye { reason: "left".into() }),
    }
}
