//! Every message Ring Paxos processes exchange (thesis Alg. 2 and Alg. 3, plus 3.3.4–3.3.7).
//!
//! The same set serves both variants; where a message means something different in U-Ring and M-Ring
//! Paxos the variant's doc says so. `wire` encodes these; `proto` never sees bytes.

use super::decided_ids::DecidedIds;
use super::types::{Batch, Instance, NodeId, ProposalId, Ring, Round, Vid, Vote};

/// What a Phase 2A or a decision carries of the value it is about.
///
/// U-Ring Paxos sends every proposal once around the ring, from its proposer to the proposer's
/// predecessor, and every process keeps it (thesis 3.5.4: "the content of each message is sent n−1
/// times"); Phase 2A and the decision then name it by its [`ProposalId`] instead of carrying it a
/// second and third time. A process that does not hold the proposal named (a link dropped it, the
/// ring changed meanwhile) does not vote, and the coordinator's retransmission carries the value.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Carried {
    /// The value itself.
    Value(Batch),
    /// The proposal that travelled the ring ahead of this message and is the whole value.
    Proposal(ProposalId),
}

impl From<Batch> for Carried {
    fn from(batch: Batch) -> Carried {
        Carried::Value(batch)
    }
}

/// A protocol message.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Msg {
    /// Values on their way from a proposer to the coordinator (Alg. 3 Task 1). In U-Ring Paxos they are
    /// forwarded along the ring of round `via_rnd`, past that round's coordinator and on to the
    /// proposer's predecessor, and every process keeps them (see [`Carried`]); a process
    /// whose view of the ring is another round's sends them straight to the coordinator instead, and
    /// from then on they travel direct (`via_rnd` = `Round::ZERO`), so two processes with different
    /// views of the ring can never pass them back and forth. In M-Ring Paxos they always go direct.
    /// `ttl` counts the hops left, so processes with different views of who coordinates cannot bounce
    /// them forever either.
    Proposal { values: Batch, via_rnd: Round, ttl: u8 },

    /// Phase 1A for every instance from `from` onward, executed ahead of time by one exchange
    /// (thesis 3.2, "execute Phase 1 before a value is received"). It also announces the ring the
    /// coordinator will use in round `c_rnd`.
    Phase1A { c_rnd: Round, from: Instance, ring: Ring },

    /// Phase 1B: the promise for `rnd` and the votes the acceptor holds at instances in
    /// `from..votes_below`. `votes_below` is `Instance::MAX` when that is every vote; a log too large
    /// for one message is reported in pieces, and the coordinator asks again from `votes_below`.
    /// `trimmed_below` is the first instance the acceptor still keeps: everything under it was decided
    /// and garbage-collected (3.3.7), so the coordinator must not propose there.
    Phase1B {
        rnd: Round,
        from: Instance,
        trimmed_below: Instance,
        votes_below: Instance,
        votes: Vec<Vote>,
    },

    /// An acceptor refuses a Phase 1A/2A because it already takes part in the higher round `rnd`.
    /// Not in the thesis' pseudo-code; it lets a coordinator that lost its place learn so at once
    /// instead of after a timeout.
    Nack { rnd: Round },

    /// M-Ring Paxos: the coordinator ip-multicasts (PHASE 2A, c-rnd, c-val, c-vid) to the acceptors and
    /// the learners (Alg. 2 Task 3), with the ids of values it decided since its last packet in
    /// `decided` (thesis 3.5.2; see [`DecidedIds`]): each means what a [`Msg::Decision`] without a value
    /// would.
    ///
    /// U-Ring Paxos: the combined "PHASE 2A/2B" of Alg. 3: sent by the coordinator to its successor and
    /// forwarded by each acceptor that voted, so receiving it means every acceptor before the receiver
    /// on `ring` voted for `c_vid` in `c_rnd`. It names the value by its proposal id when the proposal
    /// travelled the ring ahead of it (see [`Carried`]), and carries it when it is resent. `decided`
    /// is empty (decisions travel the ring on their own).
    Phase2A {
        c_rnd: Round,
        instance: Instance,
        c_vid: Vid,
        c_val: Carried,
        ring: Ring,
        decided: DecidedIds,
    },

    /// M-Ring Paxos: the Phase 2B vote passed along the ring of acceptors to the coordinator (Alg. 2
    /// Task 5); receiving it means every acceptor before the receiver on `ring` voted.
    Phase2B { c_rnd: Round, instance: Instance, c_vid: Vid, ring: Ring },

    /// The decision of `instance`: value id `c_vid` was chosen.
    ///
    /// - M-Ring Paxos: ip-multicast by the coordinator with `c_val = None` (Alg. 2 Task 5), when no
    ///   Phase 2A leaves in the same step to carry it (see [`DecidedIds`]).
    /// - U-Ring Paxos: forwarded along the ring of round `ring.0` (Alg. 3 Task 5): with the value (or
    ///   the id of the proposal that is the value, see [`Carried`]) until the predecessor of the
    ///   coordinator, with the value id only after that. The round lets every process
    ///   on the ring keep its view of the current ring up to date, not only the f+1 acceptors that see
    ///   Phase 2A.
    /// - Retransmission (3.3.4): an acceptor answers a learner's [`Msg::Retransmit`] with the value and
    ///   no ring.
    Decision { instance: Instance, c_vid: Vid, c_val: Option<Carried>, ring: Option<(Round, Ring)> },

    /// A learner missing instances `from..to` asks its preferential acceptor for them (3.3.4).
    Retransmit { from: Instance, to: Instance },

    /// The answer of an acceptor that cannot give the first instance a [`Msg::Retransmit`] asked for:
    /// it garbage-collected everything below `trimmed_below` (3.3.7), or — when `trimmed_below` is not
    /// above the requested instance — it simply does not know that decision. A learner that every
    /// serving acceptor turns away, at least one of them because it trimmed, must be brought up to
    /// date by state transfer from another learner.
    Trimmed { trimmed_below: Instance },

    /// Sent periodically by every process to every other: liveness for the failure detector (3.3.5),
    /// the sender's progress for gap detection (3.3.4) and its version for garbage collection (3.3.7).
    Heartbeat {
        /// The sender serves as an acceptor (an acceptor that restarted without its state does not).
        acceptor_ready: bool,
        /// Instances below this are decided and known to the sender.
        decided_below: Instance,
        /// The sender's learner version: instances below it are applied (3.3.7).
        applied_below: Instance,
    },

    /// Flow control (3.3.6): learner `learner` holds `backlog_instances` decided instances it has not
    /// applied yet. Sent to an acceptor, which passes it on to the coordinator.
    FlowNotice { learner: NodeId, backlog_instances: u32 },
}

impl Msg {
    /// A short name for counters and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Msg::Proposal { .. } => "proposal",
            Msg::Phase1A { .. } => "phase1a",
            Msg::Phase1B { .. } => "phase1b",
            Msg::Nack { .. } => "nack",
            Msg::Phase2A { .. } => "phase2a",
            Msg::Phase2B { .. } => "phase2b",
            Msg::Decision { .. } => "decision",
            Msg::Retransmit { .. } => "retransmit",
            Msg::Trimmed { .. } => "trimmed",
            Msg::Heartbeat { .. } => "heartbeat",
            Msg::FlowNotice { .. } => "flow_notice",
        }
    }
}
