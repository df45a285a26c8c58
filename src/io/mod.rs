//! `io`: the runtime under the protocol cores. One [`Reactor`] per core, driven by io_uring or — where
//! the kernel refuses it — epoll, with the same operations on both (one operation, two backends).
//!
//! ```text
//!   node thread (pinned to core k)
//!   ┌───────────────────────────────────────────────────────────┐
//!   │ Reactor ── completions ──> Handler (decode, RingNode input)│
//!   │    ^                                   │                   │
//!   │    └── flush (one batched submit) <── actions -> outboxes  │
//!   └───────────────────────────────────────────────────────────┘
//!   other threads ── SPSC ring + Waker ──> node thread
//! ```
//!
//! Everything is allocated at start-up ([`Limits`]): connection slots, each connection's receive and
//! send buffers ([`buffer`], [`outbuf`]), datagram buffers. All unsafe code of the crate lives in this module.

pub mod buffer;
mod epoll;
pub mod outbuf;
pub mod pin;
mod reactor;
pub mod scheduling;
mod slots;
pub mod socket;
mod uring;
mod waker;

#[cfg(test)]
mod tests;

pub use reactor::{
    BackendChoice, ConnId, Handler, IoError, Limits, ListenerId, Reactor, Received, UdpId,
};
pub use waker::Waker;
