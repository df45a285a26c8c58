//! The embedding API: start a node in this process, propose values, read the deliveries in total
//! order. The node runs on its own thread (pinned to a core when asked) and talks to the application
//! through two bounded single-producer/single-consumer rings: no lock on either side.
//!
//! ```no_run
//! use bytes::Bytes;
//! use ringsmr::node::{ClusterFile, Node, NodeOptions, ProtocolName};
//!
//! // A one-process view of a 3-node U-Ring cluster on loopback; the other two run elsewhere
//! // (`ringsmr node --config FILE --id 1`, `--id 2`).
//! let cluster = ClusterFile::local(ProtocolName::Uring, 3, 1, 7000);
//! let mut node = Node::start(&cluster, 0, NodeOptions::default())?;
//! let id = node.propose(Bytes::from_static(b"hello"))?;
//! let d = node.recv_timeout(std::time::Duration::from_secs(5)).expect("delivered");
//! assert_eq!((d.id, &d.payload[..]), (id, &b"hello"[..]));
//! let report = node.stop();
//! println!("{} values delivered on {}", report.delivered_values, report.backend);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! An application whose state must survive restarts, and which a learner that fell behind can be
//! given ([`snapshot`](super::snapshot)), stores a snapshot at each checkpoint the stream stops
//! at, and replaces its state at each snapshot the stream stops at:
//!
//! ```no_run
//! use std::io::{Read, Write};
//! use ringsmr::node::{ClusterFile, Node, NodeOptions, ProtocolName};
//!
//! # let cluster = ClusterFile::local(ProtocolName::Uring, 3, 1, 7000);
//! let opts = NodeOptions {
//!     checkpoint_interval_instances: 1000,
//!     snapshot_dir: Some("/var/lib/app/node-0".into()),
//!     ..NodeOptions::default()
//! };
//! let mut node = Node::start(&cluster, 0, opts)?;
//! let mut total: u64 = 0; // the application's state: the sum of the first byte of every value
//! loop {
//!     while let Some(d) = node.try_recv() {
//!         total += u64::from(d.payload.first().copied().unwrap_or(0));
//!     }
//!     if let Some(cp) = node.take_checkpoint() {
//!         node.store_snapshot(&cp, |w| w.write_all(&total.to_le_bytes()))?;
//!     }
//!     if let Some(mut snapshot) = node.take_installed_snapshot() {
//!         let mut state = [0u8; 8];
//!         snapshot.state.read_exact(&mut state)?;
//!         total = u64::from_le_bytes(state);
//!     }
//! #   break;
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread::{JoinHandle, Thread};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use thiserror::Error;

use crate::io::scheduling::Scheduling;
use crate::io::{BackendChoice, IoError, Limits, Reactor, Waker};
use crate::proto::types::{Batch, Instance, IntoValues, NodeId, ValueId};
use crate::proto::{Boot, Counters, LearnerCheckpoint, RingNode};

use super::config::{ClusterFile, ClusterFileError};
use super::delivery_tap::{DeliveryQueues, DeliveryTap};
use super::durability::Durability;
use super::links::Links;
use super::multicast_link::MulticastLink;
use super::runtime::{Runtime, RuntimeCounters};
use super::snapshot::server::SnapshotServer;
use super::snapshot::{Snapshot, SnapshotError, SnapshotStore};
use super::state_transfer::StateTransfer;

/// One delivered value: the instance that decided it, its identity and its payload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delivery {
    pub instance: Instance,
    pub id: ValueId,
    pub payload: Bytes,
}

/// The values one instance delivered, in order (see [`Node::try_recv_batch`]); payloads are slices
/// of the batch as it arrived, so taking them copies nothing.
#[derive(Debug)]
pub struct DeliveredBatch {
    pub instance: Instance,
    pub values: Batch,
    /// Set (and `values` empty) on a marker the node puts in the stream; `try_recv` and
    /// `try_recv_batch` stop there and keep it for [`Node::take_checkpoint`] or
    /// [`Node::take_installed_snapshot`].
    pub marker: Option<Marker>,
}

/// A point in the delivery stream where the application has something to do before it goes on.
#[derive(Debug)]
pub enum Marker {
    /// Every batch before it is below this learner checkpoint, every batch after it above: the
    /// application stores its state with it ([`Node::store_snapshot`]).
    Checkpoint(Box<LearnerCheckpoint>),
    /// The stream goes on from this snapshot's version: the application replaces its state with
    /// the snapshot's (at start, the snapshot this node stored last; later, one state transfer
    /// brought from a learner that is ahead).
    Installed(Box<Snapshot>),
}

/// How to run a node.
#[derive(Clone, Debug)]
pub struct NodeOptions {
    pub backend: BackendChoice,
    /// Pin the node's thread to this core.
    pub core: Option<usize>,
    /// The kernel's scheduling policy for the node's thread (`io::scheduling`); `None` keeps the
    /// policy of the thread that starts the node.
    pub scheduling: Option<Scheduling>,
    /// Values the application may queue before `propose` pushes back.
    pub proposals_capacity: usize,
    /// Delivered batches (one per instance, up to `batch_bytes` each) the node may queue before it
    /// waits for the application.
    pub deliveries_capacity: usize,
    /// Hand the application a learner checkpoint ([`Node::take_checkpoint`]) after at least this
    /// many instances since the last (0: never). The application stores its state with it as the
    /// node's snapshot ([`Node::store_snapshot`]); the node then reports that version, so
    /// garbage collection keeps what the snapshot lacks, serves the snapshot to learners that
    /// fell behind, and starts from it after a restart. A learner without checkpoints that falls
    /// behind what the acceptors keep cannot be brought back.
    pub checkpoint_interval_instances: u64,
    /// Where the node keeps its snapshot (with checkpoints); `None`: its directory in the cluster
    /// file (`ClusterFile::node_dir`).
    pub snapshot_dir: Option<PathBuf>,
    /// Multi-Ring Paxos (`multiring`): λ, the instances the ring is expected to decide every
    /// `skip_interval_us` (Δ); as coordinator, the node makes up for the rest with skip instances
    /// (`proto::skip`). 0: no skips (a ring of its own).
    pub skip_lambda_instances: u64,
    pub skip_interval_us: u64,
    /// Deliver to this many [`DeliveryTap`]s ([`Node::take_delivery_taps`]), each a queue of
    /// `deliveries_capacity` another thread may own, instead of the node's own queue (0: the
    /// node's own). Not with checkpoints.
    pub delivery_taps: usize,
    /// The application keeps snapshots of its own (a replicated service's, with taps): the node
    /// reports for garbage collection the version it last said it stored
    /// ([`StableVersions::report`](super::StableVersions::report)) instead of what it delivered.
    pub application_versions: bool,
    /// Start the learner here (the application restored its state from a snapshot of its own
    /// that needs this ring from `next_instance` on), not at the ring's first instance.
    pub resume_from: Option<LearnerCheckpoint>,
}

impl Default for NodeOptions {
    fn default() -> NodeOptions {
        NodeOptions {
            backend: BackendChoice::Auto,
            core: None,
            scheduling: None,
            proposals_capacity: 65_536,
            deliveries_capacity: 16_384,
            checkpoint_interval_instances: 0,
            snapshot_dir: None,
            skip_lambda_instances: 0,
            skip_interval_us: 1_000,
            delivery_taps: 0,
            application_versions: false,
            resume_from: None,
        }
    }
}

/// Why a node did not start.
#[derive(Debug, Error)]
pub enum NodeError {
    #[error(transparent)]
    Config(#[from] ClusterFileError),
    #[error(transparent)]
    Io(#[from] IoError),
    #[error("node {id}: {what}")]
    Start { id: NodeId, what: String },
    #[error("node {id}: acceptor log: {source}")]
    Storage {
        id: NodeId,
        #[source]
        source: crate::storage::StorageError,
    },
    #[error("node {id}: {source}")]
    Snapshot {
        id: NodeId,
        #[source]
        source: SnapshotError,
    },
}

/// `propose` refused: the node holds `proposals_capacity` values not yet taken by the protocol.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[error(
    "back-pressure: the node's proposal queue is full; deliver (or wait) before proposing more"
)]
pub struct ProposeBackpressure {
    /// The value, handed back.
    pub payload: Bytes,
}

/// What a node did, returned by [`Node::stop`].
#[derive(Clone, Debug)]
pub struct NodeReport {
    pub backend: &'static str,
    /// CPU time of the node's thread.
    pub cpu: Duration,
    pub wall: Duration,
    pub delivered_values: u64,
    pub core: Counters,
    pub runtime: RuntimeCounters,
    pub links_lost: u64,
    /// Why the node stopped on its own: its acceptor log failed (it cannot answer without it).
    pub storage_error: Option<String>,
}

/// State the node thread and the handle share; atomics only.
#[derive(Debug, Default)]
pub(crate) struct Shared {
    pub stop: AtomicBool,
    pub delivered_values: AtomicU64,
    /// The node used up the delivery queue's room and may hold decided instances back until the
    /// application takes some (`RingNode::set_delivery_room`): the next take wakes it.
    pub deliveries_held: AtomicBool,
    /// Rounds the node started as coordinator so far (`Counters::rounds_started`).
    pub rounds_started: AtomicU64,
    /// Skip instances the node opened as coordinator, and the logical positions the skips it delivered took up
    /// (`Counters::skip_instances_opened`, `Counters::positions_skipped`).
    pub skip_instances_opened: AtomicU64,
    pub positions_skipped: AtomicU64,
    /// The version of the snapshot this node stored ([`Node::store_snapshot`]).
    pub stable_version: AtomicU64,
    /// Non-zero: the learner needs instances the acceptors trimmed (below this one) and the node
    /// cannot fetch a snapshot itself; an application that keeps its own snapshots must come
    /// back from a newer one ([`StableVersions::behind`](super::StableVersions::behind)).
    pub learner_behind: AtomicU64,
    /// `NodeOptions::application_versions`.
    pub application_versions: bool,
    consumer: OnceLock<Thread>,
    /// The threads that take each delivery tap's batches (`NodeOptions::delivery_taps`).
    pub tap_consumers: Vec<OnceLock<Thread>>,
    /// The kernel's id of the node thread, so other threads can read its CPU time.
    node_tid: OnceLock<i32>,
}

impl Shared {
    pub fn unpark_consumer(&self) {
        if let Some(t) = self.consumer.get() {
            t.unpark();
        }
        for t in self.tap_consumers.iter().filter_map(OnceLock::get) {
            t.unpark();
        }
    }
}

/// A running node.
#[derive(Debug)]
pub struct Node {
    id: NodeId,
    /// With `NodeOptions::delivery_taps`, until taken.
    taps: Vec<DeliveryTap>,
    proposals: rtrb::Producer<Bytes>,
    /// The id the next queued value gets: the node's proposer numbers values in the order of this
    /// queue, one by one, from 0 (it takes each exactly once, retrying a refused one).
    next_value_id: ValueId,
    deliveries: rtrb::Consumer<DeliveredBatch>,
    /// The batch `try_recv` is handing out value by value.
    current: Option<(Instance, IntoValues)>,
    /// A marker reached in the delivery queue and not yet taken.
    marker: Option<Marker>,
    /// Where the node keeps its snapshot, with checkpoints.
    snapshots: Option<Arc<SnapshotStore>>,
    /// Serves that snapshot to learners that fell behind; stops when the node is dropped.
    snapshot_server: Option<SnapshotServer>,
    waker: Waker,
    shared: Arc<Shared>,
    thread: Option<JoinHandle<NodeReport>>,
    backend: &'static str,
    scheduling: Option<Scheduling>,
}

/// Each start of a process is a new incarnation of its proposer (`ValueId::incarnation`). A restarted
/// proposer numbers its values from 0 again: under its old incarnation, learners would drop them as
/// repeats of the values it proposed before, and U-Ring processes could mistake its proposals for
/// ones they hold. The wall clock's milliseconds (wrapping every 49 days) differ between any two
/// starts of one process.
fn incarnation_now() -> u32 {
    let since_epoch = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    since_epoch.as_millis() as u32
}

/// How long a starting node waits for its address to be released (see [`listen`]).
const LISTEN_RETRY_FOR: Duration = Duration::from_secs(5);

/// Listens on `address`, waiting up to [`LISTEN_RETRY_FOR`] while it is in use. A process restarted
/// right after a crash may find its port still taken for a moment (a node restarted at once after
/// SIGKILL failed to bind 1 time in 2 in `tests/recovery.rs`): the kernel tears a dead process'
/// io_uring instance down in the background, and with it the listening socket an accept was
/// pending on.
fn listen(reactor: &mut Reactor, address: SocketAddr) -> Result<(), NodeError> {
    let give_up_at = Instant::now() + LISTEN_RETRY_FOR;
    loop {
        match reactor.listen(address) {
            Ok(_) => return Ok(()),
            Err(e) if e.is_addr_in_use() && Instant::now() < give_up_at => {
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => return Err(e.into()),
        }
    }
}

impl Node {
    /// Starts process `id` of `cluster`: binds its address, connects to the others (retrying until
    /// they are up) and runs the protocol on a new thread.
    ///
    /// With checkpoints, a snapshot this node stored before (in an earlier incarnation of the
    /// process) is where it goes on from: the first thing in its delivery stream is then
    /// [`Marker::Installed`] with that snapshot, and deliveries follow from its version.
    pub fn start(cluster: &ClusterFile, id: NodeId, opts: NodeOptions) -> Result<Node, NodeError> {
        let mut cfg = cluster.node_config(id)?;
        cfg.checkpoint_interval_instances = opts.checkpoint_interval_instances;
        cfg.application_versions = opts.application_versions;
        cfg.skip_lambda_instances = opts.skip_lambda_instances;
        cfg.skip_interval_us = opts.skip_interval_us;
        cfg.incarnation = incarnation_now();
        let first_value_id = ValueId { proposer: id, incarnation: cfg.incarnation, seq: 0 };
        let entry = &cluster.nodes[usize::from(id)];
        let limits = Limits {
            conns_max: 2 * cluster.nodes.len() + 8,
            inbox_reserve_bytes: super::config::BUFFER_RESERVE_BYTES,
            socket: crate::io::socket::SocketOptions { buffer_bytes: cluster.socket_buffer_bytes },
            ..Limits::default()
        };
        let mut reactor = Reactor::new(opts.backend, limits)?;
        listen(&mut reactor, entry.address)?;
        let multicast = match cluster.multicast_options() {
            Some(m) if cluster.protocol == super::config::ProtocolName::Mring => {
                let udp = reactor.add_multicast(m, limits.socket)?;
                Some(MulticastLink::joined(udp, m))
            }
            _ => None,
        };
        let backend = reactor.backend_name();
        let waker = reactor.waker();
        let started = Instant::now();
        // The core's clock starts at 0 now; skip instances read the wall clock (`proto::skip`).
        cfg.skip_clock_offset_us = shared_clock_now_us();
        let (durability, boot) = match cluster.storage_of(id) {
            None => (None, Boot::Fresh),
            Some((mode, dir)) => {
                let dir = dir.expect("validated: an acceptor that logs has a data_dir");
                let (d, boot) = Durability::open(&dir, mode, cluster.cluster_id, id)
                    .map_err(|source| NodeError::Storage { id, source })?;
                (Some(d), boot)
            }
        };
        let mut core = RingNode::new(cfg, 0, boot)
            .map_err(|e| NodeError::Start { id, what: e.to_string() })?;
        let (proposals_tx, proposals_rx) = rtrb::RingBuffer::new(opts.proposals_capacity);
        if opts.resume_from.is_some() && opts.checkpoint_interval_instances > 0 {
            return Err(NodeError::Start {
                id,
                what: "a node with checkpoints resumes from its own snapshot, not from one the \
                       application gives"
                    .into(),
            });
        }
        if let Some(cp) = &opts.resume_from {
            core.resume_learner(cp);
        }
        if opts.delivery_taps > 0 && opts.checkpoint_interval_instances > 0 {
            return Err(NodeError::Start {
                id,
                what: "delivery taps and checkpoints do not go together: a checkpoint marks one \
                       consumer's stream"
                    .into(),
            });
        }
        // With taps, the node's own queue stays empty: every batch goes to the taps.
        let own_capacity = if opts.delivery_taps > 0 { 1 } else { opts.deliveries_capacity };
        let (mut deliveries_tx, deliveries_rx) = rtrb::RingBuffer::new(own_capacity);
        let (tap_txs, tap_rxs): (Vec<_>, Vec<_>) = (0..opts.delivery_taps)
            .map(|_| rtrb::RingBuffer::new(opts.deliveries_capacity))
            .unzip();
        let shared = Arc::new(Shared {
            tap_consumers: (0..opts.delivery_taps).map(|_| OnceLock::new()).collect(),
            application_versions: opts.application_versions,
            ..Shared::default()
        });
        if let Some(cp) = &opts.resume_from {
            shared.stable_version.store(cp.next_instance, Ordering::Release);
        }
        let (snapshots, snapshot_server, state_transfer) = if opts.checkpoint_interval_instances > 0
        {
            let dir =
                opts.snapshot_dir.clone().or_else(|| cluster.node_dir(id)).ok_or_else(|| {
                    NodeError::Start {
                        id,
                        what: "checkpoints need a directory for the node's snapshot: set \
                               `data_dir` in the cluster file, or a snapshot directory \
                               (`ringsmr node --snapshot-dir DIR`, `NodeOptions::snapshot_dir`)"
                            .into(),
                    }
                })?;
            let snapshot_err = |source| NodeError::Snapshot { id, source };
            let (store, stored) =
                SnapshotStore::open(&dir, cluster.cluster_id).map_err(snapshot_err)?;
            if let Some(snapshot) = stored {
                core.resume_learner(&snapshot.checkpoint);
                shared.stable_version.store(snapshot.checkpoint.next_instance, Ordering::Release);
                let marker = DeliveredBatch {
                    instance: snapshot.checkpoint.next_instance,
                    values: Batch::empty(),
                    marker: Some(Marker::Installed(Box::new(snapshot))),
                };
                let pushed = deliveries_tx.push(marker);
                assert!(pushed.is_ok(), "an empty delivery queue takes the first marker");
            }
            let store = Arc::new(store);
            let address = entry.snapshot_address().expect("validated: the cluster file names it");
            let server = SnapshotServer::start(address, Arc::clone(&store)).map_err(|e| {
                NodeError::Start { id, what: format!("serving snapshots on {address}: {e}") }
            })?;
            let endpoints = cluster
                .nodes
                .iter()
                .map(|n| n.snapshot_address().expect("validated: the cluster file names it"))
                .collect();
            let transfer = StateTransfer::new(Arc::clone(&store), id, endpoints);
            (Some(store), Some(server), Some(transfer))
        } else {
            (None, None, None)
        };
        let runtime = Runtime {
            core,
            reactor,
            links: Links::new(
                id,
                cluster.nodes.iter().map(|n| n.address).collect(),
                limits.conns_max,
            ),
            cluster_id: cluster.cluster_id,
            durability,
            started,
            multicast,
            proposals: proposals_rx,
            deliveries: DeliveryQueues::new(if tap_txs.is_empty() {
                vec![deliveries_tx]
            } else {
                tap_txs
            }),
            state_transfer,
            shared: Arc::clone(&shared),
        };
        let core_to_pin = opts.core;
        let scheduling = opts.scheduling;
        // A new thread inherits the policy of the thread that creates it.
        let node_scheduling = scheduling.or_else(Scheduling::of_current_thread);
        let shared_by_thread = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name(format!("ringsmr-node-{id}"))
            .spawn(move || {
                let _ = shared_by_thread.node_tid.set(nix::unistd::gettid().as_raw());
                drop(shared_by_thread);
                if let Some(c) = core_to_pin
                    && let Err(e) = crate::io::pin::pin_current_thread(c)
                {
                    eprintln!("ringsmr: node {id}: not pinned to core {c}: {e}");
                }
                if let Some(s) = scheduling
                    && let Err(e) = s.apply_to_current_thread()
                {
                    eprintln!("ringsmr: node {id}: scheduling policy {} refused: {e}", s.name());
                }
                runtime.run()
            })
            .map_err(|e| NodeError::Start { id, what: format!("spawning its thread: {e}") })?;
        let taps = tap_rxs
            .into_iter()
            .enumerate()
            .map(|(i, rx)| DeliveryTap::new(rx, i, Arc::clone(&shared), waker.clone()))
            .collect();
        Ok(Node {
            id,
            taps,
            proposals: proposals_tx,
            next_value_id: first_value_id,
            deliveries: deliveries_rx,
            current: None,
            marker: None,
            snapshots,
            snapshot_server,
            waker,
            shared,
            thread: Some(thread),
            backend,
            scheduling: node_scheduling,
        })
    }

    pub fn id(&self) -> NodeId {
        self.id
    }

    /// `"io_uring"` or `"epoll"`.
    pub fn backend(&self) -> &'static str {
        self.backend
    }

    /// The scheduling policy of the node's thread (`None`: one other than `batch` and `normal`).
    pub fn scheduling(&self) -> Option<Scheduling> {
        self.scheduling
    }

    /// Queues a value for ordering and returns the id it will be delivered under ([`Delivery::id`]),
    /// so an application can tell its own values in the delivered stream. Refuses (handing the
    /// value back) when the queue is full. (A node without the proposer role queues values but
    /// never proposes them.)
    pub fn propose(&mut self, payload: Bytes) -> Result<ValueId, ProposeBackpressure> {
        let was_empty = self.proposals.slots() == self.proposals.buffer().capacity();
        match self.proposals.push(payload) {
            Ok(()) => {
                // Only an empty queue may have let the node go to sleep.
                if was_empty {
                    self.waker.wake();
                }
                let id = self.next_value_id;
                self.next_value_id.seq += 1;
                Ok(id)
            }
            Err(rtrb::PushError::Full(payload)) => Err(ProposeBackpressure { payload }),
        }
    }

    /// The delivery taps the node was started with (`NodeOptions::delivery_taps`), once: the
    /// threads that take them deliver, and the node's own queue stays empty.
    pub fn take_delivery_taps(&mut self) -> Vec<DeliveryTap> {
        std::mem::take(&mut self.taps)
    }

    /// Delivered batches waiting in the delivery queue for the application.
    pub fn queued_deliveries(&self) -> usize {
        self.deliveries.slots()
    }

    /// Room in the proposal queue.
    pub fn propose_slots(&self) -> usize {
        self.proposals.slots()
    }

    /// The next delivered value, if one is waiting.
    pub fn try_recv(&mut self) -> Option<Delivery> {
        loop {
            if let Some((instance, values)) = self.current.as_mut() {
                if let Some(v) = values.next() {
                    return Some(Delivery { instance: *instance, id: v.id, payload: v.payload });
                }
                self.current = None;
            }
            let b = self.pop_delivery()?;
            self.current = Some((b.instance, b.values.into_iter()));
        }
    }

    /// The learner checkpoint the delivery stream has reached, if any: taken when every value
    /// before it was handed out by `try_recv` (which stops there) and none after it. The
    /// application stores its state at this point with it ([`Node::store_snapshot`]).
    pub fn take_checkpoint(&mut self) -> Option<LearnerCheckpoint> {
        self.take_marker(|m| match m {
            Marker::Checkpoint(cp) => Ok(*cp),
            other => Err(other),
        })
    }

    /// The marker the stream stopped at, if `pick` takes it (`Ok`); one it hands back stays.
    fn take_marker<T>(&mut self, pick: impl FnOnce(Marker) -> Result<T, Marker>) -> Option<T> {
        match pick(self.marker.take()?) {
            Ok(taken) => Some(taken),
            Err(kept) => {
                self.marker = Some(kept);
                None
            }
        }
    }

    /// The snapshot the delivery stream has reached, if any ([`Marker::Installed`]): the
    /// application replaces its state with the snapshot's (reading [`Snapshot::state`] to the
    /// end), then goes on with the deliveries after it, which continue from
    /// `snapshot.checkpoint.next_instance`. The snapshot is already this node's stored one.
    pub fn take_installed_snapshot(&mut self) -> Option<Snapshot> {
        self.take_marker(|m| match m {
            Marker::Installed(s) => Ok(*s),
            other => Err(other),
        })
    }

    /// Stores the application's state at checkpoint `cp` (the one [`Node::take_checkpoint`] just
    /// handed out) as this node's snapshot: `write_state` writes the state. Once it is durable
    /// the node reports `cp`'s version, so acceptors may forget what comes before it (3.3.7),
    /// and serves the snapshot to learners that fell behind. `Ok(false)`: a newer snapshot is
    /// stored already (state transfer brought one), and nothing was written.
    pub fn store_snapshot(
        &self,
        cp: &LearnerCheckpoint,
        write_state: impl FnOnce(&mut dyn std::io::Write) -> std::io::Result<()>,
    ) -> Result<bool, NodeError> {
        let id = self.id;
        let Some(store) = self.snapshots.as_ref() else {
            return Err(NodeError::Start {
                id,
                what: "this node stores no snapshots: start it with checkpoints on".into(),
            });
        };
        let stored =
            store.save(cp, write_state).map_err(|source| NodeError::Snapshot { id, source })?;
        if stored {
            self.shared.stable_version.fetch_max(cp.next_instance, Ordering::AcqRel);
            self.waker.wake();
        }
        Ok(stored)
    }

    /// Where the node serves its snapshot, with checkpoints.
    pub fn snapshot_address(&self) -> Option<SocketAddr> {
        self.snapshot_server.as_ref().map(SnapshotServer::local_addr)
    }

    /// The values of the next delivered instance (or what `try_recv` left of the current one), if
    /// any are waiting: for applications that handle many small values, one call per batch.
    pub fn try_recv_batch(&mut self) -> Option<DeliveredBatch> {
        match self.current.take() {
            Some((instance, values)) if values.len() > 0 => {
                Some(DeliveredBatch { instance, values: values.rest(), marker: None })
            }
            _ => self.pop_delivery(),
        }
    }

    /// The next batch of the delivery queue. Taking one while the node holds decided instances
    /// back for want of room wakes it, so it delivers them without waiting for other input.
    /// Stops at a marker, which it keeps for [`Node::take_checkpoint`] or
    /// [`Node::take_installed_snapshot`]; once it is taken, the next call goes on past it.
    fn pop_delivery(&mut self) -> Option<DeliveredBatch> {
        if self.marker.is_some() {
            return None;
        }
        let b = self.deliveries.pop().ok()?;
        if self.shared.deliveries_held.swap(false, Ordering::AcqRel) {
            self.waker.wake();
        }
        if b.marker.is_some() {
            self.marker = b.marker;
            return None;
        }
        Some(b)
    }

    /// Waits up to `timeout` for the next delivered value; returns `None` at once at a marker.
    pub fn recv_timeout(&mut self, timeout: Duration) -> Option<Delivery> {
        let _ = self.shared.consumer.set(std::thread::current());
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(d) = self.try_recv() {
                return Some(d);
            }
            let now = Instant::now();
            // A marker reached is for the caller to take before more comes.
            if now >= deadline || self.marker.is_some() {
                return None;
            }
            // The node unparks us after it delivered; the bound covers a consumer that moved to
            // another thread since it registered.
            std::thread::park_timeout((deadline - now).min(Duration::from_millis(1)));
        }
    }

    /// Has the node unpark `thread` whenever it delivers, so one thread can sleep while it waits for
    /// deliveries from several nodes. The first thread registered (here or by
    /// [`Node::recv_timeout`]) stays the one woken.
    pub fn wake_on_delivery(&self, thread: Thread) {
        let _ = self.shared.consumer.set(thread);
    }

    /// Rounds this node started as coordinator so far: each is a coordinator change or a new ring
    /// (thesis 3.3.5), so a rise while every process is up means one was suspected wrongly.
    pub fn rounds_started(&self) -> u64 {
        self.shared.rounds_started.load(Ordering::Acquire)
    }

    /// Skip instances this node opened as coordinator so far, and the logical positions skips took up at its learner
    /// (Multi-Ring Paxos): read while the node runs, so a benchmark can count them over its run.
    pub fn skip_counters(&self) -> (u64, u64) {
        let opened = self.shared.skip_instances_opened.load(Ordering::Acquire);
        (opened, self.shared.positions_skipped.load(Ordering::Acquire))
    }

    /// Values delivered by the node so far (some may still wait in the delivery queue).
    pub fn delivered_values(&self) -> u64 {
        self.shared.delivered_values.load(Ordering::Acquire)
    }

    /// CPU time the node thread has used so far, read from another thread (the benchmark measures
    /// it over its run only, without stopping the node). `None` where `/proc` does not tell.
    pub fn thread_cpu_time(&self) -> Option<Duration> {
        let tid = self.shared.node_tid.get()?;
        // The first field of schedstat is the thread's time on a CPU in nanoseconds, the same sum
        // CLOCK_THREAD_CPUTIME_ID reads on the thread itself.
        let text = std::fs::read_to_string(format!("/proc/self/task/{tid}/schedstat")).ok()?;
        let ns: u64 = text.split_whitespace().next()?.parse().ok()?;
        Some(Duration::from_nanos(ns))
    }

    /// Stops the node thread and returns what it did.
    pub fn stop(mut self) -> NodeReport {
        self.shutdown().expect("the node thread returns a report")
    }

    fn shutdown(&mut self) -> Option<NodeReport> {
        self.shared.stop.store(true, Ordering::Release);
        self.waker.wake();
        let thread = self.thread.take()?;
        match thread.join() {
            Ok(report) => Some(report),
            Err(panic) => std::panic::resume_unwind(panic),
        }
    }
}

/// Microseconds since the skip instances' shared epoch on this host's wall clock (0 before it).
fn shared_clock_now_us() -> u64 {
    let since_unix = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    let epoch = Duration::from_secs(crate::proto::skip::SHARED_EPOCH_UNIX_S);
    since_unix.saturating_sub(epoch).as_micros() as u64
}

impl Drop for Node {
    fn drop(&mut self) {
        if self.thread.is_some() && !std::thread::panicking() {
            self.shutdown();
        }
    }
}
