//! The coordinator of one round (thesis Alg. 2–3 Tasks 1 and 3, 3.3.4, 3.3.6).
//!
//! It exists only at the process that believes itself coordinator. It runs Phase 1 once for every
//! instance from its first undecided one onward (in pieces, see [`super::phase1`]), re-proposes what
//! Phase 1 found, then batches queued values into instances. Both go through one window: at most
//! `window_instances` (shrunk by flow control) and `window_bytes` open at once, so even a new
//! coordinator facing a long log of votes holds a bounded amount. An open instance whose decision does
//! not arrive in time is sent again.
//!
//! In U-Ring Paxos a proposal that travels on along the coordinator's ring reaches every acceptor
//! before the Phase 2A that orders it (same links, in order): such an instance takes the proposal
//! alone and Phase 2A names it by its id (see `proposal_store`). Proposals that came another way
//! (straight from a proposer whose view of the ring differs, or queued under an earlier round) are
//! batched together and carried, as in M-Ring Paxos.

use std::collections::VecDeque;

// Seeded per process, and far cheaper than SipHash per proposal (see `proposal_store`).
use foldhash::{HashSet, HashSetExt};

use super::batch_arena::BatchArena;
use super::config::{ClusterConfig, ValueChoice};
use super::flow_control::FlowWindow;
use super::instance_map::InstanceMap;
use super::msg::Carried;
use super::phase1::{Phase1, Step};
use super::skip::SkipClock;
use super::types::{Batch, Instance, NodeId, ProposalId, Ring, Round, Tick, Vid, Vote};

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
    /// `Some` when the value is a proposal that travelled the ring ahead of this Phase 2A: the
    /// message then names it instead of carrying it. Resent Phase 2As always carry the value.
    pub proposal: Option<ProposalId>,
}

impl Proposal2A {
    /// What the Phase 2A message carries of the value.
    pub fn carried(&self) -> Carried {
        match self.proposal {
            Some(id) => Carried::Proposal(id),
            None => Carried::Value(self.c_val.clone()),
        }
    }
}

/// A queued proposal.
#[derive(Debug)]
struct Queued {
    batch: Batch,
    /// `Some` when it reaches every acceptor of the ring ahead of Phase 2A (U-Ring Paxos, see
    /// `proposal_store`): its instance takes it alone and names it, if it opens before this time,
    /// after which the acceptors may have forgotten it.
    name_until: Option<Tick>,
}

#[derive(Debug)]
pub struct Coordinator {
    pub c_rnd: Round,
    pub ring: Ring,
    /// `Some` until an m-quorum has reported its whole log; re-proposals are drawn from it meanwhile.
    phase1: Option<Phase1>,
    next_instance: Instance,
    next_vid_seq: u64,
    open: InstanceMap<Open>,
    open_bytes: usize,
    /// Proposals as they arrived: whole batches, so an instance that takes one batch shares its
    /// region instead of copying it.
    queue: VecDeque<Queued>,
    queue_bytes: usize,
    /// The proposal ids of the queued proposals that are to be named. A proposer that resends a
    /// proposal sends it around the ring again: the copy is kept once by every process, so it is
    /// queued once too (the instance that names it takes it from the acceptors' stores).
    queued_named: HashSet<ProposalId>,
    /// Proposals the queue holds at most (and has room for from the start).
    queue_entries_max: usize,
    /// The batches one instance takes, reused.
    scratch: Vec<Batch>,
    pub window: FlowWindow,
    /// Multi-Ring Paxos: the interval clock that makes up for instances this ring did not open
    /// (`skip`); `None` for a ring of its own.
    skip: Option<SkipClock>,
}

impl Coordinator {
    /// Starts round `c_rnd` on `ring`: Phase 1 from instance `from`, answered by the acceptors of
    /// `cluster`, picking values by `choice`. The caller sends the first Phase 1A to every acceptor at
    /// `now`.
    pub fn new(
        c_rnd: Round,
        ring: Ring,
        from: Instance,
        (cluster, choice): (&ClusterConfig, ValueChoice),
        now: Tick,
        window: FlowWindow,
    ) -> Coordinator {
        Coordinator {
            c_rnd,
            ring,
            phase1: Some(Phase1::new(c_rnd, from, cluster, choice, now)),
            next_instance: from,
            next_vid_seq: 0,
            open: InstanceMap::new(),
            open_bytes: 0,
            queue: VecDeque::new(),
            queue_bytes: 0,
            queued_named: HashSet::new(),
            queue_entries_max: usize::MAX,
            scratch: Vec::new(),
            window,
            skip: None,
        }
    }

    /// Proposes skip instances by `clock` (Multi-Ring Paxos, see `skip`).
    pub fn set_skip_clock(&mut self, clock: SkipClock) {
        self.skip = Some(clock);
    }

    /// Compares the ring's logical position with the shared clock, once every Δ.
    pub fn skip_tick(&mut self, now: Tick) {
        if let Some(clock) = self.skip.as_mut() {
            clock.on_tick(now);
        }
    }

    /// Whether a skip is owed (an instance to open as soon as the window has room).
    pub fn skip_owed(&self) -> bool {
        self.skip.as_ref().is_some_and(|c| c.take_owed().is_some())
    }

    /// Bounds the queue to `entries_max` proposals and allocates room for them now, so queueing
    /// never allocates while running; a proposal beyond is refused like one beyond the byte bound.
    pub fn bound_queue(&mut self, entries_max: usize) {
        self.queue_entries_max = entries_max;
        self.queue.reserve(entries_max.saturating_sub(self.queue.len()));
        self.queued_named.reserve(entries_max.saturating_sub(self.queued_named.len()));
    }

    /// Takes over the values a previous round of this coordinator had queued and opened, so a ring
    /// change loses nothing it could still propose. Open values are requeued: Phase 1 of the new round
    /// re-proposes the ones some acceptor voted for, and learners skip the duplicates.
    ///
    /// Open skip instances are not: a skip is no proposer's value but a whole instance, and queued it
    /// would be batched with values (or other skips) into an instance that is no skip, whose values
    /// learners would deliver to the application, counting it as one turn. Phase 1 re-proposes a
    /// skip some acceptor voted for; one nobody voted for is lost, which leaves the ring that many
    /// turns short of λ: merges wait that much longer for it, in the same order at every learner.
    pub fn inherit(&mut self, old: Coordinator) {
        // The new ring may differ from the one the proposals travelled: they go with their values.
        // Open skips are not: queued, a skip would be batched with values into an instance that is
        // no skip, and its value reach the application. Phase 1 re-proposes a skip some acceptor
        // voted for; one nobody voted for is lost, and the next check of the skip clock owes it
        // again.
        for (_, o) in old.open {
            if !o.val.is_empty() && o.val.skip_target().is_none() {
                self.queue_bytes += o.val.bytes();
                self.queue.push_back(Queued { batch: o.val, name_until: None });
            }
        }
        self.queue_bytes += old.queue_bytes;
        self.queue
            .extend(old.queue.into_iter().map(|q| Queued { batch: q.batch, name_until: None }));
        self.window = old.window;
    }

    pub fn in_phase1(&self) -> bool {
        self.phase1.is_some()
    }

    /// Records a piece of an acceptor's Phase 1B (see [`Phase1::on_phase1b`]); false if it added
    /// nothing. What it makes proposable is drawn by [`Coordinator::next_proposal`].
    pub fn on_phase1b(
        &mut self,
        acceptor: NodeId,
        from: Instance,
        trimmed_below: Instance,
        votes_below: Instance,
        votes: Vec<Vote>,
    ) -> bool {
        let Some(p1) = self.phase1.as_mut() else { return false };
        p1.on_phase1b(acceptor, from, trimmed_below, votes_below, votes)
    }

    /// The Phase 1A requests to send now, as (acceptor, from): first answers that are overdue, and
    /// the next piece of every acceptor whose report ends within a window of the next instance.
    pub fn phase1_requests(
        &mut self,
        now: Tick,
        retry_us: Tick,
        out: &mut Vec<(NodeId, Instance)>,
    ) {
        let horizon = self.next_instance.saturating_add(u64::from(self.window.instances()));
        if let Some(p1) = self.phase1.as_mut() {
            p1.requests(now, retry_us, horizon, out);
        }
    }

    fn open_instance(
        &mut self,
        instance: Instance,
        vid: Option<Vid>,
        val: Batch,
        proposal: Option<ProposalId>,
        now: Tick,
    ) -> Proposal2A {
        let c_vid = vid.unwrap_or_else(|| {
            self.next_vid_seq += 1;
            Vid { rnd: self.c_rnd, seq: self.next_vid_seq }
        });
        self.open_bytes += val.bytes();
        self.open.insert(instance, Open { vid: c_vid, val: val.clone(), sent_at: now, retries: 0 });
        Proposal2A { instance, c_vid, c_val: val, proposal }
    }

    /// Queues a batch of proposed values; returns how many values did not fit (all or none: their
    /// proposer will resend them). `name_until`: the batch travels on along this round's ring past
    /// the coordinator, so every acceptor holds it before Phase 2A reaches it, and keeps it until
    /// then at least.
    pub fn enqueue(
        &mut self,
        values: Batch,
        name_until: Option<Tick>,
        queue_bytes_max: usize,
    ) -> usize {
        if self.queue_bytes + values.bytes() > queue_bytes_max
            || self.queue.len() >= self.queue_entries_max
        {
            return values.len();
        }
        if values.is_empty() {
            return 0;
        }
        if name_until.is_some() {
            let Some(id) = values.proposal_id() else { return 0 };
            if !self.queued_named.insert(id) {
                return 0; // a copy is queued already
            }
        }
        self.queue_bytes += values.bytes();
        self.queue.push_back(Queued { batch: values, name_until });
        0
    }

    /// The next instance to open while the window has room: what Phase 1 found (a re-proposal or a
    /// no-op) first, then, once Phase 1 is complete, a batch of queued values.
    pub fn next_proposal(
        &mut self,
        now: Tick,
        batch_bytes_max: usize,
        window_bytes: usize,
        arena: &mut BatchArena,
    ) -> Option<Proposal2A> {
        if self.open.len() >= self.window.instances() as usize || self.open_bytes >= window_bytes {
            return None;
        }
        while let Some(p1) = self.phase1.as_mut() {
            let instance = self.next_instance;
            let (vid, val) = match p1.step(instance) {
                Step::Repropose { c_vid, c_val } => (Some(c_vid), c_val),
                Step::NoOp => (None, Batch::empty()),
                Step::Skip { to } => {
                    if let Some(clock) = self.skip.as_mut() {
                        clock.on_passed_over(to.saturating_sub(self.next_instance));
                    }
                    self.next_instance = to;
                    continue;
                }
                Step::Wait => return None,
                Step::Complete => {
                    self.phase1 = None;
                    break;
                }
            };
            self.next_instance += 1;
            if let Some(clock) = self.skip.as_mut() {
                clock.on_opened(&val);
            }
            return Some(self.open_instance(instance, vid, val, None, now));
        }
        // What is owed goes first: learners hold other rings' values until this ring catches up.
        if let Some(clock) = self.skip.as_mut()
            && let Some(target) = clock.take_owed()
        {
            let skip = Batch::skip_to(target);
            clock.on_opened(&skip);
            let instance = self.next_instance;
            self.next_instance += 1;
            return Some(self.open_instance(instance, None, skip, None, now));
        }
        let front = self.queue.pop_front()?;
        let instance = self.next_instance;
        self.next_instance += 1;
        if let Some(clock) = self.skip.as_mut() {
            clock.on_passed_over(1); // a batch of values counts one
        }
        if let Some(name_until) = front.name_until {
            // Every process holds it under its proposal id: the instance is that proposal, whole
            // (it came in one frame, so it goes in one again should Phase 2A have to carry it).
            self.queue_bytes -= front.batch.bytes();
            let proposal = front.batch.proposal_id();
            if let Some(id) = &proposal {
                self.queued_named.remove(id);
            }
            let proposal = proposal.filter(|_| now < name_until);
            return Some(self.open_instance(instance, None, front.batch, proposal, now));
        }
        // A proposer with a larger batch limit than ours: the instance takes what fits (a slice, not
        // a copy) and the rest waits at the front.
        let (head, tail) = front.batch.split_to_fit(batch_bytes_max);
        if let Some(tail) = tail {
            self.queue.push_front(Queued { batch: tail, name_until: None });
        }
        self.queue_bytes -= head.bytes();
        let mut bytes = head.bytes();
        self.scratch.push(head);
        while let Some(next) = self.queue.front().filter(|q| q.name_until.is_none()) {
            if bytes + next.batch.bytes() > batch_bytes_max {
                break;
            }
            bytes += next.batch.bytes();
            self.queue_bytes -= next.batch.bytes();
            self.scratch.extend(self.queue.pop_front().map(|q| q.batch));
        }
        let val = arena.concat(&self.scratch);
        self.scratch.clear();
        Some(self.open_instance(instance, None, val, None, now))
    }

    /// The value this coordinator proposed as `c_vid` at `instance`, while the instance is open.
    pub fn open_value(&self, instance: Instance, c_vid: Vid) -> Option<Batch> {
        self.open.get(instance).filter(|o| o.vid == c_vid).map(|o| o.val.clone())
    }

    /// The decision of `instance` is known: it leaves the window.
    pub fn on_decided(&mut self, instance: Instance) {
        if let Some(o) = self.open.remove(instance) {
            self.open_bytes -= o.val.bytes();
        }
    }

    /// Open instances whose decision is overdue, marked as resent now; and the most retries any of
    /// them has had.
    pub fn overdue(&mut self, now: Tick, retry_us: Tick, out: &mut Vec<Proposal2A>) -> u32 {
        let mut retries_max = 0;
        for (instance, o) in self.open.iter_mut() {
            if now < o.sent_at + retry_us {
                continue;
            }
            o.sent_at = now;
            o.retries += 1;
            retries_max = retries_max.max(o.retries);
            // Whoever did not vote may lack the proposal: the resent Phase 2A carries the value.
            out.push(Proposal2A { instance, c_vid: o.vid, c_val: o.val.clone(), proposal: None });
        }
        retries_max
    }

    pub fn open_instances(&self) -> usize {
        self.open.len()
    }

    pub fn queued_values(&self) -> usize {
        self.queue.iter().map(|q| q.batch.len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::types::{Value, ValueId};
    use bytes::Bytes;

    fn value(seq: u64, len: usize) -> Value {
        Value {
            id: ValueId { proposer: 0, incarnation: 0, seq },
            payload: Bytes::from(vec![0u8; len]),
        }
    }

    const ALL: Instance = Instance::MAX;

    /// A coordinator of round 1.0 whose Phase 1 is answered by acceptors 0, 1, 2 (m-quorum 2).
    fn coordinator(window: u32) -> Coordinator {
        let ring = Ring::new(&[1, 0]).unwrap();
        let cluster = ClusterConfig { nodes: 3, acceptors: vec![0, 1, 2], f: 1 };
        let window = FlowWindow::new(window, 1, 1_000, 0);
        Coordinator::new(Round(1 << 16), ring, 0, (&cluster, ValueChoice::HighestVRnd), 0, window)
    }

    fn open_all(c: &mut Coordinator) -> Vec<Proposal2A> {
        std::iter::from_fn(|| c.next_proposal(0, 1 << 15, 1 << 20, &mut BatchArena::new(1 << 16)))
            .collect()
    }

    #[test]
    fn batches_respect_batch_bytes_and_window() {
        let mut c = coordinator(2);
        for s in 0..10 {
            assert_eq!(c.enqueue(Batch::new(vec![value(s, 100)]), None, 1 << 20), 0);
        }
        assert!(c.on_phase1b(0, 0, 0, ALL, vec![]));
        assert!(
            c.next_proposal(0, 3 * 118, 1 << 20, &mut BatchArena::new(1 << 16)).is_none(),
            "one promise is no m-quorum"
        );
        assert!(c.on_phase1b(1, 0, 0, ALL, vec![]));
        let a = c.next_proposal(0, 3 * 118, 1 << 20, &mut BatchArena::new(1 << 16)).unwrap();
        assert_eq!((a.instance, a.c_val.len()), (0, 3));
        assert!(!c.in_phase1());
        let b = c.next_proposal(0, 3 * 118, 1 << 20, &mut BatchArena::new(1 << 16)).unwrap();
        assert_eq!(b.instance, 1);
        assert!(
            c.next_proposal(0, 3 * 118, 1 << 20, &mut BatchArena::new(1 << 16)).is_none(),
            "window of 2 is full"
        );
        c.on_decided(0);
        assert_eq!(
            c.next_proposal(0, 3 * 118, 1 << 20, &mut BatchArena::new(1 << 16)).unwrap().instance,
            2
        );
    }

    #[test]
    fn a_batch_larger_than_an_instance_is_split_and_a_full_queue_refuses_whole_batches() {
        let mut c = coordinator(8);
        assert!(c.on_phase1b(0, 0, 0, ALL, vec![]) && c.on_phase1b(1, 0, 0, ALL, vec![]));
        let big = Batch::new((0..5).map(|s| value(s, 100)).collect());
        assert_eq!(c.enqueue(big, None, 5 * 118), 0);
        assert_eq!(
            c.enqueue(Batch::new(vec![value(9, 100)]), None, 5 * 118),
            1,
            "the queue is full"
        );
        let sizes: Vec<usize> = std::iter::from_fn(|| {
            c.next_proposal(0, 2 * 118, 1 << 20, &mut BatchArena::new(1 << 16))
        })
        .map(|p| p.c_val.len())
        .collect();
        assert_eq!(sizes, [2, 2, 1]);
        assert_eq!(c.queued_values(), 0);
    }

    #[test]
    fn phase1_fills_holes_with_noops_and_keeps_vids() {
        let mut c = coordinator(8);
        let vid = Vid { rnd: Round(1), seq: 9 };
        let vote =
            Vote { instance: 2, v_rnd: Round(1), v_vid: vid, v_val: Batch::new(vec![value(5, 1)]) };
        c.on_phase1b(0, 0, 0, ALL, vec![vote]);
        c.on_phase1b(1, 0, 0, ALL, vec![]);
        let out = open_all(&mut c);
        assert_eq!(out.len(), 3);
        assert!(out[0].c_val.is_empty() && out[1].c_val.is_empty());
        assert_eq!((out[2].instance, out[2].c_vid), (2, vid));
        c.enqueue(Batch::new(vec![value(1, 1)]), None, 1 << 20);
        assert_eq!(
            c.next_proposal(0, 1 << 15, 1 << 20, &mut BatchArena::new(1 << 16)).unwrap().instance,
            3
        );
    }

    #[test]
    fn phase1_in_pieces_proposes_nothing_new_until_complete() {
        let mut c = coordinator(8);
        c.enqueue(Batch::new(vec![value(1, 1)]), None, 1 << 20);
        let vid = Vid { rnd: Round(1), seq: 9 };
        let vote = Vote { instance: 1, v_rnd: Round(1), v_vid: vid, v_val: Batch::empty() };
        c.on_phase1b(0, 0, 0, 3, vec![vote]);
        c.on_phase1b(1, 0, 0, ALL, vec![]);
        let out = open_all(&mut c);
        assert_eq!(
            out.iter().map(|p| (p.instance, p.c_vid == vid)).collect::<Vec<_>>(),
            [(0, false), (1, true), (2, false)]
        );
        assert!(c.in_phase1(), "acceptor 0 has more to report from 3");
        let mut asked = Vec::new();
        c.phase1_requests(1, 1_000, &mut asked);
        assert_eq!(asked, vec![(0, 3)], "acceptor 2's first request is not overdue yet");
        c.on_phase1b(0, 3, 0, ALL, vec![]);
        let out = open_all(&mut c);
        assert_eq!(out.len(), 1, "Phase 1 complete: the queued value is proposed");
        assert_eq!((out[0].instance, out[0].c_val.len()), (3, 1));
    }

    #[test]
    fn re_proposals_wait_for_room_in_the_window() {
        let mut c = coordinator(2);
        let votes = (0..5)
            .map(|i| Vote {
                instance: i,
                v_rnd: Round(1),
                v_vid: Vid { rnd: Round(1), seq: i },
                v_val: Batch::empty(),
            })
            .collect();
        c.on_phase1b(0, 0, 0, ALL, votes);
        c.on_phase1b(1, 0, 0, ALL, vec![]);
        assert_eq!(open_all(&mut c).len(), 2);
        c.on_decided(0);
        c.on_decided(1);
        assert_eq!(open_all(&mut c).iter().map(|p| p.instance).collect::<Vec<_>>(), [2, 3]);
    }

    #[test]
    fn a_new_round_requeues_open_values_but_not_open_skips() {
        let phase1_complete = |c: &mut Coordinator| {
            assert!(c.on_phase1b(0, 0, 0, ALL, vec![]) && c.on_phase1b(1, 0, 0, ALL, vec![]));
        };
        let mut old = coordinator(8);
        old.set_skip_clock(SkipClock::new(3, 1_000, 0, 0));
        phase1_complete(&mut old);
        old.skip_tick(1_000);
        let mut opened = open_all(&mut old);
        old.enqueue(Batch::new(vec![value(1, 1)]), None, 1 << 20);
        old.skip_tick(2_000);
        opened.extend(open_all(&mut old));
        let skips: Vec<Option<u64>> = opened.iter().map(|p| p.c_val.skip_target()).collect();
        assert_eq!(skips, [Some(3), Some(6), None], "two skips and the value are open");

        let mut new = coordinator(8);
        new.inherit(old);
        phase1_complete(&mut new);
        let reopened = open_all(&mut new);
        // Only the value comes back, alone: a skip batched with it would reach the application.
        assert_eq!(reopened.len(), 1, "{reopened:?}");
        assert_eq!(reopened[0].c_val, Batch::new(vec![value(1, 1)]));
    }

    #[test]
    fn overdue_instances_are_resent() {
        let mut c = coordinator(8);
        c.on_phase1b(0, 0, 0, ALL, vec![]);
        c.on_phase1b(1, 0, 0, ALL, vec![]);
        c.enqueue(Batch::new(vec![value(1, 1)]), None, 1 << 20);
        c.next_proposal(0, 1 << 15, 1 << 20, &mut BatchArena::new(1 << 16)).unwrap();
        let mut out = Vec::new();
        assert_eq!(c.overdue(10, 50, &mut out), 0);
        assert!(out.is_empty());
        assert_eq!(c.overdue(60, 50, &mut out), 1);
        assert_eq!(out.len(), 1);
    }
}
