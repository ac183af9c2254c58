//! Wires everything together: GStreamer, profiles, the room registry and the HTTP server.

use std::sync::Arc;

use anyhow::Context;

use crate::cluster::{Cluster, Me};
use crate::config::Config;
use crate::control::RoomRules;
use crate::http::{router, AppState, WebFiles};
use crate::media::MediaConfig;
use crate::outputs::recording::Recordings;
use crate::profiles::{Profiles, VideoCodec};
use crate::rooms::Rooms;

/// How long a shutdown (Ctrl-C, SIGTERM) waits for the rooms to close.
const SHUTDOWN_LIMIT: std::time::Duration = std::time::Duration::from_secs(10);

/// Checks that the GStreamer elements the engine always needs are installed, so a missing
/// package is a start-up error instead of a failed first call.
const REQUIRED_ELEMENTS: &[(&str, &str)] = &[
    ("webrtcbin", "gstreamer1.0-plugins-bad"),
    ("compositor", "gstreamer1.0-plugins-base"),
    ("videoscale", "gstreamer1.0-plugins-base"),
    ("opusenc", "gstreamer1.0-plugins-base"),
    ("opusdec", "gstreamer1.0-plugins-base"),
    ("appsrc", "gstreamer1.0-plugins-base"),
    ("rtpvp8depay", "gstreamer1.0-plugins-good"),
    ("rtph264depay", "gstreamer1.0-plugins-good"),
    ("vp8dec", "gstreamer1.0-plugins-good"),
    ("avdec_h264", "gstreamer1.0-libav"),
    ("h264parse", "gstreamer1.0-plugins-bad"),
    ("dtlssrtpenc", "gstreamer1.0-plugins-bad"),
    ("nicesrc", "gstreamer1.0-nice"),
    ("textoverlay", "gstreamer1.0-x"),
    ("videobalance", "gstreamer1.0-plugins-good"),
    ("avenc_aac", "gstreamer1.0-libav"),
    ("aacparse", "gstreamer1.0-plugins-good"),
    ("mpegtsmux", "gstreamer1.0-plugins-bad"),
];

fn check_elements() -> anyhow::Result<()> {
    let missing: Vec<String> = REQUIRED_ELEMENTS
        .iter()
        .filter(|(e, _)| gst::ElementFactory::find(e).is_none())
        .map(|(e, pkg)| format!("{e} (Debian package {pkg})"))
        .collect();
    anyhow::ensure!(missing.is_empty(), "GStreamer elements missing: {}", missing.join(", "));
    Ok(())
}

/// What `plenum check` does: everything start-up checks, without listening.
pub fn check(config: &Config) -> anyhow::Result<String> {
    let (profiles, media) = prepare(config)?;
    if let Some(tls) = &config.tls {
        tls.load()?;
    }
    Ok(format!(
        "ok: configuration, GStreamer elements and encoder profiles ({}) are usable; VP8 {}, H.264 {}; canvas {}x{}@{}; would listen on {}{}",
        profiles.names().collect::<Vec<_>>().join(", "),
        media.vp8_profile.name,
        media.h264_profile.name,
        config.canvas.width,
        config.canvas.height,
        config.fps,
        config.listen,
        if config.tls.is_some() { " (HTTPS; certificate and key belong together)" } else { "" },
    ) + &match &config.pool {
        Some(p) => format!("; node {} of the pool in {}", p.node_id, p.redis.split('@').next_back().unwrap_or_default()),
        None => String::new(),
    })
}

/// GStreamer, its elements, the profiles: what a room needs, checked before anything starts.
fn prepare(config: &Config) -> anyhow::Result<(Profiles, MediaConfig)> {
    gst::init().context("GStreamer failed to initialise")?;
    check_elements()?;
    let profiles = Profiles::load(config.pipelines_dir.as_deref())?;
    let media = MediaConfig {
        canvas: config.canvas,
        fps: config.fps,
        jitterbuffer_ms: config.jitterbuffer_ms,
        max_tiles: config.max_tiles,
        viewer_codec: config.viewer_codec,
        ice: config.ice.clone(),
        vp8_profile: profiles.select(&config.vp8_profile, VideoCodec::Vp8)?,
        h264_profile: profiles.select(&config.h264_profile, VideoCodec::H264)?,
        recordings: Some(Recordings::new(config.recordings_dir.clone())),
        hls: Default::default(),
    };
    Ok((profiles, media))
}

/// Loads everything, serves until Ctrl-C or SIGTERM, then closes every room.
pub async fn run(config: Config) -> anyhow::Result<()> {
    let (profiles, media) = prepare(&config)?;
    tracing::info!(
        profiles = %profiles.names().collect::<Vec<_>>().join(","),
        canvas = %format!("{}x{}@{}", config.canvas.width, config.canvas.height, config.fps),
        "media engine ready"
    );
    let rules = RoomRules {
        max_participants: config.max_participants,
        max_audience: config.max_audience,
        open_media: config.open_media,
    };
    if config.open_media {
        tracing::warn!("--open-media: WHIP/WHEP clients without a token or key are accepted in every room");
    }
    crate::memory::trim_now_and_then();
    let rooms = Arc::new(Rooms::new(Arc::new(media), config.empty_room_grace, rules, config.max_rooms));
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let addr = listener.local_addr()?;
    let scheme = if config.tls.is_some() { "https" } else { "http" };
    let cluster = match &config.pool {
        Some(pool) => Some(join_pool(pool, scheme, addr, rooms.clone())?),
        None => None,
    };
    let sip = match &config.sip {
        Some(sip) => Some(crate::sip::start(sip.clone(), rooms.clone()).await.context("--sip-listen")?),
        None => None,
    };
    let dial_in = config.sip.as_ref().map(|s| Arc::new(crate::http::DialIn { number: s.number.clone(), secret: s.secret.clone() }));
    let app = router(AppState {
        rooms: rooms.clone(),
        web: WebFiles { dir: config.web_dir.clone() },
        trust_forwarded_for: config.trust_forwarded_for,
        limits: Arc::new(crate::http::limits::AddressLimits::new(config.session_rate, config.sessions_per_address)),
        cluster: cluster.clone(),
        dial_in,
    });
    let drain = config.pool.as_ref().map(|p| p.drain_on_stop).unwrap_or_default();
    let stop = stop_requested(cluster.clone(), rooms.clone(), drain);
    // The address line comes first on standard output, the metrics one after it.
    match config.tls.clone() {
        Some(files) => {
            let listener = crate::http::tls::TlsListener::start(listener, files)?;
            announce("https", addr, config.metrics_listen).await?;
            serve(listener, app, stop).await?;
        }
        None => {
            announce("http", addr, config.metrics_listen).await?;
            serve(listener, app, stop).await?;
        }
    }
    tracing::info!(rooms = rooms.room_count(), "shutting down");
    if let Some(cluster) = &cluster {
        cluster.drain();
    }
    if let Some(sip) = sip {
        // Every caller gets a BYE.
        sip.shutdown().await;
    }
    // Every client is told "server restarting" (and comes back by itself when a server
    // answers again); a room that does not close in time does not hold the exit.
    if tokio::time::timeout(SHUTDOWN_LIMIT, rooms.shutdown()).await.is_err() {
        tracing::warn!(limit_s = SHUTDOWN_LIMIT.as_secs(), "rooms still closing at the shutdown limit; exiting anyway");
    }
    if let Some(cluster) = &cluster {
        // Its rooms are free for other nodes at once (not when their leases run out).
        cluster.leave().await;
    }
    tracing::info!("stopped");
    Ok(())
}

/// Starts this node's part in the pool: its heartbeat and lease renewals.
fn join_pool(pool: &crate::config::PoolConfig, scheme: &str, addr: std::net::SocketAddr, rooms: Arc<Rooms>) -> anyhow::Result<Arc<Cluster>> {
    let url = match &pool.public_url {
        Some(url) => url.clone(),
        None if addr.ip().is_unspecified() => {
            anyhow::bail!("a node listening on {addr} needs --public-url: other nodes send clients there")
        }
        None => format!("{scheme}://{addr}"),
    };
    let cluster = Cluster::new(Me { id: pool.node_id.clone(), url: url.clone() }, &pool.redis).context("--redis")?;
    rooms.keep_with(cluster.clone());
    cluster.start(rooms);
    tracing::info!(node = %pool.node_id, %url, "member of a pool of nodes");
    Ok(cluster)
}

/// Says where the server listens (machine-readable for scripts and tests that start it on port
/// 0), then opens the metrics listener if there is one.
async fn announce(scheme: &str, addr: std::net::SocketAddr, metrics: Option<std::net::SocketAddr>) -> anyhow::Result<()> {
    tracing::info!(%addr, scheme, "listening");
    println!("plenum listening on {scheme}://{addr}");
    match metrics {
        Some(at) => serve_metrics(at).await,
        None => Ok(()),
    }
}

/// Ctrl-C or SIGTERM; in a pool with `--drain-seconds`, then the drain: no new rooms here,
/// the meetings go on (and are served) until they end or the time is up.
async fn stop_requested(cluster: Option<Arc<Cluster>>, rooms: Arc<Rooms>, drain: std::time::Duration) {
    shutdown_signal().await;
    let Some(cluster) = cluster.filter(|_| !drain.is_zero()) else { return };
    cluster.drain();
    tracing::info!(seconds = drain.as_secs(), rooms = rooms.room_count(), "stopping: draining first");
    let deadline = tokio::time::Instant::now() + drain;
    while rooms.room_count() > 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
}

/// Serves the router on a plain or TLS listener until `stop`.
async fn serve<L>(listener: L, app: axum::Router, stop: impl std::future::Future<Output = ()> + Send + 'static) -> std::io::Result<()>
where
    L: axum::serve::Listener<Addr = std::net::SocketAddr>,
    crate::http::Peer: for<'a> axum::extract::connect_info::Connected<axum::serve::IncomingStream<'a, L>>,
{
    axum::serve(listener, app.into_make_service_with_connect_info::<crate::http::Peer>())
        .with_graceful_shutdown(stop)
        .await
}

/// `GET /metrics` on its own address (`--metrics-listen`), never on the public one.
async fn serve_metrics(at: std::net::SocketAddr) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(at).await.with_context(|| format!("cannot listen for metrics on {at}"))?;
    let addr = listener.local_addr()?;
    tracing::info!(%addr, "metrics listening");
    println!("plenum metrics on http://{addr}/metrics");
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, crate::http::metrics_router()).await {
            tracing::warn!(error = %e, "the metrics listener stopped");
        }
    });
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
}
