//! Property-based tests of everything a stranger can put in front of Plenum: SDP offers (as
//! bytes and as SDP-shaped text with random attributes), the SDP rewriting, room names and
//! session ids from URLs, control messages (as text and as JSON of random shape), and config
//! files. Never a panic: a typed result every time, and what is accepted keeps its promises.
//! The layout and framing maths get random rooms and sizes: every rectangle inside its canvas.
//!
//! CI runs proptest's default of 256 cases per property; for a long run:
//! `PROPTEST_CASES=100000 ./dev test --test hostile_input_never_panics`.

use plenum::ids::{RoomId, SessionId};
use plenum::media::sdp::{self, Role};
use plenum::profiles::VideoCodec;
use plenum::protocol::ClientMessage;
use plenum::room::framing;
use plenum::room::layout::{arrange, LayoutMode, Shown, Size};
use proptest::prelude::*;

fn init() {
    gst::init().expect("GStreamer initialises");
}

/// One SDP line of the kinds offers carry, with random contents.
fn sdp_line() -> impl Strategy<Value = String> {
    let token = "[ -~]{0,40}";
    prop_oneof![
        (0u8..200, prop::sample::select(vec!["VP8", "H264", "opus", "AV1", "VP9", "rtx", "red", "ulpfec", "", "H264 "]), 0u32..200_000, 0u8..3)
            .prop_map(|(pt, enc, rate, ch)| format!("a=rtpmap:{pt} {enc}/{rate}{}", if ch > 0 { format!("/{ch}") } else { String::new() })),
        (0u8..200, token).prop_map(|(pt, f)| format!("a=fmtp:{pt} {f}")),
        (prop::sample::select(vec!["audio", "video", "application", "text", ""]), 0u16..65535, prop::collection::vec(0u8..200, 0..8))
            .prop_map(|(kind, port, pts)| format!("m={kind} {port} UDP/TLS/RTP/SAVPF {}", pts.iter().map(u8::to_string).collect::<Vec<_>>().join(" "))),
        prop::sample::select(vec!["a=sendonly", "a=recvonly", "a=sendrecv", "a=inactive", "a=rtcp-mux", "a=setup:actpass", "c=IN IP4 0.0.0.0"]).prop_map(str::to_string),
        (0u8..20).prop_map(|n| format!("a=mid:{n}")),
        token.prop_map(|t| format!("a=ice-ufrag:{t}")),
        token.prop_map(|t| format!("a=ice-pwd:{t}")),
        token.prop_map(|t| format!("a=fingerprint:sha-256 {t}")),
        (0u8..200, token).prop_map(|(pt, t)| format!("a=rtcp-fb:{pt} {t}")),
        (0u8..20, token).prop_map(|(id, t)| format!("a=extmap:{id} {t}")),
        (token, token).prop_map(|(a, b)| format!("a={a}:{b}")),
        token.prop_map(|t| t.to_string()),
    ]
}

fn sdp_text() -> impl Strategy<Value = String> {
    (any::<bool>(), prop::collection::vec(sdp_line(), 0..40), prop::sample::select(vec!["\r\n", "\n", "\r"])).prop_map(|(header, lines, eol)| {
        let head = if header { "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n" } else { "" };
        format!("{head}{}{eol}", lines.join(eol))
    })
}

proptest! {
    #[test]
    fn any_bytes_as_an_offer_get_an_answer_or_a_reason(body in prop::collection::vec(any::<u8>(), 0..2000)) {
        init();
        if let Ok(msg) = sdp::parse_offer(&body) {
            for role in [Role::Publish, Role::View(VideoCodec::H264), Role::View(VideoCodec::Vp8)] {
                let _ = sdp::plan(&msg, role);
            }
        }
    }

    #[test]
    fn sdp_shaped_offers_get_a_plan_or_a_reason(text in sdp_text()) {
        init();
        match sdp::parse_offer(text.as_bytes()) {
            Ok(msg) => {
                prop_assert!(msg.medias_len() >= 1 && msg.medias_len() <= 16);
                for role in [Role::Publish, Role::View(VideoCodec::H264), Role::View(VideoCodec::Vp8)] {
                    if let Ok(plan) = sdp::plan(&msg, role) {
                        prop_assert!(plan.mlines == msg.medias_len());
                    }
                }
            }
            Err(e) => prop_assert!(!e.to_string().is_empty()),
        }
        let _ = sdp::name_rtx_primaries(&text, |i| Some(i as u32));
        let _ = sdp::announce_public_ip(&text, "203.0.113.7".parse().unwrap());
    }

    #[test]
    fn room_names_are_accepted_only_as_promised(raw in "\\PC{0,80}") {
        match RoomId::parse(&raw) {
            Ok(id) => {
                prop_assert!(!id.as_str().is_empty() && id.as_str().len() <= 64);
                prop_assert!(id.as_str().bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_'));
                prop_assert_eq!(RoomId::parse(id.as_str()).map(|r| r.to_string()).ok(), Some(id.to_string()));
            }
            Err(e) => prop_assert!(!e.to_string().is_empty()),
        }
        if let Some(s) = SessionId::parse(&raw) {
            prop_assert_eq!(SessionId::parse(&s.to_string()), Some(s));
        }
    }

    #[test]
    fn control_messages_of_any_text_parse_or_are_refused(text in "\\PC{0,300}") {
        let _ = serde_json::from_str::<ClientMessage>(&text);
    }

    #[test]
    fn control_messages_of_any_json_shape_parse_or_are_refused(
        kind in prop::sample::select(vec!["join", "chat", "set_media", "raise_hand", "set_quality", "leave", "ping", "mute", "remove",
            "set_layout", "set_presenter", "make_moderator", "create_key", "start_stream", "add_camera", "set_password", "admit", "nonsense"]),
        fields in prop::collection::vec((prop::sample::select(vec!["name", "text", "id", "on", "layout", "quality", "kind", "url",
            "password", "moderator_key", "resume", "audio_muted", "video_muted", "raised"]), json_value()), 0..6),
    ) {
        let mut object = serde_json::Map::new();
        object.insert("type".into(), serde_json::Value::String(kind.to_string()));
        for (k, v) in fields {
            object.insert(k.to_string(), v);
        }
        let _ = serde_json::from_value::<ClientMessage>(serde_json::Value::Object(object));
    }

    #[test]
    fn config_files_of_any_shape_resolve_or_say_why(text in config_text()) {
        let dir = std::env::temp_dir().join(format!("plenum-prop-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("plenum.toml");
        std::fs::write(&file, &text).unwrap();
        let args = plenum::config::ServeArgs { config: Some(file), ..Default::default() };
        if let Err(e) = plenum::config::Config::resolve(args) {
            let reason = format!("{e:#}");
            prop_assert!(!reason.is_empty());
        }
    }

    #[test]
    fn every_layout_keeps_its_tiles_inside_the_canvas(
        n in 0usize..40,
        screens in prop::collection::vec(any::<bool>(), 40),
        speaker in 0usize..40,
        width in 2u32..4000,
        height in 2u32..3000,
        max_tiles in 1usize..100,
        mode in prop::sample::select(vec![LayoutMode::Grid, LayoutMode::Speaker]),
    ) {
        let shown: Vec<Shown> = (0..n).map(|i| Shown { screen: screens[i] && i % 5 == 0, active_speaker: i == speaker, priority: i as u32 }).collect();
        let canvas = Size { width, height };
        let rects = arrange(mode, &shown, canvas, max_tiles);
        prop_assert_eq!(rects.len(), n);
        for r in rects.iter().flatten() {
            prop_assert!(r.x + r.width <= width && r.y + r.height <= height, "{:?} outside {:?}", r, canvas);
            let picture = framing::name_plate(framing::picture(framing::Fit::Fill, None, Size { width: r.width, height: r.height }), r.height);
            prop_assert!(picture.font_px >= 1);
        }
    }

    #[test]
    fn crops_and_fits_stay_inside_their_pictures(sw in 0u32..5000, sh in 0u32..5000, tw in 0u32..5000, th in 0u32..5000) {
        let (source, tile) = (Size { width: sw, height: sh }, Size { width: tw, height: th });
        let c = framing::centre_crop(source, tile);
        prop_assert!(c.x + c.width <= sw && c.y + c.height <= sh, "crop {:?} of {:?}", c, source);
        let w = framing::whole(source, tile);
        prop_assert!(w.x + w.width <= tw.max(w.width) && w.y + w.height <= th.max(w.height), "whole {:?} in {:?}", w, tile);
    }
}

fn json_value() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::Bool),
        any::<i64>().prop_map(|n| serde_json::json!(n)),
        any::<f64>().prop_map(|f| serde_json::json!(f)),
        "\\PC{0,60}".prop_map(serde_json::Value::String),
    ];
    leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::Array),
            prop::collection::vec(("[a-z_]{1,12}", inner), 0..4).prop_map(|kv| serde_json::Value::Object(kv.into_iter().collect())),
        ]
    })
}

fn config_text() -> impl Strategy<Value = String> {
    let key = prop::sample::select(vec!["listen", "canvas", "fps", "vp8_profile", "h264_profile", "jitterbuffer_ms", "stun_server", "turn_server",
        "public_ip", "ice_address", "rtp_ports", "max_tiles", "viewer_codec", "max_participants", "max_audience", "trust_forwarded_for",
        "open_media", "empty_room_grace_secs", "recordings_dir", "metrics_listen", "bogus"]);
    let value = prop_oneof![
        any::<i64>().prop_map(|n| n.to_string()),
        any::<bool>().prop_map(|b| b.to_string()),
        "[ -~&&[^\"\\\\]]{0,30}".prop_map(|s| format!("\"{s}\"")),
        prop::collection::vec("[a-z0-9.:]{0,12}", 0..3).prop_map(|v| format!("[{}]", v.iter().map(|s| format!("\"{s}\"")).collect::<Vec<_>>().join(", "))),
        "[ -~]{0,20}",
    ];
    prop::collection::vec((key, value), 0..8).prop_map(|kv| kv.into_iter().map(|(k, v)| format!("{k} = {v}\n")).collect())
}
