//! Who is in a room: names, tokens, mute state, who speaks, and the chat. Sans-IO: time comes
//! in as arguments, effects go out as return values.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::fmt;
use std::time::Duration;

use crate::ids::{same_secret, SessionId};
use super::layout::LayoutMode;
use crate::protocol::{ChatLine, ErrorCode, LobbyEntry, ParticipantInfo, RoomSettings, MAX_CHAT_CHARS, MAX_NAME_CHARS};

/// Participants per room.
pub const DEFAULT_MAX_PARTICIPANTS: usize = 50;
/// Receive-only audience in presentation mode.
pub const DEFAULT_MAX_AUDIENCE: usize = 500;
/// Wrong passwords allowed per address and room in [`PASSWORD_WINDOW`]...
const PASSWORD_TRIES: usize = 5;
const PASSWORD_WINDOW: Duration = Duration::from_secs(60);
/// ...after which that address waits this long.
const PASSWORD_BLOCK: Duration = Duration::from_secs(60);
/// Chat lines kept for late joiners (in memory only, gone with the room).
pub const CHAT_HISTORY: usize = 100;
/// Chat rate limit: a burst of this many, then one more per [`CHAT_REFILL`].
const CHAT_BURST: f64 = 5.0;
const CHAT_REFILL: Duration = Duration::from_secs(1);

/// Speaking starts above this level (dBFS, RMS over a report interval)...
const SPEAK_ON_DB: f32 = -42.0;
/// ...and ends below this one, after [`SPEAK_HOLD`] of quiet.
const SPEAK_OFF_DB: f32 = -50.0;
const SPEAK_HOLD: Duration = Duration::from_millis(800);
/// A new active speaker needs to have spoken this long (no flicker between two voices).
const ACTIVE_MIN: Duration = Duration::from_millis(600);

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ParticipantId(u64);

impl ParticipantId {
    /// Parses the `p7` form used on the wire.
    pub fn parse(raw: &str) -> Option<Self> {
        raw.strip_prefix('p')?.parse().ok().map(Self)
    }
}

impl fmt::Display for ParticipantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "p{}", self.0)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct RoomError {
    pub code: ErrorCode,
    pub message: String,
}

pub(super) fn refuse(code: ErrorCode, message: &str) -> RoomError {
    RoomError { code, message: message.to_string() }
}

#[derive(Debug, Clone)]
pub(super) struct Participant {
    pub(super) name: String,
    token: SessionId,
    pub(super) audio_muted: bool,
    video_muted: bool,
    publishing: bool,
    pub(super) moderator: bool,
    /// In the waiting room: no media, no chat, not listed.
    pub(super) waiting: bool,
    pub(super) hand_raised: bool,
    /// Seen and heard in presentation mode.
    pub(super) presenter: bool,
    /// How the picture reaches it when less than the full one (see `ParticipantInfo`).
    receiving: Option<String>,
    /// A caller dialled in by phone (sound only).
    phone: bool,
    speaking: bool,
    speaking_since: Option<Duration>,
    /// When this participant last started to speak.
    last_spoke: Option<Duration>,
    quiet_since: Option<Duration>,
    chat_allowance: f64,
    chat_checked: Duration,
}

#[derive(Debug)]
pub struct Room {
    pub(super) participants: BTreeMap<ParticipantId, Participant>,
    history: VecDeque<ChatLine>,
    next_id: u64,
    max_participants: usize,
    max_audience: usize,
    active: Option<ParticipantId>,
    /// The digest of the key handed to the room's first participant; whoever presents the
    /// key later is a moderator too.
    pub(super) moderator_key: Option<super::access::KeyDigest>,
    pub(super) settings: Settings,
    /// Wrong-password times per address key; never leaves memory.
    password_failures: HashMap<u64, VecDeque<Duration>>,
    /// Room keys and the external sessions they (or the password) let in.
    pub(super) access: super::access::Access,
    /// Who may come back after a reload without waiting again.
    resume: super::resume::Resume,
}

/// What moderators decide for the room.
#[derive(Debug, Clone, Default)]
pub(super) struct Settings {
    /// argon2id PHC string of the room password.
    pub(super) password_hash: Option<String>,
    pub(super) waiting_room: bool,
    pub(super) presentation: bool,
    pub(super) audience_chat: bool,
    pub(super) layout: LayoutMode,
    pub(super) multiple_shares: bool,
    /// A recording of the room is being written (everyone is told).
    pub(super) recording: bool,
    /// The room is streamed live (everyone is told).
    pub(super) streaming: bool,
    /// The room is broadcast publicly over HLS (everyone is told).
    pub(super) broadcast: bool,
}

/// The outcome of a join.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Joined {
    pub id: ParticipantId,
    pub token: SessionId,
    pub moderator: bool,
    /// Only for the participant who opened the room: the moderator key, shown once.
    pub new_moderator_key: Option<SessionId>,
    pub waiting: bool,
}

impl Default for Room {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_PARTICIPANTS)
    }
}

/// Names are shown on tiles and in lists: trimmed, no control characters, bounded length.
pub fn clean_name(raw: &str) -> Result<String, RoomError> {
    let name: String = raw.chars().filter(|c| !c.is_control()).collect::<String>().trim().to_string();
    let len = name.chars().count();
    if len == 0 || len > MAX_NAME_CHARS {
        return Err(refuse(ErrorCode::BadName, "name must be 1 to 40 characters"));
    }
    Ok(name)
}

impl Room {
    pub fn new(max_participants: usize) -> Self {
        Self::with_limits(max_participants, DEFAULT_MAX_AUDIENCE)
    }

    pub fn with_limits(max_participants: usize, max_audience: usize) -> Self {
        Self {
            participants: BTreeMap::new(),
            history: VecDeque::new(),
            next_id: 1,
            max_participants,
            max_audience,
            active: None,
            moderator_key: None,
            settings: Settings { audience_chat: true, ..Settings::default() },
            password_failures: HashMap::new(),
            access: Default::default(),
            resume: Default::default(),
        }
    }

    /// Joins `name`. The room's first participant becomes its moderator and gets the
    /// moderator key; presenting that key later makes one a moderator too. With the waiting
    /// room on, everyone else waits for admission.
    pub fn join(&mut self, name: &str, key: Option<SessionId>, now: Duration) -> Result<Joined, RoomError> {
        self.join_resuming(name, key, None, now)
    }

    /// Whether the participant whose token was `token` may come back now without waiting or a
    /// password (it left by itself a short while ago).
    pub fn may_resume(&mut self, token: SessionId, now: Duration) -> bool {
        self.resume.allows(token, now)
    }

    /// `id` left by itself (closed or reloaded its page): it may come back for a while.
    pub fn left_by_itself(&mut self, id: ParticipantId, now: Duration) {
        if let Some(p) = self.participants.get(&id).filter(|p| !p.waiting) {
            self.resume.remember(p.token, now, p.moderator);
        }
    }

    /// Joins `name`, coming back with the previous token `resume` if there is one: whoever
    /// may resume skips the waiting room.
    pub fn join_resuming(&mut self, name: &str, key: Option<SessionId>, resume: Option<SessionId>, now: Duration) -> Result<Joined, RoomError> {
        self.join_as(name, key, resume, false, now)
    }

    /// Joins a caller dialled in by phone: never a moderator (a phone cannot moderate, and
    /// the room's first web participant should be), and in a room with a password or a
    /// waiting room they wait for a moderator (the PIN alone does not replace the password).
    pub fn join_by_phone(&mut self, name: &str, now: Duration) -> Result<Joined, RoomError> {
        let joined = self.join_as(name, None, None, true, now)?;
        if let Some(p) = self.participants.get_mut(&joined.id) {
            p.phone = true;
            p.video_muted = true;
        }
        Ok(joined)
    }

    fn join_as(&mut self, name: &str, key: Option<SessionId>, resume: Option<SessionId>, phone: bool, now: Duration) -> Result<Joined, RoomError> {
        let name = clean_name(name)?;
        let (mut moderator, new_key) = match (self.moderator_key, key) {
            (None, _) if phone => (false, None),
            (None, _) => {
                let key = SessionId::random();
                self.moderator_key = Some(super::access::KeyDigest::of(&key.to_string()));
                (true, Some(key))
            }
            (Some(k), Some(given)) if k.matches(&super::access::KeyDigest::of(&given.to_string())) => (true, None),
            (Some(_), Some(_)) => return Err(refuse(ErrorCode::Forbidden, "the moderator key is not valid for this room")),
            (Some(_), None) => (false, None),
        };
        let audience = self.settings.presentation && !moderator;
        let (limit, counted) = if audience {
            (self.max_audience, self.participants.values().filter(|p| !p.moderator && !p.presenter).count())
        } else {
            (self.max_participants, self.participants.values().filter(|p| p.moderator || p.presenter || !self.settings.presentation).count())
        };
        if counted >= limit {
            return Err(refuse(ErrorCode::RoomFull, "the room is full"));
        }
        let id = ParticipantId(self.next_id);
        self.next_id += 1;
        let token = SessionId::random();
        let resumed = resume.and_then(|t| self.resume.take(t, now));
        moderator |= resumed == Some(true);
        let waiting = (self.settings.waiting_room || (phone && self.has_password())) && !moderator && resumed.is_none();
        self.participants.insert(id, Participant {
            name,
            token,
            audio_muted: false,
            video_muted: false,
            publishing: false,
            moderator,
            waiting,
            hand_raised: false,
            presenter: false,
            receiving: None,
            phone: false,
            speaking: false,
            speaking_since: None,
            last_spoke: None,
            quiet_since: None,
            chat_allowance: CHAT_BURST,
            chat_checked: now,
        });
        Ok(Joined { id, token, moderator, new_moderator_key: new_key, waiting })
    }

    /// Most receive-only audience members in presentation mode (and external clients).
    pub fn max_audience(&self) -> usize {
        self.max_audience
    }

    /// Presentation mode: how many admitted participants watch as audience.
    pub fn audience(&self) -> usize {
        if !self.settings.presentation {
            return 0;
        }
        self.participants.values().filter(|p| !p.waiting && !p.moderator && !p.presenter).count()
    }

    pub fn has_password(&self) -> bool {
        self.settings.password_hash.is_some()
    }

    pub fn password_hash(&self) -> Option<&str> {
        self.settings.password_hash.as_deref()
    }

    /// Whether `address` may try a password now (at most 5 wrong ones a minute, then a pause).
    pub fn may_try_password(&mut self, address: u64, now: Duration) -> Result<(), RoomError> {
        let tries = self.password_failures.entry(address).or_default();
        while tries.front().is_some_and(|t| now.saturating_sub(*t) > PASSWORD_WINDOW.max(PASSWORD_BLOCK)) {
            tries.pop_front();
        }
        let recent = tries.iter().filter(|t| now.saturating_sub(**t) <= PASSWORD_WINDOW).count();
        let blocked = recent >= PASSWORD_TRIES
            || tries.len() >= PASSWORD_TRIES && tries.back().is_some_and(|t| now.saturating_sub(*t) < PASSWORD_BLOCK);
        if blocked {
            return Err(refuse(ErrorCode::RateLimited, "too many wrong passwords; wait a minute"));
        }
        Ok(())
    }

    pub fn password_failed(&mut self, address: u64, now: Duration) {
        self.password_failures.entry(address).or_default().push_back(now);
    }

    /// Whether `id` may send media now, and why not.
    pub fn may_publish(&self, id: ParticipantId) -> Result<(), RoomError> {
        let p = self.participants.get(&id).ok_or_else(|| refuse(ErrorCode::NotJoined, "not in this room"))?;
        if p.waiting {
            return Err(refuse(ErrorCode::Waiting, "waiting for a moderator to let you in"));
        }
        if self.settings.presentation && !p.presenter {
            return Err(refuse(ErrorCode::Forbidden, "only presenters send in presentation mode"));
        }
        Ok(())
    }

    /// Whether `id` may receive the room's mix now.
    pub fn may_view(&self, id: ParticipantId) -> Result<(), RoomError> {
        let p = self.participants.get(&id).ok_or_else(|| refuse(ErrorCode::NotJoined, "not in this room"))?;
        if p.waiting {
            return Err(refuse(ErrorCode::Waiting, "waiting for a moderator to let you in"));
        }
        Ok(())
    }

    /// Whether `id` may share a screen now (one share at a time unless a moderator allows more).
    pub fn may_share(&self, id: ParticipantId, shares_running: usize) -> Result<(), RoomError> {
        self.may_publish(id)?;
        if shares_running > 0 && !self.settings.multiple_shares {
            return Err(refuse(ErrorCode::Forbidden, "someone is already sharing a screen"));
        }
        Ok(())
    }

    pub fn is_waiting(&self, id: ParticipantId) -> bool {
        self.participants.get(&id).is_some_and(|p| p.waiting)
    }

    pub fn is_moderator(&self, id: ParticipantId) -> bool {
        self.participants.get(&id).is_some_and(|p| p.moderator)
    }

    /// Participants whose camera and voice are in the picture and the mix: everyone, or in
    /// presentation mode only the presenters. `None` means everyone.
    pub fn on_stage(&self) -> Option<BTreeSet<ParticipantId>> {
        self.settings.presentation.then(|| {
            self.participants.iter().filter(|(_, p)| p.presenter && !p.waiting).map(|(id, _)| *id).collect()
        })
    }

    pub fn layout(&self) -> LayoutMode {
        self.settings.layout
    }

    pub fn settings(&self) -> RoomSettings {
        RoomSettings {
            password: self.settings.password_hash.is_some(),
            waiting_room: self.settings.waiting_room,
            presentation: self.settings.presentation,
            audience_chat: self.settings.audience_chat,
            layout: self.settings.layout,
            multiple_shares: self.settings.multiple_shares,
            publisher_key: self.access.has_key(crate::protocol::ExternalKind::Publisher),
            viewer_key: self.access.has_key(crate::protocol::ExternalKind::Viewer),
            recording: self.settings.recording,
            streaming: self.settings.streaming,
            broadcast: self.settings.broadcast,
        }
    }

    /// Whether the room's public broadcast (HLS) is on.
    pub fn set_broadcast(&mut self, on: bool) {
        self.settings.broadcast = on;
    }

    /// Whether the room is streamed live.
    pub fn set_streaming(&mut self, on: bool) {
        self.settings.streaming = on;
    }

    /// Whether `key` is this room's moderator key (compared in constant time).
    pub fn is_moderator_key(&self, key: SessionId) -> bool {
        self.moderator_key.is_some_and(|k| k.matches(&super::access::KeyDigest::of(&key.to_string())))
    }

    /// Whether the room is being recorded, as its media says.
    pub fn set_recording(&mut self, on: bool) {
        self.settings.recording = on;
    }

    /// Who waits for admission (shown to moderators).
    pub fn lobby(&self) -> Vec<LobbyEntry> {
        self.participants
            .iter()
            .filter(|(_, p)| p.waiting)
            .map(|(id, p)| LobbyEntry { id: id.to_string(), name: p.name.clone() })
            .collect()
    }

    pub fn raise_hand(&mut self, id: ParticipantId, raised: bool) -> bool {
        match self.participants.get_mut(&id) {
            Some(p) if !p.waiting && p.hand_raised != raised => {
                p.hand_raised = raised;
                true
            }
            _ => false,
        }
    }

    pub fn ids(&self) -> Vec<ParticipantId> {
        self.participants.keys().copied().collect()
    }

    pub fn leave(&mut self, id: ParticipantId) -> bool {
        if self.active == Some(id) {
            self.active = None;
        }
        self.participants.remove(&id).is_some()
    }

    /// How the picture reaches `id` now (`None`: the full picture); whether that changed.
    pub fn set_receiving(&mut self, id: ParticipantId, receiving: Option<String>) -> bool {
        match self.participants.get_mut(&id) {
            Some(p) if p.receiving != receiving => {
                p.receiving = receiving;
                true
            }
            _ => false,
        }
    }

    /// Everyone in the room, waiting ones too.
    pub fn count(&self) -> usize {
        self.participants.len()
    }

    pub fn is_empty(&self) -> bool {
        self.participants.is_empty()
    }

    pub fn by_token(&self, token: SessionId) -> Option<ParticipantId> {
        // Every token is compared, in constant time, so timing tells nothing about them.
        self.participants
            .iter()
            .fold(None, |found, (id, p)| if same_secret(p.token, token) { Some(*id) } else { found })
    }

    pub fn name(&self, id: ParticipantId) -> Option<&str> {
        self.participants.get(&id).map(|p| p.name.as_str())
    }

    /// A chat line from `id`, or why not. `wall_ms` stamps the line; `now` drives the limiter.
    pub fn chat(&mut self, id: ParticipantId, text: &str, now: Duration, wall_ms: u64) -> Result<ChatLine, RoomError> {
        let audience_silenced = self.settings.presentation && !self.settings.audience_chat;
        let p = self.participants.get_mut(&id).ok_or_else(|| refuse(ErrorCode::NotJoined, "join first"))?;
        if p.waiting {
            return Err(refuse(ErrorCode::Waiting, "waiting for a moderator to let you in"));
        }
        if audience_silenced && !p.moderator && !p.presenter {
            return Err(refuse(ErrorCode::Forbidden, "the moderators turned the audience chat off"));
        }
        let text = text.trim();
        if text.is_empty() || text.chars().count() > MAX_CHAT_CHARS {
            return Err(refuse(ErrorCode::BadText, "chat text must be 1 to 1000 characters"));
        }
        let refill = now.saturating_sub(p.chat_checked).as_secs_f64() / CHAT_REFILL.as_secs_f64();
        p.chat_allowance = (p.chat_allowance + refill).min(CHAT_BURST);
        p.chat_checked = now;
        if p.chat_allowance < 1.0 {
            return Err(refuse(ErrorCode::RateLimited, "too many messages; wait a moment"));
        }
        p.chat_allowance -= 1.0;
        let line = ChatLine { from: id.to_string(), name: p.name.clone(), text: text.to_string(), at: wall_ms };
        self.history.push_back(line.clone());
        while self.history.len() > CHAT_HISTORY {
            self.history.pop_front();
        }
        Ok(line)
    }

    pub fn history(&self) -> Vec<ChatLine> {
        self.history.iter().cloned().collect()
    }

    /// Returns whether anything visible changed.
    pub fn set_media(&mut self, id: ParticipantId, audio_muted: bool, video_muted: bool) -> bool {
        match self.participants.get_mut(&id) {
            Some(p) if (p.audio_muted, p.video_muted) != (audio_muted, video_muted) => {
                p.audio_muted = audio_muted;
                p.video_muted = video_muted;
                true
            }
            _ => false,
        }
    }

    pub fn set_publishing(&mut self, id: ParticipantId, publishing: bool) -> bool {
        match self.participants.get_mut(&id) {
            Some(p) if p.publishing != publishing => {
                p.publishing = publishing;
                true
            }
            _ => false,
        }
    }

    /// Feeds audio levels (dBFS per participant); returns whether who speaks, or who is the
    /// active speaker, changed.
    pub fn levels(&mut self, levels: &[(ParticipantId, f32)], now: Duration) -> bool {
        let mut changed = false;
        for (id, db) in levels {
            let Some(p) = self.participants.get_mut(id) else { continue };
            let loud = *db > SPEAK_ON_DB && !p.audio_muted;
            let quiet = *db < SPEAK_OFF_DB || p.audio_muted;
            if loud {
                p.quiet_since = None;
                if !p.speaking {
                    p.speaking = true;
                    p.speaking_since = Some(now);
                    p.last_spoke = Some(now);
                    changed = true;
                }
            } else if quiet && p.speaking {
                let since = *p.quiet_since.get_or_insert(now);
                if now.saturating_sub(since) >= SPEAK_HOLD {
                    p.speaking = false;
                    p.speaking_since = None;
                    changed = true;
                }
            }
        }
        let current_speaks = self.active.and_then(|a| self.participants.get(&a)).is_some_and(|p| p.speaking);
        if !current_speaks {
            let next = self
                .participants
                .iter()
                .filter(|(_, p)| p.speaking_since.is_some_and(|s| now.saturating_sub(s) >= ACTIVE_MIN))
                .min_by_key(|(_, p)| p.speaking_since)
                .map(|(id, _)| *id);
            if next.is_some() && next != self.active {
                self.active = next;
                changed = true;
            }
        }
        changed
    }

    pub fn active_speaker(&self) -> Option<ParticipantId> {
        self.active
    }

    /// Who spoke most recently first: those speaking now lead, then by when they last started.
    /// Who never spoke is left out. A picture with room for fewer tiles than cameras keeps these.
    pub fn recent_speakers(&self) -> Vec<ParticipantId> {
        let mut spoke: Vec<(ParticipantId, bool, Duration)> = self
            .participants
            .iter()
            .filter(|(_, p)| !p.waiting)
            .filter_map(|(id, p)| p.last_spoke.map(|at| (*id, p.speaking, at)))
            .collect();
        spoke.sort_by_key(|s| std::cmp::Reverse((s.1, s.2)));
        spoke.into_iter().map(|(id, _, _)| id).collect()
    }

    /// Everyone, in joining order, as the protocol describes them.
    pub fn participants(&self) -> Vec<ParticipantInfo> {
        self.entries().into_iter().map(|(_, info)| info).collect()
    }

    pub fn entries(&self) -> Vec<(ParticipantId, ParticipantInfo)> {
        self.participants
            .iter()
            .filter(|(_, p)| !p.waiting)
            .map(|(id, p)| {
                let info = ParticipantInfo {
                    id: id.to_string(),
                    name: p.name.clone(),
                    audio_muted: p.audio_muted,
                    video_muted: p.video_muted,
                    speaking: p.speaking,
                    publishing: p.publishing,
                    moderator: p.moderator,
                    hand_raised: p.hand_raised,
                    presenter: p.presenter,
                    receiving: p.receiving.clone(),
                    phone: p.phone,
                };
                (*id, info)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: Duration = Duration::ZERO;

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    #[test]
    fn join_gives_distinct_ids_and_secret_tokens() {
        let mut room = Room::default();
        let (a, ta) = room.join("  Ada ", None, T0).map(|j| (j.id, j.token)).unwrap();
        let (b, tb) = room.join("Bo", None, T0).map(|j| (j.id, j.token)).unwrap();
        assert_ne!(a, b);
        assert_ne!(ta, tb);
        assert_eq!(room.by_token(ta), Some(a));
        assert_eq!(room.name(a), Some("Ada"));
        assert!(room.leave(a));
        assert_eq!(room.by_token(ta), None);
    }

    #[test]
    fn bad_names_and_full_rooms_are_refused() {
        let mut room = Room::new(1);
        assert_eq!(room.join("   ", None, T0).unwrap_err().code, ErrorCode::BadName);
        assert_eq!(room.join(&"x".repeat(41), None, T0).unwrap_err().code, ErrorCode::BadName);
        assert_eq!(clean_name("A\u{7}b").unwrap(), "Ab");
        room.join("one", None, T0).unwrap();
        assert_eq!(room.join("two", None, T0).unwrap_err().code, ErrorCode::RoomFull);
    }

    #[test]
    fn chat_is_limited_in_size_and_rate_and_kept_for_late_joiners() {
        let mut room = Room::default();
        let a = room.join("Ada", None, T0).unwrap().id;
        assert_eq!(room.chat(a, "", T0, 0).unwrap_err().code, ErrorCode::BadText);
        assert_eq!(room.chat(a, &"x".repeat(1001), T0, 0).unwrap_err().code, ErrorCode::BadText);
        for i in 0..5 {
            room.chat(a, &format!("m{i}"), T0, i).unwrap();
        }
        assert_eq!(room.chat(a, "flood", T0, 9).unwrap_err().code, ErrorCode::RateLimited);
        assert!(room.chat(a, "later", ms(1000), 10).is_ok());
        let history = room.history();
        assert_eq!(history.len(), 6);
        assert_eq!(history[0].text, "m0");
        assert_eq!(history[5].name, "Ada");
    }

    #[test]
    fn history_is_bounded() {
        let mut room = Room::default();
        let a = room.join("Ada", None, T0).unwrap().id;
        for i in 0..(CHAT_HISTORY as u64 + 20) {
            room.chat(a, "x", ms(i * 1000), i).unwrap();
        }
        assert_eq!(room.history().len(), CHAT_HISTORY);
    }

    #[test]
    fn speaking_has_hysteresis_and_the_active_speaker_does_not_flicker() {
        let mut room = Room::default();
        let a = room.join("Ada", None, T0).unwrap().id;
        let b = room.join("Bo", None, T0).unwrap().id;
        assert!(room.levels(&[(a, -20.0), (b, -70.0)], ms(0)));
        assert_eq!(room.active_speaker(), None, "not yet long enough");
        room.levels(&[(a, -20.0), (b, -70.0)], ms(700));
        assert_eq!(room.active_speaker(), Some(a));
        // Bo talks too: Ada stays active while she speaks.
        room.levels(&[(a, -20.0), (b, -20.0)], ms(800));
        room.levels(&[(a, -20.0), (b, -20.0)], ms(2000));
        assert_eq!(room.active_speaker(), Some(a));
        // A short pause (between words) does not end Ada's turn...
        room.levels(&[(a, -60.0), (b, -20.0)], ms(2100));
        room.levels(&[(a, -45.0), (b, -20.0)], ms(2500));
        assert!(room.participants()[0].speaking);
        // ...a long one does, and Bo takes over.
        room.levels(&[(a, -60.0), (b, -20.0)], ms(2600));
        room.levels(&[(a, -60.0), (b, -20.0)], ms(3500));
        assert!(!room.participants()[0].speaking);
        assert_eq!(room.active_speaker(), Some(b));
    }

    #[test]
    fn recent_speakers_lead_with_who_speaks_now() {
        let mut room = Room::default();
        let a = room.join("Ada", None, T0).unwrap().id;
        let b = room.join("Bo", None, T0).unwrap().id;
        let c = room.join("Cy", None, T0).unwrap().id;
        assert!(room.recent_speakers().is_empty(), "nobody spoke yet");
        room.levels(&[(a, -20.0), (b, -70.0), (c, -70.0)], ms(0));
        room.levels(&[(a, -60.0), (b, -20.0), (c, -70.0)], ms(500));
        assert_eq!(room.recent_speakers(), vec![b, a], "both speak (Ada's pause is short); Bo started last");
        room.levels(&[(a, -60.0), (b, -60.0), (c, -70.0)], ms(1000));
        room.levels(&[(a, -20.0), (b, -60.0), (c, -70.0)], ms(1200));
        room.levels(&[(a, -20.0), (b, -60.0), (c, -70.0)], ms(2500));
        assert_eq!(room.recent_speakers(), vec![a, b], "Ada still speaks, Bo has stopped");
    }

    #[test]
    fn muted_participants_do_not_speak() {
        let mut room = Room::default();
        let a = room.join("Ada", None, T0).unwrap().id;
        assert!(room.set_media(a, true, false));
        assert!(!room.set_media(a, true, false), "no change, no update");
        room.levels(&[(a, -10.0)], ms(0));
        assert!(!room.participants()[0].speaking);
    }

    #[test]
    fn callers_never_moderate_and_wait_where_a_password_guards_the_room() {
        let mut room = Room::new(10);
        let caller = room.join_by_phone("Telefon …23", Duration::ZERO).unwrap();
        assert!(!caller.moderator && caller.new_moderator_key.is_none() && !caller.waiting);
        let listed = room.participants();
        assert!(listed[0].phone && listed[0].video_muted);
        let ada = room.join("Ada", None, Duration::ZERO).unwrap();
        assert!(ada.moderator, "the first web participant still opens the room");
        room.settings.password_hash = Some("$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into());
        assert!(room.join_by_phone("Telefon …45", Duration::ZERO).unwrap().waiting, "a PIN does not replace the password");
    }
}
