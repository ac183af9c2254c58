//! A viewer (WHEP session): the room's encoded streams, packetised for one peer.
//!
//! Per viewer there is only a leaky queue and a payloader per track: encoding is shared. The
//! queue never blocks the shared tee (webrtcbin holds its sink pads blocked until negotiation
//! completes), and a slow viewer loses its own frames, not everybody's.

use gst::prelude::*;
use gst_webrtc::{WebRTCRTPTransceiver, WebRTCRTPTransceiverDirection};

use super::peer::make;
use super::pipeline::gst_err;
use super::sdp::Track;
use super::MediaError;

/// How much a viewer's queue holds before it drops the oldest packets.
const VIEWER_QUEUE_MS: u64 = 300;

/// A viewer's branch off a shared tee; undone with [`TeeLink::detach`].
pub struct TeeLink {
    tee: gst::Element,
    tee_pad: gst::Pad,
}

impl TeeLink {
    pub fn detach(&self) {
        if let Some(peer) = self.tee_pad.peer() {
            let _ = self.tee_pad.unlink(&peer);
        }
        self.tee.release_request_pad(&self.tee_pad);
    }

    /// Feeds the viewer's branch from `tee` instead (another mix of the same format).
    pub fn move_to(&mut self, tee: &gst::Element) -> Result<(), MediaError> {
        let ghost = self.tee_pad.peer().ok_or_else(|| MediaError::Internal("viewer branch unlinked".into()))?;
        let new_pad = tee.request_pad_simple("src_%u").ok_or_else(|| MediaError::Internal("tee gave no pad".into()))?;
        self.detach();
        new_pad.link(&ghost).map_err(gst_err)?;
        self.tee = tee.clone();
        self.tee_pad = new_pad;
        Ok(())
    }
}

/// Sends `tee`'s stream on the m-line of `track`: the transceiver becomes sendonly with the
/// offer's codec and payload type, and a queue and payloader join the viewer's bin.
pub fn attach_track(
    bin: &gst::Bin,
    webrtc: &gst::Element,
    track: &Track,
    payloader: &str,
    tee: &gst::Element,
) -> Result<TeeLink, MediaError> {
    let sink = webrtc
        .request_pad_simple(&format!("sink_{}", track.mline))
        .ok_or_else(|| MediaError::Internal(format!("webrtcbin gave no sink pad for m-line {}", track.mline)))?;
    let transceiver = sink.property::<WebRTCRTPTransceiver>("transceiver");
    transceiver.set_direction(WebRTCRTPTransceiverDirection::Sendonly);
    transceiver.set_codec_preferences(Some(&track.caps));

    let queue = make("queue", &format!("q-{}", track.mline))?;
    queue.set_property_from_str("leaky", "downstream");
    queue.set_property("max-size-buffers", 0u32);
    queue.set_property("max-size-bytes", 0u32);
    queue.set_property("max-size-time", gst::ClockTime::from_mseconds(VIEWER_QUEUE_MS).nseconds());
    let pay = make(payloader, &format!("pay-{}", track.mline))?;
    pay.set_property("pt", u32::from(track.pt));
    match payloader {
        "rtph264pay" => {
            pay.set_property("config-interval", -1i32);
            pay.set_property_from_str("aggregate-mode", "zero-latency");
        }
        "rtpvp8pay" => pay.set_property_from_str("picture-id-mode", "15-bit"),
        _ => {}
    }
    bin.add_many([&queue, &pay]).map_err(gst_err)?;
    queue.link(&pay).map_err(gst_err)?;
    pay.static_pad("src").expect("payloader has a src pad").link(&sink).map_err(gst_err)?;
    queue.sync_state_with_parent().map_err(gst_err)?;
    pay.sync_state_with_parent().map_err(gst_err)?;

    let target = queue.static_pad("sink").expect("queue has a sink pad");
    let ghost = gst::GhostPad::builder_with_target(&target)
        .map_err(gst_err)?
        .name(format!("in-{}", track.mline))
        .build();
    ghost.set_active(true).map_err(gst_err)?;
    bin.add_pad(&ghost).map_err(gst_err)?;
    let tee_pad = tee.request_pad_simple("src_%u").ok_or_else(|| MediaError::Internal("tee gave no pad".into()))?;
    tee_pad.link(&ghost).map_err(gst_err)?;
    Ok(TeeLink { tee: tee.clone(), tee_pad })
}
