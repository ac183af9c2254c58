//! The HTTP edge: WHIP (RFC 9725) ingest, WHEP egress, health. Errors are mapped to a status and
//! a one-line reason here and nowhere else.

mod error;
mod hls;
pub mod limits;
mod outputs;
pub mod tls;
mod web;
mod ws;

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::connect_info::Connected;
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::serve::IncomingStream;
use axum::Router;

pub use error::ApiError;
pub use web::WebFiles;

use crate::ids::{RoomId, SessionId};
use crate::media::ladder::{Quality, ReceiverCap};
use crate::media::sdp::MAX_OFFER_BYTES;
use crate::cluster::Placement;
use crate::rooms::{Caller, Rooms};

const SDP: &str = "application/sdp";
const TRICKLE: &str = "application/trickle-ice-sdpfrag";

#[derive(Clone)]
pub struct AppState {
    pub rooms: Arc<Rooms>,
    pub web: WebFiles,
    /// Take client addresses from `X-Forwarded-For` (a reverse proxy in front).
    pub trust_forwarded_for: bool,
    /// New sessions and open WebSockets per client address.
    pub limits: Arc<limits::AddressLimits>,
    /// This node's pool, if it is in one (`--redis`).
    pub cluster: Option<Arc<crate::cluster::Cluster>>,
    /// Phone dial-in, if it is on (`--sip-listen`): the number shown, and the secret the
    /// rooms' PINs come from.
    pub dial_in: Option<Arc<DialIn>>,
}

pub struct DialIn {
    pub number: Option<String>,
    pub secret: String,
}

impl AppState {
    /// Where the room is served: here, or on another node of the pool.
    async fn placement(&self, room: &RoomId) -> Placement {
        match &self.cluster {
            Some(cluster) => cluster.place(room, self.rooms.is_live(room)).await,
            None => Placement::Here,
        }
    }

    /// This node's own address in the pool (session URLs are absolute there: a client that
    /// was redirected here must send its DELETE and PATCH here too).
    fn base_url(&self) -> &str {
        self.cluster.as_ref().map(|c| c.me().url.as_str()).unwrap_or("")
    }
}

/// A WHIP/WHEP request for a room that lives on another node: `307` to the same path there
/// (the client sends the same offer again).
fn redirect(url: &str, uri: &axum::http::Uri) -> Response {
    let target = format!("{url}{}", uri.path_and_query().map(|p| p.as_str()).unwrap_or("/"));
    let mut r = StatusCode::TEMPORARY_REDIRECT.into_response();
    if let Ok(v) = HeaderValue::from_str(&target) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    r
}

/// The TCP peer of a connection, plain or TLS (what handlers get as `ConnectInfo`).
#[derive(Clone, Copy, Debug)]
pub struct Peer(pub std::net::SocketAddr);

impl Connected<IncomingStream<'_, tokio::net::TcpListener>> for Peer {
    fn connect_info(stream: IncomingStream<'_, tokio::net::TcpListener>) -> Self {
        Peer(*stream.remote_addr())
    }
}

impl Connected<IncomingStream<'_, tls::TlsListener>> for Peer {
    fn connect_info(stream: IncomingStream<'_, tls::TlsListener>) -> Self {
        Peer(*stream.remote_addr())
    }
}

/// The client's address: the TCP peer, or behind a trusted proxy the last `X-Forwarded-For`
/// entry (the one the proxy itself appended; earlier ones are the client's to forge).
fn client_address(headers: &HeaderMap, peer: std::net::SocketAddr, trust_forwarded_for: bool) -> std::net::IpAddr {
    if trust_forwarded_for {
        let forwarded = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|a| a.trim().parse::<std::net::IpAddr>().ok())
            .next_back();
        if let Some(address) = forwarded {
            return address;
        }
    }
    peer.ip()
}

/// Which of the two symmetric protocols a request belongs to.
#[derive(Clone, Copy)]
enum Flow {
    Whip,
    Whep,
}

impl Flow {
    fn path(self) -> &'static str {
        match self {
            Flow::Whip => "whip",
            Flow::Whep => "whep",
        }
    }
}

/// The whole HTTP surface; tests call it without binding a port.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/ws/{room}", get(websocket))
        .route("/", get(web::landing))
        .route("/r/{room}", get(web::room_page))
        .route("/assets/{*path}", get(web::asset))
        .route("/api/rooms/{room}", get(room_info).options(preflight))
        .merge(room_resources(&state))
        .route("/watch/{room}", get(web::watch_page))
        .route("/whip/{room}", post(whip_post).options(preflight))
        .route("/whep/{room}", post(whep_post).options(preflight))
        .route("/whip/{room}/{session}", axum::routing::delete(end_session).patch(trickle).options(preflight))
        .route("/whep/{room}/{session}", axum::routing::delete(end_session).patch(trickle).options(preflight))
        .fallback(web::not_found)
        .layer(axum::middleware::map_response(cors))
        .layer(axum::middleware::map_response(count_response))
        .with_state(state)
}

/// What a room's node serves of it once it is open: the outputs API and the HLS broadcast. In
/// a pool, asked of another node, they are redirected to the room's node (a 307 keeps the
/// method and body; an HLS player follows it and fetches the segments there).
fn room_resources(state: &AppState) -> Router<AppState> {
    Router::new()
        .route("/api/rooms/{room}/recording", post(outputs::switch).options(preflight))
        .route("/api/rooms/{room}/recordings", get(outputs::list).options(preflight))
        .route("/api/rooms/{room}/recordings/{name}", get(outputs::download).options(preflight))
        .route("/api/rooms/{room}/streams", get(outputs::streams).post(outputs::start_stream).options(preflight))
        .route("/api/rooms/{room}/streams/{id}", axum::routing::delete(outputs::stop_stream).options(preflight))
        .route("/api/rooms/{room}/broadcast", post(outputs::broadcast).options(preflight))
        .route("/api/rooms/{room}/cameras", get(outputs::cameras).post(outputs::add_camera).options(preflight))
        .route("/api/rooms/{room}/cameras/{id}", axum::routing::delete(outputs::end_camera).options(preflight))
        .route("/hls/{room}/index.m3u8", get(hls::playlist))
        .route("/hls/{room}/{segment}", get(hls::segment))
        .route_layer(axum::middleware::from_fn_with_state(state.clone(), to_owner))
}

/// Sends a request for an open room's resources on to the room's node, if that is another
/// node of the pool (nothing is claimed: a room open nowhere is answered here).
async fn to_owner(State(state): State<AppState>, request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    if let Some(cluster) = &state.cluster {
        let room = request.uri().path().split('/').nth(if request.uri().path().starts_with("/hls/") { 2 } else { 3 });
        let room = room.and_then(|r| RoomId::parse(r).ok()).filter(|r| !state.rooms.is_live(r));
        if let (Some(room), false) = (room, request.method() == axum::http::Method::OPTIONS) {
            if let Some(url) = cluster.owner_elsewhere(&room).await {
                return redirect(&url, request.uri());
            }
        }
    }
    next.run(request).await
}

/// Every answer counted by status, for the metrics.
async fn count_response(response: Response) -> Response {
    crate::metrics::metrics().http_responses.get_or_create(&crate::metrics::StatusLabels { status: response.status().as_u16() }).inc();
    response
}

/// The metrics listener's only page (`--metrics-listen`).
pub fn metrics_router() -> Router {
    Router::new().route(
        "/metrics",
        get(|| async {
            let mut r = crate::metrics::metrics().render().into_response();
            r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"));
            r
        }),
    )
}

/// WHIP and WHEP are used from pages on other origins (RFC 9725 §4.1), and so are a pool's
/// nodes: every answer says so and exposes the headers a client needs.
async fn cors(mut response: Response) -> Response {
    let h = response.headers_mut();
    h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
    h.insert(header::ACCESS_CONTROL_ALLOW_METHODS, HeaderValue::from_static("GET, POST, DELETE, PATCH, OPTIONS"));
    h.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static("Authorization, Content-Type, If-Match"),
    );
    h.insert(
        header::ACCESS_CONTROL_EXPOSE_HEADERS,
        HeaderValue::from_static("Location, Link, ETag, Accept-Patch, Accept-Post"),
    );
    response
}

async fn preflight() -> Response {
    let mut r = StatusCode::NO_CONTENT.into_response();
    r.headers_mut().insert("accept-post", HeaderValue::from_static(SDP));
    r
}

fn room_id(raw: &str) -> Result<RoomId, ApiError> {
    RoomId::parse(raw).map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e.to_string()))
}

fn session_id(raw: &str) -> Result<SessionId, ApiError> {
    SessionId::parse(raw).ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "no such session"))
}

fn require_content_type(headers: &HeaderMap, wanted: &'static str) -> Result<(), ApiError> {
    let ok = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case(wanted));
    if ok {
        Ok(())
    } else {
        Err(ApiError::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, format!("Content-Type must be {wanted}")))
    }
}

/// Reads at most `MAX_OFFER_BYTES`; larger bodies are refused without reading them whole.
async fn read_body(headers: &HeaderMap, body: Body) -> Result<Bytes, ApiError> {
    let too_large = || ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, format!("body exceeds {} KiB", MAX_OFFER_BYTES / 1024));
    let declared = headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > MAX_OFFER_BYTES) {
        return Err(too_large());
    }
    axum::body::to_bytes(body, MAX_OFFER_BYTES).await.map_err(|_| too_large())
}

/// What an external client calls itself in the room's list: `?label=`, else a name its
/// `User-Agent` gives away (OBS, GStreamer), else nothing (the page says "external viewer").
fn label(headers: &HeaderMap, given: Option<&str>) -> Result<Option<String>, ApiError> {
    if let Some(given) = given {
        return crate::room::access::clean_label(given).map(Some).map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e.message));
    }
    let agent = headers.get(header::USER_AGENT).and_then(|v| v.to_str().ok()).unwrap_or("").to_ascii_lowercase();
    Ok([("obs", "OBS"), ("gstreamer", "GStreamer")]
        .iter()
        .find(|(needle, _)| agent.contains(needle))
        .map(|(_, name)| name.to_string()))
}

/// `Authorization: Bearer <participant token | room key | room password | publisher session>`.
/// A new session for `address`: within its rate and its number of open sessions (the slot goes
/// with the session and is given back when it ends), or `429` with the reason.
fn session_slot(state: &AppState, address: std::net::IpAddr) -> Result<limits::Slot, ApiError> {
    state.limits.new_session(address).map_err(|wait| ApiError::too_many("too many new sessions from this address", wait))?;
    state
        .limits
        .open_session(address)
        .ok_or_else(|| ApiError::too_many("too many open sessions from this address", std::time::Duration::from_secs(10)))
}

fn caller(headers: &HeaderMap, address: std::net::IpAddr, label: Option<String>, cap: ReceiverCap, slot: limits::Slot) -> Result<Caller, ApiError> {
    let bearer = match headers.get(header::AUTHORIZATION) {
        None => None,
        Some(value) => {
            let token = value
                .to_str()
                .ok()
                .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
                .map(str::trim)
                .filter(|t| !t.is_empty() && t.chars().count() <= crate::secret::MAX_PASSWORD_CHARS)
                .ok_or_else(|| ApiError::unauthorized("Authorization must be 'Bearer <token or password>'"))?;
            Some(token.to_string())
        }
    };
    Ok(Caller { bearer, address, label, cap, hold: Some(std::sync::Arc::new(slot)) })
}

#[derive(serde::Deserialize, Default)]
struct SessionQuery {
    /// `?screen=1`: this WHIP session is a shared screen, not the camera.
    #[serde(default)]
    screen: Option<String>,
    /// `?label=Hall camera`: how an external client is listed in the room.
    #[serde(default)]
    label: Option<String>,
    /// WHEP `?quality=auto|low|audio`: the receiver's own choice of picture.
    #[serde(default)]
    quality: Option<String>,
    /// WHEP `?max_kbps=N`: at most this much in all (audio included).
    #[serde(default)]
    max_kbps: Option<String>,
}

impl SessionQuery {
    fn cap(&self) -> Result<ReceiverCap, ApiError> {
        let bad = |what: &str| ApiError::new(StatusCode::BAD_REQUEST, what.to_string());
        let quality = match self.quality.as_deref() {
            None | Some("auto") => Quality::Auto,
            Some("low") => Quality::Low,
            Some("audio") => Quality::AudioOnly,
            Some(_) => return Err(bad("quality must be auto, low or audio")),
        };
        let max_kbps = match self.max_kbps.as_deref() {
            None => None,
            Some(v) => Some(v.parse::<u32>().ok().filter(|k| (1..=100_000).contains(k)).ok_or_else(|| bad("max_kbps must be a number from 1 to 100000"))?),
        };
        Ok(ReceiverCap { quality, max_kbps })
    }
}

fn created(base: &str, flow: Flow, room: &RoomId, answer: crate::media::Answer) -> Response {
    let location = format!("{base}/{}/{}/{}", flow.path(), room, answer.session);
    let mut r = (StatusCode::CREATED, answer.sdp).into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(SDP));
    if let Ok(v) = HeaderValue::from_str(&location) {
        h.insert(header::LOCATION, v);
    }
    h.insert("accept-patch", HeaderValue::from_static(TRICKLE));
    r
}

async fn websocket(
    State(state): State<AppState>,
    Path(room): Path<String>,
    ConnectInfo(Peer(peer)): ConnectInfo<Peer>,
    headers: HeaderMap,
    upgrade: axum::extract::WebSocketUpgrade,
) -> Result<Response, ApiError> {
    let room = room_id(&room)?;
    use crate::protocol::ErrorCode;
    // A room that cannot open here is said on the socket, so that the page can show why (or,
    // in a pool, join where the room lives: WebSockets follow no redirects).
    let control = match state.placement(&room).await {
        Placement::There { url, .. } => Err((ErrorCode::Moved, url)),
        Placement::Here => match state.rooms.control(&room) {
            Ok(control) => Ok(control),
            Err(e @ crate::media::MediaError::ServerFull(_)) => Err((ErrorCode::ServerFull, e.to_string())),
            Err(e) => return Err(e.into()),
        },
    };
    let address = client_address(&headers, peer, state.trust_forwarded_for);
    let counted = state
        .limits
        .open_socket(address)
        .ok_or_else(|| ApiError::too_many("too many open connections from this address", std::time::Duration::from_secs(10)))?;
    Ok(upgrade
        .max_message_size(ws::MAX_WS_MESSAGE)
        .max_frame_size(ws::MAX_WS_MESSAGE)
        .on_upgrade(move |socket| async move {
            match control {
                Ok(control) => ws::serve(socket, control, address).await,
                Err((code, reason)) => ws::refuse(socket, code, reason).await,
            }
            drop(counted);
        }))
}

/// What a visitor may know before joining: password needed, waiting room, presentation mode.
async fn room_info(State(state): State<AppState>, Path(room): Path<String>) -> Result<Response, ApiError> {
    let room = room_id(&room)?;
    if let Placement::There { node, url } = state.placement(&room).await {
        // Its settings are known where it lives: the client asks there.
        let body = serde_json::json!({ "node": { "id": node, "url": url }, "nodes": state.cluster.as_ref().map(|c| c.peer_urls()) });
        let mut r = body.to_string().into_response();
        r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        return Ok(r);
    }
    let mut body = match state.rooms.info(&room).await {
        Some(s) => serde_json::json!({
            "live": true,
            "password": s.password,
            "waiting_room": s.waiting_room,
            "presentation": s.presentation,
            "recording": s.recording,
            "streaming": s.streaming,
            "broadcast": s.broadcast,
        }),
        None => serde_json::json!({ "live": false }),
    };
    if let Some(dial_in) = &state.dial_in {
        // Callers with the PIN of a room with a password wait for a moderator to let them in.
        let pin = crate::sip::room_pin(&dial_in.secret, &room);
        body["dial_in"] = serde_json::json!({ "number": dial_in.number, "pin": pin });
    }
    if let Some(cluster) = &state.cluster {
        body["node"] = serde_json::json!({ "id": cluster.me().id, "url": cluster.me().url });
        body["nodes"] = serde_json::json!(cluster.peer_urls());
    }
    let mut r = body.to_string().into_response();
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    Ok(r)
}

async fn whip_post(
    State(state): State<AppState>,
    Path(room): Path<String>,
    Query(query): Query<SessionQuery>,
    ConnectInfo(Peer(address)): ConnectInfo<Peer>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let room = room_id(&room)?;
    if let Placement::There { url, .. } = state.placement(&room).await {
        return Ok(redirect(&url, &uri));
    }
    let address = client_address(&headers, address, state.trust_forwarded_for);
    let slot = session_slot(&state, address)?;
    require_content_type(&headers, SDP)?;
    let label = label(&headers, query.label.as_deref())?;
    let caller = caller(&headers, address, label, ReceiverCap::default(), slot)?;
    let body = read_body(&headers, body).await?;
    let screen = query.screen.is_some_and(|v| v == "1" || v == "true");
    let answer = state.rooms.publish(&room, &body, caller, screen).await?;
    Ok(created(state.base_url(), Flow::Whip, &room, answer))
}

async fn whep_post(
    State(state): State<AppState>,
    Path(room): Path<String>,
    Query(query): Query<SessionQuery>,
    ConnectInfo(Peer(address)): ConnectInfo<Peer>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let room = room_id(&room)?;
    if let Placement::There { url, .. } = state.placement(&room).await {
        return Ok(redirect(&url, &uri));
    }
    let address = client_address(&headers, address, state.trust_forwarded_for);
    let slot = session_slot(&state, address)?;
    require_content_type(&headers, SDP)?;
    let label = label(&headers, query.label.as_deref())?;
    let cap = query.cap()?;
    let caller = caller(&headers, address, label, cap, slot)?;
    let body = read_body(&headers, body).await?;
    let answer = state.rooms.view(&room, &body, caller).await?;
    Ok(created(state.base_url(), Flow::Whep, &room, answer))
}

async fn end_session(
    State(state): State<AppState>,
    Path((room, session)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let room = room_id(&room)?;
    let session = session_id(&session)?;
    state.rooms.end(&room, session).await?;
    Ok(StatusCode::OK)
}

/// Trickle ICE (RFC 9725 §4.3): candidates from an `application/trickle-ice-sdpfrag` body.
async fn trickle(
    State(state): State<AppState>,
    Path((room, session)): Path<(String, String)>,
    method: Method,
    headers: HeaderMap,
    body: Body,
) -> Result<StatusCode, ApiError> {
    debug_assert_eq!(method, Method::PATCH);
    let room = room_id(&room)?;
    let session = session_id(&session)?;
    require_content_type(&headers, TRICKLE)?;
    let body = read_body(&headers, body).await?;
    let text = std::str::from_utf8(&body).map_err(|_| ApiError::new(StatusCode::BAD_REQUEST, "body is not UTF-8"))?;
    let candidates: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with("a=candidate:"))
        .map(str::to_string)
        .collect();
    state.rooms.trickle(&room, session, candidates).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwarded_addresses_count_only_behind_a_trusted_proxy() {
        let peer: std::net::SocketAddr = "10.0.0.1:4000".parse().unwrap();
        let mut headers = HeaderMap::new();
        headers.insert("x-forwarded-for", HeaderValue::from_static("6.6.6.6, 203.0.113.9"));
        assert_eq!(client_address(&headers, peer, false).to_string(), "10.0.0.1");
        assert_eq!(client_address(&headers, peer, true).to_string(), "203.0.113.9", "the proxy's own entry");
        assert_eq!(client_address(&HeaderMap::new(), peer, true).to_string(), "10.0.0.1");
    }
}
