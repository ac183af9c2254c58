//! One phone call's media: its own small pipeline, converting at the edge between the
//! caller's codec (G.711, G.722, Opus over plain RTP) and the room's 48 kHz mono samples.
//! Its failure never reaches a room: the room only sees samples.
//!
//! ```text
//!  udpsrc ─(telephone-events taken out: keys)─▶ jitterbuffer ─▶ depay ─▶ decode ─▶ S16 48k ─▶ appsink ─▶ voice
//!  mix or prompt ─▶ appsrc (S16 48k) ─▶ resample ─▶ encode ─▶ pay ─▶ udpsink (the caller's RTP address)
//! ```

use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use gst::prelude::*;
use tokio::sync::mpsc;

use super::keys::EventReader;
use super::sdp::{Codec, Offer};
use crate::config::PortRange;
use crate::media::{gst_err, mix_appsrc, AppSrcSink, InputFeed, MediaError, MixSink};

/// The caller's jitterbuffer (ms): phones send 20 ms packets over networks of any kind.
const JITTER_MS: u32 = 60;

/// Where the caller's decoded voice goes: nowhere until they are in a room.
type VoiceRoute = Arc<Mutex<Option<InputFeed>>>;

/// What the caller hears: pushed every 10 ms, by the room's mixer (everyone but them) or by
/// the call itself (prompts, the waiting room), with cues laid over it.
#[derive(Clone)]
pub struct Earpiece {
    inner: Arc<Mutex<EarpieceInner>>,
}

struct EarpieceInner {
    sink: AppSrcSink,
    cue: VecDeque<i16>,
}

impl Earpiece {
    /// Lays `samples` (48 kHz) over what the caller hears next.
    pub fn cue(&self, samples: Vec<i16>) {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        inner.cue.clear();
        inner.cue.extend(samples);
    }

    /// Whether a cue is still playing.
    pub fn cue_playing(&self) -> bool {
        !self.inner.lock().unwrap_or_else(|p| p.into_inner()).cue.is_empty()
    }
}

impl MixSink for Earpiece {
    fn push(&self, samples: &[i16]) {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if inner.cue.is_empty() {
            inner.sink.push(samples);
            return;
        }
        let mixed: Vec<i16> = samples.iter().map(|&s| s.saturating_add(inner.cue.pop_front().unwrap_or(0))).collect();
        inner.sink.push(&mixed);
    }
}

/// A call's running media.
pub struct CallMedia {
    pipeline: gst::Pipeline,
    /// Plenum's RTP port for this call (in the answer).
    pub port: u16,
    pub earpiece: Earpiece,
    voice: VoiceRoute,
    /// When the last RTP packet came from the caller.
    last_heard: Arc<Mutex<Instant>>,
}

/// The elements after the jitterbuffer (decoding) and before the payloader (encoding).
fn codec_elements(codec: Codec, pt: u8) -> (String, String) {
    match codec {
        Codec::Pcmu => ("rtppcmudepay ! mulawdec".into(), format!("audio/x-raw,rate=8000 ! mulawenc ! rtppcmupay pt={pt} min-ptime=20000000 max-ptime=20000000")),
        Codec::Pcma => ("rtppcmadepay ! alawdec".into(), format!("audio/x-raw,rate=8000 ! alawenc ! rtppcmapay pt={pt} min-ptime=20000000 max-ptime=20000000")),
        Codec::G722 => ("rtpg722depay ! avdec_g722".into(), format!("audio/x-raw,rate=16000 ! avenc_g722 ! rtpg722pay pt={pt} min-ptime=20000000 max-ptime=20000000")),
        Codec::Opus => (
            "rtpopusdepay ! opusdec use-inband-fec=true plc=true".into(),
            format!("audio/x-raw,rate=48000 ! opusenc frame-size=20 inband-fec=true packet-loss-percentage=5 ! rtpopuspay pt={pt}"),
        ),
    }
}

/// A free UDP port on `address`, within `range` if one is given.
fn free_port(address: IpAddr, range: Option<PortRange>) -> Result<u16, MediaError> {
    let taken = |port: u16| UdpSocket::bind(SocketAddr::new(address, port)).ok().and_then(|s| s.local_addr().ok()).map(|a| a.port());
    match range {
        None => taken(0),
        Some(r) => {
            // Start anywhere in the range so that calls do not all fight for its first port.
            let span = u32::from(r.max - r.min) + 1;
            let mut dice = [0u8; 4];
            let _ = getrandom::fill(&mut dice);
            let start = u32::from_le_bytes(dice) % span;
            (0..span).map(|i| r.min + ((start + i) % span) as u16).find_map(taken)
        }
    }
    .ok_or_else(|| MediaError::Internal("no free UDP port for the call's RTP".into()))
}

impl CallMedia {
    /// Starts the call's pipeline: RTP in on a free port of `local`, out to the caller's
    /// address from the offer; keys pressed go to `keys`.
    pub fn start(name: &str, offer: &Offer, local: IpAddr, ports: Option<PortRange>, keys: mpsc::UnboundedSender<char>) -> Result<Self, MediaError> {
        let port = free_port(local, ports)?;
        let (decode, encode) = codec_elements(offer.codec, offer.pt);
        let description = format!(
            "udpsrc name=rtp address={local} port={port} caps=\"application/x-rtp,media=audio,clock-rate={rate},encoding-name={enc},payload={pt}\" \
             ! rtpjitterbuffer latency={JITTER_MS} drop-on-latency=true ! {decode} ! audioconvert ! audioresample \
             ! audio/x-raw,format=S16LE,rate=48000,channels=1 ! appsink name=voice sync=false max-buffers=50 drop=true \
             audioconvert name=mix ! audioresample ! {encode} \
             ! udpsink name=out host={host} port={rport} sync=false async=false",
            rate = offer.codec.clock_rate(),
            enc = offer.codec.caps_name(),
            pt = offer.pt,
            host = offer.address,
            rport = offer.port,
        );
        let pipeline = gst::parse::launch(&description).map_err(gst_err)?.downcast::<gst::Pipeline>().map_err(|_| MediaError::Internal("not a pipeline".into()))?;
        pipeline.set_property("name", name);
        // What the caller hears comes in as the room's encoders get their mixes.
        let head = pipeline.by_name("mix").ok_or_else(|| MediaError::Internal("no converter".into()))?;
        let appsrc = mix_appsrc("earpiece");
        pipeline.add(&appsrc).map_err(gst_err)?;
        appsrc.link(&head).map_err(gst_err)?;

        let last_heard = Arc::new(Mutex::new(Instant::now()));
        watch_rtp(&pipeline, offer, keys, last_heard.clone())?;
        let voice: VoiceRoute = Arc::default();
        let sink = pipeline.by_name("voice").and_then(|e| e.downcast::<gst_app::AppSink>().ok()).ok_or_else(|| MediaError::Internal("no appsink".into()))?;
        let route = voice.clone();
        sink.set_callbacks(
            gst_app::AppSinkCallbacks::builder()
                .new_sample(move |sink| {
                    let sample = sink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                    if let (Some(buffer), Some(feed)) = (sample.buffer(), route.lock().unwrap_or_else(|p| p.into_inner()).as_ref()) {
                        if let Ok(map) = buffer.map_readable() {
                            let samples: Vec<i16> = map.chunks_exact(2).map(|b| i16::from_le_bytes([b[0], b[1]])).collect();
                            feed.push(&samples);
                        }
                    }
                    Ok(gst::FlowSuccess::Ok)
                })
                .build(),
        );
        pipeline.set_state(gst::State::Playing).map_err(gst_err)?;
        let earpiece = Earpiece { inner: Arc::new(Mutex::new(EarpieceInner { sink: AppSrcSink::new(appsrc), cue: VecDeque::new() })) };
        Ok(Self { pipeline, port, earpiece, voice, last_heard })
    }

    /// From now on the caller's voice goes into `feed` (a room's mixer), or nowhere.
    pub fn route_voice(&self, feed: Option<InputFeed>) {
        *self.voice.lock().unwrap_or_else(|p| p.into_inner()) = feed;
    }

    /// How long nothing came from the caller.
    pub fn silent_for(&self) -> std::time::Duration {
        self.last_heard.lock().unwrap_or_else(|p| p.into_inner()).elapsed()
    }

    /// An error the pipeline posted, if any (a dead call).
    pub fn failed(&self) -> Option<String> {
        let bus = self.pipeline.bus()?;
        let msg = bus.pop_filtered(&[gst::MessageType::Error])?;
        match msg.view() {
            gst::MessageView::Error(e) => Some(e.error().to_string()),
            _ => None,
        }
    }
}

impl Drop for CallMedia {
    fn drop(&mut self) {
        self.route_voice(None);
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}

/// Reads every RTP packet from the caller as it arrives: notes that the caller is there,
/// takes telephone-events out (as keys), and lets only the call's own payload type on.
fn watch_rtp(pipeline: &gst::Pipeline, offer: &Offer, keys: mpsc::UnboundedSender<char>, last_heard: Arc<Mutex<Instant>>) -> Result<(), MediaError> {
    let src = pipeline.by_name("rtp").and_then(|e| e.static_pad("src")).ok_or_else(|| MediaError::Internal("no udpsrc".into()))?;
    let (voice_pt, dtmf_pt) = (offer.pt, offer.dtmf_pt);
    let reader = Mutex::new(EventReader::default());
    src.add_probe(gst::PadProbeType::BUFFER, move |_, info| {
        let Some(buffer) = info.buffer() else { return gst::PadProbeReturn::Ok };
        let Ok(map) = buffer.map_readable() else { return gst::PadProbeReturn::Drop };
        let Some(packet) = RtpPacket::read(&map) else { return gst::PadProbeReturn::Drop };
        *last_heard.lock().unwrap_or_else(|p| p.into_inner()) = Instant::now();
        if Some(packet.pt) == dtmf_pt {
            if let Some(key) = reader.lock().unwrap_or_else(|p| p.into_inner()).packet(packet.timestamp, packet.payload) {
                let _ = keys.send(key);
            }
            return gst::PadProbeReturn::Drop;
        }
        if packet.pt == voice_pt { gst::PadProbeReturn::Ok } else { gst::PadProbeReturn::Drop }
    });
    Ok(())
}

/// The parts of an RTP packet (RFC 3550 §5.1) the call reads.
struct RtpPacket<'a> {
    pt: u8,
    timestamp: u32,
    payload: &'a [u8],
}

impl<'a> RtpPacket<'a> {
    fn read(data: &'a [u8]) -> Option<Self> {
        if data.len() < 12 || data[0] >> 6 != 2 {
            return None;
        }
        let csrcs = usize::from(data[0] & 0x0f);
        let mut start = 12 + 4 * csrcs;
        if data[0] & 0x10 != 0 {
            let words = usize::from(u16::from_be_bytes([*data.get(start + 2)?, *data.get(start + 3)?]));
            start += 4 + 4 * words;
        }
        let mut end = data.len();
        if data[0] & 0x20 != 0 {
            end = end.checked_sub(usize::from(*data.last()?))?;
        }
        let payload = data.get(start..end)?;
        Some(Self { pt: data[1] & 0x7f, timestamp: u32::from_be_bytes([data[4], data[5], data[6], data[7]]), payload })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rtp_packets_are_read_with_csrcs_extensions_and_padding() {
        let mut p = vec![0x80, 101, 0, 1, 0, 0, 0x03, 0xe8, 1, 2, 3, 4, 5, 10, 0, 160];
        let r = RtpPacket::read(&p).unwrap();
        assert_eq!((r.pt, r.timestamp, r.payload), (101, 1000, &[5u8, 10, 0, 160][..]));
        // One CSRC, an extension of one word, two bytes of padding.
        p = vec![0xb1, 0x80 | 8, 0, 1, 0, 0, 0, 1, 1, 2, 3, 4, 9, 9, 9, 9, 0xbe, 0xde, 0, 1, 7, 7, 7, 7, 42, 43, 0, 2];
        let r = RtpPacket::read(&p).unwrap();
        assert_eq!((r.pt, r.payload), (8, &[42u8, 43][..]));
        assert!(RtpPacket::read(&[0x80, 0, 0]).is_none());
        assert!(RtpPacket::read(&[0x40; 12]).is_none(), "version 1");
        assert!(RtpPacket::read(&[0xa0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 200]).is_none(), "padding past the start");
    }
}
