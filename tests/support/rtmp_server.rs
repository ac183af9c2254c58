//! Debian's nginx with its RTMP module as the live-stream server of a test: started on a free
//! loopback port in a directory of its own, killed (SIGKILL, like a crashed server) and started
//! again on the same port; stopped when dropped.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub struct RtmpServer {
    child: Option<Child>,
    pub port: u16,
    dir: PathBuf,
}

const MODULE: &str = "/usr/lib/nginx/modules/ngx_rtmp_module.so";

impl RtmpServer {
    pub fn start() -> Self {
        let port = TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free port").port();
        let dir = std::env::temp_dir().join(format!("plenum-rtmp-{}-{port}", std::process::id()));
        std::fs::create_dir_all(dir.join("logs")).expect("nginx prefix directory");
        let conf = format!(
            "load_module {MODULE};\nerror_log {dir}/logs/error.log warn;\npid {dir}/nginx.pid;\n\
             events {{ worker_connections 64; }}\n\
             rtmp {{ server {{ listen 127.0.0.1:{port}; application live {{ live on; record off; wait_key on; wait_video on; }} }} }}\n",
            dir = dir.display()
        );
        std::fs::write(dir.join("nginx.conf"), conf).expect("nginx.conf");
        let mut server = Self { child: None, port, dir };
        server.restart();
        server
    }

    /// (Re)starts nginx on the same port; returns once it accepts connections.
    pub fn restart(&mut self) {
        let child = Command::new("nginx")
            .args(["-p", &self.dir.display().to_string(), "-c", "nginx.conf", "-g", "daemon off; master_process off;"])
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("nginx runs (./dev test installs nginx-light and libnginx-mod-rtmp)");
        self.child = Some(child);
        super::wait_for(Duration::from_secs(10), "nginx-rtmp to listen", || {
            std::net::TcpStream::connect(("127.0.0.1", self.port)).map(|_| ()).map_err(|e| e.to_string())
        });
    }

    /// Kills it at once, as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// The URL of stream `key` in the application `live`.
    pub fn url(&self, key: &str) -> String {
        format!("rtmp://127.0.0.1:{}/live/{key}", self.port)
    }
}

impl Drop for RtmpServer {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
