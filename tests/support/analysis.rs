//! What a receiver got: colour coverage of frames and tone levels of audio.

use super::client::{Rgb, VIEW_H, VIEW_W};

/// Fraction of the frame's pixels within `tolerance` (per channel) of `colour`.
pub fn coverage(frame: &[u8], colour: Rgb, tolerance: u8) -> f64 {
    let close = |a: u8, b: u8| a.abs_diff(b) <= tolerance;
    let hits = frame
        .chunks_exact(3)
        .filter(|p| close(p[0], colour.0) && close(p[1], colour.1) && close(p[2], colour.2))
        .count();
    hits as f64 / (VIEW_W * VIEW_H) as f64
}

/// Colour tolerance per channel after VP8 and two colour-space conversions.
pub const TOLERANCE: u8 = 40;
/// A publisher's tile is "there" when its colour covers at least this share of the picture.
pub const PRESENT: f64 = 0.04;
/// ...and "gone" below this.
pub const ABSENT: f64 = 0.005;

/// Amplitude of the `freq` component of `samples` (48 kHz), by the Goertzel algorithm.
/// A full-scale sine gives 1.0.
pub fn tone_level(samples: &[f32], freq: f64) -> f64 {
    let n = samples.len() as f64;
    let w = 2.0 * std::f64::consts::PI * freq / 48_000.0;
    let coeff = 2.0 * w.cos();
    let (mut s1, mut s2) = (0.0f64, 0.0f64);
    for &x in samples {
        let s0 = f64::from(x) + coeff * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    let power = s1 * s1 + s2 * s2 - coeff * s1 * s2;
    2.0 * power.max(0.0).sqrt() / n
}

/// A tone sent at volume 0.2 is "heard" above this level and "not heard" below [`TONE_ABSENT`].
pub const TONE_PRESENT: f64 = 0.05;
pub const TONE_ABSENT: f64 = 0.01;

/// Half a second of audio: 2 Hz resolution, enough to separate the test tones.
pub const WINDOW: usize = 24_000;

/// One line describing colours and tones, for failure messages.
pub fn describe(frame: Option<&[u8]>, audio: Option<&[f32]>, colours: &[Rgb], tones: &[u32]) -> String {
    let c: Vec<String> = colours
        .iter()
        .map(|c| format!("{c:?}={:.3}", frame.map(|f| coverage(f, *c, TOLERANCE)).unwrap_or(-1.0)))
        .collect();
    let t: Vec<String> = tones
        .iter()
        .map(|t| format!("{t}Hz={:.3}", audio.map(|a| tone_level(a, f64::from(*t))).unwrap_or(-1.0)))
        .collect();
    format!("colours [{}] tones [{}]", c.join(" "), t.join(" "))
}

