//! The room's rules kept beyond this node ([`crate::room::kept`]): loaded when the room
//! opens, saved whenever they change, and saved again now and then while the room is in use
//! (so that their expiry counts from the last use).

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::future::BoxFuture;

use crate::ids::RoomId;
use crate::room::kept::Kept;
use crate::room::participants::Room;

/// Where rooms keep their rules (a pool's Redis). Saving never waits for the store: a store
/// that is slow or gone never holds a room up.
pub trait Keeper: Send + Sync {
    /// What `room` kept, if anything (bounded in time by the store).
    fn load<'a>(&'a self, room: &'a RoomId) -> BoxFuture<'a, Option<Kept>>;
    /// Keeps `kept` for `room`, in the background.
    fn save(&self, room: &RoomId, kept: Kept);
}

/// While in use, the rules are saved again this often (their expiry starts over).
const REFRESH: Duration = Duration::from_secs(3600);

pub(super) struct Keeping {
    keeper: Option<Arc<dyn Keeper>>,
    /// What was saved last, and when.
    saved: Option<(Kept, Instant)>,
}

impl Keeping {
    pub(super) fn new(keeper: Option<Arc<dyn Keeper>>) -> Self {
        Self { keeper, saved: None }
    }

    pub(super) async fn load(&mut self, room: &RoomId) -> Option<Kept> {
        let kept = self.keeper.as_ref()?.load(room).await?;
        self.saved = Some((kept.clone(), Instant::now()));
        Some(kept)
    }

    /// Saves the room's rules if they changed since they were saved (nothing is saved for a
    /// room that never had a participant, which has no moderator key: nothing to keep).
    pub(super) fn keep(&mut self, room: &RoomId, state: &Room) {
        let Some(keeper) = &self.keeper else { return };
        let kept = state.kept();
        let never_used = self.saved.is_none() && kept.moderator_key.is_none();
        if never_used || self.saved.as_ref().is_some_and(|(k, _)| *k == kept) {
            return;
        }
        keeper.save(room, kept.clone());
        self.saved = Some((kept, Instant::now()));
    }

    /// Saves again once an hour while the room is in use.
    pub(super) fn refresh(&mut self, room: &RoomId, state: &Room) {
        if let (Some(keeper), Some((kept, at))) = (&self.keeper, &mut self.saved) {
            if at.elapsed() >= REFRESH && !state.is_empty() {
                keeper.save(room, kept.clone());
                *at = Instant::now();
            }
        }
        self.keep(room, state);
    }
}
