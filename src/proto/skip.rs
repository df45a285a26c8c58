//! Skip instances (thesis 5.2.1–5.2.2, Algorithm 1 Task 2; 5.2.4).
//!
//! A learner of Multi-Ring Paxos merges the rings it subscribes to round-robin, M instances of each
//! in turn (`multiring::merge`), so a ring that decides fewer instances than the others holds back
//! every other ring's deliveries. λ, the largest number of instances any ring is expected to decide
//! in an interval Δ, fixes that: every Δ the coordinator of each ring compares μ, the instances it
//! opened in the interval, with λ, and makes up the difference with *skip instances*, which learners
//! count as turns and never deliver.
//!
//! Algorithm 1 proposes each missing instance on its own; 5.2.4 decides them all "using the same
//! physical messages". Here one consensus instance decides them all: its value is a batch of one
//! value with the reserved proposer id [`SKIP_PROPOSER`] whose sequence number is the count (18
//! bytes, see [`Batch::skip`]). Being an ordinary batch, it travels, is logged, retransmitted and
//! re-proposed by Phase 1 like any other, and every learner reads the same count from it. A learner
//! counts such an instance as that many instances (the count is at least 1); every other instance,
//! a no-op included, counts as one.
//!
//! Two refinements of Algorithm 1:
//!
//! - The clock owes skips for every interval that passed, not only the last: a coordinator stopped
//!   for three seconds (5.4.7) owes three seconds' worth when it resumes, and proposes them in one
//!   instance, which releases everything the learners buffered from the other rings meanwhile.
//! - Skips owed while the window is full (the learners are slow: flow control) add up and go out
//!   as one instance when there is room.
//!
//! A new coordinator starts its clock where its own learner last made progress, so a ring that was
//! halted until a failover catches up on the intervals it missed (bounded by
//! [`CATCH_UP_US_MAX`]).

use super::batch::{Batch, BatchBuilder};
use super::types::{NodeId, Tick, ValueId};

/// The proposer id no process has (ids are dense from 0 and a cluster has fewer than 65,535
/// processes): a value under it is a skip.
pub const SKIP_PROPOSER: NodeId = NodeId::MAX;

/// A new coordinator owes skips for at most this long before it took over.
pub const CATCH_UP_US_MAX: Tick = 10_000_000;

impl Batch {
    /// The value of a consensus instance that stands for `instances` instances, none delivered.
    pub fn skip(instances: u64) -> Batch {
        let mut b = BatchBuilder::with_capacity(super::types::VALUE_OVERHEAD_BYTES);
        b.push(ValueId { proposer: SKIP_PROPOSER, incarnation: 0, seq: instances.max(1) }, &[]);
        b.finish()
    }

    /// `Some(n)` when this batch is a skip standing for `n` instances (at least 1).
    pub fn skip_instances(&self) -> Option<u64> {
        if self.len() != 1 {
            return None;
        }
        let id = self.ids().next()?;
        (id.proposer == SKIP_PROPOSER).then_some(id.seq.max(1))
    }
}

/// How many instances of this batch's ring it counts as in the merge: a skip its count, any other
/// instance one.
pub fn instances_counted(batch: &Batch) -> u64 {
    batch.skip_instances().unwrap_or(1)
}

/// The coordinator's interval clock (Algorithm 1 lines 6–9 and 13–20): λ instances are due every
/// Δ; what the coordinator did not open itself it owes as skips.
#[derive(Debug, Clone)]
pub struct SkipClock {
    /// λ: instances expected per interval.
    lambda_instances: u64,
    /// Δ.
    interval_us: Tick,
    /// Where the current interval began.
    interval_start: Tick,
    /// Instances opened since `interval_start` (μ·Δ of Algorithm 1).
    opened: u64,
    /// Skips due and not yet proposed.
    owed: u64,
}

impl SkipClock {
    /// A clock for λ = `lambda_instances` per `interval_us`, whose first interval begins at `since`.
    pub fn new(lambda_instances: u64, interval_us: Tick, since: Tick) -> SkipClock {
        SkipClock {
            lambda_instances,
            interval_us: interval_us.max(1),
            interval_start: since,
            opened: 0,
            owed: 0,
        }
    }

    /// The coordinator opened an instance that is not a skip.
    pub fn on_opened(&mut self) {
        self.opened += 1;
    }

    /// Closes every interval that ended by `now`, adding to what is owed the instances each fell
    /// short of λ (lines 14–18).
    pub fn on_tick(&mut self, now: Tick) {
        if now < self.interval_start + self.interval_us {
            return;
        }
        let intervals = (now - self.interval_start) / self.interval_us;
        let due = self.lambda_instances.saturating_mul(intervals);
        self.owed = self.owed.saturating_add(due.saturating_sub(self.opened));
        self.opened = 0;
        self.interval_start += intervals * self.interval_us;
    }

    /// What is owed, to propose now as one skip instance; `None` when nothing is.
    pub fn take_owed(&mut self) -> Option<u64> {
        (self.owed > 0).then(|| std::mem::take(&mut self.owed))
    }

    /// Puts back what [`SkipClock::take_owed`] gave when no instance could be opened for it.
    pub fn owe(&mut self, instances: u64) {
        self.owed = self.owed.saturating_add(instances);
    }

    pub fn owed(&self) -> u64 {
        self.owed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_skip_batch_reads_back_its_count_and_ordinary_batches_are_not_skips() {
        assert_eq!(Batch::skip(9000).skip_instances(), Some(9000));
        assert_eq!(Batch::skip(0).skip_instances(), Some(1), "a skip stands for 1 at least");
        assert_eq!(Batch::skip(5).bytes(), super::super::types::VALUE_OVERHEAD_BYTES);
        let value = ValueId { proposer: 3, incarnation: 0, seq: 7 };
        let mut b = BatchBuilder::with_capacity(64);
        b.push(value, b"x");
        let ordinary = b.finish();
        assert_eq!(ordinary.skip_instances(), None);
        assert_eq!(instances_counted(&ordinary), 1);
        assert_eq!(instances_counted(&Batch::empty()), 1, "a no-op is one instance");
        assert_eq!(instances_counted(&Batch::skip(40)), 40);
        // Two values, the first under the skip id: not a skip (a coordinator never forms it).
        let mut b = BatchBuilder::with_capacity(64);
        b.push(ValueId { proposer: SKIP_PROPOSER, incarnation: 0, seq: 7 }, &[]);
        b.push(value, b"x");
        assert_eq!(b.finish().skip_instances(), None);
    }

    #[test]
    fn the_clock_owes_what_each_interval_fell_short_of_lambda() {
        let mut c = SkipClock::new(10, 1_000, 0);
        for _ in 0..4 {
            c.on_opened();
        }
        c.on_tick(999);
        assert_eq!(c.take_owed(), None, "the interval has not ended");
        c.on_tick(1_000);
        assert_eq!(c.take_owed(), Some(6), "λ = 10, 4 opened");
        for _ in 0..25 {
            c.on_opened();
        }
        c.on_tick(2_500);
        assert_eq!(c.take_owed(), None, "μ above λ owes nothing");
        // Stopped for 3 intervals: three intervals' worth at once.
        c.on_tick(5_000);
        assert_eq!(c.take_owed(), Some(30));
        c.owe(7);
        c.on_tick(6_000);
        assert_eq!(c.take_owed(), Some(17), "what could not be proposed adds up");
    }
}
