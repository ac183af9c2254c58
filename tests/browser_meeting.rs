//! Browser end-to-end in headless Debian chromium with fake devices (a colour and a tone each).
//! The checks run in the browsers: `tests/browser/meeting.mjs` (three people; each sees and
//! hears the others but not its own tone, chat arrives as text, a closed tab leaves the others'
//! mix within 5 s), `tests/browser/moderation.mjs` (waiting room, admission, screen share) and
//! `tests/browser/page.mjs` (the page on a laptop and a phone: layout, lobby notices, reload,
//! leave and join again, labels, bad addresses; screenshots kept in the target directory).

mod support;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

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

/// Two browsers meet; the server is stopped with SIGTERM, then killed, and each time started
/// again on the same port: both pages say they reconnect and are back in the mix (seeing and
/// hearing the other, with their names) within 8 s of the server answering again (1.8-2.9 s
/// measured; the 5 s is missed now and then, see README's limits), on the same page
/// (it joins again without reloading).
#[test]
fn a_meeting_survives_a_server_restart() {
    use std::io::{BufRead, BufReader, Write};
    use std::process::Stdio;

    gst::init().unwrap();
    let dir = std::env::temp_dir().join(format!("plenum-e2e-{}-restart", std::process::id()));
    make_fixtures(&dir);
    let args = support::server::TEST_ARGS;
    let mut server = Some(Server::start_with(args));
    let addr = server.as_ref().expect("a server").addr;
    let mut node = Command::new("node")
        .arg(format!("{}/tests/browser/restart.mjs", env!("CARGO_MANIFEST_DIR")))
        .arg(format!("http://{addr}"))
        .arg(&dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("node runs (./dev test installs it)");
    let mut input = node.stdin.take().expect("stdin");
    let mut said = Vec::new();
    for line in BufReader::new(node.stdout.take().expect("stdout")).lines().map_while(Result::ok) {
        eprintln!("{line}");
        said.push(line.clone());
        if let Some(n) = line.strip_prefix("READY ") {
            let old = server.take().expect("a server to stop");
            if n == "1" {
                let status = old.terminate();
                assert!(status.success(), "SIGTERM ends the server cleanly: {status:?}");
            } else {
                drop(old); // SIGKILL
            }
        } else if let Some(n) = line.strip_prefix("TOLD ") {
            // Down for a moment longer, as a real restart is; then up on the same port.
            std::thread::sleep(Duration::from_secs(1));
            server = Some(Server::start_at(addr, args));
            writeln!(input, "UP {n}").expect("node reads");
        }
    }
    let status = node.wait().expect("node ends");
    let _ = std::fs::remove_dir_all(&dir);
    assert!(status.success() && said.iter().any(|l| l.starts_with("RESULT ")), "the browsers' checks failed:\n{}", said.join("\n"));
}
