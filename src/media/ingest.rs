//! A publisher (WHIP session): webrtcbin in, a tile on the canvas and a voice in the mix.
//!
//! The fixed part of the branch (scaler to the tile size, audio conversion into the mixer's
//! appsink) is built with the session; webrtcbin's `pad-added` only links a depayloader and
//! decoder in front of it. EOS from the network never passes: a peer that says goodbye or
//! vanishes leaves its tile to be removed by the room, never the mixer's output to end.

use gst::prelude::*;

use super::mixer::InputFeed;
use super::peer::{make, Liveness};
use super::pipeline::gst_err;
use super::MediaError;

/// A publisher's decoded video on its way to the canvas.
///
/// The compositor input is only requested when the first decoded frame is ready: a compositor
/// pad without data makes the whole canvas wait for it once (up to the mixer latency), which
/// every viewer would see as a hiccup at each join.
pub struct Tile {
    ghost: gst::GhostPad,
    scaler_caps: gst::Element,
    /// Turns the black frames of a switched-off camera into a plain grey background.
    balance: gst::Element,
    /// The participant's name (and mute mark) on the tile.
    overlay: gst::Element,
    /// The tile shows a generated background, not a camera (audio-only publisher).
    placeholder: bool,
    hold: Option<gst::PadProbeId>,
    pub mixer_pad: Option<gst::Pad>,
}

/// Label colours (ARGB): white, and amber for the active speaker.
const LABEL_COLOUR: u32 = 0xffff_ffff;
const SPEAKER_COLOUR: u32 = 0xffff_c107;
/// Background of a tile without a camera (ARGB).
pub const PLACEHOLDER_COLOUR: u32 = 0xff37_474f;

impl Tile {
    /// Scales the decoded picture to `rect` (letterboxed) and moves the tile there.
    pub fn place(&self, rect: crate::room::layout::Rect) {
        let caps = gst::Caps::builder("video/x-raw")
            .field("width", rect.width as i32)
            .field("height", rect.height as i32)
            .field("pixel-aspect-ratio", gst::Fraction::new(1, 1))
            .build();
        self.scaler_caps.set_property("caps", caps);
        if let Some(pad) = &self.mixer_pad {
            super::pipeline::RoomPipeline::place_tile(pad, rect);
        }
    }

    /// Shows `label` on the tile. A muted microphone puts a mark before the name; a switched-off
    /// camera turns the tile into the name on a plain background.
    pub fn label(&self, label: &super::TileLabel) {
        let camera_off = label.video_muted || self.placeholder;
        let text = if label.audio_muted { format!("\u{2298} {}", label.name) } else { label.name.clone() };
        self.overlay.set_property("text", text);
        self.overlay.set_property("color", if label.active_speaker { SPEAKER_COLOUR } else { LABEL_COLOUR });
        self.overlay.set_property_from_str("valignment", if camera_off { "center" } else { "bottom" });
        self.overlay.set_property_from_str("halignment", if camera_off { "center" } else { "left" });
        self.overlay.set_property("font-desc", if camera_off { "Sans Bold 24" } else { "Sans Bold 14" });
        let grey = label.video_muted && !self.placeholder;
        self.balance.set_property("brightness", if grey { 0.22f64 } else { 0.0f64 });
    }

    /// Links the tile to `mixer_pad` and lets video flow.
    pub fn connect(&mut self, mixer_pad: gst::Pad) -> Result<(), MediaError> {
        self.ghost.link(&mixer_pad).map_err(gst_err)?;
        self.mixer_pad = Some(mixer_pad);
        if let (Some(id), Some(target)) = (self.hold.take(), self.ghost.target()) {
            target.remove_probe(id);
        }
        Ok(())
    }
}

/// Names of the fixed elements inside a publisher bin that decoders link to.
const VIDEO_HEAD: &str = "vhead";
const AUDIO_HEAD: &str = "ahead";

/// Adds the video tail (decoded video → tile size) to `bin`. `on_first_frame` is called (on a
/// streaming thread) when decoded video arrives; frames are dropped until [`Tile::connect`].
pub fn add_video_tail(
    bin: &gst::Bin,
    placeholder: bool,
    on_first_frame: impl Fn() + Send + Sync + 'static,
) -> Result<Tile, MediaError> {
    let convert = make("videoconvert", VIDEO_HEAD)?;
    let scale = make("videoscale", "vscale")?;
    scale.set_property("add-borders", true);
    let scaler_caps = make("capsfilter", "vtile-caps")?;
    let balance = make("videobalance", "vbalance")?;
    let overlay = make("textoverlay", "vlabel")?;
    overlay.set_property("shaded-background", true);
    overlay.set_property("draw-outline", true);
    overlay.set_property_from_str("valignment", "bottom");
    overlay.set_property_from_str("halignment", "left");
    overlay.set_property("font-desc", "Sans Bold 14");
    let chain = [&convert, &scale, &scaler_caps, &balance, &overlay];
    bin.add_many(chain).map_err(gst_err)?;
    gst::Element::link_many(chain).map_err(gst_err)?;
    let target = overlay.static_pad("src").expect("textoverlay has a src pad");
    let notified = std::sync::atomic::AtomicBool::new(false);
    // Never block here: this is a streaming thread, and the room task may need it. Frames are
    // dropped until the tile is connected (a few milliseconds).
    let hold = target.add_probe(gst::PadProbeType::BUFFER, move |_, _| {
        if !notified.swap(true, std::sync::atomic::Ordering::Relaxed) {
            on_first_frame();
        }
        gst::PadProbeReturn::Drop
    });
    let ghost = gst::GhostPad::builder_with_target(&target).map_err(gst_err)?.name("video").build();
    bin.add_pad(&ghost).map_err(gst_err)?;
    for e in chain {
        e.sync_state_with_parent().map_err(gst_err)?;
    }
    if placeholder {
        // No camera: a slow, cheap, generated background carries the name.
        let source = make("videotestsrc", "vplaceholder")?;
        source.set_property("is-live", true);
        source.set_property_from_str("pattern", "solid-color");
        source.set_property("foreground-color", PLACEHOLDER_COLOUR);
        let rate = make("capsfilter", "vplaceholder-caps")?;
        rate.set_property("caps", gst::Caps::builder("video/x-raw").field("framerate", gst::Fraction::new(5, 1)).build());
        bin.add_many([&source, &rate]).map_err(gst_err)?;
        gst::Element::link_many([&source, &rate, &convert]).map_err(gst_err)?;
        rate.sync_state_with_parent().map_err(gst_err)?;
        source.sync_state_with_parent().map_err(gst_err)?;
    }
    Ok(Tile { ghost, scaler_caps, balance, overlay, placeholder, hold, mixer_pad: None })
}

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
pub fn on_incoming_streams(webrtc: &gst::Element, liveness: Liveness) {
    webrtc.connect_pad_added(move |webrtc, pad| {
        if pad.direction() != gst::PadDirection::Src {
            return;
        }
        pad.add_probe(gst::PadProbeType::EVENT_DOWNSTREAM, |_, info| match info.event() {
            Some(e) if e.type_() == gst::EventType::Eos => gst::PadProbeReturn::Drop,
            _ => gst::PadProbeReturn::Ok,
        });
        let live = liveness.clone();
        pad.add_probe(gst::PadProbeType::BUFFER, move |_, _| {
            live.touch();
            gst::PadProbeReturn::Ok
        });
        if let Err(e) = link_decoder(webrtc, pad) {
            tracing::warn!("incoming stream not decoded: {e}");
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
        "OPUS" => ("rtpopusdepay ! opusdec plc=true", AUDIO_HEAD),
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
