//! Live streams of a room to RTMP(S) servers (PeerTube, Owncast, YouTube: FLV with H.264 and
//! AAC) and SRT listeners (MPEG-TS, as caller, with stream id and passphrase). Several at once;
//! a target that drops is tried again with back-off (1 s, doubling, at most 30 s) for as long
//! as the moderator keeps the stream on, and every change is reported.

use std::time::{Duration, Instant};

use gst::prelude::*;

use super::{OutputError, OutputPipeline};
pub use crate::protocol::StreamState;

const RTMP: &str = "appsrc name=video ! h264parse ! queue max-size-time=2000000000 \
    ! flvmux name=mux streamable=true ! rtmp2sink name=sink sync=false \
    appsrc name=audio ! aacparse ! queue max-size-time=2000000000 ! mux.";
const SRT: &str = "appsrc name=video ! h264parse config-interval=-1 ! queue max-size-time=2000000000 \
    ! mpegtsmux name=mux alignment=7 ! srtsink name=sink sync=false \
    appsrc name=audio ! aacparse ! queue max-size-time=2000000000 ! mux.";
/// The longest target URL taken.
const MAX_URL: usize = 1024;
/// The first wait before trying a dropped target again; it doubles up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// A stream that has run this long without failing is healthy again: the next drop waits
/// [`FIRST_BACKOFF`] only.
const HEALTHY_AFTER: Duration = Duration::from_secs(10);
/// A stream that has run this long since its (re)start, with pictures going out, is live.
const LIVE_AFTER: Duration = Duration::from_secs(2);

/// Where a live stream goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// `rtmp://` or `rtmps://` host, application and stream key, as rtmp2sink takes it.
    Rtmp { location: String },
    /// An SRT listener, called: `srt://host:port`, with its stream id and passphrase.
    Srt { uri: String, streamid: Option<String>, passphrase: Option<String> },
}

impl Target {
    /// Reads a moderator's target URL: `rtmp[s]://host[:port]/app/key` or
    /// `srt://host:port[?streamid=…&passphrase=…]`.
    pub fn parse(url: &str) -> Result<Self, String> {
        let url = url.trim();
        if url.len() > MAX_URL || url.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(format!("a stream target is one URL of at most {MAX_URL} characters"));
        }
        let (scheme, rest) = url.split_once("://").ok_or("a stream target starts with rtmp://, rtmps:// or srt://")?;
        match scheme.to_ascii_lowercase().as_str() {
            "rtmp" | "rtmps" => {
                let (host, path) = rest.split_once('/').ok_or("an RTMP target needs an application and a stream key: rtmp://host/app/key")?;
                let segments: Vec<&str> = path.split('/').collect();
                if host.is_empty() || segments.len() < 2 || segments.iter().any(|s| s.is_empty()) {
                    return Err("an RTMP target needs a host, an application and a stream key: rtmp://host/app/key".into());
                }
                Ok(Target::Rtmp { location: url.to_string() })
            }
            "srt" => {
                let srt = parse_srt(rest, "target", false)?;
                Ok(Target::Srt { uri: format!("srt://{}?mode=caller", srt.hostport), streamid: srt.streamid, passphrase: srt.passphrase })
            }
            _ => Err("a stream target starts with rtmp://, rtmps:// or srt://".into()),
        }
    }

    /// What may be shown and logged: the server, never a stream key or passphrase.
    pub fn redacted(&self) -> String {
        match self {
            Target::Rtmp { location } => {
                let cut = location.rfind('/').unwrap_or(location.len());
                format!("{}/…", &location[..cut])
            }
            Target::Srt { uri, .. } => uri.split('?').next().unwrap_or(uri).to_string(),
        }
    }

    fn start(&self, name: &str) -> Result<OutputPipeline, OutputError> {
        let description = match self {
            Target::Rtmp { .. } => RTMP,
            Target::Srt { .. } => SRT,
        };
        OutputPipeline::start_detached(name, description, |bin| {
            let sink = bin.by_name("sink").ok_or_else(|| OutputError::Build("no sink".into()))?;
            match self {
                Target::Rtmp { location } => sink.set_property("location", location),
                Target::Srt { uri, streamid, passphrase } => {
                    sink.set_property("uri", uri);
                    if let Some(id) = streamid {
                        sink.set_property("streamid", id);
                    }
                    if let Some(p) = passphrase {
                        sink.set_property("passphrase", p);
                    }
                }
            }
            Ok(())
        })
    }
}

/// An SRT URL as Plenum takes it (stream targets and cameras).
pub(crate) struct SrtUrl {
    pub hostport: String,
    /// `mode=listener`: Plenum listens (only where `listener_allowed`); else it calls.
    pub listener: bool,
    pub streamid: Option<String>,
    pub passphrase: Option<String>,
}

/// Reads what follows `srt://` in the URL of an SRT `what` (a "target", a "camera"): a port
/// (and a host, unless it may listen), then `mode`, `streamid` and `passphrase` (10 to 79
/// characters) in the query; a one-line reason when it is not one.
pub(crate) fn parse_srt(rest: &str, what: &str, listener_allowed: bool) -> Result<SrtUrl, String> {
    let (hostport, query) = rest.split_once('?').unwrap_or((rest, ""));
    let hostport = hostport.trim_end_matches('/');
    let port_ok = hostport
        .rsplit_once(':')
        .is_some_and(|(h, p)| (listener_allowed || !h.is_empty()) && p.parse::<u16>().is_ok_and(|p| p > 0));
    if !port_ok {
        return Err(if listener_allowed {
            format!("an SRT {what} needs a port: srt://host:port (an empty host listens)")
        } else {
            format!("an SRT {what} needs a host and a port: srt://host:port")
        });
    }
    let mut url = SrtUrl { hostport: hostport.to_string(), listener: false, streamid: None, passphrase: None };
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        match (k, v) {
            ("mode", "caller") => url.listener = false,
            ("mode", "listener") if listener_allowed => url.listener = true,
            ("mode", _) => return Err(format!("an SRT {what}'s mode is {}", if listener_allowed { "caller or listener" } else { "caller" })),
            ("streamid", v) => url.streamid = Some(percent_decode(v)?),
            ("passphrase", v) => url.passphrase = Some(percent_decode(v)?),
            _ => return Err(format!("unknown SRT parameter {k:?} (mode, streamid and passphrase are known)")),
        }
    }
    if url.passphrase.as_ref().is_some_and(|p| !(10..=79).contains(&p.chars().count())) {
        return Err("an SRT passphrase has 10 to 79 characters".into());
    }
    Ok(url)
}

/// A URL query value with its %-escapes undone (a stream id or passphrase in an SRT URL).
fn percent_decode(v: &str) -> Result<String, String> {
    let bytes = v.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = v.get(i + 1..i + 3).and_then(|h| u8::from_str_radix(h, 16).ok()).ok_or("a bad %-escape in the URL")?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| "the URL is not UTF-8".to_string())
}


/// When to try a dropped target again: a pure function of the failures and the time.
#[derive(Clone, Debug)]
pub struct Backoff {
    next: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self { next: FIRST_BACKOFF }
    }
}

impl Backoff {
    /// A failure after the stream ran for `ran`: how long to wait before the next try.
    pub fn failed(&mut self, ran: Duration) -> Duration {
        if ran >= HEALTHY_AFTER {
            self.next = FIRST_BACKOFF;
        }
        let wait = self.next;
        self.next = (self.next * 2).min(MAX_BACKOFF);
        wait
    }
}

/// One live stream in the room's media task: its target, its pipeline while it runs, and when
/// it is tried again while it does not.
pub struct LiveStream {
    pub target: Target,
    name: String,
    running: Option<(OutputPipeline, Instant)>,
    retry_at: Option<Instant>,
    backoff: Backoff,
    pub state: StreamState,
}

impl LiveStream {
    pub fn new(target: Target, name: String) -> Self {
        Self { target, name, running: None, retry_at: Some(Instant::now()), backoff: Backoff::default(), state: StreamState::Connecting }
    }

    /// The running pipeline's feed, to be added to (or removed from) the fan-out.
    pub fn output(&self) -> Option<&OutputPipeline> {
        self.running.as_ref().map(|(o, _)| o)
    }

    /// One look at `now`: starts it when due, notices a failure or that it is live. Returns
    /// the new state when it changed, and a feed to add (started) or to remove (failed).
    pub fn tick(&mut self, now: Instant) -> Tick {
        let mut tick = Tick::default();
        if let Some((output, since)) = &self.running {
            if let Some(error) = output.failure() {
                let ran = now.saturating_duration_since(*since);
                let wait = self.backoff.failed(ran);
                let (output, _) = self.running.take().expect("running");
                tick.removed = Some(output.feed.clone());
                output.stop();
                self.retry_at = Some(now + wait);
                tick.state = self.set(StreamState::Retrying { in_s: wait.as_secs().max(1), error });
            } else if self.state != StreamState::Live && output.feed.started() && now.saturating_duration_since(*since) >= LIVE_AFTER {
                tick.state = self.set(StreamState::Live);
            }
            return tick;
        }
        if self.retry_at.is_some_and(|at| now >= at) {
            match self.target.start(&self.name) {
                Ok(output) => {
                    tick.added = Some(output.feed.clone());
                    self.running = Some((output, now));
                    self.retry_at = None;
                    tick.state = self.set(StreamState::Connecting);
                }
                Err(e) => {
                    let wait = self.backoff.failed(Duration::ZERO);
                    self.retry_at = Some(now + wait);
                    tick.state = self.set(StreamState::Retrying { in_s: wait.as_secs().max(1), error: e.to_string() });
                }
            }
        }
        tick
    }

    fn set(&mut self, state: StreamState) -> Option<StreamState> {
        (self.state != state || matches!(state, StreamState::Retrying { .. })).then(|| {
            self.state = state.clone();
            state
        })
    }

    /// Stops it for good.
    pub fn stop(self) -> Option<std::sync::Arc<super::Feed>> {
        self.running.map(|(output, _)| {
            let feed = output.feed.clone();
            output.stop();
            feed
        })
    }
}

/// What one look at a live stream changed.
#[derive(Default)]
pub struct Tick {
    pub state: Option<StreamState>,
    pub added: Option<std::sync::Arc<super::Feed>>,
    pub removed: Option<std::sync::Arc<super::Feed>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_are_read_and_their_secrets_kept() {
        let t = Target::parse("rtmp://live.example.org/live/abc-secret").unwrap();
        assert_eq!(t, Target::Rtmp { location: "rtmp://live.example.org/live/abc-secret".into() });
        assert_eq!(t.redacted(), "rtmp://live.example.org/live/…");
        assert!(Target::parse("rtmps://a.rtmp.youtube.com:443/live2/key").is_ok());
        let s = Target::parse("srt://127.0.0.1:9000?streamid=%23!::r=live/rat&passphrase=0123456789ab").unwrap();
        assert_eq!(
            s,
            Target::Srt { uri: "srt://127.0.0.1:9000?mode=caller".into(), streamid: Some("#!::r=live/rat".into()), passphrase: Some("0123456789ab".into()) }
        );
        assert_eq!(s.redacted(), "srt://127.0.0.1:9000");
        for bad in [
            "",
            "http://example.org/live/key",
            "rtmp://example.org/live",
            "rtmp:///live/key",
            "rtmp://example.org//key",
            "srt://example.org",
            "srt://:9000",
            "srt://example.org:0",
            "srt://example.org:9000?latency=20",
            "srt://example.org:9000?passphrase=short",
            "rtmp://example.org/live/key with space",
        ] {
            assert!(Target::parse(bad).is_err(), "{bad:?}");
        }
        assert!(Target::parse(&format!("rtmp://h/a/{}", "k".repeat(MAX_URL))).is_err(), "too long");
    }

    #[test]
    fn a_dropped_target_is_tried_again_later_and_later() {
        let mut b = Backoff::default();
        let waits: Vec<u64> = (0..7).map(|_| b.failed(Duration::from_secs(1)).as_secs()).collect();
        assert_eq!(waits, vec![1, 2, 4, 8, 16, 30, 30]);
        assert_eq!(b.failed(HEALTHY_AFTER).as_secs(), 1, "after a healthy stretch the first wait again");
        assert_eq!(b.failed(Duration::ZERO).as_secs(), 2);
    }
}
