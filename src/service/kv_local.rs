//! `ringsmr local --service kv`: the replicated B+-tree store on loopback, in one process (thesis
//! 6.5: the key-value store's experiments).
//!
//! One ring per group (`ExecModel::groups`: P-SMR's MPL + 1, SMR's and sP-SMR's one), each of
//! three processes (f = 1, U-Ring Paxos). The first `replicas` processes are replicas of the store
//! (they execute); the others only order (acceptors). Clients run closed loops in threads of
//! their own: each keeps `window` commands outstanding through the client library, so what the
//! run measures is the whole path, client to ring to worker to client.
//!
//! The report gives commands per second (Kcps, counted at the clients after a warm-up), the
//! commands' latency from submit to reply, and what each worker lane of the first replica
//! executed (per-thread throughput, Fig. 6.6–6.7). With `record_history`, each client records
//! its operations for the linearizability checker.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use serde::Serialize;
use thiserror::Error;

use crate::apps::kv::store::KvStore;
use crate::apps::kv::workload::key_space;
use crate::io::BackendChoice;
use crate::multiring::config::{GroupEntry, LearnerEntry};
use crate::multiring::{MultiRingFile, MultiRingNode, MultiRingOptions};
use crate::node::{ClusterFileError, ProtocolName};
use crate::smr::linearizability::Operation;
use crate::smr::{ExecModel, Service};

use super::client::{ClientError, ClientOptions};
use super::kv_load::{KvLoad, KvLoadFigures, KvLoadSpec};
use super::replica::{Replica, ReplicaError, ReplicaSpec, ReplicaStart};

/// What to run.
#[derive(Clone, Debug)]
pub struct KvLocalSpec {
    pub model: ExecModel,
    pub workers: usize,
    /// The clients, and the keys every replica's tree is preloaded with.
    pub load: KvLoadSpec,
    /// Measured, after the load's warm-up.
    pub duration: Duration,
    /// Processes that execute (the first ones); the others of the three only order.
    pub replicas: u16,
    pub backend: BackendChoice,
    /// Pin workers and ring threads to cores.
    pub pin: bool,
    /// Multi-Ring's λ and Δ (`None`: the Multi-Ring file's defaults). Under P-SMR a worker's
    /// merge waits for g_all's next skip at most Δ, which bounds its latency from below.
    pub lambda_instances: Option<u64>,
    pub delta_us: Option<u64>,
    /// Rings the service's groups share, group g on ring g mod rings (`None`: one ring per
    /// group, as in the thesis' prototype). Each worker still delivers straight from the rings
    /// and skips the other groups' messages; fewer rings cost fewer threads on few cores.
    pub rings: Option<usize>,
}

impl KvLocalSpec {
    pub fn new(model: ExecModel, workers: usize) -> KvLocalSpec {
        KvLocalSpec {
            model,
            workers,
            load: KvLoadSpec::default(),
            duration: Duration::from_secs(5),
            replicas: 1,
            backend: BackendChoice::Auto,
            pin: true,
            lambda_instances: None,
            delta_us: None,
            rings: None,
        }
    }
}

#[derive(Debug, Error)]
pub enum KvLocalError {
    #[error(transparent)]
    File(#[from] ClusterFileError),
    #[error(transparent)]
    Rings(#[from] crate::multiring::MultiRingError),
    #[error(transparent)]
    Replica(#[from] ReplicaError),
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error("--replicas must be between 1 and {PROCESSES}, not {0}")]
    Replicas(u16),
}

/// Processes of every ring.
pub const PROCESSES: u16 = 3;

/// What a run measured.
#[derive(Clone, Debug, Serialize)]
pub struct KvLocalReport {
    pub service: &'static str,
    pub exec: &'static str,
    pub workers: usize,
    pub rings: usize,
    pub lambda_instances: u64,
    pub delta_us: u64,
    pub replicas: u16,
    pub io_backend: String,
    #[serde(flatten)]
    pub load: KvLoadFigures,
    /// Commands each worker lane of the first replica executed per second, in thousands.
    pub per_thread_kcps: Vec<f64>,
    /// Of the first replica's commands, those executed in synchronous mode.
    pub synchronous: u64,
    /// Every replica's state checksum at the end (equal when they executed the same).
    pub checksums: Vec<u64>,
    #[serde(skip)]
    pub history: Vec<Operation>,
}

/// Runs the store and its clients; see the module docs.
pub fn run_local_kv(spec: &KvLocalSpec) -> Result<KvLocalReport, KvLocalError> {
    if spec.replicas == 0 || spec.replicas > PROCESSES {
        return Err(KvLocalError::Replicas(spec.replicas));
    }
    let lanes = spec.model.lanes(spec.workers);
    let groups = spec.model.groups(lanes);
    let rings = spec.rings.unwrap_or(groups.len()).clamp(1, groups.len());
    let mut base = MultiRingFile::local_on_free_ports(
        ProtocolName::Uring,
        rings as u32,
        PROCESSES,
        1,
        Vec::new(),
    )?;
    // Processes that only order are acceptors alone: learning what they never execute would cost
    // their threads a delivery per instance.
    for ring in &mut base.rings {
        for p in spec.replicas..PROCESSES {
            ring.cluster.nodes[usize::from(p)].roles = vec![crate::node::Role::Acceptor];
        }
    }
    let groups =
        groups.iter().map(|&id| GroupEntry { id, ring: id % rings as u32, m: 1 }).collect();
    // Nobody merges through the process' own merge: replicas' workers merge their taps.
    let learners =
        (0..PROCESSES).map(|process| LearnerEntry { process, groups: Vec::new() }).collect();
    // One ring has nothing to be merged with: no skip instances, unless asked for.
    let lambda =
        spec.lambda_instances.unwrap_or(if rings == 1 { 0 } else { base.lambda_instances });
    let file = MultiRingFile::new(
        lambda,
        spec.delta_us.unwrap_or(base.delta_us),
        base.merge_queue_instances,
        base.rings,
        groups,
        learners,
    )?;
    let space = key_space(spec.load.preload_keys);
    let cores = crate::io::pin::allowed_cores();
    // Processes that only order are acceptors alone (above): they deliver nothing to drain.
    let mut orderers = Vec::new();
    for p in spec.replicas..PROCESSES {
        let opts = MultiRingOptions { backend: spec.backend, ..MultiRingOptions::default() };
        orderers.push(MultiRingNode::start(&file, p, opts)?);
    }
    let mut replicas = Vec::new();
    for p in 0..spec.replicas {
        let replica_spec = ReplicaSpec {
            model: spec.model,
            workers: spec.workers,
            key_space: space,
            clients: SocketAddr::from(([127, 0, 0, 1], 0)),
            backend: spec.backend,
            // Workers spread over the cores from the first; the rings' threads float.
            worker_cores: spec.pin.then(|| cores.clone()),
            ring_cores: None,
            snapshots: None,
        };
        let state = preloaded_store(spec.load.preload_keys);
        replicas.push(Replica::start(&file, p, &replica_spec, ReplicaStart::Fresh(state))?);
    }
    let addresses: Vec<SocketAddr> = replicas.iter().map(Replica::clients_address).collect();
    let io_backend = replicas[0].backend().to_string();

    let client_opts = ClientOptions::new(addresses, spec.model, spec.workers, space);
    let load = KvLoad::start(&spec.load, &client_opts);
    let measured = load.map(|load| {
        let lanes_at = |r: &Replica<KvStore>| -> Vec<u64> {
            r.shared().executed.iter().map(|c| c.0.load(Ordering::Relaxed)).collect()
        };
        std::thread::sleep(spec.load.warmup);
        let lanes_before = lanes_at(&replicas[0]);
        let from = Instant::now();
        std::thread::sleep(spec.duration);
        let lanes_after = lanes_at(&replicas[0]);
        let lanes_secs = from.elapsed().as_secs_f64();
        let per_thread_kcps: Vec<f64> = lanes_after
            .iter()
            .zip(&lanes_before)
            .map(|(a, b)| (a - b) as f64 / lanes_secs / 1e3)
            .collect();
        (load.stop(), per_thread_kcps)
    });
    // Let every replica finish what was ordered before comparing their states.
    settle(&replicas);
    let mut checksums = Vec::new();
    let mut synchronous = 0;
    for (i, r) in replicas.into_iter().enumerate() {
        let report = r.stop();
        checksums.push(report.shared.read().checksum());
        if i == 0 {
            synchronous = report.exec.workers.iter().map(|w| w.synchronous).sum();
        }
    }
    for o in orderers {
        o.stop();
    }
    let (load, per_thread_kcps) = measured?;
    let load = load?;
    Ok(KvLocalReport {
        service: "kv",
        exec: spec.model.name(),
        workers: lanes,
        rings,
        lambda_instances: file.lambda_instances,
        delta_us: file.delta_us,
        replicas: spec.replicas,
        io_backend,
        load: KvLoadFigures::of(&spec.load, &load),
        per_thread_kcps,
        synchronous,
        checksums,
        history: load.history,
    })
}

/// The tree every replica starts with.
pub fn preloaded_store(keys: u64) -> KvStore {
    KvStore::preloaded(keys)
}

/// Waits until every replica's executed count stops moving (all of them executed what the rings
/// ordered), up to 5 s.
fn settle(replicas: &[Replica<KvStore>]) {
    let total = |r: &Replica<KvStore>| -> u64 {
        r.shared().executed.iter().map(|c| c.0.load(Ordering::Relaxed)).sum()
    };
    let give_up = Instant::now() + Duration::from_secs(5);
    let mut last: Vec<u64> = replicas.iter().map(total).collect();
    while Instant::now() < give_up {
        std::thread::sleep(Duration::from_millis(100));
        let now: Vec<u64> = replicas.iter().map(total).collect();
        if now == last && now.windows(2).all(|w| w[0] == w[1]) {
            return;
        }
        last = now;
    }
}
