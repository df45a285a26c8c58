//! proptest strategies for the protocol's messages, shared by the codec's property tests (`wire`) and
//! the core's hostile-input tests.
//!
//! [`Bounds`] says how wild the values are: [`Bounds::ANY`] draws every field from its whole type (what a
//! codec must survive), [`Bounds::cluster`] keeps node ids, ring members and instance numbers inside a
//! small cluster, so a core fed such messages reaches its deeper states instead of dropping everything
//! at the first check.

use bytes::Bytes;
use proptest::collection::{btree_set, vec};
use proptest::prelude::*;

use super::decided_ids::{DECIDED_IDS_PER_PACKET_MAX, DecidedIds};
use super::msg::{Carried, Msg};
use super::types::{
    Batch, Instance, NodeId, ProposalId, RING_MEMBERS_MAX, Ring, Round, Value, ValueId, Vid, Vote,
};

/// The ranges values are drawn from.
#[derive(Clone, Copy, Debug)]
pub struct Bounds {
    /// Node ids (senders, ring members, proposers, round owners) are below this.
    pub nodes: u16,
    /// Instance numbers and round counters are below this.
    pub instances: u64,
}

impl Bounds {
    /// Every field over its whole type.
    pub const ANY: Bounds = Bounds { nodes: u16::MAX, instances: u64::MAX };

    /// A cluster of `nodes` processes that has reached at most instance `instances`.
    pub fn cluster(nodes: u16, instances: u64) -> Bounds {
        Bounds { nodes, instances }
    }

    fn node(self) -> impl Strategy<Value = NodeId> {
        0..self.nodes.max(1)
    }

    fn instance(self) -> impl Strategy<Value = Instance> {
        0..self.instances.max(1)
    }
}

pub fn arb_round(b: Bounds) -> impl Strategy<Value = Round> {
    if b.instances == u64::MAX {
        any::<u64>().prop_map(Round).boxed()
    } else {
        (b.instance(), b.node())
            .prop_map(|(counter, owner)| Round(counter << 16 | u64::from(owner)))
            .boxed()
    }
}

pub fn arb_vid(b: Bounds) -> impl Strategy<Value = Vid> {
    (arb_round(b), b.instance()).prop_map(|(rnd, seq)| Vid { rnd, seq })
}

pub fn arb_value(b: Bounds) -> impl Strategy<Value = Value> {
    (b.node(), any::<u32>(), b.instance(), vec(any::<u8>(), 0..300)).prop_map(
        |(proposer, incarnation, seq, payload)| Value {
            id: ValueId { proposer, incarnation, seq },
            payload: Bytes::from(payload),
        },
    )
}

pub fn arb_batch(b: Bounds) -> impl Strategy<Value = Batch> {
    vec(arb_value(b), 0..6).prop_map(Batch::new)
}

/// A value carried whole, or named by a proposal id of 1 or more values.
pub fn arb_carried(b: Bounds) -> impl Strategy<Value = Carried> {
    prop_oneof![
        arb_batch(b).prop_map(Carried::Value),
        (b.node(), any::<u32>(), b.instance(), 1..=u32::MAX).prop_map(
            |(proposer, incarnation, seq, count)| Carried::Proposal(ProposalId {
                first: ValueId { proposer, incarnation, seq },
                count,
            })
        ),
    ]
}

/// 1..=32 distinct members (at most `b.nodes`) in random order. (A BTreeSet rather than a HashSet
/// keeps generation deterministic for a given seed; the shuffle restores arbitrary order.)
pub fn arb_ring(b: Bounds) -> impl Strategy<Value = Ring> {
    let members_max = RING_MEMBERS_MAX.min(usize::from(b.nodes.max(1)));
    btree_set(b.node(), 1..=members_max)
        .prop_map(|members| members.into_iter().collect::<Vec<_>>())
        .prop_shuffle()
        .prop_map(|members| Ring::new(&members).expect("distinct, 1..=32 members"))
}

pub fn arb_vote(b: Bounds) -> impl Strategy<Value = Vote> {
    (b.instance(), arb_round(b), arb_vid(b), arb_batch(b))
        .prop_map(|(instance, v_rnd, v_vid, v_val)| Vote { instance, v_rnd, v_vid, v_val })
}

/// Any message, its fields drawn within `b`. (`votes_below`, `to` and `trimmed_below` may also be
/// `Instance::MAX`, the value "everything" takes on the wire.)
pub fn arb_msg(b: Bounds) -> impl Strategy<Value = Msg> {
    let instance_or_all = prop_oneof![4 => b.instance(), 1 => Just(Instance::MAX)];
    prop_oneof![
        (arb_batch(b), arb_round(b), any::<u8>())
            .prop_map(|(values, via_rnd, ttl)| Msg::Proposal { values, via_rnd, ttl }),
        (arb_round(b), b.instance(), arb_ring(b)).prop_map(|(c_rnd, from, ring)| Msg::Phase1A {
            c_rnd,
            from,
            ring
        }),
        (arb_round(b), b.instance(), b.instance(), instance_or_all.clone(), vec(arb_vote(b), 0..4))
            .prop_map(|(rnd, from, trimmed_below, votes_below, votes)| Msg::Phase1B {
                rnd,
                from,
                trimmed_below,
                votes_below,
                votes
            }),
        arb_round(b).prop_map(|rnd| Msg::Nack { rnd }),
        (
            arb_round(b),
            b.instance(),
            arb_vid(b),
            arb_carried(b),
            arb_ring(b),
            vec((b.instance(), arb_vid(b)), 0..=DECIDED_IDS_PER_PACKET_MAX)
        )
            .prop_map(|(c_rnd, instance, c_vid, c_val, ring, decisions)| {
                let mut decided = DecidedIds::NONE;
                for (i, vid) in decisions {
                    decided.push(i, vid);
                }
                Msg::Phase2A { c_rnd, instance, c_vid, c_val, ring, decided }
            }),
        (arb_round(b), b.instance(), arb_vid(b), arb_ring(b)).prop_map(
            |(c_rnd, instance, c_vid, ring)| Msg::Phase2B { c_rnd, instance, c_vid, ring }
        ),
        (
            b.instance(),
            arb_vid(b),
            proptest::option::of(arb_carried(b)),
            proptest::option::of((arb_round(b), arb_ring(b)))
        )
            .prop_map(|(instance, c_vid, c_val, ring)| Msg::Decision {
                instance,
                c_vid,
                c_val,
                ring
            }),
        (b.instance(), instance_or_all.clone()).prop_map(|(from, to)| Msg::Retransmit { from, to }),
        instance_or_all.clone().prop_map(|trimmed_below| Msg::Trimmed { trimmed_below }),
        (any::<bool>(), instance_or_all.clone(), instance_or_all).prop_map(
            |(acceptor_ready, decided_below, applied_below)| Msg::Heartbeat {
                acceptor_ready,
                decided_below,
                applied_below,
            }
        ),
        (b.node(), any::<u32>()).prop_map(|(learner, backlog_instances)| Msg::FlowNotice {
            learner,
            backlog_instances
        }),
    ]
}
