//! webrtcbin: creation with the server's ICE settings, and the answer side of negotiation.
//!
//! Every webrtcbin call that takes a promise is awaited here on the tokio side (never `wait()`
//! on a GStreamer thread). Each await has a deadline, so a peer that webrtcbin gets stuck on
//! fails its own request instead of hanging the room.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gst::prelude::*;
use gst_webrtc::{WebRTCICEGatheringState, WebRTCSDPType, WebRTCSessionDescription};

use crate::config::IceConfig;

/// How often the server's RTCP (sender and receiver reports) goes out at least. (RTCP
/// feedback, NACK and PLI, may go out early only once per regular interval, RFC 4585: on a
/// lossy uplink the next request after a loss may wait for the next regular report. Reports
/// every 100 ms to publishers shortened the longest still tile at 10 % loss from 0.7-1.3 s to
/// 0.6-0.9 s, but cost ~8 kbit/s per publisher in the server's upstream, and on a shaped
/// 100 kbit/s line shared with a receiver they cost that receiver 4-5 % of its sound.)
pub const RTCP_INTERVAL: Duration = Duration::from_secs(1);
/// Deadline for a single webrtcbin promise (they normally resolve in milliseconds).
const PROMISE_TIMEOUT: Duration = Duration::from_secs(5);
/// Deadline for ICE gathering before the answer goes out with the candidates found so far.
const GATHER_TIMEOUT: Duration = Duration::from_secs(3);

#[derive(Debug, thiserror::Error)]
pub enum PeerError {
    #[error("GStreamer element missing: {0}")]
    Element(String),
    #[error("webrtcbin did not answer in time ({0})")]
    Timeout(&'static str),
    #[error("webrtcbin refused: {0}")]
    Refused(String),
}

pub fn make(factory: &str, name: &str) -> Result<gst::Element, PeerError> {
    gst::ElementFactory::make(factory)
        .name(name)
        .build()
        .map_err(|_| PeerError::Element(format!("{factory} (is its GStreamer plugin installed?)")))
}

/// A webrtcbin with bundling, the configured jitterbuffer latency and ICE servers.
pub fn new_webrtcbin(name: &str, ice: &IceConfig, latency_ms: u32) -> Result<gst::Element, PeerError> {
    let webrtc = make("webrtcbin", name)?;
    webrtc.set_property_from_str("bundle-policy", "max-bundle");
    // Sender reports about once a second (RFC 3550's default minimum is 5 s), as browsers
    // send theirs: the round trip a receiver's reports give is then at most a second old,
    // which the rate policy needs to see a queue building up in front of a slow link.
    if let Some(bin) = webrtc.downcast_ref::<gst::Bin>() {
        bin.connect_deep_element_added(|_, _, element| {
            if element.factory().is_some_and(|f| f.name() == "rtpsession") {
                element.set_property("rtcp-min-interval", RTCP_INTERVAL.as_nanos() as u64);
            }
        });
    }
    webrtc.set_property("latency", latency_ms);
    if let Some(stun) = &ice.stun_server {
        webrtc.set_property("stun-server", stun);
    }
    for turn in &ice.turn_servers {
        if !webrtc.emit_by_name::<bool>("add-turn-server", &[turn]) {
            tracing::warn!("TURN server URI refused by webrtcbin (check its syntax)");
        }
    }
    let agent = webrtc.property::<gst_webrtc::WebRTCICE>("ice-agent");
    disable_upnp(&agent);
    for addr in &ice.local_addresses {
        agent.emit_by_name::<bool>("add-local-ip-address", &[&addr.to_string()]);
    }
    if let Some(range) = ice.rtp_ports {
        agent.set_property("min-rtp-port", u32::from(range.min));
        agent.set_property("max-rtp-port", u32::from(range.max));
    }
    Ok(webrtc)
}

/// A server never asks the local router for port mappings (libnice's default does, by UPnP
/// multicast on every interface it gathers on).
pub fn disable_upnp(agent: &gst_webrtc::WebRTCICE) {
    if agent.find_property("agent").is_none() {
        return;
    }
    let nice = agent.property::<gst::glib::Object>("agent");
    if nice.find_property("upnp").is_some() {
        nice.set_property("upnp", false);
    }
}

async fn await_promise(
    fut: gst::promise::PromiseFuture,
    what: &'static str,
) -> Result<Option<gst::Structure>, PeerError> {
    match tokio::time::timeout(PROMISE_TIMEOUT, fut).await {
        Err(_) => Err(PeerError::Timeout(what)),
        Ok(Err(e)) => Err(PeerError::Refused(format!("{what}: {e:?}"))),
        Ok(Ok(reply)) => {
            let reply = reply.map(|r| r.to_owned());
            if let Some(err) = reply.as_ref().and_then(|r| r.get::<gst::glib::Error>("error").ok()) {
                return Err(PeerError::Refused(format!("{what}: {err}")));
            }
            Ok(reply)
        }
    }
}

/// Applies a remote offer.
pub async fn set_remote_offer(webrtc: &gst::Element, offer: gst_sdp::SDPMessage) -> Result<(), PeerError> {
    let desc = WebRTCSessionDescription::new(WebRTCSDPType::Offer, offer);
    let (promise, fut) = gst::Promise::new_future();
    webrtc.emit_by_name::<()>("set-remote-description", &[&desc, &promise]);
    await_promise(fut, "set-remote-description").await.map(|_| ())
}

/// Creates and applies the answer, waits for ICE gathering (non-trickle WHIP/WHEP) and returns
/// the answer SDP with all local candidates.
pub async fn answer(webrtc: &gst::Element) -> Result<String, PeerError> {
    let (gathered_tx, mut gathered_rx) = tokio::sync::watch::channel(false);
    let handler = webrtc.connect_notify(Some("ice-gathering-state"), move |w, _| {
        if w.property::<WebRTCICEGatheringState>("ice-gathering-state") == WebRTCICEGatheringState::Complete {
            let _ = gathered_tx.send(true);
        }
    });
    let result = async {
        let (promise, fut) = gst::Promise::new_future();
        webrtc.emit_by_name::<()>("create-answer", &[&None::<gst::Structure>, &promise]);
        let reply = await_promise(fut, "create-answer").await?;
        let answer = reply
            .and_then(|r| r.get::<WebRTCSessionDescription>("answer").ok())
            .ok_or_else(|| PeerError::Refused("create-answer gave no answer".into()))?;
        let (promise, fut) = gst::Promise::new_future();
        webrtc.emit_by_name::<()>("set-local-description", &[&answer, &promise]);
        await_promise(fut, "set-local-description").await?;
        let complete = webrtc.property::<WebRTCICEGatheringState>("ice-gathering-state")
            == WebRTCICEGatheringState::Complete;
        if !complete && tokio::time::timeout(GATHER_TIMEOUT, gathered_rx.wait_for(|done| *done)).await.is_err() {
            tracing::warn!("ICE gathering incomplete after {GATHER_TIMEOUT:?}; answering with what was found");
        }
        let local = webrtc
            .property::<Option<WebRTCSessionDescription>>("local-description")
            .ok_or_else(|| PeerError::Refused("no local description".into()))?;
        local.sdp().as_text().map_err(|e| PeerError::Refused(format!("answer SDP: {e}")))
    }
    .await;
    webrtc.disconnect(handler);
    result
}

/// Adds a trickled remote candidate (`a=candidate:...` or `candidate:...`).
pub fn add_remote_candidate(webrtc: &gst::Element, mline: u32, candidate: &str) {
    let candidate = candidate.trim().trim_start_matches("a=");
    webrtc.emit_by_name::<()>("add-ice-candidate", &[&mline, &candidate]);
}

/// Gaps between a peer's packets remembered to learn how often it reports.
const GAPS_KEPT: usize = 8;
/// What a receiver is assumed to report at until [`GAPS_KEPT`] gaps were seen: RFC 3550's
/// minimum RTCP interval, which standard clients (webrtcbin, whepsrc) use.
pub const RFC3550_INTERVAL: Duration = Duration::from_secs(5);

/// When the peer last sent anything (RTP, RTCP or DTLS), and how long its recent silences were.
#[derive(Clone)]
pub struct Liveness {
    epoch: Instant,
    heard: Arc<Mutex<Heard>>,
}

#[derive(Default)]
struct Heard {
    last: Duration,
    gaps: [Duration; GAPS_KEPT],
    seen: usize,
}

impl Liveness {
    pub fn new(epoch: Instant) -> Self {
        let l = Self { epoch, heard: Arc::default() };
        l.touch();
        l
    }

    fn heard(&self) -> std::sync::MutexGuard<'_, Heard> {
        // Only plain numbers are written under this lock; a poisoned one still holds them.
        self.heard.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn touch(&self) {
        self.heard_at(self.epoch.elapsed());
    }

    /// Something arrived `now` (since the epoch).
    fn heard_at(&self, now: Duration) {
        let mut h = self.heard();
        let gap = now.saturating_sub(h.last);
        // Packets of one burst (a compound RTCP, a frame's RTP) are not the peer's rhythm.
        if h.last > Duration::ZERO && gap >= Duration::from_millis(50) {
            let slot = h.seen % GAPS_KEPT;
            h.gaps[slot] = gap;
            h.seen += 1;
        }
        h.last = now;
    }

    pub fn silent_for(&self, now: Instant) -> Duration {
        let last = self.heard().last;
        now.saturating_duration_since(self.epoch + last)
    }

    /// How long this peer's silences between packets last at most, over its last few: what a
    /// receiver's RTCP interval looks like from here (a browser reports about every second, a
    /// standard client every 2.5-7.5 s, and lost reports lengthen it). Until a few gaps were
    /// seen, at least RFC 3550's default.
    pub fn report_interval(&self) -> Duration {
        let h = self.heard();
        let longest = h.gaps.iter().take(h.seen.min(GAPS_KEPT)).copied().max().unwrap_or_default();
        if h.seen < GAPS_KEPT { longest.max(RFC3550_INTERVAL) } else { longest }
    }

    /// Watches every packet that reaches webrtcbin's ICE sources. Call after negotiation, when
    /// webrtcbin has created its transports; returns how many sources it found.
    pub fn watch(&self, webrtc: &gst::Element) -> usize {
        let Some(bin) = webrtc.downcast_ref::<gst::Bin>() else { return 0 };
        let mut found = 0;
        for element in bin.iterate_recurse().into_iter().flatten() {
            let is_nicesrc = element.factory().is_some_and(|f| f.name() == "nicesrc");
            let Some(pad) = element.static_pad("src").filter(|_| is_nicesrc) else { continue };
            let me = self.clone();
            pad.add_probe(gst::PadProbeType::BUFFER | gst::PadProbeType::BUFFER_LIST, move |_, _| {
                me.touch();
                gst::PadProbeReturn::Ok
            });
            found += 1;
        }
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn heard_at(gaps_ms: &[u64]) -> Liveness {
        let l = Liveness { epoch: Instant::now(), heard: Arc::default() };
        let mut at = Duration::from_millis(1);
        l.heard_at(at);
        for g in gaps_ms {
            at += Duration::from_millis(*g);
            l.heard_at(at);
        }
        l
    }

    #[test]
    fn a_receivers_interval_is_learned_from_its_silences() {
        assert_eq!(heard_at(&[]).report_interval(), RFC3550_INTERVAL, "nothing learned yet");
        assert_eq!(heard_at(&[1000; 3]).report_interval(), RFC3550_INTERVAL, "too few gaps to go below the default");
        assert_eq!(heard_at(&[1000; 10]).report_interval(), Duration::from_secs(1), "a browser");
        assert_eq!(heard_at(&[2500, 7500, 4000, 6000, 3000, 5000, 7000, 2600, 3100]).report_interval(), Duration::from_millis(7500));
        let lossy = heard_at(&[1000, 1000, 3000, 1000, 1000, 1000, 1000, 1000, 1000]);
        assert_eq!(lossy.report_interval(), Duration::from_secs(3), "two lost reports lengthen it");
        let recovered = heard_at(&[3000, 1000, 1000, 1000, 1000, 1000, 1000, 1000, 1000, 1000]);
        assert_eq!(recovered.report_interval(), Duration::from_secs(1), "and it shortens again");
        assert_eq!(heard_at(&[1000, 10, 10, 10, 1000, 1000, 1000, 1000, 1000, 1000, 1000, 1000]).report_interval(), Duration::from_secs(1), "bursts are no rhythm");
    }
}
