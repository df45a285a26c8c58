//! Replicated services on Multi-Ring Paxos (thesis chapter 6; optimistic P-SMR): the execution
//! layer between the ordering of commands and the service that executes them.
//!
//! - [`cdep`]: the command dependencies a service declares (C-Dep) and the Command-to-Groups
//!   function derived from them and the multiprogramming level (C-G, MPL).
//! - [`service`]: the `StateMachine` a service implements ([`Service`]).
//! - [`request`]: request batches (what clients multicast) and replies.
//! - [`client_table`]: exactly-once execution of retried commands.
//! - [`worker`]: a replica's worker thread, Algorithm 1's server side for every execution model,
//!   and [`rendezvous`], its synchronous mode.
//! - [`exec`]: the execution models (SMR, sP-SMR, P-SMR, opt-PSMR) and their threads; sP-SMR's
//!   scheduler hands batches to its workers through [`handoff`] queues.
//! - [`splitmix`]: the workloads' generator.
//! - [`linearizability`]: the checker the service tests judge recorded client histories with.

pub mod byte_reader;
pub mod cdep;
pub mod checkpoint;
pub mod client_table;
pub mod exec;
pub mod handoff;
pub mod linearizability;
pub mod rendezvous;
pub mod request;
pub mod service;
pub mod splitmix;
pub mod worker;

#[cfg(test)]
pub(crate) mod testkit;
#[cfg(test)]
mod tests;

pub use cdep::{
    CDep, CDepError, ClassId, CommandToGroups, DependsWhen, Destination, KeyPartition, KeyRange,
    Signature,
};
pub use client_table::ClientTable;
pub use exec::{ExecModel, ExecReport, ExecStart, Execution, Inputs};
pub use request::{ClientId, Reply, RequestBatch, Status};
pub use service::{BadCommand, Conflict, Service, ServiceSnapshotError};
pub use worker::{Delivered, ReplySink, Scope, Shared, WorkSource, Worker, WorkerStats};
