//! The real `plenum` binary as a child process on a free loopback port.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};

use super::http::{self, Response};

pub struct Server {
    child: Child,
    pub addr: SocketAddr,
    /// `https` with `--tls-cert`, else `http`.
    pub scheme: String,
    /// The rest of what the server prints (kept open: a closed pipe would fail its next line).
    stdout: BufReader<std::process::ChildStdout>,
}

/// Settings that keep the media tests real-time on a 2-core machine.
pub const TEST_ARGS: &[&str] = &["--ice-address", "127.0.0.1", "--canvas", "640x360", "--fps", "15"];

/// The same with `--open-media`, for tests whose peers are anonymous WHIP/WHEP clients.
pub const OPEN_TEST_ARGS: &[&str] = &["--ice-address", "127.0.0.1", "--canvas", "640x360", "--fps", "15", "--open-media"];

impl Server {
    pub fn start() -> Self {
        Self::start_with(TEST_ARGS)
    }

    /// A server that lets anonymous WHIP/WHEP clients in (`--open-media`).
    pub fn start_open() -> Self {
        Self::start_with(OPEN_TEST_ARGS)
    }

    pub fn start_with(args: &[&str]) -> Self {
        let log = std::env::var("PLENUM_LOG").unwrap_or_else(|_| "warn".into());
        let server = Self::spawn(&["serve"], "127.0.0.1:0", args, &log, Stdio::inherit());
        server.ready();
        server
    }

    /// A server on `addr` (to start one again where the last one was).
    pub fn start_at(addr: SocketAddr, args: &[&str]) -> Self {
        let log = std::env::var("PLENUM_LOG").unwrap_or_else(|_| "warn".into());
        let server = Self::spawn(&["serve"], &addr.to_string(), args, &log, Stdio::inherit());
        server.ready();
        server
    }

    /// A server at log level `level` whose log lines (standard error) the test reads: every
    /// line so far, as written. `global` goes before `serve` (e.g. `--log-format json`).
    pub fn start_logging(global: &[&str], args: &[&str], level: &str) -> (Self, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
        let command: Vec<&str> = global.iter().copied().chain(["serve"]).collect();
        let mut server = Self::spawn(&command, "127.0.0.1:0", args, level, Stdio::piped());
        let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let stderr = server.child.stderr.take().expect("stderr is piped");
        let sink = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        server.ready();
        (server, lines)
    }

    /// Starts the binary and reads the address it listens on (it is not ready yet).
    fn spawn(command: &[&str], listen: &str, args: &[&str], log: &str, stderr: Stdio) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_plenum"))
            .args(command)
            .args(["--listen", listen])
            .args(args)
            .env("PLENUM_LOG", log)
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("the plenum binary starts");
        let mut stdout = BufReader::new(child.stdout.take().expect("stdout is piped"));
        let mut line = String::new();
        stdout.read_line(&mut line).expect("server prints its address");
        let (scheme, addr) = line
            .trim()
            .strip_prefix("plenum listening on ")
            .and_then(|a| a.split_once("://"))
            .and_then(|(scheme, a)| Some((scheme.to_string(), a.parse().ok()?)))
            .unwrap_or_else(|| panic!("server did not report its address; it printed {line:?}"));
        Self { child, addr, scheme, stdout }
    }

    /// The next line the server prints on standard output.
    pub fn stdout_line(&mut self) -> String {
        let mut line = String::new();
        self.stdout.read_line(&mut line).expect("the server's standard output");
        line.trim().to_string()
    }

    fn ready(&self) {
        if self.scheme == "https" {
            // The plain client here speaks no TLS: a test of HTTPS checks with its own.
            return;
        }
        super::wait_for(std::time::Duration::from_secs(10), "/healthz to answer 200", || {
            let r = self.get("/healthz");
            if r.status == 200 { Ok(()) } else { Err(format!("status {}", r.status)) }
        });
    }

    pub fn get(&self, path: &str) -> Response {
        http::request(self.addr, "GET", path, &[], b"")
    }

    pub fn request(&self, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Response {
        http::request(self.addr, method, path, headers, body)
    }

    /// CPU time (user + system) the server has used so far, from /proc.
    pub fn cpu_seconds(&self) -> f64 {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).unwrap_or_default();
        let fields: Vec<&str> = stat.rsplit_once(')').map(|(_, r)| r.split_whitespace().collect()).unwrap_or_default();
        let ticks: f64 = fields.get(11).and_then(|u| u.parse::<f64>().ok()).unwrap_or(0.0)
            + fields.get(12).and_then(|s| s.parse::<f64>().ok()).unwrap_or(0.0);
        ticks / 100.0
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Sends SIGINT (Ctrl-C) and waits for the exit status.
    pub fn interrupt(self) -> std::process::ExitStatus {
        self.signal("-INT")
    }

    /// Sends SIGTERM (systemd's stop) and waits for the exit status.
    pub fn terminate(self) -> std::process::ExitStatus {
        self.signal("-TERM")
    }

    fn signal(mut self, signal: &str) -> std::process::ExitStatus {
        let _ = Command::new("kill").args([signal, &self.child.id().to_string()]).status();
        let status = self.child.wait().expect("server exits");
        std::mem::forget(self);
        status
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
