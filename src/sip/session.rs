//! One call's life, as a task: the caller types the room's PIN (three tries), waits if the
//! room has a waiting room, then is in the room (mute with `*6`, muted and removed by
//! moderators like anyone) until either side hangs up, the caller falls silent, or the
//! server stops. Every way out ends in a BYE (or the caller's own) and leaves the room.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rsipstack::dialog::invite_dialog::InviteDialog;
use tokio::sync::{broadcast, mpsc};

use super::call::CallMedia;
use super::keys::{Entry, InRoom, PinEntry, RoomKeys, PIN_TRIES};
use super::{room_pin, tones, Signal, Sip};
use crate::control::{Direct, Membership, RoomControl};
use crate::ids::{RoomId, SessionId};
use crate::media::{MixSink, Owner, RoomMedia};
use crate::protocol::ServerMessage;

/// How long a caller has to enter a right PIN.
const PIN_WITHIN: Duration = Duration::from_secs(60);
/// The "enter the PIN" signal again after this long without a key.
const PROMPT_AGAIN: Duration = Duration::from_secs(6);
/// The waiting signal this often while waiting for admission.
const WAITING_SIGNAL: Duration = Duration::from_secs(4);
/// How long a caller may wait to be admitted.
const WAIT_WITHIN: Duration = Duration::from_secs(600);
/// What the call's own output pushes while no room does (10 ms at 48 kHz).
const TICK: Duration = Duration::from_millis(10);
const SILENCE: [i16; 480] = [0; 480];

/// Why a call ended.
enum End {
    /// By the caller (BYE, CANCEL) or the dialog (no ACK): nothing to send.
    Gone,
    /// By Plenum: send BYE.
    Hangup(&'static str),
}

struct Call {
    sip: Arc<Sip>,
    dialog: InviteDialog,
    media: CallMedia,
    keys: mpsc::UnboundedReceiver<char>,
    signals: mpsc::UnboundedReceiver<Signal>,
}

pub(super) async fn run(sip: Arc<Sip>, dialog: InviteDialog, media: CallMedia, keys: mpsc::UnboundedReceiver<char>, signals: mpsc::UnboundedReceiver<Signal>, name: String, source: IpAddr) {
    let id = dialog.id();
    let mut call = Call { sip: sip.clone(), dialog, media, keys, signals };
    let end = match call.enter_pin().await {
        Ok(room) => call.in_room(&room, name).await,
        Err(end) => end,
    };
    if let End::Hangup(why) = end {
        tracing::info!(reason = why, "phone call ended by Plenum");
        if let Err(e) = call.dialog.bye().await {
            tracing::debug!(error = %e, "BYE not sent");
        }
    } else {
        tracing::info!("phone call ended by the caller");
    }
    sip.call_ended(source, &id);
}

/// The next key, from RTP or INFO; `Err` when the dialog ended.
async fn next_key(keys: &mut mpsc::UnboundedReceiver<char>, signals: &mut mpsc::UnboundedReceiver<Signal>) -> Result<char, End> {
    tokio::select! {
        Some(key) = keys.recv() => Ok(key),
        signal = signals.recv() => match signal {
            Some(Signal::Key(key)) => Ok(key),
            Some(Signal::Ended) | None => Err(End::Gone),
        },
    }
}

impl Call {
    /// Ends the call if the server stops, the caller fell silent or the media broke.
    fn check(&self) -> Result<(), End> {
        if self.sip.stop.is_cancelled() {
            return Err(End::Hangup("server stopping"));
        }
        if self.media.silent_for() > self.sip.cfg.silence {
            return Err(End::Hangup("no sound from the caller"));
        }
        if let Some(error) = self.media.failed() {
            tracing::warn!(%error, "a call's media failed");
            return Err(End::Hangup("media failed"));
        }
        Ok(())
    }

    /// The caller hears "enter the PIN" and types it; the room it opens.
    async fn enter_pin(&mut self) -> Result<RoomId, End> {
        let started = Instant::now();
        let mut entry = PinEntry::default();
        let mut wrong = 0u8;
        // The prompt at once; again when the caller has been quiet for a while after it.
        self.media.earpiece.cue(self.sip.prompts().enter_pin.clone());
        let mut last_key = Instant::now();
        let mut quiet_since: Option<Instant> = None;
        let mut tick = tokio::time::interval(TICK);
        loop {
            tokio::select! {
                _ = tick.tick() => {
                    self.check()?;
                    if started.elapsed() > PIN_WITHIN {
                        return Err(End::Hangup("no PIN entered"));
                    }
                    if self.media.earpiece.cue_playing() {
                        quiet_since = None;
                    } else {
                        let quiet = *quiet_since.get_or_insert_with(Instant::now);
                        if quiet.elapsed() >= PROMPT_AGAIN && last_key.elapsed() >= PROMPT_AGAIN {
                            self.media.earpiece.cue(self.sip.prompts().enter_pin.clone());
                        }
                    }
                    self.media.earpiece.push(&SILENCE);
                }
                key = next_key(&mut self.keys, &mut self.signals) => {
                    last_key = Instant::now();
                    match entry.key(key?) {
                        Entry::Typing | Entry::Cleared => {}
                        Entry::Complete(pin) => match self.room_of(&pin) {
                            Some(room) => return Ok(room),
                            None => {
                                wrong += 1;
                                tracing::info!(tries = wrong, "a wrong dial-in PIN");
                                if wrong >= PIN_TRIES {
                                    return Err(End::Hangup("wrong PIN three times"));
                                }
                                self.media.earpiece.cue(self.sip.prompts().wrong.clone());
                            }
                        },
                    }
                }
            }
        }
    }

    /// The open room on this node whose PIN this is.
    fn room_of(&self, pin: &str) -> Option<RoomId> {
        self.sip.rooms.live_rooms().into_iter().find(|room| room_pin(&self.sip.cfg.secret, room) == pin)
    }

    /// In the room until the call ends; leaves it then.
    async fn in_room(&mut self, room: &RoomId, name: String) -> End {
        let control = match self.sip.rooms.control(room) {
            Ok(control) => control,
            Err(_) => return End::Hangup("the room closed"),
        };
        let membership = match control.join_by_phone(name.clone()).await {
            Ok(m) => m,
            Err(e) => {
                tracing::info!(error = %e.message, "a caller could not join");
                self.media.earpiece.cue(tones::wrong());
                tokio::time::sleep(Duration::from_millis(800)).await;
                return End::Hangup("the room refused the caller");
            }
        };
        tracing::info!(room = %room, "a caller joined by phone");
        let id = membership.id;
        let session = SessionId::random();
        let end = self.take_part(&control, membership, session, name).await;
        if let Ok(media) = control.existing_media().await {
            let _ = media.end(session).await;
        }
        self.media.route_voice(None);
        control.leave(id).await;
        end
    }

    async fn take_part(&mut self, control: &RoomControl, membership: Membership, session: SessionId, name: String) -> End {
        let Membership { id, mut direct, mut events, .. } = membership;
        if events.is_none() {
            match self.wait_for_admission(&mut direct).await {
                Ok(rx) => events = Some(rx),
                Err(end) => return end,
            }
        }
        let Some(mut events) = events else { return End::Hangup("not admitted") };
        let media: RoomMedia = match control.media().await {
            Ok(m) => m,
            Err(_) => return End::Hangup("the room has no media"),
        };
        match media.add_phone(session, Owner { participant: id, name }, Box::new(self.media.earpiece.clone())).await {
            Ok(feed) => self.media.route_voice(Some(feed)),
            Err(e) => {
                tracing::warn!(error = %e, "a caller's sound could not join the room");
                return End::Hangup("the room's media refused the caller");
            }
        }
        control.publishing(id, false).await;
        self.media.earpiece.cue(tones::welcome());
        let mut muted = false;
        let mut room_keys = RoomKeys::default();
        let mut check = tokio::time::interval(Duration::from_millis(500));
        loop {
            tokio::select! {
                _ = check.tick() => {
                    if let Err(end) = self.check() {
                        return end;
                    }
                }
                key = next_key(&mut self.keys, &mut self.signals) => match key {
                    Ok(key) => {
                        if room_keys.key(key) == InRoom::ToggleMute {
                            control.set_media(id, !muted, true).await;
                        }
                    }
                    Err(end) => return end,
                },
                message = direct.recv() => match message {
                    Some(Direct::Close(_)) | None => return End::Hangup("removed from the room"),
                    Some(_) => {}
                },
                event = events.recv() => match event {
                    Ok(ServerMessage::Participants { participants, .. }) => {
                        let me = id.to_string();
                        if let Some(now) = participants.iter().find(|p| p.id == me).map(|p| p.audio_muted) {
                            if now != muted {
                                muted = now;
                                self.media.earpiece.cue(tones::muted(muted));
                            }
                        }
                    }
                    Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                    Err(broadcast::error::RecvError::Closed) => return End::Hangup("the room closed"),
                },
            }
        }
    }

    /// The caller hears the waiting signal until a moderator admits them.
    async fn wait_for_admission(&mut self, direct: &mut mpsc::UnboundedReceiver<Direct>) -> Result<broadcast::Receiver<ServerMessage>, End> {
        let started = Instant::now();
        // Told once that they wait, then a soft tone now and then.
        self.media.earpiece.cue(self.sip.prompts().waiting.clone());
        let mut last_signal = Instant::now();
        let mut tick = tokio::time::interval(TICK);
        loop {
            tokio::select! {
                _ = tick.tick() => {
                    self.check()?;
                    if started.elapsed() > WAIT_WITHIN {
                        return Err(End::Hangup("not admitted in time"));
                    }
                    if self.media.earpiece.cue_playing() {
                        last_signal = Instant::now();
                    } else if last_signal.elapsed() >= WAITING_SIGNAL {
                        self.media.earpiece.cue(tones::waiting());
                        last_signal = Instant::now();
                    }
                    self.media.earpiece.push(&SILENCE);
                }
                message = direct.recv() => match message {
                    Some(Direct::Subscribe(rx)) => return Ok(rx),
                    Some(Direct::Close(_)) | None => return Err(End::Hangup("refused by the moderator")),
                    Some(Direct::Message(_)) => {}
                },
                signal = self.signals.recv() => match signal {
                    Some(Signal::Key(_)) => {}
                    Some(Signal::Ended) | None => return Err(End::Gone),
                },
            }
        }
    }
}
