//! Browser end-to-end in headless Debian chromium with fake devices (a colour and a tone each).
//! The checks run in the browsers: `tests/browser/meeting.mjs` (three people; each sees and
//! hears the others but not its own tone, chat arrives as text, a closed tab leaves the others'
//! mix within 5 s), `tests/browser/moderation.mjs` (waiting room, admission, screen share) and
//! `tests/browser/page.mjs` (the page on a laptop and a phone: layout, lobby notices, reload,
//! leave and join again, labels, bad addresses; screenshots kept in the target directory).

mod support;

use std::path::Path;
use std::process::Command;

use support::fixtures::{self, Fake};
use support::server::Server;

const COLOURS: [u32; 3] = [0xffe6_1e1e, 0xff1e_c828, 0xff28_3ce6];
const TONES: [u32; 3] = [500, 700, 900];

/// A 2 s solid-colour Y4M and a 2 s sine WAV per participant (chromium loops them).
fn make_fixtures(dir: &Path) {
    let people: Vec<Fake> = COLOURS.iter().zip(TONES).map(|(c, t)| Fake::plain(*c, t)).collect();
    fixtures::make(dir, &people);
}

/// Runs `tests/browser/<script>` against a fresh server with `extra` arguments; the checks are
/// in the script.
fn run_browser_script(script: &str, extra: &[&str]) {
    gst::init().unwrap();
    let dir = std::env::temp_dir().join(format!("plenum-e2e-{}-{script}", std::process::id()));
    make_fixtures(&dir);
    // Recordings (the moderation script starts one) go to the test's own directory.
    let recordings = dir.join("recordings");
    let mut args = support::server::TEST_ARGS.to_vec();
    args.extend(["--recordings-dir", recordings.to_str().expect("a UTF-8 temp dir")]);
    let server = Server::start_with(&args);
    let path = format!("{}/tests/browser/{script}", env!("CARGO_MANIFEST_DIR"));
    let out = Command::new("node")
        .arg(path)
        .arg(format!("http://{}", server.addr))
        .arg(&dir)
        .args(extra)
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
    run_browser_script("meeting.mjs", &[]);
}

/// The opener moderates, admits a waiting newcomer through the UI; a shared screen is large;
/// a hall camera (GStreamer's RTSP server) is added in the panel.
#[test]
fn a_moderator_admits_and_a_shared_screen_takes_the_stage() {
    let camera = support::rtsp_camera::RtspCamera::start(support::client::BLUE, 880);
    run_browser_script("moderation.mjs", &[&camera.url()]);
}

/// The page on a 1366x768 laptop and a 390x844 phone; screenshots go to
/// `target/tmp/screenshots` for a reviewer.
#[test]
fn the_meeting_page_fits_laptops_and_phones() {
    let shots = Path::new(env!("CARGO_TARGET_TMPDIR")).join("screenshots");
    run_browser_script("page.mjs", &[shots.to_str().expect("a UTF-8 target directory")]);
}
