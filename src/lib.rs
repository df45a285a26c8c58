//! ringsmr: high-performance state-machine replication on Ring Paxos.
//!
//! Layers (see the project's design notes): [`proto`] holds the sans-IO protocol cores, [`wire`] their
//! encoding, [`sim`] a deterministic simulator that runs the cores over a faulty network, [`io`] the
//! reactors, [`storage`] the acceptors' stable storage, [`node`] the process that drives the
//! cores with them, [`multiring`] Multi-Ring Paxos on top of it, and [`smr`] the replicated
//! services; [`chunks`] is the one small
//! type `proto` and `io` share (the buffers packets live in).

pub mod apps;
pub mod chunks;
pub mod io;
pub mod multiring;
pub mod node;
pub mod proto;
pub mod service;
pub mod sim;
pub mod smr;
pub mod storage;
#[cfg(test)]
mod temp_dir;
pub mod wire;
