//! Publishers and viewers coming and going in quick succession (the add/remove paths of the
//! compositor, tees and mixer under load) never stall or crash the room.

mod support;

use std::time::{Duration, Instant};

use support::analysis::{coverage, PRESENT, TOLERANCE};
use support::client::{self, Publisher, Viewer, BLUE, GREEN, RED, YELLOW};
use support::server::Server;
use support::wait_for;

const CYCLES: usize = 10;

#[test]
fn join_and_leave_churn_keeps_the_room_running() {
    client::init();
    let mut server = Server::start_open();
    let room = "churn";
    let _steady = Publisher::start(server.addr, room, GREEN, 600);
    let watcher = Viewer::start(server.addr, room, None);
    wait_for(Duration::from_secs(10), "the steady publisher", || {
        let f = watcher.frame().ok_or("no frame")?;
        if coverage(&f, GREEN, TOLERANCE) >= PRESENT { Ok(()) } else { Err("green missing") }
    });
    let start = Instant::now();
    for i in 0..CYCLES {
        let colour = [RED, BLUE, YELLOW][i % 3];
        let guest = Publisher::start(server.addr, room, colour, 900 + 50 * i as u32);
        let extra = (i % 2 == 0).then(|| Viewer::start(server.addr, room, Some(&guest.token())));
        wait_for(Duration::from_secs(10), &format!("guest {i} on the picture"), || {
            let f = watcher.frame().ok_or("no frame")?;
            if coverage(&f, colour, TOLERANCE) >= PRESENT { Ok(()) } else { Err("guest colour missing") }
        });
        // Leave in different orders: viewer first, publisher first.
        if i % 4 == 0 {
            if let Some(v) = extra {
                assert_eq!(v.leave(), 200);
            }
            assert_eq!(guest.leave(), 200);
        } else {
            assert_eq!(guest.leave(), 200);
            if let Some(v) = extra {
                assert_eq!(v.leave(), 200);
            }
        }
        assert!(server.is_running(), "server died in cycle {i}");
    }
    let (frames, gap) = watcher.frames_since(start);
    eprintln!("{CYCLES} cycles in {:?}: {frames} frames at the watcher, largest gap {gap:?}", start.elapsed());
    assert!(gap < Duration::from_millis(300), "the picture stalled for {gap:?}");
    wait_for(Duration::from_secs(5), "only the steady publisher left", || {
        let f = watcher.frame().ok_or("no frame")?;
        let others = [RED, BLUE, YELLOW].iter().map(|c| coverage(&f, *c, TOLERANCE)).fold(0.0, f64::max);
        if coverage(&f, GREEN, TOLERANCE) > 0.5 && others < 0.005 { Ok(()) } else { Err(format!("others {others:.3}")) }
    });
}
