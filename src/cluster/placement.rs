//! Where a new room goes: a pure function of the nodes' last heartbeats, the rooms placed on
//! each lately (which no heartbeat shows yet), the time, and two random numbers.
//!
//! Two random choices, the less loaded of them (Mitzenmacher's "power of two choices"): near
//! the evenness of always taking the least loaded node, without every node sending the next
//! rooms to the same one while their pictures of the load are a second old.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

/// A node's heartbeat, as it is stored in Redis.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NodeLoad {
    pub id: String,
    /// Where browsers and WHIP/WHEP clients reach it, e.g. `https://plenum-2.example.org`.
    pub url: String,
    pub state: NodeState,
    pub rooms: u32,
    pub participants: u32,
    /// The process' CPU use over the last few seconds, in cores.
    pub cpu: f32,
    pub cores: u32,
    /// Milliseconds since the epoch when the heartbeat was sent.
    pub at_ms: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeState {
    Serving,
    Draining,
}

/// A heartbeat older than this is a node that is gone (or cut off): it gets no rooms.
pub const STALE_MS: u64 = 3_000;

/// Whether a node may get new rooms at `now`.
pub fn eligible(node: &NodeLoad, now_ms: u64) -> bool {
    node.state == NodeState::Serving && now_ms.saturating_sub(node.at_ms) <= STALE_MS
}

/// How loaded a node is, in rooms: its rooms, the rooms placed on it since its heartbeat, a
/// tenth of a room per participant, and ten rooms' worth for each tenth of its cores above
/// 80 % busy (a node near its limit takes nothing while others have room).
pub fn load(node: &NodeLoad, recent: u32) -> f64 {
    let busy = if node.cores > 0 { f64::from(node.cpu) / f64::from(node.cores) } else { 0.0 };
    f64::from(node.rooms) + f64::from(recent) + f64::from(node.participants) / 10.0 + ((busy - 0.8).max(0.0) * 100.0)
}

/// The node for a new room, or none if no node may take one. `dice` are two random numbers.
pub fn choose<'a>(nodes: &'a [NodeLoad], recent: &HashMap<String, u32>, now_ms: u64, dice: (u64, u64)) -> Option<&'a NodeLoad> {
    let candidates: Vec<&NodeLoad> = nodes.iter().filter(|n| eligible(n, now_ms)).collect();
    let n = candidates.len() as u64;
    if n == 0 {
        return None;
    }
    let first = candidates[(dice.0 % n) as usize];
    if n == 1 {
        return Some(first);
    }
    let i = dice.0 % n;
    let second = candidates[((i + 1 + dice.1 % (n - 1)) % n) as usize];
    let weigh = |node: &NodeLoad| load(node, recent.get(&node.id).copied().unwrap_or(0));
    // A tie goes to the first drawn: at random, as a tie should (an order by id would send
    // the rooms of an idle pool to the nodes whose names sort first).
    Some(if weigh(first) <= weigh(second) { first } else { second })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn node(id: usize, state: NodeState, rooms: u32, age_ms: u64, now: u64) -> NodeLoad {
        NodeLoad {
            id: format!("n{id}"),
            url: format!("http://n{id}"),
            state,
            rooms,
            participants: rooms * 5,
            cpu: 0.1,
            cores: 2,
            at_ms: now - age_ms,
        }
    }

    fn nodes() -> impl Strategy<Value = Vec<(bool, u32, u64)>> {
        proptest::collection::vec((any::<bool>(), 0..50u32, 0..6_000u64), 0..8)
    }

    proptest! {
        /// Never a draining or stale node; always some node when one may take the room; of
        /// the two drawn, never the more loaded.
        #[test]
        fn only_serving_fresh_nodes_get_rooms(spec in nodes(), dice in (any::<u64>(), any::<u64>())) {
            let now = 1_000_000;
            let list: Vec<NodeLoad> = spec.iter().enumerate()
                .map(|(i, (serving, rooms, age))| node(i, if *serving { NodeState::Serving } else { NodeState::Draining }, *rooms, *age, now))
                .collect();
            let recent = HashMap::new();
            match choose(&list, &recent, now, dice) {
                Some(n) => {
                    prop_assert!(eligible(n, now));
                    let eligible_nodes: Vec<&NodeLoad> = list.iter().filter(|n| eligible(n, now)).collect();
                    // Not the most loaded unless all are equal or only one may take it.
                    let max = eligible_nodes.iter().map(|n| load(n, 0)).fold(f64::MIN, f64::max);
                    let min = eligible_nodes.iter().map(|n| load(n, 0)).fold(f64::MAX, f64::min);
                    if eligible_nodes.len() >= 2 && max > min {
                        let at_max = eligible_nodes.iter().filter(|n| load(n, 0) == max).count();
                        if at_max == 1 { prop_assert!(load(n, 0) < max); }
                    }
                }
                None => prop_assert!(list.iter().all(|n| !eligible(n, now))),
            }
        }
    }

    /// 300 rooms over three nodes, each placement counted at once (as recent placements are):
    /// within 10 % of even.
    #[test]
    fn rooms_spread_evenly() {
        let now = 10_000;
        let list: Vec<NodeLoad> = (0..3).map(|i| node(i, NodeState::Serving, 0, 0, now)).collect();
        let mut recent: HashMap<String, u32> = HashMap::new();
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..300 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let chosen = choose(&list, &recent, now, (seed, seed.rotate_left(32))).unwrap();
            *recent.entry(chosen.id.clone()).or_default() += 1;
        }
        for (id, n) in &recent {
            assert!((90..=110).contains(n), "{id}: {n} rooms of 300 ({recent:?})");
        }
    }

    #[test]
    fn a_busy_node_is_passed_over() {
        let now = 10_000;
        let mut busy = node(0, NodeState::Serving, 1, 0, now);
        busy.cpu = 1.9;
        let idle = node(1, NodeState::Serving, 5, 0, now);
        let list = [busy, idle];
        for d in 0..4 {
            assert_eq!(choose(&list, &HashMap::new(), now, (d, d + 1)).unwrap().id, "n1");
        }
    }
}
