//! Which rung each viewer is on: its own cap, and what its link shows (read once a second
//! from its webrtcbin and judged by [`crate::media::rate`]); moving it between rungs.

use super::super::ladder::{self, ReceiverCap, RungIndex};
use super::super::link_stats::{LinkCounts, LinkReader};
use super::super::rate::{Arrivals, Signals};
use super::super::retransmit::RetransmitBudget;
use super::{Kind, RoomTask, Session, VideoOut};
use crate::ids::SessionId;

/// How much of a viewer's smoothed loss is the past (per second): about a 10 s memory.
const LOSS_SMOOTHING: f64 = 0.9;
/// Reports on the old rung's packets are set aside after a move down for at most this long.
const OLD_RUNG_REPORTS: std::time::Duration = std::time::Duration::from_secs(6);
/// The most redundancy the Opus encoders are asked for (percent of expected loss).
const MAX_FEC_PERCENT: f64 = 25.0;

/// The policy's index for a rung: `n` (the number of video rungs) means audio only.
pub(super) fn index(rung: RungIndex, n: usize) -> usize {
    rung.map_or(n, |r| r.min(n))
}

fn rung_of(index: usize, n: usize) -> RungIndex {
    (index < n).then_some(index)
}

impl RoomTask {
    /// A viewer's new cap: it goes to the highest rung the cap allows (and the rate policy
    /// keeps it at or below that from now on).
    pub(super) fn set_cap(&mut self, id: SessionId, cap: ReceiverCap) {
        let now = self.epoch.elapsed();
        let Some(Session { kind: Kind::Viewer { video: Some(v), cap: current, .. }, .. }) = self.sessions.get_mut(&id) else { return };
        *current = cap;
        let n = self.pipe.rungs(v.codec).len();
        let ceiling = index(ladder::pick(self.pipe.rungs(v.codec), cap), n);
        if let Some(target) = v.policy.set_ceiling(ceiling, now) {
            self.move_viewer(id, rung_of(target, n));
        }
    }

    /// Reads every connected viewer's receiver reports (once a second) and asks the encoder
    /// of a rung a viewer still waits to move to for another keyframe (the first may have
    /// been lost to the moment, or folded into the encoder's throttle).
    pub(super) fn poll_links(&mut self) {
        self.protect_audio();
        let mut reports = Vec::new();
        for (id, s) in &mut self.sessions {
            let Kind::Viewer { video: Some(v), .. } = &mut s.kind else { continue };
            if let (Some(rung), true) = (v.rung, v.link.is_pending()) {
                v.policy.not_sent_yet(self.epoch.elapsed());
                self.pipe.force_keyframe(v.codec, rung);
                // The old rung still feeds it until the new one's keyframe.
                if let Some((_, since)) = v.old_rung_until {
                    v.old_rung_until = Some((v.link.sent().1, since));
                }
            }
            let Some(webrtc) = &s.webrtc else { continue };
            if s.connected && !v.retransmit_looked {
                v.retransmit_looked = true;
                v.retransmit = RetransmitBudget::attach(webrtc, video_kbps(self.pipe.rungs(v.codec), v.rung));
            }
            if let Some(reader) = reader_of(v, webrtc, s.connected) {
                reports.push((*id, reader.counts()));
            }
        }
        for (id, counts) in reports {
            self.on_link(id, counts);
        }
    }

    /// Reads every viewer's transport-wide feedback (a few times a second); a queue filling
    /// up on the way moves the viewer down long before its receiver reports could.
    pub(super) fn read_feedback(&mut self) {
        let now = self.epoch.elapsed();
        let mut moves = Vec::new();
        for (id, s) in &mut self.sessions {
            let Kind::Viewer { video: Some(v), .. } = &mut s.kind else { continue };
            let Some(webrtc) = &s.webrtc else { continue };
            let Some(f) = reader_of(v, webrtc, s.connected).and_then(|r| r.feedback()) else { continue };
            if f.sent_bps == 0 {
                continue;
            }
            let arrivals = Arrivals { delay_growth: f.delay_growth, delivered: f.received_bps as f64 / f.sent_bps as f64, lost: f.loss, received_kbps: (f.received_bps / 1000) as u32 };
            tracing::trace!(room = %self.room, session = %s.name, ?arrivals, "viewer feedback");
            if let Some(target) = v.policy.observe_arrivals(arrivals, now) {
                tracing::debug!(room = %self.room, session = %s.name, ?arrivals, "feedback says: a queue fills, one rung down");
                moves.push((*id, rung_of(target, self.pipe.rungs(v.codec).len())));
            }
        }
        for (id, target) in moves {
            self.move_viewer(id, target);
        }
    }

    /// What a viewer's link showed in the last second; it moves if the policy says so.
    fn on_link(&mut self, id: SessionId, counts: LinkCounts) {
        let now = self.epoch.elapsed();
        let Some(Session { kind: Kind::Viewer { video: Some(v), .. }, name, .. }) = self.sessions.get_mut(&id) else { return };
        let Some(earlier) = v.counts.replace(counts) else { return };
        let silent = counts.expected == earlier.expected && counts.streams == earlier.streams;
        let mut signals = Signals { loss: counts.loss_since(&earlier), rtt: counts.rtt, silent };
        if let Some((last_old, since)) = v.old_rung_until {
            let (ssrc, _) = v.link.sent();
            let reported = v.reader.as_ref().and_then(|r| r.reported_up_to(ssrc));
            let past = reported.is_some_and(|r| r.wrapping_sub(last_old) as i16 > 0);
            let expired = now.saturating_sub(since) >= OLD_RUNG_REPORTS;
            if past || expired {
                v.old_rung_until = None;
            }
            // What the old rung lost is no reason to leave the new one (also in the interval
            // whose report first reaches past it: it began on the old rung).
            if !expired {
                signals.loss = 0.0;
            }
        }
        v.loss = LOSS_SMOOTHING * v.loss + (1.0 - LOSS_SMOOTHING) * signals.loss;
        tracing::trace!(room = %self.room, session = %name, loss = signals.loss, rtt = ?signals.rtt, "viewer link");
        let n = self.pipe.rungs(v.codec).len();
        if let Some(target) = v.policy.observe(signals, now) {
            tracing::debug!(room = %self.room, session = %name, loss = signals.loss, rtt = ?signals.rtt, "link says: another rung");
            self.move_viewer(id, rung_of(target, n));
        }
    }

    /// Audio first: the Opus encoders add as much in-band redundancy as the worst receiver's
    /// link loses (rounded to 5 %, at most 25 %), so its speech survives what its video does not.
    fn protect_audio(&mut self) {
        let worst = self
            .sessions
            .values()
            .filter_map(|s| match &s.kind {
                Kind::Viewer { video: Some(v), .. } => Some(v.loss),
                _ => None,
            })
            .fold(0.0f64, f64::max);
        let percent = ((worst * 100.0 / 5.0).round() * 5.0).min(MAX_FEC_PERCENT) as i32;
        self.pipe.expect_audio_loss(percent);
    }

    /// Moves a viewer to `target` (audio only for `None`) at the new rung's next keyframe.
    fn move_viewer(&mut self, id: SessionId, target: RungIndex) {
        let Some(Session { kind: Kind::Viewer { video: Some(v), owner, .. }, name, .. }) = self.sessions.get_mut(&id) else { return };
        if target == v.rung {
            return;
        }
        let moved = match target {
            Some(rung) => self.pipe.video_tee(v.codec, rung).and_then(|tee| v.link.move_at_keyframe(&tee)),
            None => {
                v.link.detach();
                Ok(())
            }
        };
        if let Err(e) = moved {
            // The new rung's tee was counted: give it back; the viewer keeps what it had.
            if let Some(rung) = target {
                self.pipe.release_video(v.codec, rung);
            }
            tracing::warn!(room = %self.room, session = %name, error = %e, "could not move a viewer to another rung");
            return;
        }
        if let Some(old) = v.rung {
            self.pipe.release_video(v.codec, old);
        }
        let down = target.is_none_or(|t| v.rung.is_some_and(|o| t > o));
        // Reports after a move down still count the old rung's losses; so do the first after
        // sound only: the receiver counts what the queue dropped of the picture before only
        // when the picture comes again (a free link then read as 15 % loss and undid the probe).
        let from_sound_only = v.rung.is_none();
        v.old_rung_until = (down || from_sound_only).then(|| (v.link.sent().1, self.epoch.elapsed()));
        let codec = v.codec;
        if let Some(rung) = target {
            self.pipe.force_keyframe(codec, rung);
        }
        let rungs = self.pipe.rungs(codec);
        if let Some(budget) = &v.retransmit {
            budget.set_video_kbps(video_kbps(rungs, target));
        }
        let refused = v.retransmit.as_ref().map(|b| b.refused());
        let label = |r: RungIndex| r.and_then(|i| rungs.get(i)).map_or("audio only".to_string(), |r| r.name.clone());
        tracing::debug!(room = %self.room, session = %name, from = %label(v.rung), to = %label(target), ?refused, "viewer changed rung");
        v.rung = target;
        if let Some(participant) = *owner {
            // The participant list says who gets less than the full picture.
            let rung = match target {
                Some(0) => None,
                Some(i) => Some(rungs.get(i).map_or_else(|| "low".to_string(), |r| r.name.clone())),
                None => Some("audio".to_string()),
            };
            let _ = self.out.send(super::MediaEvent::Receiving { participant, rung });
        }
        if let (Some(rung), true) = (target, down) {
            self.keyframes_later(codec, rung, &super::KEYFRAMES_AFTER_MOVE_DOWN);
        }
    }
}

/// A viewer's video bitrate on `rung` (0 for sound only; a profile without a ladder counts as
/// its usual top rate).
fn video_kbps(rungs: &[ladder::LiveRung], rung: RungIndex) -> u32 {
    const UNSTATED_KBPS: u32 = 1500;
    rung.and_then(|i| rungs.get(i)).map_or(0, |r| r.kbps.unwrap_or(UNSTATED_KBPS))
}

/// The viewer's link reader, found once its session is connected.
fn reader_of<'a>(v: &'a mut VideoOut, webrtc: &gst::Element, connected: bool) -> Option<&'a mut LinkReader> {
    if v.reader.is_none() && connected {
        v.reader = LinkReader::find(webrtc);
    }
    v.reader.as_mut()
}

/// A new viewer's picture, starting on `rung` (its cap's highest).
pub(super) fn video_out(link: super::TeeLink, codec: crate::profiles::VideoCodec, rung: RungIndex, rungs: &[ladder::LiveRung], now: std::time::Duration) -> VideoOut {
    let rates: Option<Vec<u32>> = rungs.iter().map(|r| r.kbps).collect();
    let rungs = rungs.len();
    let start = index(rung, rungs);
    VideoOut { link, codec, rung, policy: super::super::rate::RungPolicy::new(rungs, start, start, now).with_rates(rates.unwrap_or_default()), counts: None, reader: None, old_rung_until: None, loss: 0.0, retransmit: None, retransmit_looked: false }
}
