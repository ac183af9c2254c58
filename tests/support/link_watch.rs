//! What a receiver on a weak link gets, measured over a window: frames, freezes, audio. Shared
//! by the weak-link tests and the bench's adaptation rows.

use std::time::{Duration, Instant};

use super::client::Viewer;
use super::wait_for;

/// What a receiver got between two instants: decoded frames per second, the longest time
/// without a new frame, the share of audio packets that arrived, and the longest time
/// without decoded audio.
#[derive(Debug, Clone, Copy)]
pub struct Window {
    pub fps: f64,
    pub longest_freeze: Duration,
    pub audio: f64,
    pub longest_silence: Duration,
    /// Decoded (or concealed) audio over the window's length.
    pub decoded: f64,
}

/// A mark to measure a window from: the instant and the audio packet counts then.
pub struct Mark {
    pub at: Instant,
    audio: (u64, i64),
}

pub fn mark(v: &Viewer) -> Mark {
    Mark { at: Instant::now(), audio: v.audio_packets() }
}

fn longest_gap(from: Instant, to: Instant, times: impl Iterator<Item = Instant>) -> Duration {
    let mut edges = vec![from];
    edges.extend(times.filter(|t| *t >= from && *t <= to));
    edges.push(to);
    edges.windows(2).map(|w| w[1] - w[0]).max().unwrap_or_default()
}

/// What `v` got since `from`.
pub fn window(v: &Viewer, from: &Mark) -> Window {
    let to = mark(v);
    let r = v.received.lock().unwrap();
    let frames = r.frame_times.iter().filter(|t| **t >= from.at && **t <= to.at).count();
    let secs = (to.at - from.at).as_secs_f64();
    let received = to.audio.0.saturating_sub(from.audio.0) as f64;
    let lost = (to.audio.1 - from.audio.1).max(0) as f64;
    Window {
        fps: frames as f64 / secs,
        longest_freeze: longest_gap(from.at, to.at, r.frame_times.iter().copied()),
        audio: if received + lost > 0.0 { received / (received + lost) } else { 0.0 },
        longest_silence: longest_gap(from.at, to.at, r.audio_log.iter().map(|(t, _)| *t)),
        decoded: r.audio_log.iter().filter(|(t, _)| *t >= from.at && *t <= to.at).map(|(_, n)| *n).sum::<u64>() as f64 / (48_000.0 * secs),
    }
}

/// The height of the pictures `v` decodes now.
pub fn height(v: &Viewer) -> Option<i32> {
    v.received.lock().unwrap().decoded_height
}

/// Waits until `v` decodes pictures `want` tall; returns how long that took.
pub fn reaches(v: &Viewer, want: i32, within: Duration, what: &str) -> Duration {
    let start = Instant::now();
    wait_for(within, what, || if height(v) == Some(want) { Ok(start.elapsed()) } else { Err(format!("height {:?}", height(v))) })
}

/// Waits until `v` shows moving pictures `top` tall again (after `since`, and not left since);
/// how long after `since` that was.
pub fn back_to(v: &Viewer, top: i32, since: Instant, within: Duration, what: &str) -> Duration {
    wait_for(within, what, || {
        let r = v.received.lock().unwrap();
        let recent = r.frame_times.iter().filter(|t| t.elapsed() < Duration::from_secs(1)).count();
        let last_change_top = r.height_changes.iter().rev().find(|(t, _)| *t >= since).is_none_or(|(_, h)| *h == top);
        if recent >= 10 && r.decoded_height == Some(top) && last_change_top {
            Ok(since.elapsed())
        } else {
            Err(format!("{recent} frames in the last second at height {:?}", r.decoded_height))
        }
    })
}
