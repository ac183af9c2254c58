//! Memory a long-running server hands back. GStreamer's streaming threads (a few per session)
//! allocate from glibc's per-thread arenas; freed memory stays in the arena that held it, so
//! after hundreds of sessions have come and gone the process keeps the high-water mark of
//! every arena it ever used. Fewer arenas (contention stays low: media threads mostly reuse
//! buffers from pools) and handing free pages back every little while keep a server that has
//! run for weeks about where it was after its first meetings.

use std::time::Duration;

/// Arenas glibc may create (its default is eight per core).
const ARENAS: i32 = 4;
/// How often free memory is handed back to the system.
const TRIM_EVERY: Duration = Duration::from_secs(20);

/// Limits the allocator's arenas; call first thing, before threads start.
pub fn limit_arenas() {
    // SAFETY: mallopt only sets a glibc tunable; it is called before any other thread exists.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, ARENAS);
    }
}

/// Hands free memory back to the system every [`TRIM_EVERY`], on a blocking thread (walking
/// the arenas takes a few milliseconds).
pub fn trim_now_and_then() {
    tokio::spawn(async {
        let mut every = tokio::time::interval(TRIM_EVERY);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            every.tick().await;
            // SAFETY: malloc_trim is thread-safe; it only releases memory no one holds.
            let _ = tokio::task::spawn_blocking(|| unsafe { libc::malloc_trim(0) }).await;
        }
    });
}
