//! Identifiers that travel between the HTTP edge, the room registry and the media engine.
//!
//! Each id is a newtype so a room name can never be passed where a session id is expected.

use std::fmt;

/// Longest room name accepted (bytes; the alphabet is ASCII).
pub const MAX_ROOM_NAME: usize = 64;

/// A room's name as it appears in URLs: 1-64 of `a-z 0-9 - _`, case-folded.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RoomId(String);

/// Why a room name was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RoomIdError {
    #[error("room name is empty")]
    Empty,
    #[error("room name is longer than {MAX_ROOM_NAME} characters")]
    TooLong,
    #[error("room name may only contain a-z, 0-9, '-' and '_'")]
    BadCharacter,
}

impl RoomId {
    /// Validates and case-folds a room name taken from a URL.
    pub fn parse(raw: &str) -> Result<Self, RoomIdError> {
        if raw.is_empty() {
            return Err(RoomIdError::Empty);
        }
        if raw.len() > MAX_ROOM_NAME {
            return Err(RoomIdError::TooLong);
        }
        let folded = raw.to_ascii_lowercase();
        if !folded
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
        {
            return Err(RoomIdError::BadCharacter);
        }
        Ok(Self(folded))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RoomId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One WHIP or WHEP session. 128 random bits, hex: it appears in the session's `Location`, which
/// only the session's owner learns, so it doubles as that owner's secret (a WHEP viewer that
/// presents a publisher's session id as bearer token gets the mix without that publisher's voice).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionId(u128);

impl SessionId {
    pub fn random() -> Self {
        let mut bytes = [0u8; 16];
        // The OS random source failing is not something a conference server can work around.
        getrandom::fill(&mut bytes).expect("the operating system's random source failed");
        Self(u128::from_le_bytes(bytes))
    }

    /// Parses the 32-hex-digit form used in URLs; anything else is not a session id.
    pub fn parse(raw: &str) -> Option<Self> {
        if raw.len() != 32 || !raw.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        u128::from_str_radix(raw, 16).ok().map(Self)
    }

    /// A short form for logs and element names: enough to tell sessions apart, too short to be
    /// used as the bearer secret.
    pub fn short(&self) -> String {
        format!("{:08x}", (self.0 >> 96) as u32)
    }
}

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:032x}", self.0)
    }
}

/// Debug output never shows the whole id: it is a secret.
impl fmt::Debug for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SessionId({}…)", self.short())
    }
}

/// Compares secrets in time independent of where they differ.
pub fn same_secret(a: SessionId, b: SessionId) -> bool {
    let (a, b) = (a.to_string(), b.to_string());
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn room_names_are_validated_and_folded() {
        assert_eq!(RoomId::parse("Daily-Standup_2").unwrap().as_str(), "daily-standup_2");
        assert_eq!(RoomId::parse(""), Err(RoomIdError::Empty));
        assert_eq!(RoomId::parse(&"a".repeat(65)), Err(RoomIdError::TooLong));
        assert!(RoomId::parse(&"a".repeat(64)).is_ok());
        for bad in ["a b", "ä", "a/b", "a.b", "a%20"] {
            assert_eq!(RoomId::parse(bad), Err(RoomIdError::BadCharacter), "{bad}");
        }
    }

    #[test]
    fn session_ids_round_trip_and_reject_junk() {
        let id = SessionId::random();
        assert_eq!(SessionId::parse(&id.to_string()), Some(id));
        assert_eq!(SessionId::parse("xyz"), None);
        assert_eq!(SessionId::parse(&"g".repeat(32)), None);
        assert!(!format!("{id:?}").contains(&id.to_string()));
    }
}
