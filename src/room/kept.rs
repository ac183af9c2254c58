//! What a room keeps beyond the node it lives on (in a pool, in Redis while it is in use and
//! for [`KEPT_FOR`] after): its rules and the digests of its secrets, so that tomorrow's
//! reusable link still knows its moderator key and a room opened again on another node keeps
//! its password, waiting room and presentation mode. Never names, chat or who was there.

use serde::{Deserialize, Serialize};

use super::access::KeyDigest;
use super::layout::LayoutMode;
use super::participants::Room;
use crate::protocol::ExternalKind;

/// How long a room's rules outlive its last use.
pub const KEPT_FOR: std::time::Duration = std::time::Duration::from_secs(14 * 24 * 3600);

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Kept {
    /// argon2id PHC string of the room password.
    pub password_hash: Option<String>,
    /// BLAKE2s digests (hex) of the moderator key and the room's publisher and viewer keys.
    pub moderator_key: Option<String>,
    pub publisher_key: Option<String>,
    pub viewer_key: Option<String>,
    pub waiting_room: bool,
    pub presentation: bool,
    pub audience_chat: bool,
    pub layout: LayoutMode,
    pub multiple_shares: bool,
}

impl Room {
    /// What the room keeps beyond its node, as it is now.
    pub fn kept(&self) -> Kept {
        let key = |kind| self.access.key_digests().find(|(k, _)| *k == kind).map(|(_, d)| d.to_hex());
        Kept {
            password_hash: self.settings.password_hash.clone(),
            moderator_key: self.moderator_key.map(KeyDigest::to_hex),
            publisher_key: key(ExternalKind::Publisher),
            viewer_key: key(ExternalKind::Viewer),
            waiting_room: self.settings.waiting_room,
            presentation: self.settings.presentation,
            audience_chat: self.settings.audience_chat,
            layout: self.settings.layout,
            multiple_shares: self.settings.multiple_shares,
        }
    }

    /// Takes back what the room kept (before anyone joins: the room opens again). A digest
    /// that does not parse is left out (the room then hands out a new key).
    pub fn restore(&mut self, kept: Kept) {
        self.settings.password_hash = kept.password_hash;
        self.moderator_key = kept.moderator_key.as_deref().and_then(KeyDigest::from_hex);
        for (kind, digest) in [(ExternalKind::Publisher, kept.publisher_key), (ExternalKind::Viewer, kept.viewer_key)] {
            if let Some(d) = digest.as_deref().and_then(KeyDigest::from_hex) {
                self.access.restore_key(kind, d);
            }
        }
        self.settings.waiting_room = kept.waiting_room;
        self.settings.presentation = kept.presentation;
        self.settings.audience_chat = kept.audience_chat;
        self.settings.layout = kept.layout;
        self.settings.multiple_shares = kept.multiple_shares;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_room_opened_again_keeps_its_moderator_key_and_rules() {
        let mut first = Room::new(10);
        let key = first.join("Ada", None, Duration::ZERO).unwrap().new_moderator_key.expect("the opener gets the key");
        first.settings.waiting_room = true;
        first.settings.password_hash = Some("$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into());
        let kept = first.kept();
        let text = serde_json::to_string(&kept).unwrap();
        assert!(!text.contains(&key.to_string()), "only the key's digest is kept: {text}");

        let mut again = Room::new(10);
        again.restore(serde_json::from_str(&text).unwrap());
        assert_eq!(again.kept(), kept);
        // The first to come without the key is not the moderator and waits; with it, is.
        let bo = again.join("Bo", None, Duration::ZERO).unwrap();
        assert!(!bo.moderator && bo.new_moderator_key.is_none() && bo.waiting);
        let ada = again.join("Ada", Some(key), Duration::ZERO).unwrap();
        assert!(ada.moderator && !ada.waiting);
        assert!(again.has_password());
    }
}
