//! What a protocol core asks its driver to do. The driver (the reactor in `io`, or the simulator)
//! drains these after every input and performs them in order.

use super::durable::Durable;
use super::learner_checkpoint::LearnerCheckpoint;
use super::msg::Msg;
use super::types::{Batch, Instance, NodeId, Tick};

/// One output of a [`RingNode`](super::RingNode).
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Action {
    /// Send `msg` to process `to` (never to the process itself: the core handles its own messages).
    Send { to: NodeId, msg: Msg },
    /// ip-multicast `msg` to every acceptor and learner of the ring (M-Ring Paxos). The core has already
    /// processed its own copy, so the driver must not loop it back.
    Multicast { msg: Msg },
    /// Deliver `values`, decided in `instance`, to the application, in the batch's order. Values
    /// arrive in the one total order every learner shares, each exactly once: a value decided a second
    /// time (its proposer resent it) is left out, and an instance with nothing new (a no-op) yields no
    /// action. One action per instance, not per value, so small values cost the driver little.
    Deliver { instance: Instance, values: Batch },
    /// Write the record to the acceptor's stable storage (Recoverable Ring Paxos, see `durable`). Every
    /// action after it waits until it is durable; emitted only with `NodeConfig::stable_storage`.
    Persist(Durable),
    /// The learner's state after every `Deliver` before this one (`learner_checkpoint`), for the
    /// application to store with its own; emitted only with
    /// `NodeConfig::checkpoint_interval_instances`.
    Checkpoint(Box<LearnerCheckpoint>),
    /// Call `on_tick` at `at` (the latest `SetTimer` replaces earlier ones).
    SetTimer { at: Tick },
    /// The learner needs instance `next_instance`, but every acceptor has garbage-collected everything
    /// below `trimmed_below` (3.3.7): only state transfer from another learner can bring it up to date.
    /// The learner stops asking acceptors for those instances.
    NeedsStateTransfer { next_instance: Instance, trimmed_below: Instance },
}
