//! The files an operator installs from `deploy/` are right: systemd accepts the unit (with
//! its hardening), the binary accepts the unit's command lines and the example configuration,
//! and the container image installs every Debian package the engine needs.

use std::process::Command;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn read(path: &str) -> String {
    std::fs::read_to_string(format!("{ROOT}/{path}")).unwrap_or_else(|e| panic!("{path}: {e}"))
}

#[test]
fn the_systemd_unit_is_valid_and_hardened() {
    let unit = read("deploy/systemd/plenum.service");
    for hardening in ["DynamicUser=yes", "StateDirectory=plenum", "ProtectSystem=strict", "NoNewPrivileges=yes", "CapabilityBoundingSet=\n", "ProtectHome=yes", "PrivateTmp=yes"] {
        assert!(unit.contains(hardening), "the unit lacks {hardening:?}");
    }
    // systemd-analyze checks every key and value (and that the binary exists): point it at
    // the binary built here.
    let dir = std::env::temp_dir().join(format!("plenum-unit-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("plenum.service");
    std::fs::write(&file, unit.replace("/usr/local/bin/plenum", env!("CARGO_BIN_EXE_plenum"))).unwrap();
    let out = Command::new("systemd-analyze").arg("verify").arg(&file).output().expect("systemd-analyze runs (Debian package systemd)");
    let complaints = String::from_utf8_lossy(&out.stderr).into_owned();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(out.status.success() && complaints.trim().is_empty(), "systemd-analyze verify: {complaints}");

    // The unit's command lines, with the example configuration in place of /etc's.
    let config = format!("{ROOT}/deploy/plenum.toml");
    for line in unit.lines().filter_map(|l| l.strip_prefix("ExecStart=").or_else(|| l.strip_prefix("ExecStartPre="))) {
        let line = line.replace("/etc/plenum/plenum.toml", &config).replace("${STATE_DIRECTORY}", "/tmp");
        let mut words = line.split_whitespace().skip(1).map(str::to_string).collect::<Vec<_>>();
        // `serve` would start: `check` takes the same arguments and only checks them.
        if let Some(serve) = words.iter_mut().find(|w| *w == "serve") {
            *serve = "check".into();
        }
        let out = Command::new(env!("CARGO_BIN_EXE_plenum")).args(&words).output().expect("plenum runs");
        assert!(out.status.success(), "{words:?}: {}", String::from_utf8_lossy(&out.stderr));
        assert!(String::from_utf8_lossy(&out.stdout).starts_with("ok:"), "{words:?}");
    }
}

#[test]
fn the_container_installs_what_the_engine_needs() {
    let containerfile = read("deploy/Containerfile");
    let dev = read("dev");
    let needed: Vec<&str> = dev
        .split("PACKAGES=(")
        .nth(1)
        .and_then(|rest| rest.split(')').next())
        .expect("./dev lists its packages")
        .split_whitespace()
        .filter(|p| p.starts_with("gstreamer1.0-") && *p != "gstreamer1.0-tools" || p.starts_with("fonts-"))
        .collect();
    assert!(needed.len() >= 7, "{needed:?}");
    let stages: Vec<&str> = containerfile.split("FROM ").collect();
    let runtime = stages.last().expect("a runtime stage");
    for package in needed {
        assert!(runtime.contains(package), "the container's runtime stage lacks {package}");
    }
    assert!(runtime.contains("debian:12"), "Debian 12 base");
}
