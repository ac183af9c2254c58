//! What a viewer's webrtcbin knows about the link to its receiver, from `get-stats`: packets
//! sent and reported lost over all its streams (the receiver's RTCP receiver reports), and the
//! round trip those reports give.

use std::time::Duration;

use gst::prelude::*;
use gst_webrtc::WebRTCStatsType;

/// Running totals for one viewer's link.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct LinkCounts {
    pub sent: u64,
    /// As the receiver reports it (RTP's cumulative count may dip below an earlier one when
    /// duplicates arrive, hence signed).
    pub lost: i64,
    pub rtt: Option<Duration>,
}

impl LinkCounts {
    /// The share of packets lost between `earlier` and `self` (0 when nothing was sent).
    pub fn loss_since(&self, earlier: &LinkCounts) -> f64 {
        let sent = self.sent.saturating_sub(earlier.sent);
        if sent == 0 {
            return 0.0;
        }
        let lost = (self.lost - earlier.lost).max(0) as f64;
        (lost / sent as f64).clamp(0.0, 1.0)
    }
}

/// Asks `webrtc` for its statistics; `deliver` gets the totals on a GStreamer thread (it must
/// only forward them).
pub fn request(webrtc: &gst::Element, deliver: impl FnOnce(LinkCounts) + Send + 'static) {
    let promise = gst::Promise::with_change_func(move |reply| {
        if let Ok(Some(stats)) = reply {
            deliver(parse(stats));
        }
    });
    webrtc.emit_by_name::<()>("get-stats", &[&None::<gst::Pad>, &promise]);
}

fn number(s: &gst::StructureRef, field: &str) -> Option<f64> {
    let value = s.value(field).ok()?;
    value
        .get::<u64>()
        .map(|v| v as f64)
        .or_else(|_| value.get::<i64>().map(|v| v as f64))
        .or_else(|_| value.get::<u32>().map(f64::from))
        .or_else(|_| value.get::<i32>().map(f64::from))
        .or_else(|_| value.get::<f64>())
        .ok()
}

fn parse(stats: &gst::StructureRef) -> LinkCounts {
    let mut counts = LinkCounts::default();
    for (_, value) in stats.iter() {
        let Ok(s) = value.get::<gst::Structure>() else { continue };
        match s.get::<WebRTCStatsType>("type") {
            Ok(WebRTCStatsType::OutboundRtp) => counts.sent += number(&s, "packets-sent").unwrap_or(0.0) as u64,
            Ok(WebRTCStatsType::RemoteInboundRtp) => {
                counts.lost += number(&s, "packets-lost").unwrap_or(0.0) as i64;
                if let Some(rtt) = number(&s, "round-trip-time").filter(|r| *r > 0.0) {
                    let rtt = Duration::from_secs_f64(rtt);
                    counts.rtt = Some(counts.rtt.map_or(rtt, |r| r.max(rtt)));
                }
            }
            _ => {}
        }
    }
    counts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loss_is_the_share_of_what_was_sent_since() {
        let a = LinkCounts { sent: 1000, lost: 10, rtt: None };
        let b = LinkCounts { sent: 1100, lost: 30, rtt: None };
        assert!((b.loss_since(&a) - 0.2).abs() < 1e-9);
        assert_eq!(a.loss_since(&a), 0.0, "nothing sent");
        assert_eq!(LinkCounts { lost: 5, ..a }.loss_since(&LinkCounts { lost: 9, ..a }), 0.0, "a dip is no loss");
    }

    #[test]
    fn webrtcbin_stats_are_summed_over_streams() {
        gst::init().unwrap();
        let stream = |ty: WebRTCStatsType, fields: &[(&str, gst::glib::SendValue)]| {
            let mut s = gst::Structure::builder("x").field("type", ty).build();
            for (k, v) in fields {
                s.set_value(*k, v.clone());
            }
            s
        };
        let all = gst::Structure::builder("application/x-webrtc-stats")
            .field("out-video", stream(WebRTCStatsType::OutboundRtp, &[("packets-sent", 900u64.to_send_value())]))
            .field("out-audio", stream(WebRTCStatsType::OutboundRtp, &[("packets-sent", 100u64.to_send_value())]))
            .field(
                "rin-video",
                stream(WebRTCStatsType::RemoteInboundRtp, &[("packets-lost", 40i64.to_send_value()), ("round-trip-time", 0.25f64.to_send_value())]),
            )
            .field("rin-audio", stream(WebRTCStatsType::RemoteInboundRtp, &[("packets-lost", 2i64.to_send_value())]))
            .build();
        let counts = parse(&all);
        assert_eq!(counts, LinkCounts { sent: 1000, lost: 42, rtt: Some(Duration::from_millis(250)) });
    }
}
