//! The outputs API for a room's moderators and their scripts, authorised by the room's
//! moderator key (`Authorization: Bearer <key>`):
//!
//! - `POST /api/rooms/{room}/recording` with `{"on": true|false}`: starts or stops it;
//! - `GET /api/rooms/{room}/recordings`: the room's recordings with size and duration;
//! - `GET /api/rooms/{room}/recordings/{name}`: one of them, as a download;
//! - `POST /api/rooms/{room}/streams` with `{"url": "rtmp://…"|"srt://…"}`: a live stream
//!   (`201 {"id"}`); `GET` lists them with their state; `DELETE …/streams/{id}` stops one;
//! - `POST /api/rooms/{room}/cameras` with `{"url": "rtsp://…"|"srt://…", "name": "Saal"}`: a
//!   hall camera (`201 {"id"}`); `GET` lists them with their state; `DELETE …/cameras/{id}`
//!   ends one.

use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use tokio::io::AsyncReadExt;

use super::{room_id, ApiError, AppState};
use crate::control::{Automated, Automation};
use crate::ids::{RoomId, SessionId};

/// How much of a recording is read per chunk of the download.
const CHUNK: usize = 256 * 1024;

/// The moderator key from the request, checked by the room, which then does `action`.
async fn authorised(state: &AppState, room: &RoomId, headers: &HeaderMap, action: Automation) -> Result<Automated, ApiError> {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or_else(|| ApiError::unauthorized("the room's moderator key is needed (Authorization: Bearer <key>)"))?;
    let key = SessionId::parse(bearer.trim()).ok_or_else(|| ApiError::unauthorized("the moderator key is not valid for this room"))?;
    Ok(state.rooms.automate(room, key, action).await?)
}

/// The file being written, from the room's answer.
fn recording_of(done: Automated) -> Option<String> {
    match done {
        Automated::Recording(file) => file,
        _ => None,
    }
}

/// `201 {"id"}` for what the room started.
fn created(done: Automated) -> Result<Response, ApiError> {
    match done {
        Automated::Started(id) => {
            let mut r = json(serde_json::json!({ "id": id }));
            *r.status_mut() = StatusCode::CREATED;
            Ok(r)
        }
        _ => Err(ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "unexpected answer")),
    }
}

fn json(value: serde_json::Value) -> Response {
    let mut r = value.to_string().into_response();
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Switch {
    on: bool,
}

pub(super) async fn switch(State(state): State<AppState>, Path(room): Path<String>, headers: HeaderMap, body: Bytes) -> Result<Response, ApiError> {
    let room = room_id(&room)?;
    let Switch { on } = serde_json::from_slice(&body).map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, format!("expected {{\"on\": true|false}}: {e}")))?;
    let file = recording_of(authorised(&state, &room, &headers, Automation::Recording(Some(on))).await?);
    Ok(json(serde_json::json!({ "recording": file.is_some(), "file": file })))
}

pub(super) async fn list(State(state): State<AppState>, Path(room): Path<String>, headers: HeaderMap) -> Result<Response, ApiError> {
    let room = room_id(&room)?;
    let current = recording_of(authorised(&state, &room, &headers, Automation::Recording(None)).await?);
    let list = state.rooms.recordings().map(|r| r.list(&room, current.as_deref())).unwrap_or_default();
    Ok(json(serde_json::json!({ "recordings": list })))
}

pub(super) async fn download(State(state): State<AppState>, Path((room, name)): Path<(String, String)>, headers: HeaderMap) -> Result<Response, ApiError> {
    let room = room_id(&room)?;
    authorised(&state, &room, &headers, Automation::Recording(None)).await?;
    let not_found = || ApiError::new(StatusCode::NOT_FOUND, "no recording of this room by that name");
    let path = state.rooms.recordings().and_then(|r| r.path_of(&room, &name)).ok_or_else(not_found)?;
    let file = tokio::fs::File::open(&path).await.map_err(|_| not_found())?;
    let length = file.metadata().await.map(|m| m.len()).ok();
    let stream = futures_util::stream::unfold(file, |mut file| async move {
        let mut chunk = vec![0u8; CHUNK];
        match file.read(&mut chunk).await {
            Ok(0) => None,
            Ok(n) => {
                chunk.truncate(n);
                Some((Ok::<_, std::io::Error>(Bytes::from(chunk)), file))
            }
            Err(e) => Some((Err(e), file)),
        }
    });
    let mut r = Body::from_stream(stream).into_response();
    let headers = r.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("video/mp2t"));
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{name}\"")) {
        headers.insert(header::CONTENT_DISPOSITION, v);
    }
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("private, no-store"));
    if let Some(len) = length {
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    }
    Ok(r)
}

pub(super) async fn broadcast(State(state): State<AppState>, Path(room): Path<String>, headers: HeaderMap, body: Bytes) -> Result<Response, ApiError> {
    let room = room_id(&room)?;
    let Switch { on } = serde_json::from_slice(&body).map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, format!("expected {{\"on\": true|false}}: {e}")))?;
    authorised(&state, &room, &headers, Automation::Broadcast(on)).await?;
    Ok(json(serde_json::json!({ "broadcast": on, "watch": format!("/watch/{room}"), "hls": format!("/hls/{room}/index.m3u8") })))
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct NewStream {
    url: String,
}

pub(super) async fn start_stream(State(state): State<AppState>, Path(room): Path<String>, headers: HeaderMap, body: Bytes) -> Result<Response, ApiError> {
    let room = room_id(&room)?;
    let NewStream { url } =
        serde_json::from_slice(&body).map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, format!("expected {{\"url\": \"rtmp://…\" or \"srt://…\"}}: {e}")))?;
    created(authorised(&state, &room, &headers, Automation::StartStream(url)).await?)
}

pub(super) async fn streams(State(state): State<AppState>, Path(room): Path<String>, headers: HeaderMap) -> Result<Response, ApiError> {
    let room = room_id(&room)?;
    match authorised(&state, &room, &headers, Automation::Streams).await? {
        Automated::Streams(list) => Ok(json(serde_json::json!({ "streams": list }))),
        _ => Err(ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "unexpected answer")),
    }
}

pub(super) async fn stop_stream(State(state): State<AppState>, Path((room, id)): Path<(String, String)>, headers: HeaderMap) -> Result<StatusCode, ApiError> {
    let room = room_id(&room)?;
    authorised(&state, &room, &headers, Automation::StopStream(id)).await?;
    Ok(StatusCode::OK)
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct NewCamera {
    url: String,
    name: String,
}

pub(super) async fn add_camera(State(state): State<AppState>, Path(room): Path<String>, headers: HeaderMap, body: Bytes) -> Result<Response, ApiError> {
    let room = room_id(&room)?;
    let NewCamera { url, name } = serde_json::from_slice(&body)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, format!("expected {{\"url\": \"rtsp://…\" or \"srt://…\", \"name\": \"…\"}}: {e}")))?;
    created(authorised(&state, &room, &headers, Automation::AddCamera { url, name }).await?)
}

pub(super) async fn cameras(State(state): State<AppState>, Path(room): Path<String>, headers: HeaderMap) -> Result<Response, ApiError> {
    let room = room_id(&room)?;
    match authorised(&state, &room, &headers, Automation::Cameras).await? {
        Automated::Cameras(list) => Ok(json(serde_json::json!({ "cameras": list }))),
        _ => Err(ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "unexpected answer")),
    }
}

pub(super) async fn end_camera(State(state): State<AppState>, Path((room, id)): Path<(String, String)>, headers: HeaderMap) -> Result<StatusCode, ApiError> {
    let room = room_id(&room)?;
    authorised(&state, &room, &headers, Automation::EndCamera(id)).await?;
    Ok(StatusCode::OK)
}
