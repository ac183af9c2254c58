//! webrtcbin: creation with the server's ICE settings, and the answer side of negotiation.
//!
//! Every webrtcbin call that takes a promise is awaited here on the tokio side (never `wait()`
//! on a GStreamer thread). Each await has a deadline, so a peer that webrtcbin gets stuck on
//! fails its own request instead of hanging the room.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use gst::prelude::*;
use gst_webrtc::{WebRTCICEGatheringState, WebRTCSDPType, WebRTCSessionDescription};

use crate::config::IceConfig;

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

/// When the peer last sent anything (RTP, RTCP or DTLS), in milliseconds since `epoch`.
#[derive(Clone)]
pub struct Liveness {
    epoch: Instant,
    last_ms: Arc<AtomicU64>,
}

impl Liveness {
    pub fn new(epoch: Instant) -> Self {
        let l = Self { epoch, last_ms: Arc::new(AtomicU64::new(0)) };
        l.touch();
        l
    }

    pub fn touch(&self) {
        self.last_ms.store(self.epoch.elapsed().as_millis() as u64, Ordering::Relaxed);
    }

    pub fn silent_for(&self, now: Instant) -> Duration {
        let last = Duration::from_millis(self.last_ms.load(Ordering::Relaxed));
        now.saturating_duration_since(self.epoch + last)
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
