//! The browser client: files from `web/`, compiled into the binary (or read from `--web-dir`
//! while developing). Nothing is loaded from anywhere else; the content security policy says so
//! to the browser too.

use std::path::PathBuf;

use axum::extract::{Path, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use super::{ApiError, AppState};

/// (path below `web/`, content type, contents)
const FILES: &[(&str, &str, &[u8])] = &[
    ("index.html", "text/html; charset=utf-8", include_bytes!("../../web/index.html")),
    ("room.html", "text/html; charset=utf-8", include_bytes!("../../web/room.html")),
    ("watch.html", "text/html; charset=utf-8", include_bytes!("../../web/watch.html")),
    ("error.html", "text/html; charset=utf-8", include_bytes!("../../web/error.html")),
    ("error.js", "text/javascript; charset=utf-8", include_bytes!("../../web/error.js")),
    ("watch.js", "text/javascript; charset=utf-8", include_bytes!("../../web/watch.js")),
    ("icons.js", "text/javascript; charset=utf-8", include_bytes!("../../web/icons.js")),
    ("ui.js", "text/javascript; charset=utf-8", include_bytes!("../../web/ui.js")),
    ("moderation.js", "text/javascript; charset=utf-8", include_bytes!("../../web/moderation.js")),
    ("devices.js", "text/javascript; charset=utf-8", include_bytes!("../../web/devices.js")),
    ("broadcast-player.js", "text/javascript; charset=utf-8", include_bytes!("../../web/broadcast-player.js")),
    ("style.css", "text/css; charset=utf-8", include_bytes!("../../web/style.css")),
    ("landing.js", "text/javascript; charset=utf-8", include_bytes!("../../web/landing.js")),
    ("room.js", "text/javascript; charset=utf-8", include_bytes!("../../web/room.js")),
    ("protocol.js", "text/javascript; charset=utf-8", include_bytes!("../../web/protocol.js")),
    ("uplink.js", "text/javascript; charset=utf-8", include_bytes!("../../web/uplink.js")),
    ("i18n.js", "text/javascript; charset=utf-8", include_bytes!("../../web/i18n.js")),
    ("i18n/de.js", "text/javascript; charset=utf-8", include_bytes!("../../web/i18n/de.js")),
    ("i18n/en.js", "text/javascript; charset=utf-8", include_bytes!("../../web/i18n/en.js")),
];

const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
media-src 'self' blob: mediastream:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

/// Where the web files come from.
#[derive(Clone, Debug, Default)]
pub struct WebFiles {
    pub dir: Option<PathBuf>,
}

impl WebFiles {
    async fn get(&self, path: &str) -> Option<(&'static str, Vec<u8>)> {
        let (_, kind, embedded) = FILES.iter().find(|(p, _, _)| *p == path)?;
        match &self.dir {
            Some(dir) => tokio::fs::read(dir.join(path)).await.ok().map(|b| (*kind, b)),
            None => Some((*kind, embedded.to_vec())),
        }
    }
}

/// The page's content security policy. In a pool the page may talk to the other nodes too
/// (the room's own node, or another after a node is gone): their origins are added to
/// `connect-src`, as `http(s)` and as `ws(s)`, and to `media-src` (the watch page's HLS is
/// redirected to the room's node).
async fn csp(state: &AppState) -> std::borrow::Cow<'static, str> {
    let Some(cluster) = &state.cluster else { return CSP.into() };
    let (mut connect, mut media) = (Vec::new(), Vec::new());
    for url in cluster.fresh_peer_urls().await {
        let Some((scheme, rest)) = url.split_once("://") else { continue };
        let host = rest.split('/').next().unwrap_or_default();
        let ws = if scheme == "https" { "wss" } else { "ws" };
        connect.push(format!("{scheme}://{host} {ws}://{host}"));
        media.push(format!("{scheme}://{host}"));
    }
    CSP.replace("connect-src 'self'", &format!("connect-src 'self' {}", connect.join(" ")))
        .replace("media-src 'self'", &format!("media-src 'self' {}", media.join(" ")))
        .into()
}

async fn file(state: &AppState, path: &str) -> Response {
    match state.web.get(path).await {
        Some((kind, body)) => served(StatusCode::OK, kind, body, &csp(state).await),
        None => ApiError::new(StatusCode::NOT_FOUND, "no such file").into_response(),
    }
}

/// A file of the client with the headers every one gets.
fn served(status: StatusCode, kind: &'static str, body: Vec<u8>, csp: &str) -> Response {
    let mut r = (status, body).into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_str(csp).unwrap_or_else(|_| HeaderValue::from_static(CSP)));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert("permissions-policy", HeaderValue::from_static("camera=(self), microphone=(self), display-capture=(self)"));
    r
}

pub async fn landing(State(state): State<AppState>) -> Response {
    file(&state, "index.html").await
}

pub async fn room_page(State(state): State<AppState>, Path(room): Path<String>) -> Response {
    match super::room_id(&room) {
        Ok(_) => file(&state, "room.html").await,
        Err(_) => error_page(&state, StatusCode::BAD_REQUEST, "bad_room_name").await,
    }
}

/// The public watch page of a room's broadcast.
pub async fn watch_page(State(state): State<AppState>, Path(room): Path<String>) -> Response {
    match super::room_id(&room) {
        Ok(_) => file(&state, "watch.html").await,
        Err(_) => error_page(&state, StatusCode::BAD_REQUEST, "bad_room_name").await,
    }
}

/// A page in the client's style for an address that leads nowhere (`kind`: what the page
/// says, one of the client's texts), with `status`.
pub async fn error_page(state: &AppState, status: StatusCode, kind: &'static str) -> Response {
    match state.web.get("error.html").await {
        Some((content, body)) => {
            let body = String::from_utf8_lossy(&body).replace(r#"data-error="page_not_found""#, &format!(r#"data-error="{kind}""#));
            served(status, content, body.into_bytes(), CSP)
        }
        None => ApiError::new(status, kind).into_response(),
    }
}

/// Anything else: a page for browsers (they ask for HTML), a line of text for programs.
pub async fn not_found(State(state): State<AppState>, headers: axum::http::HeaderMap) -> Response {
    let wants_page = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).is_some_and(|a| a.contains("text/html"));
    if wants_page {
        error_page(&state, StatusCode::NOT_FOUND, "page_not_found").await
    } else {
        ApiError::new(StatusCode::NOT_FOUND, "no such endpoint").into_response()
    }
}

pub async fn asset(State(state): State<AppState>, Path(path): Path<String>) -> Response {
    file(&state, &path).await
}
