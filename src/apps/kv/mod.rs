//! The key-value store of the thesis' experiments (6.5.2): an in-memory B+-tree of 8-byte keys
//! and 8-byte values ([`btree`]), replicated as a [`Service`](crate::smr::Service) ([`store`]),
//! its commands as bytes ([`command`]), and the benchmarks' workloads ([`workload`]).

pub mod btree;
pub mod command;
pub mod store;
pub mod workload;

pub use store::KvStore;

#[cfg(test)]
mod tests;
