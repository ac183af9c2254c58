//! Debian's ffmpeg and ffprobe as independent readers of what Plenum writes or streams
//! (recordings, and any URL ffmpeg opens): duration, codecs, one decoded picture, a stretch of
//! decoded sound.

use std::process::Command;

use super::client::{VIEW_H, VIEW_W};

/// Longest a reader may take: a live URL that never delivers must not hang the test.
const READ_LIMIT_S: &str = "30";

fn run(program: &str, args: &[&str]) -> Result<Vec<u8>, String> {
    let out = Command::new("timeout")
        .args(["-s", "KILL", READ_LIMIT_S, program])
        .args(args)
        .output()
        .map_err(|e| format!("{program} not runnable (Debian package ffmpeg): {e}"))?;
    if out.status.success() {
        Ok(out.stdout)
    } else {
        Err(format!("{program} {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim()))
    }
}

/// The container's duration in seconds, as ffprobe reads it.
pub fn duration(input: &str) -> Result<f64, String> {
    let out = run("ffprobe", &["-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0", input])?;
    let text = String::from_utf8_lossy(&out);
    text.trim().parse::<f64>().map_err(|e| format!("ffprobe duration {text:?}: {e}"))
}

/// The codec of every stream, in order (e.g. `["h264", "aac"]`).
pub fn codecs(input: &str) -> Result<Vec<String>, String> {
    // MPEG-TS lists each stream twice (in its program and on its own): one per index.
    let out = run("ffprobe", &["-v", "error", "-show_entries", "stream=index,codec_name", "-of", "csv=p=0", input])?;
    let mut seen = std::collections::BTreeMap::new();
    for line in String::from_utf8_lossy(&out).lines() {
        if let Some((index, codec)) = line.trim().split_once(',') {
            seen.entry(index.parse::<u32>().unwrap_or(u32::MAX)).or_insert_with(|| codec.trim_end_matches(',').to_string());
        }
    }
    Ok(seen.into_values().collect())
}

/// The picture at `at_s` (decoded from the start: exact, and seeking in MPEG-TS found no
/// frame), scaled to the analysis size (RGB).
pub fn frame_at(input: &str, at_s: f64) -> Result<Vec<u8>, String> {
    let size = format!("scale={VIEW_W}:{VIEW_H}");
    let at = format!("{at_s:.2}");
    let out = run("ffmpeg", &["-v", "error", "-i", input, "-ss", &at, "-frames:v", "1", "-vf", &size, "-f", "rawvideo", "-pix_fmt", "rgb24", "-"])?;
    if out.len() == VIEW_W * VIEW_H * 3 { Ok(out) } else { Err(format!("a frame of {} bytes at {at} s", out.len())) }
}

/// `len_s` seconds of sound from `at_s`, mono 48 kHz.
pub fn audio_at(input: &str, at_s: f64, len_s: f64) -> Result<Vec<f32>, String> {
    let (at, len) = (format!("{at_s:.2}"), format!("{len_s:.2}"));
    let out = run("ffmpeg", &["-v", "error", "-i", input, "-ss", &at, "-t", &len, "-vn", "-ac", "1", "-ar", "48000", "-f", "f32le", "-"])?;
    Ok(out.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect())
}

/// The first picture of `input` at its own size: (width, height, RGB).
pub fn full_frame(input: &str) -> Result<(usize, usize, Vec<u8>), String> {
    let out = run("ffprobe", &["-v", "error", "-select_streams", "v:0", "-show_entries", "stream=width,height", "-of", "csv=p=0", input])?;
    let text = String::from_utf8_lossy(&out);
    let size: Vec<usize> = text.trim().split(',').filter_map(|v| v.trim().parse().ok()).collect();
    let [w, h] = size[..] else { return Err(format!("ffprobe size {text:?}")) };
    let out = run("ffmpeg", &["-v", "error", "-i", input, "-frames:v", "1", "-f", "rawvideo", "-pix_fmt", "rgb24", "-"])?;
    if out.len() == w * h * 3 { Ok((w, h, out)) } else { Err(format!("a frame of {} bytes, {w}x{h} wanted", out.len())) }
}
