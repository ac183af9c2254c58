//! The SDP of a phone call (RFC 3264 offer/answer, plain RTP): what a caller offers, the one
//! codec Plenum picks from it, and the answer. Pure: text in, text out.

use std::net::IpAddr;

/// The codecs a caller may speak. The room's audio stays 48 kHz: each is converted at the
/// call's edge.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Codec {
    Opus,
    G722,
    Pcma,
    Pcmu,
}

impl Codec {
    /// Best first: Opus (wideband, robust), G.722 (wideband), then G.711 A-law (Europe's
    /// trunks) and µ-law.
    const PREFERENCE: [Codec; 4] = [Codec::Opus, Codec::G722, Codec::Pcma, Codec::Pcmu];

    /// The encoding name in `a=rtpmap`, lower case.
    fn encoding(self) -> &'static str {
        match self {
            Codec::Opus => "opus",
            Codec::G722 => "g722",
            Codec::Pcma => "pcma",
            Codec::Pcmu => "pcmu",
        }
    }

    /// The static payload type, if it has one.
    fn static_pt(self) -> Option<u8> {
        match self {
            Codec::Pcmu => Some(0),
            Codec::Pcma => Some(8),
            Codec::G722 => Some(9),
            Codec::Opus => None,
        }
    }

    /// The RTP clock rate (G.722's is 8000 by a historical error of RFC 1890, though it
    /// samples at 16 kHz).
    pub fn clock_rate(self) -> u32 {
        match self {
            Codec::Opus => 48_000,
            _ => 8_000,
        }
    }

    /// The `a=rtpmap` value after the payload type.
    fn rtpmap(self) -> &'static str {
        match self {
            Codec::Opus => "opus/48000/2",
            Codec::G722 => "G722/8000",
            Codec::Pcma => "PCMA/8000",
            Codec::Pcmu => "PCMU/8000",
        }
    }

    /// What the call pipeline names it (`encoding-name` in RTP caps).
    pub fn caps_name(self) -> &'static str {
        match self {
            Codec::Opus => "OPUS",
            Codec::G722 => "G722",
            Codec::Pcma => "PCMA",
            Codec::Pcmu => "PCMU",
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Codec::Opus => "opus",
            Codec::G722 => "G.722",
            Codec::Pcma => "G.711 A-law",
            Codec::Pcmu => "G.711 µ-law",
        }
    }
}

/// What a caller's offer says about the call's audio.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Offer {
    /// Where the caller wants RTP.
    pub address: IpAddr,
    pub port: u16,
    /// The codec picked and its payload type in this call.
    pub codec: Codec,
    pub pt: u8,
    /// RFC 4733 telephone-event's payload type (8 kHz), if offered.
    pub dtmf_pt: Option<u8>,
}

/// Why an offer cannot be answered (SIP 488 or 400).
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum SdpError {
    #[error("no audio stream in the offer")]
    NoAudio,
    #[error("only plain RTP/AVP audio is taken, not {0}")]
    Profile(String),
    #[error("none of the offered codecs is taken (Opus, G.722, G.711 A-law or µ-law)")]
    NoCodec,
    #[error("the offer has no usable connection address")]
    NoAddress,
    #[error("the offer is not valid SDP: {0}")]
    Malformed(&'static str),
}

impl SdpError {
    /// Whether the offer is well-formed but not acceptable (488) rather than broken (400).
    pub fn not_acceptable(&self) -> bool {
        !matches!(self, SdpError::Malformed(_))
    }
}

/// The longest offer read.
const MAX_SDP: usize = 16 * 1024;

/// Reads a caller's offer and picks a codec.
pub fn read_offer(text: &str) -> Result<Offer, SdpError> {
    if text.len() > MAX_SDP {
        return Err(SdpError::Malformed("too long"));
    }
    if !text.trim_start().starts_with("v=0") {
        return Err(SdpError::Malformed("it does not start with v=0"));
    }
    let mut session_address = None;
    let mut audio: Option<(u16, String, Vec<u8>)> = None;
    let mut audio_address = None;
    let mut rtpmaps: Vec<(u8, String)> = Vec::new();
    let mut in_audio = false;
    let mut audio_seen = false;
    for line in text.lines().map(str::trim_end) {
        let Some((kind, value)) = line.split_once('=') else { continue };
        match kind {
            "m" => {
                in_audio = false;
                let mut parts = value.split_whitespace();
                if parts.next() != Some("audio") || audio_seen {
                    continue;
                }
                audio_seen = true;
                in_audio = true;
                let port = parts.next().and_then(|p| p.split('/').next()?.parse::<u16>().ok()).ok_or(SdpError::Malformed("bad m= port"))?;
                let proto = parts.next().ok_or(SdpError::Malformed("m= has no protocol"))?.to_string();
                let fmts = parts.filter_map(|f| f.parse::<u8>().ok()).collect();
                audio = Some((port, proto, fmts));
            }
            "c" => {
                let address = value.split_whitespace().nth(2).and_then(|a| a.split('/').next()?.parse::<IpAddr>().ok());
                if in_audio {
                    audio_address = address;
                } else if !audio_seen {
                    session_address = address;
                }
            }
            "a" if in_audio => {
                if let Some(map) = value.strip_prefix("rtpmap:") {
                    if let Some((pt, rest)) = map.split_once(' ') {
                        if let Ok(pt) = pt.trim().parse::<u8>() {
                            rtpmaps.push((pt, rest.trim().to_ascii_lowercase()));
                        }
                    }
                }
            }
            _ => {}
        }
    }
    let (port, proto, fmts) = audio.ok_or(SdpError::NoAudio)?;
    if proto != "RTP/AVP" {
        return Err(SdpError::Profile(proto));
    }
    if port == 0 {
        return Err(SdpError::NoAudio);
    }
    let address = audio_address.or(session_address).ok_or(SdpError::NoAddress)?;
    if address.is_unspecified() {
        return Err(SdpError::NoAddress);
    }
    let named = |pt: u8| rtpmaps.iter().find(|(p, _)| *p == pt).map(|(_, m)| m.as_str());
    let is = |pt: u8, codec: Codec| match named(pt) {
        Some(map) => map.split('/').next() == Some(codec.encoding()) && (codec != Codec::Opus || map.starts_with("opus/48000")),
        None => codec.static_pt() == Some(pt),
    };
    let (codec, pt) = Codec::PREFERENCE
        .iter()
        .find_map(|&codec| fmts.iter().find(|&&pt| is(pt, codec)).map(|&pt| (codec, pt)))
        .ok_or(SdpError::NoCodec)?;
    let dtmf_pt = fmts.iter().copied().find(|&pt| named(pt).is_some_and(|m| m == "telephone-event/8000"));
    Ok(Offer { address, port, codec, pt, dtmf_pt })
}

/// The answer: Plenum's RTP at `address:port`, the offer's codec and telephone-event.
pub fn answer(offer: &Offer, address: IpAddr, port: u16, session: u64) -> String {
    let family = if address.is_ipv4() { "IP4" } else { "IP6" };
    let mut fmts = offer.pt.to_string();
    let mut attributes = format!("a=rtpmap:{} {}\r\n", offer.pt, offer.codec.rtpmap());
    if offer.codec == Codec::Opus {
        attributes.push_str(&format!("a=fmtp:{} useinbandfec=1\r\n", offer.pt));
    }
    if let Some(te) = offer.dtmf_pt {
        fmts.push_str(&format!(" {te}"));
        attributes.push_str(&format!("a=rtpmap:{te} telephone-event/8000\r\na=fmtp:{te} 0-16\r\n"));
    }
    format!(
        "v=0\r\no=plenum {session} {session} IN {family} {address}\r\ns=Plenum\r\nc=IN {family} {address}\r\nt=0 0\r\n\
         m=audio {port} RTP/AVP {fmts}\r\n{attributes}a=ptime:20\r\na=sendrecv\r\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const BARESIP: &str = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
        m=audio 10000 RTP/AVP 0 8 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n\
        a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\na=sendrecv\r\n";

    #[test]
    fn a_law_is_taken_before_mu_law_and_telephone_events_are_kept() {
        let offer = read_offer(BARESIP).unwrap();
        assert_eq!(offer, Offer { address: "127.0.0.1".parse().unwrap(), port: 10000, codec: Codec::Pcma, pt: 8, dtmf_pt: Some(101) });
        let answer = answer(&offer, "127.0.0.1".parse().unwrap(), 40000, 7);
        assert!(answer.contains("m=audio 40000 RTP/AVP 8 101\r\n"), "{answer}");
        assert!(answer.contains("a=rtpmap:8 PCMA/8000\r\na=rtpmap:101 telephone-event/8000\r\n"), "{answer}");
        // The answer reads as an offer of the same call.
        let back = read_offer(&answer).unwrap();
        assert_eq!((back.codec, back.pt, back.dtmf_pt, back.port), (Codec::Pcma, 8, Some(101), 40000));
    }

    #[test]
    fn opus_and_g722_are_preferred_when_offered() {
        let offer = BARESIP.replace("RTP/AVP 0 8 101", "RTP/AVP 0 9 96 101").replace("a=rtpmap:8 PCMA/8000\r\n", "a=rtpmap:96 opus/48000/2\r\n");
        let o = read_offer(&offer).unwrap();
        assert_eq!((o.codec, o.pt), (Codec::Opus, 96));
        assert!(answer(&o, "10.0.0.1".parse().unwrap(), 4, 1).contains("a=fmtp:96 useinbandfec=1"));
        let g722 = BARESIP.replace("RTP/AVP 0 8 101", "RTP/AVP 9 0");
        assert_eq!(read_offer(&g722).unwrap().codec, Codec::G722);
    }

    #[test]
    fn media_address_overrides_the_session_address() {
        let offer = BARESIP.replace("a=rtpmap:0", "c=IN IP4 192.0.2.7\r\na=rtpmap:0");
        assert_eq!(read_offer(&offer).unwrap().address, "192.0.2.7".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn offers_that_cannot_be_taken_say_why() {
        assert_eq!(read_offer("hello"), Err(SdpError::Malformed("it does not start with v=0")));
        assert_eq!(read_offer(&BARESIP.replace("RTP/AVP 0 8 101", "RTP/SAVP 0")), Err(SdpError::Profile("RTP/SAVP".into())));
        assert_eq!(read_offer(&BARESIP.replace("RTP/AVP 0 8 101", "RTP/AVP 3 101")), Err(SdpError::NoCodec));
        assert_eq!(read_offer(&BARESIP.replace("m=audio", "m=video")), Err(SdpError::NoAudio));
        assert_eq!(read_offer(&BARESIP.replace("c=IN IP4 127.0.0.1", "c=IN IP4 0.0.0.0")), Err(SdpError::NoAddress));
        assert!(read_offer(&BARESIP.replace("m=audio 10000", "m=audio x")).is_err());
        assert!(!SdpError::Malformed("x").not_acceptable() && SdpError::NoCodec.not_acceptable());
    }

    proptest::proptest! {
        #[test]
        fn any_text_is_read_without_panicking(text in "v=0\r\n(([a-z]=[ -~]{0,40})\r\n){0,12}") {
            let _ = read_offer(&text);
        }
    }
}
