//! Starting sessions: the session bin, a publisher's branches, a viewer's tracks, and the
//! answer to their offer.

use gst::prelude::*;
use gst_webrtc::{WebRTCPeerConnectionState, WebRTCRTPTransceiver, WebRTCRTPTransceiverDirection};

use super::super::egress;
use super::super::ingest;
use super::super::mixer::MixKey;
use super::super::peer::{self, Liveness};
use super::super::pipeline::gst_err;
use super::super::sdp::{OfferPlan, Track};
use super::super::tile::Tile;
use super::super::{MediaError, Owner, TileLabel, Voice};
use super::super::ladder::{self, RungIndex};
use super::{Answer, Event, Hold, Kind, NewSession, Reply, RoomTask, Session, ViewerOf};
use crate::ids::SessionId;
use crate::profiles::VideoCodec;
use crate::room::framing::Fit;
use crate::room::participants::ParticipantId;

impl RoomTask {
    /// A new session: a bin holding a webrtcbin, in the pipeline and playing, registered
    /// under a fresh id. Whatever fails later is undone by [`RoomTask::remove`].
    pub(super) fn start_session(&mut self, id: SessionId, prefix: &str, kind: Kind) -> Result<NewSession, MediaError> {
        self.next_element_id += 1;
        let name = format!("{prefix}-{}", self.next_element_id);
        let bin = gst::Bin::with_name(&name);
        let publisher = matches!(kind, Kind::Publisher { .. });
        let webrtc = peer::new_webrtcbin("webrtc", &self.cfg.ice, self.cfg.jitterbuffer_ms)?;
        bin.add(&webrtc).map_err(gst_err)?;
        self.pipe.pipeline.add(&bin).map_err(gst_err)?;
        let liveness = Liveness::new(self.epoch);
        let gate = ingest::VideoGate::default();
        if publisher {
            ingest::on_incoming_streams(&webrtc, liveness.clone(), gate.clone());
        }
        self.watch_connection(id, &webrtc);
        self.insert_session(id, Session {
            name: name.clone(),
            bin: bin.clone(),
            webrtc: Some(webrtc.clone()),
            liveness: liveness.clone(),
            connected: false,
            kind,
            hold: None,
        })?;
        Ok(NewSession { id, name, bin, webrtc, liveness, gate })
    }

    /// Keeps `hold` with session `id` until it ends.
    pub(super) fn hold(&mut self, id: SessionId, hold: Option<Hold>) {
        if let Some(session) = self.sessions.get_mut(&id) {
            session.hold = hold;
        }
    }

    /// Whether `participant` has a microphone in the mix (a publisher with audio).
    fn has_microphone(&self, participant: ParticipantId) -> bool {
        self.sessions.values().any(|s| {
            matches!(&s.kind, Kind::Publisher { voice: Voice::Participant(p), has_audio: true, .. } if *p == participant)
        })
    }

    pub(super) fn watch_connection(&self, id: SessionId, webrtc: &gst::Element) {
        let events = self.events.clone();
        webrtc.connect_notify(Some("connection-state"), move |w, _| {
            let state = w.property::<WebRTCPeerConnectionState>("connection-state");
            let _ = events.send(Event::Connection { session: id, state });
        });
    }

    pub(super) async fn add_publisher(
        &mut self,
        id: SessionId,
        offer: gst_sdp::SDPMessage,
        plan: OfferPlan,
        owner: Option<Owner>,
        screen: bool,
    ) -> Result<(SessionId, gst::Element, Liveness), MediaError> {
        // An anonymous publisher's voice is its session (and so is a shared screen's sound: it
        // is not the sharer's voice).
        if self.sessions.contains_key(&id) {
            return Err(MediaError::Internal("session id drawn twice".into()));
        }
        let participant = owner.as_ref().map(|o| o.participant);
        let voice = participant.filter(|_| !screen).map(Voice::Participant).unwrap_or(Voice::Session(id));
        if let Some(o) = &owner {
            self.labels.entry(o.participant).or_insert_with(|| TileLabel { name: o.name.clone(), ..Default::default() });
        }
        let kind = Kind::Publisher { tile: None, has_audio: plan.audio.is_some(), voice: voice.clone(), owner: participant, screen };
        let NewSession { id, name, bin, webrtc, liveness, gate } = self.start_session(id, "pub", kind)?;
        let tails = (|| {
            // A participant without a camera still gets a tile: their name on a plain background.
            let mut label = participant.and_then(|p| self.labels.get(&p).cloned()).unwrap_or_default();
            label.video_muted &= !screen;
            let tile = if plan.video.is_some() || (participant.is_some() && !screen) {
                let events = self.events.clone();
                let fit = if screen { Fit::Whole } else { Fit::Fill };
                let mut tile = Tile::new(&bin, plan.video.is_some(), fit, gate.clone(), label.clone(), move || {
                    let _ = events.send(Event::FirstFrame { session: id });
                })?;
                tile.set_label(label, &self.pipe)?;
                Some(tile)
            } else {
                None
            };
            if plan.audio.is_some() {
                ingest::add_audio_tail(&bin, self.pipe.mixer.add_input(voice.clone()))?;
            }
            Ok::<_, MediaError>(tile)
        })();
        let tile = match tails {
            Ok(tile) => tile,
            Err(e) => {
                self.remove(id, "could not build its branch");
                return Err(e);
            }
        };
        let has_video = plan.video.is_some();
        if let (Some(p), true, false) = (participant, plan.audio.is_some(), screen) {
            self.retarget_own_mix(p, true);
        }
        if let Some(Session { kind: Kind::Publisher { tile: t, .. }, .. }) = self.sessions.get_mut(&id) {
            *t = tile;
        }
        self.refresh_tile(id);
        let configured = async {
            // webrtcbin 1.22 creates transceivers for a remote offer only when answering;
            // receive-only ones added first are matched to the offer's m-lines by kind.
            let mut tracks: Vec<&Track> = plan.video.iter().map(|(_, t)| t).chain(plan.audio.iter()).collect();
            tracks.sort_by_key(|t| t.mline);
            for track in tracks {
                receive_only(&webrtc, track, plan.video.as_ref().is_some_and(|(_, v)| v.mline == track.mline));
            }
            peer::set_remote_offer(&webrtc, offer).await?;
            Ok::<_, MediaError>(())
        }
        .await;
        if let Err(e) = configured {
            self.remove(id, "offer refused");
            return Err(e);
        }
        tracing::info!(room = %self.room, session = %name, video = has_video, audio = plan.audio.is_some(), "publisher joined");
        Ok((id, webrtc, liveness))
    }

    pub(super) async fn add_viewer(
        &mut self,
        id: SessionId,
        offer: gst_sdp::SDPMessage,
        plan: OfferPlan,
        who: ViewerOf,
    ) -> Result<(SessionId, gst::Element, Liveness), MediaError> {
        let ViewerOf { exclude, owner, cap } = who;
        // A viewer who is also a talker hears the mix without their own voice; everyone else
        // shares the full mix. A participant's view moves to its own mix when their
        // microphone arrives (see `retarget_own_mix`).
        let mix: MixKey = match exclude {
            None => None,
            Some(Voice::Participant(p)) => self.has_microphone(p).then_some(Voice::Participant(p)),
            Some(Voice::Session(s)) => match self.sessions.get(&s).map(|s| &s.kind) {
                Some(Kind::Publisher { has_audio: true, voice, .. }) => Some(voice.clone()),
                Some(Kind::Publisher { has_audio: false, .. }) => None,
                _ => return Err(MediaError::UnknownToken),
            },
        };
        let kind = Kind::Viewer { video: None, audio: None, mix: None, owner, cap };
        if self.sessions.contains_key(&id) {
            return Err(MediaError::Internal("session id drawn twice".into()));
        }
        let NewSession { id, name, bin, webrtc, liveness, .. } = self.start_session(id, "view", kind)?;
        let own_mix = mix.is_some();
        let rung = plan.video.as_ref().and_then(|(c, _)| ladder::pick(self.pipe.rungs(*c), cap));
        let attached = self.attach_viewer(id, (&bin, &webrtc), offer, &plan, Feeds { mix, rung }).await;
        if let Err(e) = attached {
            self.remove(id, "offer refused");
            return Err(e);
        }
        let codec = plan.video.as_ref().map(|(c, _)| c.name()).unwrap_or("none");
        let rung_name = plan.video.as_ref().and_then(|(c, _)| rung.and_then(|r| self.pipe.rungs(*c).get(r))).map_or("none", |r| r.name.as_str());
        tracing::info!(room = %self.room, session = %name, codec, rung = rung_name, own_mix, "viewer joined");
        Ok((id, webrtc, liveness))
    }

    pub(super) async fn attach_viewer(
        &mut self,
        id: SessionId,
        (bin, webrtc): (&gst::Bin, &gst::Element),
        offer: gst_sdp::SDPMessage,
        plan: &OfferPlan,
        feeds: Feeds,
    ) -> Result<(), MediaError> {
        let Feeds { mix, rung } = feeds;
        peer::set_remote_offer(webrtc, offer).await?;
        let mut video = None;
        let mut audio = None;
        let mut mix_used = None;
        let result = (|| {
            if let Some((c, track)) = &plan.video {
                let tee = rung.map(|r| self.pipe.video_tee(*c, r)).transpose()?;
                let payloader = match c {
                    VideoCodec::Vp8 => "rtpvp8pay",
                    VideoCodec::H264 => "rtph264pay",
                };
                match egress::attach_track(bin, webrtc, track, payloader, tee.as_ref()) {
                    Ok(link) => video = Some(super::viewers::video_out(link, *c, rung, self.pipe.rungs(*c), self.epoch.elapsed())),
                    Err(e) => {
                        // The rung was counted for this viewer: give it back.
                        if let Some(r) = rung {
                            self.pipe.release_video(*c, r);
                        }
                        return Err(e);
                    }
                }
            }
            if let Some(track) = &plan.audio {
                let tee = self.pipe.audio_tee(mix.clone())?;
                mix_used = Some(mix.clone());
                audio = Some(egress::attach_track(bin, webrtc, track, "rtpopuspay", Some(&tee))?);
            }
            Ok::<_, MediaError>(())
        })();
        // Record what was attached even on failure, so removal undoes exactly that.
        if let Some(Session { kind: Kind::Viewer { video: v, audio: a, mix: m, .. }, .. }) = self.sessions.get_mut(&id) {
            *v = video;
            *a = audio;
            *m = mix_used;
        }
        result
    }

    pub(super) fn insert_session(&mut self, id: SessionId, session: Session) -> Result<(), MediaError> {
        let synced = session.bin.sync_state_with_parent().map_err(gst_err);
        self.sessions.insert(id, session);
        self.empty_since = None;
        if let Err(e) = synced {
            self.remove(id, "could not start");
            return Err(e);
        }
        Ok(())
    }

    /// Finishes negotiation off the task (ICE gathering takes a few hundred ms) and replies.
    pub(super) fn negotiate(&self, id: SessionId, webrtc: gst::Element, liveness: Liveness, reply: Reply<Answer>) {
        let events = self.events.clone();
        let public_ip = self.cfg.ice.public_ip;
        tokio::spawn(async move {
            match peer::answer(&webrtc).await {
                Ok(mut sdp) => {
                    tracing::debug!(candidates = sdp.matches("a=candidate:").count(), "answer ready");
                    if liveness.watch(&webrtc) == 0 {
                        tracing::warn!("no ICE source found to watch; the session relies on RTP alone");
                    }
                    sdp = super::super::sdp::name_rtx_primaries(&sdp, |mline| egress::payloader_ssrc(&webrtc, mline));
                    sdp = super::super::sdp::ask_for_opus_fec(&sdp);
                    if let Some(ip) = public_ip {
                        sdp = super::super::sdp::announce_public_ip(&sdp, ip);
                    }
                    if reply.send(Ok(Answer { session: id, sdp })).is_err() {
                        // The client gave up waiting; nobody will ever use this session.
                        let _ = events.send(Event::NegotiationFailed { session: id });
                    }
                }
                Err(e) => {
                    let _ = events.send(Event::NegotiationFailed { session: id });
                    let _ = reply.send(Err(e.into()));
                }
            }
        });
    }
}

/// What a new viewer is fed from: which mix it hears and which rung it sees.
pub(super) struct Feeds {
    mix: MixKey,
    rung: RungIndex,
}

/// Adds a receive-only transceiver for `track`'s codec. A video track asks for what it lost
/// again (NACK, answered by the publisher's RTX when it offered it): on a lossy uplink a lost
/// packet then costs a round trip instead of a broken picture until the next keyframe.
fn receive_only(webrtc: &gst::Element, track: &Track, video: bool) {
    let transceiver = webrtc.emit_by_name::<WebRTCRTPTransceiver>(
        "add-transceiver",
        &[&WebRTCRTPTransceiverDirection::Recvonly, &track.caps],
    );
    if video {
        transceiver.set_property("do-nack", true);
    }
}
