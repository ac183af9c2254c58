//! Browser end-to-end in headless Debian chromium with fake devices (a colour and a tone each).
//! The checks run in the browsers: `tests/browser/meeting.mjs` (three people; each sees and
//! hears the others but not its own tone, chat arrives as text, a closed tab leaves the others'
//! mix within 5 s) and `tests/browser/moderation.mjs` (waiting room, admission, screen share).

mod support;

use std::path::Path;
use std::process::Command;

use gst::prelude::*;
use support::server::Server;

const COLOURS: [u32; 3] = [0xffe6_1e1e, 0xff1e_c828, 0xff28_3ce6];
const TONES: [u32; 3] = [500, 700, 900];

fn run_to_file(description: &str) {
    let pipeline = gst::parse::launch(description).expect("fixture pipeline parses");
    pipeline.set_state(gst::State::Playing).expect("fixture pipeline plays");
    let bus = pipeline.bus().expect("bus");
    let msg = bus.timed_pop_filtered(gst::ClockTime::from_seconds(30), &[gst::MessageType::Eos, gst::MessageType::Error]);
    pipeline.set_state(gst::State::Null).expect("fixture pipeline stops");
    match msg.map(|m| m.type_()) {
        Some(gst::MessageType::Eos) => {}
        other => panic!("fixture pipeline '{description}' ended with {other:?}"),
    }
}

/// A 2 s solid-colour Y4M and a 2 s sine WAV per participant (chromium loops them).
fn make_fixtures(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    for i in 0..3 {
        let y4m = dir.join(format!("p{i}.y4m"));
        let wav = dir.join(format!("p{i}.wav"));
        run_to_file(&format!(
            "videotestsrc num-buffers=30 pattern=solid-color foreground-color={} \
             ! video/x-raw,format=I420,width=320,height=240,framerate=15/1 ! y4menc ! filesink location={}",
            COLOURS[i],
            y4m.display()
        ));
        run_to_file(&format!(
            "audiotestsrc num-buffers=100 samplesperbuffer=960 wave=sine freq={} volume=0.3 \
             ! audio/x-raw,format=S16LE,rate=48000,channels=1 ! wavenc ! filesink location={}",
            TONES[i],
            wav.display()
        ));
    }
}

/// Runs `tests/browser/<script>` against a fresh server; the checks are in the script.
fn run_browser_script(script: &str) {
    gst::init().unwrap();
    let dir = std::env::temp_dir().join(format!("plenum-e2e-{}-{script}", std::process::id()));
    make_fixtures(&dir);
    let server = Server::start();
    let path = format!("{}/tests/browser/{script}", env!("CARGO_MANIFEST_DIR"));
    let out = Command::new("node")
        .arg(path)
        .arg(format!("http://{}", server.addr))
        .arg(&dir)
        .output()
        .expect("node runs (./dev test installs it)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    eprintln!("{stdout}{}", String::from_utf8_lossy(&out.stderr));
    let _ = std::fs::remove_dir_all(&dir);
    assert!(out.status.success(), "browser checks failed:\n{stdout}");
    assert!(stdout.contains("RESULT "), "the script must reach its end");
}

#[test]
fn three_browsers_meet_and_nobody_hears_themselves() {
    run_browser_script("meeting.mjs");
}

/// The opener moderates, admits a waiting newcomer through the UI; a shared screen is large.
#[test]
fn a_moderator_admits_and_a_shared_screen_takes_the_stage() {
    run_browser_script("moderation.mjs");
}
