//! A hall camera: an RTSP IP camera (pulled over TCP) or an SRT stream (Plenum calls the
//! encoder, or listens for it), decoded in its own pipeline and handed to the room as raw
//! pictures and 48 kHz mono sound. When the camera drops, hangs or cannot be reached, the
//! pull is torn down and tried again with back-off; meanwhile the room shows the camera's
//! name on a placeholder tile.
//!
//! ```text
//!  uridecodebin (rtspsrc / srtsrc, demuxer, decoder) ─┬─▶ videoconvert ─▶ I420 ─▶ appsink ─▶ on_video
//!                                                     └─▶ audioconvert ─▶ resample ─▶ S16 48k mono ─▶ appsink ─▶ on_audio
//! ```

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gst::prelude::*;

use crate::outputs::live::{parse_srt, Backoff};
pub use crate::protocol::StreamState as CameraState;

/// The longest camera URL taken.
const MAX_URL: usize = 1024;
/// A camera that delivered nothing for this long is taken as gone (a camera that loses power
/// mid-stream leaves an RTSP connection open for much longer).
const STALLED_AFTER: Duration = Duration::from_secs(5);
/// How long the first picture or sound may take after connecting.
const FIRST_DATA_WITHIN: Duration = Duration::from_secs(15);
/// rtspsrc's and srtsrc's jitter buffer (ms): a LAN camera needs little.
const LATENCY_MS: u32 = 200;

/// Where a camera comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CameraSource {
    /// `rtsp://[user:password@]host[:port]/path`, pulled over TCP (no UDP ports to open).
    Rtsp { url: String },
    /// `srt://host:port[?mode=caller|listener&streamid=…&passphrase=…]`: MPEG-TS over SRT.
    Srt { uri: String, streamid: Option<String>, passphrase: Option<String> },
}

impl CameraSource {
    /// Reads a camera URL; a one-line reason when it is not one.
    pub fn parse(url: &str) -> Result<Self, String> {
        let url = url.trim();
        if url.is_empty() || url.len() > MAX_URL || url.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(format!("a camera is one URL of at most {MAX_URL} characters"));
        }
        let (scheme, rest) = url.split_once("://").ok_or("a camera URL starts with rtsp:// or srt://")?;
        match scheme.to_ascii_lowercase().as_str() {
            "rtsp" | "rtsps" => {
                let authority = rest.split('/').next().unwrap_or_default();
                let host = authority.rsplit('@').next().unwrap_or_default();
                if host.is_empty() || host.starts_with(':') {
                    return Err("an RTSP camera needs a host: rtsp://host[:port]/path".into());
                }
                Ok(CameraSource::Rtsp { url: url.to_string() })
            }
            "srt" => {
                let srt = parse_srt(rest, "camera", true)?;
                let mode = if srt.listener { "listener" } else { "caller" };
                Ok(CameraSource::Srt { uri: format!("srt://{}?mode={mode}", srt.hostport), streamid: srt.streamid, passphrase: srt.passphrase })
            }
            _ => Err("a camera URL starts with rtsp:// or srt://".into()),
        }
    }

    /// The URL without what may be secret (an RTSP password, an SRT passphrase), for lists
    /// and logs.
    pub fn redacted(&self) -> String {
        match self {
            CameraSource::Rtsp { url } => match url.split_once("://") {
                Some((scheme, rest)) => {
                    let (authority, path) = rest.split_once('/').map_or((rest, ""), |(a, p)| (a, p));
                    let host = authority.rsplit('@').next().unwrap_or(authority);
                    let path = if path.is_empty() { String::new() } else { format!("/{}", path.split('?').next().unwrap_or(path)) };
                    format!("{scheme}://{host}{path}")
                }
                None => url.clone(),
            },
            CameraSource::Srt { uri, .. } => uri.clone(),
        }
    }

    fn uri(&self) -> &str {
        match self {
            CameraSource::Rtsp { url } => url,
            CameraSource::Srt { uri, .. } => uri,
        }
    }

    /// Sets what the URL cannot say on the source uridecodebin made for it.
    fn configure(&self, source: &gst::Element) {
        if source.find_property("protocols").is_some() {
            // rtspsrc: interleaved in the RTSP connection, through any firewall.
            source.set_property_from_str("protocols", "tcp");
        }
        if source.find_property("latency").is_some() {
            // guint on rtspsrc, gint on srtsrc: set from text, which both take.
            source.set_property_from_str("latency", &LATENCY_MS.to_string());
        }
        if let CameraSource::Srt { streamid, passphrase, .. } = self {
            if let (Some(id), true) = (streamid, source.find_property("streamid").is_some()) {
                source.set_property("streamid", id);
            }
            if let (Some(p), true) = (passphrase, source.find_property("passphrase").is_some()) {
                source.set_property("passphrase", p);
            }
        }
    }
}

/// Takes each decoded picture (raw I420, any size).
pub type PictureSink = Arc<dyn Fn(&gst::Sample) + Send + Sync>;
/// Takes each stretch of decoded sound (48 kHz mono S16).
pub type SoundSink = Arc<dyn Fn(&[i16]) + Send + Sync>;

/// Where a camera's decoded media goes (called on its pipeline's streaming threads).
#[derive(Clone)]
pub struct CameraSinks {
    pub video: PictureSink,
    pub audio: SoundSink,
}

/// One attempt at pulling the camera: its pipeline and what it has seen.
struct Pull {
    pipeline: gst::Pipeline,
    started: Instant,
    failed: Arc<Mutex<Option<String>>>,
    /// When media last came, in ms after `started` (0: never).
    last_data_ms: Arc<AtomicU64>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Pull {
    fn start(source: &CameraSource, name: &str, sinks: &CameraSinks) -> Result<Self, String> {
        let description = "uridecodebin name=src \
            videoconvert name=vhead ! video/x-raw,format=I420 ! appsink name=video sync=false max-buffers=2 drop=true \
            audioconvert name=ahead ! audioresample ! audio/x-raw,format=S16LE,layout=interleaved,rate=48000,channels=1 \
            ! appsink name=audio sync=false max-buffers=20 drop=true";
        let pipeline = gst::parse::launch(description)
            .map_err(|e| format!("camera pipeline: {e}"))?
            .downcast::<gst::Pipeline>()
            .map_err(|_| "camera pipeline: not a pipeline".to_string())?;
        pipeline.set_property("name", name);
        let started = Instant::now();
        let last_data_ms = Arc::new(AtomicU64::new(0));
        let by_name = |n: &str| pipeline.by_name(n).ok_or_else(|| format!("camera pipeline: no {n}"));
        let decode = by_name("src")?;
        decode.set_property("uri", source.uri());
        let configured = source.clone();
        decode.connect("source-setup", false, move |args| {
            if let Some(element) = args.get(1).and_then(|v| v.get::<gst::Element>().ok()) {
                configured.configure(&element);
            }
            None
        });
        let (vhead, ahead) = (by_name("vhead")?, by_name("ahead")?);
        decode.connect_pad_added(move |_, pad| {
            let caps = pad.current_caps().unwrap_or_else(|| pad.query_caps(None));
            let kind = caps.structure(0).map(|s| s.name().to_string()).unwrap_or_default();
            let head = if kind.starts_with("video/") {
                &vhead
            } else if kind.starts_with("audio/") {
                &ahead
            } else {
                return;
            };
            if let Some(sink) = head.static_pad("sink").filter(|s| !s.is_linked()) {
                let _ = pad.link(&sink);
            }
        });
        let appsink = |n: &str| by_name(n)?.downcast::<gst_app::AppSink>().map_err(|_| format!("camera pipeline: {n} is no appsink"));
        let seen = |stamp: &Arc<AtomicU64>| {
            let stamp = stamp.clone();
            move || stamp.store((started.elapsed().as_millis() as u64).max(1), Ordering::Relaxed)
        };
        let (on_video, video_seen) = (sinks.video.clone(), seen(&last_data_ms));
        appsink("video")?.set_callbacks(
            gst_app::AppSinkCallbacks::builder()
                .new_sample(move |sink| {
                    let sample = sink.pull_sample().map_err(|_| gst::FlowError::Flushing)?;
                    video_seen();
                    on_video(&sample);
                    Ok(gst::FlowSuccess::Ok)
                })
                .build(),
        );
        let (on_audio, audio_seen) = (sinks.audio.clone(), seen(&last_data_ms));
        appsink("audio")?.set_callbacks(
            gst_app::AppSinkCallbacks::builder()
                .new_sample(move |sink| {
                    let sample = sink.pull_sample().map_err(|_| gst::FlowError::Flushing)?;
                    audio_seen();
                    if let Some(map) = sample.buffer().and_then(|b| b.map_readable().ok()) {
                        let samples: Vec<i16> = map.chunks_exact(2).map(|b| i16::from_le_bytes([b[0], b[1]])).collect();
                        on_audio(&samples);
                    }
                    Ok(gst::FlowSuccess::Ok)
                })
                .build(),
        );
        let failed = Arc::new(Mutex::new(None));
        let bus = pipeline.bus().ok_or("camera pipeline: no bus")?;
        let noted = failed.clone();
        // Only the end matters here, and nobody reads the bus: keep nothing on it.
        bus.set_sync_handler(move |_, msg| {
            match msg.view() {
                gst::MessageView::Error(e) => {
                    lock(&noted).get_or_insert_with(|| e.error().to_string());
                }
                gst::MessageView::Eos(_) => {
                    lock(&noted).get_or_insert_with(|| "the camera ended its stream".to_string());
                }
                _ => {}
            }
            gst::BusSyncReply::Drop
        });
        // Started off the caller's thread (the room task): an SRT caller connects while its
        // source starts, and a camera that does not answer would hold the room for seconds.
        let (starting, noted) = (pipeline.clone(), failed.clone());
        std::thread::spawn(move || {
            if let Err(e) = starting.set_state(gst::State::Playing) {
                lock(&noted).get_or_insert_with(|| format!("the camera pipeline did not start: {e}"));
            }
        });
        Ok(Self { pipeline, started, failed, last_data_ms })
    }

    /// Why this attempt is over, if it is: an error, the end of the stream, or silence.
    fn failure(&self, now: Instant) -> Option<String> {
        if let Some(e) = lock(&self.failed).clone() {
            return Some(e);
        }
        let ran = now.saturating_duration_since(self.started);
        match self.last_data_ms.load(Ordering::Relaxed) {
            0 if ran >= FIRST_DATA_WITHIN => Some(format!("no picture or sound within {} s", FIRST_DATA_WITHIN.as_secs())),
            0 => None,
            last => (ran.saturating_sub(Duration::from_millis(last)) >= STALLED_AFTER)
                .then(|| format!("no picture or sound for {} s", STALLED_AFTER.as_secs())),
        }
    }

    fn delivers(&self) -> bool {
        self.last_data_ms.load(Ordering::Relaxed) > 0
    }

    fn stop(self) {
        stop_pipeline(self.pipeline);
    }
}

/// Stops a pipeline off the caller's thread (an RTSP teardown may wait for the camera).
fn stop_pipeline(pipeline: gst::Pipeline) {
    std::thread::spawn(move || {
        let _ = pipeline.set_state(gst::State::Null);
    });
}

/// A hall camera: pulled, watched, and pulled again when it drops. Driven by the room's
/// housekeeping tick.
pub struct Camera {
    pub source: CameraSource,
    name: String,
    sinks: CameraSinks,
    running: Option<Pull>,
    retry_at: Option<Instant>,
    backoff: Backoff,
    pub state: CameraState,
}

impl Camera {
    /// A camera to pull from `source` (tried at the first tick); `name` names its pipeline.
    pub fn new(source: CameraSource, name: String, sinks: CameraSinks) -> Self {
        Self { source, name, sinks, running: None, retry_at: Some(Instant::now()), backoff: Backoff::default(), state: CameraState::Connecting }
    }

    /// Starts, watches and restarts the pull; the new state when it changed.
    pub fn tick(&mut self, now: Instant) -> Option<CameraState> {
        if let Some(pull) = &self.running {
            if let Some(error) = pull.failure(now) {
                let ran = now.saturating_duration_since(pull.started);
                let wait = self.backoff.failed(ran);
                if let Some(pull) = self.running.take() {
                    pull.stop();
                }
                self.retry_at = Some(now + wait);
                return self.set(CameraState::Retrying { in_s: wait.as_secs().max(1), error });
            }
            if pull.delivers() && self.state != CameraState::Live {
                return self.set(CameraState::Live);
            }
            return None;
        }
        if self.retry_at.is_none_or(|at| now < at) {
            return None;
        }
        match Pull::start(&self.source, &self.name, &self.sinks) {
            Ok(pull) => {
                self.running = Some(pull);
                self.retry_at = None;
                self.set(CameraState::Connecting)
            }
            Err(error) => {
                let wait = self.backoff.failed(Duration::ZERO);
                self.retry_at = Some(now + wait);
                self.set(CameraState::Retrying { in_s: wait.as_secs().max(1), error })
            }
        }
    }

    fn set(&mut self, state: CameraState) -> Option<CameraState> {
        (self.state != state).then(|| {
            self.state = state.clone();
            state
        })
    }

    /// Ends the pull (off the caller's thread).
    pub fn stop(self) {
        if let Some(pull) = self.running {
            pull.stop();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn camera_urls_are_read_and_their_secrets_kept() {
        let c = CameraSource::parse("rtsp://admin:geheim@192.168.1.20:554/stream1?channel=1").unwrap();
        assert_eq!(c, CameraSource::Rtsp { url: "rtsp://admin:geheim@192.168.1.20:554/stream1?channel=1".into() });
        assert_eq!(c.redacted(), "rtsp://192.168.1.20:554/stream1");
        assert_eq!(CameraSource::parse("rtsp://cam.local").unwrap().redacted(), "rtsp://cam.local");
        let s = CameraSource::parse("srt://10.0.0.5:9000?streamid=hall&passphrase=0123456789ab").unwrap();
        assert_eq!(
            s,
            CameraSource::Srt { uri: "srt://10.0.0.5:9000?mode=caller".into(), streamid: Some("hall".into()), passphrase: Some("0123456789ab".into()) }
        );
        assert_eq!(s.redacted(), "srt://10.0.0.5:9000?mode=caller");
        assert_eq!(CameraSource::parse("srt://:9000?mode=listener").unwrap().redacted(), "srt://:9000?mode=listener");
        for bad in ["", "http://cam/x", "rtsp://", "rtsp://:554/x", "srt://host", "srt://h:0", "srt://h:9?mode=rendezvous", "srt://h:9?latency=5", "srt://h:9?passphrase=short", "rtsp://a b/c"] {
            assert!(CameraSource::parse(bad).is_err(), "{bad:?} taken");
        }
    }
}
