//! HLS served by Plenum itself (a "public broadcast"): the broadcast muxed to MPEG-TS, cut
//! into segments at keyframes (about every 2 s: the broadcast's GOP) and kept in memory, a
//! sliding window of them in the playlist. Nothing is written to disk. `GET
//! /hls/{room}/index.m3u8` and `/hls/{room}/{seq}.ts` read them ([`HlsStore`]).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use gst::prelude::*;

use super::{lock, OutputError, OutputPipeline};
use crate::ids::RoomId;

const DESCRIPTION: &str = "appsrc name=video ! h264parse config-interval=-1 ! queue max-size-time=2000000000 \
    ! mpegtsmux name=mux alignment=7 ! appsink name=sink sync=false \
    appsrc name=audio ! aacparse ! queue max-size-time=2000000000 ! mux.";
/// Segments in the playlist (about 12 s)...
const PLAYLIST_SEGMENTS: usize = 6;
/// ...and kept a little longer for players that read the playlist just before it moved on.
const KEPT_SEGMENTS: usize = 9;
/// A keyframe this soon after a segment began (a viewer asked for one) does not cut it.
const MIN_SEGMENT_S: f64 = 1.5;
const TS: usize = 188;

/// One finished segment.
#[derive(Clone, Debug)]
pub struct Segment {
    pub seq: u64,
    pub duration_s: f64,
    pub data: Arc<[u8]>,
}

/// A room's live segments, read by the HTTP edge, written by its HLS pipeline.
#[derive(Default, Debug)]
pub struct HlsStore {
    /// Names this broadcast's segments (`{id}-{seq}.ts`): a cache in front never serves an
    /// earlier broadcast's segment under a new one's name.
    id: String,
    segments: Mutex<VecDeque<Segment>>,
}

impl HlsStore {
    fn add(&self, segment: Segment) {
        let mut s = lock(&self.segments);
        s.push_back(segment);
        while s.len() > KEPT_SEGMENTS {
            s.pop_front();
        }
    }

    /// The live playlist (HLS version 3), once there is a segment.
    pub fn playlist(&self) -> Option<String> {
        let s = lock(&self.segments);
        let shown: Vec<&Segment> = s.iter().skip(s.len().saturating_sub(PLAYLIST_SEGMENTS)).collect();
        let first = shown.first()?;
        let target = shown.iter().map(|g| g.duration_s).fold(0.0f64, f64::max).round().max(1.0) as u64;
        let mut out = format!("#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:{target}\n#EXT-X-MEDIA-SEQUENCE:{}\n", first.seq);
        for g in shown {
            out.push_str(&format!("#EXTINF:{:.3},\n{}-{}.ts\n", g.duration_s, self.id, g.seq));
        }
        Some(out)
    }

    /// The segment named `name` (as the playlist names it).
    pub fn segment(&self, name: &str) -> Option<Arc<[u8]>> {
        let (id, seq) = name.strip_suffix(".ts")?.split_once('-')?;
        let seq: u64 = seq.parse().ok()?;
        (id == self.id).then_some(())?;
        lock(&self.segments).iter().find(|g| g.seq == seq).map(|g| g.data.clone())
    }
}

/// The rooms whose broadcast is public, for the HTTP edge.
#[derive(Default, Debug)]
pub struct HlsDirectory {
    rooms: Mutex<HashMap<RoomId, Arc<HlsStore>>>,
}

impl HlsDirectory {
    pub fn get(&self, room: &RoomId) -> Option<Arc<HlsStore>> {
        lock(&self.rooms).get(room).cloned()
    }

    fn insert(&self, room: RoomId, store: Arc<HlsStore>) {
        lock(&self.rooms).insert(room, store);
    }

    fn remove(&self, room: &RoomId) {
        lock(&self.rooms).remove(room);
    }
}

/// A room's HLS output: its pipeline, and its entry in the directory while it runs.
pub struct Hls {
    output: OutputPipeline,
    room: RoomId,
    directory: Arc<HlsDirectory>,
}

impl Hls {
    pub fn start(room: &RoomId, directory: Arc<HlsDirectory>) -> Result<Self, OutputError> {
        let id = crate::ids::SessionId::random().to_string()[..8].to_string();
        let store = Arc::new(HlsStore { id, ..HlsStore::default() });
        let segmenter = Arc::new(Mutex::new(Segmenter::default()));
        let sink_store = store.clone();
        let output = OutputPipeline::start(&format!("hls-{room}"), DESCRIPTION, move |bin| {
            let sink = bin
                .by_name("sink")
                .and_then(|e| e.downcast::<gst_app::AppSink>().ok())
                .ok_or_else(|| OutputError::Build("no appsink".into()))?;
            sink.set_callbacks(
                gst_app::AppSinkCallbacks::builder()
                    .new_sample(move |s| {
                        let sample = s.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                        if let Some(map) = sample.buffer().and_then(|b| b.map_readable().ok()) {
                            for segment in lock(&segmenter).push(map.as_slice()) {
                                sink_store.add(segment);
                            }
                        }
                        Ok(gst::FlowSuccess::Ok)
                    })
                    .build(),
            );
            Ok(())
        })?;
        directory.insert(room.clone(), store);
        Ok(Self { output, room: room.clone(), directory })
    }

    pub fn output(&self) -> &OutputPipeline {
        &self.output
    }

    pub fn stop(self) {
        self.directory.remove(&self.room);
        self.output.stop();
    }
}

/// Cuts an MPEG-TS stream (whole 188-byte packets) into segments that each begin with the
/// stream's PAT and PMT and a video keyframe.
#[derive(Default)]
pub struct Segmenter {
    pat: Option<Vec<u8>>,
    pmt_pid: Option<u16>,
    pmt: Option<Vec<u8>>,
    current: Option<(u64, Vec<u8>)>,
    next_seq: u64,
    /// A packet split across two pushes.
    partial: Vec<u8>,
}

impl Segmenter {
    /// The segments `data` finished.
    pub fn push(&mut self, data: &[u8]) -> Vec<Segment> {
        let mut done = Vec::new();
        let mut bytes = std::mem::take(&mut self.partial);
        bytes.extend_from_slice(data);
        let whole = bytes.len() / TS * TS;
        for p in bytes[..whole].chunks_exact(TS) {
            if p[0] != 0x47 {
                continue;
            }
            let pid = (u16::from(p[1] & 0x1f) << 8) | u16::from(p[2]);
            if pid == 0 {
                self.pat = Some(p.to_vec());
                self.pmt_pid = pat_pmt_pid(p).or(self.pmt_pid);
            } else if Some(pid) == self.pmt_pid {
                self.pmt = Some(p.to_vec());
            }
            if let Some(pts) = keyframe_pts(p) {
                let cut = self.current.as_ref().is_none_or(|(start, _)| pts.wrapping_sub(*start) as f64 / 90_000.0 >= MIN_SEGMENT_S);
                if cut {
                    if let Some((start, data)) = self.current.take() {
                        done.push(Segment { seq: self.next_seq, duration_s: pts.wrapping_sub(start) as f64 / 90_000.0, data: data.into() });
                        self.next_seq += 1;
                    }
                    let mut data = Vec::with_capacity(512 * 1024);
                    data.extend(self.pat.iter().flatten());
                    data.extend(self.pmt.iter().flatten());
                    self.current = Some((pts, data));
                }
            }
            if let Some((_, data)) = &mut self.current {
                data.extend_from_slice(p);
            }
        }
        self.partial = bytes[whole..].to_vec();
        done
    }
}

/// The payload of a TS packet.
fn payload(p: &[u8]) -> Option<&[u8]> {
    match (p[3] >> 4) & 0x3 {
        1 => p.get(4..),
        3 => p.get(5 + usize::from(p[4])..),
        _ => None,
    }
}

/// The first program's PMT PID in a PAT packet.
fn pat_pmt_pid(p: &[u8]) -> Option<u16> {
    if p[1] & 0x40 == 0 {
        return None;
    }
    let pl = payload(p)?;
    let table = pl.get(1 + usize::from(*pl.first()?)..)?;
    let programs = table.get(8..)?;
    programs.chunks_exact(4).take(8).find(|e| u16::from_be_bytes([e[0], e[1]]) != 0).map(|e| (u16::from(e[2] & 0x1f) << 8) | u16::from(e[3]))
}

/// The PTS (90 kHz) of a video PES that starts in `p` with a random access point (a keyframe).
fn keyframe_pts(p: &[u8]) -> Option<u64> {
    let starts = p[1] & 0x40 != 0;
    let adaptation = (p[3] >> 4) & 0x2 != 0 && p[4] > 0;
    if !starts || !adaptation || p[5] & 0x40 == 0 {
        return None;
    }
    let pes = payload(p)?;
    if pes.len() < 14 || pes[..3] != [0, 0, 1] || !(0xe0..=0xef).contains(&pes[3]) || pes[7] & 0x80 == 0 {
        return None;
    }
    let t = &pes[9..14];
    Some((u64::from(t[0] >> 1) & 0x7) << 30 | u64::from(t[1]) << 22 | (u64::from(t[2]) >> 1) << 15 | u64::from(t[3]) << 7 | u64::from(t[4]) >> 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet(pid: u16, start: bool, body: &[u8], rai: bool) -> Vec<u8> {
        let mut p = vec![0x47, (if start { 0x40 } else { 0 }) | (pid >> 8) as u8, pid as u8];
        if rai {
            p.extend([0x30, 1, 0x40]);
        } else {
            p.push(0x10);
        }
        p.extend_from_slice(body);
        p.resize(TS, 0xff);
        p
    }

    fn pes_with_pts(pts: u64) -> Vec<u8> {
        vec![
            0,
            0,
            1,
            0xe0,
            0,
            0,
            0x80,
            0x80,
            5,
            0x21 | ((pts >> 29) & 0x0e) as u8,
            (pts >> 22) as u8,
            0x01 | ((pts >> 14) & 0xfe) as u8,
            (pts >> 7) as u8,
            0x01 | ((pts << 1) & 0xfe) as u8,
        ]
    }

    #[test]
    fn a_stream_is_cut_at_keyframes_into_segments_that_start_with_its_tables() {
        let pat = packet(0, true, &[0, 0, 0xb0, 13, 0, 1, 0xc1, 0, 0, 0, 1, 0xe0, 32], false);
        let pmt = packet(32, true, &[0, 2], false);
        let key = |s: f64| packet(65, true, &pes_with_pts((s * 90_000.0) as u64), true);
        let delta = packet(65, false, &[1, 2, 3], false);
        let mut stream = Vec::new();
        stream.extend(&delta); // before the first keyframe: dropped
        stream.extend(&pat);
        stream.extend(&pmt);
        for s in [0.0, 1.0, 2.0, 4.1, 6.1] {
            // (the keyframe at 1 s, a viewer's, does not cut: under 1.5 s)
            stream.extend(key(s));
            stream.extend(&delta);
        }
        let mut seg = Segmenter::default();
        // Pushed in pieces that split packets.
        let mut done = Vec::new();
        for chunk in stream.chunks(500) {
            done.extend(seg.push(chunk));
        }
        let durations: Vec<f64> = done.iter().map(|g| (g.duration_s * 10.0).round() / 10.0).collect();
        assert_eq!(durations, vec![2.0, 2.1, 2.0]);
        assert_eq!(done.iter().map(|g| g.seq).collect::<Vec<_>>(), vec![0, 1, 2]);
        for g in &done {
            assert_eq!(&g.data[..TS], pat.as_slice(), "each segment begins with the PAT");
            assert_eq!(&g.data[TS..2 * TS], pmt.as_slice(), "then the PMT");
            assert!(keyframe_pts(&g.data[2 * TS..3 * TS]).is_some(), "then a keyframe");
        }
        let store = HlsStore { id: "b1".into(), ..HlsStore::default() };
        for g in done {
            store.add(g);
        }
        let playlist = store.playlist().unwrap();
        assert!(playlist.starts_with("#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:0\n"), "{playlist}");
        assert!(playlist.contains("#EXTINF:2.100,\nb1-1.ts\n"), "{playlist}");
        assert!(store.segment("b1-2.ts").is_some());
        for bad in ["b1-3.ts", "b2-2.ts", "2.ts", "b1-2", "../b1-2.ts"] {
            assert!(store.segment(bad).is_none(), "{bad}");
        }
    }
}
