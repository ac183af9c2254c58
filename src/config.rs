//! Command line, environment (`PLENUM_*`) and the optional TOML file, resolved into one config.
//!
//! Precedence: command line, then environment, then `--config` file, then the defaults below.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use serde::Deserialize;

use crate::profiles::VideoCodec;
use crate::room::layout::Size;

pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
pub const DEFAULT_CANVAS: Size = Size { width: 1280, height: 720 };
pub const DEFAULT_FPS: u32 = 30;
/// Tiles in the grid before the least recent speakers leave the picture (5 x 5).
pub const DEFAULT_MAX_TILES: usize = 25;
pub const DEFAULT_VP8_PROFILE: &str = "vp8";
pub const DEFAULT_H264_PROFILE: &str = "h264-x264";
/// Receive jitterbuffer. webrtcbin's own default (200 ms) adds too much delay for conversation.
pub const DEFAULT_JITTERBUFFER_MS: u32 = 60;
pub const DEFAULT_EMPTY_ROOM_GRACE: Duration = Duration::from_secs(5);
pub const DEFAULT_RECORDINGS_DIR: &str = "recordings";
/// Rooms open at once: far more than a machine can mix (README's capacity table), so that only
/// abuse meets it.
pub const DEFAULT_MAX_ROOMS: usize = 200;
/// New WHIP/WHEP sessions one address may start per second, after its burst.
pub const DEFAULT_SESSION_RATE: f64 = 5.0;
/// WHIP/WHEP sessions open at once per address: a participant has up to three (camera,
/// screen, the mix), so this matches the 200 WebSockets an address may hold, with room to spare.
pub const DEFAULT_SESSIONS_PER_ADDRESS: usize = 400;

#[derive(Parser, Debug)]
#[command(name = "plenum", version, about = "Self-hosted MCU video conferencing on GStreamer")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// How log lines look on standard error: `text` for people, `json` (one object a line)
    /// for journald, Loki and the like. What is logged is the same (`PLENUM_LOG` filters).
    #[arg(long, global = true, env = "PLENUM_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the conference server.
    Serve(ServeArgs),
    /// Check the configuration (file, environment, flags), the GStreamer elements and the
    /// encoder profiles without starting: exit 0 with a summary, or 1 with the reason.
    Check(ServeArgs),
    /// Drain a node of a pool (for an upgrade): it takes no new rooms from now on, its
    /// meetings go on until the deadline, then their participants move to other nodes.
    Drain(DrainArgs),
}

#[derive(Args, Debug)]
pub struct DrainArgs {
    /// The pool's Redis, as the nodes are given it.
    #[arg(long, env = "PLENUM_REDIS")]
    pub redis: String,
    /// The node to drain (its `--node-id`).
    #[arg(long, env = "PLENUM_NODE_ID")]
    pub node_id: String,
    /// Seconds its meetings may go on before their participants are moved.
    #[arg(long, default_value_t = 300)]
    pub within: u64,
    /// Take the drain back: the node takes new rooms again.
    #[arg(long)]
    pub undo: bool,
}

/// Every flag is optional here so that the config file can fill what the command line leaves out.
#[derive(Args, Debug, Default)]
pub struct ServeArgs {
    /// TOML file with any of the settings below (keys as the long flags, with '_' for '-').
    #[arg(long, env = "PLENUM_CONFIG")]
    pub config: Option<PathBuf>,
    /// Address and port for HTTP [default: 127.0.0.1:8080]. Port 0 picks a free one.
    #[arg(long, env = "PLENUM_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// Size of the composite picture, WIDTHxHEIGHT [default: 1280x720].
    #[arg(long, env = "PLENUM_CANVAS")]
    pub canvas: Option<CanvasArg>,
    /// Frame rate of the composite [default: 30].
    #[arg(long, env = "PLENUM_FPS")]
    pub fps: Option<u32>,
    /// Encoder profile (from pipelines/) for VP8 viewers [default: vp8].
    #[arg(long, env = "PLENUM_VP8_PROFILE")]
    pub vp8_profile: Option<String>,
    /// Encoder profile (from pipelines/) for H.264 viewers [default: h264-x264].
    #[arg(long, env = "PLENUM_H264_PROFILE")]
    pub h264_profile: Option<String>,
    /// Load encoder profiles from this directory instead of the built-in ones.
    #[arg(long, env = "PLENUM_PIPELINES_DIR")]
    pub pipelines_dir: Option<PathBuf>,
    /// Receive jitterbuffer latency in milliseconds [default: 60].
    #[arg(long, env = "PLENUM_JITTERBUFFER_MS")]
    pub jitterbuffer_ms: Option<u32>,
    /// STUN server, stun://host:port.
    #[arg(long, env = "PLENUM_STUN_SERVER")]
    pub stun_server: Option<String>,
    /// TURN server, turn(s)://user:pass@host:port (repeatable; comma-separated in the environment).
    #[arg(long, env = "PLENUM_TURN_SERVER", value_delimiter = ',')]
    pub turn_server: Vec<String>,
    /// Public IP address to announce in ICE candidates (server behind 1:1 NAT).
    #[arg(long, env = "PLENUM_PUBLIC_IP")]
    pub public_ip: Option<IpAddr>,
    /// Gather ICE candidates only on these local addresses (repeatable) [default: all].
    #[arg(long, env = "PLENUM_ICE_ADDRESS", value_delimiter = ',')]
    pub ice_address: Vec<IpAddr>,
    /// UDP port range for media, MIN-MAX [default: any].
    #[arg(long, env = "PLENUM_RTP_PORTS")]
    pub rtp_ports: Option<PortRange>,
    /// Codec for viewers whose browser offers both: h264 (x264 costs a fraction of libvpx's
    /// CPU for the composite) or vp8. Viewers without it get the other [default: h264].
    #[arg(long, env = "PLENUM_VIEWER_CODEC", value_parser = parse_codec)]
    pub viewer_codec: Option<VideoCodec>,
    /// Most camera tiles in the grid; beyond that the participants who spoke least recently
    /// are heard but not shown (and their video is not decoded) [default: 25].
    #[arg(long, env = "PLENUM_MAX_TILES")]
    pub max_tiles: Option<usize>,
    /// Most participants in a room [default: 50].
    #[arg(long, env = "PLENUM_MAX_PARTICIPANTS")]
    pub max_participants: Option<usize>,
    /// Most receive-only audience members in presentation mode [default: 500].
    #[arg(long, env = "PLENUM_MAX_AUDIENCE")]
    pub max_audience: Option<usize>,
    /// Behind a reverse proxy: take the client address (for the password rate limit) from the
    /// last entry of `X-Forwarded-For`, which the proxy appends. Only with a proxy in front.
    #[arg(long, env = "PLENUM_TRUST_FORWARDED_FOR")]
    pub trust_forwarded_for: bool,
    /// Labs and load tests only: accept WHIP/WHEP clients without a participant token or a
    /// room key in every room (they are still listed for everyone in the room). Never gets
    /// past a room password, the waiting room or presentation mode.
    #[arg(long, env = "PLENUM_OPEN_MEDIA")]
    pub open_media: bool,
    /// Serve the browser client from this directory instead of the built-in copy (development).
    #[arg(long, env = "PLENUM_WEB_DIR")]
    pub web_dir: Option<PathBuf>,
    /// Seconds an empty room is kept before its pipeline is torn down [default: 5].
    #[arg(long, env = "PLENUM_EMPTY_ROOM_GRACE_SECS")]
    pub empty_room_grace_secs: Option<u64>,
    /// Where moderators' recordings are written (created when the first one starts)
    /// [default: recordings, in the working directory].
    #[arg(long, env = "PLENUM_RECORDINGS_DIR")]
    pub recordings_dir: Option<PathBuf>,
    /// Serve Prometheus metrics (`GET /metrics`) on this separate address, e.g.
    /// `127.0.0.1:9090` [default: off; never on the public listener].
    #[arg(long, env = "PLENUM_METRICS_LISTEN")]
    pub metrics_listen: Option<SocketAddr>,
    /// New WHIP/WHEP sessions one address may start per second, after a burst of six
    /// seconds' worth (at least 30); beyond that `429` [default: 5].
    #[arg(long, env = "PLENUM_SESSION_RATE")]
    pub session_rate: Option<f64>,
    /// Rooms open at once; a request that would open one more gets `503` [default: 200].
    #[arg(long, env = "PLENUM_MAX_ROOMS")]
    pub max_rooms: Option<usize>,
    /// WHIP/WHEP sessions one address may have open at once; beyond that `429` until one
    /// ends [default: 400].
    #[arg(long, env = "PLENUM_SESSIONS_PER_ADDRESS")]
    pub sessions_per_address: Option<usize>,
    /// Serve HTTPS with this PEM certificate chain (with `--tls-key`): for a LAN without a
    /// reverse proxy, since browsers allow camera and microphone only on secure origins.
    /// Renewed files are picked up without a restart [default: plain HTTP].
    #[arg(long, env = "PLENUM_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,
    /// The PEM private key of `--tls-cert`.
    #[arg(long, env = "PLENUM_TLS_KEY")]
    pub tls_key: Option<PathBuf>,
    /// Join a pool of identical nodes coordinated in this Redis, `redis://host:port/`
    /// (`rediss://` with TLS): each room lives on one node, any node answers any request
    /// [default: a single node on its own].
    #[arg(long, env = "PLENUM_REDIS")]
    pub redis: Option<String>,
    /// This node's name in the pool: 1-64 of `a-z 0-9 - _ .` [default: a random one at start].
    #[arg(long, env = "PLENUM_NODE_ID")]
    pub node_id: Option<String>,
    /// Where browsers and WHIP/WHEP clients reach this node, e.g. `https://plenum-2.example.org`
    /// (other nodes send them there) [default: the listen address, if it is not 0.0.0.0 or ::].
    #[arg(long, env = "PLENUM_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// In a pool, on SIGTERM: seconds the node drains first (no new rooms; its meetings go on
    /// and move when they end or at the deadline, when the node exits) [default: 0].
    #[arg(long, env = "PLENUM_DRAIN_SECONDS")]
    pub drain_seconds: Option<u64>,
    /// Take phone calls: a SIP endpoint on this address, UDP and TCP, e.g. `0.0.0.0:5060`
    /// (callers enter the room's dial-in PIN) [default: off].
    #[arg(long, env = "PLENUM_SIP_LISTEN")]
    pub sip_listen: Option<SocketAddr>,
    /// The address SIP peers reach this node at, put into SDP and Contact [default: the SIP
    /// listen address, or `--public-ip`, or the first `--ice-address`].
    #[arg(long, env = "PLENUM_SIP_ADDRESS")]
    pub sip_address: Option<IpAddr>,
    /// The phone number shown beside the dial-in PIN, e.g. `+49 30 1234567` [default: none shown].
    #[arg(long, env = "PLENUM_DIAL_IN_NUMBER")]
    pub dial_in_number: Option<String>,
    /// A secret the dial-in PINs are derived from: give every node of a pool the same, and
    /// keep it, or the PINs change [default: a random one at start].
    #[arg(long, env = "PLENUM_DIAL_IN_SECRET", hide_env_values = true)]
    pub dial_in_secret: Option<String>,
    /// End a call after this many seconds without RTP from the caller [default: 30].
    #[arg(long, env = "PLENUM_SIP_SILENCE_SECONDS")]
    pub sip_silence_seconds: Option<u64>,
    /// Register with this SIP trunk or PBX, e.g. `sip:sip.example-carrier.de` (calls to the
    /// number then reach Plenum) [default: none: the PBX or trunk sends calls here directly].
    #[arg(long, env = "PLENUM_SIP_REGISTRAR")]
    pub sip_registrar: Option<String>,
    /// The user (account, extension) to register as.
    #[arg(long, env = "PLENUM_SIP_USER")]
    pub sip_user: Option<String>,
    /// The password for the registrar's digest challenge.
    #[arg(long, env = "PLENUM_SIP_PASSWORD", hide_env_values = true)]
    pub sip_password: Option<String>,
}

/// The same settings as they may appear in the `--config` file.
#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen: Option<SocketAddr>,
    canvas: Option<String>,
    fps: Option<u32>,
    vp8_profile: Option<String>,
    h264_profile: Option<String>,
    pipelines_dir: Option<PathBuf>,
    jitterbuffer_ms: Option<u32>,
    stun_server: Option<String>,
    #[serde(default)]
    turn_server: Vec<String>,
    public_ip: Option<IpAddr>,
    #[serde(default)]
    ice_address: Vec<IpAddr>,
    rtp_ports: Option<String>,
    max_tiles: Option<usize>,
    viewer_codec: Option<VideoCodec>,
    max_participants: Option<usize>,
    max_audience: Option<usize>,
    #[serde(default)]
    trust_forwarded_for: bool,
    #[serde(default)]
    open_media: bool,
    web_dir: Option<PathBuf>,
    empty_room_grace_secs: Option<u64>,
    recordings_dir: Option<PathBuf>,
    metrics_listen: Option<SocketAddr>,
    session_rate: Option<f64>,
    sessions_per_address: Option<usize>,
    max_rooms: Option<usize>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    redis: Option<String>,
    node_id: Option<String>,
    public_url: Option<String>,
    drain_seconds: Option<u64>,
    sip_listen: Option<SocketAddr>,
    sip_address: Option<IpAddr>,
    dial_in_number: Option<String>,
    dial_in_secret: Option<String>,
    sip_silence_seconds: Option<u64>,
    sip_registrar: Option<String>,
    sip_user: Option<String>,
    sip_password: Option<String>,
}

fn parse_codec(s: &str) -> Result<VideoCodec, String> {
    match s.to_ascii_lowercase().as_str() {
        "h264" => Ok(VideoCodec::H264),
        "vp8" => Ok(VideoCodec::Vp8),
        _ => Err(format!("'{s}' is not h264 or vp8")),
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CanvasArg(pub Size);

impl FromStr for CanvasArg {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (w, h) = s.split_once(['x', 'X']).ok_or("expected WIDTHxHEIGHT, e.g. 1280x720")?;
        let width: u32 = w.trim().parse().map_err(|_| format!("bad width '{w}'"))?;
        let height: u32 = h.trim().parse().map_err(|_| format!("bad height '{h}'"))?;
        if !(64..=3840).contains(&width) || !(64..=2160).contains(&height) || width % 2 + height % 2 != 0 {
            return Err("canvas must be even and between 64x64 and 3840x2160".into());
        }
        Ok(Self(Size { width, height }))
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PortRange {
    pub min: u16,
    pub max: u16,
}

impl FromStr for PortRange {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (a, b) = s.split_once('-').ok_or("expected MIN-MAX, e.g. 40000-40999")?;
        let min: u16 = a.trim().parse().map_err(|_| format!("bad port '{a}'"))?;
        let max: u16 = b.trim().parse().map_err(|_| format!("bad port '{b}'"))?;
        if min == 0 || min > max {
            return Err("port range must be 1-65535 with MIN <= MAX".into());
        }
        Ok(Self { min, max })
    }
}

/// Where the HTTPS certificate chain and its key are (PEM); read by `http::tls`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// ICE settings every webrtcbin of the server gets.
#[derive(Clone, Debug, Default)]
pub struct IceConfig {
    pub stun_server: Option<String>,
    pub turn_servers: Vec<String>,
    pub public_ip: Option<IpAddr>,
    pub local_addresses: Vec<IpAddr>,
    pub rtp_ports: Option<PortRange>,
}

/// The resolved configuration of `plenum serve`.
#[derive(Clone, Debug)]
pub struct Config {
    pub listen: SocketAddr,
    pub canvas: Size,
    pub fps: u32,
    pub vp8_profile: String,
    pub h264_profile: String,
    pub pipelines_dir: Option<PathBuf>,
    pub jitterbuffer_ms: u32,
    pub ice: IceConfig,
    pub max_tiles: usize,
    pub viewer_codec: VideoCodec,
    pub max_participants: usize,
    pub max_audience: usize,
    pub trust_forwarded_for: bool,
    /// Anonymous WHIP/WHEP in every room (labs, load tests).
    pub open_media: bool,
    pub web_dir: Option<PathBuf>,
    pub empty_room_grace: Duration,
    pub recordings_dir: PathBuf,
    pub metrics_listen: Option<SocketAddr>,
    pub session_rate: f64,
    pub sessions_per_address: usize,
    pub max_rooms: usize,
    /// HTTPS instead of HTTP.
    pub tls: Option<TlsFiles>,
    /// A member of a pool of nodes (`--redis`).
    pub pool: Option<PoolConfig>,
    /// Phone dial-in (`--sip-listen`).
    pub sip: Option<SipConfig>,
}

/// How phone callers reach the rooms.
#[derive(Clone)]
pub struct SipConfig {
    pub listen: SocketAddr,
    /// Put into SDP and Contact.
    pub address: IpAddr,
    pub number: Option<String>,
    /// What the rooms' PINs are derived from.
    pub secret: String,
    /// A call without RTP this long ends.
    pub silence: Duration,
    pub rtp_ports: Option<PortRange>,
    /// Registration with a trunk or PBX, if any.
    pub registrar: Option<Registrar>,
}

/// Where and as whom Plenum registers.
#[derive(Clone)]
pub struct Registrar {
    pub uri: String,
    pub user: String,
    pub password: String,
}

impl std::fmt::Debug for SipConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let registrar = self.registrar.as_ref().map(|r| format!("{} as {}", r.uri, r.user));
        f.debug_struct("SipConfig").field("listen", &self.listen).field("address", &self.address).field("number", &self.number).field("registrar", &registrar).finish_non_exhaustive()
    }
}

/// How this node joins a pool.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PoolConfig {
    pub redis: String,
    pub node_id: String,
    /// `None`: the listen address (checked at start, once the port is known).
    pub public_url: Option<String>,
    /// How long SIGTERM drains before the node exits.
    pub drain_on_stop: Duration,
}

fn pool(redis: Option<String>, node_id: Option<String>, public_url: Option<String>, drain_seconds: Option<u64>) -> anyhow::Result<Option<PoolConfig>> {
    let Some(redis) = redis else {
        anyhow::ensure!(
            node_id.is_none() && public_url.is_none() && drain_seconds.is_none(),
            "node_id, public_url and drain_seconds belong to a pool: give redis too"
        );
        return Ok(None);
    };
    let drain_on_stop = Duration::from_secs(drain_seconds.unwrap_or(0));
    anyhow::ensure!(drain_on_stop <= Duration::from_secs(24 * 3600), "drain_seconds must be at most 86400");
    anyhow::ensure!(redis.starts_with("redis://") || redis.starts_with("rediss://"), "redis must be a redis:// or rediss:// URL");
    let node_id = match node_id {
        Some(id) => {
            anyhow::ensure!(
                !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-_.".contains(&b)),
                "node_id must be 1-64 of a-z, 0-9, '-', '_' and '.'"
            );
            id
        }
        None => {
            let mut bytes = [0u8; 4];
            getrandom::fill(&mut bytes).map_err(|e| anyhow::anyhow!("no randomness for a node id: {e}"))?;
            format!("node-{}", bytes.iter().map(|b| format!("{b:02x}")).collect::<String>())
        }
    };
    if let Some(url) = &public_url {
        // A path is allowed (one origin behind a proxy, a path per node: https://meet.example.org/n/2).
        let rest = url.strip_prefix("https://").or_else(|| url.strip_prefix("http://"));
        anyhow::ensure!(
            rest.is_some_and(|r| !r.is_empty() && !r.starts_with('/') && !r.ends_with('/') && !r.contains(['?', '#', ' ', '"', '\''])),
            "public_url must be http(s)://host[:port][/path] without a trailing '/', e.g. https://plenum-2.example.org"
        );
    }
    Ok(Some(PoolConfig { redis, node_id, public_url, drain_on_stop }))
}

impl Config {
    pub fn resolve(args: ServeArgs) -> anyhow::Result<Self> {
        let file = match &args.config {
            Some(path) => read_file(path)?,
            None => FileConfig::default(),
        };
        let canvas = match (args.canvas, file.canvas) {
            (Some(c), _) => c.0,
            (None, Some(s)) => s.parse::<CanvasArg>().map_err(|e| anyhow::anyhow!("config: canvas: {e}"))?.0,
            (None, None) => DEFAULT_CANVAS,
        };
        let rtp_ports = match (args.rtp_ports, file.rtp_ports) {
            (Some(r), _) => Some(r),
            (None, Some(s)) => Some(s.parse().map_err(|e| anyhow::anyhow!("config: rtp_ports: {e}"))?),
            (None, None) => None,
        };
        let fps = args.fps.or(file.fps).unwrap_or(DEFAULT_FPS);
        anyhow::ensure!((1..=60).contains(&fps), "fps must be between 1 and 60");
        let jitterbuffer_ms = args.jitterbuffer_ms.or(file.jitterbuffer_ms).unwrap_or(DEFAULT_JITTERBUFFER_MS);
        anyhow::ensure!(jitterbuffer_ms <= 2000, "jitterbuffer_ms must be at most 2000");
        let max_tiles = args.max_tiles.or(file.max_tiles).unwrap_or(DEFAULT_MAX_TILES);
        anyhow::ensure!((1..=100).contains(&max_tiles), "max_tiles must be between 1 and 100");
        let session_rate = args.session_rate.or(file.session_rate).unwrap_or(DEFAULT_SESSION_RATE);
        anyhow::ensure!(session_rate.is_finite() && (0.1..=10_000.0).contains(&session_rate), "session_rate must be between 0.1 and 10000");
        let sessions_per_address = args
            .sessions_per_address
            .or(file.sessions_per_address)
            .unwrap_or(DEFAULT_SESSIONS_PER_ADDRESS);
        anyhow::ensure!((1..=100_000).contains(&sessions_per_address), "sessions_per_address must be between 1 and 100000");
        let max_rooms = args.max_rooms.or(file.max_rooms).unwrap_or(DEFAULT_MAX_ROOMS);
        anyhow::ensure!((1..=100_000).contains(&max_rooms), "max_rooms must be between 1 and 100000");
        let tls = match (args.tls_cert.or(file.tls_cert), args.tls_key.or(file.tls_key)) {
            (Some(cert), Some(key)) => Some(TlsFiles { cert, key }),
            (None, None) => None,
            _ => anyhow::bail!("tls_cert and tls_key go together: give both or neither"),
        };
        let pool = pool(
            args.redis.or(file.redis),
            args.node_id.or(file.node_id),
            args.public_url.or(file.public_url),
            args.drain_seconds.or(file.drain_seconds),
        )?;
        let ice = IceConfig {
            stun_server: args.stun_server.or(file.stun_server),
            turn_servers: if args.turn_server.is_empty() { file.turn_server } else { args.turn_server },
            public_ip: args.public_ip.or(file.public_ip),
            local_addresses: if args.ice_address.is_empty() { file.ice_address } else { args.ice_address },
            rtp_ports,
        };
        let sip = sip(
            SipArgs {
                listen: args.sip_listen.or(file.sip_listen),
                address: args.sip_address.or(file.sip_address),
                number: args.dial_in_number.or(file.dial_in_number),
                secret: args.dial_in_secret.or(file.dial_in_secret),
                silence_seconds: args.sip_silence_seconds.or(file.sip_silence_seconds),
                registrar: args.sip_registrar.or(file.sip_registrar),
                user: args.sip_user.or(file.sip_user),
                password: args.sip_password.or(file.sip_password),
            },
            &ice,
        )?;
        Ok(Self {
            listen: args
                .listen
                .or(file.listen)
                .unwrap_or_else(|| DEFAULT_LISTEN.parse().expect("the default listen address parses")),
            canvas,
            fps,
            vp8_profile: args.vp8_profile.or(file.vp8_profile).unwrap_or_else(|| DEFAULT_VP8_PROFILE.into()),
            h264_profile: args.h264_profile.or(file.h264_profile).unwrap_or_else(|| DEFAULT_H264_PROFILE.into()),
            pipelines_dir: args.pipelines_dir.or(file.pipelines_dir),
            jitterbuffer_ms,
            ice,
            max_tiles,
            viewer_codec: args.viewer_codec.or(file.viewer_codec).unwrap_or(VideoCodec::H264),
            max_participants: args
                .max_participants
                .or(file.max_participants)
                .unwrap_or(crate::room::participants::DEFAULT_MAX_PARTICIPANTS),
            max_audience: args.max_audience.or(file.max_audience).unwrap_or(crate::room::participants::DEFAULT_MAX_AUDIENCE),
            trust_forwarded_for: args.trust_forwarded_for || file.trust_forwarded_for,
            open_media: args.open_media || file.open_media,
            web_dir: args.web_dir.or(file.web_dir),
            empty_room_grace: args
                .empty_room_grace_secs
                .or(file.empty_room_grace_secs)
                .map(Duration::from_secs)
                .unwrap_or(DEFAULT_EMPTY_ROOM_GRACE),
            recordings_dir: args.recordings_dir.or(file.recordings_dir).unwrap_or_else(|| PathBuf::from(DEFAULT_RECORDINGS_DIR)),
            metrics_listen: args.metrics_listen.or(file.metrics_listen),
            session_rate,
            sessions_per_address,
            max_rooms,
            tls,
            pool,
            sip,
        })
    }
}

/// The SIP settings as given (flags before the file).
struct SipArgs {
    listen: Option<SocketAddr>,
    address: Option<IpAddr>,
    number: Option<String>,
    secret: Option<String>,
    silence_seconds: Option<u64>,
    registrar: Option<String>,
    user: Option<String>,
    password: Option<String>,
}

/// The SIP endpoint's settings, if it is to run.
fn sip(given: SipArgs, ice: &IceConfig) -> anyhow::Result<Option<SipConfig>> {
    let Some(listen) = given.listen else { return Ok(None) };
    let address = given
        .address
        .or_else(|| (!listen.ip().is_unspecified()).then(|| listen.ip()))
        .or(ice.public_ip)
        .or_else(|| ice.local_addresses.first().copied())
        .ok_or_else(|| anyhow::anyhow!("sip_listen on {} needs sip_address: the address callers' RTP is sent to", listen.ip()))?;
    let secret = match given.secret {
        Some(s) if s.len() >= 16 => s,
        Some(_) => anyhow::bail!("dial_in_secret must be at least 16 characters"),
        None => {
            let mut bytes = [0u8; 16];
            getrandom::fill(&mut bytes).map_err(|e| anyhow::anyhow!("random source: {e}"))?;
            bytes.iter().map(|b| format!("{b:02x}")).collect()
        }
    };
    let number = given.number;
    anyhow::ensure!(number.as_ref().is_none_or(|n| n.len() <= 40), "dial_in_number must be at most 40 characters");
    let silence = Duration::from_secs(given.silence_seconds.unwrap_or(30).clamp(2, 3600));
    let registrar = match (given.registrar, given.user, given.password) {
        (None, None, None) => None,
        (Some(uri), Some(user), Some(password)) => {
            anyhow::ensure!(uri.starts_with("sip:") && uri.len() <= 256 && !uri.contains(char::is_whitespace), "sip_registrar must be a sip: URI, e.g. sip:sip.example-carrier.de");
            anyhow::ensure!(!user.is_empty() && user.len() <= 64, "sip_user must be 1-64 characters");
            Some(Registrar { uri, user, password })
        }
        _ => anyhow::bail!("sip_registrar, sip_user and sip_password go together"),
    };
    Ok(Some(SipConfig { listen, address, number, secret, silence, rtp_ports: ice.rtp_ports, registrar }))
}

fn read_file(path: &Path) -> anyhow::Result<FileConfig> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| anyhow::anyhow!("config file {}: {e}", path.display()))?;
    toml::from_str(&text).map_err(|e| anyhow::anyhow!("config file {}: {}", path.display(), e.to_string().trim()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_apply_when_nothing_is_given() {
        let c = Config::resolve(ServeArgs::default()).unwrap();
        assert_eq!(c.listen.to_string(), DEFAULT_LISTEN);
        assert_eq!(c.canvas, DEFAULT_CANVAS);
        assert_eq!(c.fps, 30);
        assert_eq!(c.vp8_profile, "vp8");
        assert_eq!(c.max_tiles, 25);
        assert_eq!(c.viewer_codec, VideoCodec::H264);
    }

    #[test]
    fn file_fills_gaps_and_flags_win() {
        let dir = std::env::temp_dir().join(format!("plenum-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("plenum.toml");
        std::fs::write(&path, "fps = 15\ncanvas = \"640x360\"\nturn_server = [\"turn://u:p@h:3478\"]\n").unwrap();
        let args = ServeArgs { config: Some(path), fps: Some(25), ..Default::default() };
        let c = Config::resolve(args).unwrap();
        assert_eq!(c.fps, 25);
        assert_eq!(c.canvas, Size { width: 640, height: 360 });
        assert_eq!(c.ice.turn_servers, vec!["turn://u:p@h:3478".to_string()]);
    }

    #[test]
    fn bad_values_are_refused() {
        assert!("1280".parse::<CanvasArg>().is_err());
        assert!("1281x720".parse::<CanvasArg>().is_err());
        assert!("9-3".parse::<PortRange>().is_err());
        assert!(Config::resolve(ServeArgs { max_tiles: Some(0), ..Default::default() }).is_err());
        assert_eq!("40000-40010".parse::<PortRange>(), Ok(PortRange { min: 40000, max: 40010 }));
    }
}
