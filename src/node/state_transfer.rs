//! The node thread's side of state transfer (thesis 3.3.7, see [`snapshot`](super::snapshot)):
//! when the protocol core says its learner needs it, fetch a snapshot from a learner that is
//! ahead, on a thread of its own, and hand it back for installing once it is this learner's
//! stored snapshot. A fetch that fails is tried again, with the donors of that moment, after
//! [`RETRY_AFTER_US`].
//!
//! Idle, it costs the node loop one branch per iteration.

use std::net::SocketAddr;
use std::sync::Arc;

use crate::proto::{Instance, NodeId, RingNode, Tick};

use super::snapshot::fetch::{Fetch, FetchPoll};
use super::snapshot::{Snapshot, SnapshotStore};

/// How long after a failed fetch the next one starts.
pub const RETRY_AFTER_US: Tick = 1_000_000;

#[derive(Debug)]
pub(crate) struct StateTransfer {
    store: Arc<SnapshotStore>,
    me: NodeId,
    /// Every node's snapshot endpoint, by id.
    endpoints: Vec<SocketAddr>,
    /// While the learner needs a snapshot: the version it must be at least (the trim point).
    needed_from: Option<Instance>,
    fetch: Option<Fetch>,
    retry_at: Tick,
    ready: Option<Snapshot>,
    pub fetches_failed: u64,
}

impl StateTransfer {
    pub fn new(store: Arc<SnapshotStore>, me: NodeId, endpoints: Vec<SocketAddr>) -> Self {
        StateTransfer {
            store,
            me,
            endpoints,
            needed_from: None,
            fetch: None,
            retry_at: 0,
            ready: None,
            fetches_failed: 0,
        }
    }

    /// The learner was turned away by every acceptor, which trimmed below `trimmed_below`.
    pub fn needed(&mut self, trimmed_below: Instance) {
        self.needed_from = Some(self.needed_from.unwrap_or(0).max(trimmed_below));
    }

    /// Starts a fetch when one is needed and due, and collects the one running.
    pub fn poll(&mut self, now: Tick, core: &RingNode) {
        let Some(min_version) = self.needed_from else { return };
        if let Some(f) = &self.fetch {
            match f.poll() {
                FetchPoll::Running => return,
                FetchPoll::Done(s) => {
                    self.fetch = None;
                    self.ready = Some(s);
                }
                FetchPoll::Failed(why) => {
                    self.fetch = None;
                    self.fetches_failed += 1;
                    self.retry_at = now + RETRY_AFTER_US;
                    eprintln!(
                        "ringsmr: node {}: state transfer failed, trying again in {} s: {why}",
                        self.me,
                        RETRY_AFTER_US / 1_000_000
                    );
                }
            }
        }
        if self.ready.is_some() || self.fetch.is_some() || now < self.retry_at {
            return;
        }
        let donors = core
            .snapshot_donors(min_version)
            .into_iter()
            .filter_map(|n| Some((n, *self.endpoints.get(usize::from(n))?)))
            .collect();
        match Fetch::start(Arc::clone(&self.store), self.me, donors, min_version) {
            Ok(f) => self.fetch = Some(f),
            Err(e) => {
                self.fetches_failed += 1;
                self.retry_at = now + RETRY_AFTER_US;
                eprintln!("ringsmr: node {}: cannot start a state transfer: {e}", self.me);
            }
        }
    }

    /// The fetched snapshot, once; the learner no longer needs one after it (until it says so
    /// again).
    pub fn take_ready(&mut self) -> Option<Snapshot> {
        let s = self.ready.take()?;
        self.needed_from = None;
        Some(s)
    }
}
