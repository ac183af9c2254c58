//! A broken encoder profile stops start-up with a message naming the file and the element;
//! Ctrl-C with live sessions shuts down cleanly.

mod support;

use std::process::Command;
use std::time::{Duration, Instant};

use support::client::{self, Publisher, Viewer, RED};
use support::server::Server;

fn profiles_dir(name: &str, files: &[(&str, &str)]) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("plenum-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    for (file, text) in files {
        std::fs::write(dir.join(file), text).unwrap();
    }
    dir
}

#[test]
fn a_broken_profile_stops_start_up_naming_file_and_element() {
    let good = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/pipelines/h264-x264.toml")).unwrap();
    let dir = profiles_dir("broken", &[
        ("vp8.toml", "codec = \"vp8\"\nencoder = \"videoconvert ! vp8enc deadline=1 ! vp8-turbo-encoder\"\n"),
        ("h264-x264.toml", good.as_str()),
    ]);
    let out = Command::new(env!("CARGO_BIN_EXE_plenum"))
        .args(["serve", "--listen", "127.0.0.1:0", "--pipelines-dir"])
        .arg(&dir)
        .output()
        .expect("plenum runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "start-up must fail; stderr: {stderr}");
    assert!(stderr.contains("vp8.toml") && stderr.contains("vp8-turbo-encoder"), "stderr: {stderr}");
    assert!(out.stdout.is_empty(), "it must not start listening");
}

#[test]
fn ctrl_c_closes_sessions_and_exits_cleanly() {
    client::init();
    let server = Server::start_open();
    let publisher = Publisher::start(server.addr, "closing", RED, 440);
    let viewer = Viewer::start(server.addr, "closing", None);
    support::wait_for(Duration::from_secs(10), "media at the viewer", || {
        viewer.frame().map(|_| ()).ok_or_else(|| "no frame".to_string())
    });
    let start = Instant::now();
    let status = server.interrupt();
    assert!(status.success(), "exit status {status:?}");
    assert!(start.elapsed() < Duration::from_secs(10), "shutdown took {:?}", start.elapsed());
    drop((publisher, viewer));
}
