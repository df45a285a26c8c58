//! The proposer (thesis 3.2: "if a proposer does not learn its proposed value after a certain time, it
//! proposes the value again").
//!
//! `propose` gives the value its id and copies it into the batch being filled (thesis 3.5.2: values
//! are written once into the packet they travel in); the node sends what was filled as one `Proposal`
//! when its driver drains actions, or as soon as a batch is full. A batch stays pending until this
//! process' own learner delivered every value in it, and is resent whole after `proposal_retry_us`
//! (learners skip the values they already delivered). Both the values and the bytes pending are
//! bounded: beyond them `propose` returns [`Backpressure`].
//!
//! Values were once kept one by one (an id-keyed map, a payload each, re-batched at every send); at
//! millions of small values per second that bookkeeping was most of the proposer's cost.

use std::collections::VecDeque;

use thiserror::Error;

use super::batch_arena::BatchArena;
use super::learner_checkpoint::DeliveredSeqs;
use super::types::{Batch, NodeId, Tick, VALUE_OVERHEAD_BYTES, ValueId};

/// Bytes of a chunk of the proposer's arena: large enough to hold many batches, small enough that
/// a chunk held by one late batch keeps little memory from reuse (see [`crate::chunks`]).
const ARENA_CHUNK_BYTES: usize = crate::chunks::CHUNK_BYTES;

/// `propose` refused: too many values are in flight. Retry after some are delivered.
#[derive(Debug, Error, Clone, Copy, PartialEq, Eq)]
#[error("backpressure: {pending_values} values / {pending_bytes} bytes pending delivery")]
pub struct Backpressure {
    pub pending_values: usize,
    pub pending_bytes: usize,
}

/// A batch of our values, `first_seq..end_seq`, waiting to be delivered.
#[derive(Debug)]
struct Pending {
    first_seq: u64,
    end_seq: u64,
    batch: Batch,
    undelivered: u32,
    /// `None` until sent.
    sent_at: Option<Tick>,
}

#[derive(Debug)]
pub struct Proposer {
    id: NodeId,
    incarnation: u32,
    next_seq: u64,
    /// The batch being filled (in reused memory) and the seq of its first value.
    filling: BatchArena,
    filling_first_seq: u64,
    /// Sealed batches in seq order; the ones not sent yet are the last `unsent` of them.
    pending: VecDeque<Pending>,
    unsent: usize,
    /// Values and bytes proposed and not delivered, in `filling` and `pending`.
    pending_values: usize,
    pending_bytes: usize,
    batch_bytes_max: usize,
    pending_values_max: usize,
    pending_bytes_max: usize,
}

impl Proposer {
    pub fn new(
        id: NodeId,
        incarnation: u32,
        batch_bytes_max: usize,
        pending_values_max: usize,
        pending_bytes_max: usize,
    ) -> Proposer {
        Proposer {
            id,
            incarnation,
            next_seq: 0,
            filling: BatchArena::new(ARENA_CHUNK_BYTES),
            filling_first_seq: 0,
            // As many batches as values at most (one value each): the queue never grows while
            // running. (Untouched capacity costs no memory.)
            pending: VecDeque::with_capacity(pending_values_max),
            unsent: 0,
            pending_values: 0,
            pending_bytes: 0,
            batch_bytes_max,
            pending_values_max,
            pending_bytes_max,
        }
    }

    /// Allocates the arena's chunks for `bytes` of batches up front ([`BatchArena::reserve`]).
    pub fn reserve_arena(&mut self, bytes: usize) {
        self.filling.reserve(bytes);
    }

    pub fn propose(&mut self, payload: &[u8]) -> Result<ValueId, Backpressure> {
        let value_bytes = VALUE_OVERHEAD_BYTES + payload.len();
        if self.pending_values >= self.pending_values_max
            || self.pending_bytes + value_bytes > self.pending_bytes_max
        {
            return Err(Backpressure {
                pending_values: self.pending_values,
                pending_bytes: self.pending_bytes,
            });
        }
        if !self.filling.is_empty() && self.filling.bytes() + value_bytes > self.batch_bytes_max {
            self.seal();
        }
        if self.filling.is_empty() {
            self.filling.start(self.batch_bytes_max.max(value_bytes));
            self.filling_first_seq = self.next_seq;
        }
        let id = ValueId { proposer: self.id, incarnation: self.incarnation, seq: self.next_seq };
        self.next_seq += 1;
        self.filling.push(id, payload);
        self.pending_values += 1;
        self.pending_bytes += value_bytes;
        Ok(id)
    }

    /// Moves the batch being filled to the pending ones, unsent.
    fn seal(&mut self) {
        if self.filling.is_empty() {
            return;
        }
        let batch = self.filling.seal();
        self.pending.push_back(Pending {
            first_seq: self.filling_first_seq,
            end_seq: self.next_seq,
            undelivered: u32::try_from(batch.len()).unwrap_or(u32::MAX),
            batch,
            sent_at: None,
        });
        self.unsent += 1;
    }

    /// Our learner delivered one of our values (the first time): a batch whose values are all
    /// delivered is no longer resent.
    pub fn on_delivered(&mut self, id: ValueId) {
        self.on_delivered_run(id, 1);
    }

    /// Values `first`, `first`+1, ... (`count` of them) were delivered, each for the first time.
    pub fn on_delivered_run(&mut self, first: ValueId, count: u32) {
        if first.proposer != self.id || first.incarnation != self.incarnation {
            return;
        }
        let (mut seq, end) = (first.seq, first.seq.saturating_add(u64::from(count)));
        while seq < end {
            let at = self.pending.partition_point(|p| p.end_seq <= seq);
            let Some(p) = self.pending.get_mut(at).filter(|p| p.first_seq < end) else { return };
            let from = seq.max(p.first_seq);
            seq = p.end_seq.min(end);
            if p.sent_at.is_none() || p.undelivered == 0 {
                continue; // not ours to count: it was never sent from here
            }
            let delivered = u32::try_from(seq - from).unwrap_or(u32::MAX).min(p.undelivered);
            p.undelivered -= delivered;
            self.pending_values -= delivered as usize;
            if p.undelivered == 0 {
                self.pending_bytes -= p.batch.bytes();
                self.pending.remove(at);
            }
        }
    }

    /// The learner of this process installed a snapshot (state transfer, 3.3.7): `delivered` says
    /// which of our values the stream delivered below it, and they were never delivered here one
    /// by one. Exact per batch (a batch some of whose values were delivered before counts them
    /// again), so no value the stream lacks is forgotten, and none it has is resent for ever.
    pub fn on_installed(&mut self, delivered: &[DeliveredSeqs]) {
        let Some(ours) =
            delivered.iter().find(|d| d.proposer == self.id && d.incarnation == self.incarnation)
        else {
            return;
        };
        let mut at = 0;
        while let Some(p) = self.pending.get_mut(at) {
            if p.sent_at.is_none() {
                // Never sent, so never delivered; and neither is anything after it.
                break;
            }
            let below = ours.below.clamp(p.first_seq, p.end_seq) - p.first_seq;
            let above =
                ours.above.iter().filter(|&&s| s >= p.first_seq.max(ours.below) && s < p.end_seq);
            let delivered_in_batch = below + above.count() as u64;
            let len = p.end_seq - p.first_seq;
            let undelivered = u32::try_from(len - delivered_in_batch.min(len)).unwrap_or(u32::MAX);
            if undelivered < p.undelivered {
                self.pending_values -= (p.undelivered - undelivered) as usize;
                p.undelivered = undelivered;
            }
            if p.undelivered == 0 {
                self.pending_bytes -= p.batch.bytes();
                self.pending.remove(at);
            } else {
                at += 1;
            }
        }
    }

    pub fn pending_values(&self) -> usize {
        self.pending_values
    }

    /// The next batch never sent (sealing the one being filled if nothing else waits), marked sent
    /// at `now`.
    pub fn take_unsent(&mut self, now: Tick) -> Option<Batch> {
        if self.unsent == 0 {
            self.seal();
        }
        if self.unsent == 0 {
            return None;
        }
        let at = self.pending.len() - self.unsent;
        self.unsent -= 1;
        let p = &mut self.pending[at];
        p.sent_at = Some(now);
        Some(p.batch.clone())
    }

    /// Batches sent more than `retry_us` ago and still not all delivered, appended to `out` and
    /// marked sent at `now`. Scans the pending batches: call it on a timer, not per message.
    pub fn take_overdue(&mut self, now: Tick, retry_us: Tick, out: &mut Vec<Batch>) {
        for p in self.pending.iter_mut() {
            if p.sent_at.is_some_and(|t| now >= t + retry_us) {
                p.sent_at = Some(now);
                out.push(p.batch.clone());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(b: &Batch) -> Vec<u64> {
        b.values().map(|v| v.id.seq).collect()
    }

    #[test]
    fn a_delivered_run_settles_every_pending_batch_it_covers() {
        let mut p = Proposer::new(1, 0, 2 * (VALUE_OVERHEAD_BYTES + 1), 100, 1 << 20);
        for _ in 0..5 {
            p.propose(b"x").unwrap();
        }
        let mut sent = Vec::new();
        while let Some(b) = p.take_unsent(0) {
            sent.push(ids(&b));
        }
        assert_eq!(sent, [vec![0, 1], vec![2, 3], vec![4]]);
        let id = |seq| ValueId { proposer: 1, incarnation: 0, seq };
        p.on_delivered_run(id(1), 3);
        assert_eq!(p.pending_values(), 2, "0 and 4 are left");
        p.on_delivered_run(ValueId { proposer: 2, ..id(0) }, 5);
        assert_eq!(p.pending_values(), 2, "another proposer's run is not ours");
        p.on_delivered_run(id(0), 1);
        p.on_delivered_run(id(4), 9);
        assert_eq!(p.pending_values(), 0);
    }

    #[test]
    fn an_installed_snapshot_settles_exactly_the_values_it_delivered() {
        let mut p = Proposer::new(1, 0, 2 * (VALUE_OVERHEAD_BYTES + 1), 100, 1 << 20);
        for _ in 0..7 {
            p.propose(b"x").unwrap();
        }
        // Batches [0, 1], [2, 3], [4, 5] sent; [6] never sent.
        for _ in 0..3 {
            p.take_unsent(0).expect("a batch");
        }
        let id = |seq| ValueId { proposer: 1, incarnation: 0, seq };
        p.on_delivered(id(2));
        assert_eq!(p.pending_values(), 6);
        // The stream delivered 0..4 and 5: value 2, counted before, is not counted twice, 4 is
        // still owed, and another incarnation's entry is not ours.
        p.on_installed(&[
            DeliveredSeqs { proposer: 1, incarnation: 0, below: 4, above: vec![5] },
            DeliveredSeqs { proposer: 1, incarnation: 9, below: 100, above: vec![] },
        ]);
        assert_eq!(p.pending_values(), 2, "4 and the unsent 6 are left");
        let mut overdue = Vec::new();
        p.take_overdue(1_000_000, 10, &mut overdue);
        assert_eq!(overdue.iter().map(ids).collect::<Vec<_>>(), [vec![4, 5]]);
    }

    #[test]
    fn bounded_pending_and_retry_after_timeout() {
        let mut p = Proposer::new(3, 7, 1 << 15, 2, 1_000);
        let a = p.propose(b"a").unwrap();
        assert_eq!(a, ValueId { proposer: 3, incarnation: 7, seq: 0 });
        p.propose(b"b").unwrap();
        assert!(p.propose(b"c").is_err(), "two values at most");
        let sent = p.take_unsent(0).expect("one batch");
        assert_eq!(ids(&sent), [0, 1]);
        assert!(p.take_unsent(10).is_none());
        let mut out = Vec::new();
        p.take_overdue(50, 100, &mut out);
        assert!(out.is_empty(), "nothing overdue yet");
        p.on_delivered(a);
        assert_eq!(p.pending_values(), 1);
        p.take_overdue(100, 100, &mut out);
        assert_eq!(out, vec![sent], "the batch is resent while one of its values is undelivered");
        p.on_delivered(ValueId { seq: 1, ..a });
        assert_eq!(p.pending_values(), 0);
        out.clear();
        p.take_overdue(1_000, 100, &mut out);
        assert!(out.is_empty(), "all delivered: nothing left to resend");
        assert!(p.propose(b"c").is_ok());
    }

    #[test]
    fn a_full_batch_is_sealed_and_batches_go_out_in_order() {
        let value_bytes = VALUE_OVERHEAD_BYTES + 10;
        let mut p = Proposer::new(1, 0, 2 * value_bytes, 100, 1 << 20);
        for _ in 0..5 {
            p.propose(&[0; 10]).unwrap();
        }
        let batches: Vec<Vec<u64>> =
            std::iter::from_fn(|| p.take_unsent(0)).map(|b| ids(&b)).collect();
        assert_eq!(batches, [vec![0, 1], vec![2, 3], vec![4]]);
        // Delivered out of order (another coordinator's order): counted per batch all the same.
        for seq in [4, 2, 0, 3, 1] {
            p.on_delivered(ValueId { proposer: 1, incarnation: 0, seq });
        }
        assert_eq!(p.pending_values(), 0);
        p.on_delivered(ValueId { proposer: 1, incarnation: 0, seq: 1 });
        p.on_delivered(ValueId { proposer: 2, incarnation: 0, seq: 0 });
        assert_eq!(p.pending_values(), 0, "repeats and strangers change nothing");
    }
}
