//! The room's audio mixer: decoded publisher audio in, one or more mixes out.
//!
//! Each publisher's decoded audio (48 kHz mono S16) arrives through an appsink callback on a
//! GStreamer streaming thread and is queued here. A dedicated thread ticks every 10 ms, takes one
//! frame from every input that has one, sums them once and renders each output: the full mix for
//! everyone who is not talking, and the mix without one talker's own voice for that talker
//! (exact, see [`super::audio_mix`]). Outputs are pushed into live appsrcs that feed an Opus
//! encoder each, so all listeners share one encode.
//!
//! An input that stops (a vanished peer) simply contributes nothing: the tick never waits for
//! anybody, so no participant can stall the mix.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::audio_mix::{self, FRAME_SAMPLES};
use super::playout::Playout;
use super::Voice;

/// One tick of the mixer.
pub const TICK: Duration = Duration::from_millis(10);
/// Audio levels are reported every this many ticks (100 ms).
const LEVEL_TICKS: u32 = 10;

/// Receives `(voice, dBFS)` for every input, every 100 ms, on the mixer thread: must not block.
pub type LevelSink = Box<dyn Fn(Vec<(Voice, f32)>) + Send>;

/// If the tick thread falls this far behind (machine overloaded), it skips ahead instead of
/// bursting to catch up.
pub const MAX_LAG: Duration = Duration::from_millis(100);

/// Which mix an output carries: everybody, or everybody but one participant.
pub type MixKey = Option<Voice>;

#[derive(Default)]
struct InputQueue {
    playout: Playout,
    /// Sum of squares (full scale = 1.0) and sample count since the last level report.
    energy: f64,
    counted: usize,
}

impl InputQueue {
    fn push(&mut self, samples: impl IntoIterator<Item = i16>) {
        self.playout.push(samples);
    }

    /// One frame, or `None` while the input is (re)filling after an underrun.
    fn pop_frame(&mut self, frame: &mut [i16; FRAME_SAMPLES]) -> bool {
        if !self.playout.pop_frame(frame) {
            return false;
        }
        for v in frame.iter() {
            let v = f64::from(*v) / f64::from(i16::MAX);
            self.energy += v * v;
        }
        self.counted += FRAME_SAMPLES;
        true
    }

    /// RMS level in dBFS since the last call (-100 for silence or no audio).
    fn take_level(&mut self) -> f32 {
        let level = if self.counted == 0 || self.energy <= 0.0 {
            -100.0
        } else {
            (10.0 * (self.energy / self.counted as f64).log10()).max(-100.0) as f32
        };
        self.energy = 0.0;
        self.counted = 0;
        level
    }
}

/// Receives one mix; implemented by the engine with an appsrc.
pub trait MixSink: Send + 'static {
    fn push(&self, samples: &[i16]);
}

/// Every 5 s at debug level: what each voice's playout received, dropped and holds.
fn ticks_logged(state: &MixState, ticks: u32) {
    if ticks % 500 != 0 || !tracing::enabled!(tracing::Level::DEBUG) {
        return;
    }
    for (voice, queue) in &state.inputs {
        let (came_ms, dropped_ms, queued_ms, target_ms) = queue.playout.figures();
        tracing::debug!(?voice, ticks, came_ms, dropped_ms, queued_ms, target_ms, underruns = queue.playout.underruns(), "playout");
    }
}

struct Output {
    key: MixKey,
    sink: Box<dyn MixSink>,
}

#[derive(Default)]
struct MixState {
    inputs: BTreeMap<Voice, InputQueue>,
    outputs: Vec<Output>,
    /// The full mix once more, for the room's broadcast outputs (recording, live streams).
    broadcast: Option<Box<dyn MixSink>>,
    /// Voices that are read (so their queues stay fresh) but not mixed.
    silenced: std::collections::BTreeSet<Voice>,
    /// Underruns of inputs since removed.
    past_underruns: u64,
}

/// Owned by the room's media task; dropping it stops the tick thread.
pub struct Mixer {
    state: Arc<Mutex<MixState>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

/// Handed to the appsink callback of one publisher; feeds that publisher's queue. Once the
/// publisher is removed from the mixer, whatever it still delivers is dropped.
#[derive(Clone)]
pub struct InputFeed {
    state: Weak<Mutex<MixState>>,
    id: Voice,
}

impl InputFeed {
    pub fn push(&self, samples: &[i16]) {
        if let Some(state) = self.state.upgrade() {
            if let Some(queue) = lock(&state).inputs.get_mut(&self.id) {
                queue.push(samples.iter().copied());
            }
        }
    }
}

fn lock(state: &Mutex<MixState>) -> MutexGuard<'_, MixState> {
    // A panic while holding this lock would be a bug in the arithmetic above; the data is still
    // consistent (queues of samples), so keep mixing rather than poisoning the whole room.
    state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Mixer {
    pub fn start(room: &str, levels: LevelSink) -> std::io::Result<Self> {
        let state = Arc::new(Mutex::new(MixState::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = std::thread::Builder::new().name(format!("mix-{room}")).spawn({
            let state = state.clone();
            let stop = stop.clone();
            move || tick_loop(&state, &stop, &levels)
        })?;
        Ok(Self { state, stop, thread: Some(thread) })
    }

    pub fn add_input(&self, id: Voice) -> InputFeed {
        lock(&self.state).inputs.insert(id.clone(), InputQueue::default());
        InputFeed { state: Arc::downgrade(&self.state), id }
    }

    /// From the next tick on, `id` is in no mix.
    pub fn remove_input(&self, id: &Voice) {
        let mut state = lock(&self.state);
        if let Some(gone) = state.inputs.remove(id) {
            state.past_underruns += gone.playout.underruns();
        }
    }

    /// How often an input ran dry while it was being mixed, over the mixer's life.
    pub fn underruns(&self) -> u64 {
        let state = lock(&self.state);
        state.past_underruns + state.inputs.values().map(|q| q.playout.underruns()).sum::<u64>()
    }

    /// From the next tick on, these voices are left out of every mix.
    pub fn set_silenced(&self, voices: std::collections::BTreeSet<Voice>) {
        lock(&self.state).silenced = voices;
    }

    pub fn add_output(&self, key: MixKey, sink: Box<dyn MixSink>) {
        lock(&self.state).outputs.push(Output { key, sink });
    }

    pub fn remove_output(&self, key: &MixKey) {
        lock(&self.state).outputs.retain(|o| &o.key != key);
    }

    /// The full mix also into `sink` (the broadcast's own encode), or no longer.
    pub fn set_broadcast(&self, sink: Option<Box<dyn MixSink>>) {
        lock(&self.state).broadcast = sink;
    }
}

impl Drop for Mixer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn tick_loop(state: &Mutex<MixState>, stop: &AtomicBool, levels: &LevelSink) {
    let mut ticks = 0u32;
    let mut next = Instant::now();
    let mut frames: Vec<(Voice, [i16; FRAME_SAMPLES])> = Vec::new();
    let mut full = [0i32; FRAME_SAMPLES];
    let mut minus = [0i32; FRAME_SAMPLES];
    let mut out = [0i16; FRAME_SAMPLES];
    while !stop.load(Ordering::Relaxed) {
        next += TICK;
        let now = Instant::now();
        if next > now {
            std::thread::sleep(next - now);
        } else if now - next > MAX_LAG {
            next = now;
        }
        let mut guard = lock(state);
        ticks_logged(&guard, ticks);
        frames.clear();
        let MixState { inputs, silenced, .. } = &mut *guard;
        for (id, queue) in inputs.iter_mut() {
            let mut frame = [0i16; FRAME_SAMPLES];
            if queue.pop_frame(&mut frame) && !silenced.contains(id) {
                frames.push((id.clone(), frame));
            }
        }
        full.fill(0);
        for (_, f) in &frames {
            audio_mix::accumulate(&mut full, f);
        }
        // Pushing into a live appsrc only queues the buffer, so holding the lock here is brief.
        for output in &guard.outputs {
            let own: Vec<&[i16]> = frames
                .iter()
                .filter(|(id, _)| output.key.as_ref() == Some(id))
                .map(|(_, f)| f.as_slice())
                .collect();
            audio_mix::mix_minus(&full, &own, &mut minus);
            audio_mix::render(&minus, &mut out);
            output.sink.push(&out);
        }
        if let Some(sink) = &guard.broadcast {
            audio_mix::render(&full, &mut out);
            sink.push(&out);
        }
        ticks = ticks.wrapping_add(1);
        if ticks % LEVEL_TICKS == 0 && !guard.inputs.is_empty() {
            let report = guard.inputs.iter_mut().map(|(id, q)| (id.clone(), q.take_level())).collect();
            drop(guard);
            levels(report);
        }
    }
}
