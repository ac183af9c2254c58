//! A server that runs for weeks: publishers and viewers joining and leaving, hundreds of times,
//! leave nothing behind. Its resident memory, threads and open file descriptors come back to
//! where they were after a warm-up, and GLib never reports a critical error. CI runs 300
//! cycles; `PLENUM_SOAK_CYCLES` runs more (the bench's long soak).

mod support;

use std::time::{Duration, Instant};

use support::analysis::{coverage, PRESENT, TOLERANCE};
use support::client::{self, Codec, Publisher, Viewer, BLUE, GREEN, RED};
use support::server::{Server, OPEN_TEST_ARGS};
use support::wait_for;

const ROOM: &str = "soak";
/// Cycles before the baseline: buffer pools, caches and the allocator's arenas fill up once.
const WARM_UP: usize = 40;
const CYCLES: usize = 300;

/// The server's resident memory (MB), threads and open file descriptors, from /proc.
#[derive(Clone, Copy, Debug)]
struct Footprint {
    rss_mb: f64,
    threads: usize,
    fds: usize,
}

fn footprint(pid: u32) -> Footprint {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("the server's status");
    let field = |name: &str| {
        status.lines().find_map(|l| l.strip_prefix(name)).and_then(|v| v.split_whitespace().next()).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0)
    };
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).map(|d| d.count()).unwrap_or(0);
    Footprint { rss_mb: field("VmRSS:") / 1024.0, threads: field("Threads:") as usize, fds }
}

/// The footprint once the room has settled after its guests left (the room's tasks finish
/// tearing down branches a moment after the DELETE answers), taken after the server's next
/// hand-back of free memory (every 20 s, `src/memory.rs`): the least resident memory over
/// 21 s. (A single look 3 s after the last guest caught the baseline right after a hand-back
/// and the end before one, or the other way round: ±3 MB of noise on a 5 % bound.)
fn settled(server: &Server) -> Footprint {
    std::thread::sleep(Duration::from_secs(3));
    let mut least = footprint(server.pid());
    for _ in 0..21 {
        std::thread::sleep(Duration::from_secs(1));
        let now = footprint(server.pid());
        least = Footprint { rss_mb: least.rss_mb.min(now.rss_mb), ..now };
    }
    least
}

/// One guest: a publisher and a viewer join, the publisher is seen in the picture, both leave.
fn cycle(server: &Server, watcher: &Viewer, i: usize) {
    let colour = if i % 2 == 0 { RED } else { BLUE };
    let guest = Publisher::start(server.addr, ROOM, colour, 700 + (i % 8) as u32 * 40);
    let viewer = Viewer::start_counting(server.addr, ROOM, Codec::Vp8);
    wait_for(Duration::from_secs(10), &format!("guest {i} in the picture"), || {
        let f = watcher.frame().ok_or("no frame")?;
        if coverage(&f, colour, TOLERANCE) >= PRESENT { Ok(()) } else { Err("not yet") }
    });
    assert_eq!(viewer.leave(), 200, "cycle {i}: the viewer's DELETE");
    assert_eq!(guest.leave(), 200, "cycle {i}: the publisher's DELETE");
}

#[test]
fn hundreds_of_guests_leave_nothing_behind() {
    client::init();
    let cycles = std::env::var("PLENUM_SOAK_CYCLES").ok().and_then(|v| v.parse().ok()).unwrap_or(CYCLES);
    let (server, log) = Server::start_logging(&[], OPEN_TEST_ARGS, "warn");
    let _host = Publisher::start(server.addr, ROOM, GREEN, 600);
    let watcher = Viewer::start(server.addr, ROOM, None);
    wait_for(Duration::from_secs(10), "the standing publisher in the picture", || {
        let f = watcher.frame().ok_or("no frame")?;
        if coverage(&f, GREEN, TOLERANCE) >= PRESENT { Ok(()) } else { Err("not yet") }
    });
    let start = footprint(server.pid());
    for i in 0..WARM_UP {
        cycle(&server, &watcher, i);
    }
    let baseline = settled(&server);
    eprintln!("at the start {start:?}; after {WARM_UP} cycles (the baseline) {baseline:?}");
    let began = Instant::now();
    let mut marks = Vec::new();
    for i in 0..cycles {
        cycle(&server, &watcher, WARM_UP + i);
        if (i + 1) % 50 == 0 {
            let f = footprint(server.pid());
            eprintln!("after {} more cycles ({:.0} s): {f:?}", i + 1, began.elapsed().as_secs_f64());
            marks.push(f);
        }
    }
    let end = settled(&server);
    eprintln!("after {cycles} more cycles, settled: {end:?} (baseline {baseline:?})");

    let criticals: Vec<String> = log.lock().unwrap().iter().filter(|l| l.contains("CRITICAL")).cloned().collect();
    assert!(criticals.is_empty(), "GLib critical errors in the log: {criticals:?}");
    assert!(end.rss_mb <= baseline.rss_mb * 1.05, "resident memory grew: {baseline:?} -> {end:?} (marks {marks:?})");
    assert!(end.threads <= baseline.threads + baseline.threads / 20, "threads grew: {baseline:?} -> {end:?}");
    assert!(end.fds <= baseline.fds + baseline.fds / 20, "file descriptors grew: {baseline:?} -> {end:?}");
}
