//! `storage`: an acceptor's stable storage for Recoverable Ring Paxos (thesis 3.3.5, 3.5.5, 5.1).
//!
//! "When an acceptor replies to a Phase 1A or to a Phase 2A message, it must not forget its state
//! (rnd, v-rnd, v-val, v-vid) despite failures" (3.3.5). In-memory Ring Paxos gets that by assuming
//! that a majority of acceptors never fails; Recoverable Ring Paxos writes the state to disk before
//! replying. This module is the disk half: a segmented append-only log of the acceptor's promises,
//! votes and trim points ([`record`], [`segment`]), written with group commit ([`AcceptorLog`]),
//! and read back at start-up with every record checked ([`recovery`]): a write that a crash cut
//! short is dropped with a warning, anything else that is damaged stops the start with a message
//! that names the file and what to do.
//!
//! The log holds what `proto::AcceptorState` holds, in the order the acceptor changed it; recovery
//! replays it into one. The ring of a round is carried by the messages of that round, so it is not
//! logged (see `proto::acceptor`).

pub mod error;
pub mod log;
pub mod record;
pub mod recovery;
pub mod segment;

pub use error::StorageError;
pub use log::{AcceptorLog, OpenedLog, SEGMENT_BYTES_DEFAULT, SEGMENT_BYTES_MIN};

#[cfg(test)]
mod tests;
