//! Participants joined over the control WebSocket publish and view with their token: each
//! hears the others but not themselves, even when the view starts before the microphone. When
//! a participant's control connection goes away, their tile and voice leave the mix.

mod support;

use std::time::{Duration, Instant};

use support::analysis::{self, coverage, tone_level, ABSENT, PRESENT, TOLERANCE, TONE_ABSENT, TONE_PRESENT, WINDOW};
use support::client::{self, Publisher, Rgb, Source, Viewer, BLUE, GREEN, RED};
use support::server::Server;
use support::wait_for;
use support::ws::Control;

const COLOURS: [Rgb; 3] = [RED, GREEN, BLUE];
const TONES: [u32; 3] = [480, 680, 960];

fn check(viewer: &Viewer, present: [bool; 3]) -> Result<(), String> {
    let frame = viewer.frame();
    let audio = viewer.audio(WINDOW);
    let ok = match (&frame, &audio) {
        (Some(f), Some(a)) => (0..3).all(|i| {
            let t = tone_level(a, f64::from(TONES[i]));
            let heard = if present[i] { t >= TONE_PRESENT } else { t <= TONE_ABSENT };
            heard && coverage(f, COLOURS[i], TOLERANCE) >= PRESENT
        }),
        _ => false,
    };
    if ok { Ok(()) } else { Err(analysis::describe(frame.as_deref(), audio.as_deref(), &COLOURS, &TONES)) }
}

#[test]
fn each_participant_hears_the_others_but_not_themselves() {
    client::init();
    let server = Server::start();
    let room = "meeting";
    let mut people = Vec::new();
    for (i, name) in ["Ada", "Bo", "Cem"].iter().enumerate() {
        let (control, _, token) = Control::join(server.addr, room, name);
        // View first, then publish: the mix must leave out the own voice from the start.
        let viewer = Viewer::start(server.addr, room, Some(&token));
        let publisher = Publisher::start_as(server.addr, room, Source::new(COLOURS[i], TONES[i]), Some(&token));
        people.push((control, viewer, publisher));
    }
    for (i, (_, viewer, _)) in people.iter().enumerate() {
        let mut expect = [true; 3];
        expect[i] = false;
        wait_for(Duration::from_secs(15), &format!("participant {i} hears the others only"), || check(viewer, expect));
    }

    // Each mix packet holds 20 ms: its RTP timestamp is 960 after the one before, exactly (a
    // browser conceals any gap between two packets' samples: a few samples off each time made
    // it conceal a third of all it played). Judged after the first second, in which the room
    // is still being built around the mix (a stalled tick is a real gap, and the encoder's
    // first packet is shifted by its look-ahead).
    wait_for(Duration::from_secs(10), "three seconds of Ada's mix on the wire", || {
        let n = people[0].1.received.lock().unwrap().opus_stamps.len();
        if n >= 150 { Ok(()) } else { Err(format!("{n} Opus packets")) }
    });
    let stamps = people[0].1.received.lock().unwrap().opus_stamps.clone();
    let steps: Vec<(usize, u32)> = stamps
        .windows(2)
        .enumerate()
        .skip(50)
        .filter(|(_, w)| w[1].0 == w[0].0.wrapping_add(1))
        .map(|(i, w)| (i, w[1].1.wrapping_sub(w[0].1)))
        .collect();
    let off: Vec<(usize, u32)> = steps.iter().copied().filter(|(_, d)| *d != 960).collect();
    assert!(steps.len() >= 90 && off.is_empty(), "RTP timestamp steps other than 960 among {}: {off:?}", steps.len());

    // Cem's control connection goes away (tab closed): tile and voice leave within 5 s.
    let (control, _, _) = people.pop().expect("three people");
    let gone = Instant::now();
    drop(control);
    wait_for(Duration::from_secs(5), "Cem gone from Ada's mix", || {
        let frame = people[0].1.frame().ok_or("no frame")?;
        let audio = people[0].1.audio(WINDOW / 2).ok_or("no audio")?;
        if coverage(&frame, BLUE, TOLERANCE) <= ABSENT && tone_level(&audio, 960.0) <= TONE_ABSENT {
            Ok(())
        } else {
            Err(analysis::describe(Some(&frame), Some(&audio), &COLOURS, &TONES))
        }
    });
    eprintln!("control connection closed to gone from the mix: {} ms", gone.elapsed().as_millis());
}

#[test]
fn a_bearer_that_is_no_participant_cannot_publish() {
    client::init();
    let server = Server::start();
    let sdp = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=fingerprint:sha-256 AB\r\na=ice-ufrag:abcd\r\n\
a=ice-pwd:0123456789012345678901\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\na=sendonly\r\n\
a=rtpmap:111 opus/48000/2\r\n";
    let headers = [("Content-Type", "application/sdp"), ("Authorization", "Bearer 0123456789abcdef0123456789abcdef")];
    let r = server.request("POST", "/whip/meeting", &headers, sdp.as_bytes());
    assert_eq!(r.status, 401, "{}", r.body);
}
