//! An IP camera for a test: GStreamer's RTSP server through python3-gi (Debian's
//! gir1.2-gst-rtsp-server-1.0), serving one colour and one tone at `rtsp://127.0.0.1:PORT/hall`
//! on a free loopback port; killed (like a camera losing power) and started again on the same
//! port; stopped when dropped.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use super::client::Rgb;

pub struct RtspCamera {
    child: Option<Child>,
    pub port: u16,
    colour: Rgb,
    tone_hz: u32,
}

impl RtspCamera {
    pub fn start(colour: Rgb, tone_hz: u32) -> Self {
        let port = TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free port").port();
        let mut camera = Self { child: None, port, colour, tone_hz };
        camera.restart();
        camera
    }

    /// (Re)starts the server on the same port; returns once it listens.
    pub fn restart(&mut self) {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/support/rtsp_camera.py");
        let Rgb(r, g, b) = self.colour;
        // Debian's python3, the one python3-gi is installed for (not another one on PATH).
        let mut child = Command::new("/usr/bin/python3")
            .args([script, &self.port.to_string(), &format!("{r:02x}{g:02x}{b:02x}"), &self.tone_hz.to_string()])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("/usr/bin/python3 runs (./dev test installs python3-gi and gir1.2-gst-rtsp-server-1.0)");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let said = rx.recv_timeout(Duration::from_secs(15));
        assert_eq!(said.as_deref().ok(), Some("ready"), "the RTSP camera did not start: {said:?}");
        self.child = Some(child);
    }

    /// Stops it where it is (SIGSTOP): its connections stay open and nothing comes, as when a
    /// camera hangs or its network cable is pulled.
    pub fn freeze(&self) {
        if let Some(child) = &self.child {
            let status = Command::new("kill").args(["-STOP", &child.id().to_string()]).status();
            assert!(status.is_ok_and(|s| s.success()), "the camera process stops");
        }
    }

    /// Kills it at once, as a camera losing power would go.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn url(&self) -> String {
        format!("rtsp://127.0.0.1:{}/hall", self.port)
    }
}

impl Drop for RtspCamera {
    fn drop(&mut self) {
        self.kill();
    }
}
