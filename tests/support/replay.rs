//! Load-generator publishers that send pre-encoded media: a VP8 clip (640x360@30, a moving
//! ball on the publisher's colour under camera-like noise) and an Opus clip (the publisher's
//! tone, talking or murmuring), encoded once,
//! cached on disk and replayed in a loop. No encoding happens while replaying, so the load
//! generator's CPU stays small next to the server's.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gst::prelude::*;

use super::client::{apply_answer, local_offer, post_offer, webrtcbin, Rgb};

pub const FPS: u32 = 30;
const CLIP_FRAMES: usize = 60; // 2 s, a keyframe every second
const AUDIO_FRAME: Duration = Duration::from_millis(20);
const AUDIO_FRAMES: usize = 100; // 2 s

/// Encoded frames of one clip.
#[derive(Clone)]
pub struct Clip {
    pub video: Vec<Vec<u8>>,
    pub audio: Vec<Vec<u8>>,
}

fn collect(description: &str) -> Vec<Vec<u8>> {
    let pipeline = gst::parse::launch(description).expect("clip pipeline parses").downcast::<gst::Pipeline>().expect("a pipeline");
    let sink = pipeline.by_name("out").expect("appsink 'out'").downcast::<gst_app::AppSink>().expect("an appsink");
    pipeline.set_state(gst::State::Playing).expect("clip pipeline plays");
    let mut frames = Vec::new();
    while let Ok(sample) = sink.pull_sample() {
        if let Some(map) = sample.buffer().and_then(|b| b.map_readable().ok()) {
            frames.push(map.to_vec());
        }
    }
    pipeline.set_state(gst::State::Null).expect("clip pipeline stops");
    frames
}

fn write_frames(path: &Path, frames: &[Vec<u8>]) {
    let mut out = Vec::new();
    for f in frames {
        out.extend_from_slice(&(f.len() as u32).to_le_bytes());
        out.extend_from_slice(f);
    }
    std::fs::write(path, out).expect("clip cache writable");
}

fn read_frames(path: &Path) -> Option<Vec<Vec<u8>>> {
    let data = std::fs::read(path).ok()?;
    let mut frames = Vec::new();
    let mut at = 0;
    while at + 4 <= data.len() {
        let len = u32::from_le_bytes(data[at..at + 4].try_into().ok()?) as usize;
        frames.push(data.get(at + 4..at + 4 + len)?.to_vec());
        at += 4 + len;
    }
    Some(frames)
}

/// The clip for `colour` and `tone_hz` (0: silence), from the cache or encoded now. A talking
/// clip's tone is at speech level (-14 dBFS); otherwise it murmurs at -48 dBFS, below the
/// server's speaking threshold, as the many who listen in a real meeting do. The picture is a
/// moving ball on the colour under 10 % temporal noise, so that encoders work about as hard as
/// on a webcam's picture (a noise-free clip compresses to a tenth of a camera's bitrate).
pub fn clip(cache: &Path, colour: Rgb, tone_hz: u32, talking: bool) -> Clip {
    std::fs::create_dir_all(cache).expect("clip cache directory");
    let rgb = (u32::from(colour.0) << 16) | (u32::from(colour.1) << 8) | u32::from(colour.2);
    let video_path: PathBuf = cache.join(format!("vp8-640x360-{rgb:06x}-camera.bin"));
    let loudness = if talking { "talk" } else { "murmur" };
    let audio_path: PathBuf = cache.join(format!("opus-{tone_hz}-{loudness}.bin"));
    let video = read_frames(&video_path).unwrap_or_else(|| {
        let frames = collect(&format!(
            "compositor name=mix sink_1::alpha=0.1 ! video/x-raw,format=I420,width=640,height=360,framerate={FPS}/1 \
             ! vp8enc deadline=1 cpu-used=4 target-bitrate=800000 keyframe-max-dist={FPS} end-usage=cbr \
             ! appsink name=out sync=false \
             videotestsrc num-buffers={CLIP_FRAMES} pattern=ball background-color={} \
             ! video/x-raw,width=640,height=360,framerate={FPS}/1 ! mix.sink_0 \
             videotestsrc num-buffers={CLIP_FRAMES} pattern=snow ! video/x-raw,width=640,height=360,framerate={FPS}/1 ! mix.sink_1",
            0xff00_0000 | rgb
        ));
        write_frames(&video_path, &frames);
        frames
    });
    let audio = read_frames(&audio_path).unwrap_or_else(|| {
        let volume = match (tone_hz, talking) {
            (0, _) => 0.0,
            (_, true) => 0.2,
            (_, false) => 0.004,
        };
        let frames = collect(&format!(
            "audiotestsrc num-buffers={AUDIO_FRAMES} samplesperbuffer=960 wave=sine freq={} volume={volume} \
             ! audio/x-raw,rate=48000,channels=1 ! opusenc frame-size=20 bitrate=32000 \
             ! appsink name=out sync=false",
            tone_hz.max(1)
        ));
        write_frames(&audio_path, &frames);
        frames
    });
    Clip { video, audio }
}

/// What a replaying publisher sends right now; switching clips is how latency is measured.
struct Playing {
    clip: Clip,
    video_at: usize,
    audio_at: usize,
    /// When the current clip started (its first frame pushed).
    switched: Option<Instant>,
}

/// A WHIP publisher fed from a clip.
pub struct ReplayPublisher {
    pipeline: gst::Pipeline,
    video: gst_app::AppSrc,
    audio: gst_app::AppSrc,
    playing: Arc<Mutex<Playing>>,
    pub location: String,
}

impl ReplayPublisher {
    pub fn start(addr: SocketAddr, room: &str, clip: Clip, token: Option<&str>) -> Self {
        let pipeline = gst::parse::launch(
            "webrtcbin name=w bundle-policy=max-bundle \
             appsrc name=v is-live=true do-timestamp=true format=time \
               caps=video/x-vp8,width=640,height=360,framerate=30/1 \
               ! rtpvp8pay pt=96 picture-id-mode=15-bit ! application/x-rtp,media=video,encoding-name=VP8,payload=96,clock-rate=90000 ! w. \
             appsrc name=a is-live=true do-timestamp=true format=time caps=audio/x-opus,channel-mapping-family=0,channels=1,rate=48000 \
               ! rtpopuspay pt=111 ! application/x-rtp,media=audio,encoding-name=OPUS,payload=111,clock-rate=48000 ! w.",
        )
        .expect("replay pipeline parses")
        .downcast::<gst::Pipeline>()
        .expect("a pipeline");
        let webrtc = webrtcbin(&pipeline);
        for i in 0..2i32 {
            let t = webrtc
                .emit_by_name::<Option<gst_webrtc::WebRTCRTPTransceiver>>("get-transceiver", &[&i])
                .expect("a transceiver per track");
            t.set_direction(gst_webrtc::WebRTCRTPTransceiverDirection::Sendonly);
        }
        let video = pipeline.by_name("v").unwrap().downcast::<gst_app::AppSrc>().unwrap();
        let audio = pipeline.by_name("a").unwrap().downcast::<gst_app::AppSrc>().unwrap();
        pipeline.set_state(gst::State::Playing).expect("replay plays");
        let mut me = Self {
            pipeline,
            video,
            audio,
            playing: Arc::new(Mutex::new(Playing { clip, video_at: 0, audio_at: 0, switched: None })),
            location: String::new(),
        };
        // Caps must reach webrtcbin before the offer: push the first frames now.
        me.tick_video();
        me.tick_audio();
        super::wait_for(Duration::from_secs(10), "caps on the replay publisher", || {
            if webrtc.sink_pads().iter().all(|p| p.current_caps().is_some()) { Ok(()) } else { Err("no caps yet") }
        });
        let offer = local_offer(&webrtc);
        let (location, answer) = post_offer(addr, &format!("/whip/{room}"), &offer, token);
        apply_answer(&webrtc, &answer);
        me.location = location;
        me
    }

    pub fn tick_video(&self) {
        let mut p = self.playing.lock().unwrap();
        let frame = p.clip.video[p.video_at % p.clip.video.len()].clone();
        if p.video_at == 0 && p.switched.is_none() {
            p.switched = Some(Instant::now());
        }
        p.video_at += 1;
        drop(p);
        let _ = self.video.push_buffer(gst::Buffer::from_mut_slice(frame));
    }

    pub fn tick_audio(&self) {
        let mut p = self.playing.lock().unwrap();
        let frame = p.clip.audio[p.audio_at % p.clip.audio.len()].clone();
        p.audio_at += 1;
        drop(p);
        let _ = self.audio.push_buffer(gst::Buffer::from_mut_slice(frame));
    }

    /// Starts `clip` from its first (key)frame; returns when that frame went out.
    pub fn switch_to(&self, clip: Clip) -> Instant {
        let mut p = self.playing.lock().unwrap();
        *p = Playing { clip, video_at: 0, audio_at: 0, switched: None };
        drop(p);
        self.tick_video();
        self.tick_audio();
        self.playing.lock().unwrap().switched.unwrap_or_else(Instant::now)
    }

    pub fn leave(self, addr: SocketAddr) {
        let _ = super::http::request(addr, "DELETE", &self.location, &[], b"");
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}

impl Drop for ReplayPublisher {
    fn drop(&mut self) {
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}

/// One thread that paces every publisher: video at 30 fps, audio every 20 ms.
pub struct Pacer {
    stop: Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Pacer {
    pub fn start(publishers: Arc<Mutex<Vec<ReplayPublisher>>>) -> Self {
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let start = Instant::now();
            let (mut video_n, mut audio_n) = (1u64, 1u64);
            while !flag.load(std::sync::atomic::Ordering::Relaxed) {
                let video_due = start + Duration::from_secs(1) * video_n as u32 / FPS;
                let audio_due = start + AUDIO_FRAME * audio_n as u32;
                let due = video_due.min(audio_due);
                if let Some(wait) = due.checked_duration_since(Instant::now()) {
                    std::thread::sleep(wait);
                }
                let publishers = publishers.lock().unwrap();
                if Instant::now() >= video_due {
                    publishers.iter().for_each(ReplayPublisher::tick_video);
                    video_n += 1;
                }
                if Instant::now() >= audio_due {
                    publishers.iter().for_each(ReplayPublisher::tick_audio);
                    audio_n += 1;
                }
            }
        });
        Self { stop, thread: Some(thread) }
    }
}

impl Drop for Pacer {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
