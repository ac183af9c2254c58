//! Certificates made with Debian's `openssl` for the HTTPS tests, and `curl` as an independent
//! HTTPS client.

use std::path::{Path, PathBuf};
use std::process::Command;

/// A test CA and a server certificate it signed, for the DNS names and IP addresses given.
pub struct Certificates {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl").current_dir(dir).args(args).output().expect("openssl runs (Debian package openssl)");
    assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

impl Certificates {
    /// A CA in `dir`, and a certificate named `name` for `san` (e.g. `DNS:plenum.test,IP:127.0.0.1`).
    pub fn make(dir: &Path, name: &str, san: &str) -> Self {
        std::fs::create_dir_all(dir).expect("a directory for certificates");
        if !dir.join("ca.pem").exists() {
            openssl(dir, &["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2",
                "-subj", "/CN=Plenum test CA", "-keyout", "ca.key", "-out", "ca.pem"]);
        }
        let (cert, key, csr) = (format!("{name}.pem"), format!("{name}.key"), format!("{name}.csr"));
        openssl(dir, &["req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-subj", "/CN=plenum test server",
            "-keyout", &key, "-out", &csr]);
        let ext = dir.join(format!("{name}.ext"));
        std::fs::write(&ext, format!("subjectAltName={san}\nextendedKeyUsage=serverAuth\n")).expect("extensions file");
        openssl(dir, &["x509", "-req", "-in", &csr, "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-days", "2",
            "-extfile", ext.to_str().expect("UTF-8 path"), "-out", &cert]);
        Self { ca: dir.join("ca.pem"), cert: dir.join(cert), key: dir.join(key) }
    }

    /// The base64 SHA-256 of the certificate's public key, as chromium's
    /// `--ignore-certificate-errors-spki-list` takes it (trusting this one certificate only).
    pub fn spki_hash(&self) -> String {
        let script = format!(
            "openssl x509 -in '{}' -pubkey -noout | openssl pkey -pubin -outform der | openssl dgst -sha256 -binary | base64",
            self.cert.display()
        );
        let out = Command::new("sh").args(["-c", &script]).output().expect("sh runs");
        assert!(out.status.success(), "spki hash: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// The SHA-256 fingerprint of the certificate a server presents at `host:port`.
    pub fn served_fingerprint(host: &str, port: u16) -> Option<String> {
        let script = format!(
            "openssl s_client -connect 127.0.0.1:{port} -servername {host} </dev/null 2>/dev/null | openssl x509 -noout -fingerprint -sha256"
        );
        let out = Command::new("sh").args(["-c", &script]).output().ok()?;
        let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
        (out.status.success() && !text.is_empty()).then_some(text)
    }

    pub fn fingerprint(&self) -> String {
        let out = Command::new("openssl")
            .args(["x509", "-noout", "-fingerprint", "-sha256", "-in"])
            .arg(&self.cert)
            .output()
            .expect("openssl runs");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }
}

/// `curl` over HTTPS trusting only `ca`, with `host` resolved to 127.0.0.1: (HTTP status, body),
/// or curl's error.
pub fn curl(ca: &Path, host: &str, port: u16, path: &str, extra: &[&str]) -> Result<(u16, String), String> {
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "10", "--cacert"])
        .arg(ca)
        .args(["--resolve", &format!("{host}:{port}:127.0.0.1"), "-w", "\n%{http_code}"])
        .args(extra)
        .arg(format!("https://{host}:{port}{path}"))
        .output()
        .map_err(|e| format!("curl: {e}"))?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).trim().to_string());
    }
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let (body, code) = text.rsplit_once('\n').ok_or("no status")?;
    Ok((code.trim().parse().map_err(|_| format!("status {code:?}"))?, body.to_string()))
}
