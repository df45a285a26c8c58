//! Delivery taps: the node hands every delivered batch to several consumers, each with a queue of
//! its own, instead of one.
//!
//! P-SMR's workers each deliver g_all themselves (thesis 6.3.2: every thread t_i belongs to g_i
//! and g_all; parallel delivery, no scheduler), so the node of g_all's ring delivers to every
//! worker. A batch is reference-counted bytes: handing it to k queues costs k pointer copies, and
//! no consumer waits for another except through the shared room (the node delivers no more than
//! the fullest queue has room for, as with one queue).
//!
//! Taps carry values only: a node with taps takes no checkpoints, so no marker ever needs to go
//! to several consumers.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::thread::Thread;

use crate::io::Waker;

use super::handle::{DeliveredBatch, Shared};

/// The producing side, in the node thread: the one delivery queue, or every tap's.
pub(crate) struct DeliveryQueues {
    queues: Vec<rtrb::Producer<DeliveredBatch>>,
}

impl DeliveryQueues {
    pub fn new(queues: Vec<rtrb::Producer<DeliveredBatch>>) -> DeliveryQueues {
        assert!(!queues.is_empty(), "a node delivers somewhere");
        DeliveryQueues { queues }
    }

    /// Room in the fullest queue.
    pub fn slots(&self) -> usize {
        self.queues.iter().map(|q| q.slots()).min().expect("at least one queue")
    }

    /// Queues `b` in every queue; `Err` if one has no room (the caller kept within `slots`).
    pub fn push(&mut self, b: DeliveredBatch) -> Result<(), ()> {
        let (last, rest) = self.queues.split_last_mut().expect("at least one queue");
        for q in rest {
            assert!(b.marker.is_none(), "a node with taps puts no markers in its stream");
            let copy =
                DeliveredBatch { instance: b.instance, values: b.values.clone(), marker: None };
            q.push(copy).map_err(drop)?;
        }
        last.push(b).map_err(drop)
    }
}

/// One consumer's queue of a node with taps (`NodeOptions::delivery_taps`), which another thread
/// may own: the node's delivered batches, in order.
#[derive(Debug)]
pub struct DeliveryTap {
    queue: rtrb::Consumer<DeliveredBatch>,
    index: usize,
    shared: Arc<Shared>,
    waker: Waker,
}

impl DeliveryTap {
    pub(crate) fn new(
        queue: rtrb::Consumer<DeliveredBatch>,
        index: usize,
        shared: Arc<Shared>,
        waker: Waker,
    ) -> DeliveryTap {
        DeliveryTap { queue, index, shared, waker }
    }

    /// The next delivered batch, if one waits. Taking one while the node holds decided instances
    /// back for want of room wakes it.
    pub fn try_recv_batch(&mut self) -> Option<DeliveredBatch> {
        let b = self.queue.pop().ok()?;
        if self.shared.deliveries_held.swap(false, Ordering::AcqRel) {
            self.waker.wake();
        }
        Some(b)
    }

    /// Batches waiting in this tap.
    pub fn queued(&self) -> usize {
        self.queue.slots()
    }

    /// A handle another thread may keep to report the application's stored version.
    pub fn stable_versions(&self) -> StableVersions {
        StableVersions(Arc::clone(&self.shared))
    }

    /// Has the node unpark `thread` whenever it delivers (the first thread registered stays).
    pub fn wake_on_delivery(&self, thread: Thread) {
        let _ = self.shared.tap_consumers[self.index].set(thread);
    }
}

/// Where an application that keeps snapshots of its own (`NodeOptions::application_versions`)
/// tells the node what it stored.
#[derive(Clone, Debug)]
pub struct StableVersions(Arc<Shared>);

impl StableVersions {
    /// The application stored, for good, a state that needs nothing below `next_instance` of this
    /// ring: the version the node reports for garbage collection from now on.
    pub fn report(&self, next_instance: crate::proto::Instance) {
        self.0.stable_version.fetch_max(next_instance, Ordering::AcqRel);
    }

    /// `Some(trimmed_below)` once the learner found that the acceptors no longer keep instances
    /// it needs (they keep what the slowest process needs only up to a bound, 3.3.7): the node
    /// cannot go on, and the application must come back from a snapshot of its own that needs
    /// nothing below `trimmed_below` (another replica's newer one).
    pub fn behind(&self) -> Option<crate::proto::Instance> {
        Some(self.0.learner_behind.load(Ordering::Acquire)).filter(|&b| b > 0)
    }
}
