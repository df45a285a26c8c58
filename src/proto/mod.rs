//! Sans-IO protocol cores: Ring Paxos (thesis ch. 3) as pure state machines.
//!
//! Nothing in here opens a socket, reads a clock, spawns a thread or uses `unsafe`: time arrives as an
//! argument and every effect leaves as an [`Action`]. The same code runs under the reactor in `io`
//! and under the deterministic simulator in `sim`. See [`RingNode`] for the driving contract.
//!
//! One concept per file: the acceptor's state and rules (`acceptor`), Phase 1 value selection
//! (`phase1`), the coordinator's window and batching (`coordinator`, `flow_control`), learning and
//! gap detection (`learner`, `dedup`), proposing (`proposer`), failure suspicion
//! (`failure_detector`), ring layout (`ring_layout`), Multi-Ring Paxos' skip instances (`skip`), per-instance state in reused buffers
//! (`instance_map`), and the node that ties them together (`ring_node`).

#![forbid(unsafe_code)]

pub mod acceptor;
pub mod action;
pub mod batch;
pub mod batch_arena;
pub mod config;
pub mod coordinator;
pub mod decided_ids;
pub mod dedup;
pub mod durable;
pub mod failure_detector;
pub mod flow_control;
pub mod instance_map;
pub mod learner;
pub mod learner_checkpoint;
pub mod msg;
pub mod phase1;
pub mod proposal_store;
pub mod proposer;
pub mod ring_layout;
pub mod ring_node;
pub mod skip;
pub mod types;

#[cfg(test)]
pub(crate) mod arb;
#[cfg(test)]
mod handler_tests;
#[cfg(test)]
mod hostile_input_tests;

pub use acceptor::AcceptorState;
pub use action::Action;
pub use config::{ClusterConfig, ConfigError, NodeConfig, Protocol, ValueChoice};
pub use durable::Durable;
pub use learner_checkpoint::LearnerCheckpoint;
pub use msg::{Carried, Msg};
pub use proposer::Backpressure;
pub use ring_node::{Boot, Counters, RingNode};
pub use types::*;
