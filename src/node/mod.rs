//! `node`: runs the protocol cores on the reactors. The cluster file ([`config`]), the links between
//! processes (`links`), the node thread that drives one [`RingNode`](crate::proto::RingNode) with one
//! [`Reactor`](crate::io::Reactor) (`runtime`), the embedding API ([`Node`]), and the benchmark
//! workload ([`load`]) with its raw-transport [`baseline`].

pub mod baseline;
pub mod checksum;
pub mod config;
mod handle;
pub mod histogram;
mod links;
pub mod load;
mod runtime;

pub use checksum::StreamChecksum;
pub use config::{ClusterFile, ClusterFileError, ProtocolName, Role};
pub use handle::{
    DeliveredBatch, Delivery, Node, NodeError, NodeOptions, NodeReport, ProposeBackpressure,
};
pub use load::{LoadReport, LoadSpec, run_local};
pub use runtime::RuntimeCounters;

#[cfg(test)]
mod tests;
