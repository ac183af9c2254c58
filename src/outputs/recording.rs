//! Recording a room to a file on the server, started and stopped by a moderator.
//!
//! MPEG-TS: every 188-byte packet stands on its own, so a server that is killed mid-meeting
//! leaves a file that plays up to its last written packets (an MP4 without its index would
//! not play at all). Files are written under `--recordings-dir` as `{room}-{YYYYMMDD-HHMMSS}.ts`
//! (start time, UTC), listed and served to that room's moderators only.

use std::path::{Path, PathBuf};
use std::time::Instant;

use gst::prelude::*;

use super::{OutputError, OutputPipeline};
use crate::ids::RoomId;

/// H.264 as it comes (headers before every keyframe) and AAC, into MPEG-TS, into the file.
const DESCRIPTION: &str = "appsrc name=video ! h264parse config-interval=-1 ! queue max-size-time=2000000000 \
    ! mpegtsmux name=mux alignment=7 ! filesink name=file sync=false \
    appsrc name=audio ! aacparse ! queue max-size-time=2000000000 ! mux.";
const SUFFIX: &str = ".ts";
/// `YYYYMMDD-HHMMSS`.
const STAMP_LEN: usize = 15;
/// How much of a file's start and end is read for its first and last timestamp.
const SCAN_BYTES: u64 = 2 * 1024 * 1024;

/// The place recordings are written to.
#[derive(Clone, Debug)]
pub struct Recordings {
    dir: PathBuf,
}

/// One recording on disk, as moderators see it in the list.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct RecordingInfo {
    pub name: String,
    pub bytes: u64,
    /// From the file's first to its last timestamp (also for a file a crash cut short).
    pub duration_s: Option<f64>,
    /// Still being written.
    pub recording: bool,
}

/// A recording being written.
pub struct Recording {
    pub name: String,
    output: OutputPipeline,
    pub started: Instant,
}

impl Recording {
    pub fn output(&self) -> &OutputPipeline {
        &self.output
    }

    /// Stops it; the file stays complete up to here.
    pub fn stop(self) {
        self.output.stop();
    }
}

impl Recordings {
    pub fn new(dir: PathBuf) -> Self {
        Self { dir }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Starts writing `room`'s broadcast into a new file.
    pub fn start(&self, room: &RoomId) -> Result<Recording, OutputError> {
        std::fs::create_dir_all(&self.dir)?;
        let stamp = gst::glib::DateTime::now_utc()
            .and_then(|t| t.format("%Y%m%d-%H%M%S"))
            .map_err(|e| OutputError::Build(format!("clock: {e}")))?;
        let name = format!("{room}-{stamp}{SUFFIX}");
        let path = self.dir.join(&name);
        let output = OutputPipeline::start(&format!("record-{room}"), DESCRIPTION, |bin| {
            let file = bin.by_name("file").ok_or_else(|| OutputError::Build("no file sink".into()))?;
            file.set_property("location", path.to_string_lossy().as_ref());
            Ok(())
        })?;
        Ok(Recording { name, output, started: Instant::now() })
    }

    /// `room`'s recordings, oldest first; `current` is the one being written.
    pub fn list(&self, room: &RoomId, current: Option<&str>) -> Vec<RecordingInfo> {
        let Ok(entries) = std::fs::read_dir(&self.dir) else { return Vec::new() };
        let mut list: Vec<RecordingInfo> = entries
            .filter_map(Result::ok)
            .filter_map(|e| {
                let name = e.file_name().to_str()?.to_string();
                (room_of(&name)? == room.as_str()).then_some(())?;
                let bytes = e.metadata().ok()?.len();
                Some(RecordingInfo { duration_s: ts_duration(&e.path()), recording: current == Some(name.as_str()), name, bytes })
            })
            .collect();
        list.sort_by(|a, b| a.name.cmp(&b.name));
        list
    }

    /// The file of `room`'s recording `name`, if it is one (nothing else is ever served).
    pub fn path_of(&self, room: &RoomId, name: &str) -> Option<PathBuf> {
        (room_of(name)? == room.as_str()).then(|| self.dir.join(name)).filter(|p| p.is_file())
    }
}

/// The room a recording's file name belongs to: `{room}-{YYYYMMDD-HHMMSS}.ts`, nothing else
/// (no path separators, no other names).
fn room_of(name: &str) -> Option<&str> {
    let stem = name.strip_suffix(SUFFIX)?;
    let split = stem.len().checked_sub(STAMP_LEN + 1)?;
    let (room, stamp) = (stem.get(..split)?, stem.get(split + 1..)?);
    let stamp_ok = stamp.len() == STAMP_LEN
        && stamp.bytes().enumerate().all(|(i, b)| if i == 8 { b == b'-' } else { b.is_ascii_digit() })
        && stem.as_bytes()[split] == b'-';
    (stamp_ok && RoomId::parse(room).is_ok()).then_some(room)
}

/// Seconds from the first to the last presentation timestamp in an MPEG-TS file (read from
/// its first and last couple of megabytes).
pub fn ts_duration(path: &Path) -> Option<f64> {
    use std::io::{Read, Seek, SeekFrom};
    let mut file = std::fs::File::open(path).ok()?;
    let len = file.metadata().ok()?.len();
    let mut head = Vec::new();
    (&mut file).take(SCAN_BYTES).read_to_end(&mut head).ok()?;
    let first = pts_values(&head).min()?;
    let tail_start = len.saturating_sub(SCAN_BYTES) / 188 * 188;
    file.seek(SeekFrom::Start(tail_start)).ok()?;
    let mut tail = Vec::new();
    file.read_to_end(&mut tail).ok()?;
    let last = pts_values(&tail).max()?;
    // 33-bit timestamps at 90 kHz; a recording never wraps them (26 hours).
    (last >= first).then(|| (last - first) as f64 / 90_000.0)
}

/// The PTS of every PES packet that starts in `data` (whole 188-byte packets from its start).
fn pts_values(data: &[u8]) -> impl Iterator<Item = u64> + '_ {
    data.chunks_exact(188).filter_map(|p| {
        if p[0] != 0x47 || p[1] & 0x40 == 0 {
            return None;
        }
        let payload = match (p[3] >> 4) & 0x3 {
            1 => 4,
            3 => 5 + usize::from(p[4]),
            _ => return None,
        };
        let pes = p.get(payload..)?;
        if pes.len() < 14 || pes[..3] != [0, 0, 1] || pes[7] & 0x80 == 0 {
            return None;
        }
        let t = &pes[9..14];
        Some((u64::from(t[0] >> 1) & 0x7) << 30 | u64::from(t[1]) << 22 | (u64::from(t[2]) >> 1) << 15 | u64::from(t[3]) << 7 | u64::from(t[4]) >> 1)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_rooms_own_recordings_are_its_own() {
        assert_eq!(room_of("rat-20261202-173000.ts"), Some("rat"));
        assert_eq!(room_of("rat-2025-20261202-173000.ts"), Some("rat-2025"));
        for bad in ["rat-20261202-173000.mp4", "-20261202-173000.ts", "../x-20261202-173000.ts", "rat-2026120-1730000.ts", "rat20261202-173000.ts", "x.ts", ".ts"] {
            assert_eq!(room_of(bad), None, "{bad}");
        }
    }

    /// A TS packet starting a PES with `pts`.
    fn packet(pts: u64) -> Vec<u8> {
        let mut p = vec![0x47, 0x41, 0x00, 0x10, 0, 0, 1, 0xe0, 0, 0, 0x80, 0x80, 5];
        p.push(0x21 | ((pts >> 29) & 0x0e) as u8);
        p.push((pts >> 22) as u8);
        p.push(0x01 | ((pts >> 14) & 0xfe) as u8);
        p.push((pts >> 7) as u8);
        p.push(0x01 | ((pts << 1) & 0xfe) as u8);
        p.resize(188, 0xff);
        p
    }

    #[test]
    fn a_files_duration_is_read_from_its_timestamps() {
        let dir = std::env::temp_dir().join(format!("plenum-ts-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("x-20261202-173000.ts");
        let mut data = Vec::new();
        for i in 0..50u64 {
            data.extend(packet(900_000 + i * 3000));
            data.extend(vec![0x47, 0x01, 0x00, 0x10].into_iter().chain(std::iter::repeat_n(0u8, 184)));
        }
        data.extend([0x47, 0x41]); // a packet cut short by a crash
        std::fs::write(&path, &data).unwrap();
        let d = ts_duration(&path).unwrap();
        assert!((d - 49.0 * 3000.0 / 90_000.0).abs() < 1e-6, "{d}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
