//! What a viewer's RTP session knows about the link to its receiver: the receiver's RTCP
//! reports on each stream we send (packets lost, round trip) and, where the receiver sends it,
//! transport-wide feedback on the last few packets (when each arrived). Read from webrtcbin's
//! `rtpsession`: cheap enough for the room task to do several times a second. GStreamer 1.22
//! keeps only the last report block of each receiver report (so `get-stats` shows one stream
//! of two); the reports are therefore read here as they arrive, every block of them.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use gst::prelude::*;

/// Running totals for one viewer's link, as of the receiver's latest reports.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct LinkCounts {
    /// Packets the receiver expected on the streams it reported on (its highest sequence
    /// numbers, summed): counted at the same instant as `lost`, however rare its reports.
    pub expected: u64,
    /// As the receiver reports it (RTP's cumulative count may dip below an earlier one when
    /// duplicates arrive, hence signed).
    pub lost: i64,
    pub rtt: Option<Duration>,
    /// Which streams these totals are over (a signature of their SSRCs): totals over other
    /// streams cannot be compared.
    pub streams: u64,
}

impl LinkCounts {
    /// The share of packets lost between `earlier` and `self` (0 when no report came).
    pub fn loss_since(&self, earlier: &LinkCounts) -> f64 {
        if self.streams != earlier.streams {
            return 0.0;
        }
        let expected = self.expected.saturating_sub(earlier.expected);
        if expected == 0 {
            return 0.0;
        }
        let lost = (self.lost - earlier.lost).max(0) as f64;
        (lost / expected as f64).clamp(0.0, 1.0)
    }
}

/// What the receiver's transport-wide feedback said about the last few packets it was sent
/// (webrtcbin 1.22 keeps a short window): how many arrived, and whether the gaps between
/// arrivals grew against the gaps between sendings (a queue filling up on the way).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Feedback {
    /// Packets in the window.
    pub packets: u32,
    /// Share of them that never arrived (0..=1).
    pub loss: f64,
    /// Mean growth of the arrival gap over the send gap, per packet.
    pub delay_growth: Duration,
    pub sent_bps: u64,
    pub received_bps: u64,
}

/// The receiver's latest report block on one of our streams.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Block {
    ssrc: u32,
    /// Cumulative packets lost (signed 24-bit on the wire).
    lost: i32,
    /// The extended highest sequence number received.
    highest: u32,
    /// The round trip this block gives, if it refers to a sender report of ours.
    rtt: Option<Duration>,
    /// Which of our sender reports it refers to (LSR; 0: none yet).
    lsr: u32,
}

type Blocks = Arc<Mutex<HashMap<u32, Block>>>;

/// A viewer's link, read from its webrtcbin's bundled RTP session.
pub struct LinkReader {
    /// webrtcbin's bundled `rtpsession` element.
    session: gst::Element,
    /// The last feedback window read: the same again means no feedback came since.
    last: Option<Feedback>,
    /// Every report block received, by the SSRC it reports on (filled on a streaming thread).
    blocks: Blocks,
}

impl LinkReader {
    /// The reader for `webrtc`'s bundled RTP session, once negotiation has made it.
    pub fn find(webrtc: &gst::Element) -> Option<Self> {
        let rtpbin = webrtc.downcast_ref::<gst::Bin>()?.by_name("rtpbin")?;
        let session = rtpbin.emit_by_name::<Option<gst::Element>>("get-session", &[&0u32])?;
        session.find_property("twcc-stats")?;
        let internal = rtpbin.emit_by_name::<Option<gst::glib::Object>>("get-internal-session", &[&0u32])?;
        let blocks = Blocks::default();
        let sink = blocks.clone();
        internal.connect("on-receiving-rtcp", false, move |args| {
            if let Some(buffer) = args.get(1).and_then(|v| v.get::<gst::Buffer>().ok()) {
                if let Ok(map) = buffer.map_readable() {
                    let arrived = ntp_middle(SystemTime::now());
                    let mut blocks = sink.lock().unwrap_or_else(|p| p.into_inner());
                    for block in report_blocks(map.as_slice(), arrived) {
                        blocks.insert(block.ssrc, fresh(block, arrived));
                    }
                }
            }
            None
        });
        Some(Self { session, last: None, blocks })
    }

    /// The latest feedback window, if feedback on at least two packets came since the last read.
    pub fn feedback(&mut self) -> Option<Feedback> {
        let stats = self.session.property::<Option<gst::Structure>>("twcc-stats")?;
        let window = parse_feedback(&stats)?;
        if self.last.replace(window) == Some(window) {
            return None;
        }
        Some(window)
    }

    /// The sequence number up to which the receiver's latest report on stream `ssrc` reaches.
    pub fn reported_up_to(&self, ssrc: u32) -> Option<u16> {
        self.blocks.lock().unwrap_or_else(|p| p.into_inner()).get(&ssrc).map(|b| b.highest as u16)
    }

    /// The totals of the receiver's reports on every stream we send it; the round trip only
    /// from reports that came since the last call (an old one describes an old queue).
    pub fn counts(&self) -> LinkCounts {
        let blocks: Vec<Block> = {
            let mut latest = self.blocks.lock().unwrap_or_else(|p| p.into_inner());
            let blocks = latest.values().copied().collect();
            latest.values_mut().for_each(|b| b.rtt = None);
            blocks
        };
        sum_reports(&blocks)
    }
}

/// The middle 32 bits of the NTP timestamp of `t` (the form RTCP's LSR and DLSR use).
fn ntp_middle(t: SystemTime) -> u32 {
    const NTP_UNIX_OFFSET: u64 = 2_208_988_800;
    let since = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs().wrapping_add(NTP_UNIX_OFFSET);
    let frac = (u64::from(since.subsec_nanos()) << 16) / 1_000_000_000;
    ((secs << 16) as u32) | frac as u32
}

/// The report blocks of a compound RTCP packet (from sender and receiver reports), with
/// the round trip each gives if it arrived at `arrived` (NTP middle 32 bits).
fn report_blocks(mut data: &[u8], arrived: u32) -> Vec<Block> {
    let mut out = Vec::new();
    while data.len() >= 4 {
        let count = usize::from(data[0] & 0x1f);
        let kind = data[1];
        let len = (usize::from(u16::from_be_bytes([data[2], data[3]])) + 1) * 4;
        if data[0] >> 6 != 2 || len > data.len() {
            break;
        }
        let packet = &data[..len];
        data = &data[len..];
        let first_block = match kind {
            200 => 28,
            201 => 8,
            _ => continue,
        };
        for b in packet.get(first_block..).unwrap_or_default().chunks_exact(24).take(count) {
            let word = |i: usize| u32::from_be_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
            // Cumulative lost: a signed 24-bit number after the fraction byte.
            let lost = (((word(4) & 0x00ff_ffff) << 8) as i32) >> 8;
            let (lsr, dlsr) = (word(16), word(20));
            let rtt = (lsr != 0)
                .then(|| arrived.wrapping_sub(lsr).wrapping_sub(dlsr))
                .filter(|units| *units < 60 << 16)
                .map(|units| Duration::from_secs_f64(f64::from(units) / 65536.0));
            out.push(Block { ssrc: word(0), lost, highest: word(8), rtt, lsr });
        }
    }
    out
}

/// The oldest sender report whose round trip still counts when a block refers to it.
const STALE_SENDER_REPORT: Duration = Duration::from_secs(6);

/// `block`, arrived at `arrived` (NTP middle 32 bits), with its round trip only if the sender
/// report it refers to went out at most [`STALE_SENDER_REPORT`] ago. A stream we stopped
/// sending (a viewer moved to sound only) gets no more sender reports, and the receiver goes
/// on reporting the last one it had: `arrival - LSR - DLSR` then repeats the round trip of that
/// report, which went through the queue of the old rung (a viewer on sound only kept a 2.5 s
/// round trip for 15 s after its link was free again, and climbed back only after 12-22 s).
/// A report on a running stream refers to one at most a report interval or two and the queue
/// old (ours go out every second), and says how deep the queue was then: that counts.
fn fresh(mut block: Block, arrived: u32) -> Block {
    let age = Duration::from_secs_f64(f64::from(arrived.wrapping_sub(block.lsr)) / 65536.0);
    if block.lsr != 0 && age > STALE_SENDER_REPORT {
        block.rtt = None;
    }
    block
}

fn parse_feedback(s: &gst::StructureRef) -> Option<Feedback> {
    let packets = number(s, "packets-sent")? as u32;
    if packets < 2 {
        return None;
    }
    let received = number(s, "packets-recv").unwrap_or(f64::from(packets));
    let growth_ns = number(s, "avg-delta-of-delta").unwrap_or(0.0);
    Some(Feedback {
        packets,
        loss: (1.0 - received / f64::from(packets)).clamp(0.0, 1.0),
        // Invalid (no pair of arrivals yet) reads as i64::MIN: no growth.
        delay_growth: Duration::from_nanos(growth_ns.max(0.0) as u64),
        sent_bps: number(s, "bitrate-sent").unwrap_or(0.0) as u64,
        received_bps: number(s, "bitrate-recv").unwrap_or(0.0) as u64,
    })
}

/// Sums the receiver's latest report on each stream. The round trip is the longest any
/// report gives.
fn sum_reports(blocks: &[Block]) -> LinkCounts {
    let mut counts = LinkCounts::default();
    for block in blocks {
        counts.expected += u64::from(block.highest);
        counts.lost += i64::from(block.lost);
        counts.streams = counts.streams.wrapping_add(u64::from(block.ssrc).wrapping_mul(0x9E37_79B9_7F4A_7C15));
        counts.rtt = counts.rtt.max(block.rtt);
    }
    counts
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loss_is_the_share_of_what_was_sent_since() {
        let a = LinkCounts { expected: 1000, lost: 10, rtt: None, streams: 7 };
        let b = LinkCounts { expected: 1100, lost: 30, rtt: None, streams: 7 };
        assert!((b.loss_since(&a) - 0.2).abs() < 1e-9);
        assert_eq!(a.loss_since(&a), 0.0, "no report since");
        assert_eq!(LinkCounts { lost: 5, ..a }.loss_since(&LinkCounts { lost: 9, ..a }), 0.0, "a dip is no loss");
        assert_eq!(LinkCounts { streams: 8, ..b }.loss_since(&a), 0.0, "totals over other streams say nothing");
    }

    /// A receiver report from SSRC 9 with a block per `(ssrc, lost, lsr, dlsr)` (highest
    /// sequence number 5000).
    fn receiver_report(blocks: &[(u32, i32, u32, u32)]) -> Vec<u8> {
        let words = 1 + 6 * blocks.len();
        let mut p = vec![0x80 | blocks.len() as u8, 201];
        p.extend_from_slice(&(words as u16).to_be_bytes());
        p.extend_from_slice(&9u32.to_be_bytes());
        for (ssrc, lost, lsr, dlsr) in blocks {
            p.extend_from_slice(&ssrc.to_be_bytes());
            let cumulative = (*lost as u32) & 0x00ff_ffff;
            p.extend_from_slice(&((13 << 24) | cumulative).to_be_bytes());
            p.extend_from_slice(&5000u32.to_be_bytes());
            p.extend_from_slice(&[0; 4]);
            p.extend_from_slice(&lsr.to_be_bytes());
            p.extend_from_slice(&dlsr.to_be_bytes());
        }
        p
    }

    #[test]
    fn every_block_of_a_compound_report_is_read() {
        let sdes = [0x81u8, 202, 0, 1, 0, 0, 0, 9];
        let mut compound = receiver_report(&[(11, 40, 1000 << 16, 1 << 16), (22, -1, 0, 0)]);
        compound.extend_from_slice(&sdes);
        let arrived = (1001 << 16) + (1 << 14);
        let blocks = report_blocks(&compound, arrived);
        assert_eq!(blocks.len(), 2, "{blocks:?}");
        assert_eq!(blocks[0], Block { ssrc: 11, lost: 40, highest: 5000, rtt: Some(Duration::from_millis(250)), lsr: 1000 << 16 });
        assert_eq!(blocks[1], Block { ssrc: 22, lost: -1, highest: 5000, rtt: None, lsr: 0 }, "no sender report yet: no round trip");
        assert!(report_blocks(&compound[..20], arrived).is_empty(), "a cut packet is ignored");
        assert!(report_blocks(&[0xff; 40], arrived).is_empty(), "not RTCP version 2");
    }

    #[test]
    fn a_report_on_an_old_sender_report_gives_no_round_trip() {
        let sent = 1000 << 16;
        let block = Block { ssrc: 11, lost: 0, highest: 900, rtt: Some(Duration::from_millis(2500)), lsr: sent };
        assert_eq!(fresh(block, sent + (3 << 16)).rtt, block.rtt, "a report on one sent 3 s ago: a queue 2.5 s deep then");
        assert_eq!(fresh(block, sent + (5 << 16)).rtt, block.rtt, "the same again later, still within the bound");
        assert_eq!(fresh(block, sent + (7 << 16)).rtt, None, "7 s later: the stream is no longer sent");
    }

    #[test]
    fn the_latest_report_on_every_stream_is_summed() {
        let blocks = [
            Block { ssrc: 11, lost: 40, highest: 900, rtt: Some(Duration::from_millis(250)), lsr: 1 },
            Block { ssrc: 22, lost: 2, highest: 100, rtt: Some(Duration::from_millis(20)), lsr: 2 },
        ];
        let counts = sum_reports(&blocks);
        assert_eq!((counts.expected, counts.lost, counts.rtt), (1000, 42, Some(Duration::from_millis(250))));
        let video_only = sum_reports(&blocks[..1]);
        assert_eq!((video_only.expected, video_only.lost), (900, 40));
        assert_ne!(counts.streams, video_only.streams, "a stream reported on for the first time is not compared");
        // Rare reports: the loss is over what they cover, not over the time between looks.
        let later = sum_reports(&[Block { lost: 140, highest: 2900, ..blocks[0] }, blocks[1]]);
        assert!((later.loss_since(&counts) - 0.05).abs() < 1e-9);
    }

    #[test]
    fn ntp_time_is_cut_to_the_middle_bits() {
        let t = UNIX_EPOCH + Duration::from_millis(1_500);
        assert_eq!(ntp_middle(t), ((2_208_988_801u64 << 16) as u32) | 0x8000);
    }

    #[test]
    fn feedback_windows_are_read_as_loss_growth_and_rates() {
        gst::init().unwrap();
        let window = gst::Structure::builder("RTPTWCCStats")
            .field("bitrate-sent", 520_000u32)
            .field("bitrate-recv", 410_000u32)
            .field("packets-sent", 4u32)
            .field("packets-recv", 3u32)
            .field("packet-loss-pct", 25.0f64)
            .field("avg-delta-of-delta", 4_500_000i64)
            .build();
        let f = parse_feedback(&window).unwrap();
        assert_eq!((f.packets, f.delay_growth, f.sent_bps, f.received_bps), (4, Duration::from_micros(4500), 520_000, 410_000));
        assert!((f.loss - 0.25).abs() < 1e-9);
        let unset = gst::Structure::builder("RTPTWCCStats").field("packets-sent", 3u32).field("avg-delta-of-delta", i64::MIN).build();
        assert_eq!(parse_feedback(&unset).unwrap().delay_growth, Duration::ZERO, "no pair of arrivals yet");
        let empty = gst::Structure::builder("RTPTWCCStats").field("packets-sent", 1u32).build();
        assert_eq!(parse_feedback(&empty), None);
    }
}
