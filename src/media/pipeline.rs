//! The room's pipeline and its shared parts: the compositor, the encoding ladder per codec
//! (see [`super::ladder`]), one Opus encode per mix.
//!
//! ```text
//!  tiles ─▶ compositor ─▶ I420 canvas ─▶ tee ─▶ rungs of the vp8 profile  ─▶ tee per rung ─▶ viewers
//!                                           └─▶ rungs of the h264 profile ─▶ tee per rung ─▶ viewers
//!  mixer thread ─▶ appsrc (full mix)  ─▶ opusenc ─▶ tee ─▶ listeners
//!              └─▶ appsrc (minus X)   ─▶ opusenc ─▶ tee ─▶ X's own viewer
//! ```
//! Encoders and mix outputs are created when the first viewer needs them: a room is encoded
//! once per codec and rung and once per distinct mix, never per viewer.

use std::collections::HashMap;
use std::sync::Arc;

use gst::prelude::*;

use super::ladder::{Ladder, LiveRung};
use super::mixer::{LevelSink, MixKey, MixSink, Mixer};
use super::peer::make;
use super::{MediaConfig, MediaError};
use crate::profiles::VideoCodec;
use crate::room::layout::Rect;

/// How long the compositor waits beyond the jitterbuffer for a tile's frame before it
/// composites without it. It is most of the picture's delay; decoding a frame takes a few ms.
const COMPOSITOR_HEADROOM_MS: u64 = 30;
/// Bitrate of every Opus mix: mono speech (and some music) in full band; low enough that the
/// sound and the lowest rung fit a 250 kbit/s link with room for bursts.
const OPUS_BITRATE: i32 = 32_000;

struct AudioOut {
    encoder: gst::Element,
    tee: gst::Element,
    elements: Vec<gst::Element>,
    users: usize,
}

pub struct RoomPipeline {
    pub pipeline: gst::Pipeline,
    compositor: gst::Element,
    canvas_tee: gst::Element,
    ladder: Ladder,
    audio_outs: HashMap<MixKey, AudioOut>,
    /// Names mix outputs uniquely (outputs come and go; a pipeline wants unique names).
    outputs_built: u64,
    /// What the Opus encoders are told to expect (percent), see [`RoomPipeline::expect_audio_loss`].
    expected_loss: i32,
    pub mixer: Mixer,
}

impl RoomPipeline {
    pub fn new(room: &str, cfg: Arc<MediaConfig>, levels: LevelSink) -> Result<Self, MediaError> {
        let pipeline = gst::Pipeline::with_name(&format!("room-{room}"));
        // force-live: the canvas runs (black) before anyone publishes and after everyone left.
        let upstream_latency = gst::ClockTime::from_mseconds(u64::from(cfg.jitterbuffer_ms) + COMPOSITOR_HEADROOM_MS);
        let compositor = gst::ElementFactory::make("compositor")
            .name("vmix")
            .property("force-live", true)
            .property_from_str("start-time-selection", "zero")
            .property_from_str("background", "black")
            .property("ignore-inactive-pads", true)
            .property("min-upstream-latency", upstream_latency.nseconds())
            .build()
            .map_err(|_| MediaError::Element("compositor".into()))?;
        let canvas_caps = make("capsfilter", "canvas-caps")?;
        canvas_caps.set_property(
            "caps",
            gst::Caps::builder("video/x-raw")
                .field("format", "I420")
                .field("width", cfg.canvas.width as i32)
                .field("height", cfg.canvas.height as i32)
                .field("framerate", gst::Fraction::new(cfg.fps as i32, 1))
                .field("pixel-aspect-ratio", gst::Fraction::new(1, 1))
                .build(),
        );
        let canvas_tee = make("tee", "canvas-tee")?;
        canvas_tee.set_property("allow-not-linked", true);
        // Every composed frame counted: the operator's view of the room's frame rate.
        let frames = crate::metrics::metrics().composite_frames.get_or_create(&crate::metrics::RoomLabels { room: room.to_string() }).clone();
        if let Some(pad) = canvas_tee.static_pad("sink") {
            pad.add_probe(gst::PadProbeType::BUFFER, move |_, _| {
                frames.inc();
                gst::PadProbeReturn::Ok
            });
        }
        pipeline.add_many([&compositor, &canvas_caps, &canvas_tee]).map_err(gst_err)?;
        gst::Element::link_many([&compositor, &canvas_caps, &canvas_tee]).map_err(gst_err)?;
        let mixer = Mixer::start(room, levels).map_err(|e| MediaError::Internal(format!("mixer thread: {e}")))?;
        pipeline
            .set_state(gst::State::Playing)
            .map_err(|_| MediaError::Internal("room pipeline refused to start".into()))?;
        Ok(Self {
            pipeline,
            compositor,
            canvas_tee,
            ladder: Ladder::new([&cfg.vp8_profile, &cfg.h264_profile], cfg.canvas, cfg.fps),
            audio_outs: HashMap::new(),
            outputs_built: 0,
            expected_loss: 0,
            mixer,
        })
    }

    /// A compositor input for one publisher's tile (hidden until laid out).
    pub fn request_tile(&self) -> Result<gst::Pad, MediaError> {
        let pad = self
            .compositor
            .request_pad_simple("sink_%u")
            .ok_or_else(|| MediaError::Internal("compositor gave no sink pad".into()))?;
        pad.set_property("alpha", 0.0f64);
        Ok(pad)
    }

    pub fn place_tile(pad: &gst::Pad, rect: Rect) {
        pad.set_property("xpos", rect.x as i32);
        pad.set_property("ypos", rect.y as i32);
        pad.set_property("width", rect.width as i32);
        pad.set_property("height", rect.height as i32);
        pad.set_property("alpha", 1.0f64);
    }

    /// Hides the tile at once, then gives the input back to the compositor.
    pub fn release_tile(&self, pad: &gst::Pad) {
        pad.set_property("alpha", 0.0f64);
        if let Some(peer) = pad.peer() {
            let _ = peer.unlink(pad);
        }
        self.compositor.release_request_pad(pad);
    }

    /// The rungs a viewer of `codec` may be on, top first.
    pub fn rungs(&self, codec: VideoCodec) -> &[LiveRung] {
        self.ladder.rungs(codec)
    }

    /// The encoded stream of `codec`'s rung `rung`, starting its encoder on first use; counts
    /// one more user (undone with [`RoomPipeline::release_video`]).
    pub fn video_tee(&mut self, codec: VideoCodec, rung: usize) -> Result<gst::Element, MediaError> {
        self.ladder.attach(&self.pipeline, &self.canvas_tee, codec, rung)
    }

    pub fn release_video(&mut self, codec: VideoCodec, rung: usize) {
        self.ladder.detach(codec, rung);
    }

    /// Stops the lower rungs nobody has used for a while.
    pub fn reap_rungs(&mut self) {
        let idle = self.ladder.reap(&self.canvas_tee);
        if !idle.is_empty() {
            self.discard(idle);
        }
    }

    /// What each running encoder has done so far.
    pub fn encoder_stats(&self) -> Vec<super::ladder::EncoderStats> {
        self.ladder.stats()
    }

    /// Asks a rung's encoder for a keyframe (throttled, see [`super::ladder`]).
    pub fn force_keyframe(&self, codec: VideoCodec, rung: usize) {
        crate::metrics::metrics().keyframe_requests.inc();
        self.ladder.force_keyframe(codec, rung);
    }

    /// The Opus stream for mix `key`, building it on first use; counts one more user.
    pub fn audio_tee(&mut self, key: MixKey) -> Result<gst::Element, MediaError> {
        if let Some(out) = self.audio_outs.get_mut(&key) {
            out.users += 1;
            return Ok(out.tee.clone());
        }
        self.outputs_built += 1;
        let n = self.outputs_built;
        let appsrc = mix_appsrc(&format!("amix-src-{n}"));
        let encoder = make("opusenc", &format!("amix-enc-{n}"))?;
        encoder.set_property("bitrate", OPUS_BITRATE);
        encoder.set_property("inband-fec", true);
        encoder.set_property("packet-loss-percentage", self.expected_loss);
        let tee = make("tee", &format!("amix-tee-{n}"))?;
        tee.set_property("allow-not-linked", true);
        let elements = vec![appsrc.clone().upcast::<gst::Element>(), encoder.clone(), tee.clone()];
        self.pipeline.add_many(&elements).map_err(gst_err)?;
        gst::Element::link_many(&elements).map_err(gst_err)?;
        for e in &elements {
            e.sync_state_with_parent().map_err(gst_err)?;
        }
        self.mixer.add_output(key.clone(), Box::new(AppSrcSink::new(appsrc)));
        self.audio_outs.insert(key, AudioOut { encoder, tee: tee.clone(), elements, users: 1 });
        Ok(tee)
    }

    /// The loss (percent) the worst receivers see: Opus puts that much redundancy (in-band FEC)
    /// into every mix, so a lost packet's speech is recovered from the next one.
    pub fn expect_audio_loss(&mut self, percent: i32) {
        if percent == self.expected_loss {
            return;
        }
        self.expected_loss = percent;
        tracing::debug!(percent, "audio redundancy for the worst receiver's loss");
        for out in self.audio_outs.values() {
            out.encoder.set_property("packet-loss-percentage", percent);
        }
    }

    /// One user fewer for mix `key`; a talker's own mix is torn down with its last user. The
    /// full mix stays: the next listener is likely to come.
    pub fn release_audio(&mut self, key: MixKey) {
        let Some(out) = self.audio_outs.get_mut(&key) else { return };
        out.users = out.users.saturating_sub(1);
        if out.users > 0 || key.is_none() {
            return;
        }
        self.mixer.remove_output(&key);
        if let Some(out) = self.audio_outs.remove(&key) {
            self.discard(out.elements);
        }
    }

    /// Takes elements out of the running pipeline and stops them off the calling task (a
    /// state change can wait for a streaming thread). They are kept alive until stopped.
    pub fn discard(&self, elements: Vec<gst::Element>) {
        for e in &elements {
            let _ = e.set_locked_state(true);
        }
        let _ = self.pipeline.remove_many(&elements);
        tokio::task::spawn_blocking(move || {
            for e in &elements {
                let _ = e.set_state(gst::State::Null);
            }
        });
    }
}

/// A live source of one mix (48 kHz mono S16), stamped by [`AppSrcSink`]; it drops rather
/// than blocks the mixer when its branch falls behind.
pub fn mix_appsrc(name: &str) -> gst_app::AppSrc {
    gst_app::AppSrc::builder()
        .name(name)
        .caps(
            &gst::Caps::builder("audio/x-raw")
                .field("format", "S16LE")
                .field("layout", "interleaved")
                .field("rate", super::audio_mix::SAMPLE_RATE as i32)
                .field("channels", 1)
                .build(),
        )
        .is_live(true)
        .format(gst::Format::Time)
        // Stamped by `AppSrcSink` from the samples it counted.
        .do_timestamp(false)
        .min_latency(0)
        .max_latency(gst::ClockTime::SECOND.nseconds() as i64)
        .max_time(Some(gst::ClockTime::from_mseconds(200)))
        .leaky_type(gst_app::AppLeakyType::Downstream)
        .build()
}

/// One mix into its encoder, stamped from the samples counted since the first push.
///
/// Not with the clock's time at each push (appsrc's `do-timestamp`): the mixer's 10 ms ticks
/// come a fraction of a millisecond early or late, the Opus packets then had RTP timestamps
/// 950..970 apart for 960 samples, and a browser conceals every gap between two packets'
/// samples: headless chromium concealed a third of all it played. The mixer keeps its ticks
/// in step with the clock (it catches up when late), so counted time stays with real time;
/// when it gives up catching up (samples skipped), the stamps start again from the clock.
pub struct AppSrcSink {
    src: gst_app::AppSrc,
    /// Running time of the first sample since the last resynchronisation, and samples since.
    base: std::cell::Cell<Option<gst::ClockTime>>,
    counted: std::cell::Cell<u64>,
}

/// Counted time this far from the clock means samples were skipped: start again.
const RESYNC_AFTER: std::time::Duration = super::mixer::MAX_LAG.saturating_add(std::time::Duration::from_millis(50));

impl AppSrcSink {
    pub fn new(src: gst_app::AppSrc) -> Self {
        Self { src, base: std::cell::Cell::new(None), counted: std::cell::Cell::new(0) }
    }

    fn samples_time(n: u64) -> gst::ClockTime {
        gst::ClockTime::from_nseconds(n * 1_000_000_000 / u64::from(super::audio_mix::SAMPLE_RATE))
    }
}

impl MixSink for AppSrcSink {
    fn push(&self, samples: &[i16]) {
        // Not playing yet: nobody listens, nothing to stamp against.
        let Some(now) = self.src.current_running_time() else { return };
        let expected = self.base.get().map(|b| b + Self::samples_time(self.counted.get()));
        let in_step = expected.is_some_and(|e| e.nseconds().abs_diff(now.nseconds()) <= RESYNC_AFTER.as_nanos() as u64);
        if !in_step {
            self.base.set(Some(now));
            self.counted.set(0);
        }
        let Some(base) = self.base.get() else { return };
        let start = base + Self::samples_time(self.counted.get());
        self.counted.set(self.counted.get() + samples.len() as u64);
        let end = base + Self::samples_time(self.counted.get());
        let bytes: Vec<u8> = samples.iter().flat_map(|s| s.to_le_bytes()).collect();
        let mut buffer = gst::Buffer::from_mut_slice(bytes);
        {
            let b = buffer.get_mut().expect("a new buffer is writable");
            b.set_pts(start);
            b.set_duration(end - start);
            if !in_step {
                b.set_flags(gst::BufferFlags::DISCONT);
            }
        }
        // Flushing (room shutting down) is the only expected failure; nothing to do about it.
        let _ = self.src.push_buffer(buffer);
    }
}

pub use super::gst_err;
