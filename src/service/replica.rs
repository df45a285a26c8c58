//! A replica process of a replicated service: its rings (Multi-Ring Paxos), its front thread for
//! clients, and its workers under one execution model (`smr::exec`).
//!
//! Group layout (`ExecModel::groups`): P-SMR and opt-PSMR use group 0 as g_all and group i + 1 as
//! worker i's g_i; SMR and sP-SMR use group 0 alone. Each group's ring hands its deliveries to
//! the workers that deliver the group through delivery taps, one per worker (g_all's ring: every
//! worker), and each worker merges its own (`RingSource`): the process' own merge is not used.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use thiserror::Error;

use crate::io::BackendChoice;
use crate::multiring::{
    GroupId, MultiRingError, MultiRingFile, MultiRingNode, MultiRingOptions, ProcessId, RingId,
    TapMerge,
};
use crate::node::StableVersions;
use crate::proto::Instance;
use crate::smr::checkpoint::Checkpointer;
use crate::smr::{
    CDepError, CommandToGroups, ExecModel, ExecReport, ExecStart, Execution, Inputs, KeyPartition,
    Service, Shared, WorkSource,
};

use super::front::{Front, FrontStats};
use super::replies::{Wake, reply_queue};
use super::restore::Restored;
use super::snapshot::{ReplicaSnapshot, SnapshotDir, SnapshotServer};
use super::snapshot_writer::SnapshotWriter;
use super::source::RingSource;

/// How to run a replica.
#[derive(Clone, Debug)]
pub struct ReplicaSpec {
    pub model: ExecModel,
    /// Worker threads asked for (MPL); SMR runs one.
    pub workers: usize,
    /// The key space the lanes split (`KeyPartition`).
    pub key_space: u64,
    /// Where clients connect (port 0: any free one).
    pub clients: SocketAddr,
    pub backend: BackendChoice,
    /// Cores for the workers, lane by lane, cycling (`None`: not pinned).
    pub worker_cores: Option<Vec<usize>>,
    /// Cores for the rings' node threads (`MultiRingOptions::cores`).
    pub ring_cores: Option<Vec<usize>>,
    /// Take checkpoints, keep them and serve them (`None`: no checkpoints; a restarted replica
    /// must then learn every ring from its start, which the acceptors do not keep for long).
    pub snapshots: Option<SnapshotSpec>,
}

/// Where and how often a replica checkpoints (see [`snapshot`](super::snapshot)).
#[derive(Clone, Debug)]
pub struct SnapshotSpec {
    pub dir: SnapshotDir,
    /// Where the replica serves its snapshot to replicas that restart.
    pub serve_at: SocketAddr,
    /// How often this replica's front requests a checkpoint.
    pub interval: Duration,
}

/// What a replica starts from.
pub enum ReplicaStart<S> {
    /// A fresh state, from the rings' first instances.
    Fresh(S),
    /// A snapshot (this replica's own, or another's), from where it left every ring.
    Snapshot(ReplicaSnapshot),
}

#[derive(Debug, Error)]
pub enum ReplicaError {
    #[error(transparent)]
    Rings(#[from] MultiRingError),
    #[error(transparent)]
    CDep(#[from] CDepError),
    #[error("the Multi-Ring file has no group {group}, which {model} with {lanes} workers needs")]
    MissingGroup { group: GroupId, model: &'static str, lanes: usize },
    #[error("listening for clients on {address}: {source}")]
    Listen { address: SocketAddr, source: std::io::Error },
    #[error("serving snapshots on {address}: {source}")]
    ServeSnapshots { address: SocketAddr, source: std::io::Error },
    #[error("the snapshot does not fit this replica: {0}")]
    Snapshot(String),
}

/// A running replica.
pub struct Replica<S: Service> {
    execution: Execution<S>,
    front: JoinHandle<(FrontStats, MultiRingNode)>,
    stop: Arc<AtomicBool>,
    clients: SocketAddr,
    lanes: usize,
    backend: &'static str,
    /// With checkpoints: the thread that stores them, and the server of the stored one.
    writer: Option<SnapshotWriter>,
    _server: Option<SnapshotServer>,
    /// Per ring: whether its learner fell behind what the acceptors keep.
    rings: Vec<(RingId, StableVersions)>,
}

/// What a replica did.
pub struct ReplicaReport<S> {
    pub exec: ExecReport,
    pub front: FrontStats,
    pub shared: Arc<Shared<S>>,
}

impl<S: Service> Replica<S> {
    /// Starts process `process` of `file` as a replica, from a fresh state or a snapshot.
    pub fn start(
        file: &MultiRingFile,
        process: ProcessId,
        spec: &ReplicaSpec,
        from: ReplicaStart<S>,
    ) -> Result<Replica<S>, ReplicaError> {
        let lanes = spec.model.lanes(spec.workers);
        let cg =
            CommandToGroups::derive(&S::dependencies(), KeyPartition::new(spec.key_space, lanes))?;
        let ring_of = |group: GroupId| {
            file.group(group).map(|g| g.ring).ok_or(ReplicaError::MissingGroup {
                group,
                model: spec.model.name(),
                lanes,
            })
        };
        // The groups each source delivers (a source per lane, or sP-SMR's scheduler's), and how
        // many taps each ring needs.
        let source_groups: Vec<Vec<GroupId>> = if spec.model.multicast() {
            (0..lanes).map(|l| vec![0, ExecModel::lane_group(l)]).collect()
        } else {
            vec![vec![0]] // SMR's worker, or sP-SMR's scheduler
        };
        let mut taps: BTreeMap<RingId, usize> = BTreeMap::new();
        let mut source_rings: Vec<Vec<RingId>> = Vec::new();
        for groups in &source_groups {
            let mut rings: Vec<RingId> =
                groups.iter().map(|&g| ring_of(g)).collect::<Result<_, _>>()?;
            rings.sort_unstable();
            rings.dedup();
            for &r in &rings {
                *taps.entry(r).or_default() += 1;
            }
            source_rings.push(rings);
        }
        let restored = match from {
            ReplicaStart::Fresh(state) => Restored::fresh(state, source_groups.len()),
            ReplicaStart::Snapshot(s) => Restored::from_snapshot(&s, lanes, source_groups.len())?,
        };
        let opts = MultiRingOptions {
            backend: spec.backend,
            cores: spec.ring_cores.clone(),
            delivery_taps: taps.iter().map(|(&r, &n)| (r, n)).collect(),
            application_versions: spec.snapshots.is_some(),
            resume_from: restored.resume_from(),
            ..MultiRingOptions::default()
        };
        let mut node = MultiRingNode::start(file, process, opts)?;
        let mut ring_taps: BTreeMap<RingId, Vec<_>> =
            taps.keys().map(|&r| (r, node.take_delivery_taps(r))).collect();
        let stable: Vec<(RingId, StableVersions)> = ring_taps
            .iter()
            .filter_map(|(&r, t)| Some((r, t.first()?.stable_versions())))
            .collect();
        let stop = Arc::new(AtomicBool::new(false));
        let mut sources: Vec<Box<dyn WorkSource>> = Vec::new();
        for ((groups, rings), position) in
            source_groups.into_iter().zip(source_rings).zip(restored.positions)
        {
            let merge_taps = rings
                .iter()
                .map(|&r| (r, ring_taps.get_mut(&r).and_then(Vec::pop).expect("a tap per source")))
                .collect();
            let stop = Arc::clone(&stop);
            sources.push(Box::new(match position {
                None => RingSource::new(spec.model, TapMerge::new(file, merge_taps), groups, stop),
                Some(p) => {
                    let merge = TapMerge::resume(file, merge_taps, p.merge)
                        .map_err(|e| ReplicaError::Snapshot(e.into()))?;
                    RingSource::resume(spec.model, merge, groups, stop, p.current)
                }
            }));
        }
        let backend = node.backend();
        let (mut front, waker) = Front::bind(spec.clients, node, Arc::clone(&stop))
            .map_err(|source| ReplicaError::Listen { address: spec.clients, source })?;
        let clients = front.local_addr();
        let wake: Arc<dyn Wake> = waker;
        let sinks = (0..lanes)
            .map(|_| {
                let (q, drain) = reply_queue(Arc::clone(&wake));
                front.add_drain(drain);
                q
            })
            .collect();
        let inputs = if spec.model == ExecModel::SpSmr {
            Inputs::Scheduled(sources.into_iter().next().expect("the scheduler's source"))
        } else {
            Inputs::PerLane(sources)
        };
        let (writer, server, checkpointer) = match &spec.snapshots {
            None => (None, None, None),
            Some(s) => {
                let server =
                    SnapshotServer::start(s.serve_at, s.dir.clone()).map_err(|source| {
                        ReplicaError::ServeSnapshots { address: s.serve_at, source }
                    })?;
                let writer = SnapshotWriter::start(s.dir.clone(), stable.clone());
                front.request_checkpoints(s.interval);
                let checkpointer: Arc<dyn Checkpointer> = Arc::new(writer.checkpointer());
                (Some(writer), Some(server), Some(checkpointer))
            }
        };
        let cores = spec.worker_cores.clone();
        let on_start = Arc::new(move |lane: usize| {
            if let Some(c) = cores.as_ref().filter(|c| !c.is_empty()) {
                let core = c[lane % c.len()];
                if let Err(e) = crate::io::pin::pin_current_thread(core) {
                    eprintln!("ringsmr: worker {lane}: not pinned to core {core}: {e}");
                }
            }
        });
        let from = ExecStart { tables: restored.tables, checkpointer };
        let execution =
            Execution::start(spec.model, restored.state, cg, inputs, sinks, on_start, from);
        let front = std::thread::Builder::new()
            .name("replica-front".into())
            .spawn(move || front.run())
            .expect("spawning the front thread");
        Ok(Replica {
            execution,
            front,
            stop,
            clients,
            lanes,
            backend,
            writer,
            _server: server,
            rings: stable,
        })
    }

    /// `Some((ring, trimmed_below))` once a ring's learner found that the acceptors trimmed
    /// instances it needs: this replica cannot go on, and must come back from a newer snapshot
    /// (`service::rejoin`).
    pub fn behind(&self) -> Option<(RingId, Instance)> {
        self.rings.iter().find_map(|(r, v)| Some((*r, v.behind()?)))
    }

    /// Where clients connect.
    pub fn clients_address(&self) -> SocketAddr {
        self.clients
    }

    /// The rings' I/O backend.
    pub fn backend(&self) -> &'static str {
        self.backend
    }

    pub fn lanes(&self) -> usize {
        self.lanes
    }

    /// The state and per-lane counters, while it runs.
    pub fn shared(&self) -> &Arc<Shared<S>> {
        self.execution.shared()
    }

    /// Stops the workers, the front thread and the rings.
    pub fn stop(self) -> ReplicaReport<S> {
        self.stop.store(true, Ordering::Release);
        let (exec, shared) = self.execution.join();
        let (front, node) = self.front.join().expect("the front thread panicked");
        node.stop();
        if let Some(w) = self.writer {
            w.stop();
        }
        ReplicaReport { exec, front, shared }
    }
}
