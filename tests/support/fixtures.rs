//! Files chromium plays as its fake camera and microphone: `p{i}.y4m` (a colour, optionally
//! under snow so that the encoder fills its bitrate as with a real camera) and `p{i}.wav` (a
//! sine tone). Chromium loops them.

use std::path::Path;

use gst::prelude::*;

/// What one fake participant shows and says.
#[derive(Clone, Copy, Debug)]
pub struct Fake {
    /// ARGB, as videotestsrc's `foreground-color` takes it.
    pub argb: u32,
    pub tone_hz: u32,
    pub width: u32,
    pub height: u32,
    /// Snow over the colour (12 %): content that costs bits.
    pub snow: bool,
}

impl Fake {
    /// A solid colour at 320x240.
    pub fn plain(argb: u32, tone_hz: u32) -> Self {
        Self { argb, tone_hz, width: 320, height: 240, snow: false }
    }
}

fn run_to_file(description: &str) {
    let pipeline = gst::parse::launch(description).expect("fixture pipeline parses");
    pipeline.set_state(gst::State::Playing).expect("fixture pipeline plays");
    let bus = pipeline.bus().expect("bus");
    let msg = bus.timed_pop_filtered(gst::ClockTime::from_seconds(60), &[gst::MessageType::Eos, gst::MessageType::Error]);
    pipeline.set_state(gst::State::Null).expect("fixture pipeline stops");
    match msg.map(|m| m.type_()) {
        Some(gst::MessageType::Eos) => {}
        other => panic!("fixture pipeline '{description}' ended with {other:?}"),
    }
}

/// Writes 2 s of picture (15 fps) and sound per participant into `dir`.
pub fn make(dir: &Path, people: &[Fake]) {
    gst::init().unwrap();
    std::fs::create_dir_all(dir).unwrap();
    for (i, p) in people.iter().enumerate() {
        let raw = format!("video/x-raw,format=I420,width={},height={},framerate=15/1", p.width, p.height);
        let colour = format!("videotestsrc num-buffers=30 pattern=solid-color foreground-color={}", p.argb);
        let picture = if p.snow {
            format!("{colour} ! {raw} ! mix.sink_0 videotestsrc num-buffers=30 pattern=snow ! {raw} ! mix.sink_1 compositor name=mix sink_1::alpha=0.12 ! {raw}")
        } else {
            format!("{colour} ! {raw}")
        };
        run_to_file(&format!("{picture} ! y4menc ! filesink location={}", dir.join(format!("p{i}.y4m")).display()));
        run_to_file(&format!(
            "audiotestsrc num-buffers=100 samplesperbuffer=960 wave=sine freq={} volume=0.3 \
             ! audio/x-raw,format=S16LE,rate=48000,channels=1 ! wavenc ! filesink location={}",
            p.tone_hz,
            dir.join(format!("p{i}.wav")).display()
        ));
    }
}
