//! A publisher whose picture changes size mid-stream (a browser that adapts to a slower uplink
//! goes from 640x360 to 320x180 and back): the server's decoder and the tile follow without a
//! gap, and the others see the publisher throughout.

mod support;

use std::time::{Duration, Instant};

use support::analysis::{coverage, PRESENT, TOLERANCE};
use support::client::{self, Publisher, Source, Viewer, BLUE, RED};
use support::server::Server;
use support::wait_for;

/// Samples the viewer's picture every 20 ms for `how_long`: the least red coverage seen and
/// the longest time between two decoded frames.
fn watch(v: &Viewer, how_long: Duration) -> (f64, Duration) {
    let start = Instant::now();
    let mut least = f64::MAX;
    while start.elapsed() < how_long {
        if let Some(f) = v.frame() {
            least = least.min(coverage(&f, RED, TOLERANCE));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let r = v.received.lock().unwrap();
    let mut times: Vec<Instant> = r.frame_times.iter().copied().filter(|t| *t >= start).collect();
    times.sort();
    let longest = times.windows(2).map(|w| w[1] - w[0]).max().unwrap_or(how_long);
    (least, longest)
}

#[test]
fn a_publisher_that_changes_its_size_stays_in_the_picture_without_a_gap() {
    client::init();
    let server = Server::start_open();
    let room = "resize";
    let changing = Publisher::start_source(server.addr, room, Source::camera(RED, 440));
    let _other = Publisher::start_source(server.addr, room, Source::camera(BLUE, 660));
    let viewer = Viewer::start(server.addr, room, None);
    wait_for(Duration::from_secs(15), "the publisher in the picture", || {
        let f = viewer.frame().ok_or("no frame")?;
        let c = coverage(&f, RED, TOLERANCE);
        if c >= PRESENT { Ok(()) } else { Err(format!("red coverage {c}")) }
    });
    let (before, before_gap) = watch(&viewer, Duration::from_secs(2));
    let mut report = vec![format!("640x360: least red {before:.3}, longest gap {before_gap:?}")];
    for (w, h) in [(320, 180), (640, 360), (160, 90), (640, 480), (360, 640)] {
        changing.resize(w, h);
        let (least, gap) = watch(&viewer, Duration::from_secs(3));
        report.push(format!("{w}x{h}: least red {least:.3}, longest gap {gap:?}"));
        // Its tile keeps its place and colour (a black or broken frame would halve it; the
        // coarser snow of a smaller picture costs a quarter: 0.33 -> 0.24 measured).
        assert!(least >= before * 0.5 && least >= PRESENT, "the publisher stays in the picture at {w}x{h}: {report:?}");
        assert!(gap < Duration::from_millis(300), "no gap in the picture at {w}x{h}: {report:?}");
    }
    eprintln!("{}", report.join("; "));
}
