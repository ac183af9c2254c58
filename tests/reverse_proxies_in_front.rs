//! README's reverse-proxy snippets (`deploy/proxy/nginx.conf`, `deploy/proxy/Caddyfile`) in
//! front of a Plenum started with `--trust-forwarded-for`, run by Debian's nginx and Caddy:
//! HTTPS to the proxy, WebSocket upgrade, WHIP/WHEP through it, and the client's own address
//! (from `X-Forwarded-For`) for the per-address limits. A meeting of two browsers, one through
//! each proxy, sees and hears both.

mod support;

use std::process::Command;

use support::fixtures::{self, Fake};
use support::proxy::{Proxy, SITE};
use support::server::{Server, TEST_ARGS};
use support::tls::{curl, Certificates};

/// What `curl` from the loopback address `source` gets for a WHIP POST through `proxy` (with a
/// forged `X-Forwarded-For` the proxy must not let count).
fn whip_status(certs: &Certificates, proxy: &Proxy, source: &str) -> u16 {
    let extra = ["--interface", source, "-X", "POST", "-H", "Content-Type: text/plain", "-H", "X-Forwarded-For: 192.0.2.66", "-d", "x"];
    curl(&certs.ca, SITE, proxy.port, "/whip/limits", &extra).expect("curl through the proxy").0
}

#[test]
fn nginx_and_caddy_snippets_carry_a_meeting() {
    gst::init().unwrap();
    let dir = std::env::temp_dir().join(format!("plenum-proxies-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let certs = Certificates::make(&dir, "site", &format!("DNS:{SITE}"));
    fixtures::make(&dir, &[Fake::plain(0xffe6_1e1e, 500), Fake::plain(0xff1e_c828, 700)]);
    let mut args = TEST_ARGS.to_vec();
    // A slow refill, so that the burst of 30 is what a quick series of requests meets.
    args.extend(["--trust-forwarded-for", "--session-rate", "0.1"]);
    let server = Server::start_with(&args);
    let proxies = [("nginx", Proxy::nginx(server.addr, &certs)), ("caddy", Proxy::caddy(server.addr, &certs))];

    // Each proxy's clients come from their own loopback addresses (the limit is per client,
    // whichever proxy it comes through).
    for (i, (name, proxy)) in proxies.iter().enumerate() {
        let (limited, other) = (format!("127.0.0.{}", 2 + 2 * i), format!("127.0.0.{}", 3 + 2 * i));
        support::wait_for(std::time::Duration::from_secs(10), &format!("/healthz through {name}"), || {
            match curl(&certs.ca, SITE, proxy.port, "/healthz", &[]) {
                Ok((200, body)) if body.trim() == "ok" => Ok(()),
                other => Err(format!("{other:?}")),
            }
        });
        // The session limit counts the client behind the proxy: one spends its burst and gets
        // 429; another through the same proxy is not limited.
        let statuses: Vec<u16> = (0..32).map(|_| whip_status(&certs, proxy, &limited)).collect();
        assert_eq!(statuses.iter().filter(|s| **s == 415).count(), 30, "{name}: the first 30 are this client's burst: {statuses:?}");
        assert_eq!(statuses[30..], [429, 429], "{name}: then 429");
        assert_eq!(whip_status(&certs, proxy, &other), 415, "{name}: another client behind the same proxy is not limited");
        eprintln!("{name}: X-Forwarded-For names each client (30 sessions, then 429 for one; the other not limited)");
    }

    let out = Command::new("node")
        .arg(format!("{}/tests/browser/https.mjs", env!("CARGO_MANIFEST_DIR")))
        .arg(&dir)
        .arg(certs.spki_hash())
        .args([proxies[0].1.base(), proxies[1].1.base()])
        .output()
        .expect("node runs (./dev test installs it)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    eprintln!("{stdout}{}", String::from_utf8_lossy(&out.stderr));
    let _ = std::fs::remove_dir_all(&dir);
    assert!(out.status.success() && stdout.contains("RESULT "), "browser checks failed (Ada through nginx, Bo through Caddy):\n{stdout}");
}
