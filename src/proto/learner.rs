//! The learner (thesis 3.3.2 Task 5, 3.3.3 Task 5, 3.3.4, 3.3.6, 3.3.7).
//!
//! A learner collects proposed values (Phase 2A, M-Ring) and decisions, delivers decided batches in
//! instance order, skips values already delivered (a proposer may resend), and detects gaps: when it
//! knows of instances beyond the one it waits for and makes no progress, it asks its preferential
//! acceptor for the missing ones.
//!
//! Every process runs a learner, acceptors too: an acceptor must know decisions to answer
//! retransmission requests, and a new coordinator starts Phase 1 from its first undecided instance.
//! Only processes with the learner role hand values to the application.

use super::dedup::Dedup;
use super::instance_map::InstanceMap;
use super::learner_checkpoint::LearnerCheckpoint;
use super::skip::positions_taken;
use super::types::{Batch, BatchBuilder, Instance, NodeId, Round, Tick, Vid};

/// A decided instance waiting for its turn (or for its value).
#[derive(Debug)]
struct Decided {
    vid: Vid,
    val: Option<Batch>,
}

#[derive(Debug)]
pub struct Learner {
    /// The next instance to deliver: every instance below it is delivered (the learner's version in
    /// 3.3.7 terms, when the application applies on delivery).
    next_instance: Instance,
    decided: InstanceMap<Decided>,
    /// Values seen in Phase 2A but not yet decided, with the round that proposed them.
    proposed: InstanceMap<(Round, Vid, Batch)>,
    /// The highest instance known to exist (+1), from decisions, Phase 2A and peers' heartbeats.
    known_below: Instance,
    dedup: Dedup,
    last_progress_at: Tick,
    /// When the last retransmission request went out, if one is outstanding.
    retransmit_sent_at: Option<Tick>,
    /// The answer to a retransmission request made progress and a gap may remain: the learner is
    /// catching up on instances decided long ago, and asks for the next ones at once instead of
    /// after another gap timeout.
    catching_up: bool,
    /// Index into the acceptor list of the acceptor asked next.
    preferential: usize,
    /// Acceptors that answered "trimmed" for `next_instance`, and the highest trim point they named.
    trimmed_by: Vec<NodeId>,
    /// Acceptors that answered they do not hold `next_instance` (without having trimmed it).
    lacking_by: Vec<NodeId>,
    trimmed_below: Instance,
    /// Set once every acceptor trimmed what this learner needs.
    stalled: bool,
    /// The logical positions the skip instances delivered so far took up beyond one each
    /// (Multi-Ring Paxos, `skip`): the logical position of `next_instance` is the sum.
    skipped_extra: u64,
}

/// What the learner wants its node to do after a tick.
#[derive(Debug, PartialEq, Eq)]
pub enum LearnerRequest {
    Retransmit { from: Instance, to: Instance, preferential: usize },
    NeedsStateTransfer { next_instance: Instance, trimmed_below: Instance },
}

impl Learner {
    pub fn new(preferential: usize, now: Tick) -> Learner {
        Learner {
            next_instance: 0,
            decided: InstanceMap::new(),
            proposed: InstanceMap::new(),
            known_below: 0,
            dedup: Dedup::default(),
            last_progress_at: now,
            retransmit_sent_at: None,
            catching_up: false,
            preferential,
            trimmed_by: Vec::new(),
            lacking_by: Vec::new(),
            trimmed_below: 0,
            stalled: false,
            skipped_extra: 0,
        }
    }

    /// The logical position of the next instance (Multi-Ring Paxos, `skip`).
    pub fn logical_next_instance(&self) -> u64 {
        self.next_instance.saturating_add(self.skipped_extra)
    }

    pub fn next_instance(&self) -> Instance {
        self.next_instance
    }

    /// The learner's own state now (see `learner_checkpoint`).
    pub fn checkpoint(&self) -> LearnerCheckpoint {
        LearnerCheckpoint {
            next_instance: self.next_instance,
            delivered: self.dedup.snapshot(),
            skipped_extra: self.skipped_extra,
        }
    }

    /// Goes on from `cp`, as if it had delivered everything below `cp.next_instance` (it has, in an
    /// earlier incarnation of its process). Only before anything was delivered.
    pub fn resume(&mut self, cp: &LearnerCheckpoint) {
        assert_eq!(self.next_instance, 0, "a learner resumes from a checkpoint only at its start");
        self.next_instance = cp.next_instance;
        self.known_below = self.known_below.max(cp.next_instance);
        self.dedup = Dedup::from_snapshot(&cp.delivered);
        self.skipped_extra = cp.skipped_extra;
    }

    /// Jumps to `cp`, a later point of the same stream: the state of a learner that is ahead,
    /// brought here by state transfer (3.3.7) while this one was turned away by every acceptor.
    /// Everything below `cp.next_instance` counts as delivered from now on (the application
    /// restores its state from the same snapshot), decisions held below it are dropped, and the
    /// learner asks acceptors again from there. Returns false, changing nothing, when `cp` is not
    /// ahead of this learner.
    pub fn install(&mut self, now: Tick, cp: &LearnerCheckpoint) -> bool {
        if cp.next_instance <= self.next_instance {
            return false;
        }
        self.next_instance = cp.next_instance;
        self.known_below = self.known_below.max(cp.next_instance);
        self.dedup = Dedup::from_snapshot(&cp.delivered);
        self.skipped_extra = cp.skipped_extra;
        self.decided.remove_below(cp.next_instance);
        self.proposed.remove_below(cp.next_instance);
        self.last_progress_at = now;
        self.retransmit_sent_at = None;
        // What the stream decided since the snapshot was taken is all old: ask at once.
        self.catching_up = true;
        self.trimmed_by.clear();
        self.lacking_by.clear();
        self.stalled = false;
        true
    }

    /// Decided instances held but not delivered yet (out of order), the backlog flow control watches.
    pub fn backlog_instances(&self) -> usize {
        self.decided.len()
    }

    pub fn is_decided(&self, instance: Instance) -> bool {
        instance < self.next_instance || self.decided.contains_key(instance)
    }

    pub fn saw_instance(&mut self, instance: Instance) {
        self.known_below = self.known_below.max(instance + 1);
    }

    pub fn saw_decided_below(&mut self, decided_below: Instance) {
        self.known_below = self.known_below.max(decided_below);
    }

    /// A Phase 2A value (M-Ring multicast, or U-Ring Phase 2A/2B passing by). Returns true if it
    /// completed an instance whose decision had arrived without its value (the caller then delivers).
    ///
    /// A stalled learner (waiting for state transfer) keeps no value and no decision: most of what
    /// it would hold until the snapshot comes lies below the snapshot's version, and holding it
    /// would count as backlog and throttle every other learner through flow control (3.3.6) for as
    /// long as the transfer takes. After the install it asks the acceptors for what it lacks.
    pub fn on_proposed(
        &mut self,
        c_rnd: Round,
        instance: Instance,
        c_vid: Vid,
        c_val: &Batch,
    ) -> bool {
        self.saw_instance(instance);
        if instance < self.next_instance || self.stalled {
            return false;
        }
        if let Some(d) = self.decided.get_mut(instance) {
            if d.val.is_none() && d.vid == c_vid {
                d.val = Some(c_val.clone());
                return true;
            }
            return false;
        }
        match self.proposed.get(instance) {
            Some((r, _, _)) if *r >= c_rnd => {}
            _ => {
                self.proposed.insert(instance, (c_rnd, c_vid, c_val.clone()));
            }
        }
        false
    }

    /// The value of `c_vid` at `instance`, if this learner saw it proposed.
    pub fn proposed_value(&self, instance: Instance, c_vid: Vid) -> Option<Batch> {
        match self.proposed.get(instance) {
            Some((_, vid, val)) if *vid == c_vid => Some(val.clone()),
            _ => None,
        }
    }

    /// A decision. `c_val` is `None` when neither the message nor anything this process holds carries
    /// the value; the learner then fetches it like a gap.
    pub fn on_decision(&mut self, instance: Instance, c_vid: Vid, c_val: Option<Batch>) {
        self.saw_instance(instance);
        // A stalled learner keeps nothing (see `on_proposed`).
        if instance < self.next_instance || self.stalled {
            return;
        }
        let entry = self.decided.get_or_insert_with(instance, || Decided { vid: c_vid, val: None });
        if entry.val.is_none() {
            entry.vid = c_vid;
            entry.val = c_val;
        }
        self.proposed.remove(instance);
    }

    /// Delivers the decided instances that are next in line, at most `instances_max` of them (the
    /// room the application has: the rest stay decided here, count as backlog and so slow the
    /// coordinator down, 3.3.6). Calls `deliver` once per instance with the values decided there for
    /// the first time (the batch itself when none is a repeat). Returns the number of instances
    /// delivered.
    pub fn deliver_ready(
        &mut self,
        now: Tick,
        instances_max: u64,
        mut deliver: impl FnMut(Instance, Batch),
    ) -> u64 {
        let start = self.next_instance;
        // A decision still waiting for its value stays where it is (looked at, not taken out and put
        // back).
        while self.next_instance - start < instances_max
            && self.decided.get(self.next_instance).is_some_and(|d| d.val.is_some())
            && let Some(Decided { val: Some(val), .. }) = self.decided.remove(self.next_instance)
        {
            // Repeats are rare (a proposer resent a value that was decided after all): the batch is
            // copied without them only when one turns up.
            // A batch as its proposer formed it is checked in one step, without reading its values.
            // A skip is no proposer's value: two alike (same target) are both delivered.
            let skip = val.skip_target().is_some();
            if skip {
                let at = self.next_instance.saturating_add(self.skipped_extra);
                self.skipped_extra += positions_taken(&val, at) - 1;
            }
            let whole_run_fresh = skip
                || val
                    .run_start()
                    .is_some_and(|first| self.dedup.first_time_run(first, val.len() as u32));
            let first_repeat = if whole_run_fresh {
                None
            } else {
                val.ids().position(|id| !self.dedup.first_time(id))
            };
            let fresh = match first_repeat {
                None => val,
                Some(k) => {
                    // One pass over the values: those before `k` were checked already; the rest
                    // still need the check.
                    let mut b = BatchBuilder::with_capacity(val.bytes());
                    for (j, v) in val.values().enumerate() {
                        if j < k || (j > k && self.dedup.first_time(v.id)) {
                            b.push(v.id, &v.payload);
                        }
                    }
                    b.finish()
                }
            };
            if !fresh.is_empty() {
                deliver(self.next_instance, fresh);
            }
            self.next_instance += 1;
        }
        let delivered = self.next_instance - start;
        if delivered > 0 {
            self.last_progress_at = now;
            self.catching_up |= self.retransmit_sent_at.is_some();
            self.retransmit_sent_at = None;
            self.trimmed_by.clear();
            self.lacking_by.clear();
            self.proposed.remove_below(self.next_instance);
        }
        delivered
    }

    /// An acceptor could not give `next_instance`: it trimmed below `trimmed_below`, or (when that is
    /// not above `next_instance`) it lacks the decision.
    pub fn on_trimmed(&mut self, acceptor: NodeId, trimmed_below: Instance) {
        let list = if trimmed_below > self.next_instance {
            &mut self.trimmed_by
        } else {
            &mut self.lacking_by
        };
        if !list.contains(&acceptor) {
            list.push(acceptor);
        }
        if trimmed_below > self.next_instance {
            self.trimmed_below = self.trimmed_below.max(trimmed_below);
            // Ask someone else at once rather than wait for the timeout.
            self.retransmit_sent_at = None;
            self.preferential += 1;
        }
    }

    pub fn is_stalled(&self) -> bool {
        self.stalled
    }

    /// Gap detection (3.3.4): if instances beyond `next_instance` exist and nothing was delivered for
    /// `gap_timeout_us`, ask for the missing ones; if the last request went unanswered, ask the next
    /// acceptor. Once every acceptor in `serving_acceptors` turned the learner away, at least one
    /// because it trimmed the instance, only state transfer can help: the learner says so and stops.
    pub fn on_tick(
        &mut self,
        now: Tick,
        gap_timeout_us: Tick,
        batch_instances_max: u64,
        serving_acceptors: &[NodeId],
    ) -> Option<LearnerRequest> {
        if self.stalled {
            return None;
        }
        let turned_away = |a: &NodeId| self.trimmed_by.contains(a) || self.lacking_by.contains(a);
        if !self.trimmed_by.is_empty() && serving_acceptors.iter().all(turned_away) {
            self.stalled = true;
            // What is held waits for a snapshot that may lie beyond it (see `on_proposed`).
            self.decided = InstanceMap::new();
            self.proposed = InstanceMap::new();
            return Some(LearnerRequest::NeedsStateTransfer {
                next_instance: self.next_instance,
                trimmed_below: self.trimmed_below,
            });
        }
        let gap = self.known_below > self.next_instance
            && self.decided.get(self.next_instance).is_none_or(|d| d.val.is_none());
        if !gap {
            self.catching_up = false;
            return None;
        }
        // A learner far behind (restarted, or just given a snapshot) would otherwise fetch
        // `batch_instances_max` instances per gap timeout: 3,200 a second with the defaults, less
        // than a busy ring decides, so it would never catch up. Once a request was answered it
        // asks again at the next tick; a gap of messages merely in flight still waits.
        let ask_now = self.catching_up && self.retransmit_sent_at.is_none();
        if !ask_now && now < self.last_progress_at + gap_timeout_us {
            return None;
        }
        if let Some(sent) = self.retransmit_sent_at {
            if now < sent + gap_timeout_us {
                return None;
            }
            // No answer: try the next acceptor.
            self.preferential += 1;
        }
        self.retransmit_sent_at = Some(now);
        let to = self.known_below.min(self.next_instance + batch_instances_max);
        Some(LearnerRequest::Retransmit {
            from: self.next_instance,
            to,
            preferential: self.preferential,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::types::{Value, ValueId};
    use bytes::Bytes;

    fn batch(seqs: &[u64]) -> Batch {
        Batch::new(
            seqs.iter()
                .map(|&seq| Value {
                    id: ValueId { proposer: 1, incarnation: 0, seq },
                    payload: Bytes::from_static(b"x"),
                })
                .collect(),
        )
    }

    fn vid(seq: u64) -> Vid {
        Vid { rnd: Round(1 << 16), seq }
    }

    #[test]
    fn delivers_in_order_once_and_skips_duplicates() {
        let mut l = Learner::new(0, 0);
        l.on_decision(1, vid(1), Some(batch(&[1, 0])));
        let mut out = Vec::new();
        assert_eq!(
            l.deliver_ready(0, u64::MAX, |i, b| out.extend(b.values().map(|v| (i, v.id.seq)))),
            0,
            "instance 0 is missing"
        );
        l.on_decision(0, vid(0), Some(batch(&[0])));
        l.on_decision(0, vid(0), Some(batch(&[0])));
        assert_eq!(
            l.deliver_ready(0, u64::MAX, |i, b| out.extend(b.values().map(|v| (i, v.id.seq)))),
            2
        );
        assert_eq!(out, vec![(0, 0), (1, 1)], "value 0 decided twice is delivered once");
    }

    #[test]
    fn a_gap_triggers_a_retransmission_then_rotates_acceptors() {
        let mut l = Learner::new(0, 0);
        l.on_decision(5, vid(5), Some(batch(&[5])));
        assert_eq!(l.on_tick(10, 100, 64, &[1, 2, 3]), None, "not before the gap timeout");
        assert_eq!(
            l.on_tick(100, 100, 64, &[1, 2, 3]),
            Some(LearnerRequest::Retransmit { from: 0, to: 6, preferential: 0 })
        );
        assert_eq!(l.on_tick(150, 100, 64, &[1, 2, 3]), None, "request outstanding");
        assert_eq!(
            l.on_tick(200, 100, 64, &[1, 2, 3]),
            Some(LearnerRequest::Retransmit { from: 0, to: 6, preferential: 1 })
        );
    }

    #[test]
    fn an_installed_snapshot_moves_the_learner_past_the_trim_point() {
        let mut l = Learner::new(0, 0);
        l.on_decision(3, vid(3), Some(batch(&[3])));
        l.on_decision(10, vid(10), Some(batch(&[7, 10])));
        l.on_decision(11, vid(11), Some(batch(&[11])));
        l.saw_decided_below(50);
        for a in 0..3 {
            l.on_trimmed(a, 10);
        }
        assert!(matches!(
            l.on_tick(1_000, 100, 64, &[0, 1, 2]),
            Some(LearnerRequest::NeedsStateTransfer { next_instance: 0, .. })
        ));
        let donor = LearnerCheckpoint {
            next_instance: 10,
            delivered: vec![crate::proto::learner_checkpoint::DeliveredSeqs {
                proposer: 1,
                incarnation: 0,
                below: 8,
                above: vec![],
            }],
            skipped_extra: 0,
        };
        assert!(!l.install(1_000, &LearnerCheckpoint::default()));
        l.on_decision(12, vid(12), Some(batch(&[12])));
        assert_eq!(l.backlog_instances(), 0, "a stalled learner holds nothing");
        assert!(l.install(1_000, &donor));
        assert!(!l.is_stalled());
        assert!(l.is_decided(9) && !l.is_decided(10));
        assert_eq!(
            l.on_tick(2_000, 100, 64, &[0, 1, 2]),
            Some(LearnerRequest::Retransmit { from: 10, to: 50, preferential: 3 }),
            "it asks the acceptors again, from the snapshot on"
        );
        l.on_decision(10, vid(10), Some(batch(&[7, 10])));
        l.on_decision(11, vid(11), Some(batch(&[11])));
        let mut out = Vec::new();
        l.deliver_ready(2_000, u64::MAX, |i, b| out.extend(b.values().map(|v| (i, v.id.seq))));
        assert_eq!(out, vec![(10, 10), (11, 11)], "7 was delivered below the snapshot");
        assert_eq!(l.checkpoint().next_instance, 12);
        assert!(!l.install(2_000, &donor), "a snapshot behind the learner changes nothing");
    }

    #[test]
    fn a_learner_catching_up_asks_again_as_soon_as_an_answer_made_progress() {
        let mut l = Learner::new(0, 0);
        l.saw_decided_below(200);
        assert_eq!(
            l.on_tick(100, 100, 64, &[1, 2]),
            Some(LearnerRequest::Retransmit { from: 0, to: 64, preferential: 0 })
        );
        for i in 0..64 {
            l.on_decision(i, vid(i), Some(batch(&[i])));
        }
        assert_eq!(l.deliver_ready(101, u64::MAX, |_, _| {}), 64);
        assert_eq!(
            l.on_tick(102, 100, 64, &[1, 2]),
            Some(LearnerRequest::Retransmit { from: 64, to: 128, preferential: 0 }),
            "the next range at once, not a gap timeout later"
        );
        assert_eq!(l.on_tick(103, 100, 64, &[1, 2]), None, "one request outstanding at a time");
        // Caught up: an ordinary gap (a message in flight) waits for the timeout again.
        for i in 64..200 {
            l.on_decision(i, vid(i), Some(batch(&[i])));
        }
        l.deliver_ready(104, u64::MAX, |_, _| {});
        assert_eq!(l.on_tick(105, 100, 64, &[1, 2]), None);
        l.on_decision(201, vid(201), Some(batch(&[201])));
        assert_eq!(l.on_tick(106, 100, 64, &[1, 2]), None, "no gap timeout yet");
        assert!(l.on_tick(204, 100, 64, &[1, 2]).is_some());
    }

    #[test]
    fn turned_away_by_every_acceptor_means_state_transfer() {
        let mut l = Learner::new(0, 0);
        l.saw_decided_below(50);
        l.on_trimmed(0, 0);
        l.on_trimmed(1, 0);
        assert_eq!(
            l.on_tick(1_000, 100, 64, &[0, 1, 2])
                .map(|r| matches!(r, LearnerRequest::Retransmit { .. })),
            Some(true),
            "nobody trimmed yet: lacking decisions may still arrive"
        );
        l.on_trimmed(2, 20);
        assert_eq!(
            l.on_tick(2_000, 100, 64, &[0, 1, 2]),
            Some(LearnerRequest::NeedsStateTransfer { next_instance: 0, trimmed_below: 20 })
        );
        assert!(l.is_stalled());
        assert_eq!(l.on_tick(3_000, 100, 64, &[0, 1, 2]), None);
    }
}
