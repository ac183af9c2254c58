//! How much of a viewer's link retransmissions may take.
//!
//! A receiver that asks for lost video packets again (NACK) gets them again (RTX) from the
//! `rtprtxsend` in its webrtcbin, as often as it asks. On a link that is already full that
//! feeds itself: every retransmission is one more packet in the queue in front of the link,
//! the queue drops more, the receiver asks for more. Measured with headless chromium behind a
//! 100 kbit/s downlink: moved to sound only within 1.5 s, it went on asking for the old video
//! packets (about 36 requests a second), their retransmissions kept a 2.6 s queue full and
//! a fifth of its sound was concealed for ten seconds.
//!
//! So retransmissions get a budget, a token bucket of a share of the viewer's video bitrate
//! (none while it hears sound only); requests beyond it are not answered. A few lost packets
//! on a healthy link are far inside it; a storm on a full one is not.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gst::prelude::*;

/// Retransmissions may take this share of the viewer's video bitrate...
const SHARE: f64 = 0.25;
/// ...with bursts of up to this much of it at once (a lost burst asked for together).
const DEPTH: Duration = Duration::from_millis(1000);
/// What one retransmitted packet is counted as (the request does not say its size).
const PACKET_BYTES: f64 = 1200.0;

/// The bucket, a pure function of time (see the tests).
#[derive(Debug, Clone)]
struct Bucket {
    /// Bytes per second allowed; 0 refuses everything.
    rate: f64,
    tokens: f64,
    last: Option<Duration>,
    refused: u64,
}

impl Bucket {
    fn new(video_kbps: u32) -> Self {
        let mut b = Self { rate: 0.0, tokens: 0.0, last: None, refused: 0 };
        b.set_video_kbps(video_kbps);
        b.tokens = b.depth();
        b
    }

    fn depth(&self) -> f64 {
        (self.rate * DEPTH.as_secs_f64()).max(if self.rate > 0.0 { PACKET_BYTES } else { 0.0 })
    }

    fn set_video_kbps(&mut self, kbps: u32) {
        self.rate = f64::from(kbps) * 1000.0 / 8.0 * SHARE;
        self.tokens = self.tokens.min(self.depth());
    }

    /// One request at `now`: answered or not.
    fn take(&mut self, now: Duration) -> bool {
        let elapsed = self.last.map_or(Duration::ZERO, |l| now.saturating_sub(l));
        self.last = Some(now);
        self.tokens = (self.tokens + elapsed.as_secs_f64() * self.rate).min(self.depth());
        if self.rate > 0.0 && self.tokens >= PACKET_BYTES {
            self.tokens -= PACKET_BYTES;
            true
        } else {
            self.refused += 1;
            false
        }
    }
}

/// One viewer's retransmission budget, applied to the requests its webrtcbin's RTP session
/// sends to its `rtprtxsend`.
pub struct RetransmitBudget {
    bucket: Arc<Mutex<Bucket>>,
}

impl RetransmitBudget {
    /// Finds the viewer's `rtprtxsend` (there once the session is negotiated with RTX) and
    /// budgets its retransmissions at a share of `video_kbps`. `None` without one: the viewer
    /// does not ask for retransmissions.
    pub fn attach(webrtc: &gst::Element, video_kbps: u32) -> Option<Self> {
        let bin = webrtc.downcast_ref::<gst::Bin>()?;
        let rtx = bin.iterate_all_by_element_factory_name("rtprtxsend").into_iter().flatten().next()?;
        let pad = rtx.static_pad("src")?;
        let bucket = Arc::new(Mutex::new(Bucket::new(video_kbps)));
        let epoch = Instant::now();
        let requests = bucket.clone();
        pad.add_probe(gst::PadProbeType::EVENT_UPSTREAM, move |_, info| {
            let is_request = matches!(&info.data, Some(gst::PadProbeData::Event(e))
                if e.structure().is_some_and(|s| s.name() == "GstRTPRetransmissionRequest"));
            if !is_request {
                return gst::PadProbeReturn::Ok;
            }
            let granted = requests.lock().unwrap_or_else(|p| p.into_inner()).take(epoch.elapsed());
            if granted {
                gst::PadProbeReturn::Ok
            } else {
                // Consumed here (see `ladder::throttle_keyframe_requests` on why not Drop).
                drop(info.take_event());
                gst::PadProbeReturn::Handled
            }
        });
        Some(Self { bucket })
    }

    /// The viewer moved: its video now runs at `kbps` (0: sound only, nothing is sent again).
    pub fn set_video_kbps(&self, kbps: u32) {
        self.bucket.lock().unwrap_or_else(|p| p.into_inner()).set_video_kbps(kbps);
    }

    /// Requests not answered so far.
    pub fn refused(&self) -> u64 {
        self.bucket.lock().unwrap_or_else(|p| p.into_inner()).refused
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn a_few_losses_are_always_sent_again_a_storm_is_not() {
        // 720p at 1500 kbit/s: 5 % of ~150 packets a second, plus retries, is far inside.
        let mut b = Bucket::new(1500);
        let granted = (0..2000u64).filter(|i| b.take(ms(i * 100))).count();
        assert_eq!(granted, 2000, "ten requests a second for 200 s");
        // 180p at 150 kbit/s: a storm of 40 requests a second gets about 4 a second through.
        let mut b = Bucket::new(150);
        let granted = (0..400u64).filter(|i| b.take(ms(i * 25))).count();
        assert!((40..=50).contains(&granted), "10 s of a storm: {granted} answered");
        assert_eq!(b.refused, 400 - granted as u64);
    }

    #[test]
    fn sound_only_sends_nothing_again_and_a_move_up_restores_the_budget() {
        let mut b = Bucket::new(500);
        b.set_video_kbps(0);
        assert!((0..100u64).all(|i| !b.take(ms(i * 10))), "sound only: nothing");
        b.set_video_kbps(500);
        assert!(b.take(ms(2000)), "a second after the move up there is room again");
    }
}
