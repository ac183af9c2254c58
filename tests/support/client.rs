//! WHIP publisher and WHEP viewer on webrtcbin, as a browser or OBS would be.
//!
//! A publisher sends a solid colour and a sine tone; a viewer decodes what it receives into
//! RGB frames and mono float audio for [`super::analysis`].

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gst::glib;
use gst::prelude::*;
use gst_webrtc::{WebRTCICEGatheringState, WebRTCRTPTransceiverDirection, WebRTCSDPType, WebRTCSessionDescription};

use super::http;

pub fn init() {
    gst::init().expect("GStreamer initialises");
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Rgb(pub u8, pub u8, pub u8);

pub const RED: Rgb = Rgb(230, 30, 30);
pub const GREEN: Rgb = Rgb(30, 200, 40);
pub const BLUE: Rgb = Rgb(40, 60, 230);
pub const YELLOW: Rgb = Rgb(240, 220, 30);

/// Publisher video codec.
#[derive(Clone, Copy, Debug)]
pub enum Codec {
    Vp8,
    H264,
}

/// The pipeline's webrtcbin `w`, sending RTCP about once a second as browsers do.
pub fn webrtcbin(pipeline: &gst::Pipeline) -> gst::Element {
    webrtcbin_with(pipeline, true)
}

/// The pipeline's webrtcbin `w`; with `browser_rtcp` false it keeps GStreamer's default RTCP
/// timing (RFC 3550: at least 5 s, randomised to 2.5-7.5 s), as standard WHEP players do.
pub fn webrtcbin_with(pipeline: &gst::Pipeline, browser_rtcp: bool) -> gst::Element {
    if browser_rtcp {
        pipeline.connect_deep_element_added(|_, _, element| {
            if element.factory().is_some_and(|f| f.name() == "rtpsession") {
                element.set_property("rtcp-min-interval", 1_000_000_000u64);
            }
        });
    }
    let webrtc = pipeline.by_name("w").expect("pipeline has webrtcbin 'w'");
    let agent = webrtc.property::<gst_webrtc::WebRTCICE>("ice-agent");
    agent.emit_by_name::<bool>("add-local-ip-address", &[&"127.0.0.1"]);
    // Tell the decoders about lost packets, so that the Opus decoder conceals them (or
    // recovers them from the next packet's FEC) as a browser does.
    if let Some(rtpbin) = webrtc.downcast_ref::<gst::Bin>().and_then(|b| b.by_name("rtpbin")) {
        rtpbin.set_property("do-lost", true);
    }
    webrtc
}

fn promise_reply(webrtc: &gst::Element, signal: &str, args: &[&dyn ToValue]) -> Option<gst::Structure> {
    let promise = gst::Promise::new();
    let mut values: Vec<glib::Value> = args.iter().map(|a| a.to_value()).collect();
    values.push(promise.to_value());
    webrtc.emit_by_name_with_values(signal, &values);
    match promise.wait() {
        gst::PromiseResult::Replied => promise.get_reply().map(|r| r.to_owned()),
        other => panic!("{signal}: promise {other:?}"),
    }
}

/// Creates the offer, waits for ICE gathering and returns the SDP text with all candidates.
pub fn local_offer(webrtc: &gst::Element) -> String {
    let reply = promise_reply(webrtc, "create-offer", &[&None::<gst::Structure>]).expect("offer reply");
    let offer = reply.get::<WebRTCSessionDescription>("offer").expect("an offer");
    promise_reply(webrtc, "set-local-description", &[&offer]);
    super::wait_for(Duration::from_secs(10), "client ICE gathering", || {
        match webrtc.property::<WebRTCICEGatheringState>("ice-gathering-state") {
            WebRTCICEGatheringState::Complete => Ok(()),
            s => Err(format!("{s:?}")),
        }
    });
    let local = webrtc.property::<WebRTCSessionDescription>("local-description");
    local.sdp().as_text().expect("offer as text")
}

pub fn apply_answer(webrtc: &gst::Element, sdp: &str) {
    let msg = gst_sdp::SDPMessage::parse_buffer(sdp.as_bytes()).expect("answer parses");
    let answer = WebRTCSessionDescription::new(WebRTCSDPType::Answer, msg);
    promise_reply(webrtc, "set-remote-description", &[&answer]);
}

/// Posts `offer` to `path`; panics unless the server answers 201 with an SDP.
pub fn post_offer(addr: SocketAddr, path: &str, offer: &str, token: Option<&str>) -> (String, String) {
    try_post_offer(addr, path, offer, token).unwrap_or_else(|r| panic!("POST {path}: {} {}", r.status, r.body))
}

/// Where an absolute `http://ip:port/path` URL points (a node of a pool), or `addr` and the
/// path as they are.
pub fn at(addr: SocketAddr, location: &str) -> (SocketAddr, String) {
    match location.strip_prefix("http://").and_then(|r| r.split_once('/')) {
        Some((host, path)) => (host.parse().expect("an ip:port in an absolute URL"), format!("/{path}")),
        None => (addr, location.to_string()),
    }
}

/// Posts `offer` to `path` (following one `307` to another node of a pool, as WHIP and WHEP
/// clients do): the `Location` and answer on 201, else the refusal.
pub fn try_post_offer(addr: SocketAddr, path: &str, offer: &str, token: Option<&str>) -> Result<(String, String), http::Response> {
    let auth = token.map(|t| format!("Bearer {t}"));
    let mut headers = vec![("Content-Type", "application/sdp")];
    if let Some(a) = &auth {
        headers.push(("Authorization", a.as_str()));
    }
    let mut r = http::request(addr, "POST", path, &headers, offer.as_bytes());
    if r.status == 307 {
        let (to, path) = at(addr, r.header("location").expect("307 carries a Location"));
        r = http::request(to, "POST", &path, &headers, offer.as_bytes());
    }
    if r.status != 201 {
        return Err(r);
    }
    assert_eq!(r.header("content-type"), Some("application/sdp"));
    let location = r.header("location").expect("201 carries a Location").to_string();
    Ok((location, r.body))
}

/// What a test publisher sends.
#[derive(Clone, Copy, Debug)]
pub struct Source {
    pub colour: Rgb,
    pub tone_hz: u32,
    pub codec: Codec,
    pub width: u32,
    pub height: u32,
    pub fps: u32,
    pub video: bool,
    pub audio: bool,
    /// Camera-like: the colour under moving noise, so encoders fill their bitrate (a solid
    /// colour compresses to nothing and hides bandwidth problems).
    pub noise: bool,
    /// The UDP ports its ICE agent may use (so a test can make its uplink lossy by port).
    pub ports: Option<(u32, u32)>,
    /// Sends lost video packets again when asked (RTX, as browsers do).
    pub resend: bool,
}

impl Source {
    /// Small and cheap: 320x240@15 VP8, so several fit on two cores beside the server.
    pub fn new(colour: Rgb, tone_hz: u32) -> Self {
        Self { colour, tone_hz, codec: Codec::Vp8, width: 320, height: 240, fps: 15, video: true, audio: true, noise: false, ports: None, resend: false }
    }

    /// The same, camera-like (see [`Source::noise`]).
    pub fn camera(colour: Rgb, tone_hz: u32) -> Self {
        Self { noise: true, ..Self::new(colour, tone_hz) }
    }
}

/// A WHIP publisher sending one colour and one tone.
pub struct Publisher {
    pipeline: gst::Pipeline,
    pub addr: SocketAddr,
    pub location: String,
}

impl Publisher {
    pub fn start(addr: SocketAddr, room: &str, colour: Rgb, tone_hz: u32) -> Self {
        Self::start_with(addr, room, colour, tone_hz, Codec::Vp8)
    }

    pub fn start_with(addr: SocketAddr, room: &str, colour: Rgb, tone_hz: u32, codec: Codec) -> Self {
        Self::start_source(addr, room, Source { codec, ..Source::new(colour, tone_hz) })
    }

    pub fn start_source(addr: SocketAddr, room: &str, source: Source) -> Self {
        Self::start_as(addr, room, source, None)
    }

    /// Publishes as the participant whose control-channel token is `token`.
    pub fn start_as(addr: SocketAddr, room: &str, source: Source, token: Option<&str>) -> Self {
        Self::start_at(addr, &format!("/whip/{room}"), source, token)
    }

    /// Shares a "screen" (the source) as the participant with `token`.
    pub fn share_screen(addr: SocketAddr, room: &str, source: Source, token: &str) -> Self {
        Self::start_at(addr, &format!("/whip/{room}?screen=1"), source, Some(token))
    }

    fn start_at(addr: SocketAddr, path: &str, source: Source, token: Option<&str>) -> Self {
        Self::try_start_at(addr, path, source, token).unwrap_or_else(|r| panic!("POST {path}: {} {}", r.status, r.body))
    }

    /// Publishes real media to `path` (e.g. `/whip/room?label=Hall`) with `token` as bearer;
    /// the server's refusal if it does not take it.
    pub fn try_start_at(addr: SocketAddr, path: &str, source: Source, token: Option<&str>) -> Result<Self, http::Response> {
        let Source { colour, tone_hz, codec, width, height, fps, video, audio, noise, ports, resend } = source;
        assert!(video || audio, "a publisher sends something");
        let argb = 0xff00_0000u32 | (u32::from(colour.0) << 16) | (u32::from(colour.1) << 8) | u32::from(colour.2);
        let (enc, pay, name, pt) = match codec {
            Codec::Vp8 => ("vp8enc deadline=1 cpu-used=8 target-bitrate=600000 keyframe-max-dist=60 threads=1", "rtpvp8pay", "VP8", 96),
            Codec::H264 => (
                "x264enc tune=zerolatency speed-preset=ultrafast bitrate=300 key-int-max=30 ! video/x-h264,profile=constrained-baseline",
                "rtph264pay config-interval=-1 aggregate-mode=zero-latency",
                "H264",
                102,
            ),
        };
        let raw = format!("video/x-raw,format=I420,width={width},height={height},framerate={fps}/1");
        let picture = if noise {
            format!(
                "videotestsrc name=colour is-live=true pattern=solid-color foreground-color={argb} ! {raw} ! cam.sink_0 \
                 videotestsrc is-live=true pattern=snow ! {raw} ! cam.sink_1 \
                 compositor name=cam sink_1::alpha=0.12 ! {raw}"
            )
        } else {
            format!("videotestsrc name=colour is-live=true pattern=solid-color foreground-color={argb} ! {raw}")
        };
        // A named size stage: a test may change the picture's size mid-stream (as a browser
        // does when its link gets slower).
        let video_branch = format!(
            "{picture} ! videoscale ! capsfilter name=size caps=\"{raw}\" ! videoconvert ! {enc} ! {pay} pt={pt} \
               ! application/x-rtp,media=video,encoding-name={name},payload={pt},clock-rate=90000 ! w. "
        );
        let audio_branch = format!(
            "audiotestsrc is-live=true wave=sine freq={tone_hz} volume=0.2 ! audioconvert ! audioresample \
               ! opusenc ! rtpopuspay pt=111 \
               ! application/x-rtp,media=audio,encoding-name=OPUS,payload=111,clock-rate=48000 ! w."
        );
        let description = format!(
            "webrtcbin name=w bundle-policy=max-bundle {} {}",
            if video { video_branch.as_str() } else { "" },
            if audio { audio_branch.as_str() } else { "" },
        );
        let pipeline = gst::parse::launch(&description)
            .expect("publisher pipeline parses")
            .downcast::<gst::Pipeline>()
            .expect("a pipeline");
        let webrtc = webrtcbin(&pipeline);
        for i in 0..(i32::from(video) + i32::from(audio)) {
            let t = webrtc
                .emit_by_name::<Option<gst_webrtc::WebRTCRTPTransceiver>>("get-transceiver", &[&i])
                .expect("a transceiver per track");
            t.set_direction(WebRTCRTPTransceiverDirection::Sendonly);
            if resend && video && i == 0 {
                t.set_property("do-nack", true);
            }
        }
        if let Some((min, max)) = ports {
            let agent = webrtc.property::<gst_webrtc::WebRTCICE>("ice-agent");
            agent.set_property("min-rtp-port", min);
            agent.set_property("max-rtp-port", max);
        }
        pipeline.set_state(gst::State::Playing).expect("publisher plays");
        super::wait_for(Duration::from_secs(10), "caps on the publisher's webrtcbin", || {
            let ready = webrtc.sink_pads().iter().all(|p| p.current_caps().is_some());
            if ready { Ok(()) } else { Err("sink pads without caps") }
        });
        let offer = local_offer(&webrtc);
        let (location, answer) = try_post_offer(addr, path, &offer, token)?;
        apply_answer(&webrtc, &answer);
        let (addr, location) = at(addr, &location);
        Ok(Self { pipeline, addr, location })
    }

    /// Changes the colour it sends from now on (the camera's noise stays).
    pub fn colour_switch(&self) -> impl Fn(Rgb) + Send + 'static {
        let src = self.pipeline.by_name("colour").expect("a video publisher");
        move |c: Rgb| {
            let argb = 0xff00_0000u32 | (u32::from(c.0) << 16) | (u32::from(c.1) << 8) | u32::from(c.2);
            src.set_property("foreground-color", argb);
        }
    }

    /// The session id, which is also this publisher's bearer token for its own WHEP view.
    pub fn token(&self) -> String {
        self.location.rsplit('/').next().expect("a location path").to_string()
    }

    /// Leaves properly: DELETE on the session, then stops sending.
    pub fn leave(self) -> u16 {
        let r = http::request(self.addr, "DELETE", &self.location, &[], b"");
        let _ = self.pipeline.set_state(gst::State::Null);
        r.status
    }

    /// From now on sends pictures `width` x `height` (same frame rate), mid-stream.
    pub fn resize(&self, width: u32, height: u32) {
        let size = self.pipeline.by_name("size").expect("the publisher's size stage");
        let caps = size.property::<gst::Caps>("caps");
        let mut caps = caps.copy();
        {
            let s = caps.get_mut().expect("caps writable").structure_mut(0).expect("a structure");
            s.set("width", width as i32);
            s.set("height", height as i32);
        }
        size.set_property("caps", &caps);
    }

    /// Sends DELETE but keeps sending media, as a misbehaving or slow client would.
    pub fn delete_but_keep_sending(&self) -> u16 {
        http::request(self.addr, "DELETE", &self.location, &[], b"").status
    }

    /// Vanishes: stops sending without telling the server (a crashed tab, a lost network).
    pub fn vanish(self) {
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}

impl Drop for Publisher {
    fn drop(&mut self) {
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}

/// What a viewer has received so far.
#[derive(Default)]
pub struct Received {
    /// Latest decoded frame, RGB, `VIEW_W` x `VIEW_H`.
    pub frame: Option<Vec<u8>>,
    pub frame_times: Vec<Instant>,
    pub first_frame: Option<Instant>,
    /// The last [`AUDIO_KEEP`] samples of mono 48 kHz audio.
    pub audio: VecDeque<f32>,
    pub audio_samples: u64,
    /// Arrival times of decoded audio buffers (gaps between them are audio gaps).
    pub audio_times: Vec<Instant>,
    /// RTP and RTCP bytes received on the wire (SRTP, before decryption), all streams.
    pub bytes: u64,
    /// Sequence number and RTP timestamp of the first Opus packets on the wire (the header
    /// is not encrypted in SRTP).
    pub opus_stamps: Vec<(u16, u32)>,
    /// Latency probes: when this colour appears (coverage rising past the threshold)...
    pub watch_colour: Option<(Rgb, f64)>,
    pub colour_onsets: Vec<Instant>,
    colour_present: bool,
    /// ...and when this tone starts.
    pub watch_tone: Option<f64>,
    /// Each decoded frame's time and which of these colours covers at least
    /// [`PRESENT`](super::analysis::PRESENT) of it (the first that does), if asked for.
    pub watch_colours: Vec<Rgb>,
    pub colour_log: Vec<(Instant, Option<usize>)>,
    /// With `watch_tone`: for each 20 ms of decoded audio, when it was complete, its samples
    /// and whether the tone is in it (fixed windows: however the decoder cuts its output).
    pub tone_log: Vec<(Instant, u64, bool)>,
    tone_window: Vec<f32>,
    pub tone_onsets: Vec<Instant>,
    tone_present: bool,
    /// The viewer's own jitterbuffer (webrtcbin's default, 200 ms, when `None`).
    pub jitterbuffer_ms: Option<u32>,
    /// When each chunk of decoded audio arrived and how many samples it held.
    pub audio_log: Vec<(Instant, u64)>,
    /// Keep GStreamer's default RTCP timing instead of a browser's (set before negotiation).
    pub standard_rtcp: bool,
    /// The UDP ports the viewer's ICE agent may use (so a test can shape its traffic by port).
    pub ports: Option<(u32, u32)>,
    /// Ask for lost video packets again (NACK, answered by RTX), as browsers do. GStreamer
    /// 1.22's receiver then sends receiver reports without report blocks and holds its audio
    /// for retransmissions that never come: only for tests of the picture under loss.
    pub nack: bool,
    /// Offer the transport-wide sequence number, so that this viewer sends congestion
    /// feedback (browsers do; plain GStreamer players do not).
    pub twcc: bool,
    /// The height of the decoded picture as it arrives (before scaling for analysis), and
    /// each change of it with its time.
    pub decoded_height: Option<i32>,
    pub height_changes: Vec<(Instant, i32)>,
}

/// The audio a tone log judges at a time: 20 ms (about nine periods of a 440 Hz tone).
const TONE_WINDOW: usize = 960;
pub const VIEW_W: usize = 160;
pub const VIEW_H: usize = 90;
const AUDIO_KEEP: usize = 48_000;

/// The transport-wide sequence number header extension (congestion feedback).
pub const TWCC_URI: &str = "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01";

/// A WHEP viewer that decodes the room's mix.
pub struct Viewer {
    pipeline: gst::Pipeline,
    addr: SocketAddr,
    pub location: String,
    pub received: Arc<Mutex<Received>>,
    pub posted_at: Instant,
}

impl Viewer {
    pub fn start(addr: SocketAddr, room: &str, token: Option<&str>) -> Self {
        Self::start_with(addr, room, token, Codec::Vp8)
    }

    pub fn start_with(addr: SocketAddr, room: &str, token: Option<&str>, codec: Codec) -> Self {
        Self::start_inner(addr, room, token, codec, true)
    }

    /// Posts the offer but never applies the answer: a client that dies mid-negotiation.
    pub fn start_abandoned(addr: SocketAddr, room: &str, token: Option<&str>) -> Self {
        Self::start_inner(addr, room, token, Codec::Vp8, false)
    }

    /// A viewer that only counts the bytes it receives (decodes nothing): load for benchmarks.
    pub fn start_counting(addr: SocketAddr, room: &str, codec: Codec) -> Self {
        Self::start_inner_with(addr, room, None, codec, true, false, |_| {})
    }

    /// A decoding viewer whose ICE agent uses only UDP ports `min..=max` and that sends
    /// transport-wide congestion feedback, as browsers do.
    pub fn start_on_ports(addr: SocketAddr, room: &str, (min, max): (u32, u32)) -> Self {
        Self::start_inner_with(addr, room, None, Codec::Vp8, true, true, |r| {
            r.ports = Some((min, max));
            r.twcc = true;
        })
    }

    /// A decoding viewer on `ports` that, like a browser, sends transport-wide feedback and
    /// asks for lost video packets again (NACK).
    pub fn start_on_ports_with_nack(addr: SocketAddr, room: &str, (min, max): (u32, u32)) -> Self {
        Self::start_inner_with(addr, room, None, Codec::Vp8, true, true, |r| {
            r.ports = Some((min, max));
            r.twcc = true;
            r.nack = true;
        })
    }

    /// An H.264 viewer on `ports` (the codec browsers get): with `feedback` like a browser
    /// (transport-wide feedback and NACK), else a player with receiver reports only.
    pub fn start_on_ports_h264(addr: SocketAddr, room: &str, (min, max): (u32, u32), feedback: bool) -> Self {
        Self::start_inner_with(addr, room, None, Codec::H264, true, true, |r| {
            r.ports = Some((min, max));
            r.twcc = feedback;
            r.nack = feedback;
        })
    }

    /// The same, but a player that sends receiver reports only (no transport-wide feedback).
    pub fn start_on_ports_reports_only(addr: SocketAddr, room: &str, (min, max): (u32, u32)) -> Self {
        Self::start_inner_with(addr, room, None, Codec::Vp8, true, true, |r| r.ports = Some((min, max)))
    }

    /// The receiving side's RTP counts for the audio stream: (packets received, packets lost),
    /// from this viewer's webrtcbin statistics.
    pub fn audio_packets(&self) -> (u64, i64) {
        let webrtc = self.pipeline.by_name("w").expect("webrtcbin 'w'");
        let stats = promise_reply(&webrtc, "get-stats", &[&None::<gst::Pad>]).expect("stats");
        let mut counts = (0u64, 0i64);
        for (_, v) in stats.iter() {
            let Ok(s) = v.get::<gst::Structure>() else { continue };
            if s.get::<gst_webrtc::WebRTCStatsType>("type") != Ok(gst_webrtc::WebRTCStatsType::InboundRtp) {
                continue;
            }
            // 1.22 labels every inbound stream "video"; the RTP source's clock rate tells.
            let Ok(source) = s.get::<gst::Structure>("gst-rtpsource-stats") else { continue };
            if source.get::<i32>("clock-rate") == Ok(48_000) {
                counts.0 += source.get::<u64>("packets-received").unwrap_or(0);
                counts.1 += i64::from(source.get::<i32>("packets-lost").unwrap_or(0));
            }
        }
        counts
    }

    /// Decoded audio samples (48 kHz) and frames that arrived since `since`.
    pub fn received_since(&self, since: Instant) -> (u64, usize) {
        let r = self.received.lock().unwrap();
        let frames = r.frame_times.iter().filter(|t| **t >= since).count();
        let chunks: Vec<&(Instant, u64)> = r.audio_log.iter().filter(|(t, _)| *t >= since).collect();
        (chunks.iter().map(|(_, n)| *n).sum(), frames)
    }

    /// A decoding viewer whose WHEP request carries `query` (e.g. `quality=low`).
    pub fn start_query(addr: SocketAddr, room: &str, query: &str, token: Option<&str>, codec: Codec) -> Self {
        Self::start_inner_with(addr, &format!("{room}?{query}"), token, codec, true, true, |_| {})
    }

    /// A decoding viewer with GStreamer's default RTCP timing (a report every 2.5-7.5 s), as
    /// standard WHEP players and `whepsrc` send.
    pub fn start_standard(addr: SocketAddr, room: &str, token: Option<&str>) -> Self {
        Self::start_inner_with(addr, room, token, Codec::Vp8, true, true, |r| r.standard_rtcp = true)
    }

    /// Whether the server still has this session (a trickle PATCH answers 204, else 404).
    pub fn session_exists(&self) -> bool {
        let headers = [("Content-Type", "application/trickle-ice-sdpfrag")];
        let r = http::request(self.addr, "PATCH", &self.location, &headers, b"a=end-of-candidates\r\n");
        r.status == 204
    }

    /// Stops receiving and answering without telling the server (a crashed player).
    pub fn vanish(&self) {
        let _ = self.pipeline.set_state(gst::State::Null);
    }

    /// A decoding viewer that also records when `colour` appears and `tone_hz` starts.
    /// Its jitterbuffer is 50 ms (a browser's adapts to about that on a good line), so the
    /// latency it measures is mostly the server's.
    pub fn start_probe(addr: SocketAddr, room: &str, codec: Codec, colour: Rgb, threshold: f64, tone_hz: f64) -> Self {
        Self::start_inner_with(addr, room, None, codec, true, true, |r| {
            r.jitterbuffer_ms = Some(50);
            r.watch_colour = Some((colour, threshold));
            r.watch_tone = Some(tone_hz);
        })
    }

    /// A decoding viewer that logs, frame by frame, which of `colours` it sees, and chunk by
    /// chunk whether `tone_hz` sounds.
    pub fn start_watching(addr: SocketAddr, room: &str, colours: &[Rgb], tone_hz: f64) -> Self {
        Self::start_inner_with(addr, room, None, Codec::Vp8, true, true, |r| {
            r.watch_colours = colours.to_vec();
            r.watch_tone = Some(tone_hz);
        })
    }

    fn start_inner(addr: SocketAddr, room: &str, token: Option<&str>, codec: Codec, answer: bool) -> Self {
        Self::start_inner_with(addr, room, token, codec, answer, true, |_| {})
    }

    fn start_inner_with(
        addr: SocketAddr,
        room: &str,
        token: Option<&str>,
        codec: Codec,
        answer: bool,
        decode: bool,
        setup: impl FnOnce(&mut Received),
    ) -> Self {
        let pipeline = gst::Pipeline::new();
        let w = gst::ElementFactory::make("webrtcbin").name("w").build().expect("webrtcbin exists");
        w.set_property_from_str("bundle-policy", "max-bundle");
        pipeline.add(&w).expect("webrtcbin added");
        let mut initial = Received::default();
        setup(&mut initial);
        let webrtc = webrtcbin_with(&pipeline, !initial.standard_rtcp);
        if let Some((min, max)) = initial.ports {
            let agent = webrtc.property::<gst_webrtc::WebRTCICE>("ice-agent");
            agent.set_property("min-rtp-port", min);
            agent.set_property("max-rtp-port", max);
        }
        let video_caps = match codec {
            Codec::Vp8 => "application/x-rtp,media=video,encoding-name=VP8,payload=96,clock-rate=90000",
            Codec::H264 => "application/x-rtp,media=video,encoding-name=H264,payload=102,clock-rate=90000,packetization-mode=(string)1,profile-level-id=(string)42e01f",
        };
        for caps in [video_caps, "application/x-rtp,media=audio,encoding-name=OPUS,payload=111,clock-rate=48000"] {
            let mut caps: gst::Caps = caps.parse().expect("caps parse");
            if initial.twcc {
                caps.make_mut().structure_mut(0).expect("caps structure").set("extmap-3", TWCC_URI);
            }
            let t = webrtc.emit_by_name::<glib::Object>("add-transceiver", &[&WebRTCRTPTransceiverDirection::Recvonly, &caps]);
            if initial.nack && caps.structure(0).is_some_and(|s| s.get::<&str>("media") == Ok("video")) {
                t.set_property("do-nack", true);
            }
        }
        if let Some(ms) = initial.jitterbuffer_ms {
            webrtc.set_property("latency", ms);
        }
        let received = Arc::new(Mutex::new(initial));
        count_on_the_wire(&pipeline, received.clone(), !decode);
        let sink_state = received.clone();
        let pipeline_weak = pipeline.downgrade();
        webrtc.connect_pad_added(move |_, pad| {
            let Some(pipeline) = pipeline_weak.upgrade() else { return };
            if decode {
                decode_into(&pipeline, pad, sink_state.clone());
            } else {
                let sink = gst::ElementFactory::make("fakesink").property("sync", false).build().expect("fakesink");
                pipeline.add(&sink).expect("fakesink added");
                pad.link(&sink.static_pad("sink").expect("sink pad")).expect("fakesink linked");
                sink.sync_state_with_parent().expect("fakesink plays");
            }
        });
        pipeline.set_state(gst::State::Playing).expect("viewer plays");
        let offer = local_offer(&webrtc);
        let posted_at = Instant::now();
        let (location, sdp) = post_offer(addr, &format!("/whep/{room}"), &offer, token);
        if answer {
            apply_answer(&webrtc, &sdp);
        }
        let (addr, location) = at(addr, &location);
        Self { pipeline, addr, location, received, posted_at }
    }

    pub fn leave(self) -> u16 {
        let r = http::request(self.addr, "DELETE", &self.location, &[], b"");
        let _ = self.pipeline.set_state(gst::State::Null);
        r.status
    }

    /// The latest frame, once one has arrived.
    pub fn frame(&self) -> Option<Vec<u8>> {
        self.received.lock().unwrap().frame.clone()
    }

    /// The last `n` audio samples, once that many have arrived.
    pub fn audio(&self, n: usize) -> Option<Vec<f32>> {
        let r = self.received.lock().unwrap();
        (r.audio.len() >= n).then(|| r.audio.iter().skip(r.audio.len() - n).copied().collect())
    }

    /// Frames received after `since`, and the largest gap between consecutive ones.
    pub fn frames_since(&self, since: Instant) -> (usize, Duration) {
        let r = self.received.lock().unwrap();
        let times: Vec<Instant> = r.frame_times.iter().copied().filter(|t| *t >= since).collect();
        let gap = times.windows(2).map(|w| w[1] - w[0]).max().unwrap_or_default();
        (times.len(), gap)
    }
}

impl Drop for Viewer {
    fn drop(&mut self) {
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}

/// Counts the bytes of every RTP and RTCP packet as it arrives from the network (SRTP, before
/// decryption: what the line carries). A counting receiver then drops the RTP: it completes ICE
/// and DTLS and answers the server's RTCP like any viewer (or the server would rightly take it
/// for gone), but spends nothing on decryption, jitterbuffers or depayloading, so hundreds of
/// them fit beside the server on a small machine.
/// The payload type this client offers for Opus.
const OPUS_PT: u8 = 111;
/// How many Opus packets' stamps a viewer keeps (20 s).
const OPUS_STAMPS_KEPT: usize = 1000;

fn count_on_the_wire(pipeline: &gst::Pipeline, received: Arc<Mutex<Received>>, drop_rtp: bool) {
    pipeline.connect_deep_element_added(move |_, _, element| {
        if element.factory().is_none_or(|f| f.name() != "nicesrc") {
            return;
        }
        let Some(pad) = element.static_pad("src") else { return };
        let received = received.clone();
        pad.add_probe(gst::PadProbeType::BUFFER | gst::PadProbeType::BUFFER_LIST, move |_, info| {
            // RFC 7983: a first byte of 128..=191 is RTP or RTCP (STUN and DTLS pass untouched);
            // RFC 5761: RTCP when the second byte is 192..=223.
            let kind = |b: &gst::BufferRef| {
                let mut head = [0u8; 2];
                match b.copy_to_slice(0, &mut head) {
                    Ok(()) if (128..=191).contains(&head[0]) => Some((192..=223).contains(&head[1])),
                    _ => None,
                }
            };
            let (mut bytes, mut rtp_only) = (0u64, true);
            let mut stamps = Vec::new();
            let mut count = |b: &gst::BufferRef| match kind(b) {
                Some(rtcp) => {
                    bytes += b.size() as u64;
                    rtp_only &= !rtcp;
                    let mut head = [0u8; 8];
                    if !rtcp && b.copy_to_slice(0, &mut head).is_ok() && head[1] & 0x7f == OPUS_PT {
                        stamps.push((u16::from_be_bytes([head[2], head[3]]), u32::from_be_bytes([head[4], head[5], head[6], head[7]])));
                    }
                }
                None => rtp_only = false,
            };
            match &info.data {
                Some(gst::PadProbeData::Buffer(b)) => count(b),
                Some(gst::PadProbeData::BufferList(list)) => list.iter().for_each(&mut count),
                _ => rtp_only = false,
            }
            let mut r = received.lock().unwrap();
            r.bytes += bytes;
            if r.opus_stamps.len() < OPUS_STAMPS_KEPT {
                r.opus_stamps.extend(stamps);
            }
            drop(r);
            if drop_rtp && rtp_only {
                gst::PadProbeReturn::Drop
            } else {
                gst::PadProbeReturn::Ok
            }
        });
    });
}

fn decode_into(pipeline: &gst::Pipeline, pad: &gst::Pad, received: Arc<Mutex<Received>>) {
    let caps = pad.current_caps().expect("src pad has caps");
    let s = caps.structure(0).expect("caps structure");
    let encoding = s.get::<&str>("encoding-name").unwrap_or("");
    let description = match encoding {
        // Like a browser: after a loss, ask for a keyframe (PLI) and show nothing broken.
        "VP8" => format!("rtpvp8depay request-keyframe=true wait-for-keyframe=true ! vp8dec name=dec ! videoconvert ! videoscale ! video/x-raw,format=RGB,width={VIEW_W},height={VIEW_H} ! appsink name=sink sync=false"),
        // Slice threads, as browsers decode WebRTC video: frame threads would add a frame of delay.
        "H264" => format!("rtph264depay request-keyframe=true wait-for-keyframe=true ! h264parse ! avdec_h264 name=dec thread-type=slice ! videoconvert ! videoscale ! video/x-raw,format=RGB,width={VIEW_W},height={VIEW_H} ! appsink name=sink sync=false"),
        "OPUS" => "rtpopusdepay ! opusdec use-inband-fec=true plc=true ! audioconvert ! audioresample ! audio/x-raw,format=F32LE,rate=48000,channels=1 ! appsink name=sink sync=false".to_string(),
        other => panic!("unexpected stream {other}"),
    };
    let bin = gst::parse::bin_from_description(&description, true).expect("decoder parses");
    let sink = bin.by_name("sink").expect("appsink").downcast::<gst_app::AppSink>().expect("an appsink");
    let is_video = encoding != "OPUS";
    if let Some(dec) = bin.by_name("dec") {
        let heights = received.clone();
        dec.static_pad("src").expect("decoder src pad").add_probe(gst::PadProbeType::EVENT_DOWNSTREAM, move |_, info| {
            if let Some(gst::PadProbeData::Event(e)) = &info.data {
                if let gst::EventView::Caps(c) = e.view() {
                    let height = c.caps().structure(0).and_then(|s| s.get::<i32>("height").ok());
                    let mut r = heights.lock().unwrap();
                    if let Some(h) = height.filter(|h| Some(*h) != r.decoded_height) {
                        r.decoded_height = Some(h);
                        r.height_changes.push((Instant::now(), h));
                    }
                }
            }
            gst::PadProbeReturn::Ok
        });
    }
    sink.set_callbacks(
        gst_app::AppSinkCallbacks::builder()
            .new_sample(move |sink| {
                let sample = sink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                let buffer = sample.buffer().ok_or(gst::FlowError::Error)?;
                let map = buffer.map_readable().map_err(|_| gst::FlowError::Error)?;
                let mut r = received.lock().unwrap();
                let now = Instant::now();
                if is_video {
                    r.first_frame.get_or_insert(now);
                    r.frame_times.push(now);
                    if let Some((colour, threshold)) = r.watch_colour {
                        let present = super::analysis::coverage(&map, colour, super::analysis::TOLERANCE) >= threshold;
                        if present && !r.colour_present {
                            r.colour_onsets.push(now);
                        }
                        r.colour_present = present;
                    }
                    if !r.watch_colours.is_empty() {
                        let seen = r.watch_colours.iter().position(|c| super::analysis::coverage(&map, *c, super::analysis::TOLERANCE) >= super::analysis::PRESENT);
                        r.colour_log.push((now, seen));
                    }
                    r.frame = Some(map.to_vec());
                } else {
                    r.audio_times.push(now);
                    let chunk: Vec<f32> = map.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
                    if let Some(freq) = r.watch_tone {
                        let present = super::analysis::tone_level(&chunk, freq) >= super::analysis::TONE_PRESENT;
                        if present && !r.tone_present {
                            r.tone_onsets.push(now);
                        }
                        r.tone_present = present;
                        r.tone_window.extend_from_slice(&chunk);
                        while r.tone_window.len() >= TONE_WINDOW {
                            let window: Vec<f32> = r.tone_window.drain(..TONE_WINDOW).collect();
                            let present = super::analysis::tone_level(&window, freq) >= super::analysis::TONE_PRESENT;
                            r.tone_log.push((now, TONE_WINDOW as u64, present));
                        }
                    }
                    for v in chunk {
                        r.audio.push_back(v);
                    }
                    let excess = r.audio.len().saturating_sub(AUDIO_KEEP);
                    r.audio.drain(..excess);
                    r.audio_samples += (map.len() / 4) as u64;
                    r.audio_log.push((now, (map.len() / 4) as u64));
                }
                Ok(gst::FlowSuccess::Ok)
            })
            .build(),
    );
    pipeline.add(&bin).expect("decoder added");
    pad.link(&bin.static_pad("sink").expect("ghost sink")).expect("decoder linked");
    bin.sync_state_with_parent().expect("decoder plays");
}
