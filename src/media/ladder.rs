//! The encoding ladder: the room's one composite, scaled and encoded once per rung that some
//! receiver is on. The top rung is the canvas itself; lower rungs (from `pipelines/*.toml`)
//! are started when their first receiver comes and stopped a while after their last one left.
//!
//! ```text
//!  canvas tee ─▶ queue ─▶ encoder (top)                                      ─▶ tee ─▶ viewers
//!             └▶ queue ─▶ videoscale ─▶ videorate ─▶ WxH@fps ─▶ encoder (kbps) ─▶ tee ─▶ viewers
//! ```

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use gst::prelude::*;

use super::peer::make;
use super::gst_err;
use super::MediaError;
use crate::profiles::{EncoderProfile, Rung, VideoCodec};
use crate::room::layout::Size;

/// At most one keyframe per encoder in this time, however many viewers ask (each join and each
/// PLI asks; a keyframe costs several ordinary frames of bandwidth for every viewer). A viewer
/// whose packet could not be sent again asks about 0.4 s after the loss (its jitterbuffer
/// waited for it first); when the keyframe that answers it loses a packet too, its second
/// request falls into this interval: at 500 ms that added up to a picture frozen for 1.0 s
/// through 5 % random loss, at 300 ms it stays well under.
const KEYFRAME_MIN_INTERVAL: std::time::Duration = std::time::Duration::from_millis(300);
/// Frames a rung may fall behind before old ones are dropped (never block the canvas).
const ENCODER_QUEUE_BUFFERS: u32 = 3;
/// A lower rung is kept this long after its last receiver left (receivers come back, and a
/// rate controller moving between rungs should not start and stop encoders each time).
pub const RUNG_LINGER: Duration = Duration::from_secs(10);
/// What a receiver's Opus audio and packet overhead take of its bitrate, before any video.
const AUDIO_KBPS: u32 = 48;

/// One rung as this room encodes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LiveRung {
    pub name: String,
    pub size: Size,
    pub fps: u32,
    /// `None`: the profile has no ladder and encodes at the bitrate its fragment sets.
    pub kbps: Option<u32>,
}

/// Which rung of its codec's ladder a receiver gets; `None` means audio only.
pub type RungIndex = Option<usize>;

/// The rungs of `profile` on a `canvas` at `fps`: the canvas first (at the bitrate of the
/// smallest rung at least as tall, else of the first), then each rung that is smaller and
/// cheaper than it.
pub fn resolve(profile: &EncoderProfile, canvas: Size, fps: u32) -> Vec<LiveRung> {
    let rungs = &profile.rungs;
    let top_source: Option<&Rung> = rungs.iter().rfind(|r| r.height >= canvas.height).or(rungs.first());
    let top = LiveRung {
        name: format!("{}p", canvas.height),
        size: canvas,
        fps: top_source.map_or(fps, |r| r.fps.min(fps)),
        kbps: top_source.map(|r| r.kbps),
    };
    let top_kbps = top.kbps.unwrap_or(u32::MAX);
    let mut ladder = vec![top];
    for r in rungs.iter().filter(|r| r.height < canvas.height && r.kbps < top_kbps) {
        // The width follows the canvas's shape, rounded to even (I420 needs it).
        let width = (u64::from(r.height) * u64::from(canvas.width) / u64::from(canvas.height.max(1))) as u32 & !1;
        ladder.push(LiveRung {
            name: r.name.clone(),
            size: Size { width: width.max(2), height: r.height & !1 },
            fps: r.fps.min(fps),
            kbps: Some(r.kbps),
        });
    }
    ladder
}

/// What a receiver asked for: everything its link carries, the lowest picture, or sound only;
/// optionally at most `max_kbps` in all.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReceiverCap {
    pub quality: Quality,
    pub max_kbps: Option<u32>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Quality {
    #[default]
    Auto,
    Low,
    AudioOnly,
}

/// The highest rung `cap` allows (`None`: audio only). A ladder without bitrates has only its
/// top rung, which any video cap allows.
pub fn pick(ladder: &[LiveRung], cap: ReceiverCap) -> RungIndex {
    let lowest = ladder.len().checked_sub(1)?;
    let allowed = match cap.quality {
        Quality::AudioOnly => return None,
        Quality::Low => lowest,
        Quality::Auto => 0,
    };
    let Some(max) = cap.max_kbps else { return Some(allowed) };
    let video_budget = max.saturating_sub(AUDIO_KBPS);
    (allowed..ladder.len()).find(|i| ladder[*i].kbps.is_none_or(|k| k <= video_budget))
}

/// A running rung: its elements and who watches it.
struct Encoder {
    tee: gst::Element,
    elements: Vec<gst::Element>,
    canvas_pad: gst::Pad,
    users: usize,
    idle_since: Option<Instant>,
    counts: Arc<Counts>,
}

/// Frames through a rung, counted on its streaming threads.
#[derive(Default)]
struct Counts {
    /// Into its queue (off the canvas)...
    queued: AtomicU64,
    /// ...out of it to the encoder...
    taken: AtomicU64,
    /// ...and out of the encoder.
    encoded: AtomicU64,
}

/// What one running encoder has done, for the operator's metrics.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EncoderStats {
    pub codec: VideoCodec,
    pub rung: String,
    /// Frames waiting in its queue now (it holds [`ENCODER_QUEUE_BUFFERS`]; full means the
    /// encoder does not keep up with the canvas).
    pub waiting: u32,
    pub encoded: u64,
    /// Frames the queue dropped because the encoder was behind (since the encoder started).
    pub dropped: u64,
}

/// The room's running rungs, per codec.
pub struct Ladder {
    rungs: HashMap<VideoCodec, Vec<LiveRung>>,
    profiles: HashMap<VideoCodec, EncoderProfile>,
    running: HashMap<(VideoCodec, usize), Encoder>,
}

impl Ladder {
    pub fn new(profiles: [&EncoderProfile; 2], canvas: Size, fps: u32) -> Self {
        let rungs = profiles.iter().map(|p| (p.codec, resolve(p, canvas, fps))).collect();
        let profiles = profiles.iter().map(|p| (p.codec, (*p).clone())).collect();
        Self { rungs, profiles, running: HashMap::new() }
    }

    /// The rungs a receiver of `codec` may be on, top first.
    pub fn rungs(&self, codec: VideoCodec) -> &[LiveRung] {
        self.rungs.get(&codec).map(Vec::as_slice).unwrap_or_default()
    }

    /// The tee of `codec`'s rung `rung`, started if needed; counts one more user.
    pub fn attach(&mut self, pipeline: &gst::Pipeline, canvas_tee: &gst::Element, codec: VideoCodec, rung: usize) -> Result<gst::Element, MediaError> {
        if let Some(enc) = self.running.get_mut(&(codec, rung)) {
            enc.users += 1;
            enc.idle_since = None;
            return Ok(enc.tee.clone());
        }
        let spec = self.rungs(codec).get(rung).cloned().ok_or_else(|| MediaError::Internal(format!("no rung {rung} for {}", codec.name())))?;
        let profile = self.profiles.get(&codec).ok_or_else(|| MediaError::Internal("no profile".into()))?;
        let mut enc = start_encoder(pipeline, canvas_tee, profile, &spec, rung)?;
        enc.users = 1;
        tracing::info!(profile = %profile.name, rung = %spec.name, "video encoder started");
        let tee = enc.tee.clone();
        self.running.insert((codec, rung), enc);
        Ok(tee)
    }

    /// One user fewer for the rung; an unused lower rung is stopped after [`RUNG_LINGER`].
    pub fn detach(&mut self, codec: VideoCodec, rung: usize) {
        if let Some(enc) = self.running.get_mut(&(codec, rung)) {
            enc.users = enc.users.saturating_sub(1);
            if enc.users == 0 {
                enc.idle_since = Some(Instant::now());
            }
        }
    }

    /// Takes out the lower rungs nobody used for [`RUNG_LINGER`]; returns their elements for
    /// the caller to stop. The top rung stays (the next viewer is likely to come).
    pub fn reap(&mut self, canvas_tee: &gst::Element) -> Vec<gst::Element> {
        let expired: Vec<(VideoCodec, usize)> = self
            .running
            .iter()
            .filter(|((_, rung), e)| *rung > 0 && e.idle_since.is_some_and(|t| t.elapsed() >= RUNG_LINGER))
            .map(|(k, _)| *k)
            .collect();
        let mut elements = Vec::new();
        for key in expired {
            if let Some(enc) = self.running.remove(&key) {
                if let Some(peer) = enc.canvas_pad.peer() {
                    let _ = enc.canvas_pad.unlink(&peer);
                }
                canvas_tee.release_request_pad(&enc.canvas_pad);
                tracing::info!(codec = key.0.name(), rung = key.1, "video encoder stopped (no receivers)");
                elements.extend(enc.elements);
            }
        }
        elements
    }

    /// What each running encoder has done so far.
    pub fn stats(&self) -> Vec<EncoderStats> {
        let mut stats: Vec<EncoderStats> = self
            .running
            .iter()
            .map(|((codec, rung), enc)| {
                let waiting = enc.elements[0].property::<u32>("current-level-buffers");
                let (queued, taken) = (enc.counts.queued.load(Ordering::Relaxed), enc.counts.taken.load(Ordering::Relaxed));
                EncoderStats {
                    codec: *codec,
                    rung: self.rungs(*codec).get(*rung).map_or_else(|| rung.to_string(), |r| r.name.clone()),
                    waiting,
                    encoded: enc.counts.encoded.load(Ordering::Relaxed),
                    dropped: queued.saturating_sub(taken).saturating_sub(u64::from(waiting)),
                }
            })
            .collect();
        stats.sort_by(|a, b| (a.codec.name(), &a.rung).cmp(&(b.codec.name(), &b.rung)));
        stats
    }

    /// Asks the rung's encoder for a keyframe (throttled at the encoder's output).
    pub fn force_keyframe(&self, codec: VideoCodec, rung: usize) {
        if let Some(pad) = self.running.get(&(codec, rung)).and_then(|e| e.tee.static_pad("sink")) {
            pad.push_event(gst_video::UpstreamForceKeyUnitEvent::builder().all_headers(true).build());
        }
    }
}

/// Builds one rung: a leaky queue off the canvas, scaling and frame-rate reduction for lower
/// rungs, the profile's encoder at the rung's bitrate, and the tee receivers attach to.
fn start_encoder(pipeline: &gst::Pipeline, canvas_tee: &gst::Element, profile: &EncoderProfile, spec: &LiveRung, rung: usize) -> Result<Encoder, MediaError> {
    let tag = format!("{}-{}", profile.codec.name(), spec.name);
    let queue = make("queue", &format!("venc-queue-{tag}"))?;
    queue.set_property_from_str("leaky", "downstream");
    queue.set_property("max-size-buffers", ENCODER_QUEUE_BUFFERS);
    queue.set_property("max-size-bytes", 0u32);
    queue.set_property("max-size-time", 0u64);
    let mut elements = vec![queue];
    if rung > 0 {
        let scale = make("videoscale", &format!("venc-scale-{tag}"))?;
        let rate = make("videorate", &format!("venc-rate-{tag}"))?;
        rate.set_property("drop-only", true);
        let caps = make("capsfilter", &format!("venc-caps-{tag}"))?;
        caps.set_property(
            "caps",
            gst::Caps::builder("video/x-raw")
                .field("width", spec.size.width as i32)
                .field("height", spec.size.height as i32)
                .field("framerate", gst::Fraction::new(spec.fps as i32, 1))
                .field("pixel-aspect-ratio", gst::Fraction::new(1, 1))
                .build(),
        );
        elements.extend([scale, rate, caps]);
    }
    let encoder = gst::parse::bin_from_description_with_name(&profile.encoder_for(spec.kbps), true, &format!("venc-{tag}"))
        .map_err(|e| MediaError::Internal(format!("encoder profile {}: {e}", profile.name)))?;
    elements.push(encoder.upcast());
    let tee = make("tee", &format!("venc-tee-{tag}"))?;
    tee.set_property("allow-not-linked", true);
    elements.push(tee.clone());
    pipeline.add_many(&elements).map_err(gst_err)?;
    gst::Element::link_many(&elements).map_err(gst_err)?;
    for e in &elements {
        e.sync_state_with_parent().map_err(gst_err)?;
    }
    let canvas_pad = canvas_tee.request_pad_simple("src_%u").ok_or_else(|| MediaError::Internal("canvas tee".into()))?;
    canvas_pad.link(&elements[0].static_pad("sink").expect("queue has a sink pad")).map_err(gst_err)?;
    throttle_keyframe_requests(&tee.static_pad("sink").expect("tee has a sink pad"));
    let counts = Arc::new(Counts::default());
    let queue = &elements[0];
    count_buffers(&queue.static_pad("sink").expect("queue has a sink pad"), &counts, |c| &c.queued);
    count_buffers(&queue.static_pad("src").expect("queue has a src pad"), &counts, |c| &c.taken);
    count_buffers(&tee.static_pad("sink").expect("tee has a sink pad"), &counts, |c| &c.encoded);
    Ok(Encoder { tee, elements, canvas_pad, users: 0, idle_since: None, counts })
}

/// Counts the buffers through `pad` into the counter `which` picks.
fn count_buffers(pad: &gst::Pad, counts: &Arc<Counts>, which: fn(&Counts) -> &AtomicU64) {
    let counts = counts.clone();
    pad.add_probe(gst::PadProbeType::BUFFER, move |_, _| {
        which(&counts).fetch_add(1, Ordering::Relaxed);
        gst::PadProbeReturn::Ok
    });
}

/// Lets one keyframe request per [`KEYFRAME_MIN_INTERVAL`] through `pad` (the encoder's output)
/// to the encoder; a request inside the interval is not lost but folded into one that is sent
/// with the first encoded frame after the interval, so a viewer whose request came too soon
/// still gets its keyframe.
///
/// Done here rather than with GstVideoEncoder's `min-force-key-unit-interval`: in GStreamer
/// 1.22.0 that throttle compares running times from two different segments for x264enc (which
/// shifts its output by 1000 hours) and then refuses every request after the first.
fn throttle_keyframe_requests(pad: &gst::Pad) {
    #[derive(Default)]
    struct State {
        last: Option<std::time::Instant>,
        pending: bool,
    }
    let state = Arc::new(std::sync::Mutex::new(State::default()));
    let due = |st: &State| st.last.is_none_or(|l| l.elapsed() >= KEYFRAME_MIN_INTERVAL);
    let requests = state.clone();
    pad.add_probe(gst::PadProbeType::EVENT_UPSTREAM, move |_, info| {
        let is_request = matches!(&info.data, Some(gst::PadProbeData::Event(e)) if gst_video::UpstreamForceKeyUnitEvent::parse(e).is_ok());
        if !is_request {
            return gst::PadProbeReturn::Ok;
        }
        let mut st = requests.lock().unwrap_or_else(|p| p.into_inner());
        if due(&st) {
            *st = State { last: Some(std::time::Instant::now()), pending: false };
            tracing::trace!("keyframe request to the encoder");
            gst::PadProbeReturn::Ok
        } else {
            st.pending = true;
            tracing::trace!("keyframe request folded (too soon after the last)");
            // Consumed here. (Returning Drop for an event makes GStreamer 1.22 unref a null
            // pointer after gstreamer-rs has already released it: a CRITICAL warning per drop.)
            drop(info.take_event());
            gst::PadProbeReturn::Handled
        }
    });
    pad.add_probe(gst::PadProbeType::BUFFER, move |pad, _| {
        let release = {
            let mut st = state.lock().unwrap_or_else(|p| p.into_inner());
            let release = st.pending && due(&st);
            if release {
                // Let the folded request through the probe above.
                st.last = None;
            }
            release
        };
        if release {
            pad.push_event(gst_video::UpstreamForceKeyUnitEvent::builder().all_headers(true).build());
        }
        gst::PadProbeReturn::Ok
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn profile(rungs: &[(&str, u32, u32, u32)]) -> EncoderProfile {
        EncoderProfile {
            name: "t".into(),
            codec: VideoCodec::H264,
            description: String::new(),
            encoder: "x264enc bitrate={kbps}".into(),
            rungs: rungs.iter().map(|(n, h, f, k)| Rung { name: n.to_string(), height: *h, fps: *f, kbps: *k }).collect(),
        }
    }

    const SHIPPED: &[(&str, u32, u32, u32)] = &[("720p", 720, 30, 1500), ("360p", 360, 30, 500), ("180p", 180, 15, 150)];

    #[test]
    fn the_canvas_is_the_top_rung_and_lower_rungs_follow_its_shape() {
        let ladder = resolve(&profile(SHIPPED), Size { width: 1280, height: 720 }, 30);
        let summary: Vec<(u32, u32, u32, Option<u32>)> = ladder.iter().map(|r| (r.size.width, r.size.height, r.fps, r.kbps)).collect();
        assert_eq!(summary, vec![(1280, 720, 30, Some(1500)), (640, 360, 30, Some(500)), (320, 180, 15, Some(150))]);
        // A smaller canvas: rungs at least as tall collapse into it (at the closest one's rate).
        let small = resolve(&profile(SHIPPED), Size { width: 640, height: 360 }, 15);
        let summary: Vec<(u32, u32, u32, Option<u32>)> = small.iter().map(|r| (r.size.width, r.size.height, r.fps, r.kbps)).collect();
        assert_eq!(summary, vec![(640, 360, 15, Some(500)), (320, 180, 15, Some(150))]);
        // A larger canvas is encoded at the first rung's rate; nothing below costs as much.
        let large = resolve(&profile(SHIPPED), Size { width: 1920, height: 1080 }, 30);
        assert_eq!(large.iter().map(|r| r.size.height).collect::<Vec<_>>(), vec![1080, 360, 180]);
        // 4:3 keeps its shape, widths even.
        let square = resolve(&profile(SHIPPED), Size { width: 960, height: 720 }, 30);
        assert_eq!(square[2].size, Size { width: 240, height: 180 });
        // Without a ladder: the canvas alone, at the fragment's own bitrate.
        assert_eq!(resolve(&profile(&[]), Size { width: 1280, height: 720 }, 30).len(), 1);
    }

    #[test]
    fn a_receiver_gets_the_highest_rung_its_cap_allows() {
        let ladder = resolve(&profile(SHIPPED), Size { width: 1280, height: 720 }, 30);
        let cap = |quality, max_kbps| pick(&ladder, ReceiverCap { quality, max_kbps });
        assert_eq!(cap(Quality::Auto, None), Some(0));
        assert_eq!(cap(Quality::Low, None), Some(2));
        assert_eq!(cap(Quality::AudioOnly, None), None);
        assert_eq!(cap(Quality::Auto, Some(2000)), Some(0));
        assert_eq!(cap(Quality::Auto, Some(600)), Some(1), "500 kbit/s video and the audio fit in 600");
        assert_eq!(cap(Quality::Auto, Some(500)), Some(2));
        assert_eq!(cap(Quality::Auto, Some(150)), None, "below the lowest rung: audio only");
        let fixed = resolve(&profile(&[]), Size { width: 1280, height: 720 }, 30);
        assert_eq!(pick(&fixed, ReceiverCap { quality: Quality::Auto, max_kbps: Some(100) }), Some(0));
    }

    /// An encoder three times slower than the canvas: what it could not take is counted as
    /// dropped, what it did as encoded, and every frame is one or the other (or still waiting).
    #[test]
    fn frames_an_encoder_cannot_keep_up_with_are_counted_as_dropped() {
        gst::init().unwrap();
        let pipeline = gst::Pipeline::new();
        let src = gst::ElementFactory::make("videotestsrc").property("is-live", true).build().unwrap();
        let caps = gst::ElementFactory::make("capsfilter")
            .property("caps", gst::Caps::builder("video/x-raw").field("width", 160).field("height", 90).field("framerate", gst::Fraction::new(30, 1)).build())
            .build()
            .unwrap();
        let canvas = gst::ElementFactory::make("tee").property("allow-not-linked", true).build().unwrap();
        pipeline.add_many([&src, &caps, &canvas]).unwrap();
        gst::Element::link_many([&src, &caps, &canvas]).unwrap();
        // 100 ms a frame: 10 of the canvas's 30 a second.
        let slow = EncoderProfile { codec: VideoCodec::Vp8, encoder: "identity sleep-time=100000".into(), rungs: vec![], ..profile(&[]) };
        let other = EncoderProfile { codec: VideoCodec::H264, ..slow.clone() };
        let mut ladder = Ladder::new([&slow, &other], Size { width: 160, height: 90 }, 30);
        ladder.attach(&pipeline, &canvas, VideoCodec::Vp8, 0).unwrap();
        pipeline.set_state(gst::State::Playing).unwrap();
        std::thread::sleep(Duration::from_secs(2));
        // Stopped first, so that the counts hold still while they are read (what the queue
        // held when it stopped counts as dropped).
        pipeline.set_state(gst::State::Null).unwrap();
        let stats = ladder.stats();
        let queued = ladder.running[&(VideoCodec::Vp8, 0)].counts.queued.load(Ordering::Relaxed);
        let [s] = stats.as_slice() else { panic!("one encoder: {stats:?}") };
        assert!((12..=24).contains(&s.encoded), "about 10 a second encoded: {s:?}");
        assert!(s.dropped >= 25, "the rest dropped: {s:?} of {queued}");
        assert!(s.waiting <= ENCODER_QUEUE_BUFFERS, "{s:?}");
        // One frame may be inside the encoder, between the queue and its output.
        let accounted = s.encoded + s.dropped + u64::from(s.waiting);
        assert!(accounted <= queued && queued <= accounted + 1, "{s:?}: {accounted} of {queued}");
    }
}
