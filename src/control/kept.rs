//! What a room keeps beyond this node (a pool's Redis), written in order by one writer task
//! per room so that the control task never waits for the store:
//!
//! - its rules ([`crate::room::kept`]): loaded when the room opens, saved whenever they
//!   change, and saved again now and then while the room is in use (so that their expiry
//!   counts from the last use);
//! - its running outputs ([`Running`]): the live streams, the public broadcast and the
//!   recording, kept only while they run (a short expiry, renewed): a room that opens again
//!   on another node because its node died or drained starts them again there. They are
//!   forgotten when the room ends by itself.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::future::BoxFuture;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use crate::ids::RoomId;
use crate::room::kept::Kept;
use crate::room::participants::Room;

/// Where rooms keep what outlives their node. Each call is bounded in time by the store.
pub trait Keeper: Send + Sync {
    /// What `room` kept, if anything.
    fn load<'a>(&'a self, room: &'a RoomId) -> BoxFuture<'a, Option<Kept>>;
    /// Keeps `kept` for `room` for [`crate::room::kept::KEPT_FOR`].
    fn save<'a>(&'a self, room: &'a RoomId, kept: &'a Kept) -> BoxFuture<'a, ()>;
    /// The outputs that ran in `room` when its last node stopped keeping them, if any.
    fn load_running<'a>(&'a self, room: &'a RoomId) -> BoxFuture<'a, Option<Running>>;
    /// Keeps `running` for [`RUNNING_FOR`], or (`None`) forgets it.
    fn save_running<'a>(&'a self, room: &'a RoomId, running: Option<&'a Running>) -> BoxFuture<'a, ()>;
}

/// The outputs a room runs: enough to start them again elsewhere. The stream URLs carry
/// their keys (a pool's Redis is as private as the node itself), so this is never logged.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Running {
    /// The live streams' target URLs, as the moderators gave them.
    pub streams: Vec<String>,
    /// The public broadcast (HLS), switched on by a moderator (not only with the streams).
    pub broadcast: bool,
    pub recording: bool,
}

impl Running {
    pub fn is_idle(&self) -> bool {
        self.streams.is_empty() && !self.broadcast && !self.recording
    }
}

/// While in use, the rules are saved again this often (their expiry starts over).
const REFRESH: Duration = Duration::from_secs(3600);
/// How long running outputs are kept after their node last said so: long enough for a room
/// whose node died to open again elsewhere, short enough that a room opened hours later does
/// not go live by surprise.
pub const RUNNING_FOR: Duration = Duration::from_secs(60);
/// How often a room with running outputs says so again.
const RUNNING_REFRESH: Duration = Duration::from_secs(20);

enum Write {
    Rules(Kept),
    Running(Option<Running>),
}

pub(super) struct Keeping {
    keeper: Option<Arc<dyn Keeper>>,
    writes: Option<mpsc::UnboundedSender<Write>>,
    /// The rules saved last, and when.
    saved: Option<(Kept, Instant)>,
    /// The running outputs saved last, and when (`None`: nothing kept).
    running: Option<(Running, Instant)>,
}

impl Keeping {
    /// Starts the room's writer task, if there is a keeper.
    pub(super) fn new(room: RoomId, keeper: Option<Arc<dyn Keeper>>) -> Self {
        let writes = keeper.clone().map(|keeper| {
            let (tx, mut rx) = mpsc::unbounded_channel();
            tokio::spawn(async move {
                while let Some(write) = rx.recv().await {
                    match write {
                        Write::Rules(kept) => keeper.save(&room, &kept).await,
                        Write::Running(running) => keeper.save_running(&room, running.as_ref()).await,
                    }
                }
            });
            tx
        });
        Self { keeper, writes, saved: None, running: None }
    }

    fn write(&self, write: Write) {
        if let Some(tx) = &self.writes {
            let _ = tx.send(write);
        }
    }

    pub(super) async fn load(&mut self, room: &RoomId) -> Option<Kept> {
        let kept = self.keeper.as_ref()?.load(room).await?;
        self.saved = Some((kept.clone(), Instant::now()));
        Some(kept)
    }

    /// The outputs to start again, if the room's last node ran any.
    pub(super) async fn load_running(&mut self, room: &RoomId) -> Option<Running> {
        let running = self.keeper.as_ref()?.load_running(room).await.filter(|r| !r.is_idle())?;
        self.running = Some((running.clone(), Instant::now()));
        Some(running)
    }

    /// Saves what changed since it was saved: the rules (not for a room that never had a
    /// participant, which has no moderator key: nothing to keep) and the running outputs.
    pub(super) fn keep(&mut self, state: &Room, running: Running) {
        if self.writes.is_none() {
            return;
        }
        let kept = state.kept();
        let never_used = self.saved.is_none() && kept.moderator_key.is_none();
        if !never_used && self.saved.as_ref().is_none_or(|(k, _)| *k != kept) {
            self.write(Write::Rules(kept.clone()));
            self.saved = Some((kept, Instant::now()));
        }
        if running.is_idle() {
            if self.running.take().is_some() {
                self.write(Write::Running(None));
            }
        } else if self.running.as_ref().is_none_or(|(r, _)| *r != running) {
            self.write(Write::Running(Some(running.clone())));
            self.running = Some((running, Instant::now()));
        }
    }

    /// Saves again what is due: the rules once an hour while the room is in use, the running
    /// outputs every [`RUNNING_REFRESH`].
    pub(super) fn refresh(&mut self, state: &Room, running: Running) {
        if let Some((kept, at)) = &mut self.saved {
            if at.elapsed() >= REFRESH && !state.is_empty() {
                let kept = kept.clone();
                *at = Instant::now();
                self.write(Write::Rules(kept));
            }
        }
        if let Some((r, at)) = &mut self.running {
            if at.elapsed() >= RUNNING_REFRESH && *r == running {
                let r = r.clone();
                *at = Instant::now();
                self.write(Write::Running(Some(r)));
            }
        }
        self.keep(state, running);
    }

    /// The room ended by itself (everyone left): its outputs are not started again anywhere.
    /// (A room closed by the node's shutdown or drain keeps them: it opens again elsewhere.)
    pub(super) fn ended(&mut self) {
        if self.running.take().is_some() {
            self.write(Write::Running(None));
        }
        self.writes = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// A keeper in memory that notes every write in order.
    #[derive(Default)]
    struct Notebook(Mutex<Vec<String>>);

    impl Keeper for Notebook {
        fn load<'a>(&'a self, _: &'a RoomId) -> BoxFuture<'a, Option<Kept>> {
            Box::pin(async { None })
        }
        fn save<'a>(&'a self, _: &'a RoomId, kept: &'a Kept) -> BoxFuture<'a, ()> {
            self.0.lock().unwrap().push(format!("rules waiting={}", kept.waiting_room));
            Box::pin(async {})
        }
        fn load_running<'a>(&'a self, _: &'a RoomId) -> BoxFuture<'a, Option<Running>> {
            Box::pin(async { Some(Running { streams: vec!["rtmp://h/live/k".into()], ..Default::default() }) })
        }
        fn save_running<'a>(&'a self, _: &'a RoomId, running: Option<&'a Running>) -> BoxFuture<'a, ()> {
            self.0.lock().unwrap().push(match running {
                Some(r) => format!("running {} recording={}", r.streams.len(), r.recording),
                None => "forget running".into(),
            });
            Box::pin(async {})
        }
    }

    #[tokio::test]
    async fn writes_go_out_in_order_and_only_on_change() {
        let book = Arc::new(Notebook::default());
        let room = RoomId::parse("council").unwrap();
        let mut keeping = Keeping::new(room.clone(), Some(book.clone()));
        let carried = keeping.load_running(&room).await.expect("the outputs of the last node");
        assert_eq!(carried.streams, ["rtmp://h/live/k"]);

        let mut state = Room::new(10);
        state.join("Ada", None, Duration::ZERO).unwrap();
        keeping.keep(&state, carried.clone());
        keeping.keep(&state, carried.clone());
        let recording = Running { recording: true, ..carried.clone() };
        keeping.keep(&state, recording.clone());
        let mut rules = state.kept();
        rules.waiting_room = true;
        state.restore(rules);
        keeping.refresh(&state, recording);
        keeping.keep(&state, Running::default());
        keeping.keep(&state, Running::default());
        keeping.keep(&state, Running { recording: true, ..Default::default() });
        keeping.ended();
        for _ in 0..50 {
            if book.0.lock().unwrap().len() >= 6 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(
            *book.0.lock().unwrap(),
            [
                "rules waiting=false",
                "running 1 recording=true",
                "rules waiting=true",
                "forget running",
                "running 0 recording=true",
                "forget running",
            ]
        );
    }
}
