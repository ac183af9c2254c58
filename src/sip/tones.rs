//! What a caller hears from Plenum itself: short tone signals, made here (no recordings, no
//! downloads). Frequencies stay clear of speech's strongest band so a cue over the room's
//! sound is heard without covering it.

use crate::media::audio_mix::SAMPLE_RATE;

/// One tone of `hz` for `ms`, with 5 ms ramps (no clicks), at a quarter of full scale.
fn tone(hz: f32, ms: u32) -> Vec<i16> {
    let n = (SAMPLE_RATE * ms / 1000) as usize;
    let ramp = (SAMPLE_RATE / 200) as usize;
    (0..n)
        .map(|i| {
            let edge = (i.min(n - 1 - i) as f32 / ramp as f32).min(1.0);
            let v = (2.0 * std::f32::consts::PI * hz * i as f32 / SAMPLE_RATE as f32).sin();
            (v * edge * 8000.0) as i16
        })
        .collect()
}

fn silence(ms: u32) -> Vec<i16> {
    vec![0; (SAMPLE_RATE * ms / 1000) as usize]
}

fn sequence(parts: &[(f32, u32)]) -> Vec<i16> {
    parts.iter().flat_map(|&(hz, ms)| if hz > 0.0 { tone(hz, ms) } else { silence(ms) }).collect()
}

/// "Enter the PIN": two rising tones.
pub fn enter_pin() -> Vec<i16> {
    sequence(&[(1000.0, 150), (0.0, 60), (1400.0, 250)])
}

/// The PIN is right: three rising tones.
pub fn welcome() -> Vec<i16> {
    sequence(&[(1000.0, 100), (0.0, 40), (1200.0, 100), (0.0, 40), (1500.0, 180)])
}

/// The PIN is wrong: a low tone twice.
pub fn wrong() -> Vec<i16> {
    sequence(&[(350.0, 300), (0.0, 100), (350.0, 300)])
}

/// Waiting to be admitted: one soft tone (repeated by the call).
pub fn waiting() -> Vec<i16> {
    tone(1200.0, 120)
}

/// Muted now: two falling tones; unmuted: two rising ones.
pub fn muted(muted: bool) -> Vec<i16> {
    if muted {
        sequence(&[(1400.0, 120), (0.0, 40), (900.0, 160)])
    } else {
        sequence(&[(900.0, 120), (0.0, 40), (1400.0, 160)])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_have_their_length_and_stay_below_full_scale() {
        assert_eq!(tone(1000.0, 100).len(), 4800);
        assert_eq!(enter_pin().len(), 4800 * 46 / 10);
        for s in [enter_pin(), welcome(), wrong(), waiting(), muted(true), muted(false)] {
            assert!(s.iter().all(|v| v.unsigned_abs() <= 8000));
            assert!(s.first().is_some_and(|v| v.unsigned_abs() < 200), "starts softly");
        }
    }
}
