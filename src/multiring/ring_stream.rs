//! What the merge takes from one ring: its decided instances as turns (thesis 5.2.2, Algorithm 1
//! lines 30–33: "wait for decide(k_i, v); if v ≠ ⊥ then deliver v; k_i ← k_i + 1").
//!
//! The merge counts turns by logical position (`proto::skip`): every instance takes up one, a skip
//! instance every position up to its target. A ring's core hands its learner only the instances
//! that deliver something, in instance order: an instance whose batch was empty (a no-op a new
//! coordinator proposed) or held only repeats is not handed over. Each still takes up a position,
//! so the cursor turns the gap before each delivered instance into that many skipped turns. Both
//! depend only on what the ring decided, never on what a learner happened to receive when.
//!
//! The node's merged delivery and the simulator's merge checker both go through here, so the
//! checker judges the code that runs.

use crate::proto::skip::positions_taken;
use crate::proto::{Batch, Instance};

use super::merge::Decided;

/// One ring's position at one learner: the next instance it has not seen, and its logical
/// position.
#[derive(Debug, Clone, Default)]
pub struct RingCursor {
    next_instance: Instance,
    logical_next: u64,
}

impl RingCursor {
    /// A cursor at the ring's first instance.
    pub fn new() -> RingCursor {
        RingCursor::default()
    }

    /// A cursor where a snapshot left one: `next_instance` at logical position `logical_next`.
    pub fn at(next_instance: Instance, logical_next: u64) -> RingCursor {
        RingCursor { next_instance, logical_next }
    }

    /// The next instance the ring has not handed over.
    pub fn next_instance(&self) -> Instance {
        self.next_instance
    }

    /// The logical position of the next instance.
    pub fn logical_next(&self) -> u64 {
        self.logical_next
    }

    /// The ring delivered `batch` in `instance`; returns what the merge takes, in order: the
    /// instances skipped over since the last (as one skip), then this one (a skip, or `value()`).
    /// An instance at or below one already seen is a caller's bug (a ring delivers in order, once).
    pub fn advance<T>(
        &mut self,
        instance: Instance,
        batch: &Batch,
        value: impl FnOnce() -> T,
    ) -> [Option<Decided<T>>; 2] {
        assert!(
            instance >= self.next_instance,
            "instance {instance} delivered after {}",
            self.next_instance
        );
        let gap = instance - self.next_instance;
        self.next_instance = instance + 1;
        let before = (gap > 0).then_some(Decided::Skip { instances: gap });
        let at = self.logical_next + gap;
        let taken = positions_taken(batch, at);
        self.logical_next = at + taken;
        let this = match batch.skip_target() {
            Some(_) => Decided::Skip { instances: taken },
            None => Decided::Value(value()),
        };
        [before, Some(this)]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::{BatchBuilder, ValueId};

    fn batch(seq: u64) -> Batch {
        let mut b = BatchBuilder::with_capacity(64);
        b.push(ValueId { proposer: 0, incarnation: 0, seq }, b"m");
        b.finish()
    }

    #[test]
    fn gaps_and_skips_become_turns_and_values_stay_values() {
        let mut c = RingCursor::new();
        assert_eq!(c.advance(0, &batch(1), || 'a'), [None, Some(Decided::Value('a'))]);
        // Instances 1 and 2 delivered nothing (a no-op, a repeat): two turns.
        assert_eq!(
            c.advance(3, &batch(2), || 'b'),
            [Some(Decided::Skip { instances: 2 }), Some(Decided::Value('b'))]
        );
        // Instances 0..4 took up positions 0..4: a skip to 500 takes up 496.
        assert_eq!(
            c.advance(4, &Batch::skip_to(500), || 'x'),
            [None, Some(Decided::Skip { instances: 496 })]
        );
        assert_eq!((c.next_instance(), c.logical_next()), (5, 500));
        // A skip to a position passed takes up one.
        assert_eq!(
            c.advance(5, &Batch::skip_to(100), || 'x'),
            [None, Some(Decided::Skip { instances: 1 })]
        );
        assert_eq!(c.logical_next(), 501);
    }

    #[test]
    #[should_panic(expected = "delivered after")]
    fn an_instance_delivered_twice_is_a_bug() {
        let mut c = RingCursor::new();
        c.advance(0, &batch(1), || ());
        c.advance(0, &batch(1), || ());
    }
}
