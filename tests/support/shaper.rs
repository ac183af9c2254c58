//! A slow link for one receiver, on loopback: `tc` puts an HTB on `lo` whose default class is
//! unlimited and whose second class, with a small byte queue as a DSL modem has, carries only
//! UDP to one port range (the receiver's ICE ports). Only that receiver's downlink is slowed;
//! everything else on loopback passes as before. Random loss on the same ports comes from an
//! nftables rule (this kernel has no netem). Removed when dropped (also on a failed test).

use std::process::Command;

/// The receiver's ICE ports: 20480-20607 (below Linux's ephemeral range, so nothing else
/// picks them), matched as dport 20480 with mask 0xff80.
pub const PORTS: (u32, u32) = (20480, 20607);
/// What a slow line buffers before it drops (about half a second at 500 kbit/s).
const QUEUE_BYTES: u32 = 32 * 1024;

pub struct Shaper {
    _private: (),
}

fn tc(args: &str) -> Result<(), String> {
    let out = Command::new("tc").args(args.split_whitespace()).output().map_err(|e| format!("tc not runnable: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!("tc {args}: {}", String::from_utf8_lossy(&out.stderr).trim()))
    }
}

/// The nftables table that holds the loss rule.
const NFT_TABLE: &str = "plenum_test_loss";

fn nft(args: &[&str]) -> Result<(), String> {
    let out = Command::new("nft").args(args).output().map_err(|e| format!("nft not runnable: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!("nft {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim()))
    }
}

impl Shaper {
    /// Installs the classes with the receiver's link unlimited: what is sent *to* `PORTS`.
    pub fn install() -> Self {
        Self::install_matching("dport")
    }

    /// The same for what is sent *from* `PORTS` (a server whose media ports they are, to a
    /// receiver whose own ports are not known, such as a browser).
    pub fn install_from_ports() -> Self {
        Self::install_matching("sport")
    }

    fn install_matching(field: &str) -> Self {
        let _ = tc("qdisc del dev lo root");
        let setup = [
            "qdisc add dev lo root handle 1: htb default 1 r2q 1000".to_string(),
            "class add dev lo parent 1: classid 1:1 htb rate 10gbit".to_string(),
            "class add dev lo parent 1: classid 1:2 htb rate 10gbit".to_string(),
            format!("qdisc add dev lo parent 1:2 handle 20: bfifo limit {QUEUE_BYTES}"),
            format!("filter add dev lo parent 1: protocol ip prio 1 u32 match ip protocol 17 0xff match ip {field} {} 0xff80 flowid 1:2", PORTS.0),
            // Browsers prefer IPv6 loopback when the server offers it.
            format!("filter add dev lo parent 1: protocol ipv6 prio 2 u32 match ip6 protocol 17 0xff match ip6 {field} {} 0xff80 flowid 1:2", PORTS.0),
        ];
        let shaper = Self { _private: () };
        for step in setup {
            tc(&step).unwrap_or_else(|e| panic!("shaping loopback needs root and tc (iproute2): {e}"));
        }
        shaper
    }

    /// The receiver's downlink carries `kbit` kbit/s from now on.
    pub fn limit(&self, kbit: u32) {
        tc(&format!("class change dev lo parent 1: classid 1:2 htb rate {kbit}kbit ceil {kbit}kbit")).expect("tc class change");
    }

    /// From now on what is sent *to* `PORTS` loses `percent` % of its UDP packets at random.
    pub fn lose(&self, percent: u32) {
        self.lose_matching("dport", percent);
    }

    /// From now on what is sent *from* `PORTS` loses `percent` % of its UDP packets at random
    /// (100: all of it).
    pub fn lose_from_ports(&self, percent: u32) {
        self.lose_matching("sport", percent);
    }

    fn lose_matching(&self, field: &str, percent: u32) {
        self.stop_losing();
        let share = if percent >= 100 { String::new() } else { format!("numgen random mod 100 < {percent} ") };
        let rule = format!("udp {field} {}-{} {share}drop", PORTS.0, PORTS.1);
        let steps: [&[&str]; 3] = [
            &["add", "table", "inet", NFT_TABLE],
            &["add", "chain", "inet", NFT_TABLE, "out", "{ type filter hook output priority 0 ; }"],
            &["add", "rule", "inet", NFT_TABLE, "out", &rule],
        ];
        for step in steps {
            nft(step).unwrap_or_else(|e| panic!("random loss needs root and nft (nftables): {e}"));
        }
    }

    /// No random loss any more.
    pub fn stop_losing(&self) {
        let _ = nft(&["delete", "table", "inet", NFT_TABLE]);
    }

    /// No limit any more.
    pub fn lift(&self) {
        tc("class change dev lo parent 1: classid 1:2 htb rate 10gbit ceil 10gbit").expect("tc class change");
    }
}

impl Drop for Shaper {
    fn drop(&mut self) {
        self.stop_losing();
        let _ = tc("qdisc del dev lo root");
    }
}
