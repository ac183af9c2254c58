//! Debian's baresip as an independent phone: headless, on loopback only, a WAV file as its
//! microphone, what it hears dumped to a WAV file (the `sndfile` module), driven over its
//! `ctrl_tcp` module (netstring-framed JSON: dial, send DTMF as RFC 4733 events, hang up).
//! Killed when dropped.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Baresip {
    child: Child,
    dir: PathBuf,
    control: TcpStream,
    buffer: Vec<u8>,
    /// Events seen so far (their `type`).
    pub events: Vec<String>,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free port").port()
}

impl Baresip {
    /// A phone whose user part is `user` (its number, e.g. "0301234567"), speaking `wav`
    /// (48 kHz mono) with `codecs` (baresip's `name/rate/channels`, e.g. "PCMA/8000/1").
    pub fn start(wav: &Path, user: &str, codecs: &str) -> Self {
        let (sip_port, ctrl_port) = (free_port(), free_port());
        let dir = std::env::temp_dir().join(format!("plenum-baresip-{}-{sip_port}", std::process::id()));
        std::fs::create_dir_all(dir.join("heard")).expect("baresip directory");
        let config = format!(
            "poll_method epoll\nsip_listen 127.0.0.1:{sip_port}\nnet_interface 127.0.0.1\ndns_server 127.0.0.1:53\n\
             call_local_timeout 30\ncall_max_calls 2\naudio_path /usr/share/baresip\n\
             audio_source aufile,{wav}\naudio_player aubridge,sink\naudio_alert aubridge,alert\naudio_level no\n\
             ausrc_srate 48000\nausrc_channels 1\nauplay_srate 48000\nauplay_channels 1\n\
             ausrc_format s16\nauplay_format s16\nauenc_format s16\naudec_format s16\naudio_buffer 20-160\n\
             rtp_ports 20000-29999\nrtcp_mux no\njitter_buffer_delay 5-10\n\
             module_path /usr/lib/baresip/modules\nmodule g711.so\nmodule g722.so\nmodule opus.so\n\
             module aufile.so\nmodule sndfile.so\nmodule aubridge.so\nmodule_tmp account.so\n\
             module_app menu.so\nmodule_app ctrl_tcp.so\nctrl_tcp_listen 127.0.0.1:{ctrl_port}\n\
             snd_path {heard}\nringback_disabled yes\nstatmode_default off\n",
            wav = wav.display(),
            heard = dir.join("heard").display(),
        );
        std::fs::write(dir.join("config"), config).expect("baresip config");
        // regint=0: never registers; the account only names the caller.
        std::fs::write(dir.join("accounts"), format!("<sip:{user}@127.0.0.1>;regint=0;audio_codecs={codecs}\n")).expect("baresip accounts");
        let child = Command::new("baresip")
            .arg("-f")
            .arg(&dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("baresip runs (./dev test installs it)");
        let control = super::wait_for(Duration::from_secs(10), "baresip's control port", || TcpStream::connect(("127.0.0.1", ctrl_port)));
        control.set_read_timeout(Some(Duration::from_millis(200))).expect("a read timeout");
        Self { child, dir, control, buffer: Vec::new(), events: Vec::new() }
    }

    fn send(&mut self, command: &str, params: &str) {
        let body = serde_json::json!({ "command": command, "params": params, "token": command }).to_string();
        let frame = format!("{}:{body},", body.len());
        self.control.write_all(frame.as_bytes()).expect("baresip takes a command");
    }

    /// Reads what baresip said until `within` passed; the event types are noted.
    fn pump(&mut self, within: Duration) {
        let end = Instant::now() + within;
        while Instant::now() < end {
            let mut chunk = [0u8; 4096];
            match self.control.read(&mut chunk) {
                Ok(0) => return,
                Ok(n) => self.buffer.extend_from_slice(&chunk[..n]),
                Err(_) => {}
            }
            while let Some(colon) = self.buffer.iter().position(|&b| b == b':') {
                let Some(len) = std::str::from_utf8(&self.buffer[..colon]).ok().and_then(|s| s.parse::<usize>().ok()) else {
                    self.buffer.clear();
                    break;
                };
                if self.buffer.len() < colon + 1 + len + 1 {
                    break;
                }
                let message: serde_json::Value = serde_json::from_slice(&self.buffer[colon + 1..colon + 1 + len]).unwrap_or_default();
                self.buffer.drain(..colon + 1 + len + 1);
                if let Some(kind) = message["type"].as_str() {
                    self.events.push(kind.to_string());
                }
            }
        }
    }

    /// Waits until baresip reported `event` (e.g. "CALL_ESTABLISHED", "CALL_CLOSED").
    pub fn wait_event(&mut self, event: &str, within: Duration) -> bool {
        let end = Instant::now() + within;
        while Instant::now() < end {
            if self.events.iter().any(|e| e == event) {
                return true;
            }
            self.pump(Duration::from_millis(200));
        }
        self.events.iter().any(|e| e == event)
    }

    pub fn dial(&mut self, uri: &str) {
        self.send("dial", uri);
    }

    /// Sends keys as RFC 4733 telephone-events (baresip spaces them itself).
    pub fn keys(&mut self, keys: &str) {
        self.send("sndcode", keys);
    }

    pub fn hang_up(&mut self) {
        self.send("hangup", "");
    }

    /// What the phone heard, once it wrote it (`dump-…-dec.wav`).
    pub fn heard(&self) -> Option<PathBuf> {
        std::fs::read_dir(self.dir.join("heard")).ok()?.filter_map(Result::ok).map(|e| e.path()).find(|p| p.to_string_lossy().ends_with("-dec.wav"))
    }
}

impl Drop for Baresip {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
