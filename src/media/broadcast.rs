//! The room's broadcast: what its recordings (and live streams) are made of. Encoded once per
//! room, whatever the number of outputs: the picture is the H.264 top rung the room's H.264
//! viewers get (taken as one more user of it), the sound one AAC encode of the full mix. Both
//! end in appsinks whose samples go to the outputs' own pipelines ([`crate::outputs::Fanout`]).
//!
//! ```text
//!  H.264 top rung tee ─▶ queue (leaky) ─▶ appsink ─┐
//!  mixer (full mix) ─▶ appsrc ─▶ avenc_aac ─▶ aacparse ─▶ appsink ─┴─▶ Fanout ─▶ outputs
//! ```

use std::sync::Arc;

use gst::prelude::*;

use super::peer::make;
use super::pipeline::{gst_err, mix_appsrc, AppSrcSink, RoomPipeline};
use super::MediaError;
use crate::outputs::Fanout;
use crate::profiles::VideoCodec;

/// The broadcast's sound: AAC (FLV and HLS players need it), mono like the mix.
const AAC_BITRATE: i32 = 96_000;
/// Pictures queued for the outputs before the oldest are dropped (the room never waits).
const QUEUE_BUFFERS: u32 = 60;
/// A keyframe at least this often while outputs run: HLS segments and a player joining a live
/// stream start at one (the WebRTC viewers of the same encode get them too).
pub const GOP: std::time::Duration = std::time::Duration::from_secs(2);

pub struct Broadcast {
    elements: Vec<gst::Element>,
    tee_pad: gst::Pad,
    tee: gst::Element,
    pub fanout: Arc<Fanout>,
    last_keyframe: std::time::Instant,
}

/// The rung the broadcast takes: the top one (the canvas).
const RUNG: usize = 0;

impl Broadcast {
    /// Starts the room's broadcast encode (the H.264 top rung if nobody watches it yet, the AAC
    /// of the mix) and its fan-out to outputs.
    pub fn start(pipe: &mut RoomPipeline) -> Result<Self, MediaError> {
        let fanout = Arc::new(Fanout::default());
        let tee = pipe.video_tee(VideoCodec::H264, RUNG)?;
        match Self::build(pipe, &tee, fanout.clone()) {
            Ok((elements, tee_pad)) => {
                pipe.force_keyframe(VideoCodec::H264, RUNG);
                Ok(Self { elements, tee_pad, tee, fanout, last_keyframe: std::time::Instant::now() })
            }
            Err(e) => {
                pipe.release_video(VideoCodec::H264, RUNG);
                Err(e)
            }
        }
    }

    fn build(pipe: &RoomPipeline, tee: &gst::Element, fanout: Arc<Fanout>) -> Result<(Vec<gst::Element>, gst::Pad), MediaError> {
        let queue = make("queue", "bcast-vqueue")?;
        queue.set_property_from_str("leaky", "downstream");
        queue.set_property("max-size-buffers", QUEUE_BUFFERS);
        queue.set_property("max-size-bytes", 0u32);
        queue.set_property("max-size-time", 0u64);
        let video_sink = appsink("bcast-vsink", fanout.clone(), |f, s, t| f.video(s, t));
        let audio_src = mix_appsrc("bcast-asrc");
        let convert = make("audioconvert", "bcast-aconvert")?;
        let aac = make("avenc_aac", "bcast-aac")?;
        aac.set_property("bitrate", AAC_BITRATE);
        let parse = make("aacparse", "bcast-aparse")?;
        let audio_sink = appsink("bcast-asink", fanout, |f, s, t| f.audio(s, t));
        let elements: Vec<gst::Element> =
            vec![queue.clone(), video_sink.upcast(), audio_src.clone().upcast(), convert, aac, parse, audio_sink.upcast()];
        pipe.pipeline.add_many(&elements).map_err(gst_err)?;
        gst::Element::link(&elements[0], &elements[1]).map_err(gst_err)?;
        gst::Element::link_many(&elements[2..]).map_err(gst_err)?;
        for e in &elements {
            e.sync_state_with_parent().map_err(gst_err)?;
        }
        let tee_pad = tee.request_pad_simple("src_%u").ok_or_else(|| MediaError::Internal("rung tee gave no pad".into()))?;
        tee_pad.link(&queue.static_pad("sink").expect("a queue has a sink pad")).map_err(gst_err)?;
        pipe.mixer.set_broadcast(Some(Box::new(AppSrcSink::new(audio_src))));
        Ok((elements, tee_pad))
    }

    /// Asks for a keyframe (a new output starts with one).
    pub fn keyframe(&mut self, pipe: &RoomPipeline) {
        pipe.force_keyframe(VideoCodec::H264, RUNG);
        self.last_keyframe = std::time::Instant::now();
    }

    /// On the housekeeping tick: a keyframe every [`GOP`].
    pub fn tick(&mut self, pipe: &RoomPipeline) {
        if self.last_keyframe.elapsed() >= GOP {
            self.keyframe(pipe);
        }
    }

    /// Takes the broadcast out of the room (no output left).
    pub fn stop(self, pipe: &mut RoomPipeline) {
        pipe.mixer.set_broadcast(None);
        let _ = self.tee_pad.unlink(&self.elements[0].static_pad("sink").expect("a queue has a sink pad"));
        self.tee.release_request_pad(&self.tee_pad);
        pipe.discard(self.elements);
        pipe.release_video(VideoCodec::H264, RUNG);
    }
}

/// An appsink that hands each sample, with its running time, to `forward`; never syncs to
/// the clock and never blocks the room (it drops when its consumer is slow, which it is not:
/// forwarding only queues).
fn appsink(name: &str, fanout: Arc<Fanout>, forward: fn(&Fanout, &gst::Sample, gst::ClockTime)) -> gst_app::AppSink {
    let sink = gst_app::AppSink::builder().name(name).sync(false).async_(false).max_buffers(30).drop(true).build();
    sink.set_callbacks(
        gst_app::AppSinkCallbacks::builder()
            .new_sample(move |s| {
                let sample = s.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                let running = sample.buffer().and_then(|b| b.pts()).and_then(|pts| {
                    sample.segment().and_then(|seg| seg.downcast_ref::<gst::ClockTime>()).and_then(|seg| seg.to_running_time(pts))
                });
                if let Some(running) = running {
                    forward(&fanout, &sample, running);
                }
                Ok(gst::FlowSuccess::Ok)
            })
            .build(),
    );
    sink
}
