//! Reading offers: which m-line carries what, with which payload type, and whether the offer is
//! usable at all. Also the one rewrite we do on answers (announcing a public IP).

use std::net::IpAddr;

use gst_sdp::{SDPMediaRef, SDPMessage, SDPMessageRef};

use crate::profiles::VideoCodec;

/// Largest offer accepted (bytes). Real browser offers are 3-8 KiB.
pub const MAX_OFFER_BYTES: usize = 64 * 1024;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SdpError {
    #[error("offer is not valid SDP: {0}")]
    Unparsable(&'static str),
    #[error("offer has no usable codec (video: VP8 or H.264, audio: Opus)")]
    NoUsableCodec,
}

/// The codec chosen for one m-line, with the offer's payload type and codec caps (the form
/// webrtcbin wants for `codec-preferences`).
#[derive(Debug, Clone)]
pub struct Track {
    pub mline: u32,
    pub pt: u8,
    pub caps: gst::Caps,
}

/// What the engine will do with each part of an offer. m-lines it does not use are answered
/// inactive by leaving their transceivers without codec preferences.
#[derive(Debug, Clone, Default)]
pub struct OfferPlan {
    pub video: Option<(VideoCodec, Track)>,
    pub audio: Option<Track>,
    pub mlines: u32,
}

/// Which end of the flow the offer comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// WHIP: the offerer sends; any VP8 or H.264 profile is decodable.
    Publish,
    /// WHEP: the offerer receives; the given codec if offered (H.264: constrained-baseline
    /// compatible), else the other one.
    View(VideoCodec),
}

/// Parses and sanity-checks an offer. GStreamer's own parser accepts nearly anything, so the
/// structural checks a peer connection depends on are made here, before any element exists.
pub fn parse_offer(body: &[u8]) -> Result<SDPMessage, SdpError> {
    let text = std::str::from_utf8(body).map_err(|_| SdpError::Unparsable("not UTF-8 text"))?;
    if !text.trim_start().starts_with("v=0") {
        return Err(SdpError::Unparsable("must start with v=0"));
    }
    let msg = SDPMessage::parse_buffer(text.as_bytes()).map_err(|_| SdpError::Unparsable("syntax error"))?;
    if msg.medias_len() == 0 {
        return Err(SdpError::Unparsable("no m= line"));
    }
    if msg.medias_len() > 16 {
        return Err(SdpError::Unparsable("more than 16 m= lines"));
    }
    let session_ice = msg.attribute_val("ice-ufrag").is_some() && msg.attribute_val("ice-pwd").is_some();
    let session_fp = msg.attribute_val("fingerprint").is_some();
    for media in msg.medias() {
        if !(session_ice || media.attribute_val("ice-ufrag").is_some() && media.attribute_val("ice-pwd").is_some()) {
            return Err(SdpError::Unparsable("an m= line has no ICE credentials (a=ice-ufrag, a=ice-pwd)"));
        }
        if !(session_fp || media.attribute_val("fingerprint").is_some()) {
            return Err(SdpError::Unparsable("an m= line has no DTLS fingerprint (a=fingerprint)"));
        }
    }
    Ok(msg)
}

/// Chooses a codec per m-line: the first video m-line with a usable codec, the first audio m-line
/// with Opus. An offer where neither exists is refused.
pub fn plan(msg: &SDPMessageRef, role: Role) -> Result<OfferPlan, SdpError> {
    let mut plan = OfferPlan { mlines: msg.medias_len(), ..Default::default() };
    for (idx, media) in msg.medias().enumerate() {
        let idx = idx as u32;
        if is_rejected(media) {
            continue;
        }
        match media.media() {
            Some("video") if plan.video.is_none() => plan.video = pick_video(media, idx, role),
            Some("audio") if plan.audio.is_none() => plan.audio = pick(media, idx, |c| c.encoding == "OPUS"),
            _ => {}
        }
    }
    if plan.video.is_none() && plan.audio.is_none() {
        return Err(SdpError::NoUsableCodec);
    }
    Ok(plan)
}

/// Port 0 without `a=bundle-only` means the offerer rejected this m-line.
fn is_rejected(media: &SDPMediaRef) -> bool {
    media.port() == 0 && media.attribute_val("bundle-only").is_none()
}

struct Candidate<'a> {
    encoding: String,
    fmtp: Option<&'a str>,
}

fn pick_video(media: &SDPMediaRef, idx: u32, role: Role) -> Option<(VideoCodec, Track)> {
    let vp8 = || pick(media, idx, |c| c.encoding == "VP8").map(|t| (VideoCodec::Vp8, t));
    let h264 = || pick_h264(media, idx, role).map(|t| (VideoCodec::H264, without_profile_for_viewers(t, role)));
    match role {
        Role::View(VideoCodec::H264) => h264().or_else(vp8),
        Role::Publish | Role::View(VideoCodec::Vp8) => vp8().or_else(h264),
    }
}

fn pick_h264(media: &SDPMediaRef, idx: u32, role: Role) -> Option<Track> {
    let h264 = |c: &Candidate| c.encoding == "H264" && fmtp_value(c.fmtp, "packetization-mode") == Some("1");
    match role {
        Role::Publish => pick(media, idx, h264),
        // Our encoders produce constrained baseline; prefer the matching profile-level-id.
        Role::View(_) => pick(media, idx, |c| h264(c) && fmtp_value(c.fmtp, "profile-level-id").is_some_and(|p| p.eq_ignore_ascii_case("42e01f")))
            .or_else(|| pick(media, idx, |c| h264(c) && fmtp_value(c.fmtp, "profile-level-id").is_some_and(|p| p.to_ascii_lowercase().starts_with("42"))))
            .or_else(|| pick(media, idx, h264)),
    }
}

/// The composite is encoded once for every H.264 viewer, and the payloader states the profile
/// of that one stream (x264's constrained baseline reads 42c0xx, browsers offer 42e0xx). The
/// answer still carries the offer's profile-level-id (webrtcbin intersects offer and
/// preferences); only the local caps check must not insist on it.
fn without_profile_for_viewers(mut track: Track, role: Role) -> Track {
    if matches!(role, Role::View(_)) {
        if let Some(s) = track.caps.make_mut().structure_mut(0) {
            s.remove_field("profile-level-id");
        }
    }
    track
}

/// The first payload type of `media` whose rtpmap/fmtp satisfy `accept`.
fn pick(media: &SDPMediaRef, idx: u32, accept: impl Fn(&Candidate) -> bool) -> Option<Track> {
    for fmt in media.formats() {
        let Ok(pt) = fmt.parse::<u8>() else { continue };
        if pt > 127 {
            continue;
        }
        let Some(encoding) = rtpmap_encoding(media, pt) else { continue };
        let candidate = Candidate { encoding, fmtp: fmtp_of(media, pt) };
        if !accept(&candidate) {
            continue;
        }
        let caps = codec_caps(media, pt)?;
        return Some(Track { mline: idx, pt, caps });
    }
    None
}

fn attr_for_pt<'a>(media: &'a SDPMediaRef, key: &str, pt: u8) -> Option<&'a str> {
    let prefix = format!("{pt} ");
    media
        .attributes()
        .filter(|a| a.key() == key)
        .filter_map(|a| a.value())
        .find_map(|v| v.strip_prefix(prefix.as_str()))
}

fn rtpmap_encoding(media: &SDPMediaRef, pt: u8) -> Option<String> {
    let value = attr_for_pt(media, "rtpmap", pt)?;
    let name = value.split('/').next()?.trim();
    Some(name.to_ascii_uppercase())
}

fn fmtp_of(media: &SDPMediaRef, pt: u8) -> Option<&str> {
    attr_for_pt(media, "fmtp", pt)
}

fn fmtp_value<'a>(fmtp: Option<&'a str>, key: &str) -> Option<&'a str> {
    fmtp?.split(';').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k.trim() == key).then_some(v.trim())
    })
}

/// The header extension that numbers every packet of a transport, so that the receiver can say
/// when each arrived (transport-wide congestion control feedback).
pub const TWCC_URI: &str = "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01";

/// The id `media` gives the transport-wide sequence number extension, if it offers it.
fn twcc_id(media: &SDPMediaRef) -> Option<u8> {
    media.attributes().filter(|a| a.key() == "extmap").filter_map(|a| a.value()).find_map(|v| {
        let (id, uri) = v.trim().split_once(' ')?;
        let id = id.split('/').next()?.parse::<u8>().ok().filter(|id| (1..=14).contains(id))?;
        (uri.split_whitespace().next()? == TWCC_URI).then_some(id)
    })
}

/// `application/x-rtp` caps for one payload type, as webrtcbin's `codec-preferences` expects.
/// SSRC fields and header extensions are left out (they belong to the transport), except the
/// transport-wide sequence number: with it in the answer, the peer's receiver says when each
/// packet arrived and a sender on our side learns its link (see `link_stats`).
fn codec_caps(media: &SDPMediaRef, pt: u8) -> Option<gst::Caps> {
    let mut caps = media.caps_from_media(i32::from(pt))?;
    {
        let caps = caps.make_mut();
        let s = caps.structure_mut(0)?;
        s.set_name("application/x-rtp");
        let drop: Vec<String> = s
            .fields()
            .map(|f| f.to_string())
            .filter(|f| f.starts_with("extmap-") || f.starts_with("a-") || f.starts_with("ssrc"))
            .collect();
        for f in drop {
            s.remove_field(f.as_str());
        }
        s.set("media", media.media()?);
        if let Some(id) = twcc_id(media) {
            s.set(format!("extmap-{id}").as_str(), TWCC_URI);
        }
    }
    Some(caps)
}

/// webrtcbin 1.22 answers a receiver that asks for retransmissions with
/// `a=ssrc-group:FID 0 <rtx>`: the media stream's SSRC is not known to it yet, and a browser
/// that reads 0 drops the real stream (no picture at all). This puts in the SSRC the m-line's
/// payloader sends with (`primary`, by m-line index) and names it like the RTX stream.
pub fn name_rtx_primaries(sdp: &str, primary: impl Fn(usize) -> Option<u32>) -> String {
    let mut out = String::with_capacity(sdp.len() + 256);
    let mut mline: Option<usize> = None;
    let mut rtx: Option<(u32, u32)> = None;
    for line in sdp.split_inclusive('\n') {
        let trimmed = line.trim_end();
        if trimmed.starts_with("m=") {
            mline = Some(mline.map_or(0, |m| m + 1));
            rtx = None;
        }
        if let Some(r) = trimmed.strip_prefix("a=ssrc-group:FID 0 ") {
            if let (Some(r), Some(m)) = (r.trim().parse::<u32>().ok(), mline.and_then(&primary)) {
                rtx = Some((r, m));
                out.push_str(&format!("a=ssrc-group:FID {m} {r}\r\n"));
                continue;
            }
        }
        if let (Some((r, m)), Some(rest)) = (rtx, trimmed.strip_prefix("a=ssrc:")) {
            if let Some(attr) = rest.strip_prefix(&format!("{r} ")) {
                out.push_str(&format!("a=ssrc:{m} {attr}\r\n"));
            }
        }
        out.push_str(line);
    }
    out
}

/// Says in `sdp` (an answer) that we decode Opus' in-band FEC (`useinbandfec=1`, RFC 7587):
/// a browser sends it only then, and a lost packet of its voice is then rebuilt from the next.
pub fn ask_for_opus_fec(sdp: &str) -> String {
    let opus: Vec<String> = sdp
        .lines()
        .filter_map(|l| l.strip_prefix("a=rtpmap:"))
        .filter_map(|rest| rest.split_once(' ').filter(|(_, codec)| codec.to_ascii_uppercase().starts_with("OPUS/")).map(|(pt, _)| pt.to_string()))
        .collect();
    let has_fmtp = |pt: &str| sdp.lines().any(|l| l.starts_with(&format!("a=fmtp:{pt} ")));
    let mut out = String::with_capacity(sdp.len() + 64);
    for line in sdp.split_inclusive('\n') {
        let trimmed = line.trim_end();
        let fmtp_of = opus.iter().find(|pt| trimmed.starts_with(&format!("a=fmtp:{pt} ")));
        match fmtp_of {
            Some(_) if !trimmed.contains("useinbandfec") => {
                out.push_str(trimmed);
                out.push_str(";useinbandfec=1\r\n");
            }
            _ => out.push_str(line),
        }
        let rtpmap_of = opus.iter().find(|pt| trimmed.starts_with(&format!("a=rtpmap:{pt} ")));
        if let Some(pt) = rtpmap_of.filter(|pt| !has_fmtp(pt)) {
            out.push_str(&format!("a=fmtp:{pt} useinbandfec=1\r\n"));
        }
    }
    out
}

/// Adds, for every host candidate in `sdp`, the same candidate on `public_ip` (a server behind
/// 1:1 NAT). The originals stay, so clients on the same network still connect directly.
pub fn announce_public_ip(sdp: &str, public_ip: IpAddr) -> String {
    let mut out = String::with_capacity(sdp.len() * 2);
    for line in sdp.split_inclusive('\n') {
        out.push_str(line);
        let trimmed = line.trim_end();
        let Some(rest) = trimmed.strip_prefix("a=candidate:") else { continue };
        let fields: Vec<&str> = rest.split(' ').collect();
        // foundation component transport priority address port "typ" type ...
        if fields.len() < 8 || fields[6] != "typ" || fields[7] != "host" {
            continue;
        }
        if fields[4].parse::<IpAddr>().is_ok_and(|a| a.is_ipv4() != public_ip.is_ipv4()) {
            continue;
        }
        let priority = fields[3].parse::<u32>().unwrap_or(1).saturating_sub(1);
        let mut copy = fields.clone();
        let foundation = format!("{}9", fields[0]);
        let (ip, prio) = (public_ip.to_string(), priority.to_string());
        copy[0] = &foundation;
        copy[3] = &prio;
        copy[4] = &ip;
        out.push_str("a=candidate:");
        out.push_str(&copy.join(" "));
        out.push_str("\r\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHROME_LIKE: &str = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0 1\r\n\
a=fingerprint:sha-256 00:11\r\na=ice-ufrag:abcd\r\na=ice-pwd:0123456789012345678901\r\n\
m=audio 9 UDP/TLS/RTP/SAVPF 111 0\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\na=sendonly\r\n\
a=rtpmap:111 opus/48000/2\r\na=fmtp:111 minptime=10;useinbandfec=1\r\na=rtpmap:0 PCMU/8000\r\n\
m=video 9 UDP/TLS/RTP/SAVPF 96 102 106\r\nc=IN IP4 0.0.0.0\r\na=mid:1\r\na=sendonly\r\n\
a=extmap:3 http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01\r\n\
a=rtpmap:96 VP8/90000\r\na=rtcp-fb:96 nack pli\r\n\
a=rtpmap:102 H264/90000\r\na=fmtp:102 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=64001f\r\n\
a=rtpmap:106 H264/90000\r\na=fmtp:106 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f\r\n";

    fn init() {
        gst::init().unwrap();
    }

    #[test]
    fn picks_opus_and_vp8() {
        init();
        let msg = parse_offer(CHROME_LIKE.as_bytes()).unwrap();
        let p = plan(&msg, Role::Publish).unwrap();
        let (codec, video) = p.video.unwrap();
        assert_eq!((codec, video.mline, video.pt), (VideoCodec::Vp8, 1, 96));
        let s = video.caps.structure(0).unwrap();
        assert_eq!(s.name(), "application/x-rtp");
        assert_eq!(s.get::<&str>("encoding-name").unwrap(), "VP8");
        let extmaps: Vec<_> = s.fields().filter(|f| f.starts_with("extmap")).collect();
        assert_eq!(extmaps, ["extmap-3"], "only the transport-wide sequence number: {s}");
        assert_eq!(s.get::<&str>("extmap-3").unwrap(), TWCC_URI);
        let audio = p.audio.unwrap();
        assert_eq!((audio.mline, audio.pt), (0, 111));
    }

    #[test]
    fn viewers_without_vp8_get_constrained_baseline_h264() {
        init();
        let text = CHROME_LIKE.replace("96 102 106", "102 106").replace("a=rtpmap:96 VP8/90000\r\n", "");
        let msg = parse_offer(text.as_bytes()).unwrap();
        let (codec, t) = plan(&msg, Role::View(VideoCodec::Vp8)).unwrap().video.unwrap();
        assert_eq!((codec, t.pt), (VideoCodec::H264, 106));
        let (_, t) = plan(&msg, Role::Publish).unwrap().video.unwrap();
        assert_eq!(t.pt, 102, "a publisher may send any H.264 profile");
    }

    #[test]
    fn viewers_get_the_preferred_codec_when_they_offer_it() {
        init();
        let msg = parse_offer(CHROME_LIKE.as_bytes()).unwrap();
        let (codec, t) = plan(&msg, Role::View(VideoCodec::H264)).unwrap().video.unwrap();
        assert_eq!((codec, t.pt), (VideoCodec::H264, 106), "constrained baseline, not High");
        let (codec, _) = plan(&msg, Role::View(VideoCodec::Vp8)).unwrap().video.unwrap();
        assert_eq!(codec, VideoCodec::Vp8);
        let vp8_only = CHROME_LIKE.replace("96 102 106", "96");
        let msg = parse_offer(vp8_only.as_bytes()).unwrap();
        let (codec, _) = plan(&msg, Role::View(VideoCodec::H264)).unwrap().video.unwrap();
        assert_eq!(codec, VideoCodec::Vp8, "H.264 preferred, VP8 taken when it is all there is");
    }

    #[test]
    fn offers_without_usable_codecs_are_refused() {
        init();
        let text = CHROME_LIKE
            .replace("rtpmap:111 opus/48000/2", "rtpmap:111 G722/8000")
            .replace("VP8/90000", "AV1/90000")
            .replace("packetization-mode=1", "packetization-mode=0");
        let msg = parse_offer(text.as_bytes()).unwrap();
        assert_eq!(plan(&msg, Role::Publish).unwrap_err(), SdpError::NoUsableCodec);
    }

    #[test]
    fn junk_is_unparsable() {
        init();
        for junk in [&b"hello"[..], b"\xff\xfe", b"v=0\r\ns=-\r\n", b""] {
            assert!(matches!(parse_offer(junk), Err(SdpError::Unparsable(_))), "{junk:?}");
        }
        let no_ice = CHROME_LIKE.replace("a=ice-ufrag:abcd\r\n", "");
        assert!(parse_offer(no_ice.as_bytes()).is_err());
    }

    #[test]
    fn answers_ask_for_opus_fec() {
        let answer = "m=audio 9 UDP 111\r\na=rtpmap:111 OPUS/48000/2\r\na=fmtp:111 sprop-stereo=0\r\nm=video 9 UDP 96\r\na=rtpmap:96 VP8/90000\r\n";
        let asked = ask_for_opus_fec(answer);
        assert!(asked.contains("a=fmtp:111 sprop-stereo=0;useinbandfec=1\r\n"), "{asked}");
        assert!(!asked.contains("a=fmtp:96"), "{asked}");
        assert_eq!(ask_for_opus_fec(&asked), asked, "once only");
        let bare = "m=audio 9 UDP 111\r\na=rtpmap:111 opus/48000/2\r\na=sendrecv\r\n";
        assert_eq!(ask_for_opus_fec(bare), "m=audio 9 UDP 111\r\na=rtpmap:111 opus/48000/2\r\na=fmtp:111 useinbandfec=1\r\na=sendrecv\r\n");
    }

    #[test]
    fn the_retransmitted_streams_primary_gets_its_ssrc() {
        let answer = "v=0\r\nm=video 9 UDP 96 97\r\na=rtpmap:97 rtx/90000\r\na=ssrc-group:FID 0 555\r\n\
a=ssrc:555 msid:user@host webrtctransceiver0\r\na=ssrc:555 cname:user@host\r\nm=audio 9 UDP 111\r\na=ssrc:7 cname:x\r\n";
        let named = name_rtx_primaries(answer, |m| (m == 0).then_some(42));
        assert!(named.contains("a=ssrc-group:FID 42 555\r\n"), "{named}");
        assert!(named.contains("a=ssrc:42 msid:user@host webrtctransceiver0\r\na=ssrc:555 msid:user@host webrtctransceiver0\r\n"), "{named}");
        assert!(named.contains("a=ssrc:42 cname:user@host\r\na=ssrc:555 cname:user@host\r\n"), "{named}");
        assert!(!named.contains("FID 0 "));
        assert!(named.ends_with("m=audio 9 UDP 111\r\na=ssrc:7 cname:x\r\n"), "other m-lines untouched: {named}");
        assert_eq!(name_rtx_primaries(answer, |_| None), answer, "unknown: left as it is");
    }

    #[test]
    fn public_ip_duplicates_host_candidates() {
        let sdp = "a=candidate:1 1 UDP 2015363327 10.0.0.5 40000 typ host\r\na=candidate:2 1 TCP 1015021823 10.0.0.5 9 typ host tcptype active\r\na=candidate:3 1 UDP 1 1.2.3.4 5 typ srflx raddr 0.0.0.0 rport 0\r\n";
        let out = announce_public_ip(sdp, "203.0.113.7".parse().unwrap());
        assert!(out.contains("a=candidate:19 1 UDP 2015363326 203.0.113.7 40000 typ host\r\n"), "{out}");
        assert_eq!(out.matches("203.0.113.7").count(), 2);
        assert_eq!(out.matches("a=candidate:").count(), 5);
    }
}
