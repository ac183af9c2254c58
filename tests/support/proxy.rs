//! README's reverse-proxy snippets (`deploy/proxy/`) run as written, with only the site name's
//! port, the certificate paths and Plenum's address filled in: Debian's nginx and Caddy on free
//! loopback ports, each in a directory of its own, stopped when dropped.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::tls::Certificates;

pub const SITE: &str = "meet.example.org";

pub struct Proxy {
    child: Child,
    pub port: u16,
    dir: PathBuf,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free port").port()
}

fn snippet(name: &str) -> String {
    let path = format!("{}/deploy/proxy/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Replaces `from` in `text`, failing if the snippet no longer has it (then this harness and
/// the snippet have drifted apart).
fn fill(text: &str, from: &str, to: &str) -> String {
    assert!(text.contains(from), "the snippet no longer contains {from:?}");
    text.replace(from, to)
}

impl Proxy {
    /// `deploy/proxy/nginx.conf` in front of `plenum`.
    pub fn nginx(plenum: SocketAddr, certs: &Certificates) -> Self {
        let port = free_port();
        let dir = std::env::temp_dir().join(format!("plenum-nginx-{}-{port}", std::process::id()));
        std::fs::create_dir_all(dir.join("logs")).expect("nginx prefix directory");
        let mut site = snippet("nginx.conf");
        site = fill(&site, "listen 443 ssl;", &format!("listen 127.0.0.1:{port} ssl;"));
        site = fill(&site, "listen [::]:443 ssl;", "");
        site = fill(&site, "/etc/ssl/meet.example.org/fullchain.pem", &certs.cert.display().to_string());
        site = fill(&site, "/etc/ssl/meet.example.org/privkey.pem", &certs.key.display().to_string());
        site = fill(&site, "http://127.0.0.1:8080", &format!("http://{plenum}"));
        let conf = format!(
            "error_log {dir}/logs/error.log warn;\npid {dir}/nginx.pid;\nevents {{ worker_connections 256; }}\n\
             http {{\naccess_log off;\n{site}\n}}\n",
            dir = dir.display()
        );
        std::fs::write(dir.join("nginx.conf"), conf).expect("nginx.conf");
        let child = Command::new("nginx")
            .args(["-p", &dir.display().to_string(), "-c", "nginx.conf", "-g", "daemon off; master_process off;"])
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("nginx runs (./dev test installs nginx-light)");
        Self::listening(child, port, dir)
    }

    /// `deploy/proxy/Caddyfile` in front of `plenum`, with the test certificate instead of one
    /// from an ACME CA (nothing leaves the machine).
    pub fn caddy(plenum: SocketAddr, certs: &Certificates) -> Self {
        let port = free_port();
        let dir = std::env::temp_dir().join(format!("plenum-caddy-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("caddy directory");
        let mut site = snippet("Caddyfile");
        site = fill(
            &site,
            &format!("{SITE} {{"),
            &format!("https://{SITE}:{port} {{\n\ttls {} {}", certs.cert.display(), certs.key.display()),
        );
        site = fill(&site, "127.0.0.1:8080", &plenum.to_string());
        let global = format!("{{\n\tadmin off\n\tauto_https off\n\thttp_port {}\n\tstorage file_system {}\n}}\n", free_port(), dir.join("data").display());
        let file = dir.join("Caddyfile");
        std::fs::write(&file, format!("{global}{site}")).expect("Caddyfile");
        let child = Command::new("caddy")
            .args(["run", "--adapter", "caddyfile", "--config"])
            .arg(&file)
            .env("HOME", &dir)
            .env("XDG_DATA_HOME", dir.join("data"))
            .env("XDG_CONFIG_HOME", dir.join("config"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("caddy runs (./dev test installs it)");
        Self::listening(child, port, dir)
    }

    fn listening(child: Child, port: u16, dir: PathBuf) -> Self {
        let proxy = Self { child, port, dir };
        super::wait_for(Duration::from_secs(15), "the proxy to listen", || {
            std::net::TcpStream::connect(("127.0.0.1", port)).map(|_| ()).map_err(|e| e.to_string())
        });
        proxy
    }

    pub fn base(&self) -> String {
        format!("https://{SITE}:{}", self.port)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
