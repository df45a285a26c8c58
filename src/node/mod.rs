//! `node`: runs the protocol cores on the reactors. The cluster file ([`config`]), the links between
//! processes (`links`), the node thread that drives one [`RingNode`](crate::proto::RingNode) with one
//! [`Reactor`](crate::io::Reactor) (`runtime`), the embedding API ([`Node`]), the benchmark
//! workload ([`load`]) with its raw-transport [`baseline`], the control endpoint of a node process
//! ([`control`]) and the benchmark of a cluster of node processes driven through it
//! ([`bench`](mod@bench)); `control_transport` is the line-delimited JSON both ends of a control
//! endpoint speak, whatever the process (a Multi-Ring process serves its own commands over it).

pub mod baseline;
pub mod bench;
pub mod checksum;
pub mod config;
pub mod control;
pub(crate) mod control_transport;
mod delivery_tap;
mod durability;
mod handle;
pub mod histogram;
mod links;
pub mod load;
mod multicast_link;
pub(crate) mod proposal_stamps;
mod runtime;
pub mod snapshot;
mod state_transfer;

pub use bench::{BenchError, BenchSpec, run_bench};
pub use checksum::{StreamChecksum, StreamTrace};
pub use config::{ClusterFile, ClusterFileError, ProtocolName, Role};
pub use control::{ControlError, ControlServer};
pub use delivery_tap::{DeliveryTap, StableVersions};
pub use handle::{
    DeliveredBatch, Delivery, Marker, Node, NodeError, NodeOptions, NodeReport, ProposeBackpressure,
};
pub use load::{LoadReport, LoadSpec, NodeLoadReport, Workload, run_local};
pub use runtime::RuntimeCounters;

#[cfg(test)]
mod tests;
