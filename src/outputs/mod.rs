//! Where a room goes beyond its participants: recordings on the server's disk, live streams to
//! RTMP and SRT servers, and the public broadcast over HLS. Every output is a consumer of the room's broadcast (the room's H.264
//! composite and one AAC encode of the full mix, see `media::broadcast`), like a viewer; each
//! runs in its own small pipeline fed through appsrc, so its failure, EOS or a slow disk never
//! reaches the room's pipeline: when an output falls behind, its own queue drops.
//!
//! ```text
//!  room pipeline                                   │ an output's pipeline
//!  H.264 top rung ─▶ appsink ─┐                    │
//!  full mix ─▶ AAC ─▶ appsink ─┴─▶ Fanout ─▶ Feed ─▶ appsrc (video) ─▶ h264parse ─┐
//!                                                  │ appsrc (audio) ─▶ aacparse  ─┴─▶ mux ─▶ sink
//! ```

pub mod hls;
pub mod live;
pub mod recording;

use std::sync::{Arc, Mutex, MutexGuard};

use gst::prelude::*;

/// What an output's appsrc holds before it drops (a stalled disk or peer).
const FEED_MAX_BYTES: u64 = 16 * 1024 * 1024;
/// How long a stopping output may take to write its end before it is cut.
const STOP_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The broadcast's encoded streams, handed to every running output. Called from the room
/// pipeline's streaming threads: it only stamps and queues.
#[derive(Default)]
pub struct Fanout {
    feeds: Mutex<Vec<Arc<Feed>>>,
}

impl Fanout {
    pub fn add(&self, feed: Arc<Feed>) {
        lock(&self.feeds).push(feed);
    }

    pub fn remove(&self, feed: &Arc<Feed>) {
        lock(&self.feeds).retain(|f| !Arc::ptr_eq(f, feed));
    }

    pub fn is_empty(&self) -> bool {
        lock(&self.feeds).is_empty()
    }

    /// One encoded picture, at `running` (the room pipeline's running time).
    pub fn video(&self, sample: &gst::Sample, running: gst::ClockTime) {
        for feed in lock(&self.feeds).iter() {
            feed.video(sample, running);
        }
    }

    /// One encoded piece of the mix, at `running`.
    pub fn audio(&self, sample: &gst::Sample, running: gst::ClockTime) {
        for feed in lock(&self.feeds).iter() {
            feed.audio(sample, running);
        }
    }
}

/// One output's inputs. It starts at the first keyframe that reaches it; its timestamps count
/// from there, so every output's file or stream begins at zero with a decodable picture.
pub struct Feed {
    video: gst_app::AppSrc,
    audio: gst_app::AppSrc,
    base: Mutex<Option<gst::ClockTime>>,
}

impl Feed {
    fn new(video: gst_app::AppSrc, audio: gst_app::AppSrc) -> Self {
        for src in [&video, &audio] {
            src.set_format(gst::Format::Time);
            src.set_is_live(false);
            src.set_do_timestamp(false);
            src.set_max_bytes(FEED_MAX_BYTES);
            src.set_leaky_type(gst_app::AppLeakyType::Downstream);
        }
        Self { video, audio, base: Mutex::new(None) }
    }

    fn video(&self, sample: &gst::Sample, running: gst::ClockTime) {
        let Some(buffer) = sample.buffer() else { return };
        let base = {
            let mut base = lock(&self.base);
            if base.is_none() {
                if buffer.flags().contains(gst::BufferFlags::DELTA_UNIT) {
                    return;
                }
                *base = Some(running);
                if let Some(caps) = sample.caps() {
                    self.video.set_caps(Some(&caps.to_owned()));
                }
            }
            base.unwrap_or(running)
        };
        push(&self.video, buffer, running.saturating_sub(base));
    }

    fn audio(&self, sample: &gst::Sample, running: gst::ClockTime) {
        let Some(buffer) = sample.buffer() else { return };
        let Some(base) = *lock(&self.base) else { return };
        if running < base {
            return;
        }
        if self.audio.caps().is_none() {
            if let Some(caps) = sample.caps() {
                self.audio.set_caps(Some(&caps.to_owned()));
            }
        }
        push(&self.audio, buffer, running - base);
    }

    /// Whether the output has begun (its first keyframe came).
    pub fn started(&self) -> bool {
        lock(&self.base).is_some()
    }

    fn finish(&self) {
        let _ = self.video.end_of_stream();
        let _ = self.audio.end_of_stream();
    }
}

fn push(src: &gst_app::AppSrc, buffer: &gst::BufferRef, pts: gst::ClockTime) {
    let mut out = buffer.copy();
    {
        let b = out.make_mut();
        b.set_pts(pts);
        b.set_dts(pts);
    }
    // Refused only while the output stops; its queue drops on its own when full.
    let _ = src.push_buffer(out);
}

/// An output's own pipeline: two appsrcs named `video` and `audio` in `description`, fed from
/// the room's [`Fanout`].
pub struct OutputPipeline {
    pipeline: gst::Pipeline,
    pub feed: Arc<Feed>,
    failed: Arc<Mutex<Option<String>>>,
}

#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    #[error("output pipeline: {0}")]
    Build(String),
    #[error("output did not start: {0}")]
    Start(String),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

impl OutputPipeline {
    /// Builds and starts `description`; `configure` sets what cannot be written in it (a
    /// file path).
    pub fn start(name: &str, description: &str, configure: impl FnOnce(&gst::Bin) -> Result<(), OutputError>) -> Result<Self, OutputError> {
        let output = Self::build(name, description, configure)?;
        output.pipeline.set_state(gst::State::Playing).map_err(|e| OutputError::Start(e.to_string()))?;
        Ok(output)
    }

    /// The same, started off the caller's thread: a sink that connects while it starts (an SRT
    /// caller whose listener does not answer, an RTMP server behind a dropped route) would
    /// hold the room's task for its connect timeout. A failure to start shows in
    /// [`OutputPipeline::failure`].
    pub fn start_detached(name: &str, description: &str, configure: impl FnOnce(&gst::Bin) -> Result<(), OutputError>) -> Result<Self, OutputError> {
        let output = Self::build(name, description, configure)?;
        let (pipeline, failed) = (output.pipeline.clone(), output.failed.clone());
        std::thread::spawn(move || {
            if let Err(e) = pipeline.set_state(gst::State::Playing) {
                lock(&failed).get_or_insert_with(|| format!("the output did not start: {e}"));
            }
        });
        Ok(output)
    }

    fn build(name: &str, description: &str, configure: impl FnOnce(&gst::Bin) -> Result<(), OutputError>) -> Result<Self, OutputError> {
        let element = gst::parse::launch(description).map_err(|e| OutputError::Build(e.to_string()))?;
        let pipeline = element.downcast::<gst::Pipeline>().map_err(|_| OutputError::Build("not a pipeline".into()))?;
        pipeline.set_property("name", name);
        let appsrc = |n: &str| {
            pipeline
                .by_name(n)
                .and_then(|e| e.downcast::<gst_app::AppSrc>().ok())
                .ok_or_else(|| OutputError::Build(format!("no appsrc named {n}")))
        };
        let feed = Arc::new(Feed::new(appsrc("video")?, appsrc("audio")?));
        configure(pipeline.upcast_ref())?;
        let failed = Arc::new(Mutex::new(None));
        let bus = pipeline.bus().ok_or_else(|| OutputError::Build("no bus".into()))?;
        let seen = failed.clone();
        // Only what `stop` waits for stays on the bus: nobody reads the rest, and an output
        // runs for hours.
        bus.set_sync_handler(move |_, msg| match msg.view() {
            gst::MessageView::Error(e) => {
                lock(&seen).get_or_insert_with(|| e.error().to_string());
                gst::BusSyncReply::Pass
            }
            gst::MessageView::Eos(_) => gst::BusSyncReply::Pass,
            _ => gst::BusSyncReply::Drop,
        });
        Ok(Self { pipeline, feed, failed })
    }

    /// What went wrong in the output's pipeline, if anything did.
    pub fn failure(&self) -> Option<String> {
        lock(&self.failed).clone()
    }

    /// Ends the streams (the muxer writes its end) and stops the pipeline, off the caller's
    /// task; at most [`STOP_TIMEOUT`].
    pub fn stop(self) {
        self.feed.finish();
        let pipeline = self.pipeline;
        std::thread::spawn(move || {
            if let Some(bus) = pipeline.bus() {
                let _ = bus.timed_pop_filtered(gst::ClockTime::from_nseconds(STOP_TIMEOUT.as_nanos() as u64), &[gst::MessageType::Eos, gst::MessageType::Error]);
            }
            let _ = pipeline.set_state(gst::State::Null);
        });
    }
}
