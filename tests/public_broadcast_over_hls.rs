//! A moderator makes the room's broadcast public: Plenum serves it over HLS itself. ffprobe and
//! ffmpeg read the playlist as any player would (H.264 + AAC, segments of about 2 s, every
//! publisher's colour and tone), the headers let a cache sit in front, the watch page plays it
//! in headless chromium (with the browser's own HLS and with Plenum's player, whose fragmented
//! MP4 ffmpeg decodes too), and nothing is served before the moderator starts it or after the
//! stop.

mod support;

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::analysis::{coverage, tone_level, PRESENT, TOLERANCE, TONE_PRESENT, WINDOW};
use support::client::{self, Publisher, Source, GREEN, RED};
use support::ffmpeg;
use support::server::Server;
use support::ws::Control;

const T: Duration = Duration::from_secs(10);

#[test]
fn a_public_broadcast_is_served_over_hls_and_plays_on_the_watch_page() {
    client::init();
    let server = Server::start();
    let room = "buergerversammlung";
    let (mut ada, ada_token, _key) = Control::join_first(server.addr, room, "Ada");
    let (mut bo, _, bo_token) = Control::join(server.addr, room, "Bo");
    let _red = Publisher::start_as(server.addr, room, Source::new(RED, 440), Some(&ada_token));
    let _green = Publisher::start_as(server.addr, room, Source::new(GREEN, 660), Some(&bo_token));
    let playlist_path = format!("/hls/{room}/index.m3u8");
    assert_eq!(server.get(&playlist_path).status, 404, "nothing is public before a moderator says so");
    bo.send_json(&json!({"type": "set_broadcast", "on": true}));
    assert_eq!(bo.expect_type("error", T)["code"], "forbidden", "a guest may not broadcast");

    ada.send_json(&json!({"type": "set_broadcast", "on": true}));
    let started = Instant::now();
    bo.told_setting("broadcast", true, "a participant");
    let info: Value = serde_json::from_str(&server.get(&format!("/api/rooms/{room}")).body).expect("JSON");
    assert_eq!(info["broadcast"], json!(true), "the pre-join page says so: {info}");

    // Three segments in the playlist.
    let playlist = support::wait_for(Duration::from_secs(30), "three segments in the playlist", || {
        let r = server.get(&playlist_path);
        let n = r.body.matches("#EXTINF").count();
        if r.status == 200 && n >= 3 { Ok(r) } else { Err(format!("{} with {n} segments", r.status)) }
    });
    eprintln!("three segments {:?} after the start:\n{}", started.elapsed(), playlist.body);
    assert_eq!(playlist.header("content-type"), Some("application/vnd.apple.mpegurl"));
    assert_eq!(playlist.header("cache-control"), Some("public, max-age=1"));
    let durations: Vec<f64> = playlist.body.lines().filter_map(|l| l.strip_prefix("#EXTINF:")).filter_map(|d| d.trim_end_matches(',').parse().ok()).collect();
    assert!(durations.iter().all(|d| (1.5..=4.5).contains(d)), "segments of about 2 s: {durations:?}");
    let first = playlist.body.lines().find(|l| l.ends_with(".ts")).expect("a segment").to_string();
    let segment = server.get(&format!("/hls/{room}/{first}"));
    assert_eq!(segment.status, 200);
    assert_eq!(segment.header("content-type"), Some("video/mp2t"));
    assert_eq!(segment.header("cache-control"), Some("public, max-age=3600, immutable"));
    assert_eq!(server.get(&format!("/hls/{room}/0-0.ts")).status, 404, "unknown segments are 404");

    let url = format!("http://{}{playlist_path}", server.addr);
    assert_eq!(ffmpeg::codecs(&url).expect("ffprobe reads the playlist"), vec!["h264", "aac"]);
    let frame = ffmpeg::frame_at(&url, 1.0).expect("a picture");
    let sound = ffmpeg::audio_at(&url, 1.0, 1.0).expect("sound");
    assert!(sound.len() >= WINDOW, "{} samples", sound.len());
    let (red, green) = (coverage(&frame, RED, TOLERANCE), coverage(&frame, GREEN, TOLERANCE));
    let (a, b) = (tone_level(&sound[..WINDOW], 440.0), tone_level(&sound[..WINDOW], 660.0));
    eprintln!("over HLS: red {red:.3}, green {green:.3}, 440 Hz {a:.3}, 660 Hz {b:.3}");
    assert!(red >= PRESENT && green >= PRESENT && a >= TONE_PRESENT && b >= TONE_PRESENT, "everyone in the broadcast");

    own_player_output_decodes(&url);

    let script = format!("{}/tests/browser/watch.mjs", env!("CARGO_MANIFEST_DIR"));
    let colours = [RED, GREEN].map(|c| format!("{},{},{}", c.0, c.1, c.2));
    let out = Command::new("node").arg(script).arg(format!("http://{}", server.addr)).arg(room).args(colours).output().expect("node runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    eprintln!("{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success() && stdout.contains("RESULT watch ok"), "the watch page:\n{stdout}");

    ada.send_json(&json!({"type": "set_broadcast", "on": false}));
    bo.told_setting("broadcast", false, "a participant");
    assert_eq!(server.get(&playlist_path).status, 404, "nothing is served after the stop");
}

/// The watch page's own player (for browsers without HLS, e.g. Firefox) turns segments into
/// fragmented MP4: run on the live playlist in node, its output decodes in ffmpeg to H.264 and
/// AAC with every colour and tone.
fn own_player_output_decodes(playlist: &str) {
    let file = std::env::temp_dir().join(format!("plenum-own-player-{}.mp4", std::process::id()));
    let script = format!("{}/tests/browser/transmux.mjs", env!("CARGO_MANIFEST_DIR"));
    let out = Command::new("node").arg(script).arg(playlist).arg(&file).output().expect("node runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    eprintln!("{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success() && stdout.contains("RESULT transmux ok"), "the player's transmuxer:\n{stdout}");
    let path = file.to_str().expect("a UTF-8 path").to_string();
    let path = path.as_str();
    assert_eq!(ffmpeg::codecs(path).expect("ffprobe reads the fragments"), vec!["h264", "aac"]);
    let duration = ffmpeg::duration(path).expect("a duration");
    assert!((4.0..=14.0).contains(&duration), "three segments of about 2 s: {duration} s");
    let frame = ffmpeg::frame_at(path, 1.0).expect("a picture");
    let sound = ffmpeg::audio_at(path, 1.0, 1.0).expect("sound");
    assert!(sound.len() >= WINDOW, "{} samples", sound.len());
    let (red, green) = (coverage(&frame, RED, TOLERANCE), coverage(&frame, GREEN, TOLERANCE));
    let (a, b) = (tone_level(&sound[..WINDOW], 440.0), tone_level(&sound[..WINDOW], 660.0));
    let _ = std::fs::remove_file(&file);
    eprintln!("through the own player's transmuxer ({duration:.1} s): red {red:.3}, green {green:.3}, 440 Hz {a:.3}, 660 Hz {b:.3}");
    assert!(red >= PRESENT && green >= PRESENT && a >= TONE_PRESENT && b >= TONE_PRESENT, "everyone in the fragments");
}
