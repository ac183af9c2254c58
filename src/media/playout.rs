//! One voice's playout queue in the mixer. The mixer takes 10 ms of every voice on its own
//! clock; what arrives comes in bursts. A voice on a clean link arrives evenly, and 20 ms of
//! queue absorbs its jitter. A voice on a lossy uplink does not: the receiving jitterbuffer
//! holds every packet behind a lost one until the lost one's deadline (its latency, 60 ms by
//! default), then lets them out at once, with the lost one rebuilt (Opus FEC) or concealed.
//! With 20 ms queued, each loss then left the voice silent for about 40 ms: 5 % loss cost 7 %
//! of the sound. So each voice's queue grows by itself after an underrun (up to 120 ms) and
//! its target comes down again after a calm spell: a clean voice keeps its 20 ms, a lossy one
//! plays on. A voice keeps the delay it has until it runs dry or overflows (catching up by
//! leaving out samples shifts the pitch, see `pop_frame`).

use std::collections::VecDeque;

use super::audio_mix::FRAME_SAMPLES;

/// Queued before a voice starts (or starts again): 20 ms.
const START: usize = 2 * FRAME_SAMPLES;
/// Each underrun raises that by 20 ms...
const STEP: usize = 2 * FRAME_SAMPLES;
/// ...up to 120 ms: more than a jitterbuffer's 60 ms hold after a loss plus the packet and
/// the tick it lands in (at 80 ms, 10 % loss still ran a voice dry now and then: 97.9-99.9 %
/// of a tone heard; at 120 ms 98.5-99.8 %).
const MOST: usize = 12 * FRAME_SAMPLES;
/// Frames (10 ms) without an underrun after which the target comes down by one frame (10 s),
/// if the queue never came within a frame of running dry meanwhile (a voice whose losses
/// need the whole queue keeps it).
const CALM_FRAMES: u32 = 1000;
/// Queued beyond the target by more than this (a sender's clock far off, a burst after a
/// stall), the excess is dropped at once: it would only add delay.
const OVERFLOW: usize = 10 * FRAME_SAMPLES;

#[derive(Debug)]
pub struct Playout {
    samples: VecDeque<i16>,
    primed: bool,
    target: usize,
    calm: u32,
    /// The least that stayed queued after a frame, over the calm spell.
    low: usize,
    /// Times the voice ran dry while playing.
    underruns: u64,
    /// Samples that came, and that were dropped as excess (for the debug log).
    pushed: u64,
    dropped: u64,
}

impl Default for Playout {
    fn default() -> Self {
        Self { samples: VecDeque::new(), primed: false, target: START, calm: 0, low: usize::MAX, underruns: 0, pushed: 0, dropped: 0 }
    }
}

impl Playout {
    pub fn push(&mut self, samples: impl IntoIterator<Item = i16>) {
        let before = self.samples.len();
        self.samples.extend(samples);
        self.pushed += (self.samples.len() - before) as u64;
        if self.samples.len() > self.target + OVERFLOW {
            let excess = self.samples.len() - self.target;
            self.samples.drain(..excess);
            self.dropped += excess as u64;
        }
    }

    /// For the debug log: (samples come, dropped as excess, queued now, target), in ms.
    pub fn figures(&self) -> (u64, u64, usize, usize) {
        let ms = |n: usize| n / (FRAME_SAMPLES / 10);
        (self.pushed / (FRAME_SAMPLES as u64 / 10), self.dropped / (FRAME_SAMPLES as u64 / 10), ms(self.samples.len()), ms(self.target))
    }

    /// The next frame into `frame`; `false` while the voice (re)fills after running dry.
    pub fn pop_frame(&mut self, frame: &mut [i16; FRAME_SAMPLES]) -> bool {
        if !self.primed {
            if self.samples.len() < self.target {
                return false;
            }
            self.primed = true;
        }
        if self.samples.len() < FRAME_SAMPLES {
            self.primed = false;
            self.underruns += 1;
            self.target = (self.target + STEP).min(MOST);
            self.calm = 0;
            self.low = usize::MAX;
            return false;
        }
        self.calm += 1;
        if self.calm >= CALM_FRAMES {
            if self.low >= FRAME_SAMPLES && self.target > START {
                self.target -= FRAME_SAMPLES;
            }
            self.calm = 0;
            self.low = usize::MAX;
        }
        // (Catching up by leaving out one sample in 200 was tried: it shifts every tone by
        // 0.5 %, which the tests' 2 Hz analysis of recordings and streams caught. A voice keeps
        // the delay it has until it runs dry or overflows.)
        for (dst, src) in frame.iter_mut().zip(self.samples.drain(..FRAME_SAMPLES)) {
            *dst = src;
        }
        self.low = self.low.min(self.samples.len());
        true
    }

    /// How many times the voice ran dry.
    pub fn underruns(&self) -> u64 {
        self.underruns
    }

    /// Queued now (samples).
    #[cfg(test)]
    fn queued(&self) -> usize {
        self.samples.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Pushes 20 ms packets as a jitterbuffer lets them out: on time, except that each lost
    /// one (every `loss_every`-th; rebuilt or concealed) and the two after it come out
    /// together when the last of them is due (the jitterbuffer's hold). Ticks the
    /// playout every 10 ms for `ms`; how many ticks had nothing to play once it started.
    fn play(p: &mut Playout, ms: usize, loss_every: usize) -> usize {
        let packet = 2 * FRAME_SAMPLES;
        let mut held = 0;
        let mut silent = 0;
        let mut started = false;
        let mut frame = [0i16; FRAME_SAMPLES];
        for tick in 0..ms / 10 {
            if tick % 2 == 0 {
                let n = tick / 2;
                if loss_every > 0 && n % loss_every == 0 && n > 0 {
                    held = 3;
                }
                if held > 0 {
                    held -= 1;
                    if held == 0 {
                        p.push(std::iter::repeat_n(1, 3 * packet));
                    }
                } else {
                    p.push(std::iter::repeat_n(1, packet));
                }
            }
            let played = p.pop_frame(&mut frame);
            started |= played;
            if started && !played {
                silent += 1;
            }
        }
        silent
    }

    #[test]
    fn a_clean_voice_keeps_twenty_milliseconds() {
        let mut p = Playout::default();
        assert_eq!(play(&mut p, 10_000, 0), 0);
        assert!(p.queued() <= START + FRAME_SAMPLES, "queued {}", p.queued());
        assert_eq!(p.underruns(), 0);
    }

    #[test]
    fn a_lossy_voice_grows_its_queue_and_then_plays_on() {
        let mut p = Playout::default();
        // 5 % loss: one packet in twenty, each holding the next ones back 60 ms.
        let first = play(&mut p, 2_000, 20);
        let later = play(&mut p, 20_000, 20);
        assert!(p.underruns() <= 4, "it stops running dry after a few: {}", p.underruns());
        assert_eq!(later, 0, "then nothing is missing (the first 2 s: {first} silent ticks)");
    }

    #[test]
    fn a_calm_voice_comes_back_to_twenty_milliseconds() {
        let mut p = Playout::default();
        play(&mut p, 4_000, 20);
        assert!(p.target > START);
        play(&mut p, 120_000, 0);
        assert_eq!(p.target, START, "after a minute of calm");
    }

    #[test]
    fn a_voice_far_ahead_drops_its_excess() {
        let mut p = Playout::default();
        p.push(std::iter::repeat_n(1, 50 * FRAME_SAMPLES));
        assert_eq!(p.queued(), START);
    }
}
