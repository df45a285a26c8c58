//! Checkpoints of a replica's execution: the state a restarted replica goes on from (thesis
//! 3.3.7's learner snapshots, carried over to a replicated service; chapter 6 leaves recovery
//! out).
//!
//! **Where.** A checkpoint is taken where the replicas' own *checkpoint request* is ordered: a
//! request batch of [`REPLICA_CLIENT`], multicast to g_all (SMR, sP-SMR: the total order). It
//! depends on every command, so under every model the workers meet at it exactly as at any g_all
//! command, and lane 0 takes the checkpoint while the others wait. Every replica thus takes it
//! at the same place in the order, over the same state: checkpoints are deterministic, and a
//! replica may take one from any other.
//!
//! **What.** The service's state ([`Service::snapshot`](super::Service::snapshot)), each lane's
//! client tables (exactly-once must survive the restart), and each lane's *position*: where its
//! [`WorkSource`](super::WorkSource) stands in the order, as bytes the source itself writes and
//! reads back (for the rings: every ring's cursor, the merge with what it queued, and the batch
//! that holds the checkpoint request, from its start). Commands of that batch before the request
//! are delivered again after a restore, and the client tables answer them as the copies they are.
//!
//! The [`Checkpointer`] gets it on lane 0's thread, with every worker waiting: it should hand the
//! bytes on (to disk, to the rings' garbage collection) and return.
//!
//! **Cost.** The state is copied while every worker waits, so each checkpoint pauses execution
//! for as long as the copy takes, which grows with the state (a walk of every pair of the
//! store). The interval (`checkpoint_interval_ms` in the service file) trades that pause against
//! how much a restarted replica must catch up on; a copy-on-write state would remove the pause.

use std::sync::Mutex;

use super::request::ClientId;

/// The client id of the replicas' own checkpoint requests (clients are refused it).
pub const REPLICA_CLIENT: ClientId = u64::MAX;

/// One lane's part of a checkpoint.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LanePart {
    /// Its client table (`ClientTable::encode`).
    pub table: Vec<u8>,
    /// g_all's table (lane 0's; empty tables elsewhere).
    pub table_all: Vec<u8>,
    /// Its source's position (`WorkSource::position`).
    pub position: Vec<u8>,
}

/// A replica's execution at a checkpoint request.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Checkpoint {
    /// The service's state.
    pub service: Vec<u8>,
    /// Per lane, in lane order.
    pub lanes: Vec<LanePart>,
}

/// Takes the checkpoints (see the module docs).
pub trait Checkpointer: Send + Sync + std::fmt::Debug {
    fn checkpoint(&self, checkpoint: Checkpoint);
}

/// Where lanes other than 0 leave their parts before they wait at a checkpoint request.
#[derive(Debug)]
pub(crate) struct Parts(Vec<Mutex<Option<LanePart>>>);

impl Parts {
    pub fn new(lanes: usize) -> Parts {
        Parts((0..lanes).map(|_| Mutex::new(None)).collect())
    }

    pub fn put(&self, lane: usize, part: LanePart) {
        *self.0[lane].lock().unwrap_or_else(|p| p.into_inner()) = Some(part);
    }

    /// Lane `lane`'s part; every lane left one before it arrived at the rendezvous.
    pub fn take(&self, lane: usize) -> LanePart {
        let part = self.0[lane].lock().unwrap_or_else(|p| p.into_inner()).take();
        part.expect("a lane leaves its part before it arrives at a checkpoint request")
    }
}
