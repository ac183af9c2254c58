//! A viewer (WHEP session): the room's encoded streams, packetised for one peer.
//!
//! Per viewer there is only a leaky queue and a payloader per track: encoding is shared. The
//! queue never blocks the shared tee (webrtcbin holds its sink pads blocked until negotiation
//! completes), and a slow viewer loses its own frames, not everybody's.

use std::sync::{Arc, Mutex};

use gst::prelude::*;
use gst_webrtc::{WebRTCRTPTransceiver, WebRTCRTPTransceiverDirection};

use super::peer::make;
use super::pipeline::gst_err;
use super::sdp::Track;
use super::MediaError;

/// How much a viewer's queue holds before it drops the oldest packets.
const VIEWER_QUEUE_MS: u64 = 300;

/// A viewer's branch (its bin's input pad) and the shared tee that feeds it, if any. The
/// state is shared with a streaming thread while a move waits for a keyframe.
pub struct TeeLink {
    ghost: gst::Pad,
    state: Arc<Mutex<LinkState>>,
    /// The branch's payloader (its SSRC and sequence numbers say what a report covers).
    pay: gst::Element,
}

/// A tee and the request pad it gave.
type Source = (gst::Element, gst::Pad);

#[derive(Default)]
struct LinkState {
    source: Option<Source>,
    /// A move waiting for the new tee's keyframe: the pad, not yet linked, and its probe.
    pending: Option<(gst::Element, gst::Pad, gst::PadProbeId)>,
}

fn release(ghost: &gst::Pad, (tee, pad): Source) {
    let _ = pad.unlink(ghost);
    tee.release_request_pad(&pad);
}

impl TeeLink {
    fn state(&self) -> std::sync::MutexGuard<'_, LinkState> {
        // Only pads are swapped under this lock; a poisoned one still holds valid pads.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Gives up a move that still waits for its keyframe.
    fn cancel_pending(state: &mut LinkState) {
        if let Some((tee, pad, probe)) = state.pending.take() {
            pad.remove_probe(probe);
            tee.release_request_pad(&pad);
        }
    }

    /// The SSRC the branch sends with and the sequence number of its last packet.
    pub fn sent(&self) -> (u32, u16) {
        (self.pay.property::<u32>("ssrc"), self.pay.property::<u32>("seqnum") as u16)
    }

    /// Whether a move still waits for its keyframe.
    pub fn is_pending(&self) -> bool {
        self.state().pending.is_some()
    }

    /// Unlinks the branch from its tee (it then gets nothing, e.g. an audio-only receiver's
    /// video); a move links it again.
    pub fn detach(&mut self) {
        let mut state = self.state();
        Self::cancel_pending(&mut state);
        if let Some(source) = state.source.take() {
            release(&self.ghost, source);
        }
    }

    /// Feeds the branch from `tee` instead, at once (another mix of the same format).
    pub fn move_to(&mut self, tee: &gst::Element) -> Result<(), MediaError> {
        let pad = tee.request_pad_simple("src_%u").ok_or_else(|| MediaError::Internal("tee gave no pad".into()))?;
        let mut state = self.state();
        Self::cancel_pending(&mut state);
        if let Some(old) = state.source.take() {
            release(&self.ghost, old);
        }
        pad.link(&self.ghost).map_err(gst_err)?;
        state.source = Some((tee.clone(), pad));
        Ok(())
    }

    /// Feeds the branch from `tee` (another rung of the same codec) from that tee's next
    /// keyframe on: until then the old tee goes on feeding it, so the receiver sees neither
    /// a gap nor frames it cannot decode (the caller asks the new encoder for a keyframe).
    pub fn move_at_keyframe(&mut self, tee: &gst::Element) -> Result<(), MediaError> {
        let pad = tee.request_pad_simple("src_%u").ok_or_else(|| MediaError::Internal("tee gave no pad".into()))?;
        let mut state = self.state();
        Self::cancel_pending(&mut state);
        if state.source.is_none() {
            // Nothing to show meanwhile: link now, and let only a keyframe start the stream.
            pad.add_probe(gst::PadProbeType::BUFFER, |_, info| match &info.data {
                Some(gst::PadProbeData::Buffer(b)) if b.flags().contains(gst::BufferFlags::DELTA_UNIT) => gst::PadProbeReturn::Drop,
                _ => gst::PadProbeReturn::Remove,
            });
            pad.link(&self.ghost).map_err(gst_err)?;
            state.source = Some((tee.clone(), pad));
            return Ok(());
        }
        let (shared, ghost) = (Arc::downgrade(&self.state), self.ghost.clone());
        let probe = pad.add_probe(gst::PadProbeType::BUFFER, move |pad, info| {
            let keyframe = matches!(&info.data, Some(gst::PadProbeData::Buffer(b)) if !b.flags().contains(gst::BufferFlags::DELTA_UNIT));
            if !keyframe {
                return gst::PadProbeReturn::Drop;
            }
            // Never wait here: the room task may hold the lock while it cancels this move
            // (and with it this tee); a keyframe dropped then was not wanted anyway.
            let Some(shared) = shared.upgrade() else { return gst::PadProbeReturn::Drop };
            let Ok(mut state) = shared.try_lock() else { return gst::PadProbeReturn::Drop };
            if state.pending.as_ref().is_none_or(|(_, p, _)| p != pad) {
                return gst::PadProbeReturn::Drop;
            }
            if let Some(old) = state.source.take() {
                release(&ghost, old);
            }
            // (Not released here on failure: a tee pad is never released from its own
            // streaming thread. It stays pending until the next move or the viewer's end.)
            if pad.link(&ghost).is_err() {
                return gst::PadProbeReturn::Drop;
            }
            let Some((tee, new_pad, _)) = state.pending.take() else { return gst::PadProbeReturn::Drop };
            state.source = Some((tee, new_pad));
            // The keyframe goes on to the newly linked branch; the probe is done.
            gst::PadProbeReturn::Remove
        });
        let Some(probe) = probe else {
            tee.release_request_pad(&pad);
            return Err(MediaError::Internal("could not watch the new rung for a keyframe".into()));
        };
        state.pending = Some((tee.clone(), pad, probe));
        Ok(())
    }
}

fn random_ssrc() -> u32 {
    let mut bytes = [0u8; 4];
    getrandom::fill(&mut bytes).expect("the operating system's random source failed");
    u32::from_ne_bytes(bytes)
}

/// The SSRC the payloader of m-line `mline` sends with, in the viewer bin around `webrtc`.
pub fn payloader_ssrc(webrtc: &gst::Element, mline: usize) -> Option<u32> {
    let bin = webrtc.parent()?.downcast::<gst::Bin>().ok()?;
    Some(bin.by_name(&format!("pay-{mline}"))?.property::<u32>("ssrc"))
}

/// Sends `tee`'s stream on the m-line of `track`: the transceiver becomes sendonly with the
/// offer's codec and payload type, and a queue and payloader join the viewer's bin. Without a
/// tee the branch is built but gets nothing until [`TeeLink::move_to`].
pub fn attach_track(
    bin: &gst::Bin,
    webrtc: &gst::Element,
    track: &Track,
    payloader: &str,
    tee: Option<&gst::Element>,
) -> Result<TeeLink, MediaError> {
    let sink = webrtc
        .request_pad_simple(&format!("sink_{}", track.mline))
        .ok_or_else(|| MediaError::Internal(format!("webrtcbin gave no sink pad for m-line {}", track.mline)))?;
    let transceiver = sink.property::<WebRTCRTPTransceiver>("transceiver");
    transceiver.set_direction(WebRTCRTPTransceiverDirection::Sendonly);
    transceiver.set_codec_preferences(Some(&track.caps));
    // Video packets a receiver reports lost (NACK) are sent again (RTX) where it offers
    // that: a lost packet then costs a round trip, not a frozen picture until a keyframe.
    if track.caps.structure(0).is_some_and(|s| s.get::<&str>("media") == Ok("video")) {
        transceiver.set_property("do-nack", true);
    }

    let queue = make("queue", &format!("q-{}", track.mline))?;
    queue.set_property_from_str("leaky", "downstream");
    queue.set_property("max-size-buffers", 0u32);
    queue.set_property("max-size-bytes", 0u32);
    queue.set_property("max-size-time", gst::ClockTime::from_mseconds(VIEWER_QUEUE_MS).nseconds());
    let pay = make(payloader, &format!("pay-{}", track.mline))?;
    pay.set_property("pt", u32::from(track.pt));
    // Chosen here, not by the payloader at start, so that the answer can name it (see
    // `sdp::name_rtx_primaries`).
    pay.set_property("ssrc", random_ssrc());
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
    let mut link = TeeLink { ghost: ghost.upcast(), state: Arc::default(), pay };
    if let Some(tee) = tee {
        link.move_to(tee)?;
    }
    Ok(link)
}
