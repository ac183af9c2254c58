//! What an operator watches: one registry of Prometheus metrics for the whole process, served
//! in the OpenMetrics text format by `--metrics-listen` only (off by default, never on the
//! public listener). Room names appear as labels (they are in every room's address anyway);
//! nothing about participants does.
//!
//! The HTTP edge and the control tasks count as things happen; each room's media task writes
//! its own gauges once a second (so they cannot drift) and takes them away when it closes;
//! the process's figures are read from `/proc` when scraped.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{LazyLock, Mutex};

use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StatusLabels {
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RoomLabels {
    pub room: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ViewerLabels {
    pub room: String,
    pub codec: String,
    /// A rung's name ("720p", "360p"), or "audio" for sound only.
    pub rung: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EncoderLabels {
    pub room: String,
    pub codec: String,
    pub rung: String,
}

/// One running encoder of a room, as [`Metrics::set_encoders`] takes it.
pub struct EncoderFigures {
    pub codec: String,
    pub rung: String,
    pub waiting: u32,
    pub encoded: u64,
    pub dropped: u64,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutputLabels {
    pub room: String,
    /// "recording", "hls", "stream" or "camera".
    pub kind: String,
}

pub struct Metrics {
    registry: Registry,
    pub http_responses: Family<StatusLabels, Counter>,
    pub websockets: Gauge,
    pub rooms: Gauge,
    pub participants: Family<RoomLabels, Gauge>,
    pub publishers: Family<RoomLabels, Gauge>,
    pub viewers: Family<ViewerLabels, Gauge>,
    pub outputs: Family<OutputLabels, Gauge>,
    pub composite_frames: Family<RoomLabels, Counter>,
    pub mixer_underruns: Family<RoomLabels, Counter>,
    pub encoder_queue: Family<EncoderLabels, Gauge>,
    pub encoder_frames: Family<EncoderLabels, Counter>,
    pub encoder_dropped: Family<EncoderLabels, Counter>,
    pub keyframe_requests: Counter,
    /// Phone calls now (answered, typing the PIN, waiting or in a room).
    pub phone_calls: Gauge,
    /// Calls refused by the per-source or per-node limits (486).
    pub phone_calls_refused: Counter,
    cpu_seconds: Counter<f64, std::sync::atomic::AtomicU64>,
    cpu_ticks_seen: AtomicU64,
    participants_total: std::sync::atomic::AtomicI64,
    /// WHIP and WHEP sessions per room (not exported: the heartbeat's count), and in all.
    media_sessions: Family<RoomLabels, Gauge>,
    media_sessions_total: std::sync::atomic::AtomicI64,
    resident_bytes: Gauge,
    open_fds: Gauge,
    threads: Gauge,
    /// Labels of a room's media gauges last written, to take them away when it closes.
    room_labels: Mutex<std::collections::HashMap<String, Vec<ViewerLabels>>>,
    encoder_labels: Mutex<std::collections::HashMap<String, Vec<EncoderLabels>>>,
}

/// The process's metrics.
pub fn metrics() -> &'static Metrics {
    static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);
    &METRICS
}

impl Metrics {
    fn new() -> Self {
        let mut registry = Registry::with_prefix("plenum");
        let m = Self {
            http_responses: Family::default(),
            websockets: Gauge::default(),
            rooms: Gauge::default(),
            participants: Family::default(),
            publishers: Family::default(),
            viewers: Family::default(),
            outputs: Family::default(),
            composite_frames: Family::default(),
            mixer_underruns: Family::default(),
            encoder_queue: Family::default(),
            encoder_frames: Family::default(),
            encoder_dropped: Family::default(),
            keyframe_requests: Counter::default(),
            phone_calls: Gauge::default(),
            phone_calls_refused: Counter::default(),
            cpu_seconds: Counter::default(),
            cpu_ticks_seen: AtomicU64::new(0),
            participants_total: std::sync::atomic::AtomicI64::new(0),
            media_sessions: Family::default(),
            media_sessions_total: std::sync::atomic::AtomicI64::new(0),
            resident_bytes: Gauge::default(),
            open_fds: Gauge::default(),
            threads: Gauge::default(),
            room_labels: Mutex::default(),
            encoder_labels: Mutex::default(),
            registry: Registry::default(),
        };
        registry.register("http_responses", "HTTP responses by status", m.http_responses.clone());
        registry.register("websocket_connections", "Open control WebSocket connections", m.websockets.clone());
        registry.register("rooms", "Rooms open on this node", m.rooms.clone());
        registry.register("participants", "Participants in a room (waiting ones too)", m.participants.clone());
        registry.register("publishers", "Sessions sending media into a room (cameras, screens, external)", m.publishers.clone());
        registry.register("viewers", "Sessions receiving a room's mix, by codec and rung", m.viewers.clone());
        registry.register("outputs", "Recordings, HLS broadcasts, live streams and hall cameras running", m.outputs.clone());
        registry.register("composite_frames", "Frames the room's compositor produced (rate: its fps)", m.composite_frames.clone());
        registry.register(
            "mixer_underruns",
            "Times a voice ran dry in the room's audio mixer (its sound arrived late; each costs a few ms of it)",
            m.mixer_underruns.clone(),
        );
        registry.register(
            "encoder_queue_frames",
            "Frames waiting for a room's video encoder (by codec and rung); at its limit of 3 the encoder does not keep up",
            m.encoder_queue.clone(),
        );
        registry.register("encoder_frames", "Frames a room's video encoder produced (by codec and rung)", m.encoder_frames.clone());
        registry.register(
            "encoder_dropped_frames",
            "Composite frames dropped before a video encoder because it was behind (by codec and rung)",
            m.encoder_dropped.clone(),
        );
        registry.register("keyframe_requests", "Keyframes asked of the room encoders", m.keyframe_requests.clone());
        registry.register("phone_calls", "Phone calls on this node (typing the PIN, waiting or in a room)", m.phone_calls.clone());
        registry.register("phone_calls_refused", "Phone calls refused by the per-source or per-node limits", m.phone_calls_refused.clone());
        let process = registry.sub_registry_with_prefix("process");
        process.register("cpu_seconds", "CPU time used by the process (user and system)", m.cpu_seconds.clone());
        process.register("resident_memory_bytes", "Resident memory of the process", m.resident_bytes.clone());
        process.register("open_fds", "Open file descriptors of the process", m.open_fds.clone());
        process.register("threads", "Threads of the process", m.threads.clone());
        Self { registry, ..m }
    }

    /// A room's media, as its task sees it now: publishers, viewers by codec and rung, outputs.
    pub fn set_room(&self, room: &str, publishers: i64, viewers: &[(String, String, i64)], outputs: &[(&str, i64)]) {
        self.publishers.get_or_create(&RoomLabels { room: room.to_string() }).set(publishers);
        let sessions = publishers + viewers.iter().map(|(_, _, n)| n).sum::<i64>();
        let before = self.media_sessions.get_or_create(&RoomLabels { room: room.to_string() }).set(sessions);
        self.media_sessions_total.fetch_add(sessions - before, Ordering::Relaxed);
        let mut known = self.room_labels.lock().unwrap_or_else(|e| e.into_inner());
        let labels = known.entry(room.to_string()).or_default();
        for l in labels.iter() {
            if !viewers.iter().any(|(codec, rung, _)| *codec == l.codec && *rung == l.rung) {
                self.viewers.remove(l);
            }
        }
        labels.clear();
        for (codec, rung, n) in viewers {
            let l = ViewerLabels { room: room.to_string(), codec: codec.clone(), rung: rung.clone() };
            self.viewers.get_or_create(&l).set(*n);
            labels.push(l);
        }
        for (kind, n) in outputs {
            self.outputs.get_or_create(&OutputLabels { room: room.to_string(), kind: kind.to_string() }).set(*n);
        }
    }

    /// How often the room's mixer has found a voice run dry, in all (a counter: only grows).
    pub fn set_mixer_underruns(&self, room: &str, total: u64) {
        let counter = self.mixer_underruns.get_or_create(&RoomLabels { room: room.to_string() });
        counter.inc_by(total.saturating_sub(counter.get()));
    }

    /// A room's running encoders: queue level now, frames produced and dropped in all. An
    /// encoder that stopped loses its labels (when it starts again, its counters start at 0).
    pub fn set_encoders(&self, room: &str, encoders: &[EncoderFigures]) {
        let mut known = self.encoder_labels.lock().unwrap_or_else(|e| e.into_inner());
        let labels = known.entry(room.to_string()).or_default();
        for l in labels.iter() {
            if !encoders.iter().any(|e| e.codec == l.codec && e.rung == l.rung) {
                self.encoder_queue.remove(l);
                self.encoder_frames.remove(l);
                self.encoder_dropped.remove(l);
            }
        }
        labels.clear();
        for e in encoders {
            let l = EncoderLabels { room: room.to_string(), codec: e.codec.clone(), rung: e.rung.clone() };
            self.encoder_queue.get_or_create(&l).set(i64::from(e.waiting));
            let frames = self.encoder_frames.get_or_create(&l);
            frames.inc_by(e.encoded.saturating_sub(frames.get()));
            let dropped = self.encoder_dropped.get_or_create(&l);
            dropped.inc_by(e.dropped.saturating_sub(dropped.get()));
            labels.push(l);
        }
    }

    /// A room's control: how many participants it has now.
    pub fn set_participants(&self, room: &str, n: usize) {
        let before = self.participants.get_or_create(&RoomLabels { room: room.to_string() }).set(n as i64);
        self.participants_total.fetch_add(n as i64 - before, Ordering::Relaxed);
    }

    /// Participants in all rooms of this node (its load in the pool's heartbeat).
    pub fn participants_total(&self) -> u32 {
        self.participants_total.load(Ordering::Relaxed).max(0) as u32
    }

    /// WHIP and WHEP sessions in all rooms of this node (publishers and viewers without the
    /// web client's WebSocket count in the pool's heartbeat too).
    pub fn media_sessions_total(&self) -> u32 {
        self.media_sessions_total.load(Ordering::Relaxed).max(0) as u32
    }

    /// A room closed: its participants' label goes.
    pub fn forget_participants(&self, room: &str) {
        let r = RoomLabels { room: room.to_string() };
        if let Some(g) = self.participants.get(&r) {
            self.participants_total.fetch_sub(g.get(), Ordering::Relaxed);
        }
        self.participants.remove(&r);
    }

    /// A room's media closed: its labels go.
    pub fn forget_room(&self, room: &str) {
        let r = RoomLabels { room: room.to_string() };
        if let Some(g) = self.media_sessions.get(&r) {
            self.media_sessions_total.fetch_sub(g.get(), Ordering::Relaxed);
        }
        self.media_sessions.remove(&r);
        self.publishers.remove(&r);
        self.composite_frames.remove(&r);
        self.mixer_underruns.remove(&r);
        for kind in ["recording", "hls", "stream", "camera"] {
            self.outputs.remove(&OutputLabels { room: room.to_string(), kind: kind.to_string() });
        }
        if let Some(labels) = self.room_labels.lock().unwrap_or_else(|e| e.into_inner()).remove(room) {
            for l in labels {
                self.viewers.remove(&l);
            }
        }
        self.set_encoders(room, &[]);
        self.encoder_labels.lock().unwrap_or_else(|e| e.into_inner()).remove(room);
    }

    /// The OpenMetrics text of everything, with the process's figures read now.
    pub fn render(&self) -> String {
        self.read_process();
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }

    fn read_process(&self) {
        let fields = proc_stat();
        let field = |i: usize| fields.get(i).copied().unwrap_or(0);
        // utime + stime in clock ticks, as a counter.
        let ticks = field(11) + field(12);
        let before = self.cpu_ticks_seen.swap(ticks, Ordering::Relaxed);
        self.cpu_seconds.inc_by(ticks.saturating_sub(before) as f64 / 100.0);
        self.threads.set(field(17) as i64);
        let page = 4096;
        self.resident_bytes.set((field(21) * page) as i64);
        let fds = std::fs::read_dir("/proc/self/fd").map(|d| d.count()).unwrap_or(0);
        self.open_fds.set(fds as i64);
    }
}

/// The fields of `/proc/self/stat` after the command name (0 is the state; what is not a
/// number reads 0).
fn proc_stat() -> Vec<u64> {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    stat.rsplit_once(')').map(|(_, r)| r.split_whitespace().map(|v| v.parse().unwrap_or(0)).collect()).unwrap_or_default()
}

/// CPU time the process used so far (user and system), in clock ticks (100 a second on Linux).
pub fn cpu_ticks() -> u64 {
    let fields = proc_stat();
    fields.get(11).copied().unwrap_or(0) + fields.get(12).copied().unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rooms_gauges_come_and_go_with_it() {
        let m = Metrics::new();
        m.set_room("a", 2, &[("h264".into(), "720p".into(), 3), ("vp8".into(), "audio".into(), 1)], &[("hls", 1)]);
        let text = m.render();
        assert!(text.contains(r#"plenum_publishers{room="a"} 2"#), "{text}");
        assert!(text.contains(r#"plenum_viewers{room="a",codec="h264",rung="720p"} 3"#), "{text}");
        assert!(text.contains(r#"plenum_outputs{room="a",kind="hls"} 1"#), "{text}");
        assert!(text.contains("plenum_process_threads "), "{text}");
        // A viewer moves: the old label goes.
        m.set_room("a", 2, &[("h264".into(), "360p".into(), 3)], &[("hls", 1)]);
        let text = m.render();
        assert!(!text.contains("720p") && text.contains(r#"rung="360p"} 3"#), "{text}");
        let x264 = |waiting, encoded, dropped| EncoderFigures { codec: "h264".into(), rung: "720p".into(), waiting, encoded, dropped };
        m.set_encoders("a", &[x264(1, 300, 2)]);
        m.set_encoders("a", &[x264(3, 450, 7)]);
        let text = m.render();
        assert!(text.contains(r#"plenum_encoder_queue_frames{room="a",codec="h264",rung="720p"} 3"#), "{text}");
        assert!(text.contains(r#"plenum_encoder_frames_total{room="a",codec="h264",rung="720p"} 450"#), "{text}");
        assert!(text.contains(r#"plenum_encoder_dropped_frames_total{room="a",codec="h264",rung="720p"} 7"#), "{text}");
        m.forget_room("a");
        let text = m.render();
        assert!(!text.contains(r#"room="a""#), "{text}");
        assert!(text.ends_with("# EOF\n"));
    }
}
