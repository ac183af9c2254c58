//! What a caller is told, in German and then English: spoken by Debian's espeak-ng once when
//! the SIP endpoint starts (from the texts here; nothing is downloaded, nothing is stored),
//! each after its tone signal. Without espeak-ng the tone signals alone are played.

use std::process::{Command, Stdio};

use super::tones;
use crate::media::audio_mix::SAMPLE_RATE;

/// The sentences, German first (the product's users), then English.
const ENTER_PIN: [(&str, &str); 2] = [
    ("de", "Willkommen bei Plenum. Bitte geben Sie die PIN des Raums ein."),
    ("en", "Welcome to Plenum. Please enter the meeting PIN."),
];
const WRONG: [(&str, &str); 2] = [("de", "Diese PIN ist nicht gültig."), ("en", "This PIN is not valid.")];
const WAITING: [(&str, &str); 2] = [
    ("de", "Bitte warten Sie, bis Sie eingelassen werden."),
    ("en", "Please wait until you are let in."),
];

/// The signals, each with its speech (if espeak-ng spoke).
#[derive(Clone)]
pub struct Prompts {
    pub enter_pin: Vec<i16>,
    pub wrong: Vec<i16>,
    pub waiting: Vec<i16>,
    /// Whether the prompts are spoken (else tones only).
    pub spoken: bool,
}

impl Prompts {
    /// Speaks the prompts with espeak-ng, or falls back to the tones alone.
    pub fn make() -> Self {
        let speak = |texts: &[(&str, &str)]| -> Option<Vec<i16>> {
            let mut all = Vec::new();
            for (voice, text) in texts {
                all.extend(speak(voice, text)?);
                all.extend(std::iter::repeat_n(0i16, (SAMPLE_RATE / 2) as usize));
            }
            Some(all)
        };
        match (speak(&ENTER_PIN), speak(&WRONG), speak(&WAITING)) {
            (Some(enter), Some(wrong), Some(waiting)) => Self {
                enter_pin: [tones::enter_pin(), enter].concat(),
                wrong: [tones::wrong(), wrong].concat(),
                waiting: [tones::waiting(), waiting].concat(),
                spoken: true,
            },
            _ => {
                tracing::warn!("espeak-ng did not speak: callers hear tone signals only");
                Self::tones()
            }
        }
    }

    pub fn tones() -> Self {
        Self { enter_pin: tones::enter_pin(), wrong: tones::wrong(), waiting: tones::waiting(), spoken: false }
    }
}

/// `text` spoken by espeak-ng in `voice`, at 48 kHz, at a comfortable level.
fn speak(voice: &str, text: &str) -> Option<Vec<i16>> {
    let out = Command::new("espeak-ng")
        .args(["-v", voice, "-s", "150", "--stdout", text])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()
        .filter(|o| o.status.success())?;
    let (rate, samples) = read_wav(&out.stdout)?;
    Some(resample(&samples, rate, SAMPLE_RATE).into_iter().map(|s| (f32::from(s) * 0.7) as i16).collect())
}

/// The sample rate and samples of a 16-bit mono WAV (as espeak-ng writes it, possibly with the
/// data length unknown: the rest of the file).
fn read_wav(bytes: &[u8]) -> Option<(u32, Vec<i16>)> {
    if bytes.len() < 12 || &bytes[..4] != b"RIFF" || &bytes[8..12] != b"WAVE" {
        return None;
    }
    let mut at = 12;
    let mut rate = None;
    while at + 8 <= bytes.len() {
        let id = &bytes[at..at + 4];
        let len = u32::from_le_bytes([bytes[at + 4], bytes[at + 5], bytes[at + 6], bytes[at + 7]]) as usize;
        let body = at + 8;
        match id {
            b"fmt " => {
                let fmt = bytes.get(body..body + 16)?;
                let (format, channels, bits) = (u16::from_le_bytes([fmt[0], fmt[1]]), u16::from_le_bytes([fmt[2], fmt[3]]), u16::from_le_bytes([fmt[14], fmt[15]]));
                if format != 1 || channels != 1 || bits != 16 {
                    return None;
                }
                rate = Some(u32::from_le_bytes([fmt[4], fmt[5], fmt[6], fmt[7]]));
            }
            b"data" => {
                let end = body.saturating_add(len).min(bytes.len());
                let data = bytes.get(body..end)?;
                return Some((rate?, data.chunks_exact(2).map(|b| i16::from_le_bytes([b[0], b[1]])).collect()));
            }
            _ => {}
        }
        at = body.checked_add(len + (len & 1))?;
    }
    None
}

/// Linear interpolation from `from` Hz to `to` Hz (speech prompts: good enough).
fn resample(samples: &[i16], from: u32, to: u32) -> Vec<i16> {
    if samples.is_empty() || from == 0 {
        return Vec::new();
    }
    let n = (samples.len() as u64 * u64::from(to) / u64::from(from)) as usize;
    (0..n)
        .map(|i| {
            let x = i as f64 * f64::from(from) / f64::from(to);
            let (j, frac) = (x as usize, x.fract());
            let a = f64::from(samples[j.min(samples.len() - 1)]);
            let b = f64::from(samples[(j + 1).min(samples.len() - 1)]);
            (a + (b - a) * frac) as i16
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wav(rate: u32, samples: &[i16], data_len: Option<u32>) -> Vec<u8> {
        let data: Vec<u8> = samples.iter().flat_map(|s| s.to_le_bytes()).collect();
        let mut out = b"RIFF\0\0\0\0WAVEfmt ".to_vec();
        out.extend(16u32.to_le_bytes());
        out.extend(1u16.to_le_bytes());
        out.extend(1u16.to_le_bytes());
        out.extend(rate.to_le_bytes());
        out.extend((rate * 2).to_le_bytes());
        out.extend(2u16.to_le_bytes());
        out.extend(16u16.to_le_bytes());
        out.extend(b"data");
        out.extend(data_len.unwrap_or(data.len() as u32).to_le_bytes());
        out.extend(data);
        out
    }

    #[test]
    fn wavs_are_read_even_with_an_unknown_length() {
        assert_eq!(read_wav(&wav(22050, &[1, -2, 3], None)), Some((22050, vec![1, -2, 3])));
        assert_eq!(read_wav(&wav(22050, &[1, -2, 3], Some(u32::MAX))), Some((22050, vec![1, -2, 3])));
        assert_eq!(read_wav(b"RIFF....WAVE"), None);
        assert_eq!(read_wav(b"nonsense"), None);
    }

    #[test]
    fn resampling_keeps_the_length_and_the_shape() {
        let up = resample(&[0, 1000, 2000, 3000], 24_000, 48_000);
        assert_eq!(up.len(), 8);
        assert_eq!(&up[..4], &[0, 500, 1000, 1500]);
        assert!(resample(&[], 22050, 48000).is_empty());
    }
}
