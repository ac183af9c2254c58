//! A real redis-server (Debian's package) on a free loopback port, for a pool of nodes; it
//! keeps nothing on disk and is killed with the test.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub struct Redis {
    child: Option<Child>,
    pub port: u16,
}

impl Redis {
    pub fn start() -> Self {
        let port = TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free port").port();
        Self::start_on(port)
    }

    /// A redis-server on `port` (to start it again where it was).
    pub fn start_on(port: u16) -> Self {
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .args(["--dir", std::env::temp_dir().to_str().expect("a temp dir")])
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server starts (Debian's redis-server package)");
        let redis = Self { child: Some(child), port };
        super::wait_for(Duration::from_secs(10), "redis-server to answer PING", || {
            let pong: String = redis::cmd("PING").query(&mut redis.connection()?)?;
            Ok::<_, redis::RedisError>(pong)
        });
        redis
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    pub fn connection(&self) -> Result<redis::Connection, redis::RedisError> {
        redis::Client::open(self.url())?.get_connection_with_timeout(Duration::from_secs(2))
    }

    /// The value at `key` (a lease names its owner's id).
    pub fn get(&self, key: &str) -> Option<String> {
        redis::cmd("GET").arg(key).query(&mut self.connection().expect("redis answers")).expect("GET")
    }

    /// Commands Redis has processed since it started (`INFO stats`).
    pub fn commands_processed(&self) -> u64 {
        let info: String = redis::cmd("INFO").arg("stats").query(&mut self.connection().expect("redis answers")).expect("INFO");
        info.lines().find_map(|l| l.strip_prefix("total_commands_processed:")).and_then(|n| n.trim().parse().ok()).expect("a command count")
    }

    /// Kills redis-server at once (SIGKILL).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.kill();
    }
}
