//! The acceptor (thesis 3.2 Tasks 2 and 4; 3.3.2 Task 4–5; 3.3.7).
//!
//! An acceptor keeps one promise `rnd` for all instances (Phase 1 runs ahead for every instance from i
//! onward, so "rnd is shared across consensus instances", 3.3.7) and, per instance, its vote
//! (v-rnd, v-vid, v-val) plus the decision once it knows it. [`AcceptorState`] is exactly what must
//! survive a crash (3.3.5); the simulator keeps it across restarts in recoverable runs.

use super::instance_map::InstanceMap;
use super::types::{Batch, Instance, Round, Vid, Vote};

/// One instance at an acceptor.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Slot {
    /// The vote: (v-rnd, v-vid, v-val); `None` before the acceptor voted in this instance.
    pub vote: Option<(Round, Vid, Batch)>,
    /// The decided value id and value, once known; kept apart from the vote so learning a decision
    /// never changes what the acceptor reports to a Phase 1.
    pub decided: Option<(Vid, Batch)>,
}

impl Slot {
    pub(crate) fn empty() -> Slot {
        Slot { vote: None, decided: None }
    }

    /// Bytes of values this slot keeps alive. A decision is almost always the batch voted for (one
    /// shared region), so the larger of the two counts, not their sum.
    fn bytes(&self) -> u64 {
        let vote = self.vote.as_ref().map_or(0, |(_, _, b)| b.bytes());
        let decided = self.decided.as_ref().map_or(0, |(_, b)| b.bytes());
        vote.max(decided) as u64
    }
}

/// The state an acceptor must not forget (thesis 3.3.5: rnd, v-rnd, v-val, v-vid; the ring is carried
/// by the messages, so it needs no storage here).
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct AcceptorState {
    /// The highest round this acceptor took part in.
    pub rnd: Round,
    /// Every instance at or above `trimmed_below` that the acceptor voted in or knows decided.
    pub slots: InstanceMap<Slot>,
    /// Instances below this were garbage-collected (3.3.7).
    pub trimmed_below: Instance,
    /// Bytes of values the slots keep alive ([`Slot::bytes`] summed), which garbage collection
    /// bounds ([`AcceptorState::trim_to_bytes`]).
    held_bytes: u64,
}

/// Outcome of a Phase 1A or Phase 2A at an acceptor.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Verdict {
    /// The acceptor promised / voted.
    Accepted,
    /// The acceptor already takes part in the higher round carried here.
    Refused { rnd: Round },
    /// The instance was garbage-collected: it is decided, nothing to do.
    Trimmed,
}

impl AcceptorState {
    /// Phase 1B (Task 2): promise `c_rnd` if it is not below `rnd`. A repeated Phase 1A of the current
    /// round is answered again (its first answer may have been lost).
    pub fn on_phase1a(&mut self, c_rnd: Round) -> Verdict {
        if c_rnd < self.rnd {
            return Verdict::Refused { rnd: self.rnd };
        }
        self.rnd = c_rnd;
        Verdict::Accepted
    }

    /// The votes this acceptor reports in Phase 1B: those at instances ≥ `from`, as many as fit in
    /// `bytes_max` of values (at least one, so every piece makes progress). Returns them with the
    /// instance the report stops below: `Instance::MAX` when it holds every vote from `from` on.
    pub fn votes_from(&self, from: Instance, bytes_max: usize) -> (Vec<Vote>, Instance) {
        let mut votes = Vec::new();
        let mut bytes = 0;
        for (instance, slot) in self.slots.range_from(from) {
            let Some((v_rnd, v_vid, v_val)) = slot.vote.as_ref() else { continue };
            if !votes.is_empty() && bytes + v_val.bytes() > bytes_max {
                return (votes, instance);
            }
            bytes += v_val.bytes();
            votes.push(Vote { instance, v_rnd: *v_rnd, v_vid: *v_vid, v_val: v_val.clone() });
        }
        (votes, Instance::MAX)
    }

    /// Phase 2A (Task 4): vote for (`c_vid`, `c_val`) in `c_rnd` unless a higher round was promised.
    pub fn on_phase2a(
        &mut self,
        c_rnd: Round,
        instance: Instance,
        c_vid: Vid,
        c_val: &Batch,
    ) -> Verdict {
        if instance < self.trimmed_below {
            return Verdict::Trimmed;
        }
        if c_rnd < self.rnd {
            return Verdict::Refused { rnd: self.rnd };
        }
        self.rnd = c_rnd;
        self.change_slot(instance, |slot| slot.vote = Some((c_rnd, c_vid, c_val.clone())));
        Verdict::Accepted
    }

    /// Applies `change` to the slot of `instance` (made if missing), keeping `held_bytes` right.
    pub(crate) fn change_slot(&mut self, instance: Instance, change: impl FnOnce(&mut Slot)) {
        let slot = self.slots.get_or_insert_with(instance, Slot::empty);
        let before = slot.bytes();
        change(slot);
        self.held_bytes = self.held_bytes - before + slot.bytes();
    }

    /// Bytes of values the slots keep alive: per slot, the larger of its vote and its decision.
    pub fn held_bytes(&self) -> u64 {
        self.held_bytes
    }

    /// Whether this acceptor voted for `c_vid` in round `c_rnd` at `instance` (the M-Ring Phase 2B
    /// check, Alg. 2 Task 5: an acceptor passes the vote on only if it holds the value, not just its id).
    pub fn voted(&self, c_rnd: Round, instance: Instance, c_vid: Vid) -> bool {
        matches!(self.slots.get(instance), Some(Slot { vote: Some((r, v, _)), .. }) if *r == c_rnd && *v == c_vid)
    }

    /// The value of `c_vid` at `instance` if this acceptor holds it (voted or decided).
    pub fn value_of(&self, instance: Instance, c_vid: Vid) -> Option<Batch> {
        let slot = self.slots.get(instance)?;
        if let Some((vid, val)) = &slot.decided
            && *vid == c_vid
        {
            return Some(val.clone());
        }
        match &slot.vote {
            Some((_, vid, val)) if *vid == c_vid => Some(val.clone()),
            _ => None,
        }
    }

    /// Remembers the decision of `instance` so learners can fetch it (3.3.4).
    pub fn on_decision(&mut self, instance: Instance, c_vid: Vid, c_val: &Batch) {
        if instance < self.trimmed_below {
            return;
        }
        self.change_slot(instance, |slot| slot.decided = Some((c_vid, c_val.clone())));
    }

    /// The decision of `instance`, if known.
    pub fn decision(&self, instance: Instance) -> Option<(Vid, Batch)> {
        self.slots.get(instance)?.decided.clone()
    }

    /// Garbage collection (3.3.7): forget every instance below `below`.
    pub fn trim(&mut self, below: Instance) {
        if below <= self.trimmed_below {
            return;
        }
        self.trimmed_below = below;
        let dropped: u64 =
            self.slots.iter().take_while(|&(i, _)| i < below).map(|(_, s)| s.bytes()).sum();
        self.held_bytes -= dropped;
        self.slots.remove_below(below);
    }

    /// Garbage collection by memory: forgets the lowest instances, never `ceiling` or above, while
    /// the slots hold more than `bytes_max` of values. Returns the trim point it left.
    pub fn trim_to_bytes(&mut self, bytes_max: u64, ceiling: Instance) -> Instance {
        while self.held_bytes > bytes_max
            && let Some(lowest) = self.slots.first_key()
            && lowest < ceiling
        {
            let slot = self.slots.remove(lowest).expect("the first key is there");
            self.held_bytes -= slot.bytes();
            self.trimmed_below = lowest + 1;
        }
        self.trimmed_below
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vid(seq: u64) -> Vid {
        Vid { rnd: Round(1 << 16), seq }
    }

    #[test]
    fn held_bytes_follow_votes_decisions_and_trims() {
        use super::super::types::{Value, ValueId};
        let batch = |n: usize| {
            Batch::new(vec![Value {
                id: ValueId { proposer: 0, incarnation: 0, seq: n as u64 },
                payload: bytes::Bytes::from(vec![0; n]),
            }])
        };
        let mut a = AcceptorState::default();
        for i in 0..10 {
            a.on_phase2a(Round(1), i, vid(i), &batch(100));
        }
        let one = batch(100).bytes() as u64;
        assert_eq!(a.held_bytes(), 10 * one);
        // The decision of the batch voted for adds nothing; a larger one counts instead.
        a.on_decision(3, vid(3), &batch(100));
        a.on_decision(4, vid(44), &batch(300));
        assert_eq!(a.held_bytes(), 9 * one + batch(300).bytes() as u64);
        a.trim(2);
        assert_eq!(a.held_bytes(), 7 * one + batch(300).bytes() as u64);
        // By memory: the lowest go until the rest fits, never at or above the ceiling.
        assert_eq!(a.trim_to_bytes(3 * one, 8), 7);
        assert_eq!(a.held_bytes(), 3 * one);
        assert_eq!(a.trim_to_bytes(0, 9), 9);
        assert_eq!((a.held_bytes(), a.trimmed_below), (one, 9));
    }

    #[test]
    fn phase2a_below_the_promise_is_refused() {
        let mut a = AcceptorState::default();
        assert_eq!(a.on_phase1a(Round(5 << 16)), Verdict::Accepted);
        assert_eq!(
            a.on_phase2a(Round(3 << 16), 0, vid(1), &Batch::empty()),
            Verdict::Refused { rnd: Round(5 << 16) }
        );
        assert!(a.votes_from(0, usize::MAX).0.is_empty());
        assert_eq!(a.on_phase1a(Round(4 << 16)), Verdict::Refused { rnd: Round(5 << 16) });
    }

    #[test]
    fn a_large_log_is_reported_in_pieces_of_bounded_bytes() {
        let mut a = AcceptorState::default();
        let value = super::super::types::Value {
            id: super::super::types::ValueId { proposer: 0, incarnation: 0, seq: 0 },
            payload: bytes::Bytes::from(vec![0u8; 82]),
        };
        let hundred_bytes = Batch::new(vec![value]);
        for i in [2, 3, 5, 8, 9] {
            a.on_phase2a(Round(1 << 16), i, vid(i), &hundred_bytes);
        }
        let (votes, below) = a.votes_from(0, 250);
        assert_eq!((votes.iter().map(|v| v.instance).collect::<Vec<_>>(), below), (vec![2, 3], 5));
        let (votes, below) = a.votes_from(below, 250);
        assert_eq!((votes.iter().map(|v| v.instance).collect::<Vec<_>>(), below), (vec![5, 8], 9));
        let (votes, below) = a.votes_from(below, 50);
        assert_eq!(
            (votes.len(), below),
            (1, Instance::MAX),
            "one vote even when it alone exceeds the bound"
        );
    }

    #[test]
    fn trimming_forgets_votes_and_refuses_old_instances() {
        let mut a = AcceptorState::default();
        for i in 0..10 {
            a.on_phase2a(Round(1 << 16), i, vid(i), &Batch::empty());
        }
        a.trim(6);
        assert_eq!(a.votes_from(0, usize::MAX).0.len(), 4);
        assert_eq!(a.on_phase2a(Round(1 << 16), 3, vid(3), &Batch::empty()), Verdict::Trimmed);
    }
}
