//! The caller's keypad: RFC 4733 telephone-events read from RTP (or digits from SIP INFO),
//! the dial-in PIN entered with them, and the keys that work in the room (`*6`: mute).
//! Pure: packets and keys in, decisions out.

/// Digits of a room's dial-in PIN.
pub const PIN_DIGITS: usize = 8;
/// Wrong PINs before the call ends.
pub const PIN_TRIES: u8 = 3;

/// The key of an RFC 4733 event code (0-9, `*`, `#`, A-D), if it is one.
pub fn key_of_event(event: u8) -> Option<char> {
    match event {
        0..=9 => Some(char::from(b'0' + event)),
        10 => Some('*'),
        11 => Some('#'),
        12..=15 => Some(char::from(b'A' + event - 12)),
        _ => None,
    }
}

/// Turns a call's telephone-event packets into key presses: an event is sent many times
/// (while the key is held, and its end three times), all with the RTP timestamp of its
/// start, so a key counts once per timestamp.
#[derive(Default)]
pub struct EventReader {
    last: Option<u32>,
}

impl EventReader {
    /// The key pressed, if `payload` (with RTP timestamp `timestamp`) starts a new one.
    pub fn packet(&mut self, timestamp: u32, payload: &[u8]) -> Option<char> {
        let event = *payload.first()?;
        if payload.len() < 4 || self.last == Some(timestamp) {
            return None;
        }
        let key = key_of_event(event)?;
        self.last = Some(timestamp);
        Some(key)
    }
}

/// The key in a SIP INFO body (`application/dtmf-relay`: `Signal=5`, or `application/dtmf`: `5`).
pub fn key_of_info(body: &str) -> Option<char> {
    let signal = body
        .lines()
        .find_map(|l| l.trim().strip_prefix("Signal=").or_else(|| l.trim().strip_prefix("Signal =")))
        .unwrap_or(body)
        .trim();
    let mut chars = signal.chars();
    let key = chars.next()?;
    if chars.next().is_some() {
        // `application/dtmf` may carry the event code.
        return signal.parse::<u8>().ok().and_then(key_of_event);
    }
    matches!(key, '0'..='9' | '*' | '#' | 'A'..='D').then_some(key)
}

/// What a key did to the PIN being entered.
#[derive(Debug, PartialEq, Eq)]
pub enum Entry {
    /// More digits are wanted.
    Typing,
    /// A whole PIN: check it.
    Complete(String),
    /// `*`: what was typed is gone; start again.
    Cleared,
}

/// The PIN as the caller types it: complete after [`PIN_DIGITS`] digits, or at `#`.
#[derive(Default)]
pub struct PinEntry {
    typed: String,
}

impl PinEntry {
    pub fn key(&mut self, key: char) -> Entry {
        match key {
            '0'..='9' => {
                self.typed.push(key);
                if self.typed.len() >= PIN_DIGITS {
                    Entry::Complete(std::mem::take(&mut self.typed))
                } else {
                    Entry::Typing
                }
            }
            '#' if !self.typed.is_empty() => Entry::Complete(std::mem::take(&mut self.typed)),
            '*' => {
                self.typed.clear();
                Entry::Cleared
            }
            _ => Entry::Typing,
        }
    }
}

/// What a key means once the caller is in the room.
#[derive(Debug, PartialEq, Eq)]
pub enum InRoom {
    Nothing,
    /// `*6`: mute or unmute themselves.
    ToggleMute,
}

/// Keys in the room: `*` then a digit.
#[derive(Default)]
pub struct RoomKeys {
    star: bool,
}

impl RoomKeys {
    pub fn key(&mut self, key: char) -> InRoom {
        let after_star = std::mem::replace(&mut self.star, key == '*');
        match key {
            '6' if after_star => InRoom::ToggleMute,
            _ => InRoom::Nothing,
        }
    }
}

/// A PIN as it is shown: `1234 5678`.
pub fn spaced(pin: &str) -> String {
    let (a, b) = pin.split_at(pin.len() / 2);
    format!("{a} {b}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_held_key_counts_once() {
        let mut r = EventReader::default();
        // "5" held for three packets and ended three times, then "#".
        let five = [5u8, 10, 0, 160];
        let end = [5u8, 0x80 | 10, 1, 64];
        assert_eq!(r.packet(1000, &five), Some('5'));
        assert_eq!(r.packet(1000, &five), None);
        assert_eq!(r.packet(1000, &end), None);
        assert_eq!(r.packet(1000, &end), None);
        assert_eq!(r.packet(2600, &[11, 10, 0, 160]), Some('#'));
        assert_eq!(r.packet(4000, &[5, 10]), None, "too short");
        assert_eq!(r.packet(4200, &[16, 10, 0, 160]), None, "not a key (flash)");
        assert_eq!(r.packet(4400, &[5, 10, 0, 160]), Some('5'), "the same key pressed again");
    }

    #[test]
    fn info_bodies_give_their_key() {
        assert_eq!(key_of_info("Signal=7\r\nDuration=160\r\n"), Some('7'));
        assert_eq!(key_of_info("Signal= *\r\nDuration=100"), Some('*'));
        assert_eq!(key_of_info("11"), Some('#'));
        assert_eq!(key_of_info("x"), None);
        assert_eq!(key_of_info(""), None);
    }

    #[test]
    fn a_pin_completes_after_its_digits_or_at_the_hash_and_star_clears() {
        let mut p = PinEntry::default();
        for k in "1234567".chars() {
            assert_eq!(p.key(k), Entry::Typing);
        }
        assert_eq!(p.key('8'), Entry::Complete("12345678".into()));
        assert_eq!(p.key('9'), Entry::Typing);
        assert_eq!(p.key('*'), Entry::Cleared);
        assert_eq!(p.key('#'), Entry::Typing, "nothing typed: # does nothing");
        p.key('4');
        assert_eq!(p.key('#'), Entry::Complete("4".into()));
    }

    #[test]
    fn star_six_toggles_mute() {
        let mut k = RoomKeys::default();
        assert_eq!(k.key('6'), InRoom::Nothing);
        assert_eq!(k.key('*'), InRoom::Nothing);
        assert_eq!(k.key('6'), InRoom::ToggleMute);
        assert_eq!(k.key('6'), InRoom::Nothing);
        k.key('*');
        k.key('1');
        assert_eq!(k.key('6'), InRoom::Nothing);
        assert_eq!(spaced("12345678"), "1234 5678");
    }
}
