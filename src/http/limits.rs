//! What one address may ask of the server: new WHIP/WHEP sessions at a bounded rate (a burst,
//! then a steady pace; beyond it `429` with `Retry-After`), a bounded number of sessions open at
//! once and a bounded number of open control WebSockets. One client flooding the server gets refused before any SDP is parsed or element
//! built, so the other rooms do not notice. Addresses live in memory only, and only while they
//! are limited.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// New sessions an address may start at once...
pub const SESSION_BURST: f64 = 30.0;
/// ...and then `--session-rate` per second (see `config` for the defaults of both limits).
/// Open control WebSockets per address (a school behind one NAT address: a few classes).
pub const WEBSOCKETS_PER_ADDRESS: usize = 200;
/// Addresses remembered before idle ones are forgotten.
const REMEMBERED: usize = 10_000;

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

#[derive(Debug)]
pub struct AddressLimits {
    rate: f64,
    burst: f64,
    rates: Mutex<HashMap<IpAddr, Bucket>>,
    sockets: Arc<Gauge>,
    sessions: Arc<Gauge>,
}

impl Default for AddressLimits {
    fn default() -> Self {
        Self::new(crate::config::DEFAULT_SESSION_RATE, crate::config::DEFAULT_SESSIONS_PER_ADDRESS)
    }
}

impl AddressLimits {
    /// `rate` new sessions a second per address, after a burst of six seconds' worth (at least
    /// [`SESSION_BURST`]); at most `open_sessions` open at once.
    pub fn new(rate: f64, open_sessions: usize) -> Self {
        let rate = rate.max(0.1);
        Self {
            rate,
            burst: (rate * 6.0).max(SESSION_BURST),
            rates: Mutex::default(),
            sockets: Arc::new(Gauge::new(WEBSOCKETS_PER_ADDRESS)),
            sessions: Arc::new(Gauge::new(open_sessions)),
        }
    }

    /// Takes one new session for `address` now, or says how long until there is one.
    pub fn new_session(&self, address: IpAddr) -> Result<(), Duration> {
        self.new_session_at(address, Instant::now())
    }

    fn new_session_at(&self, address: IpAddr, now: Instant) -> Result<(), Duration> {
        let mut buckets = self.rates.lock().unwrap_or_else(|e| e.into_inner());
        if buckets.len() >= REMEMBERED {
            let (rate, burst) = (self.rate, self.burst);
            buckets.retain(|_, b| b.tokens + now.saturating_duration_since(b.at).as_secs_f64() * rate < burst);
        }
        let bucket = buckets.entry(address).or_insert(Bucket { tokens: self.burst, at: now });
        bucket.tokens = (bucket.tokens + now.saturating_duration_since(bucket.at).as_secs_f64() * self.rate).min(self.burst);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - bucket.tokens) / self.rate))
        }
    }

    /// Counts an open WebSocket of `address` until the returned slot is dropped; `None` when
    /// the address has too many open already.
    pub fn open_socket(&self, address: IpAddr) -> Option<Slot> {
        self.sockets.take(address)
    }

    /// Counts an open WHIP/WHEP session of `address` until the returned slot is dropped (it
    /// goes with the session); `None` when the address has too many open already.
    pub fn open_session(&self, address: IpAddr) -> Option<Slot> {
        self.sessions.take(address)
    }
}

/// How many of something each address has open, up to a bound.
#[derive(Debug)]
struct Gauge {
    max: usize,
    open: Mutex<HashMap<IpAddr, usize>>,
}

impl Gauge {
    fn new(max: usize) -> Self {
        Self { max, open: Mutex::default() }
    }

    fn take(self: &Arc<Self>, address: IpAddr) -> Option<Slot> {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let count = open.entry(address).or_default();
        if *count >= self.max {
            return None;
        }
        *count += 1;
        Some(Slot { gauge: self.clone(), address })
    }

    #[cfg(test)]
    fn open(&self, address: IpAddr) -> usize {
        self.open.lock().unwrap_or_else(|e| e.into_inner()).get(&address).copied().unwrap_or(0)
    }
}

/// One open WebSocket or session, counted for its address while it lives.
#[derive(Debug)]
pub struct Slot {
    gauge: Arc<Gauge>,
    address: IpAddr,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = self.gauge.open.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(count) = open.get_mut(&self.address) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                open.remove(&self.address);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_gets_a_burst_then_a_steady_pace_and_others_are_not_touched() {
        let limits = AddressLimits::new(5.0, 10);
        let (a, b): (IpAddr, IpAddr) = ("192.0.2.1".parse().unwrap(), "192.0.2.2".parse().unwrap());
        let t0 = Instant::now();
        for _ in 0..30 {
            assert!(limits.new_session_at(a, t0).is_ok());
        }
        let wait = limits.new_session_at(a, t0).unwrap_err();
        assert!(wait > Duration::from_millis(150) && wait <= Duration::from_millis(200), "{wait:?}");
        assert!(limits.new_session_at(b, t0).is_ok(), "another address is not limited");
        // A second later, five more.
        let t1 = t0 + Duration::from_secs(1);
        for _ in 0..5 {
            assert!(limits.new_session_at(a, t1).is_ok());
        }
        assert!(limits.new_session_at(a, t1).is_err());
    }

    #[test]
    fn open_sockets_and_sessions_are_bounded_per_address_and_freed_when_closed() {
        let limits = AddressLimits::new(5.0, 3);
        let (a, b): (IpAddr, IpAddr) = ("192.0.2.1".parse().unwrap(), "192.0.2.2".parse().unwrap());
        let guards: Vec<_> = (0..WEBSOCKETS_PER_ADDRESS).map(|_| limits.open_socket(a).expect("room for it")).collect();
        assert!(limits.open_socket(a).is_none());
        drop(guards);
        assert!(limits.open_socket(a).is_some());
        assert!(limits.sockets.open.lock().unwrap().is_empty(), "forgotten when none is open");

        let sessions: Vec<_> = (0..3).map(|_| limits.open_session(a).expect("room for it")).collect();
        assert!(limits.open_session(a).is_none());
        assert!(limits.open_session(b).is_some(), "another address has its own");
        assert_eq!(limits.sessions.open(a), 3);
        drop(sessions);
        assert_eq!(limits.sessions.open(a), 0);
        assert!(limits.open_session(a).is_some());
    }
}
