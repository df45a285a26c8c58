//! Multi-Ring Paxos (thesis chapter 5): atomic multicast from many rings of Ring Paxos, one per
//! group by default, merged deterministically at each learner so ordering scales with the rings.
//!
//! What exists so far: the learner's deterministic merge ([`merge`]). The groups' configuration,
//! skip instances at the coordinators and the node that runs a core per ring come next (issue 5).

pub mod merge;
pub mod ring_stream;

pub use merge::{Decided, Merge, QueueFull};
pub use ring_stream::RingCursor;
