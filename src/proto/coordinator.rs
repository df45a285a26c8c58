//! The coordinator of one round (thesis Alg. 2–3 Tasks 1 and 3, 3.3.4, 3.3.6).
//!
//! It exists only at the process that believes itself coordinator. It runs Phase 1 once for every
//! instance from its first undecided one onward, re-proposes what Phase 1 found, then batches queued
//! values into instances while the window allows: at most `window_instances` (shrunk by flow control)
//! and `window_bytes` open at once. An open instance whose decision does not arrive in time is sent
//! again.

use std::collections::{BTreeMap, VecDeque};

use super::config::ValueChoice;
use super::flow_control::FlowWindow;
use super::phase1::Phase1;
use super::types::{Batch, Instance, NodeId, Ring, Round, Tick, Value, Vid, Vote};

#[derive(Debug)]
struct Open {
    vid: Vid,
    val: Batch,
    sent_at: Tick,
    retries: u32,
}

/// An instance to send Phase 2A for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proposal2A {
    pub instance: Instance,
    pub c_vid: Vid,
    pub c_val: Batch,
}

#[derive(Debug)]
pub struct Coordinator {
    pub c_rnd: Round,
    pub ring: Ring,
    /// `Some` while Phase 1 gathers promises.
    phase1: Option<Phase1>,
    pub phase1_sent_at: Tick,
    next_instance: Instance,
    next_vid_seq: u64,
    open: BTreeMap<Instance, Open>,
    open_bytes: usize,
    queue: VecDeque<Value>,
    queue_bytes: usize,
    pub window: FlowWindow,
}

impl Coordinator {
    /// Starts round `c_rnd` on `ring`, Phase 1 from instance `from`.
    pub fn new(
        c_rnd: Round,
        ring: Ring,
        from: Instance,
        now: Tick,
        window: FlowWindow,
    ) -> Coordinator {
        Coordinator {
            c_rnd,
            ring,
            phase1: Some(Phase1::new(c_rnd, from)),
            phase1_sent_at: now,
            next_instance: from,
            next_vid_seq: 0,
            open: BTreeMap::new(),
            open_bytes: 0,
            queue: VecDeque::new(),
            queue_bytes: 0,
            window,
        }
    }

    /// Takes over the values a previous round of this coordinator had queued and opened, so a ring
    /// change loses nothing it could still propose. Open values are requeued: Phase 1 of the new round
    /// re-proposes the ones some acceptor voted for, and learners skip the duplicates.
    pub fn inherit(&mut self, old: Coordinator) {
        for (_, o) in old.open {
            for v in o.val.values() {
                self.queue_bytes += v.batch_bytes();
                self.queue.push_back(v.clone());
            }
        }
        self.queue_bytes += old.queue_bytes;
        self.queue.extend(old.queue);
        self.window = old.window;
    }

    pub fn in_phase1(&self) -> bool {
        self.phase1.is_some()
    }

    pub fn phase1_from(&self) -> Option<Instance> {
        self.phase1.as_ref().map(|p| p.from)
    }

    /// Records a Phase 1B. When it completes an m-quorum, returns the re-proposals to send.
    pub fn on_phase1b(
        &mut self,
        acceptor: NodeId,
        trimmed_below: Instance,
        votes: Vec<Vote>,
        quorum: usize,
        choice: ValueChoice,
        now: Tick,
    ) -> Option<Vec<Proposal2A>> {
        let p1 = self.phase1.as_mut()?;
        p1.on_phase1b(acceptor, trimmed_below, votes);
        if p1.promises() < quorum {
            return None;
        }
        let outcome = p1.outcome(choice);
        self.phase1 = None;
        self.next_instance = outcome.start;
        let mut out = Vec::with_capacity(outcome.reproposals.len());
        for (instance, c_vid, c_val) in outcome.reproposals {
            // Instances between re-proposals that no acceptor of the quorum voted in get a no-op, so
            // learners never wait on a hole.
            while self.next_instance < instance {
                out.push(self.open_instance(self.next_instance, None, Batch::empty(), now));
                self.next_instance += 1;
            }
            out.push(self.open_instance(instance, Some(c_vid), c_val, now));
            self.next_instance = instance + 1;
        }
        Some(out)
    }

    fn open_instance(
        &mut self,
        instance: Instance,
        vid: Option<Vid>,
        val: Batch,
        now: Tick,
    ) -> Proposal2A {
        let c_vid = vid.unwrap_or_else(|| {
            self.next_vid_seq += 1;
            Vid { rnd: self.c_rnd, seq: self.next_vid_seq }
        });
        self.open_bytes += val.bytes();
        self.open.insert(instance, Open { vid: c_vid, val: val.clone(), sent_at: now, retries: 0 });
        Proposal2A { instance, c_vid, c_val: val }
    }

    /// Queues proposed values; returns how many did not fit (their proposers will resend them).
    pub fn enqueue(&mut self, values: &[Value], queue_bytes_max: usize) -> usize {
        let mut dropped = 0;
        for v in values {
            if self.queue_bytes + v.batch_bytes() > queue_bytes_max {
                dropped += 1;
                continue;
            }
            self.queue_bytes += v.batch_bytes();
            self.queue.push_back(v.clone());
        }
        dropped
    }

    /// The next instance to open, if Phase 1 is done, values are queued and the window has room.
    pub fn next_proposal(
        &mut self,
        now: Tick,
        batch_bytes_max: usize,
        window_bytes: usize,
    ) -> Option<Proposal2A> {
        if self.phase1.is_some()
            || self.queue.is_empty()
            || self.open.len() >= self.window.instances() as usize
            || self.open_bytes >= window_bytes
        {
            return None;
        }
        let mut values = Vec::new();
        let mut bytes = 0;
        while let Some(v) = self.queue.front() {
            if !values.is_empty() && bytes + v.batch_bytes() > batch_bytes_max {
                break;
            }
            bytes += v.batch_bytes();
            self.queue_bytes -= v.batch_bytes();
            values.extend(self.queue.pop_front());
        }
        let instance = self.next_instance;
        self.next_instance += 1;
        Some(self.open_instance(instance, None, Batch::new(values), now))
    }

    /// The decision of `instance` is known: it leaves the window.
    pub fn on_decided(&mut self, instance: Instance) {
        if let Some(o) = self.open.remove(&instance) {
            self.open_bytes -= o.val.bytes();
        }
    }

    /// Open instances whose decision is overdue, marked as resent now; and the most retries any of
    /// them has had.
    pub fn overdue(&mut self, now: Tick, retry_us: Tick, out: &mut Vec<Proposal2A>) -> u32 {
        let mut retries_max = 0;
        for (&instance, o) in self.open.iter_mut() {
            if now < o.sent_at + retry_us {
                continue;
            }
            o.sent_at = now;
            o.retries += 1;
            retries_max = retries_max.max(o.retries);
            out.push(Proposal2A { instance, c_vid: o.vid, c_val: o.val.clone() });
        }
        retries_max
    }

    pub fn open_instances(&self) -> usize {
        self.open.len()
    }

    pub fn queued_values(&self) -> usize {
        self.queue.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::types::ValueId;
    use bytes::Bytes;

    fn value(seq: u64, len: usize) -> Value {
        Value {
            id: ValueId { proposer: 0, incarnation: 0, seq },
            payload: Bytes::from(vec![0u8; len]),
        }
    }

    fn coordinator(window: u32) -> Coordinator {
        let ring = Ring::new(&[1, 0]).unwrap();
        Coordinator::new(Round(1 << 16), ring, 0, 0, FlowWindow::new(window, 1, 1_000, 0))
    }

    #[test]
    fn batches_respect_batch_bytes_and_window() {
        let mut c = coordinator(2);
        assert!(c.on_phase1b(0, 0, vec![], 2, ValueChoice::HighestVRnd, 0).is_none());
        assert_eq!(c.on_phase1b(1, 0, vec![], 2, ValueChoice::HighestVRnd, 0), Some(vec![]));
        let values: Vec<Value> = (0..10).map(|s| value(s, 100)).collect();
        assert_eq!(c.enqueue(&values, 1 << 20), 0);
        let a = c.next_proposal(0, 3 * 118, 1 << 20).unwrap();
        assert_eq!((a.instance, a.c_val.len()), (0, 3));
        let b = c.next_proposal(0, 3 * 118, 1 << 20).unwrap();
        assert_eq!(b.instance, 1);
        assert!(c.next_proposal(0, 3 * 118, 1 << 20).is_none(), "window of 2 is full");
        c.on_decided(0);
        assert_eq!(c.next_proposal(0, 3 * 118, 1 << 20).unwrap().instance, 2);
    }

    #[test]
    fn phase1_fills_holes_with_noops_and_keeps_vids() {
        let mut c = coordinator(8);
        let vid = Vid { rnd: Round(1), seq: 9 };
        let vote =
            Vote { instance: 2, v_rnd: Round(1), v_vid: vid, v_val: Batch::new(vec![value(5, 1)]) };
        c.on_phase1b(0, 0, vec![vote], 2, ValueChoice::HighestVRnd, 0);
        let out = c.on_phase1b(1, 0, vec![], 2, ValueChoice::HighestVRnd, 0).unwrap();
        assert_eq!(out.len(), 3);
        assert!(out[0].c_val.is_empty() && out[1].c_val.is_empty());
        assert_eq!((out[2].instance, out[2].c_vid), (2, vid));
        c.enqueue(&[value(1, 1)], 1 << 20);
        assert_eq!(c.next_proposal(0, 1 << 15, 1 << 20).unwrap().instance, 3);
    }

    #[test]
    fn overdue_instances_are_resent() {
        let mut c = coordinator(8);
        c.on_phase1b(0, 0, vec![], 1, ValueChoice::HighestVRnd, 0);
        c.enqueue(&[value(1, 1)], 1 << 20);
        c.next_proposal(0, 1 << 15, 1 << 20).unwrap();
        let mut out = Vec::new();
        assert_eq!(c.overdue(10, 50, &mut out), 0);
        assert!(out.is_empty());
        assert_eq!(c.overdue(60, 50, &mut out), 1);
        assert_eq!(out.len(), 1);
    }
}
