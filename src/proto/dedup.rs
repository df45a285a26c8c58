//! At-most-once delivery (uniform integrity, thesis 2.2.3). A proposer resends a value after a timeout,
//! so the same value can be decided in two instances; every learner sees the same decided sequence and
//! skips the later copies, so all learners still deliver one identical sequence.
//!
//! Per proposer incarnation it keeps a watermark (every seq below it was delivered) and the delivered
//! seqs above it. Proposers number values densely and values are mostly decided in order, so the set
//! above the watermark stays small.

use std::collections::BTreeSet;

// Seeded per process, and far cheaper than SipHash per delivered run (see `proposal_store`).
use foldhash::HashMap;

use super::learner_checkpoint::DeliveredSeqs;
use super::types::{NodeId, ValueId};

#[derive(Debug, Default)]
struct Seen {
    below: u64,
    above: BTreeSet<u64>,
}

#[derive(Debug, Default)]
pub struct Dedup {
    seen: HashMap<(NodeId, u32), Seen>,
}

impl Dedup {
    /// The values `first`, `first`+1, ... (`count` of them, one proposer's) in one step, when none of
    /// them was seen and they come next in that proposer's order — the common case, a batch as its
    /// proposer formed it, delivered in order. False (and nothing recorded) otherwise: the caller
    /// then checks them one by one.
    pub fn first_time_run(&mut self, first: ValueId, count: u32) -> bool {
        let s = self.seen.entry((first.proposer, first.incarnation)).or_default();
        if first.seq != s.below || !s.above.is_empty() {
            return false;
        }
        s.below += u64::from(count);
        true
    }

    /// What was seen, per proposer incarnation, sorted (for a learner checkpoint).
    pub fn snapshot(&self) -> Vec<DeliveredSeqs> {
        let mut out: Vec<DeliveredSeqs> = self
            .seen
            .iter()
            .map(|(&(proposer, incarnation), s)| DeliveredSeqs {
                proposer,
                incarnation,
                below: s.below,
                above: s.above.iter().copied().collect(),
            })
            .collect();
        out.sort_unstable_by_key(|d| (d.proposer, d.incarnation));
        out
    }

    /// The deduplicator that saw what `seen` says.
    pub fn from_snapshot(seen: &[DeliveredSeqs]) -> Dedup {
        let mut d = Dedup::default();
        for s in seen {
            let above = s.above.iter().copied().filter(|&seq| seq > s.below).collect();
            d.seen.insert((s.proposer, s.incarnation), Seen { below: s.below, above });
        }
        d
    }

    /// Records `id`; true the first time it is seen.
    pub fn first_time(&mut self, id: ValueId) -> bool {
        let s = self.seen.entry((id.proposer, id.incarnation)).or_default();
        // The common case: the next value of a proposer whose values arrive in order.
        if id.seq == s.below && s.above.is_empty() {
            s.below += 1;
            return true;
        }
        if id.seq < s.below || !s.above.insert(id.seq) {
            return false;
        }
        while s.above.remove(&s.below) {
            s.below += 1;
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_value_passes_once_in_any_order() {
        let mut d = Dedup::default();
        let id = |incarnation, seq| ValueId { proposer: 1, incarnation, seq };
        for seq in [2, 0, 1, 5] {
            assert!(d.first_time(id(0, seq)));
        }
        for seq in [0, 1, 2, 5] {
            assert!(!d.first_time(id(0, seq)));
        }
        assert!(d.first_time(id(1, 0)), "a new incarnation starts afresh");
        assert!(d.first_time(id(0, 3)));
    }

    #[test]
    fn a_snapshot_remembers_what_was_seen() {
        let mut d = Dedup::default();
        let id = |proposer, seq| ValueId { proposer, incarnation: 3, seq };
        for v in [id(1, 0), id(1, 1), id(1, 4), id(2, 0)] {
            assert!(d.first_time(v));
        }
        let mut again = Dedup::from_snapshot(&d.snapshot());
        for v in [id(1, 0), id(1, 1), id(1, 4), id(2, 0)] {
            assert!(!again.first_time(v), "{v:?} passed twice");
        }
        for v in [id(1, 2), id(1, 3), id(1, 5), id(2, 1), id(3, 0)] {
            assert!(again.first_time(v), "{v:?} was never seen");
        }
    }

    #[test]
    fn a_run_passes_whole_only_when_it_comes_next_and_unseen() {
        let mut d = Dedup::default();
        let id = |seq| ValueId { proposer: 1, incarnation: 0, seq };
        assert!(d.first_time_run(id(0), 3));
        assert!(!d.first_time(id(2)), "the run recorded 0..3");
        assert!(!d.first_time_run(id(2), 2), "overlaps what was seen");
        assert!(d.first_time(id(3)), "and recorded nothing");
        assert!(d.first_time(id(5)));
        assert!(!d.first_time_run(id(4), 1), "a value after it was seen: checked one by one");
        assert!(d.first_time(id(4)));
        assert!(d.first_time_run(id(6), 2));
    }
}
