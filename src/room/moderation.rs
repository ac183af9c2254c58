//! What moderators may do, and what follows from it. Everyone else is refused with
//! `forbidden`. Sans-IO: the control task carries out the returned effects.

use super::access::ExternalId;
use super::layout::LayoutMode;
use super::participants::{refuse, ParticipantId, Room, RoomError};
use crate::ids::SessionId;
use crate::protocol::{ErrorCode, ExternalKind};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModAction {
    /// The argon2id PHC string of the new password (hashed before it gets here), or none.
    SetPassword(Option<String>),
    SetWaitingRoom(bool),
    Admit(ParticipantId),
    Refuse(ParticipantId),
    Mute(ParticipantId),
    MuteAll,
    Remove(ParticipantId),
    End,
    SetLayout(LayoutMode),
    SetPresentation(bool),
    SetPresenter(ParticipantId, bool),
    /// Makes another participant a moderator too (for the rest of their stay).
    MakeModerator(ParticipantId),
    SetAudienceChat(bool),
    AllowMultipleShares(bool),
    /// A key for external publishers or viewers (replacing an earlier one of the kind).
    CreateKey(ExternalKind),
    /// The key stops working; the sessions it let in end.
    RevokeKey(ExternalKind),
    /// Ends one external session.
    EndExternal(ExternalId),
    /// Starts or stops the room's recording.
    SetRecording(bool),
    /// Starts a live stream to a target URL (checked by the control task), or stops one.
    StartStream(String),
    StopStream(String),
    /// The room's public broadcast (HLS at `/watch/{room}`) on or off.
    SetBroadcast(bool),
    /// Adds a hall camera (URL checked by the control task) shown with a name.
    AddCamera { url: String, name: String },
}

/// What the control task must do after an action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// Let this waiting participant in (chat history, list, media).
    Admitted(ParticipantId),
    /// End this participant's sessions and connection.
    Removed(ParticipantId, &'static str),
    /// Tell this participant a moderator muted them (their voice is out of the mix already).
    Muted(ParticipantId),
    /// Presentation mode: this participant may (no longer) send.
    Speak(ParticipantId, bool),
    /// This participant moderates now: it needs what moderators see (lobby, streams).
    Promoted(ParticipantId),
    /// The meeting is over for everyone.
    Ended,
    /// Show this new room key to the moderator who made it, once.
    KeyCreated { to: ParticipantId, kind: ExternalKind, key: String },
    /// End this WHIP/WHEP session (an external client).
    EndSession(SessionId),
    /// Start or stop the room's recording (the media says whether it could); `by` hears of a
    /// failure.
    Record { on: bool, by: ParticipantId },
    /// Start a live stream to this target; `by` hears why not.
    StartStream { url: String, by: ParticipantId },
    StopStream(String),
    /// Public broadcast on or off; `by` hears why not.
    PublicBroadcast { on: bool, by: ParticipantId },
    /// Add a hall camera; `by` hears why not.
    AddCamera { url: String, name: String, by: ParticipantId },
}

impl Room {
    /// Carries out `action` for `actor`; the room's state changed if it returns `Ok`.
    pub fn moderate(&mut self, actor: ParticipantId, action: ModAction) -> Result<Vec<Effect>, RoomError> {
        if !self.is_moderator(actor) {
            return Err(refuse(ErrorCode::Forbidden, "only moderators may do that"));
        }
        let mut effects = Vec::new();
        match action {
            ModAction::SetPassword(hash) => self.settings.password_hash = hash,
            ModAction::SetWaitingRoom(on) => self.settings.waiting_room = on,
            ModAction::Admit(id) => {
                let p = self.waiting_one(id)?;
                p.waiting = false;
                effects.push(Effect::Admitted(id));
            }
            ModAction::Refuse(id) => {
                self.waiting_one(id)?;
                self.participants.remove(&id);
                effects.push(Effect::Removed(id, "refused"));
            }
            ModAction::Mute(id) => {
                let p = self.admitted_one(id)?;
                p.audio_muted = true;
                effects.push(Effect::Muted(id));
            }
            ModAction::MuteAll => {
                for (id, p) in self.participants.iter_mut().filter(|(id, p)| **id != actor && !p.waiting) {
                    p.audio_muted = true;
                    effects.push(Effect::Muted(*id));
                }
            }
            ModAction::Remove(id) => {
                self.admitted_one(id)?;
                self.leave(id);
                effects.push(Effect::Removed(id, "removed by a moderator"));
            }
            ModAction::End => effects.push(Effect::Ended),
            ModAction::SetLayout(layout) => self.settings.layout = layout,
            ModAction::SetPresentation(on) => {
                self.settings.presentation = on;
                if on {
                    // Whoever starts it presents; everyone else becomes audience.
                    for (id, p) in self.participants.iter_mut() {
                        p.presenter = *id == actor;
                        effects.push(Effect::Speak(*id, p.presenter));
                    }
                } else {
                    for (id, p) in self.participants.iter_mut() {
                        p.presenter = false;
                        effects.push(Effect::Speak(*id, true));
                    }
                }
            }
            ModAction::SetPresenter(id, on) => {
                let p = self.admitted_one(id)?;
                p.presenter = on;
                if on {
                    p.hand_raised = false;
                }
                effects.push(Effect::Speak(id, on || !self.settings.presentation));
            }
            ModAction::MakeModerator(id) => {
                let p = self.admitted_one(id)?;
                if !p.moderator {
                    p.moderator = true;
                    effects.push(Effect::Promoted(id));
                }
            }
            ModAction::SetAudienceChat(on) => self.settings.audience_chat = on,
            ModAction::AllowMultipleShares(on) => self.settings.multiple_shares = on,
            ModAction::CreateKey(kind) => {
                let (key, ended) = self.access.create_key(kind);
                effects.extend(ended.into_iter().map(Effect::EndSession));
                effects.push(Effect::KeyCreated { to: actor, kind, key });
            }
            ModAction::RevokeKey(kind) => effects.extend(self.access.revoke_key(kind).into_iter().map(Effect::EndSession)),
            ModAction::SetRecording(on) => effects.push(Effect::Record { on, by: actor }),
            ModAction::StartStream(url) => effects.push(Effect::StartStream { url, by: actor }),
            ModAction::StopStream(id) => effects.push(Effect::StopStream(id)),
            ModAction::SetBroadcast(on) => effects.push(Effect::PublicBroadcast { on, by: actor }),
            ModAction::AddCamera { url, name } => effects.push(Effect::AddCamera { url, name, by: actor }),
            ModAction::EndExternal(id) => {
                let session = self
                    .access
                    .session_of(id)
                    .ok_or_else(|| refuse(ErrorCode::BadMessage, "no external session with that id"))?;
                effects.push(Effect::EndSession(session));
            }
        }
        Ok(effects)
    }

    fn waiting_one(&mut self, id: ParticipantId) -> Result<&mut super::participants::Participant, RoomError> {
        self.participants
            .get_mut(&id)
            .filter(|p| p.waiting)
            .ok_or_else(|| refuse(ErrorCode::BadMessage, "nobody with that id is waiting"))
    }

    fn admitted_one(&mut self, id: ParticipantId) -> Result<&mut super::participants::Participant, RoomError> {
        self.participants
            .get_mut(&id)
            .filter(|p| !p.waiting)
            .ok_or_else(|| refuse(ErrorCode::BadMessage, "nobody with that id is in the room"))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    const T0: Duration = Duration::ZERO;

    fn room_with(names: &[&str]) -> (Room, Vec<ParticipantId>) {
        let mut room = Room::default();
        let ids = names.iter().map(|n| room.join(n, None, T0).unwrap().id).collect();
        (room, ids)
    }

    #[test]
    fn the_first_participant_moderates_and_gets_the_key_once() {
        let mut room = Room::default();
        let first = room.join("Ada", None, T0).unwrap();
        assert!(first.moderator);
        let key = first.new_moderator_key.expect("the opener gets the key");
        let second = room.join("Bo", None, T0).unwrap();
        assert!(!second.moderator && second.new_moderator_key.is_none());
        let third = room.join("Cem", Some(key), T0).unwrap();
        assert!(third.moderator && third.new_moderator_key.is_none());
        let wrong = room.join("Eve", Some(crate::ids::SessionId::random()), T0).unwrap_err();
        assert_eq!(wrong.code, ErrorCode::Forbidden);
    }

    #[test]
    fn guests_may_not_moderate() {
        let (mut room, ids) = room_with(&["Mod", "Guest", "Other"]);
        let guest = ids[1];
        for action in [
            ModAction::Mute(ids[2]),
            ModAction::MuteAll,
            ModAction::Remove(ids[2]),
            ModAction::End,
            ModAction::SetLayout(LayoutMode::Speaker),
            ModAction::SetPresentation(true),
            ModAction::SetPresenter(guest, true),
            ModAction::MakeModerator(guest),
            ModAction::SetWaitingRoom(true),
            ModAction::SetPassword(None),
            ModAction::SetAudienceChat(false),
            ModAction::AllowMultipleShares(true),
            ModAction::CreateKey(ExternalKind::Publisher),
            ModAction::RevokeKey(ExternalKind::Viewer),
        ] {
            let err = room.moderate(guest, action.clone()).unwrap_err();
            assert_eq!(err.code, ErrorCode::Forbidden, "{action:?}");
        }
        assert!(room.moderate(ids[0], ModAction::Mute(ids[2])).is_ok());
    }

    #[test]
    fn a_moderator_makes_another_one_who_stays_one_after_a_reload() {
        let (mut room, ids) = room_with(&["Mod"]);
        let bo = room.join("Bo", None, T0).unwrap();
        assert_eq!(room.moderate(ids[0], ModAction::MakeModerator(bo.id)).unwrap(), vec![Effect::Promoted(bo.id)]);
        assert!(room.is_moderator(bo.id));
        assert!(room.moderate(bo.id, ModAction::MuteAll).is_ok(), "and may moderate");
        assert!(room.moderate(ids[0], ModAction::MakeModerator(bo.id)).unwrap().is_empty(), "once is enough");
        room.left_by_itself(bo.id, T0);
        room.leave(bo.id);
        assert!(room.join_resuming("Bo", None, Some(bo.token), T0).unwrap().moderator, "a reload keeps the role");
    }

    #[test]
    fn an_admitted_participant_who_reloads_does_not_wait_again_but_a_removed_one_does() {
        let (mut room, ids) = room_with(&["Mod"]);
        room.moderate(ids[0], ModAction::SetWaitingRoom(true)).unwrap();
        let bo = room.join("Bo", None, T0).unwrap();
        let eve = room.join("Eve", None, T0).unwrap();
        room.moderate(ids[0], ModAction::Admit(bo.id)).unwrap();
        room.moderate(ids[0], ModAction::Admit(eve.id)).unwrap();
        // Bo's page reloads (his connection ends by itself); Eve is removed.
        room.left_by_itself(bo.id, T0);
        room.leave(bo.id);
        room.moderate(ids[0], ModAction::Remove(eve.id)).unwrap();
        room.left_by_itself(eve.id, T0);
        assert!(room.may_resume(bo.token, T0));
        let again = room.join_resuming("Bo", None, Some(bo.token), T0).unwrap();
        assert!(!again.waiting, "back in at once");
        assert!(!room.may_resume(bo.token, T0), "each token once");
        assert!(!room.may_resume(eve.token, T0), "a removed participant is not let back in");
        assert!(room.join_resuming("Eve", None, Some(eve.token), T0).unwrap().waiting);
        // A stranger's guess waits like anyone.
        assert!(room.join_resuming("Mal", None, Some(crate::ids::SessionId::random()), T0).unwrap().waiting);
        // Who left while still waiting waits again.
        let cem = room.join("Cem", None, T0).unwrap();
        room.left_by_itself(cem.id, T0);
        room.leave(cem.id);
        assert!(room.join_resuming("Cem", None, Some(cem.token), T0).unwrap().waiting);
    }

    #[test]
    fn waiting_room_holds_newcomers_until_admitted_or_refused() {
        let (mut room, ids) = room_with(&["Mod"]);
        room.moderate(ids[0], ModAction::SetWaitingRoom(true)).unwrap();
        let bo = room.join("Bo", None, T0).unwrap();
        let eve = room.join("Eve", None, T0).unwrap();
        assert!(bo.waiting && eve.waiting);
        assert_eq!(room.lobby().len(), 2);
        assert_eq!(room.participants().len(), 1, "waiting people are not listed");
        assert_eq!(room.may_view(bo.id).unwrap_err().code, ErrorCode::Waiting);
        assert_eq!(room.chat(bo.id, "hi", T0, 0).unwrap_err().code, ErrorCode::Waiting);
        assert_eq!(room.moderate(ids[0], ModAction::Admit(bo.id)).unwrap(), vec![Effect::Admitted(bo.id)]);
        assert!(room.may_view(bo.id).is_ok());
        assert_eq!(room.moderate(ids[0], ModAction::Refuse(eve.id)).unwrap(), vec![Effect::Removed(eve.id, "refused")]);
        assert!(room.lobby().is_empty());
        assert_eq!(room.participants().len(), 2);
    }

    #[test]
    fn presentation_mode_puts_only_presenters_on_stage() {
        let (mut room, ids) = room_with(&["Mod", "Bo", "Cem"]);
        room.moderate(ids[0], ModAction::SetPresentation(true)).unwrap();
        assert_eq!(room.on_stage().unwrap().into_iter().collect::<Vec<_>>(), vec![ids[0]]);
        assert_eq!(room.may_publish(ids[1]).unwrap_err().code, ErrorCode::Forbidden);
        assert!(room.raise_hand(ids[1], true));
        let effects = room.moderate(ids[0], ModAction::SetPresenter(ids[1], true)).unwrap();
        assert_eq!(effects, vec![Effect::Speak(ids[1], true)]);
        assert!(room.may_publish(ids[1]).is_ok());
        assert!(room.on_stage().unwrap().contains(&ids[1]));
        room.moderate(ids[0], ModAction::SetPresenter(ids[1], false)).unwrap();
        assert!(!room.on_stage().unwrap().contains(&ids[1]));
        room.moderate(ids[0], ModAction::SetAudienceChat(false)).unwrap();
        assert_eq!(room.chat(ids[2], "hi", T0, 0).unwrap_err().code, ErrorCode::Forbidden);
        room.moderate(ids[0], ModAction::SetPresentation(false)).unwrap();
        assert!(room.on_stage().is_none());
        assert!(room.may_publish(ids[2]).is_ok());
    }

    #[test]
    fn one_screen_share_at_a_time_unless_allowed() {
        let (mut room, ids) = room_with(&["Mod", "Bo"]);
        assert!(room.may_share(ids[1], 0).is_ok());
        assert_eq!(room.may_share(ids[1], 1).unwrap_err().code, ErrorCode::Forbidden);
        room.moderate(ids[0], ModAction::AllowMultipleShares(true)).unwrap();
        assert!(room.may_share(ids[1], 1).is_ok());
    }

    #[test]
    fn wrong_passwords_are_rate_limited_per_address() {
        let mut room = Room::default();
        let (here, there) = (1u64, 2u64);
        for i in 0..5 {
            assert!(room.may_try_password(here, Duration::from_secs(i)).is_ok());
            room.password_failed(here, Duration::from_secs(i));
        }
        assert_eq!(room.may_try_password(here, Duration::from_secs(6)).unwrap_err().code, ErrorCode::RateLimited);
        assert!(room.may_try_password(there, Duration::from_secs(6)).is_ok(), "other addresses are not affected");
        assert!(room.may_try_password(here, Duration::from_secs(130)).is_ok(), "the block ends");
    }

    #[test]
    fn audience_has_its_own_larger_limit() {
        let mut room = Room::with_limits(2, 3);
        let m = room.join("Mod", None, T0).unwrap().id;
        room.join("Bo", None, T0).unwrap();
        assert_eq!(room.join("Cem", None, T0).unwrap_err().code, ErrorCode::RoomFull);
        room.moderate(m, ModAction::SetPresentation(true)).unwrap();
        for n in ["A1", "A2"] {
            room.join(n, None, T0).unwrap();
        }
        assert_eq!(room.join("A3", None, T0).unwrap_err().code, ErrorCode::RoomFull, "Bo + A1 + A2 fill 3");
    }
}
