//! A queue that fills slowly: a link only a little slower than what a receiver is sent (a
//! 500 kbit/s line under a 500 kbit/s picture and its sound) builds its queue at a tenth of
//! the rate. Read by read (a quarter second of feedback each) that hides in the noise: one
//! window spreads out, the next catches up on a burst, and nothing is lost until the queue
//! overflows seconds later, when every frame loses packets and the picture freezes. Summed
//! over a second and a half it is plain: of what was sent, a tenth neither arrived nor was
//! lost. It is still on its way, in a queue.

use std::collections::VecDeque;

/// Feedback reads summed (about a second and a half at four a second).
const READS: usize = 6;
/// The share of what was sent over those reads that is still on its way: a queue growing by
/// this much of the rate (150 ms of queue in a second and a half)...
const BACKLOG_SHARE: f64 = 0.1;
/// ...in this many sums in a row (a single late burst, as on Wi-Fi, spreads one sum only).
const SUMS_IN_A_ROW: u32 = 2;

/// The last few reads of one receiver's transport-wide feedback, summed.
#[derive(Clone, Debug, Default)]
pub struct Backlog {
    /// Received and sent kbit/s and the share lost, per read (newest last).
    reads: VecDeque<(f64, f64, f64)>,
    over: u32,
}

/// What the sum of the last reads showed.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sum {
    /// Mean kbit/s sent and arrived over the reads.
    pub sent_kbps: f64,
    pub received_kbps: f64,
    /// Whether a queue has been filling over the last sums.
    pub filling: bool,
}

impl Backlog {
    /// Adds one read (`received_kbps` arrived of `sent_kbps`, `lost` of the packets lost);
    /// the sum once enough reads are in.
    pub fn read(&mut self, received_kbps: f64, sent_kbps: f64, lost: f64) -> Option<Sum> {
        if sent_kbps <= 0.0 {
            return None;
        }
        if self.reads.len() == READS {
            self.reads.pop_front();
        }
        self.reads.push_back((received_kbps, sent_kbps, lost));
        if self.reads.len() < READS {
            return None;
        }
        let n = READS as f64;
        let received: f64 = self.reads.iter().map(|r| r.0).sum();
        let sent: f64 = self.reads.iter().map(|r| r.1).sum();
        let lost = self.reads.iter().map(|r| r.2).sum::<f64>() / n;
        // What was lost did not arrive either: only the rest is in a queue.
        let on_its_way = 1.0 - received / sent - lost;
        self.over = if on_its_way >= BACKLOG_SHARE { self.over + 1 } else { 0 };
        Some(Sum { sent_kbps: sent / n, received_kbps: received / n, filling: self.over >= SUMS_IN_A_ROW })
    }

    /// Forgets every read (the receiver moved: what it gets now is another stream).
    pub fn clear(&mut self) {
        self.reads.clear();
        self.over = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `(received, delivered, lost)` reads; the index of each read whose sum says filling.
    fn filling(reads: &[(f64, f64, f64)]) -> Vec<usize> {
        let mut b = Backlog::default();
        reads.iter().enumerate().filter(|(_, (r, d, l))| b.read(*r, r / d, *l).is_some_and(|s| s.filling)).map(|(i, _)| i).collect()
    }

    #[test]
    fn a_link_a_tenth_too_slow_is_found_in_under_two_seconds() {
        // Read as they came from a 500 kbit/s link under a 500 kbit/s rung and its sound: no
        // read alone shows a queue (some even arrive faster than sent, catching up).
        let seen = [(444.0, 0.88), (442.0, 0.89), (462.0, 0.45), (438.0, 1.19), (431.0, 1.59), (434.0, 1.30), (453.0, 0.70), (448.0, 0.95), (450.0, 0.86)];
        let reads: Vec<_> = seen.iter().map(|(r, d)| (*r, *d, 0.0)).collect();
        assert_eq!(filling(&reads).first(), Some(&6), "the second sum of six reads: 1.75 s");
    }

    #[test]
    fn loss_jitter_and_a_free_link_are_no_queue() {
        let free: Vec<_> = (0..40).map(|i| (500.0, if i % 2 == 0 { 0.97 } else { 1.03 }, 0.0)).collect();
        assert!(filling(&free).is_empty(), "a free link");
        let random: Vec<_> = (0..40).map(|i| (450.0, if i % 3 == 0 { 0.85 } else { 0.92 }, if i % 3 == 0 { 0.15 } else { 0.08 })).collect();
        assert!(filling(&random).is_empty(), "10 % random loss: what did not arrive was lost");
        let mut burst: Vec<_> = (0..20).map(|_| (500.0, 1.0, 0.0)).collect();
        burst[10] = (200.0, 0.4, 0.0);
        burst[11] = (800.0, 1.6, 0.0);
        assert!(filling(&burst).is_empty(), "one late burst that catches up");
    }

    #[test]
    fn clearing_starts_the_sum_again() {
        let mut b = Backlog::default();
        for _ in 0..7 {
            b.read(400.0, 500.0, 0.0);
        }
        b.clear();
        assert_eq!(b.read(400.0, 500.0, 0.0), None, "not enough reads since");
    }
}
