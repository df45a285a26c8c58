//! Skip instances (thesis 5.2.1–5.2.2, Algorithm 1 Task 2; 5.2.4).
//!
//! A learner of Multi-Ring Paxos merges the rings it subscribes to round-robin, M instances of each
//! in turn (`multiring::merge`), so a ring that decides fewer instances than the others holds back
//! every other ring's deliveries. λ, the largest number of instances any ring is expected to decide
//! in an interval Δ, fixes that: the coordinator of each ring makes up for the instances it did not
//! decide with *skip instances*, which learners count as turns of the merge and never deliver.
//!
//! Algorithm 1 proposes each missing instance on its own; 5.2.4 decides them all "using the same
//! physical messages". Here one consensus instance decides them all: its value is a batch of one
//! value with the reserved proposer id [`SKIP_PROPOSER`] (18 bytes, see [`Batch::skip_to`]). Being an
//! ordinary batch, it travels, is logged, retransmitted and re-proposed by Phase 1 like any other.
//!
//! **Logical positions and a shared clock.** Every instance of a ring has a *logical position*:
//! instance 0 is at 0, and each instance takes up one position, except a skip, which takes up every
//! position up to the *target* it names (at least one). A learner counts turns of the merge by
//! logical position, so every learner of a ring counts alike: positions depend only on what the
//! ring decided. Every Δ the coordinator compares its ring's position with λ·t/Δ, t read from a
//! clock all rings share (`NodeConfig::skip_clock_offset_us`: the wall clock since
//! [`SHARED_EPOCH_UNIX_S`] on real hosts, virtual time in the simulator), and when the ring is
//! behind it proposes a skip *to* λ·t/Δ.
//!
//! Algorithm 1 instead makes up, at the end of each interval, for what that interval fell short of
//! λ, counting skips relative to the interval. Any error then stays for good: every ring goes on at
//! λ, so a ring left ahead stays ahead and the merge delays the other rings' messages by the gap.
//! Errors happen: a coordinator that was stopped does not know what its successor decided
//! meanwhile, nor a new coordinator what the acceptors trimmed before it took over (the first
//! implementation, measured: merged latency 3 s for good after a 3-second halt, 1.5 s after a
//! failover and the old coordinator's return). An absolute target needs no such knowledge: a skip
//! proposed by a stale coordinator, or decided twice, names a position the ring already passed and
//! takes up one position only. So rings stay within a few Δ (plus the hosts' clock skew) of each
//! other whatever happened to them, and a ring that was halted catches up at once when it resumes
//! (5.4.7). A ring that decides more than λ runs ahead, and the merge holds its messages for the
//! others: λ bounds what a ring may decide and be merged without delay (5.4.6).
//!
//! The coordinator keeps an estimate of its ring's position only to avoid proposing skips the ring
//! does not need; it never exceeds the true position (instances it does not know the values of
//! count one each), so it never withholds a skip the ring needs.

use super::batch::{Batch, BatchBuilder};
use super::types::{NodeId, Tick, ValueId};

/// The proposer id no process has (ids are dense from 0 and a cluster has fewer than 65,535
/// processes): a value under it is a skip.
pub const SKIP_PROPOSER: NodeId = NodeId::MAX;

/// The start of the shared clock on real hosts (2026-01-01T00:00:00Z): the logical positions it
/// gives stay far from overflowing.
pub const SHARED_EPOCH_UNIX_S: u64 = 1_767_225_600;

impl Batch {
    /// The value of a consensus instance that takes its ring to logical position `target`,
    /// delivering nothing.
    pub fn skip_to(target: u64) -> Batch {
        let mut b = BatchBuilder::with_capacity(super::types::VALUE_OVERHEAD_BYTES);
        b.push(ValueId { proposer: SKIP_PROPOSER, incarnation: 0, seq: target }, &[]);
        b.finish()
    }

    /// `Some(target)` when this batch is a skip (see [`Batch::skip_to`]).
    pub fn skip_target(&self) -> Option<u64> {
        if self.len() != 1 {
            return None;
        }
        let id = self.ids().next()?;
        (id.proposer == SKIP_PROPOSER).then_some(id.seq)
    }
}

/// How many logical positions an instance at position `at` whose value is `batch` takes up: a
/// skip up to its target (at least one), any other instance one.
pub fn positions_taken(batch: &Batch, at: u64) -> u64 {
    batch.skip_target().map_or(1, |target| target.saturating_sub(at).max(1))
}

/// The coordinator's skip clock (module docs): λ instances are due every Δ of the shared clock.
#[derive(Debug, Clone)]
pub struct SkipClock {
    /// λ: instances due per interval.
    lambda_instances: u64,
    /// Δ.
    interval_us: Tick,
    /// Added to the core's `now` to read the shared clock.
    offset_us: Tick,
    /// The next check, on the core's clock.
    next_check_at: Tick,
    /// At most the logical position of the coordinator's next instance.
    logical_next: u64,
    /// The logical position due at the last check.
    due: u64,
}

impl SkipClock {
    /// λ = `lambda_instances` per `interval_us` of the shared clock, which reads the core's time
    /// plus `offset_us`; the coordinator's next instance is at logical position `logical_next` at
    /// least.
    pub fn new(
        lambda_instances: u64,
        interval_us: Tick,
        offset_us: Tick,
        logical_next: u64,
    ) -> SkipClock {
        SkipClock {
            lambda_instances,
            interval_us: interval_us.max(1),
            offset_us,
            next_check_at: 0,
            logical_next,
            due: 0,
        }
    }

    /// The logical position every ring should have reached at `now` (the core's time).
    pub fn due_at(&self, now: Tick) -> u64 {
        let shared = now.saturating_add(self.offset_us);
        self.lambda_instances.saturating_mul(shared / self.interval_us)
    }

    /// The coordinator opened an instance of `batch`.
    pub fn on_opened(&mut self, batch: &Batch) {
        self.logical_next =
            self.logical_next.saturating_add(positions_taken(batch, self.logical_next));
    }

    /// The coordinator passed over `instances` instances whose values it does not know (trimmed
    /// ones, which Phase 1 does not re-propose, or a batch of values): one position each at least.
    pub fn on_passed_over(&mut self, instances: u64) {
        self.logical_next = self.logical_next.saturating_add(instances);
    }

    /// Once every Δ: takes note of the position due now.
    pub fn on_tick(&mut self, now: Tick) {
        if now < self.next_check_at {
            return;
        }
        self.next_check_at = now + self.interval_us;
        self.due = self.due_at(now);
    }

    /// The target of the skip to propose now, when the ring is behind what was due at the last
    /// check. Taken against the position when the skip opens, not when the check was made: a new
    /// coordinator's position moves on as Phase 1 re-proposes what the old one decided.
    pub fn take_owed(&self) -> Option<u64> {
        (self.due > self.logical_next).then_some(self.due)
    }

    pub fn logical_next(&self) -> u64 {
        self.logical_next
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_skip_reads_back_its_target_and_takes_up_the_positions_up_to_it() {
        assert_eq!(Batch::skip_to(9000).skip_target(), Some(9000));
        assert_eq!(Batch::skip_to(5).bytes(), super::super::types::VALUE_OVERHEAD_BYTES);
        assert_eq!(positions_taken(&Batch::skip_to(9000), 1000), 8000);
        assert_eq!(positions_taken(&Batch::skip_to(900), 1000), 1, "a target passed: one");
        assert_eq!(positions_taken(&Batch::skip_to(1000), 1000), 1);
        let value = ValueId { proposer: 3, incarnation: 0, seq: 7 };
        let mut b = BatchBuilder::with_capacity(64);
        b.push(value, b"x");
        let ordinary = b.finish();
        assert_eq!(ordinary.skip_target(), None);
        assert_eq!(positions_taken(&ordinary, 10), 1);
        assert_eq!(positions_taken(&Batch::empty(), 10), 1, "a no-op is one position");
        // Two values, the first under the skip id: not a skip (no coordinator forms it).
        let mut b = BatchBuilder::with_capacity(64);
        b.push(ValueId { proposer: SKIP_PROPOSER, incarnation: 0, seq: 7 }, &[]);
        b.push(value, b"x");
        assert_eq!(b.finish().skip_target(), None);
    }

    #[test]
    fn the_clock_owes_what_the_ring_is_behind_the_shared_clock() {
        // λ = 10 per 1 ms; the shared clock reads 1 ms ahead of the core's.
        let mut c = SkipClock::new(10, 1_000, 1_000, 0);
        c.on_tick(0);
        assert_eq!(c.take_owed(), Some(10), "one interval has passed on the shared clock");
        c.on_opened(&Batch::skip_to(10));
        assert_eq!(c.take_owed(), None, "owed once");
        for _ in 0..4 {
            c.on_opened(&Batch::empty());
        }
        c.on_tick(500);
        assert_eq!(c.take_owed(), None, "checked once per interval");
        c.on_tick(1_000);
        assert_eq!(c.take_owed(), Some(20), "due 20, at 14");
        c.on_opened(&Batch::skip_to(20));
        for _ in 0..25 {
            c.on_opened(&Batch::empty());
        }
        c.on_tick(2_000);
        assert_eq!(c.take_owed(), None, "ahead of λ owes nothing (due 30, at 45)");
        // Stopped for 3 intervals: all of them at once.
        c.on_tick(5_000);
        assert_eq!(c.take_owed(), Some(60), "due 60, at 45");
        // What opens between the check and the skip (a new coordinator's re-proposals) counts.
        c.on_opened(&Batch::skip_to(55));
        assert_eq!(c.logical_next(), 55);
        assert_eq!(c.take_owed(), Some(60));
        // A stale skip (a target passed) takes one position.
        c.on_opened(&Batch::skip_to(30));
        assert_eq!(c.logical_next(), 56);
    }
}
