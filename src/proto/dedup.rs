//! At-most-once delivery (uniform integrity, thesis 2.2.3). A proposer resends a value after a timeout,
//! so the same value can be decided in two instances; every learner sees the same decided sequence and
//! skips the later copies, so all learners still deliver one identical sequence.
//!
//! Per proposer incarnation it keeps a watermark (every seq below it was delivered) and the delivered
//! seqs above it. Proposers number values densely and values are mostly decided in order, so the set
//! above the watermark stays small.

use std::collections::{BTreeSet, HashMap};

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
}
