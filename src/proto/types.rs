//! The small shared vocabulary of Ring Paxos (thesis ch. 2 and 3.2): processes, rounds, instances,
//! value ids, values, batches and rings.
//!
//! These types are plain data: `proto`, `wire` and `sim` all speak them, and nothing here knows about
//! sockets or clocks.

use std::fmt;

use bytes::Bytes;

/// Virtual or real time in microseconds. The protocol never reads a clock: every input carries `now`.
pub type Tick = u64;

/// A process of the cluster (thesis 2.1: p ∈ Π). Dense small integers, assigned by the configuration.
pub type NodeId = u16;

/// The largest number of processes a ring can hold. U-Ring Paxos places *every* process on the ring,
/// so this also bounds a U-Ring cluster. A ring is carried inline in the messages that travel it
/// (see [`Ring`]), so the bound keeps those messages small and `Ring` `Copy`.
pub const RING_MEMBERS_MAX: usize = 32;

/// The bit width reserved for the node id inside a round number.
const ROUND_NODE_BITS: u32 = 16;

/// A Paxos round (thesis 3.2: c-rnd, rnd, v-rnd). Round 0 means "none".
///
/// Rounds must be unique per coordinator ("increase c-rnd to an arbitrary unique value"): the low 16
/// bits hold the id of the node that owns the round and the high bits a counter, so two coordinators
/// can never pick the same round and rounds stay totally ordered.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Round(pub u64);

impl Round {
    /// The "no round" value every acceptor starts with (rnd = v-rnd = 0).
    pub const ZERO: Round = Round(0);

    /// The smallest round owned by `owner` that is strictly greater than `above`; `None` when the
    /// counter is exhausted. Correct processes never get there (2⁴⁸ rounds), but a damaged message
    /// can carry such a round; wrapping around would hand out a *lower* round, which every acceptor
    /// refuses, and a coordinator refused by its own acceptor would start the next round at once,
    /// without end.
    pub fn next_owned(above: Round, owner: NodeId) -> Option<Round> {
        let counter = (above.0 >> ROUND_NODE_BITS) + 1;
        (counter < 1 << (u64::BITS - ROUND_NODE_BITS))
            .then(|| Round((counter << ROUND_NODE_BITS) | u64::from(owner)))
    }

    /// The node that owns (coordinates) this round.
    pub fn owner(self) -> NodeId {
        (self.0 & ((1 << ROUND_NODE_BITS) - 1)) as NodeId
    }
}

impl fmt::Debug for Round {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "r{}.{}", self.0 >> ROUND_NODE_BITS, self.owner())
    }
}

/// A consensus instance: one slot of the totally ordered sequence (atomic broadcast as a sequence of
/// consensus instances, thesis 2.2.3). Instances are numbered from 0.
pub type Instance = u64;

/// The unique identifier the coordinator gives to the value it proposes (thesis 3.3.2, c-vid). Ring
/// Paxos reaches consensus on value ids; the value itself travels by multicast or along the ring.
///
/// Uniqueness: `rnd` is the round of the coordinator that created the id (rounds are unique per
/// coordinator) and `seq` counts within that round. A value re-proposed by a later coordinator after
/// Phase 1 keeps its original id.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Vid {
    pub rnd: Round,
    pub seq: u64,
}

impl fmt::Debug for Vid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "vid({:?}#{})", self.rnd, self.seq)
    }
}

/// The identity of one application value, chosen by its proposer. Learners use it to deliver each value
/// at most once (uniform integrity, thesis 2.2.3) although a proposer may send it again after a timeout.
///
/// `incarnation` changes every time the proposer's process restarts, so a restarted proposer that counts
/// `seq` from zero again is not mistaken for a duplicate.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct ValueId {
    pub proposer: NodeId,
    pub incarnation: u32,
    pub seq: u64,
}

/// The identity of one proposal batch as its proposer formed it: the id of its first value and how many
/// values it holds. A proposer numbers its values consecutively and never regroups a batch it resends,
/// so equal ids mean equal batches. U-Ring Paxos orders proposals by this id once they have travelled
/// the ring (see `proposal_store`).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct ProposalId {
    pub first: ValueId,
    pub count: u32,
}

/// One application value with its identity.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Value {
    pub id: ValueId,
    pub payload: Bytes,
}

impl Value {
    /// The bytes this value occupies in a batch: payload plus its id and length prefix (see `wire`).
    pub fn batch_bytes(&self) -> usize {
        VALUE_OVERHEAD_BYTES + self.payload.len()
    }
}

pub use super::batch::{BadRegion, Batch, BatchBuilder, IntoValues};

/// Bytes a value adds to a batch beyond its payload: proposer (2) + incarnation (4) + seq (8) + length (4).
pub const VALUE_OVERHEAD_BYTES: usize = 18;

/// The logical directed ring of one round (thesis 3.3.2 and 3.3.3). The coordinator lays it out before
/// Phase 1 and it is fixed for the round; messages that travel the ring carry it, so a process never
/// needs to remember rings of past rounds.
///
/// - M-Ring Paxos: f+1 acceptors, the coordinator *last*.
/// - U-Ring Paxos: every process; the coordinator *first*, followed by the f other acceptors of the
///   m-quorum, then everybody else.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Ring {
    len: u8,
    members: [NodeId; RING_MEMBERS_MAX],
}

impl Ring {
    /// Builds a ring; `None` if it is empty, longer than [`RING_MEMBERS_MAX`] or names a process twice.
    pub fn new(members: &[NodeId]) -> Option<Ring> {
        if members.is_empty() || members.len() > RING_MEMBERS_MAX {
            return None;
        }
        for (i, m) in members.iter().enumerate() {
            if members[..i].contains(m) {
                return None;
            }
        }
        let mut ring = Ring { len: members.len() as u8, members: [0; RING_MEMBERS_MAX] };
        ring.members[..members.len()].copy_from_slice(members);
        Some(ring)
    }

    pub fn members(&self) -> &[NodeId] {
        &self.members[..usize::from(self.len)]
    }

    pub fn len(&self) -> usize {
        usize::from(self.len)
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn contains(&self, node: NodeId) -> bool {
        self.members().contains(&node)
    }

    pub fn position(&self, node: NodeId) -> Option<usize> {
        self.members().iter().position(|&m| m == node)
    }

    /// successor(p, ring); `None` if p is not on the ring.
    pub fn successor(&self, node: NodeId) -> Option<NodeId> {
        let i = self.position(node)?;
        Some(self.members()[(i + 1) % self.len()])
    }

    /// predecessor(p, ring); `None` if p is not on the ring.
    pub fn predecessor(&self, node: NodeId) -> Option<NodeId> {
        let i = self.position(node)?;
        Some(self.members()[(i + self.len() - 1) % self.len()])
    }

    pub fn first(&self) -> NodeId {
        self.members[0]
    }

    pub fn last(&self) -> NodeId {
        self.members[self.len() - 1]
    }
}

impl fmt::Debug for Ring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ring{:?}", self.members())
    }
}

/// One acceptor's vote as reported in Phase 1B: (instance, v-rnd, v-vid, v-val).
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Vote {
    pub instance: Instance,
    pub v_rnd: Round,
    pub v_vid: Vid,
    pub v_val: Batch,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounds_are_unique_per_owner_and_increase() {
        let r1 = Round::next_owned(Round::ZERO, 3).unwrap();
        let r2 = Round::next_owned(r1, 1).unwrap();
        assert!(r2 > r1);
        assert_eq!(r1.owner(), 3);
        assert_eq!(r2.owner(), 1);
        assert_ne!(Round::next_owned(r1, 2), Round::next_owned(r1, 1));
    }

    #[test]
    fn an_exhausted_round_counter_gives_no_round_rather_than_wrap() {
        let last = Round(u64::MAX - 5);
        assert_eq!(Round::next_owned(last, 2), None);
        let before_last = Round(((1 << 48) - 2) << 16 | 7);
        assert_eq!(Round::next_owned(before_last, 2), Some(Round(((1 << 48) - 1) << 16 | 2)));
    }

    #[test]
    fn ring_navigation_wraps() {
        let ring = Ring::new(&[4, 7, 2]).unwrap();
        assert_eq!(ring.successor(2), Some(4));
        assert_eq!(ring.predecessor(4), Some(2));
        assert_eq!(ring.successor(9), None);
        assert!(Ring::new(&[1, 1]).is_none());
        assert!(Ring::new(&[]).is_none());
    }
}
