//! Four publishers, each a colour and a tone: a viewer sees every colour as a tile and hears
//! every tone; a publisher's own view leaves out exactly their own tone (mix-minus).

mod support;

use std::time::{Duration, Instant};

use support::analysis::{self, coverage, tone_level, PRESENT, TOLERANCE, TONE_ABSENT, TONE_PRESENT, WINDOW};
use support::client::{self, Publisher, Viewer, BLUE, GREEN, RED, YELLOW};
use support::server::Server;
use support::wait_for;

const COLOURS: [client::Rgb; 4] = [RED, GREEN, BLUE, YELLOW];
const TONES: [u32; 4] = [440, 620, 820, 1040];

#[test]
fn every_publisher_is_seen_and_heard_and_nobody_hears_themselves() {
    client::init();
    let server = Server::start_open();
    let room = "council";

    // A viewer before any publisher: black picture, silence.
    let early = Viewer::start(server.addr, room, None);
    let first_frame = wait_for(Duration::from_secs(10), "the first frame of an empty room", || {
        early.received.lock().unwrap().first_frame.ok_or_else(|| "no frame yet".to_string())
    });
    eprintln!("WHEP POST to first decoded frame: {} ms", (first_frame - early.posted_at).as_millis());
    let frame = early.frame().unwrap();
    let dark = frame.iter().all(|&v| v < 40);
    assert!(dark, "an empty room should be black");
    let quiet = wait_for(Duration::from_secs(5), "audio from the empty room", || early.audio(WINDOW / 2).ok_or("none yet"));
    let rms = (quiet.iter().map(|s| s * s).sum::<f32>() / quiet.len() as f32).sqrt();
    assert!(rms < 0.001, "an empty room should be silent, rms {rms}");

    let publishers: Vec<Publisher> = COLOURS
        .iter()
        .zip(TONES)
        .map(|(c, t)| Publisher::start(server.addr, room, *c, t))
        .collect();
    let own = Viewer::start(server.addr, room, Some(&publishers[0].token()));

    wait_for(Duration::from_secs(15), "every colour and tone at the early viewer", || {
        let frame = early.frame();
        let audio = early.audio(WINDOW);
        let ok = match (&frame, &audio) {
            (Some(f), Some(a)) => {
                COLOURS.iter().all(|c| coverage(f, *c, TOLERANCE) >= PRESENT)
                    && TONES.iter().all(|t| tone_level(a, f64::from(*t)) >= TONE_PRESENT)
            }
            _ => false,
        };
        if ok { Ok(()) } else { Err(analysis::describe(frame.as_deref(), audio.as_deref(), &COLOURS, &TONES)) }
    });

    wait_for(Duration::from_secs(15), "the first publisher's own view without their tone", || {
        let frame = own.frame();
        let audio = own.audio(WINDOW);
        let ok = match (&frame, &audio) {
            (Some(f), Some(a)) => {
                COLOURS.iter().all(|c| coverage(f, *c, TOLERANCE) >= PRESENT)
                    && TONES[1..].iter().all(|t| tone_level(a, f64::from(*t)) >= TONE_PRESENT)
                    && tone_level(a, f64::from(TONES[0])) <= TONE_ABSENT
            }
            _ => false,
        };
        if ok { Ok(()) } else { Err(analysis::describe(frame.as_deref(), audio.as_deref(), &COLOURS, &TONES)) }
    });

    // Measured, not asserted: the server's CPU with 4 publishers and 2 viewers.
    let (cpu0, t0) = (server.cpu_seconds(), Instant::now());
    std::thread::sleep(Duration::from_secs(5));
    let load = (server.cpu_seconds() - cpu0) / t0.elapsed().as_secs_f64();
    let (frames, gap) = early.frames_since(t0);
    eprintln!("server CPU with 4 publishers + 2 viewers: {:.0}% of one core; viewer got {frames} frames in 5 s, max gap {gap:?}", load * 100.0);
    assert!(frames > 0, "the mix keeps flowing");
}
