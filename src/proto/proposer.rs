//! The proposer (thesis 3.2: "if a proposer does not learn its proposed value after a certain time, it
//! proposes the value again").
//!
//! `propose` gives the value its id and queues it; the node sends what was queued as one `Proposal`
//! when its driver drains actions, so values proposed during one reactor turn travel together. A value
//! stays pending until this process' own learner delivers it; pending values are resent after
//! `proposal_retry_us`. Both the values and the bytes pending are bounded: beyond them `propose`
//! returns [`Backpressure`].

use std::collections::{BTreeMap, VecDeque};

use bytes::Bytes;
use thiserror::Error;

use super::types::{NodeId, Tick, Value, ValueId};

/// `propose` refused: too many values are in flight. Retry after some are delivered.
#[derive(Debug, Error, Clone, Copy, PartialEq, Eq)]
#[error("backpressure: {pending_values} values / {pending_bytes} bytes pending delivery")]
pub struct Backpressure {
    pub pending_values: usize,
    pub pending_bytes: usize,
}

#[derive(Debug)]
struct Pending {
    value: Value,
    sent_at: Option<Tick>,
}

#[derive(Debug)]
pub struct Proposer {
    id: NodeId,
    incarnation: u32,
    next_seq: u64,
    pending: BTreeMap<u64, Pending>,
    pending_bytes: usize,
    /// Seqs proposed but never sent, oldest first: the common path never scans `pending`.
    unsent: VecDeque<u64>,
    pending_values_max: usize,
    pending_bytes_max: usize,
}

impl Proposer {
    pub fn new(
        id: NodeId,
        incarnation: u32,
        pending_values_max: usize,
        pending_bytes_max: usize,
    ) -> Proposer {
        Proposer {
            id,
            incarnation,
            next_seq: 0,
            pending: BTreeMap::new(),
            pending_bytes: 0,
            unsent: VecDeque::new(),
            pending_values_max,
            pending_bytes_max,
        }
    }

    pub fn propose(&mut self, payload: Bytes) -> Result<ValueId, Backpressure> {
        let value_bytes = payload.len();
        if self.pending.len() >= self.pending_values_max
            || self.pending_bytes + value_bytes > self.pending_bytes_max
        {
            return Err(Backpressure {
                pending_values: self.pending.len(),
                pending_bytes: self.pending_bytes,
            });
        }
        let id = ValueId { proposer: self.id, incarnation: self.incarnation, seq: self.next_seq };
        self.next_seq += 1;
        self.pending_bytes += value_bytes;
        self.pending.insert(id.seq, Pending { value: Value { id, payload }, sent_at: None });
        self.unsent.push_back(id.seq);
        Ok(id)
    }

    /// Our learner delivered one of our values: stop resending it.
    pub fn on_delivered(&mut self, id: ValueId) {
        if id.proposer != self.id || id.incarnation != self.incarnation {
            return;
        }
        if let Some(p) = self.pending.remove(&id.seq) {
            self.pending_bytes -= p.value.payload.len();
        }
    }

    pub fn pending_values(&self) -> usize {
        self.pending.len()
    }

    /// Values proposed and never sent, up to `batch_bytes_max` worth (at least one), appended to `out`
    /// and marked sent at `now`.
    pub fn take_unsent(&mut self, now: Tick, batch_bytes_max: usize, out: &mut Vec<Value>) {
        let mut bytes = 0;
        while let Some(&seq) = self.unsent.front() {
            let Some(p) = self.pending.get_mut(&seq) else {
                self.unsent.pop_front();
                continue;
            };
            if !out.is_empty() && bytes + p.value.batch_bytes() > batch_bytes_max {
                break;
            }
            self.unsent.pop_front();
            bytes += p.value.batch_bytes();
            p.sent_at = Some(now);
            out.push(p.value.clone());
        }
    }

    /// Values sent more than `retry_us` ago and still not delivered, appended to `out` and marked sent
    /// at `now`. Scans the pending values: call it on a timer, not per message.
    pub fn take_overdue(&mut self, now: Tick, retry_us: Tick, out: &mut Vec<Value>) {
        for p in self.pending.values_mut() {
            if p.sent_at.is_some_and(|t| now >= t + retry_us) {
                p.sent_at = Some(now);
                out.push(p.value.clone());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_pending_and_retry_after_timeout() {
        let mut p = Proposer::new(3, 7, 2, 1_000);
        let a = p.propose(Bytes::from_static(b"a")).unwrap();
        assert_eq!(a, ValueId { proposer: 3, incarnation: 7, seq: 0 });
        p.propose(Bytes::from_static(b"b")).unwrap();
        assert!(p.propose(Bytes::from_static(b"c")).is_err(), "two values at most");
        let mut out = Vec::new();
        p.take_unsent(0, 1 << 20, &mut out);
        assert_eq!(out.len(), 2);
        out.clear();
        p.take_unsent(10, 1 << 20, &mut out);
        p.take_overdue(50, 100, &mut out);
        assert!(out.is_empty(), "nothing new, nothing overdue yet");
        p.on_delivered(a);
        p.take_overdue(100, 100, &mut out);
        assert_eq!(out.len(), 1, "only the undelivered value is resent");
        assert_eq!(out[0].payload, Bytes::from_static(b"b"));
    }
}
