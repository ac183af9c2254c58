//! Which rung of the ladder a receiver's link carries: a pure policy in the style of
//! `src/room`. The media task feeds it what the receiver's reports show, once a second, with
//! the time; it answers when the receiver should move.
//!
//! Down fast: a second of heavy loss, or of loss together with a round trip grown well above
//! the best seen (a queue filling up in front of a slow link), or of a round trip a third of
//! a second above the best, or two seconds of either loss or a grown round trip, moves
//! one rung down (two on heavy loss). Up slowly: only after a clean stretch, one rung at a
//! time, as a probe; a probe that shows any loss or a growing queue is undone at once and the
//! next clean stretch must be twice as long (up to a limit), one that holds resets it. Below the lowest rung the
//! receiver hears the room without a picture, and comes back the same way.
//!
//! Receivers that send transport-wide feedback (browsers, webrtcbin with the extension
//! negotiated) say within a fraction of a second when a queue starts to fill: arrivals spread
//! out against sendings, and less arrives than was sent. The room task reads that a few times
//! a second ([`RungPolicy::observe_arrivals`]); two such reads in a row move the receiver down,
//! one undoes a probe, long before a receiver report could show it and before the queue
//! overflows into the sound. A queue that overflows all the same (it filled faster than
//! feedback could say) shows as loss well above random loss, read after read: a second and a
//! half of it moves the receiver down too, whose receiver reports may show little (it asks for
//! lost packets again and gets most of them, while the retransmissions fill its link further).
//! A full link delivers what it can carry: such a verdict moves the receiver to the highest rung
//! that what arrived carries (a 100 kbit/s line under the top rung to sound only at once, not a
//! rung every two seconds while the sound drowns in the queue).

use std::time::Duration;

use super::backlog::Backlog;

/// Loss at or above this in one report interval is a bad second...
const LOSS_BAD: f64 = 0.08;
/// ...at or above this, a very bad one (move two rungs at once).
const LOSS_SEVERE: f64 = 0.25;
/// What the sound takes besides the picture (Opus at 32 kbit/s and its packets' headers).
const AUDIO_KBPS: u32 = 54;
/// A lower rung is chosen after a very bad second if it needs at most this share of what
/// still arrived.
const SEVERE_HEADROOM: f64 = 0.9;
/// Loss below this is a clean second...
const LOSS_CLEAN: f64 = 0.02;
/// ...and at or above this a probe has failed (one lost packet of fifty is not a verdict).
const LOSS_PROBE_FAILED: f64 = 0.05;
/// A round trip this much above the best seen means a queue is building up...
const RTT_QUEUEING: Duration = Duration::from_millis(150);
/// ...beyond no doubt at this much (half a second of queue)...
const RTT_SURE_QUEUEING: Duration = Duration::from_millis(300);
/// ...and during a probe, already this much.
const RTT_PROBE_QUEUEING: Duration = Duration::from_millis(80);
/// How much the best round trip is allowed to grow per report (2 ms a second: a path 150 ms
/// longer for good is the new normal after about a minute and a quarter).
const RTT_BASE_CREEP: Duration = Duration::from_millis(2);
/// Clean time before the first probe up...
pub const FIRST_HOLD: Duration = Duration::from_secs(3);
/// ...doubled after each failed probe, up to this.
pub const MAX_HOLD: Duration = Duration::from_secs(30);
/// A link that cannot carry even the lowest picture gets its first probe only after this
/// long (a probe that fails there costs the sound the most) unless the receiver sends
/// feedback, which undoes such a probe before it costs anything.
pub const FIRST_HOLD_FROM_AUDIO: Duration = Duration::from_secs(8);
/// A receiver without feedback that its reports moved down from a rung is probed with that
/// rung again only after this long: its link was seen not to carry it, and such a probe costs
/// it seconds of picture (its reports undo the probe only after a second or two, some not
/// at all, and the queue the probe filled drains after that). A 250 kbit/s link under 180p
/// was probed with 360p every 3 s and froze up to 9 s each time.
pub const HOLD_FOR_A_RUNG_NOT_CARRIED: Duration = Duration::from_secs(15);
/// Only a rung the receiver had been on this long counts as not carried when its reports move
/// it down: right after a move down, they still describe the queue the higher rung left (a
/// 1 s queue sent a player from 180p, which fitted 250 kbit/s, to sound only, and it waited
/// there).
const SETTLED_ON_RUNG: Duration = Duration::from_secs(10);
/// Loss in receiver reports within this long of a probe's start is not held against it.
const PROBE_FIRST_REPORT: Duration = Duration::from_millis(1500);
/// A probe that stays clean this long has held.
const PROBE_WINDOW: Duration = Duration::from_secs(4);
/// With transport-wide feedback (which undoes a failing probe within half a second) a probe
/// has held after this, and the next rung is tried at once: from sound only back to the top
/// in three steps well within ten seconds of a lifted cap.
const FEEDBACK_PROBE_WINDOW: Duration = Duration::from_secs(2);
/// After a move down, reports still describe the old rung for about this long: not judged...
const SETTLE: Duration = Duration::from_millis(2000);
/// ...and the queue the old rung built up drains for up to this long: round trips are not
/// judged then (they still grow while the old rung feeds until the new one's keyframe, and
/// come a second or two late), only loss.
const DRAIN: Duration = Duration::from_secs(5);
/// After a failed probe, reports describe the probe (and the queue it overflowed) longer.
const SETTLE_AFTER_PROBE: Duration = Duration::from_millis(4000);
/// A queue whose round trip keeps shrinking (or holds: no newer report) is still draining:
/// a lower rung that only just fits a slow line empties a modem's queue slowly. Each such
/// report gives it this long again...
const DRAIN_STEP: Duration = Duration::from_secs(2);
/// ...up to this long after the move.
const DRAIN_MAX: Duration = Duration::from_secs(15);
/// Round trips within this of each other are the same.
const RTT_NOISE: Duration = Duration::from_millis(5);

/// Arrival gaps growing by this much per packet over the send gaps...
const GROWTH_QUEUEING: Duration = Duration::from_millis(1);
/// ...while at most this share of the sent bitrate arrives: a queue is filling.
const DELIVERED_SHORT: f64 = 0.9;
/// A receiver without transport-wide feedback whose reports stop for twice its longest recent
/// gap between reports, and at least this long, while it gets a picture is in trouble (its
/// reports are lost too, or it stopped counting what it gets).
const REPORTS_MISSING: Duration = Duration::from_secs(3);
/// ...and during a probe, once its usual gap and at least this long have passed.
const PROBE_REPORTS_MISSING: Duration = Duration::from_secs(2);
/// How many recent gaps between reports are remembered.
const REPORT_GAPS: usize = 8;
/// This many such reads move a receiver down (one undoes a probe)...
const QUEUE_READS: u32 = 2;
/// ...among the last this many (a browser's feedback windows alternate while a queue fills:
/// one spreads out, the next catches up on a burst).
const QUEUE_WINDOW: u32 = 3;
/// A share of lost packets in a feedback window this high, read after read, is a queue that
/// overflows (random loss is rarely this high in a quarter second, and never for long)...
const OVERFLOW_LOSS: f64 = 0.2;
/// ...and so is at most this share of the sent bitrate arriving, read after read, when the
/// queue stands full (its delay no longer grows; seen with GStreamer's NACK receiver behind
/// 500 kbit/s: 0.70-0.78 for fifteen seconds, no loss in the feedback, no report blocks).
const DELIVERED_SATURATED: f64 = 0.8;
/// ...in this many of the last [`OVERFLOW_WINDOW`] reads (a second and a half of two): one
/// rung down. (A browser asks for what it lost again, and gets most of it: its receiver reports
/// then show little loss while its link is full, the picture stalls on retransmissions and
/// the round trip no longer grows. Its retransmissions arrive between the losses, so a read
/// now and then looks clean: not all of them need to overflow.)
const OVERFLOW_READS: u32 = 6;
const OVERFLOW_WINDOW: u32 = 8;
/// During a probe, the last two reads overflowing undo it.
const PROBE_OVERFLOW_READS: u32 = 2;
/// A read of a queue in which less than this share of what the current rung (with its sound)
/// needs arrived, while at least as much was sent, is short of the rung: the link carries
/// less than it needs. Two in a row move the receiver to what fits (right after a move down,
/// when the old rung's queue still overflows and the new rung cannot fit either).
const SHORT_OF_RUNG: f64 = 0.8;
const SHORT_READS: u32 = 2;
/// While feedback is not judged (right after a move down or an undone probe), a read counts
/// as short only when less than this share of what the new rung needs arrives: the queue left
/// behind then delivers the link's whole capacity, so this little is a link that cannot carry
/// the new rung either. (Waiting out the settle time there, a 100 kbit/s link under 180p
/// overflowed for 2.5 s and took the sound with it.)
const SHORT_WHILE_SETTLING: f64 = 0.6;
/// A probe that feedback undid cost a fraction of a second of queue, not lost packets: the
/// clean stretch before the next one grows only up to this, so a lifted cap is found soon.
pub const FEEDBACK_MAX_HOLD: Duration = Duration::from_secs(4);
/// After a move down, feedback describes the old rung until the new one's keyframe.
const ARRIVALS_SETTLE: Duration = Duration::from_millis(1000);
/// After an undone probe, longer: the queue the probe filled drains behind the rung that
/// carried the link before it (read as a queue, it once sent a receiver from 180p, which
/// fitted, to sound only 1.5 s after the undo).
const ARRIVALS_SETTLE_AFTER_PROBE: Duration = Duration::from_millis(2500);
/// After a move down, for this long, the queue the old rung filled still overflows at every
/// burst of the new one (a keyframe) while it drains: only a link that carries less than the
/// new rung needs moves the receiver further down then (with each rung's rate known). Read
/// as overflow, a 250 kbit/s link whose 180p fitted went on to sound only 2.3 s after 180p.
const OLD_QUEUE_DRAINS: Duration = Duration::from_secs(4);

/// Feedback reads in a row in which everything sent arrived, in step, that show the queue a
/// move down left behind has drained (the round trip in the receiver reports says so only
/// once a second, and not in every report: the next probe then came 9-10 s after a move).
const CLEAR_READS: u32 = 2;

/// What the receiver's transport-wide feedback showed over its last few packets.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Arrivals {
    /// Mean growth of the gap between arrivals over the gap between sendings.
    pub delay_growth: Duration,
    /// Bitrate that arrived over bitrate sent, in the same window.
    pub delivered: f64,
    /// Share of the window's packets that never arrived.
    pub lost: f64,
    /// What arrived, sound and picture (kbit/s; 0: not known).
    pub received_kbps: u32,
}

impl Arrivals {
    /// More lost than random loss explains, far less arriving than was sent, or less arriving
    /// while arrivals spread out (lost packets or not): a queue that overflows, or stands full
    /// in front of a link slower than the rung.
    fn overflowing(&self) -> bool {
        // (Not "short with any loss": a quarter second of a 500 kbit/s rung is a dozen packets,
        // one lost of them at random is 8 %, and 5 % random loss then moved receivers down.)
        let short = self.delivered <= DELIVERED_SHORT && self.delay_growth >= GROWTH_QUEUEING;
        self.lost >= OVERFLOW_LOSS || self.delivered <= DELIVERED_SATURATED || short
    }

    /// A queue filling up: arrivals spread out and fall behind, and nothing is lost yet. (A
    /// window with a lost packet says nothing about a queue: random loss thins the arrivals
    /// and packets sent again arrive out of their turn. A queue that overflows shows in the
    /// receiver reports' loss.)
    fn queueing(&self) -> bool {
        self.delay_growth >= GROWTH_QUEUEING && self.delivered <= DELIVERED_SHORT && self.lost == 0.0
    }

    /// Everything sent arrived at the pace it was sent: no queue in the way (a queue that
    /// drains delivers more than is sent; one that fills, less).
    fn clear(&self) -> bool {
        self.lost == 0.0 && self.delay_growth < GROWTH_QUEUEING && (0.9..=1.1).contains(&self.delivered)
    }
}

/// What one report interval showed about a receiver's link.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Signals {
    /// Share of the packets sent in the interval that the receiver reported lost (0..=1).
    pub loss: f64,
    /// The round trip the receiver's last report gave, if any.
    pub rtt: Option<Duration>,
    /// No report came in the interval at all.
    pub silent: bool,
}

/// Where a receiver is on the ladder: `0` is the top rung, `rungs - 1` the lowest, `rungs`
/// means audio only.
#[derive(Clone, Debug)]
pub struct RungPolicy {
    rungs: usize,
    /// The highest rung the receiver allows itself (its cap): it is never moved above it.
    ceiling: usize,
    current: usize,
    bad_streak: u32,
    clean_since: Option<Duration>,
    hold: Duration,
    /// When the current probe up started, while it is still on trial.
    probe: Option<Duration>,
    settle_until: Duration,
    /// After a move down: until when the old queue drains, and when it started.
    draining: Option<Duration>,
    drain_started: Duration,
    /// The round trip of the previous report.
    last_rtt: Option<Duration>,
    best_rtt: Option<Duration>,
    /// Which of the recent feedback reads showed a queue filling, and which one overflowing
    /// (a bit per read, the newest lowest).
    queue_reads: u32,
    overflow_reads: u32,
    short_reads: u32,
    /// Clear feedback reads in a row since the last that was not.
    clear_reads: u32,
    /// What arrived in each of the recent reads that showed trouble (newest last; `None` for
    /// the others): a full link delivers what it carries.
    arrived: std::collections::VecDeque<Option<u32>>,
    /// Until when feedback is not judged (after a move down).
    arrivals_settle_until: Duration,
    /// Until when the old rung's queue drains after a move down (see [`OLD_QUEUE_DRAINS`]).
    old_queue_until: Duration,
    /// Each rung's bitrate (kbit/s), if known: a very bad second then moves to the highest
    /// rung that what still arrived would carry, instead of two rungs down.
    rates: Option<Vec<u32>>,
    /// Whether the receiver sends transport-wide feedback.
    feedback_seen: bool,
    /// The rung a verdict last moved the receiver down from (until a probe holds).
    not_carried: Option<usize>,
    /// When it last moved down.
    last_down: Option<Duration>,
    /// Whether a report with a round trip came since the drain began.
    rtt_since_down: bool,
    /// When its last report came, and the recent gaps between reports.
    last_report: Option<Duration>,
    report_gaps: std::collections::VecDeque<Duration>,
    /// The last reads of feedback summed, for a queue too slow to show in one.
    backlog: Backlog,
}

impl RungPolicy {
    /// A receiver of a ladder with `rungs` video rungs, starting on `start` (`rungs` for
    /// audio only), never above `ceiling`.
    pub fn new(rungs: usize, start: usize, ceiling: usize, now: Duration) -> Self {
        Self {
            rungs,
            ceiling: ceiling.min(rungs),
            current: start.clamp(ceiling.min(rungs), rungs),
            bad_streak: 0,
            clean_since: None,
            hold: FIRST_HOLD,
            probe: None,
            settle_until: now + SETTLE,
            draining: None,
            drain_started: now,
            last_rtt: None,
            best_rtt: None,
            queue_reads: 0,
            overflow_reads: 0,
            short_reads: 0,
            clear_reads: 0,
            arrived: std::collections::VecDeque::with_capacity(OVERFLOW_WINDOW as usize),
            arrivals_settle_until: now + ARRIVALS_SETTLE,
            old_queue_until: now,
            rates: None,
            feedback_seen: false,
            not_carried: None,
            last_down: None,
            rtt_since_down: true,
            last_report: None,
            report_gaps: std::collections::VecDeque::with_capacity(REPORT_GAPS),
            backlog: Backlog::default(),
        }
    }

    /// The same, knowing each rung's bitrate (top first; the audio comes on top of it).
    pub fn with_rates(mut self, kbps: Vec<u32>) -> Self {
        self.rates = (kbps.len() == self.rungs).then_some(kbps);
        self
    }

    /// How far a very bad second moves down: to the highest rung that what still arrived
    /// (the current rung's rate less the loss) carries with room to spare, or sound only.
    fn severe_steps(&self, loss: f64) -> usize {
        let Some(rates) = &self.rates else { return 2 };
        let Some(now) = rates.get(self.current) else { return 2 };
        let arrived = f64::from(now + AUDIO_KBPS) * (1.0 - loss);
        let fits = (self.current + 1..self.rungs).find(|r| f64::from(rates[*r] + AUDIO_KBPS) <= arrived * SEVERE_HEADROOM);
        fits.unwrap_or(self.rungs) - self.current
    }

    pub fn current(&self) -> usize {
        self.current
    }

    /// The receiver's own cap changed: it goes to `ceiling` at once (lower at once; higher as
    /// a probe, undone if the link cannot carry it) and never above it.
    pub fn set_ceiling(&mut self, ceiling: usize, now: Duration) -> Option<usize> {
        self.ceiling = ceiling.min(self.rungs);
        if self.current == self.ceiling {
            return None;
        }
        let up = self.ceiling < self.current;
        let moved = self.move_to(self.ceiling, now);
        self.probe = up.then_some(now);
        Some(moved)
    }

    /// The rung a probe moved to is not sent yet (its encoder starts, its first keyframe is
    /// awaited): the probe's trial starts again at `now`. (Judged from the move on, a probe
    /// from sound only passed its trial on the sound alone while the rung started, and the
    /// next went on to a rung higher still on a 100 kbit/s link.)
    pub fn not_sent_yet(&mut self, now: Duration) {
        if self.probe.is_some() {
            self.probe = Some(now);
        }
    }

    /// One report interval's signals at `now`; `Some(rung)` when the receiver should move.
    pub fn observe(&mut self, mut signals: Signals, now: Duration) -> Option<usize> {
        if self.probe.is_some_and(|p| now.saturating_sub(p) < PROBE_FIRST_REPORT) {
            // This report's interval began before the probe (on a link just freed, under the
            // cap that was lifted): its loss, and a round trip measured through the queue the
            // cap left, say nothing about the probe.
            signals.loss = 0.0;
            signals.rtt = None;
        }
        if let Some(rtt) = signals.rtt {
            // The best round trip seen, creeping up slowly, so that a path that really got
            // longer (another route, a mobile handover) is taken as the new normal in time.
            self.best_rtt = Some(self.best_rtt.map_or(rtt, |b| (b + RTT_BASE_CREEP).min(rtt)));
        }
        let previous_rtt = self.last_rtt;
        self.last_rtt = signals.rtt.or(previous_rtt);
        if let (Some(until), Some(r), Some(p)) = (self.draining, signals.rtt, previous_rtt) {
            // The first round trip since the move down is the old queue's whatever it says
            // (a player whose reports carried none for 5 s was then sent from 180p, which
            // fitted, to sound only by a 2.6 s round trip through the old queue).
            let first = !self.rtt_since_down;
            if (first || r <= p + RTT_NOISE) && now < self.drain_started + DRAIN_MAX {
                self.draining = Some(until.max(now + DRAIN_STEP));
            }
        }
        if signals.rtt.is_some() {
            self.rtt_since_down = true;
        }
        if now < self.settle_until {
            return None;
        }
        let drained = signals.rtt.zip(self.best_rtt).is_some_and(|(r, b)| r <= b + RTT_QUEUEING);
        if drained || self.draining.is_some_and(|until| now >= until) {
            self.draining = None;
        }
        let draining = self.draining.is_some();
        let queue_above = |margin: Duration| match (signals.rtt, self.best_rtt) {
            (Some(r), Some(b)) => !draining && r > b + margin,
            _ => false,
        };
        let queueing = queue_above(RTT_QUEUEING);
        let probing = self.probe.is_some();
        if !signals.silent {
            if let Some(last) = self.last_report {
                if self.report_gaps.len() == REPORT_GAPS {
                    self.report_gaps.pop_front();
                }
                self.report_gaps.push_back(now.saturating_sub(last));
            }
            self.last_report = Some(now);
        }
        // Judged once the receiver's rhythm is known (two reports).
        // During a probe the receiver's usual gap is enough: a probe is on trial.
        let longest_gap = self.report_gaps.iter().max().copied();
        let missing_after = if probing {
            longest_gap.map(|g| g.max(PROBE_REPORTS_MISSING))
        } else {
            longest_gap.map(|g| (g * 2).max(REPORTS_MISSING))
        };
        // (Not while a move down's old queue drains: a receiver may skip reports then.)
        let reports_missing = !self.feedback_seen
            && !draining
            && self.current < self.rungs
            && self.last_report.zip(missing_after).is_some_and(|(last, after)| now.saturating_sub(last) >= after);
        let bad = signals.loss >= LOSS_BAD
            || queueing
            || reports_missing
            || (probing && (signals.loss >= LOSS_PROBE_FAILED || queue_above(RTT_PROBE_QUEUEING)));
        if bad {
            self.clean_since = None;
            self.bad_streak += 1;
            let failed_probe = self.probe.take().is_some();
            if failed_probe {
                // A receiver with feedback undoes a probe within a quarter second: probing
                // is cheap, so a lifted cap is found soon (as in `observe_arrivals`).
                let longest = if self.feedback_seen { FEEDBACK_MAX_HOLD } else { MAX_HOLD };
                self.hold = (self.hold * 2).min(longest);
            }
            // A failed probe goes back to where it came from, however bad its report.
            let steps = if signals.loss >= LOSS_SEVERE && !failed_probe { self.severe_steps(signals.loss) } else { 1 };
            let certain = signals.loss >= LOSS_SEVERE || (signals.loss >= LOSS_BAD && queueing) || queue_above(RTT_SURE_QUEUEING);
            if (failed_probe || certain || self.bad_streak >= 2) && self.current < self.rungs {
                let settled = self.last_down.is_none_or(|t| now.saturating_sub(t) >= SETTLED_ON_RUNG);
                if !failed_probe && settled {
                    self.not_carried = Some(self.current);
                }
                let target = (self.current + steps).min(self.rungs);
                let moved = self.move_to(target, now);
                self.start_draining(now);
                if failed_probe {
                    // The loss the probe caused is reported over the next seconds; back on
                    // sound only there is nothing further down to be pushed to, and a receiver
                    // with feedback shows its link clear again within a second (the next probe
                    // came 9 s after one that failed just before a cap was lifted).
                    let nothing_below = moved == self.rungs && self.feedback_seen;
                    self.settle_until = now + if nothing_below { ARRIVALS_SETTLE } else { SETTLE_AFTER_PROBE };
                    self.arrivals_settle_until = now + ARRIVALS_SETTLE_AFTER_PROBE;
                }
                return Some(moved);
            }
            return None;
        }
        self.bad_streak = 0;
        // Clean means no loss and no queue: not while the old one drains.
        if signals.loss >= LOSS_CLEAN || draining {
            self.clean_since = None;
            return None;
        }
        let window = if self.feedback_seen { FEEDBACK_PROBE_WINDOW } else { PROBE_WINDOW };
        if self.probe.is_some_and(|p| now.saturating_sub(p) >= window) {
            self.probe = None;
            self.hold = FIRST_HOLD;
            self.not_carried = None;
            if self.feedback_seen {
                self.clean_since = Some(now.saturating_sub(FIRST_HOLD));
            }
        }
        let since = *self.clean_since.get_or_insert(now);
        let mut hold = if self.current == self.rungs && !self.feedback_seen { self.hold.max(FIRST_HOLD_FROM_AUDIO) } else { self.hold };
        if !self.feedback_seen && self.not_carried.is_some_and(|r| r + 1 >= self.current) {
            hold = hold.max(HOLD_FOR_A_RUNG_NOT_CARRIED);
        }
        if self.current > self.ceiling && self.probe.is_none() && now.saturating_sub(since) >= hold {
            let target = self.current - 1;
            let moved = self.move_to(target, now);
            self.probe = Some(now);
            return Some(moved);
        }
        None
    }

    /// One read of the receiver's transport-wide feedback at `now` (several a second, only
    /// when it changed); `Some(rung)` when the receiver should move down.
    pub fn observe_arrivals(&mut self, arrivals: Arrivals, now: Duration) -> Option<usize> {
        self.feedback_seen = true;
        let (queueing, overflowing) = (arrivals.queueing(), arrivals.overflowing());
        let judged = now >= self.arrivals_settle_until;
        let full = (queueing || overflowing) && self.sent_the_rung(&arrivals);
        let short_below = if judged { SHORT_OF_RUNG } else { SHORT_WHILE_SETTLING };
        let short = full && f64::from(arrivals.received_kbps) < self.need() * short_below;
        if judged {
            self.queue_reads = ((self.queue_reads << 1) | u32::from(queueing)) & ((1 << QUEUE_WINDOW) - 1);
            self.overflow_reads = ((self.overflow_reads << 1) | u32::from(overflowing)) & ((1 << OVERFLOW_WINDOW) - 1);
        }
        if judged || short {
            if self.arrived.len() == OVERFLOW_WINDOW as usize {
                self.arrived.pop_front();
            }
            self.arrived.push_back(full.then_some(arrivals.received_kbps));
        }
        self.short_reads = ((self.short_reads << 1) | u32::from(short)) & ((1 << SHORT_READS) - 1);
        self.clear_reads = if judged && arrivals.clear() { self.clear_reads + 1 } else { 0 };
        if self.clear_reads >= CLEAR_READS {
            self.draining = None;
        }
        let slow_fill = judged && self.fills_slowly(&arrivals);
        if !(queueing || overflowing || slow_fill) {
            return None;
        }
        self.clean_since = None;
        let short_verdict = self.short_reads == (1 << SHORT_READS) - 1;
        if !judged && !short_verdict {
            return None;
        }
        let probing = self.probe.is_some();
        let queue_verdict = probing || self.queue_reads.count_ones() >= QUEUE_READS;
        let overflow_verdict = if probing {
            self.overflow_reads & ((1 << PROBE_OVERFLOW_READS) - 1) == (1 << PROBE_OVERFLOW_READS) - 1
        } else {
            self.overflow_reads.count_ones() >= OVERFLOW_READS
        };
        let old_queue = self.rates.is_some() && !probing && now < self.old_queue_until;
        let full_verdict = judged && !old_queue && (queueing && queue_verdict || overflowing && overflow_verdict || slow_fill);
        if !(full_verdict || short_verdict) || self.current >= self.rungs {
            return None;
        }
        let failed_probe = self.probe.take().is_some();
        if failed_probe {
            self.hold = (self.hold * 2).min(FEEDBACK_MAX_HOLD).max(self.hold);
        }
        let target = if failed_probe { self.current + 1 } else { self.fitting_below() };
        let moved = self.move_to(target, now);
        self.start_draining(now);
        if failed_probe {
            // Undone within a quarter second: its queue is gone as soon as feedback says so,
            // or (on sound only, which brings no feedback) soon after.
            self.settle_until = now + ARRIVALS_SETTLE;
            self.arrivals_settle_until = now + ARRIVALS_SETTLE_AFTER_PROBE;
            self.draining = Some(now + ARRIVALS_SETTLE_AFTER_PROBE);
        }
        Some(moved)
    }

    /// Whether the last reads, summed, show a queue filling while the current rung was sent
    /// in full (a link a little slower than the rung). What arrived in the sum is not taken as
    /// what the link carries: its first reads may be from before a sudden cap (taken so, it
    /// once sent a 100 kbit/s link from 360p to 180p instead of sound only).
    fn fills_slowly(&mut self, a: &Arrivals) -> bool {
        let sent = if a.delivered > 0.0 { f64::from(a.received_kbps) / a.delivered } else { 0.0 };
        let Some(sum) = self.backlog.read(f64::from(a.received_kbps), sent, a.lost) else { return false };
        sum.filling && self.need() > 0.0 && sum.sent_kbps >= self.need() * SHORT_OF_RUNG
    }

    /// What the current rung and its sound need (kbit/s; 0 when not known).
    fn need(&self) -> f64 {
        self.rates.as_ref().and_then(|r| r.get(self.current)).map_or(0.0, |rate| f64::from(rate + AUDIO_KBPS))
    }

    /// Whether the sender sent about what the current rung needs in the read's window: only
    /// then is what arrived the link's measure (a still picture that needs little says
    /// nothing about the link).
    fn sent_the_rung(&self, a: &Arrivals) -> bool {
        let sent = if a.delivered > 0.0 { f64::from(a.received_kbps) / a.delivered } else { 0.0 };
        a.received_kbps > 0 && self.need() > 0.0 && sent >= self.need() * SHORT_OF_RUNG
    }

    /// Where a receiver goes whose link is full: the highest rung below the current one that
    /// what arrived carries (a saturated link delivers its capacity; the most any recent read
    /// of a queue that the rung filled saw, so that one short read does not count), sound only when none does; one rung down
    /// when nothing is known. A 100 kbit/s link under the top rung goes to sound only at once
    /// instead of one rung every two seconds while the sound drowns in the queue.
    fn fitting_below(&self) -> usize {
        let next = (self.current + 1).min(self.rungs);
        let (Some(rates), Some(arrived)) = (&self.rates, self.arrived.iter().flatten().max()) else { return next };
        (next..self.rungs).find(|r| rates[*r] + AUDIO_KBPS <= *arrived).unwrap_or(self.rungs)
    }

    fn start_draining(&mut self, now: Duration) {
        self.draining = Some(now + DRAIN);
        self.drain_started = now;
        self.rtt_since_down = false;
    }

    /// Moves to `target`. Reports after a move down still describe the higher rung for a
    /// while, so they are not judged; after a move up, trouble shows at once and counts.
    fn move_to(&mut self, target: usize, now: Duration) -> usize {
        let down = target > self.current;
        if down {
            self.last_down = Some(now);
        }
        self.current = target;
        self.bad_streak = 0;
        self.clean_since = None;
        self.settle_until = if down { now + SETTLE } else { now };
        self.queue_reads = 0;
        self.overflow_reads = 0;
        self.short_reads = 0;
        self.arrived.clear();
        self.backlog.clear();
        if down {
            self.arrivals_settle_until = now + ARRIVALS_SETTLE;
            self.old_queue_until = now + OLD_QUEUE_DRAINS;
        }
        target
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    fn lossy(loss: f64) -> Signals {
        Signals { loss, rtt: Some(Duration::from_millis(20)), silent: false }
    }

    /// Feeds one signal a second from `from` to `to` (exclusive); returns the moves.
    fn run(p: &mut RungPolicy, from: u64, to: u64, signal: impl Fn(u64) -> Signals) -> Vec<(u64, usize)> {
        (from..to).filter_map(|t| p.observe(signal(t), s(t)).map(|r| (t, r))).collect()
    }

    #[test]
    fn sustained_loss_steps_down_fast_and_heavy_loss_faster() {
        let mut p = RungPolicy::new(3, 0, 0, s(0));
        assert_eq!(run(&mut p, 2, 4, |_| lossy(0.10)), vec![(3, 1)], "two bad seconds: one rung down");
        let mut p = RungPolicy::new(3, 0, 0, s(0));
        assert_eq!(run(&mut p, 2, 3, |_| lossy(0.40)), vec![(2, 2)], "one very bad second: two rungs");
        let mut p = RungPolicy::new(3, 0, 0, s(0));
        assert_eq!(run(&mut p, 2, 10, |t| lossy(if t % 2 == 0 { 0.10 } else { 0.0 })), vec![], "isolated bad seconds do not move");
        let mut p = RungPolicy::new(3, 0, 0, s(0));
        p.observe(lossy(0.0), s(2));
        let queued = Signals { loss: 0.10, rtt: Some(Duration::from_millis(400)), silent: false };
        assert_eq!(p.observe(queued, s(3)), Some(1), "loss and a filling queue together: at once");
    }

    #[test]
    fn below_the_lowest_rung_is_audio_only_and_it_comes_back() {
        let mut p = RungPolicy::new(3, 2, 0, s(0));
        assert_eq!(run(&mut p, 2, 4, |_| lossy(0.5)), vec![(2, 3)], "audio only");
        assert_eq!(run(&mut p, 4, 8, |_| lossy(0.5)), vec![], "nothing below audio only");
        let moves = run(&mut p, 8, 30, |_| lossy(0.0));
        assert_eq!(moves.first(), Some(&(8 + HOLD_FOR_A_RUNG_NOT_CARRIED.as_secs(), 2)), "back to the lowest picture after a longer clean stretch");
    }

    #[test]
    fn it_climbs_back_one_rung_per_clean_stretch_once_the_link_is_clean() {
        let mut p = RungPolicy::new(3, 2, 0, s(0));
        let moves = run(&mut p, 2, 20, |_| lossy(0.0));
        assert_eq!(moves, vec![(5, 1), (9, 0)], "3 s clean, a probe that holds, 3 s clean again");
        assert!(moves.last().unwrap().0 - 2 <= 10, "the top within 10 s of a clean link");
    }

    #[test]
    fn a_failed_probe_is_undone_and_the_next_waits_twice_as_long() {
        // A link that carries rung 1 but not rung 0.
        let mut p = RungPolicy::new(3, 1, 0, s(0));
        let link = |p: &RungPolicy| if p.current() == 0 { lossy(0.15) } else { lossy(0.0) };
        let mut moves = Vec::new();
        for t in 2..120 {
            let signal = link(&p);
            if let Some(r) = p.observe(signal, s(t)) {
                moves.push((t, r));
            }
        }
        let probes: Vec<u64> = moves.iter().filter(|(_, r)| *r == 0).map(|(t, _)| *t).collect();
        let gaps: Vec<u64> = probes.windows(2).map(|w| w[1] - w[0]).collect();
        assert!(gaps.windows(2).all(|g| g[1] >= g[0]), "probes back off: {probes:?}");
        assert!(gaps.last().is_some_and(|g| *g >= MAX_HOLD.as_secs()), "and reach the longest hold: {gaps:?}");
        assert!(moves.iter().all(|(_, r)| *r <= 1), "never lower than the link needs: {moves:?}");
        let time_on_top: usize = probes.len() * 2;
        assert!(time_on_top < 20, "{} probes of about 2 s each in 2 minutes", probes.len());
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// Transport-wide feedback: arrival gaps growing by `growth_us` per packet, `delivered`
    /// of the sent bitrate arriving.
    fn arrivals(growth_us: u64, delivered: f64) -> Arrivals {
        Arrivals { delay_growth: Duration::from_micros(growth_us), delivered, lost: 0.0, received_kbps: 0 }
    }

    #[test]
    fn feedback_of_a_filling_queue_moves_down_within_half_a_second() {
        let mut p = RungPolicy::new(3, 0, 0, s(0));
        let full = arrivals(4500, 0.79);
        assert_eq!(p.observe_arrivals(full, ms(2000)), None, "one read is not a verdict");
        assert_eq!(p.observe_arrivals(full, ms(2250)), Some(1), "two in a row are");
        assert_eq!(p.observe_arrivals(full, ms(2500)), None, "the old rung feeds until the new keyframe");
        assert_eq!(p.observe_arrivals(full, ms(3000)), None);
        assert_eq!(p.observe_arrivals(full, ms(3250)), None);
        assert_eq!(p.observe_arrivals(full, ms(3500)), Some(2), "a second later, still filling: down again");
        assert_eq!(p.observe_arrivals(full, ms(4500)), None);
        assert_eq!(p.observe_arrivals(full, ms(4750)), Some(3), "down to sound only");
        assert_eq!(p.observe_arrivals(full, ms(6000)), None);
        assert_eq!(p.observe_arrivals(full, ms(6250)), None, "nothing below sound only");

        let mut p = RungPolicy::new(3, 0, 0, s(0));
        let moves: Vec<_> = (8..30)
            .filter_map(|i| {
                let a = if i % 3 == 0 { full } else { arrivals(0, 1.0) };
                p.observe_arrivals(a, ms(i * 250))
            })
            .collect();
        assert!(moves.is_empty(), "isolated reads do not move: {moves:?}");
        let mut q = RungPolicy::new(3, 0, 0, s(0));
        let moves: Vec<u64> = (8..14)
            .filter(|i| q.observe_arrivals(if i % 2 == 0 { full } else { arrivals(0, 1.05) }, ms(i * 250)).is_some())
            .collect();
        assert_eq!(moves, vec![10], "every other read spreading out (a browser's windows while a queue fills): down");
        let burst = arrivals(6000, 1.0);
        let jitter = arrivals(300, 0.7);
        let resent = Arrivals { lost: 0.05, delivered: 0.95, ..full };
        for i in 30..40 {
            assert_eq!(p.observe_arrivals(resent, ms(i * 250)), None, "random loss and packets sent again are no queue");
        }
        for i in 40..60 {
            let a = if i % 2 == 0 { burst } else { jitter };
            assert_eq!(p.observe_arrivals(a, ms(i * 250)), None, "a keyframe's burst arrives in full; sub-millisecond jitter is no queue");
        }
    }

    #[test]
    fn a_link_a_little_slower_than_the_rung_moves_down_before_it_overflows() {
        // 500 kbit/s under a 500 kbit/s rung and its sound: reads as they came (no single one a
        // queue, a sixth of the sent rate short over all of them).
        let seen = [(444, 0.88), (442, 0.89), (462, 0.45), (438, 1.19), (431, 1.59), (434, 1.30), (453, 0.70), (448, 0.95)];
        let mut p = RungPolicy::new(3, 0, 0, s(0)).with_rates(vec![500, 100, 50]);
        let moves: Vec<(u64, usize)> = (0..seen.len() as u64)
            .filter_map(|i| {
                let (received_kbps, delivered) = seen[i as usize];
                let a = Arrivals { delay_growth: Duration::ZERO, delivered, lost: 0.0, received_kbps };
                p.observe_arrivals(a, ms(2000 + i * 250)).map(|r| (i, r))
            })
            .collect();
        assert_eq!(moves, vec![(6, 1)], "one rung down, 1.75 s in");

        // A sudden 100 kbit/s cap: free reads, then a queue that overflows; sound only at once,
        // whatever the sum of reads from before the cap says.
        let mut p = RungPolicy::new(3, 0, 0, s(0)).with_rates(vec![500, 100, 50]);
        for i in 0..6u64 {
            p.observe_arrivals(Arrivals { delay_growth: Duration::ZERO, delivered: 1.0, lost: 0.0, received_kbps: 560 }, ms(2000 + i * 250));
        }
        let capped = Arrivals { delay_growth: Duration::from_millis(8), delivered: 0.17, lost: 0.0, received_kbps: 95 };
        let moves: Vec<usize> = (6..10u64).filter_map(|i| p.observe_arrivals(capped, ms(2000 + i * 250))).collect();
        assert_eq!(moves, vec![3], "sound only");
    }

    #[test]
    fn feedback_of_an_overflowing_queue_moves_down_and_random_loss_does_not() {
        // 5 % random loss: a quarter second of 40 packets loses 0 to 5 of them.
        let random = [0, 2, 1, 4, 2, 0, 3, 5, 1, 2, 2, 4, 0, 1, 3, 2];
        let mut p = RungPolicy::new(3, 0, 0, s(0));
        for i in 8..200u64 {
            let lost = f64::from(random[i as usize % random.len()]) / 40.0;
            let a = Arrivals { delay_growth: Duration::from_micros(i % 3 * 900), delivered: 1.0 - lost, lost, received_kbps: 0 };
            assert_eq!(p.observe_arrivals(a, ms(i * 250)), None, "random loss at {i}");
        }
        // The same on a 500 kbit/s rung: a dozen packets a window, one or two of them lost.
        let few = [0, 1, 0, 2, 1, 1, 0, 2, 1, 1];
        let mut p = RungPolicy::new(3, 0, 0, s(0));
        for i in 8..200u64 {
            let lost = f64::from(few[i as usize % few.len()]) / 12.0;
            let a = Arrivals { delay_growth: Duration::from_micros(i % 2 * 400), delivered: 1.0 - lost, lost, received_kbps: 0 };
            assert_eq!(p.observe_arrivals(a, ms(i * 250)), None, "random loss in small windows at {i}");
        }
        // A full link: what does not fit is dropped, read after read; retransmissions keep the
        // receiver reports almost clean.
        let overflow = Arrivals { delay_growth: Duration::from_micros(200), delivered: 0.82, lost: 0.22, received_kbps: 0 };
        let mut p = RungPolicy::new(3, 0, 0, s(0));
        let moves: Vec<u64> = (8..16).filter(|i| p.observe_arrivals(overflow, ms(i * 250)).is_some()).collect();
        assert_eq!(moves, vec![13], "six reads in a row: a second and a half");
        let standing = Arrivals { delay_growth: Duration::ZERO, delivered: 0.72, lost: 0.0, received_kbps: 0 };
        let mut p = RungPolicy::new(3, 0, 0, s(0));
        let moves: Vec<u64> = (8..16).filter(|i| p.observe_arrivals(standing, ms(i * 250)).is_some()).collect();
        assert_eq!(moves, vec![13], "a full queue that no longer grows: the same");
        let mut p = RungPolicy::new(3, 0, 0, s(0));
        let clean = Arrivals { delay_growth: Duration::ZERO, delivered: 0.97, lost: 0.0, received_kbps: 0 };
        let moves: Vec<u64> = (8..20)
            .filter(|i| p.observe_arrivals(if i % 4 == 3 { clean } else { overflow }, ms(i * 250)).is_some())
            .collect();
        assert_eq!(moves, vec![14], "retransmissions between the losses: a clean read now and then does not hide it");
        let mut p = RungPolicy::new(3, 1, 0, s(0));
        assert_eq!(run(&mut p, 2, 6, |_| lossy(0.0)), vec![(5, 0)], "the probe");
        assert_eq!(p.observe_arrivals(overflow, ms(5250)), None);
        assert_eq!(p.observe_arrivals(overflow, ms(5500)), Some(1), "a probe that overflows the link is undone after two reads");
    }

    #[test]
    fn the_queue_an_undone_probe_left_is_not_read_as_a_new_one() {
        let mut p = RungPolicy::new(3, 1, 0, s(0));
        assert_eq!(run(&mut p, 2, 6, |_| lossy(0.0)), vec![(5, 0)], "the probe");
        let full = arrivals(6000, 0.5);
        assert_eq!(p.observe_arrivals(full, ms(5250)), Some(1), "undone");
        for t in [5500, 5750, 6000, 6500, 7000, 7500] {
            assert_eq!(p.observe_arrivals(full, ms(t)), None, "its queue drains behind the rung that fitted");
        }
    }

    #[test]
    fn feedback_undoes_a_probe_at_once_and_backs_off() {
        let mut p = RungPolicy::new(3, 1, 0, s(0));
        assert_eq!(run(&mut p, 2, 6, |_| lossy(0.0)), vec![(5, 0)], "the probe");
        assert_eq!(p.observe_arrivals(arrivals(4200, 0.8), ms(5250)), Some(1), "undone at the first read");
        let moves = run(&mut p, 6, 12, |_| lossy(0.0));
        assert_eq!(moves, vec![(11, 0)], "the next probe waits longer (1 s settle, then 4 s clean instead of 3)");
        for t in [11, 17, 23] {
            assert_eq!(p.observe_arrivals(arrivals(4200, 0.8), ms(t * 1000 + 250)), Some(1), "undone again");
            let moves = run(&mut p, t + 1, t + 7, |_| lossy(0.0));
            assert_eq!(moves, vec![(t + 6, 0)], "cheap failures back off to {FEEDBACK_MAX_HOLD:?} only");
        }

        let mut p = RungPolicy::new(3, 3, 0, s(0));
        p.observe_arrivals(arrivals(0, 1.0), ms(1500));
        let moves = run(&mut p, 2, 6, |_| lossy(0.0));
        assert_eq!(moves, vec![(5, 2)], "from sound only, a probe after the usual hold: feedback makes it cheap");
        assert_eq!(p.observe_arrivals(arrivals(22000, 0.5), ms(5250)), Some(3), "a link that cannot carry it says so at once");

        // The cap lifted: from sound only, each probe that holds for 2 s is followed by the next.
        let mut p = RungPolicy::new(3, 3, 0, s(0));
        p.observe_arrivals(arrivals(0, 1.0), ms(1500));
        let moves = run(&mut p, 2, 20, |_| lossy(0.0));
        assert_eq!(moves, vec![(5, 2), (7, 1), (9, 0)], "the top 7 s after the first clean second");
    }

    #[test]
    fn a_probe_from_sound_only_undone_by_a_report_is_tried_again_soon_with_feedback() {
        let mut p = RungPolicy::new(3, 3, 0, s(0));
        p.observe_arrivals(arrivals(0, 1.0), ms(1500));
        assert_eq!(run(&mut p, 2, 6, |_| lossy(0.0)), vec![(5, 2)], "the probe");
        let queued = Signals { loss: 0.0, rtt: Some(Duration::from_millis(2200)), silent: false };
        assert_eq!(p.observe(queued, s(7)), Some(3), "a round trip through a queue undoes it");
        // Its feedback is clear at once (sound only, link free): drained within the settle.
        for i in 0..4 {
            p.observe_arrivals(arrivals(0, 1.0), ms(7100 + i * 250));
        }
        let moves = run(&mut p, 8, 20, |_| lossy(0.0));
        assert_eq!(moves.first(), Some(&(12, 2)), "1 s settle, then the doubled hold of 4 s (not a 4 s settle first: 15 s): {moves:?}");
    }

    #[test]
    fn a_probe_is_on_trial_from_when_its_rung_is_sent() {
        let mut p = RungPolicy::new(3, 3, 0, s(0));
        p.observe_arrivals(arrivals(0, 1.0), ms(1500));
        assert_eq!(run(&mut p, 2, 6, |_| lossy(0.0)), vec![(5, 2)], "the probe from sound only");
        // Its encoder starts and its keyframe is awaited for three seconds.
        let mut moves = Vec::new();
        for t in 6..9 {
            p.not_sent_yet(s(t));
            moves.extend(p.observe(lossy(0.0), s(t)));
        }
        assert!(moves.is_empty(), "no verdict on a rung not sent: {moves:?}");
        assert_eq!(p.observe_arrivals(arrivals(22000, 0.5), ms(9250)), Some(3), "still on trial when it comes: undone");
    }

    #[test]
    fn a_rung_the_link_did_not_carry_is_probed_rarely_without_feedback() {
        let mut p = RungPolicy::new(2, 0, 0, s(0)).with_rates(vec![500, 120]);
        assert_eq!(p.observe(lossy(0.39), s(3)), Some(1), "down to 180p");
        let moves = run(&mut p, 4, 40, |_| lossy(0.0));
        assert_eq!(moves.first(), Some(&(3 + 2 + HOLD_FOR_A_RUNG_NOT_CARRIED.as_secs(), 0)), "one probe after the settle time and {HOLD_FOR_A_RUNG_NOT_CARRIED:?} of clean reports: {moves:?}");
        assert_eq!(moves.len(), 1, "the probe held: {moves:?}");
        assert_eq!(p.observe(lossy(0.39), s(40)), Some(1), "down again");
        assert_eq!(run(&mut p, 41, 60, |_| lossy(0.0)).first(), Some(&(40 + 2 + HOLD_FOR_A_RUNG_NOT_CARRIED.as_secs(), 0)));

        // Two moves down within seconds: the second is the first one's queue, not the link.
        let mut p = RungPolicy::new(3, 0, 0, s(0)).with_rates(vec![1500, 500, 120]);
        assert_eq!(p.observe(lossy(0.39), s(3)), Some(1), "720p: down to 360p");
        assert_eq!(p.observe(lossy(0.9), s(6)), Some(3), "and on, right after: sound only");
        let moves = run(&mut p, 7, 40, |_| lossy(0.0));
        assert_eq!(moves.first(), Some(&(6 + 2 + FIRST_HOLD_FROM_AUDIO.as_secs(), 2)), "180p probed after the usual hold: {moves:?}");

        // With feedback, probes are cheap: the usual hold.
        let mut p = RungPolicy::new(2, 0, 0, s(0)).with_rates(vec![500, 120]);
        p.observe_arrivals(arrivals(0, 1.0), ms(1500));
        assert_eq!(p.observe(lossy(0.39), s(3)), Some(1));
        let moves = run(&mut p, 4, 20, |_| lossy(0.0));
        assert_eq!(moves.first(), Some(&(3 + 2 + FIRST_HOLD.as_secs(), 0)), "{moves:?}");
    }

    #[test]
    fn a_very_bad_second_moves_to_the_rung_that_what_arrived_carries() {
        let rates = vec![500, 150];
        let mut p = RungPolicy::new(2, 0, 0, s(0)).with_rates(rates.clone());
        assert_eq!(p.observe(lossy(0.3), s(2)), Some(1), "570 kbit/s less 30 %: 180p (220) fits");
        let mut p = RungPolicy::new(2, 0, 0, s(0)).with_rates(rates.clone());
        assert_eq!(p.observe(lossy(0.7), s(2)), Some(2), "less 70 % (171): sound only");
        let mut p = RungPolicy::new(3, 0, 0, s(0)).with_rates(vec![1500, 500, 150]);
        assert_eq!(p.observe(lossy(0.3), s(2)), Some(1), "1570 less 30 % carries 360p");
        let mut p = RungPolicy::new(3, 0, 0, s(0));
        assert_eq!(p.observe(lossy(0.3), s(2)), Some(2), "rates unknown: two rungs");
    }

    #[test]
    fn a_full_link_moves_to_the_rung_that_what_arrives_carries() {
        // The top rung sends 1600 kbit/s with its sound; `kbps` of it arrive.
        let full = |kbps| Arrivals { delay_growth: ms(4), delivered: f64::from(kbps) / 1600.0, lost: 0.0, received_kbps: kbps };
        let verdict = |kbps: &[u32]| {
            let mut p = RungPolicy::new(3, 0, 0, s(0)).with_rates(vec![1500, 500, 150]);
            kbps.iter().enumerate().find_map(|(i, k)| p.observe_arrivals(full(*k), ms(2000 + i as u64 * 250)))
        };
        assert_eq!(verdict(&[95, 104]), Some(3), "100 kbit/s: sound only at once, not a rung every two seconds");
        assert_eq!(verdict(&[240, 262]), Some(2), "250 kbit/s: 180p (150 + sound)");
        assert_eq!(verdict(&[980, 1010]), Some(1), "1 Mbit/s: 360p");
        assert_eq!(verdict(&[1400, 1420]), Some(1), "at least one rung down");
        assert_eq!(verdict(&[60, 700]), Some(1), "the most a read of the queue saw: one short window does not drop the picture");
        let mut p = RungPolicy::new(3, 0, 0, s(0));
        let moved = [95, 104].iter().enumerate().find_map(|(i, k)| p.observe_arrivals(full(*k), ms(2000 + i as u64 * 250)));
        assert_eq!(moved, Some(1), "rates unknown: one rung");
        let mut p = RungPolicy::new(3, 1, 0, s(0)).with_rates(vec![1500, 500, 150]);
        assert_eq!(run(&mut p, 2, 6, |_| lossy(0.0)), vec![(5, 0)], "the probe");
        assert_eq!(p.observe_arrivals(full(100), ms(5250)), Some(1), "a failed probe goes back where it came from");

        // The first verdict came while the queue still delivered its burst: 360p. There, what
        // arrives stays far below what 360p needs: on to what fits, as soon as that is judged.
        let mut p = RungPolicy::new(3, 0, 0, s(0)).with_rates(vec![1500, 500, 150]);
        assert_eq!(p.observe_arrivals(full(640), ms(2000)), None);
        assert_eq!(p.observe_arrivals(full(640), ms(2250)), Some(1), "360p first");
        let overflow = |kbps| Arrivals { delay_growth: ms(0), delivered: 0.1, lost: 0.6, received_kbps: kbps };
        assert_eq!(p.observe_arrivals(overflow(70), ms(3250)), None, "one read is no verdict");
        assert_eq!(p.observe_arrivals(overflow(65), ms(3500)), Some(3), "two reads of 70 kbit/s on 360p: sound only");
        let mut p = RungPolicy::new(3, 0, 0, s(0)).with_rates(vec![1500, 500, 150]);
        assert_eq!(p.observe_arrivals(full(240), ms(2000)), None);
        assert_eq!(p.observe_arrivals(full(250), ms(2250)), Some(2), "180p");
        let moves: Vec<u64> = (13..30).filter(|i| p.observe_arrivals(overflow(240), ms(i * 250)).is_some()).collect();
        assert_eq!(moves, vec![25], "the old queue overflows while it drains behind a rung that fits: no move for {OLD_QUEUE_DRAINS:?}, then a verdict as usual");
        let mut p = RungPolicy::new(3, 1, 0, s(0)).with_rates(vec![1500, 500, 150]);
        let still = Arrivals { delay_growth: ms(2), delivered: 0.85, lost: 0.0, received_kbps: 90 };
        let first = (8..40).find_map(|i| p.observe_arrivals(still, ms(i * 250)));
        assert_eq!(first, Some(2), "a still picture sends little: the usual queue verdict, one rung down, not to what arrived of a rung that was not filled");
    }

    #[test]
    fn a_link_far_short_of_the_rung_it_went_back_to_moves_on_at_once() {
        // 180p fitted a link, a probe to 360p was undone; meanwhile the link dropped to 100
        // kbit/s. What arrives is far short of 180p's 220 even while the probe's queue drains.
        let full = |kbps| Arrivals { delay_growth: ms(20), delivered: f64::from(kbps) / 570.0, lost: 0.0, received_kbps: kbps };
        let mut p = RungPolicy::new(3, 2, 0, s(0)).with_rates(vec![1500, 500, 150]);
        assert_eq!(run(&mut p, 2, 6, |_| lossy(0.0)), vec![(5, 1)], "the probe");
        assert_eq!(p.observe_arrivals(full(170), ms(5250)), Some(2), "undone");
        assert_eq!(p.observe_arrivals(full(95), ms(5500)), None, "one read is no verdict");
        assert_eq!(p.observe_arrivals(full(90), ms(5750)), Some(3), "two: sound only, without waiting out the settle time");

        // The same reads of a link that carries 180p: its queue drains, no move.
        let mut p = RungPolicy::new(3, 2, 0, s(0)).with_rates(vec![1500, 500, 150]);
        assert_eq!(run(&mut p, 2, 6, |_| lossy(0.0)), vec![(5, 1)], "the probe");
        assert_eq!(p.observe_arrivals(full(240), ms(5250)), Some(2), "undone");
        for t in (5500..8000).step_by(250) {
            assert_eq!(p.observe_arrivals(full(170), ms(t)), None, "170 of 220 while the probe's queue drains: no verdict at {t}");
        }
    }

    #[test]
    fn a_failed_probe_goes_back_one_rung_however_bad() {
        let mut p = RungPolicy::new(3, 1, 0, s(0));
        assert_eq!(run(&mut p, 2, 6, |_| lossy(0.0)), vec![(5, 0)], "the probe");
        assert_eq!(p.observe(lossy(0.4), s(6)), None, "the first report after a probe began before it");
        assert_eq!(p.observe(lossy(0.4), s(7)), Some(1), "back to the rung that held, not below it");
    }

    #[test]
    fn a_probe_is_undone_at_the_first_sign_of_trouble() {
        let mut p = RungPolicy::new(3, 1, 0, s(0));
        let moves = run(&mut p, 2, 6, |_| lossy(0.0));
        assert_eq!(moves, vec![(5, 0)], "the probe");
        assert_eq!(p.observe(lossy(0.06), s(6)), None, "the first report after a probe began before it");
        assert_eq!(p.observe(lossy(0.06), s(7)), Some(1), "6 % loss during a probe is enough");
        let mut p = RungPolicy::new(3, 1, 0, s(0));
        run(&mut p, 2, 6, |_| lossy(0.0));
        let queue = Signals { loss: 0.0, rtt: Some(Duration::from_millis(120)), silent: false };
        assert_eq!(p.observe(queue, s(6)), None, "the first report after a probe began before it");
        assert_eq!(p.observe(queue, s(7)), Some(1), "and so is a queue of 100 ms");
    }

    #[test]
    fn the_queue_left_behind_by_a_higher_rung_drains_without_another_move() {
        let mut p = RungPolicy::new(3, 0, 0, s(0));
        let rtt = |ms| Signals { loss: 0.0, rtt: Some(Duration::from_millis(ms)), silent: false };
        p.observe(rtt(2), s(2));
        assert_eq!(p.observe(rtt(450), s(3)), Some(1));
        assert_eq!(p.observe(rtt(500), s(5)), None, "still the old queue");
        assert_eq!(p.observe(rtt(300), s(6)), None, "draining");
        assert_eq!(p.observe(rtt(3), s(7)), None, "drained");
        assert_eq!(p.observe(rtt(400), s(8)), Some(2), "a new queue after the drain counts again");
        let mut p = RungPolicy::new(3, 0, 0, s(0));
        p.observe(rtt(2), s(2));
        assert_eq!(p.observe(rtt(450), s(3)), Some(1));
        assert_eq!(p.observe(rtt(700), s(5)), None, "still growing for a while: the old rung feeds until the new keyframe");
        assert_eq!(p.observe(Signals { loss: 0.3, rtt: Some(Duration::from_millis(700)), silent: false }, s(6)), Some(3), "but loss counts");
    }

    #[test]
    fn feedback_that_arrives_in_step_ends_the_drain() {
        let clear = arrivals(0, 1.0);
        let probe_after_move_down = |clear_reads: bool| {
            let mut p = RungPolicy::new(3, 0, 0, s(0));
            let full = arrivals(4500, 0.79);
            assert_eq!(p.observe_arrivals(full, ms(2000)), None);
            assert_eq!(p.observe_arrivals(full, ms(2250)), Some(1), "down");
            (3..30).find(|t| {
                if clear_reads {
                    for q in 0..4 {
                        p.observe_arrivals(clear, ms(t * 1000 + q * 250));
                    }
                }
                // (Receiver reports without a round trip, as many are.)
                p.observe(Signals { rtt: None, ..lossy(0.0) }, s(*t)).is_some()
            })
        };
        let (with, without) = (probe_after_move_down(true), probe_after_move_down(false));
        assert_eq!(without, Some(11), "round trips unknown: the drain ends by its clock (5 s), then 3 s clean");
        assert!(with.is_some_and(|t| (7..=8).contains(&t)), "feedback in step ends it: {with:?}");
    }

    #[test]
    fn the_first_round_trip_after_a_move_down_is_the_old_queue() {
        let mut p = RungPolicy::new(3, 0, 0, s(0));
        let rtt = |ms| Signals { loss: 0.0, rtt: Some(Duration::from_millis(ms)), silent: false };
        let none = Signals { loss: 0.0, rtt: None, silent: false };
        p.observe(rtt(2), s(2));
        assert_eq!(p.observe(lossy(0.7), s(3)), Some(2), "down two rungs");
        for t in 4..8 {
            assert_eq!(p.observe(none, s(t)), None, "reports without a round trip");
        }
        assert_eq!(p.observe(rtt(2600), s(8)), None, "the first round trip after the drain's 5 s: still the old queue");
        assert_eq!(p.observe(rtt(1500), s(9)), None, "falling: draining");
        assert_eq!(p.observe(rtt(400), s(10)), None);
        assert_eq!(p.observe(rtt(3), s(11)), None, "drained");
        assert_eq!(p.observe(rtt(500), s(12)), Some(3), "a new queue counts");
    }

    #[test]
    fn a_receiver_whose_reports_stop_is_in_trouble() {
        let quiet = Signals { silent: true, ..lossy(0.0) };
        let mut p = RungPolicy::new(3, 1, 0, s(0));
        assert_eq!(run(&mut p, 2, 6, |_| lossy(0.0)), vec![(5, 0)], "a probe");
        let moves = run(&mut p, 6, 12, |_| quiet);
        assert_eq!(moves.first(), Some(&(7, 1)), "reports stop during the probe: undone (after 2 s)");
        // A standard player reports every 2.5-7.5 s: that is no silence.
        let mut p = RungPolicy::new(3, 0, 0, s(0));
        let moves = run(&mut p, 1, 60, |t| if [7, 12, 19, 24, 31, 38, 44, 50, 57].contains(&t) { lossy(0.0) } else { quiet });
        assert!(moves.is_empty(), "{moves:?}");
        let mut p = RungPolicy::new(3, 0, 0, s(0));
        p.observe_arrivals(Arrivals { delay_growth: Duration::ZERO, delivered: 1.0, lost: 0.0, received_kbps: 0 }, s(1));
        assert!(run(&mut p, 2, 30, |_| quiet).is_empty(), "feedback says more than reports");
    }

    #[test]
    fn a_queue_that_drains_slowly_is_left_to_drain() {
        // The lower rung only just fits: the modem's queue shrinks by 55 ms a second.
        let mut p = RungPolicy::new(3, 0, 0, s(0));
        let rtt = |ms| Signals { loss: 0.0, rtt: Some(Duration::from_millis(ms)), silent: false };
        p.observe(rtt(2), s(2));
        assert_eq!(p.observe(rtt(850), s(3)), Some(1));
        let moves = run(&mut p, 4, 20, |t| rtt(860u64.saturating_sub(55 * (t - 4)).max(20)));
        assert!(moves.is_empty(), "a shrinking queue is no reason to go lower: {moves:?}");
        let moves = run(&mut p, 20, 24, |t| rtt(400 + 100 * (t - 20)));
        assert_eq!(moves.first().map(|m| m.1), Some(2), "one that grows again is");
        let mut p = RungPolicy::new(3, 0, 0, s(0));
        p.observe(rtt(2), s(2));
        assert_eq!(p.observe(rtt(850), s(3)), Some(1));
        let moves = run(&mut p, 4, 30, |_| rtt(700));
        let first = moves.first().map(|m| m.0 - 3);
        assert!(first.is_some_and(|t| t >= DRAIN_MAX.as_secs() && t <= (DRAIN_MAX + DRAIN_STEP).as_secs()), "a queue that never drains counts after {DRAIN_MAX:?}: {moves:?}");
    }

    #[test]
    fn a_growing_queue_counts_as_trouble_before_loss_does() {
        let mut p = RungPolicy::new(3, 0, 0, s(0));
        let rtt = |ms| Signals { loss: 0.0, rtt: Some(Duration::from_millis(ms)), silent: false };
        assert_eq!(p.observe(rtt(30), s(2)), None);
        assert_eq!(p.observe(rtt(250), s(3)), None, "one second of a round trip 220 ms above the best");
        assert_eq!(p.observe(rtt(300), s(4)), Some(1), "two seconds");
        let mut p = RungPolicy::new(3, 0, 0, s(0));
        assert_eq!(p.observe(rtt(30), s(2)), None);
        assert_eq!(p.observe(rtt(400), s(3)), Some(1), "a queue of a third of a second: at once");
    }

    #[test]
    fn noisy_signals_do_not_make_it_flap() {
        let mut p = RungPolicy::new(3, 0, 0, s(0));
        // Loss between clean and bad, and single bad seconds now and then.
        let moves = run(&mut p, 2, 300, |t| lossy(if t % 7 == 0 { 0.09 } else { 0.03 + (t % 3) as f64 * 0.01 }));
        assert!(moves.is_empty(), "{moves:?}");
    }

    #[test]
    fn the_receivers_own_cap_is_a_ceiling() {
        let mut p = RungPolicy::new(3, 0, 0, s(0));
        assert_eq!(p.set_ceiling(2, s(1)), Some(2), "data saver: down to the lowest rung at once");
        assert!(run(&mut p, 3, 60, |_| lossy(0.0)).is_empty(), "and never above it");
        assert_eq!(p.set_ceiling(3, s(60)), Some(3), "audio only");
        assert_eq!(p.set_ceiling(0, s(61)), Some(0), "automatic: straight back to the top, as a probe");
        assert_eq!(run(&mut p, 63, 69, |_| lossy(0.5)), vec![(63, 1), (67, 3)], "which the link may undo (a probe one rung, then as bad as it is)");
    }
}
