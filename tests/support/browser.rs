//! A node script in `tests/browser/` driving headless chromium while the Rust side of a test
//! changes the network: its output lines are collected as they come, with their time.

use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub struct Script {
    child: Child,
    lines: Arc<Mutex<Vec<(Instant, String)>>>,
}

impl Script {
    /// Runs `tests/browser/<name>` with `args`.
    pub fn start(name: &str, args: &[&str]) -> Self {
        let path = format!("{}/tests/browser/{name}", env!("CARGO_MANIFEST_DIR"));
        let mut child = Command::new("node")
            .arg(path)
            .args(args)
            .stdout(Stdio::piped())
            // Its own process group, so that chromium goes with it (see `Drop`).
            .process_group(0)
            .spawn()
            .expect("node runs (./dev test installs it)");
        let lines: Arc<Mutex<Vec<(Instant, String)>>> = Arc::default();
        let sink = lines.clone();
        let stdout = child.stdout.take().expect("node's stdout");
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                eprintln!("[browser] {line}");
                sink.lock().unwrap().push((Instant::now(), line));
            }
        });
        Self { child, lines }
    }

    fn said(&self, prefix: &str) -> bool {
        self.lines.lock().unwrap().iter().any(|(_, l)| l.starts_with(prefix))
    }

    /// Waits for the script's "ready" line; a "FAIL" line fails the test.
    pub fn wait_ready(&self, timeout: Duration) {
        super::wait_for(timeout, "the browser ready", || {
            if self.said("FAIL") {
                panic!("the browser failed: {:?}", self.lines.lock().unwrap());
            }
            if self.said("ready") { Ok(()) } else { Err("not yet") }
        });
    }

    /// The `stats {json}` lines so far, with when they came.
    pub fn stats(&self) -> Vec<(Instant, serde_json::Value)> {
        self.lines
            .lock()
            .unwrap()
            .iter()
            .filter_map(|(at, l)| Some((*at, serde_json::from_str(l.strip_prefix("stats ")?).ok()?)))
            .collect()
    }
}

impl Drop for Script {
    /// Ends node and the chromium it started (killed, node would leave chromium running and
    /// loading the next test's machine).
    fn drop(&mut self) {
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
        let _ = self.child.wait();
    }
}

/// A number from a stats line (NaN when absent).
pub fn number(v: &serde_json::Value, key: &str) -> f64 {
    v.get(key).and_then(|x| x.as_f64()).unwrap_or(f64::NAN)
}
