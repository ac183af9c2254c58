//! HTTPS built in (`--tls-cert`, `--tls-key`) for a LAN without a reverse proxy: browsers on
//! other machines may use camera and microphone only on a secure origin. Certificates come from
//! Debian's `openssl` (a test CA), the clients are `curl`, `openssl s_client` and headless
//! chromium.

mod support;

use std::io::Write;
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use support::fixtures::{self, Fake};
use support::server::{Server, TEST_ARGS};
use support::tls::{curl, Certificates};

const HOST: &str = "plenum.test";

fn dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("plenum-https-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn tls_args<'a>(certs: &'a Certificates) -> Vec<&'a str> {
    let mut args = TEST_ARGS.to_vec();
    args.extend(["--tls-cert", certs.cert.to_str().expect("UTF-8"), "--tls-key", certs.key.to_str().expect("UTF-8")]);
    args
}

fn wait_https(certs: &Certificates, port: u16) {
    support::wait_for(Duration::from_secs(10), "/healthz over HTTPS", || match curl(&certs.ca, HOST, port, "/healthz", &[]) {
        Ok((200, body)) if body.trim() == "ok" => Ok(()),
        other => Err(format!("{other:?}")),
    });
}

/// A key that is not the certificate's is refused at the start (and by `plenum check`), naming
/// both files; HTTPS serves the pages and the API; plain HTTP on the HTTPS port and clients that
/// never finish a handshake hold no one up; a renewed certificate is served without a restart.
#[test]
fn https_is_served_and_a_renewed_certificate_is_picked_up() {
    let d = dir("serve");
    let certs = Certificates::make(&d, "server", &format!("DNS:{HOST},IP:127.0.0.1"));
    let other = Certificates::make(&d, "other", &format!("DNS:{HOST}"));

    let out = Command::new(env!("CARGO_BIN_EXE_plenum"))
        .args(["check", "--tls-cert", certs.cert.to_str().unwrap(), "--tls-key", other.key.to_str().unwrap()])
        .output()
        .expect("plenum runs");
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && said.contains("does not belong") && said.contains("server.pem"), "{said}");
    let out = Command::new(env!("CARGO_BIN_EXE_plenum")).args(["check", "--tls-cert", certs.cert.to_str().unwrap()]).output().unwrap();
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("go together"), "{out:?}");
    let out = Command::new(env!("CARGO_BIN_EXE_plenum"))
        .args(["check", "--tls-cert", certs.cert.to_str().unwrap(), "--tls-key", certs.key.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success() && String::from_utf8_lossy(&out.stdout).contains("HTTPS"), "{out:?}");

    let server = Server::start_with(&tls_args(&certs));
    assert_eq!(server.scheme, "https");
    let port = server.addr.port();
    wait_https(&certs, port);
    let (status, page) = curl(&certs.ca, HOST, port, "/r/council", &["-H", "Accept: text/html"]).expect("the room page over HTTPS");
    assert!(status == 200 && page.contains("<html"), "{status} {page}");
    let (status, info) = curl(&certs.ca, HOST, port, "/api/rooms/council", &[]).expect("the API over HTTPS");
    assert!(status == 200 && info.contains("\"live\":false"), "{status} {info}");
    // A client that does not trust the CA is refused by curl, i.e. the server presents it.
    let untrusted = Command::new("curl")
        .args(["-sS", "--max-time", "5", "--resolve", &format!("{HOST}:{port}:127.0.0.1"), &format!("https://{HOST}:{port}/healthz")])
        .output()
        .unwrap();
    assert!(!untrusted.status.success(), "curl without the CA must not trust the test certificate");

    // Plain HTTP to the HTTPS port gets no HTTP answer; 50 clients that connect and say nothing
    // do not hold up the next one.
    let mut plain = TcpStream::connect(server.addr).unwrap();
    plain.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    plain.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut buf = Vec::new();
    let _ = std::io::Read::read_to_end(&mut plain, &mut buf);
    assert!(!String::from_utf8_lossy(&buf).contains("200 OK"), "plain HTTP on the HTTPS port got an answer");
    let idle: Vec<TcpStream> = (0..50).map(|_| TcpStream::connect(server.addr).unwrap()).collect();
    let start = Instant::now();
    assert_eq!(curl(&certs.ca, HOST, port, "/healthz", &[]).map(|r| r.0), Ok(200));
    let took = start.elapsed();
    eprintln!("with 50 silent connections open, /healthz over HTTPS answered in {took:?}");
    assert!(took < Duration::from_secs(2), "silent connections held up a handshake: {took:?}");
    drop(idle);

    // Renewal: new files in place (key first, then certificate, as a renewal script might:
    // for a moment they do not match), and the next handshakes get the new certificate.
    let renewed = Certificates::make(&d, "renewed", &format!("DNS:{HOST},IP:127.0.0.1"));
    let before = Certificates::served_fingerprint(HOST, port).expect("a certificate is served");
    assert_eq!(before, certs.fingerprint());
    std::fs::copy(&renewed.key, &certs.key).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    std::fs::copy(&renewed.cert, &certs.cert).unwrap();
    let start = Instant::now();
    support::wait_for(Duration::from_secs(20), "the renewed certificate to be served", || {
        match Certificates::served_fingerprint(HOST, port) {
            Some(f) if f == renewed.fingerprint() => Ok(()),
            other => Err(format!("served {other:?}")),
        }
    });
    eprintln!("renewed certificate served {:?} after the files changed", start.elapsed());
    assert_eq!(curl(&certs.ca, HOST, port, "/healthz", &[]).map(|r| r.0), Ok(200));
    let _ = std::fs::remove_dir_all(&d);
}

/// Two headless chromiums open the server by host name (not localhost) over HTTPS, join with
/// camera and microphone and see and hear each other; over plain HTTP by host name a page gets
/// no devices at all (the reason this exists).
#[test]
fn browsers_on_the_lan_meet_over_https() {
    gst::init().unwrap();
    let d = dir("browsers");
    let certs = Certificates::make(&d, "server", &format!("DNS:{HOST}"));
    fixtures::make(&d, &[Fake::plain(0xffe6_1e1e, 500), Fake::plain(0xff1e_c828, 700)]);
    let secure = Server::start_with(&tls_args(&certs));
    let plain = Server::start();
    wait_https(&certs, secure.addr.port());
    let base = format!("https://{HOST}:{}", secure.addr.port());
    let out = Command::new("node")
        .arg(format!("{}/tests/browser/https.mjs", env!("CARGO_MANIFEST_DIR")))
        .arg(&d)
        .arg(certs.spki_hash())
        .args([&base, &base, &format!("http://{HOST}:{}", plain.addr.port())])
        .output()
        .expect("node runs (./dev test installs it)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    eprintln!("{stdout}{}", String::from_utf8_lossy(&out.stderr));
    let _ = std::fs::remove_dir_all(&d);
    assert!(out.status.success() && stdout.contains("RESULT "), "browser checks failed:\n{stdout}");
}
