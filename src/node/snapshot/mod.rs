//! Learner snapshots and state transfer (thesis 3.3.7).
//!
//! Acceptors forget decided instances once f+1 learners applied them; a learner that falls behind
//! that point "can be brought up to date by communicating with a learner with a sufficiently recent
//! version". Here a snapshot is what such a learner hands over: the application's state at an
//! instance boundary and the learner's own state there ([`LearnerCheckpoint`]: the version and the
//! ids delivered, so repeats after it are still recognised).
//!
//! - [`file`](mod@file): one snapshot on disk, checksummed, replaced atomically.
//! - [`store`]: a node's snapshot directory. The application stores a snapshot at every
//!   checkpoint the node hands it ([`Node::store_snapshot`](super::Node::store_snapshot)); only
//!   then does the node report that version, so garbage collection never trims an instance that
//!   fewer than f+1 stored snapshots cover.
//! - [`server`]: a thread that serves the stored snapshot at the node's `snapshot` endpoint.
//! - [`fetch`]: a learner turned away by every acceptor asks the learners whose reported version
//!   is high enough, highest first, for a snapshot at or above the trim point.
//! - [`transfer`]: the bytes between the two.
//!
//! The transfer runs beside the protocol, never on the node thread: on its own TCP endpoint,
//! served by a thread of its own, fetched by a thread of its own, both through one 64 KiB buffer
//! (a snapshot of any size costs that much memory), every chunk checksummed and the whole file
//! checked again before it replaces the learner's own. The node thread only starts the fetch and,
//! when it is done, installs the fetched checkpoint in the protocol core
//! ([`RingNode::install_snapshot`](crate::proto::RingNode::install_snapshot)) and puts a marker in
//! the delivery queue, between the last batch below the snapshot and the first above it: the
//! application restores its state from the snapshot there
//! ([`Node::take_installed_snapshot`](super::Node::take_installed_snapshot)), then goes on
//! applying deliveries.
//!
//! A fetched snapshot becomes the learner's own stored snapshot before it is installed: a crash
//! right after leaves a process that restarts from it, and the learner can serve it in turn.
//!
//! [`LearnerCheckpoint`]: crate::proto::LearnerCheckpoint

pub mod fetch;
pub mod file;
pub mod server;
pub mod store;
pub mod transfer;

pub use file::{Snapshot, SnapshotError, SnapshotState};
pub use store::SnapshotStore;

/// Bytes of the one buffer a snapshot goes through, on disk and on the wire.
pub const CHUNK_BYTES: usize = 64 * 1024;

#[cfg(test)]
mod tests;
