//! The public broadcast over HLS: `GET /hls/{room}/index.m3u8` and its segments, readable by
//! anyone while the room's moderators keep the broadcast on (`404` otherwise), with headers
//! that let a CDN or an nginx cache sit in front: the playlist for a second, segments (named
//! per broadcast, never reused) for an hour.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use super::{room_id, ApiError, AppState};

fn not_live() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "this room is not broadcast publicly now")
}

pub(super) async fn playlist(State(state): State<AppState>, Path(room): Path<String>) -> Result<Response, ApiError> {
    let room = room_id(&room)?;
    let store = state.rooms.hls(&room).ok_or_else(not_live)?;
    let text = store.playlist().ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "the broadcast has just started; its first segment is not ready"))?;
    let mut r = text.into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/vnd.apple.mpegurl"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=1"));
    Ok(r)
}

pub(super) async fn segment(State(state): State<AppState>, Path((room, name)): Path<(String, String)>) -> Result<Response, ApiError> {
    let room = room_id(&room)?;
    let store = state.rooms.hls(&room).ok_or_else(not_live)?;
    let data = store.segment(&name).ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "no such segment (any more)"))?;
    let mut r = Body::from(data.to_vec()).into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("video/mp2t"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=3600, immutable"));
    Ok(r)
}
