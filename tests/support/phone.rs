//! A phone of the bench's own, for measuring: SIP by hand over UDP (INVITE, ACK, the PIN as
//! SIP INFO, BYE) and G.711 A-law RTP through a small GStreamer pipeline whose sound is made
//! here (so the bench knows to the sample when it starts to speak) and whose received sound
//! is kept with its arrival time. baresip is the independent phone of the tests; this one is
//! for timing.

use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gst::prelude::*;

/// Received sound: when each piece arrived, and its samples (48 kHz mono).
pub type Heard = Arc<Mutex<Vec<(Instant, Vec<f32>)>>>;

pub struct Phone {
    sip: UdpSocket,
    server: SocketAddr,
    call_id: String,
    from_tag: String,
    to: String,
    contact: String,
    cseq: u32,
    pipeline: gst::Pipeline,
    speaking: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    pub heard: Heard,
}

fn random() -> u64 {
    let mut b = [0u8; 8];
    getrandom::fill(&mut b).expect("randomness");
    u64::from_le_bytes(b)
}

/// The value of header `name` in a SIP message.
fn header<'a>(message: &'a str, name: &str) -> Option<&'a str> {
    message.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

impl Phone {
    /// Calls Plenum's SIP port, is answered, and starts its RTP (silent until [`Phone::speak`]).
    pub fn call(sip_port: u16, number: &str, tone_hz: f64) -> Self {
        gst::init().expect("GStreamer");
        let sip = UdpSocket::bind("127.0.0.1:0").expect("a SIP socket");
        sip.set_read_timeout(Some(Duration::from_secs(5))).expect("a timeout");
        let me = sip.local_addr().expect("its address");
        let rtp_port = UdpSocket::bind("127.0.0.1:0").and_then(|s| s.local_addr()).expect("an RTP port").port();
        let server: SocketAddr = ([127, 0, 0, 1], sip_port).into();
        let (call_id, from_tag) = (format!("{:x}@bench", random()), format!("{:x}", random()));
        let sdp = format!(
            "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio {rtp_port} RTP/AVP 8 101\r\n\
             a=rtpmap:8 PCMA/8000\r\na=rtpmap:101 telephone-event/8000\r\na=ptime:20\r\na=sendrecv\r\n"
        );
        let invite = format!(
            "INVITE sip:dial@{server} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bK{:x};rport\r\nFrom: <sip:{number}@127.0.0.1>;tag={from_tag}\r\n\
             To: <sip:dial@{server}>\r\nCall-ID: {call_id}\r\nCSeq: 1 INVITE\r\nContact: <sip:bench@{me}>\r\nMax-Forwards: 70\r\n\
             Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}",
            random(),
            sdp.len()
        );
        sip.send_to(invite.as_bytes(), server).expect("INVITE sent");
        let answer = loop {
            let mut buf = [0u8; 8192];
            let n = sip.recv(&mut buf).expect("an answer to the INVITE");
            let text = String::from_utf8_lossy(&buf[..n]).into_owned();
            if text.starts_with("SIP/2.0 1") {
                continue;
            }
            assert!(text.starts_with("SIP/2.0 200"), "the call is answered: {}", text.lines().next().unwrap_or_default());
            break text;
        };
        let to = header(&answer, "To").expect("To").to_string();
        let contact = header(&answer, "Contact").and_then(|c| c.split(['<', '>']).nth(1)).expect("Contact").to_string();
        let body = answer.split("\r\n\r\n").nth(1).unwrap_or_default();
        let plenum_rtp: u16 = body.lines().find_map(|l| l.strip_prefix("m=audio ")?.split(' ').next()?.parse().ok()).expect("Plenum's RTP port");
        let mut phone = Self {
            sip,
            server,
            call_id,
            from_tag,
            to,
            contact,
            cseq: 1,
            pipeline: gst::Pipeline::new(),
            speaking: Arc::default(),
            stop: Arc::default(),
            heard: Arc::default(),
        };
        phone.request("ACK", 1, random(), "", "");
        phone.start_media(rtp_port, plenum_rtp, tone_hz);
        phone
    }

    /// Sends `method` in the call; the same `branch` again is a retransmission.
    fn request(&mut self, method: &str, cseq: u32, branch: u64, content_type: &str, body: &str) {
        let me = self.sip.local_addr().expect("its address");
        let kind = if content_type.is_empty() { String::new() } else { format!("Content-Type: {content_type}\r\n") };
        let text = format!(
            "{method} {} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bK{branch:x};rport\r\nFrom: <sip:bench@127.0.0.1>;tag={}\r\nTo: {}\r\n\
             Call-ID: {}\r\nCSeq: {cseq} {method}\r\nMax-Forwards: 70\r\n{kind}Content-Length: {}\r\n\r\n{body}",
            self.contact,
            self.from_tag,
            self.to,
            self.call_id,
            body.len()
        );
        self.sip.send_to(text.as_bytes(), self.server).expect("sent");
    }

    /// Types `keys` as SIP INFO (one request each, sent again every half second until it is
    /// answered, as a UAC does over UDP: one that arrives with the ACK may go unanswered).
    pub fn keys(&mut self, keys: &str) {
        self.sip.set_read_timeout(Some(Duration::from_millis(500))).expect("a timeout");
        for key in keys.chars() {
            self.cseq += 1;
            let cseq = self.cseq;
            let (body, branch) = (format!("Signal={key}\r\nDuration=160\r\n"), random());
            'tries: for _ in 0..6 {
                self.request("INFO", cseq, branch, "application/dtmf-relay", &body);
                let mut buf = [0u8; 8192];
                while let Ok(n) = self.sip.recv(&mut buf) {
                    let text = String::from_utf8_lossy(&buf[..n]);
                    if text.starts_with("SIP/2.0") && header(&text, "CSeq") == Some(&format!("{cseq} INFO")) {
                        break 'tries;
                    }
                }
            }
        }
        self.sip.set_read_timeout(Some(Duration::from_secs(5))).expect("a timeout");
    }

    fn start_media(&mut self, rtp_port: u16, plenum_rtp: u16, tone_hz: f64) {
        let description = format!(
            "appsrc name=mouth is-live=true format=time do-timestamp=true caps=audio/x-raw,format=S16LE,rate=8000,channels=1,layout=interleaved \
             ! alawenc ! rtppcmapay pt=8 min-ptime=20000000 max-ptime=20000000 ! udpsink host=127.0.0.1 port={plenum_rtp} sync=false async=false \
             udpsrc address=127.0.0.1 port={rtp_port} caps=\"application/x-rtp,media=audio,clock-rate=8000,encoding-name=PCMA,payload=8\" \
             ! rtpjitterbuffer latency=40 ! rtppcmadepay ! alawdec ! audioconvert ! audioresample \
             ! audio/x-raw,format=F32LE,rate=48000,channels=1 ! appsink name=ear sync=false"
        );
        let pipeline = gst::parse::launch(&description).expect("the phone's pipeline").downcast::<gst::Pipeline>().expect("a pipeline");
        let ear = pipeline.by_name("ear").and_then(|e| e.downcast::<gst_app::AppSink>().ok()).expect("its ear");
        let heard = self.heard.clone();
        ear.set_callbacks(
            gst_app::AppSinkCallbacks::builder()
                .new_sample(move |sink| {
                    let sample = sink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                    if let Some(map) = sample.buffer().and_then(|b| b.map_readable().ok()) {
                        let samples = map.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
                        heard.lock().unwrap().push((Instant::now(), samples));
                    }
                    Ok(gst::FlowSuccess::Ok)
                })
                .build(),
        );
        let mouth = pipeline.by_name("mouth").and_then(|e| e.downcast::<gst_app::AppSrc>().ok()).expect("its mouth");
        pipeline.set_state(gst::State::Playing).expect("the phone's pipeline plays");
        let (speaking, stop) = (self.speaking.clone(), self.stop.clone());
        // 20 ms of tone or silence every 20 ms, paced by the clock.
        std::thread::spawn(move || {
            let mut phase = 0.0f64;
            let mut next = Instant::now();
            while !stop.load(Ordering::Relaxed) {
                let on = speaking.load(Ordering::Relaxed);
                let samples: Vec<u8> = (0..160)
                    .flat_map(|_| {
                        phase += 2.0 * std::f64::consts::PI * tone_hz / 8000.0;
                        let v = if on { (phase.sin() * 0.3 * f64::from(i16::MAX)) as i16 } else { 0 };
                        v.to_le_bytes()
                    })
                    .collect();
                let _ = mouth.push_buffer(gst::Buffer::from_mut_slice(samples));
                next += Duration::from_millis(20);
                std::thread::sleep(next.saturating_duration_since(Instant::now()));
            }
        });
        self.pipeline = pipeline;
    }

    /// The phone's tone on or off from the next 20 ms on.
    pub fn speak(&self, on: bool) {
        self.speaking.store(on, Ordering::Relaxed);
    }

    /// When the phone first heard `hz` (at `level` or more, judged over 20 ms) after `since`.
    pub fn heard_from(&self, since: Instant, hz: f64, level: f64) -> Option<Instant> {
        let heard = self.heard.lock().unwrap();
        let mut window: Vec<f32> = Vec::new();
        for (at, samples) in heard.iter().filter(|(at, _)| *at >= since) {
            window.extend_from_slice(samples);
            while window.len() >= 960 {
                if super::analysis::tone_level(&window[..960], hz) >= level {
                    return Some(*at);
                }
                window.drain(..960);
            }
        }
        None
    }

    pub fn hang_up(mut self) {
        self.cseq += 1;
        let cseq = self.cseq;
        self.request("BYE", cseq, random(), "", "");
    }
}

impl Drop for Phone {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}
