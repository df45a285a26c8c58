//! Multi-Ring Paxos (thesis chapter 5): atomic multicast from many rings of Ring Paxos, one per
//! group by default, merged deterministically at each learner so ordering scales with the rings.
//!
//! - [`config`]: the Multi-Ring file (rings, groups, subscriptions, λ, Δ, M).
//! - [`merge`]: the learners' deterministic merge (Algorithm 1, Task 4), pure.
//! - [`ring_stream`]: one ring's deliveries as the merge's turns (no-ops and skips included).
//! - [`load`]: the benchmark workload (`ringsmr local --protocol multiring`, `ringsmr node`).
//! - [`control`]: the control endpoint of a Multi-Ring process, over the transport of
//!   `node::control`'s, and [`bench`](mod@bench): `ringsmr bench` against such processes.
//! - [`node`]: a process: one Ring Paxos node per ring on a core of its own, `multicast(group,
//!   bytes)`, and the merged delivery stream.
//!
//! The coordinators' skip instances (Algorithm 1, Task 2) live in the ring's core
//! (`proto::skip`), since every coordinator of a ring must be able to propose them.

pub mod bench;
pub mod config;
pub mod control;
pub mod load;
pub mod merge;
pub mod merged_stream;
pub mod node;
pub mod ring_stream;

pub use config::{GroupId, MultiRingFile, ProcessId, RingId};
pub use merge::{Decided, Merge, MergePosition, QueueFull};
pub use merged_stream::{TapMerge, TapMergePosition};
pub use node::{
    MergedBatch, MultiRingError, MultiRingNode, MultiRingOptions, MultiRingReport,
    MulticastDelivery, MulticastError,
};
pub use ring_stream::RingCursor;
#[cfg(test)]
mod tests;
