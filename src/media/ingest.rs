//! A publisher (WHIP session): webrtcbin in, a tile on the canvas and a voice in the mix.
//!
//! The fixed part of the branch (scaler to the tile size, audio conversion into the mixer's
//! appsink) is built with the session; webrtcbin's `pad-added` only links a depayloader and
//! decoder in front of it. EOS from the network never passes: a peer that says goodbye or
//! vanishes leaves its tile to be removed by the room, never the mixer's output to end.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use gst::prelude::*;

use super::mixer::InputFeed;
use super::peer::{make, Liveness};
use super::pipeline::gst_err;
use super::MediaError;

/// Names of the fixed elements inside a publisher bin that decoders link to.
pub const VIDEO_HEAD: &str = "vhead";
const AUDIO_HEAD: &str = "ahead";

/// Adds the audio tail (decoded audio → 48 kHz mono S16 → mixer queue) to `bin`.
pub fn add_audio_tail(bin: &gst::Bin, feed: InputFeed) -> Result<(), MediaError> {
    let convert = make("audioconvert", AUDIO_HEAD)?;
    let resample = make("audioresample", "aresample")?;
    let caps = make("capsfilter", "amix-caps")?;
    caps.set_property(
        "caps",
        gst::Caps::builder("audio/x-raw")
            .field("format", "S16LE")
            .field("layout", "interleaved")
            .field("rate", super::audio_mix::SAMPLE_RATE as i32)
            .field("channels", 1)
            .build(),
    );
    let sink = gst_app::AppSink::builder()
        .name("amix-sink")
        .sync(false)
        .async_(false)
        .max_buffers(50)
        .drop(true)
        .callbacks(
            gst_app::AppSinkCallbacks::builder()
                .new_sample(move |sink| {
                    let sample = sink.pull_sample().map_err(|_| gst::FlowError::Flushing)?;
                    if let Some(map) = sample.buffer().and_then(|b| b.map_readable().ok()) {
                        let samples: Vec<i16> =
                            map.chunks_exact(2).map(|b| i16::from_le_bytes([b[0], b[1]])).collect();
                        feed.push(&samples);
                    }
                    Ok(gst::FlowSuccess::Ok)
                })
                .build(),
        )
        .build();
    let elements = [&convert, &resample, &caps, sink.upcast_ref()];
    bin.add_many(elements).map_err(gst_err)?;
    gst::Element::link_many(elements).map_err(gst_err)?;
    for e in elements {
        e.sync_state_with_parent().map_err(gst_err)?;
    }
    Ok(())
}

/// Links every stream webrtcbin decrypts to a decoder in front of the matching tail.
/// Runs on a GStreamer streaming thread: it only builds and links elements.
/// Whether a publisher's video is decoded. A tile that is not in the picture (no room in the
/// layout, not on stage) costs no decode: its packets are dropped before the depayloader, and
/// when it comes back a keyframe is requested from the publisher.
#[derive(Clone, Default)]
pub struct VideoGate {
    closed: Arc<AtomicBool>,
    decoder: Arc<Mutex<Option<gst::Pad>>>,
}

impl VideoGate {
    pub fn close(&self) {
        self.closed.store(true, Ordering::Relaxed);
    }

    pub fn open(&self) {
        if self.closed.swap(false, Ordering::Relaxed) {
            // The decoder lost its reference frames while closed: ask for a keyframe (a PLI
            // to the publisher).
            let pad = self.decoder.lock().unwrap_or_else(|p| p.into_inner()).clone();
            if let Some(pad) = pad {
                pad.push_event(gst_video::UpstreamForceKeyUnitEvent::builder().all_headers(true).build());
            }
        }
    }
}

pub fn on_incoming_streams(webrtc: &gst::Element, liveness: Liveness, gate: VideoGate) {
    // The jitterbuffer tells the decoders what never came (Opus then rebuilds it from the next
    // packet's FEC or conceals it; a video depayloader knows its frame is broken).
    if let Some(rtpbin) = webrtc.downcast_ref::<gst::Bin>().and_then(|b| b.by_name("rtpbin")) {
        rtpbin.set_property("do-lost", true);
        // No lip-sync offsets from the publisher's sender reports. rtpbin delays whichever of
        // a publisher's streams is ahead by a timestamp offset (its sound often by 200-260 ms,
        // as its picture waits for the encoder); the mixer takes sound as it comes, so the offset only moved
        // every lost packet's deadline in the jitterbuffer: the voice was held 260 ms behind
        // each loss, more than its playout queue takes, and a fifth of it was lost at 5 %
        // loss (in about one session in five, whenever the first report set an offset). Any
        // offset above 1 ns is now ignored.
        rtpbin.set_property("max-ts-offset", 1i64);
    }
    webrtc.connect_pad_added(move |webrtc, pad| {
        if pad.direction() != gst::PadDirection::Src {
            return;
        }
        pad.add_probe(gst::PadProbeType::EVENT_DOWNSTREAM, |_, info| match info.event() {
            Some(e) if e.type_() == gst::EventType::Eos => gst::PadProbeReturn::Drop,
            _ => gst::PadProbeReturn::Ok,
        });
        let is_video = pad
            .current_caps()
            .and_then(|c| c.structure(0).and_then(|s| s.get::<&str>("media").ok()).map(|m| m == "video"))
            .unwrap_or(false);
        let live = liveness.clone();
        let closed = is_video.then(|| gate.closed.clone());
        pad.add_probe(gst::PadProbeType::BUFFER, move |_, _| {
            live.touch();
            match &closed {
                Some(c) if c.load(Ordering::Relaxed) => gst::PadProbeReturn::Drop,
                _ => gst::PadProbeReturn::Ok,
            }
        });
        match link_decoder(webrtc, pad) {
            Ok(()) if is_video => *gate.decoder.lock().unwrap_or_else(|p| p.into_inner()) = pad.peer(),
            Ok(()) => {}
            Err(e) => tracing::warn!("incoming stream not decoded: {e}"),
        }
    });
}

fn link_decoder(webrtc: &gst::Element, pad: &gst::Pad) -> Result<(), MediaError> {
    let bin = webrtc
        .parent()
        .and_then(|p| p.downcast::<gst::Bin>().ok())
        .ok_or_else(|| MediaError::Internal("webrtcbin outside its session bin".into()))?;
    let caps = pad.current_caps().or_else(|| pad.allowed_caps()).ok_or_else(|| MediaError::Internal("pad without caps".into()))?;
    let s = caps.structure(0).ok_or_else(|| MediaError::Internal("empty caps".into()))?;
    let encoding = s.get::<&str>("encoding-name").unwrap_or("").to_ascii_uppercase();
    let (description, head) = match encoding.as_str() {
        "VP8" => ("rtpvp8depay request-keyframe=true wait-for-keyframe=true ! vp8dec", VIDEO_HEAD),
        "H264" => (
            "rtph264depay request-keyframe=true wait-for-keyframe=true ! h264parse ! avdec_h264",
            VIDEO_HEAD,
        ),
        // A lost packet is rebuilt from the next one's in-band FEC where the publisher sends it
        // (browsers do once their reports show loss), else concealed.
        "OPUS" => ("rtpopusdepay ! opusdec plc=true use-inband-fec=true", AUDIO_HEAD),
        _ => ("fakesink", ""),
    };
    let decoder = gst::parse::bin_from_description(description, true).map_err(gst_err)?;
    bin.add(&decoder).map_err(gst_err)?;
    let sink = decoder.static_pad("sink").ok_or_else(|| MediaError::Internal("decoder without sink".into()))?;
    pad.link(&sink).map_err(gst_err)?;
    let head = bin.by_name(head).filter(|h| h.static_pad("sink").is_some_and(|p| !p.is_linked()));
    match (decoder.static_pad("src"), head) {
        (Some(src), Some(head)) => {
            src.link(&head.static_pad("sink").expect("head has a sink pad")).map_err(gst_err)?;
        }
        (Some(src), None) => {
            // A second stream of a kind, or one the offer plan did not expect: decode nothing.
            let sink = make("fakesink", &format!("unused-{}", pad.name()))?;
            bin.add(&sink).map_err(gst_err)?;
            src.link(&sink.static_pad("sink").expect("fakesink has a sink pad")).map_err(gst_err)?;
            sink.sync_state_with_parent().map_err(gst_err)?;
        }
        (None, _) => {}
    }
    decoder.sync_state_with_parent().map_err(gst_err)?;
    Ok(())
}
