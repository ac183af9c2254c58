//! Coming back after a reload: a participant who was in the room (admitted, not removed) and
//! whose page reloads or loses its connection joins again with its previous token and is let
//! in at once, without the waiting room or the password a second time. Only for a while, and
//! each token only once.

use std::time::Duration;

use crate::ids::SessionId;

/// How long after leaving a participant may come back this way.
pub const RESUME_WINDOW: Duration = Duration::from_secs(600);
/// Remembered at most (a room of 50 reloading often; the oldest are forgotten first).
const REMEMBERED: usize = 200;

/// Tokens of participants who left by themselves, with when they left and whether they
/// moderated (a moderator made in the meeting stays one after a reload).
#[derive(Debug, Default)]
pub struct Resume {
    left: Vec<(SessionId, Duration, bool)>,
}

impl Resume {
    /// `token`'s participant left by itself at `now` (not removed, refused or waiting).
    pub fn remember(&mut self, token: SessionId, now: Duration, moderator: bool) {
        self.forget_old(now);
        if self.left.len() >= REMEMBERED {
            self.left.remove(0);
        }
        self.left.push((token, now, moderator));
    }

    /// Whether `token` may come back now.
    pub fn allows(&mut self, token: SessionId, now: Duration) -> bool {
        self.forget_old(now);
        self.position(token).is_some()
    }

    /// Lets `token` come back now, once: `Some(whether it moderated)`.
    pub fn take(&mut self, token: SessionId, now: Duration) -> Option<bool> {
        self.forget_old(now);
        self.position(token).map(|i| self.left.remove(i).2)
    }

    /// Every entry is compared in constant time, so timing tells nothing about the tokens.
    fn position(&self, token: SessionId) -> Option<usize> {
        self.left.iter().enumerate().fold(None, |found, (i, (t, _, _))| if crate::ids::same_secret(*t, token) { Some(i) } else { found })
    }

    fn forget_old(&mut self, now: Duration) {
        self.left.retain(|(_, at, _)| now.saturating_sub(*at) <= RESUME_WINDOW);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: Duration = Duration::from_secs(100);

    #[test]
    fn a_token_comes_back_once_within_the_window() {
        let mut r = Resume::default();
        let (a, b) = (SessionId::random(), SessionId::random());
        r.remember(a, T0, true);
        assert!(!r.allows(b, T0), "an unknown token");
        assert!(r.allows(a, T0 + Duration::from_secs(5)));
        assert_eq!(r.take(a, T0 + Duration::from_secs(5)), Some(true));
        assert_eq!(r.take(a, T0 + Duration::from_secs(6)), None, "only once");
    }

    #[test]
    fn a_token_is_forgotten_after_the_window() {
        let mut r = Resume::default();
        let a = SessionId::random();
        r.remember(a, T0, false);
        assert!(!r.allows(a, T0 + RESUME_WINDOW + Duration::from_secs(1)));
    }

    #[test]
    fn the_oldest_are_forgotten_first_when_many_left() {
        let mut r = Resume::default();
        let first = SessionId::random();
        r.remember(first, T0, false);
        for _ in 0..REMEMBERED {
            r.remember(SessionId::random(), T0, false);
        }
        assert!(!r.allows(first, T0));
        assert_eq!(r.left.len(), REMEMBERED);
    }
}
