//! Replicated services as processes: a replica (its rings, its workers, its clients' endpoint)
//! and the client library, over Multi-Ring Paxos (thesis chapter 6).
//!
//! **Why a layer of its own.** The design notes give `smr` the execution models and let it reach
//! the ordering only through a small delivery interface. So `smr` stays free of sockets and rings:
//! its workers take batches from a `WorkSource` and answer into a `ReplySink`, which is how the
//! threaded tests drive every model with MPL up to 8. This module is where those two ends meet
//! the running system: delivery taps of the rings (`node`, `multiring`), the TCP endpoint for
//! clients, and the client library. `ringsmr local --service kv` ([`kv_local`]) runs it all.
//!
//! - [`client`]: the client library.
//! - [`kv_local`]: the key-value store on loopback, with closed-loop clients.
//! - [`replica`]: a replica process; [`front`]: its clients' TCP endpoint; [`replies`]: the
//!   replies' way from the workers to it; [`source`]: a worker's merged deliveries.
//! - [`snapshot`]: a replica's checkpoints on disk and between replicas; [`rejoin`]: a replica
//!   that starts from the newest one, and comes back from a newer one when it falls behind.

pub mod client;
pub mod config;
pub mod front;
pub mod kv_load;
pub mod kv_local;
pub mod rejoin;
pub mod replica;
pub mod replies;
pub(crate) mod restore;
pub mod snapshot;
pub(crate) mod snapshot_writer;
pub mod source;
pub mod stream_io;

pub use client::{Client, ClientError, ClientOptions, ClientStats, SubmitError};
pub use replica::{Replica, ReplicaError, ReplicaReport, ReplicaSpec, ReplicaStart, SnapshotSpec};
