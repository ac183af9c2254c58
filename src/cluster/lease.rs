//! A room's lease: which node owns the room, until when. Redis holds the leases (a key per
//! room whose value is the owner's node id and whose expiry is the lease's end); the rules
//! are written twice, once as pure functions over [`Lease`] with time as an argument (what
//! the property tests exercise) and once as the Lua scripts Redis runs atomically. Each script
//! sits beside the function it mirrors: change both or neither.
//!
//! The rules: a free room (no lease, or one that ran out) goes to the first claim; a lease is
//! renewed and released only by its owner; a node whose heartbeat is gone loses its leases to
//! whoever takes them over, and only while the lease still names that node (so a takeover
//! never undoes another node's fresh claim).

/// A room's lease as Redis holds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lease {
    pub owner: String,
    /// Milliseconds (on the caller's clock) at which the lease runs out.
    pub until_ms: u64,
}

/// The lease that holds at `now`: none once it ran out (Redis drops the key by itself).
pub fn current(lease: &Option<Lease>, now: u64) -> Option<&Lease> {
    lease.as_ref().filter(|l| l.until_ms > now)
}

/// Claims a free room for `node`; returns the owner afterwards (`node` when it won, else the
/// holder, which may be `node` already).
pub fn claim(lease: &mut Option<Lease>, node: &str, now: u64, ttl_ms: u64) -> String {
    if let Some(l) = current(lease, now) {
        return l.owner.clone();
    }
    *lease = Some(Lease { owner: node.to_string(), until_ms: now + ttl_ms });
    node.to_string()
}

pub const CLAIM: &str = r"
local owner = redis.call('GET', KEYS[1])
if owner then return owner end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return ARGV[1]
";

/// What a renewal found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Renewal {
    /// The lease was `node`'s and runs on.
    Renewed,
    /// The lease had run out (Redis was away, or the renewals came too late): `node` holds
    /// the room again.
    Reclaimed,
    /// Another node owns the room now.
    TakenBy(String),
}

/// Renews `node`'s lease, or takes the room again if nobody holds it.
pub fn renew(lease: &mut Option<Lease>, node: &str, now: u64, ttl_ms: u64) -> Renewal {
    match current(lease, now).map(|l| l.owner.clone()) {
        Some(owner) if owner == node => {
            *lease = Some(Lease { owner, until_ms: now + ttl_ms });
            Renewal::Renewed
        }
        Some(owner) => Renewal::TakenBy(owner),
        None => {
            *lease = Some(Lease { owner: node.to_string(), until_ms: now + ttl_ms });
            Renewal::Reclaimed
        }
    }
}

/// Returns `1` renewed, `2` reclaimed, or the other owner's id.
pub const RENEW: &str = r"
local owner = redis.call('GET', KEYS[1])
if owner == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
if owner then return owner end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 2
";

/// Gives the room up if `node` holds it; whether it did.
pub fn release(lease: &mut Option<Lease>, node: &str, now: u64) -> bool {
    if current(lease, now).is_some_and(|l| l.owner == node) {
        *lease = None;
        return true;
    }
    false
}

pub const RELEASE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
";

/// Gives a room whose owner `dead` has no heartbeat any more to `node`, if the lease still
/// names `dead` (or has run out); returns the owner afterwards.
pub fn take_over(lease: &mut Option<Lease>, node: &str, dead: &str, now: u64, ttl_ms: u64) -> String {
    match current(lease, now) {
        Some(l) if l.owner != dead => l.owner.clone(),
        _ => {
            *lease = Some(Lease { owner: node.to_string(), until_ms: now + ttl_ms });
            node.to_string()
        }
    }
}

pub const TAKE_OVER: &str = r"
local owner = redis.call('GET', KEYS[1])
if owner and owner ~= ARGV[2] then return owner end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[3])
return ARGV[1]
";

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const TTL: u64 = 10_000;

    #[derive(Clone, Debug)]
    enum Op {
        Claim(usize),
        Renew(usize),
        Release(usize),
        TakeOver(usize, usize),
        Wait(u64),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (0..4usize).prop_map(Op::Claim),
            (0..4usize).prop_map(Op::Renew),
            (0..4usize).prop_map(Op::Release),
            (0..4usize, 0..4usize).prop_map(|(a, b)| Op::TakeOver(a, b)),
            (0..15_000u64).prop_map(Op::Wait),
        ]
    }

    proptest! {
        /// Whatever the nodes do in whatever order, at any moment at most one holds the room;
        /// only the holder renews or releases it; a live lease never changes hands except by a
        /// takeover naming its holder; a lease that ran out is free to claim.
        #[test]
        fn one_owner_at_a_time(ops in proptest::collection::vec(op(), 1..200)) {
            let nodes = ["a", "b", "c", "d"];
            let mut lease: Option<Lease> = None;
            let mut now = 0u64;
            for op in ops {
                let before = current(&lease, now).cloned();
                match op {
                    Op::Claim(n) => {
                        let owner = claim(&mut lease, nodes[n], now, TTL);
                        match &before {
                            Some(b) => { prop_assert_eq!(&owner, &b.owner); prop_assert_eq!(current(&lease, now), Some(b)); }
                            None => prop_assert_eq!(owner.as_str(), nodes[n]),
                        }
                    }
                    Op::Renew(n) => {
                        let r = renew(&mut lease, nodes[n], now, TTL);
                        match &before {
                            Some(b) if b.owner == nodes[n] => prop_assert_eq!(r, Renewal::Renewed),
                            Some(b) => { prop_assert_eq!(r, Renewal::TakenBy(b.owner.clone())); prop_assert_eq!(current(&lease, now), Some(b)); }
                            None => prop_assert_eq!(r, Renewal::Reclaimed),
                        }
                    }
                    Op::Release(n) => {
                        let released = release(&mut lease, nodes[n], now);
                        prop_assert_eq!(released, before.as_ref().is_some_and(|b| b.owner == nodes[n]));
                        if !released { prop_assert_eq!(current(&lease, now), before.as_ref()); }
                    }
                    Op::TakeOver(n, dead) => {
                        let owner = take_over(&mut lease, nodes[n], nodes[dead], now, TTL);
                        match &before {
                            Some(b) if b.owner != nodes[dead] => { prop_assert_eq!(&owner, &b.owner); prop_assert_eq!(current(&lease, now), Some(b)); }
                            _ => prop_assert_eq!(owner.as_str(), nodes[n]),
                        }
                    }
                    Op::Wait(ms) => now += ms,
                }
                // A lease never lasts longer than one TTL from now.
                if let Some(l) = current(&lease, now) {
                    prop_assert!(l.until_ms <= now + TTL);
                }
            }
        }
    }

    #[test]
    fn a_lease_runs_out_and_is_free_again() {
        let mut lease = None;
        assert_eq!(claim(&mut lease, "a", 0, TTL), "a");
        assert_eq!(claim(&mut lease, "b", TTL - 1, TTL), "a");
        assert_eq!(claim(&mut lease, "b", TTL, TTL), "b");
        assert!(!release(&mut lease, "a", TTL + 1));
        assert_eq!(renew(&mut lease, "a", TTL + 2, TTL), Renewal::TakenBy("b".into()));
    }
}
