//! Who may send into or receive a room's media: participants by their token, and external
//! clients (OBS, a hall encoder, a hall display, a WHEP player) only by a moderator's choice:
//! a room key, the room password, or a server run with `--open-media`. Every external session
//! is listed for everyone in the room, and moderators can end it. Sans-IO like the rest of
//! `room`: the control task asks, carries out the effects and owns the clock.

use std::collections::BTreeMap;
use std::fmt;

use blake2::{Blake2s256, Digest};

use super::participants::{clean_name, refuse, ParticipantId, Room, RoomError};
use crate::ids::SessionId;
use crate::protocol::{ErrorCode, ExternalAccess, ExternalInfo, ExternalKind, StreamState};

/// What a WHIP or WHEP request wants.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Purpose {
    Publish,
    Share,
    View,
}

impl Purpose {
    fn external_kind(self) -> ExternalKind {
        match self {
            Purpose::Publish | Purpose::Share => ExternalKind::Publisher,
            Purpose::View => ExternalKind::Viewer,
        }
    }
}

/// The answer to "who is this request?".
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Gate {
    /// A participant's token, allowed for the purpose.
    Participant(ParticipantId),
    /// An external client, allowed and now listed as `id`. A viewer that presented an external
    /// publisher's session id hears the mix without that publisher (`exclude`).
    External { id: ExternalId, exclude: Option<SessionId> },
    /// Only the room password can let this request in: check the bearer against this argon2id
    /// hash (off the control task), then ask again with `password_ok`.
    CheckPassword(String),
}

/// A WHIP/WHEP request as the gate sees it.
pub struct Request<'a> {
    pub bearer: Option<&'a str>,
    pub purpose: Purpose,
    /// The bearer was checked against the room password and matched.
    pub password_ok: bool,
    /// The session id the request will get if it is let in.
    pub session: SessionId,
    /// What the client calls itself (already cleaned), shown in the list.
    pub label: Option<String>,
}

/// `x7` on the wire: an external session's public name. The session id itself is the client's
/// secret (its `Location`), so it is never shown to anyone else.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ExternalId(u64);

impl ExternalId {
    pub fn parse(raw: &str) -> Option<Self> {
        raw.strip_prefix('x')?.parse().ok().map(Self)
    }
}

impl fmt::Display for ExternalId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "x{}", self.0)
    }
}

/// A room key as kept: its BLAKE2s digest. The key (128 random bits) is shown once to the
/// moderator who made it; a fast hash is enough for a secret that cannot be guessed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct KeyDigest([u8; 32]);

impl KeyDigest {
    pub(crate) fn of(secret: &str) -> Self {
        Self(Blake2s256::digest(secret.as_bytes()).into())
    }

    /// Compared in time independent of where the digests differ.
    pub(crate) fn matches(&self, other: &KeyDigest) -> bool {
        self.0.iter().zip(other.0.iter()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
    }

    /// The digest as 64 hex digits (how a room's keys are kept in Redis).
    pub(crate) fn to_hex(self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }

    pub(crate) fn from_hex(hex: &str) -> Option<Self> {
        if hex.len() != 64 || !hex.is_ascii() {
            return None;
        }
        let mut out = [0u8; 32];
        for (i, byte) in out.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok()?;
        }
        Some(Self(out))
    }
}

/// The prefix that tells a key's kind at a glance (`whip-…` for OBS, `whep-…` for players).
fn key_prefix(kind: ExternalKind) -> &'static str {
    match kind {
        ExternalKind::Publisher => "whip",
        ExternalKind::Viewer => "whep",
    }
}

#[derive(Debug, Clone)]
struct External {
    session: SessionId,
    kind: ExternalKind,
    label: Option<String>,
    access: ExternalAccess,
    /// A hall camera's connection.
    state: Option<StreamState>,
}

/// The room's keys and external sessions.
#[derive(Debug, Default)]
pub(super) struct Access {
    keys: BTreeMap<ExternalKind, KeyDigest>,
    externals: BTreeMap<ExternalId, External>,
    next_id: u64,
}

impl Access {
    /// The digests of the room's keys, by kind (what the room keeps beyond its node).
    pub(super) fn key_digests(&self) -> impl Iterator<Item = (ExternalKind, KeyDigest)> + '_ {
        self.keys.iter().map(|(k, d)| (*k, *d))
    }

    /// Takes the keys a room kept back (the room opens again elsewhere).
    pub(super) fn restore_key(&mut self, kind: ExternalKind, digest: KeyDigest) {
        self.keys.insert(kind, digest);
    }

    pub(super) fn has_key(&self, kind: ExternalKind) -> bool {
        self.keys.contains_key(&kind)
    }

    /// A new key of `kind`, replacing any earlier one; returns the key text (shown once) and
    /// the sessions the replaced key had let in (they end with it).
    pub(super) fn create_key(&mut self, kind: ExternalKind) -> (String, Vec<SessionId>) {
        let ended = self.revoke_key(kind);
        let key = format!("{}-{}", key_prefix(kind), SessionId::random());
        self.keys.insert(kind, KeyDigest::of(&key));
        (key, ended)
    }

    /// Forgets the key of `kind`; returns the sessions it had let in, which must end.
    pub(super) fn revoke_key(&mut self, kind: ExternalKind) -> Vec<SessionId> {
        if self.keys.remove(&kind).is_none() {
            return Vec::new();
        }
        self.externals
            .values()
            .filter(|e| e.kind == kind && e.access == ExternalAccess::Key)
            .map(|e| e.session)
            .collect()
    }

    /// Whether `bearer` is the room's key for `kind`.
    fn key_matches(&self, kind: ExternalKind, bearer: &str) -> bool {
        let given = KeyDigest::of(bearer);
        self.keys.get(&kind).is_some_and(|k| k.matches(&given))
    }

    /// The external publisher whose session id `bearer` is (for its own return feed).
    fn publisher_session(&self, bearer: &str) -> Option<SessionId> {
        let given = SessionId::parse(bearer)?;
        // Every publisher session is compared, so timing tells nothing about which exist.
        self.externals.values().filter(|e| e.kind == ExternalKind::Publisher).fold(None, |found, e| {
            if crate::ids::same_secret(e.session, given) { Some(e.session) } else { found }
        })
    }

    fn add(&mut self, session: SessionId, kind: ExternalKind, label: Option<String>, access: ExternalAccess) -> ExternalId {
        self.next_id += 1;
        let id = ExternalId(self.next_id);
        let state = (access == ExternalAccess::Camera).then_some(StreamState::Connecting);
        self.externals.insert(id, External { session, kind, label, access, state });
        id
    }

    pub(super) fn session_of(&self, id: ExternalId) -> Option<SessionId> {
        self.externals.get(&id).map(|e| e.session)
    }

    fn info(id: ExternalId, e: &External) -> ExternalInfo {
        ExternalInfo { id: id.to_string(), kind: e.kind, label: e.label.clone(), access: e.access, state: e.state.clone() }
    }
}

/// Cleans a client's self-description for the list: like a name, or refused.
pub fn clean_label(raw: &str) -> Result<String, RoomError> {
    clean_name(raw).map_err(|_| refuse(ErrorCode::BadName, "label must be 1 to 40 characters"))
}

fn unauthorized(message: &str) -> RoomError {
    refuse(ErrorCode::Unauthorized, message)
}

impl Room {
    /// Decides who a WHIP/WHEP request is and whether it may do what it wants; an external
    /// client that is let in is listed at once. `open_media` is the server-wide switch for labs
    /// and load tests: anonymous clients are let in, except where a password, the waiting
    /// room or presentation mode says otherwise.
    pub fn gate(&mut self, request: Request<'_>, open_media: bool, shares_running: usize) -> Result<Gate, RoomError> {
        let Request { bearer, purpose, password_ok, session, label } = request;
        let kind = purpose.external_kind();
        if let Some(participant) = bearer.and_then(SessionId::parse).and_then(|t| self.by_token(t)) {
            match purpose {
                Purpose::Publish => self.may_publish(participant)?,
                Purpose::Share => self.may_share(participant, shares_running)?,
                Purpose::View => self.may_view(participant)?,
            }
            return Ok(Gate::Participant(participant));
        }
        if purpose == Purpose::Share {
            return Err(refuse(ErrorCode::Forbidden, "screen sharing needs a participant token"));
        }
        let access = match bearer {
            Some(b) if purpose == Purpose::View && self.access.publisher_session(b).is_some() => ExternalAccess::Publisher,
            Some(b) if self.access.key_matches(kind, b) => ExternalAccess::Key,
            _ if password_ok => ExternalAccess::Password,
            Some(_) => match self.password_hash() {
                Some(hash) => return Ok(Gate::CheckPassword(hash.to_string())),
                None => return Err(unauthorized("the bearer is neither a participant token nor a key of this room")),
            },
            None if self.has_password() => {
                return Err(refuse(ErrorCode::PasswordRequired, "this room needs a password (Authorization: Bearer <password>)"))
            }
            None if open_media => ExternalAccess::Open,
            None => {
                return Err(unauthorized(
                    "this room takes media only from its participants (Authorization: Bearer <token>) or with a key from a moderator",
                ))
            }
        };
        // A key is the moderators' explicit choice; the password and the open switch do not
        // get past presentation mode or the waiting room.
        if access == ExternalAccess::Open && self.settings.waiting_room {
            return Err(refuse(ErrorCode::Waiting, "the waiting room is on: only participants a moderator admitted get media"));
        }
        if matches!(access, ExternalAccess::Open | ExternalAccess::Password) && purpose == Purpose::Publish && self.settings.presentation {
            return Err(refuse(ErrorCode::Forbidden, "in presentation mode only presenters and the publisher key send"));
        }
        if self.access.externals.len() >= self.max_audience() {
            return Err(refuse(ErrorCode::RoomFull, "the room has as many external clients as it takes"));
        }
        let exclude = (access == ExternalAccess::Publisher).then(|| bearer.and_then(|b| self.access.publisher_session(b))).flatten();
        let id = self.access.add(session, kind, label, access);
        Ok(Gate::External { id, exclude })
    }

    /// A hall camera a moderator added, listed as an external publisher named `label`.
    pub fn add_camera(&mut self, session: SessionId, label: String) -> ExternalId {
        self.access.add(session, ExternalKind::Publisher, Some(label), ExternalAccess::Camera)
    }

    /// The session of the external listed as `id`.
    pub fn external_session(&self, id: ExternalId) -> Option<SessionId> {
        self.access.session_of(id)
    }

    /// The hall cameras listed.
    pub fn cameras(&self) -> Vec<ExternalInfo> {
        self.externals().into_iter().filter(|e| e.access == ExternalAccess::Camera).collect()
    }

    /// What a hall camera's connection does now; whether that changed.
    pub fn set_camera_state(&mut self, session: SessionId, state: StreamState) -> bool {
        let Some(e) = self.access.externals.values_mut().find(|e| e.session == session && e.access == ExternalAccess::Camera) else {
            return false;
        };
        let changed = e.state.as_ref() != Some(&state);
        e.state = Some(state);
        changed
    }

    /// Takes an ended external session off the list; returns what it was.
    pub fn external_ended(&mut self, session: SessionId) -> Option<ExternalInfo> {
        let id = self.access.externals.iter().find(|(_, e)| e.session == session).map(|(id, _)| *id)?;
        let e = self.access.externals.remove(&id)?;
        Some(Access::info(id, &e))
    }

    /// Every external session's id (to end them all with the meeting).
    pub fn external_sessions(&self) -> Vec<SessionId> {
        self.access.externals.values().map(|e| e.session).collect()
    }

    /// The external sessions, in the order they came.
    pub fn externals(&self) -> Vec<ExternalInfo> {
        self.access.externals.iter().map(|(id, e)| Access::info(*id, e)).collect()
    }

    /// One external session, as listed.
    pub fn external(&self, id: ExternalId) -> Option<ExternalInfo> {
        self.access.externals.get(&id).map(|e| Access::info(id, e))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::room::moderation::{Effect, ModAction};

    const T0: Duration = Duration::ZERO;

    fn ask<'a>(bearer: Option<&'a str>, purpose: Purpose) -> Request<'a> {
        Request { bearer, purpose, password_ok: false, session: SessionId::random(), label: None }
    }

    fn key_of(effects: &[Effect]) -> String {
        effects
            .iter()
            .find_map(|e| match e {
                Effect::KeyCreated { key, .. } => Some(key.clone()),
                _ => None,
            })
            .expect("a key was made")
    }

    #[test]
    fn anonymous_media_is_refused_unless_the_server_is_open() {
        let mut room = Room::default();
        room.join("Ada", None, T0).unwrap();
        for purpose in [Purpose::Publish, Purpose::View] {
            assert_eq!(room.gate(ask(None, purpose), false, 0).unwrap_err().code, ErrorCode::Unauthorized);
            let stranger = SessionId::random().to_string();
            assert_eq!(room.gate(ask(Some(&stranger), purpose), false, 0).unwrap_err().code, ErrorCode::Unauthorized);
            assert!(matches!(room.gate(ask(None, purpose), true, 0), Ok(Gate::External { .. })));
        }
        assert_eq!(room.externals().len(), 2, "what got in is listed");
        assert!(room.externals().iter().all(|e| e.access == ExternalAccess::Open));
    }

    #[test]
    fn participants_use_their_token() {
        let mut room = Room::default();
        let ada = room.join("Ada", None, T0).unwrap();
        let token = ada.token.to_string();
        assert_eq!(room.gate(ask(Some(&token), Purpose::Publish), false, 0).unwrap(), Gate::Participant(ada.id));
        assert!(room.externals().is_empty(), "participants are not external");
    }

    #[test]
    fn keys_let_in_their_kind_only_and_revoking_ends_their_sessions() {
        let mut room = Room::default();
        let ada = room.join("Ada", None, T0).unwrap().id;
        let bo = room.join("Bo", None, T0).unwrap().id;
        assert_eq!(room.moderate(bo, ModAction::CreateKey(ExternalKind::Viewer)).unwrap_err().code, ErrorCode::Forbidden);
        let viewer_key = key_of(&room.moderate(ada, ModAction::CreateKey(ExternalKind::Viewer)).unwrap());
        assert!(viewer_key.starts_with("whep-") && viewer_key.len() == 37, "{viewer_key}");
        assert!(room.settings().viewer_key && !room.settings().publisher_key);
        assert_eq!(room.gate(ask(Some(&viewer_key), Purpose::Publish), false, 0).unwrap_err().code, ErrorCode::Unauthorized);
        let request = ask(Some(&viewer_key), Purpose::View);
        let session = request.session;
        let Gate::External { id, exclude: None } = room.gate(request, false, 0).unwrap() else { panic!("let in") };
        assert_eq!(room.external(id).unwrap().kind, ExternalKind::Viewer);
        let effects = room.moderate(ada, ModAction::RevokeKey(ExternalKind::Viewer)).unwrap();
        assert_eq!(effects, vec![Effect::EndSession(session)]);
        assert_eq!(room.gate(ask(Some(&viewer_key), Purpose::View), false, 0).unwrap_err().code, ErrorCode::Unauthorized);
        assert!(room.external_ended(session).is_some());
        assert!(room.externals().is_empty());
    }

    #[test]
    fn an_external_publisher_may_view_its_own_return_feed() {
        let mut room = Room::default();
        let ada = room.join("Ada", None, T0).unwrap().id;
        let key = key_of(&room.moderate(ada, ModAction::CreateKey(ExternalKind::Publisher)).unwrap());
        let request = ask(Some(&key), Purpose::Publish);
        let obs = request.session;
        room.gate(request, false, 0).unwrap();
        let own = obs.to_string();
        let Gate::External { exclude, .. } = room.gate(ask(Some(&own), Purpose::View), false, 0).unwrap() else { panic!() };
        assert_eq!(exclude, Some(obs));
        assert_eq!(room.externals()[1].access, ExternalAccess::Publisher);
        assert_eq!(room.gate(ask(Some(&key), Purpose::Share), false, 0).unwrap_err().code, ErrorCode::Forbidden);
    }

    #[test]
    fn the_open_switch_never_overrides_password_waiting_room_or_presentation() {
        let mut room = Room::default();
        let ada = room.join("Ada", None, T0).unwrap().id;
        room.moderate(ada, ModAction::SetWaitingRoom(true)).unwrap();
        assert_eq!(room.gate(ask(None, Purpose::View), true, 0).unwrap_err().code, ErrorCode::Waiting);
        room.moderate(ada, ModAction::SetWaitingRoom(false)).unwrap();
        room.moderate(ada, ModAction::SetPresentation(true)).unwrap();
        assert_eq!(room.gate(ask(None, Purpose::Publish), true, 0).unwrap_err().code, ErrorCode::Forbidden);
        assert!(room.gate(ask(None, Purpose::View), true, 0).is_ok(), "the audience may watch");
        let key = key_of(&room.moderate(ada, ModAction::CreateKey(ExternalKind::Publisher)).unwrap());
        assert!(room.gate(ask(Some(&key), Purpose::Publish), false, 0).is_ok(), "a hall camera by key");
        room.moderate(ada, ModAction::SetPassword(Some("$argon2id$x".into()))).unwrap();
        assert_eq!(room.gate(ask(None, Purpose::View), true, 0).unwrap_err().code, ErrorCode::PasswordRequired);
        assert_eq!(room.gate(ask(Some("guess"), Purpose::View), true, 0).unwrap(), Gate::CheckPassword("$argon2id$x".into()));
        let checked = Request { password_ok: true, ..ask(Some("right"), Purpose::View) };
        assert!(matches!(room.gate(checked, false, 0), Ok(Gate::External { .. })));
        let checked = Request { password_ok: true, ..ask(Some("right"), Purpose::Publish) };
        assert_eq!(room.gate(checked, false, 0).unwrap_err().code, ErrorCode::Forbidden, "presentation mode");
    }

    #[test]
    fn external_ids_are_not_session_ids() {
        let mut room = Room::default();
        let request = ask(None, Purpose::View);
        let session = request.session.to_string();
        room.gate(request, true, 0).unwrap();
        let listed = &room.externals()[0];
        assert!(!listed.id.contains(&session));
        assert_eq!(ExternalId::parse(&listed.id).map(|i| i.to_string()), Some(listed.id.clone()));
    }
}
