//! Invariant checkers over what a simulated run delivered (thesis 2.2.3, atomic broadcast):
//!
//! - [`total_order`]: uniform agreement and uniform total order: every learner's delivered sequence
//!   is a prefix of one sequence, so no instance is decided two ways.
//! - [`integrity`]: only proposed values, with the payload they were proposed with, each at most once;
//!   skip instances (Multi-Ring Paxos) only where the ring proposes them, each alone in its instance.
//! - [`liveness`]: after the heal phase, every value of a correct proposer reached every correct
//!   learner.
//!
//! Each checker reads a [`History`] and reports [`Violation`]s; one file per invariant.

pub mod integrity;
pub mod liveness;
pub mod total_order;

use std::collections::HashMap;
use std::fmt;

use bytes::Bytes;

use crate::proto::{Instance, NodeId, Tick, ValueId};
use crate::wire::Kind;

/// What one incarnation of one learner delivered, in order. A learner that installs a snapshot by
/// state transfer (3.3.7) goes on in a new log of the same incarnation, starting with the donor's
/// state: the deliveries before the install stay checked for order and integrity in this one.
#[derive(Debug, Clone)]
pub struct LearnerLog {
    pub node: NodeId,
    pub incarnation: u32,
    pub delivered: Vec<(Instance, ValueId, Bytes)>,
    /// Alive at the end of the run (the last log of the last incarnation of a process that is up).
    pub alive_at_end: bool,
    /// Reported that only state transfer can bring it up to date.
    pub needs_state_transfer: bool,
}

/// Everything the checkers look at.
#[derive(Debug, Default)]
pub struct History {
    /// Every value ever proposed, with its payload.
    pub proposed: HashMap<ValueId, Bytes>,
    pub logs: Vec<LearnerLog>,
    /// Values whose proposer stayed up from the proposal to the end: these must be delivered.
    pub must_deliver: Vec<ValueId>,
    /// The ring's coordinators propose skip instances (Multi-Ring Paxos, `proto::skip`): learners
    /// deliver them as values of the reserved proposer, which nobody proposed.
    pub skip_instances: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Violation {
    /// Two learners delivered different values as the `position`-th delivery, in the same instance.
    Agreement { instance: Instance, learners: [(NodeId, u32); 2], values: [ValueId; 2] },
    /// Two learners' sequences diverge at `position` (different instances or one skipped a value).
    TotalOrder { position: usize, learners: [(NodeId, u32); 2] },
    /// A delivered value nobody proposed, or with another payload.
    NotProposed { learner: (NodeId, u32), value: ValueId },
    /// A value delivered twice by one learner.
    Duplicate { learner: (NodeId, u32), value: ValueId },
    /// A skip instance delivered with other values or with a payload: a coordinator decides a skip
    /// as an instance of its own, one value with nothing in it (`proto::skip`).
    MalformedSkip { learner: (NodeId, u32), instance: Instance },
    /// After the heal phase, a correct learner still misses values of correct proposers.
    Liveness { learner: NodeId, missing: usize, example: ValueId },
    /// The run panicked (a broken internal invariant); the panic's message. The run stopped there.
    Panicked { message: String },
    /// The run was stopped because messages multiplied beyond the bounds of its `SimConfig`
    /// (`in_flight_events_max`, `messages_max`): processes answering one message with several, or
    /// answering each other without end. `busiest` is the kind sent most.
    MessageStorm {
        at_us: Tick,
        messages_sent: u64,
        in_flight: usize,
        busiest: Kind,
        busiest_sent: u64,
    },
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Violation::Agreement { instance, learners, values } => write!(
                f,
                "agreement violated in instance {instance}: learner {:?} delivered {:?}, learner {:?} delivered {:?}",
                learners[0], values[0], learners[1], values[1]
            ),
            Violation::TotalOrder { position, learners } => {
                write!(
                    f,
                    "total order violated at delivery #{position} between learners {:?} and {:?}",
                    learners[0], learners[1]
                )
            }
            Violation::NotProposed { learner, value } => {
                write!(
                    f,
                    "integrity violated: learner {learner:?} delivered {value:?}, which was never proposed (or not with that payload)"
                )
            }
            Violation::Duplicate { learner, value } => {
                write!(f, "integrity violated: learner {learner:?} delivered {value:?} twice")
            }
            Violation::MalformedSkip { learner, instance } => write!(
                f,
                "integrity violated: learner {learner:?} delivered a skip in instance {instance} with other values or a payload"
            ),
            Violation::Panicked { message } => write!(f, "panicked: {message}"),
            Violation::MessageStorm { at_us, messages_sent, in_flight, busiest, busiest_sent } => {
                write!(
                    f,
                    "message storm: stopped at {at_us} µs after {messages_sent} messages with {in_flight} events in flight; {busiest:?} was sent {busiest_sent} times"
                )
            }
            Violation::Liveness { learner, missing, example } => write!(
                f,
                "liveness violated: after healing, learner {learner} still misses {missing} values of correct proposers, e.g. {example:?}"
            ),
        }
    }
}

/// Runs every checker.
pub fn check_all(history: &History) -> Vec<Violation> {
    let mut v = total_order::check(history);
    v.extend(integrity::check(history));
    v.extend(liveness::check(history));
    v
}
