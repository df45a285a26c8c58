//! The command line of the replicated services: `ringsmr local --service kv`.

use std::io::{self, Write};
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow};
use serde::Serialize;

use ringsmr::apps::kv::store::KvStore;
use ringsmr::service::config::{ReplicaEntry, ServiceFile};
use ringsmr::service::kv_load::{KvLoad, KvLoadFigures, checksums};
use ringsmr::service::rejoin::RejoiningReplica;
use ringsmr::service::snapshot::SnapshotDir;
use ringsmr::service::{ClientOptions, ReplicaSpec, SnapshotSpec};
use ringsmr::smr::Service;

use ringsmr::apps::kv::workload::{KeyDist, Mix};
use ringsmr::io::BackendChoice;
use ringsmr::service::kv_load::KvLoadSpec;
use ringsmr::service::kv_local::{KvLocalReport, KvLocalSpec, run_local_kv};
use ringsmr::smr::ExecModel;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ServiceName {
    /// The thesis' B+-tree key-value store (6.5.2).
    Kv,
}

/// The options of `ringsmr local --service kv`.
#[derive(clap::Args, Debug)]
pub struct ServiceArgs {
    /// Run a replicated service instead of a bare ordering protocol.
    #[arg(long, value_enum)]
    pub service: Option<ServiceName>,
    /// Service: the replicas' execution model: smr, spsmr, psmr or opt-psmr.
    #[arg(long, default_value = "smr")]
    pub exec: String,
    /// Service: worker threads per replica (MPL; SMR runs one).
    #[arg(long, default_value_t = 2)]
    pub workers: usize,
    /// Service: processes of the three that execute (the others only order).
    #[arg(long, default_value_t = 1)]
    pub replicas: u16,
    /// Service: rings the groups share, group g on ring g mod N (default: one ring per group).
    #[arg(long)]
    pub service_rings: Option<usize>,
    /// Service: keys preloaded in every replica's tree.
    #[arg(long, default_value_t = 1_000_000)]
    pub preload: u64,
    #[command(flatten)]
    pub load: ServiceLoadArgs,
}

/// The clients' options, `local --service kv`'s and `bench`'s against a service file.
#[derive(clap::Args, Debug)]
pub struct ServiceLoadArgs {
    /// Service: read, update, read-update, insert, or mixed:<percent of inserts and deletes>.
    #[arg(long, default_value = "read")]
    pub workload: String,
    /// Service: key choice, uniform, zipf or zipf:<exponent>.
    #[arg(long, default_value = "uniform")]
    pub keys: String,
    /// Service: client threads, each a closed loop.
    #[arg(long, default_value_t = 4)]
    pub clients: usize,
    /// Service: commands each client keeps outstanding (at most 64).
    #[arg(long, default_value_t = 50)]
    pub client_window: usize,
    /// Service: bytes of each command (at least 17).
    #[arg(long, default_value_t = 17)]
    pub command_bytes: usize,
    /// Service: seconds of warm-up before measuring.
    #[arg(long, default_value_t = 1.0)]
    pub warmup: f64,
}

impl ServiceLoadArgs {
    fn spec(&self, preload_keys: u64) -> Result<KvLoadSpec> {
        if !self.warmup.is_finite() || self.warmup < 0.0 {
            return Err(anyhow!("--warmup must not be negative"));
        }
        Ok(KvLoadSpec {
            mix: Mix::parse(&self.workload).map_err(|e| anyhow!("--workload: {e}"))?,
            keys: KeyDist::parse(&self.keys).map_err(|e| anyhow!("--keys: {e}"))?,
            preload_keys,
            clients: self.clients.max(1),
            window: self.client_window,
            command_bytes: self.command_bytes,
            warmup: Duration::from_secs_f64(self.warmup),
            record_history: false,
            seed: 1,
        })
    }
}

/// Runs `ringsmr local --service kv` and prints its report.
pub fn run_local_service(
    a: &ServiceArgs,
    multiring: &crate::multiring_cli::MultiRingArgs,
    duration_secs: f64,
    json: bool,
) -> Result<()> {
    let model = ExecModel::parse(&a.exec)
        .ok_or_else(|| anyhow!("--exec `{}`: expected smr, spsmr, psmr or opt-psmr", a.exec))?;
    if !(duration_secs.is_finite() && duration_secs > 0.0) {
        return Err(anyhow!("--duration must be positive"));
    }
    let spec = KvLocalSpec {
        load: a.load.spec(a.preload)?,
        duration: Duration::from_secs_f64(duration_secs),
        replicas: a.replicas,
        backend: BackendChoice::from_env()?,
        lambda_instances: multiring.lambda,
        delta_us: multiring.delta_us,
        rings: a.service_rings,
        ..KvLocalSpec::new(model, a.workers)
    };
    let report = run_local_kv(&spec)?;
    let mut out = io::stdout().lock();
    if json {
        writeln!(out, "{}", serde_json::to_string(&report)?)?;
    } else {
        write!(out, "{}", table(&report))?;
    }
    Ok(())
}

fn table(r: &KvLocalReport) -> String {
    let threads: Vec<String> = r.per_thread_kcps.iter().map(|k| format!("{k:.1}")).collect();
    format!(
        "service      kv ({} workers of {}, {} rings (lambda {} per {} us), {} replica(s), {})\n\
         {}\
         per thread   {} Kcps\n\
         synchronous  {} commands\n\
         checksums    {}\n",
        r.workers,
        r.exec,
        r.rings,
        r.lambda_instances,
        r.delta_us,
        r.replicas,
        r.io_backend,
        r.load.table_lines(),
        threads.join(" "),
        r.synchronous,
        r.checksums.iter().map(|c| format!("{c:016x}")).collect::<Vec<_>>().join(" "),
    )
}

/// `ringsmr node --config SERVICE_FILE --id P`: process P of the service. A replica runs its
/// rings, front and workers until SIGTERM or SIGINT, from the newest snapshot of its own and the
/// other replicas' (with checkpoints), else from a freshly preloaded store; it prints `progress
/// executed N` every `progress_ms` and, at the end, `stopped executed N checksum X` (stdout). A
/// process that is not a replica runs its rings as the Multi-Ring file says.
pub fn run_service_node(path: &Path, process: u16, progress_ms: Option<u64>) -> Result<ExitCode> {
    let file = ServiceFile::load(path)?;
    let Some(entry) = file.replica(process).cloned() else {
        let run = crate::multiring_cli::NodeRun::only_ordering(process);
        return crate::multiring_cli::run_node_multiring(&file.multiring_path, run);
    };
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(signal, Arc::clone(&stop))?;
    }
    let spec = ReplicaSpec {
        model: file.model,
        workers: file.workers,
        key_space: file.key_space(),
        clients: entry.clients,
        backend: BackendChoice::from_env()?,
        worker_cores: Some(ringsmr::io::pin::allowed_cores()),
        ring_cores: None,
        snapshots: snapshot_spec(&file, &entry)?,
    };
    let t0 = Instant::now();
    let others: Vec<_> = file
        .replicas
        .iter()
        .filter(|r| r.process != process)
        .filter_map(|r| Some((r.process, r.snapshots_address()?)))
        .collect();
    let preload = file.preload_keys;
    let (mut replica, from) =
        RejoiningReplica::start(&file.multiring, process, spec, others, || {
            KvStore::preloaded(preload)
        })?;
    let from = from.unwrap_or_else(|| format!("{preload} keys preloaded"));
    let running = replica.replica().expect("just started");
    eprintln!(
        "ringsmr: replica {process} of kv ({}, {} workers, from {from} in {:.1} s) takes clients \
         on {} ({} backend)",
        file.model.name(),
        running.lanes(),
        t0.elapsed().as_secs_f64(),
        running.clients_address(),
        running.backend()
    );
    println!("ready clients {}", running.clients_address());
    let executed = |r: &RejoiningReplica<KvStore>| -> u64 {
        let Some(r) = r.replica() else { return 0 };
        r.shared().executed.iter().map(|c| c.0.load(Ordering::Relaxed)).sum()
    };
    let every = progress_ms.map(Duration::from_millis);
    let mut next = Instant::now();
    while !stop.load(Ordering::Acquire) {
        std::thread::sleep(Duration::from_millis(10));
        let t0 = Instant::now();
        match replica.tend(&stop) {
            Ok(None) => {}
            Ok(Some(from)) => {
                eprintln!(
                    "ringsmr: replica {process}: came back from {from} in {:.1} s",
                    t0.elapsed().as_secs_f64()
                );
                println!("rejoined from {from}");
            }
            Err(e) => {
                return Err(anyhow!(
                    "replica {process} fell behind what the rings keep and could not come back \
                     from a newer snapshot: {e}"
                ));
            }
        }
        if let Some(every) = every
            && Instant::now() >= next
        {
            println!("progress executed {}", executed(&replica));
            next += every;
        }
    }
    let Some(report) = replica.stop() else { return Ok(ExitCode::FAILURE) };
    let executed: u64 = report.shared.executed.iter().map(|c| c.0.load(Ordering::Relaxed)).sum();
    println!("stopped executed {executed} checksum {:016x}", report.shared.read().checksum());
    Ok(ExitCode::SUCCESS)
}

/// Where replica `entry` keeps and serves its snapshots, with checkpoints.
fn snapshot_spec(file: &ServiceFile, entry: &ReplicaEntry) -> Result<Option<SnapshotSpec>> {
    if file.checkpoint_interval_ms == 0 {
        return Ok(None);
    }
    let dir = entry.snapshot_dir.clone().expect("a loaded file names every replica's directory");
    let dir = SnapshotDir::open(&dir)
        .with_context(|| format!("the replica's snapshot directory {}", dir.display()))?;
    Ok(Some(SnapshotSpec {
        dir,
        serve_at: entry.snapshots_address().expect("validated"),
        interval: Duration::from_millis(file.checkpoint_interval_ms),
    }))
}

/// What `ringsmr bench` against a service file measured.
#[derive(Debug, Serialize)]
pub struct KvBenchReport {
    pub service: &'static str,
    pub exec: &'static str,
    pub workers: usize,
    pub replicas: usize,
    #[serde(flatten)]
    pub load: KvLoadFigures,
    /// Every replica's state checksum at one place in the order, after the load.
    pub checksums: Vec<u64>,
}

/// `ringsmr bench --config SERVICE_FILE`: closed-loop clients against the file's replicas for
/// `duration_secs` after the warm-up, then every replica's checksum at one place in the order.
pub fn run_bench_service(
    path: &Path,
    a: &ServiceLoadArgs,
    duration_secs: f64,
    json: bool,
) -> Result<()> {
    if !(duration_secs.is_finite() && duration_secs > 0.0) {
        return Err(anyhow!("--duration must be positive"));
    }
    let file = ServiceFile::load(path)?;
    let spec = a.spec(file.preload_keys)?;
    let opts =
        ClientOptions::new(file.client_addresses(), file.model, file.workers, file.key_space());
    let load = KvLoad::start(&spec, &opts)?;
    std::thread::sleep(spec.warmup + Duration::from_secs_f64(duration_secs));
    let load = load.stop()?;
    let checksums = checksums(&opts, CHECKSUMS_WITHIN).map_err(|e| anyhow!("checksums: {e}"))?;
    let r = KvBenchReport {
        service: "kv",
        exec: file.model.name(),
        workers: file.model.lanes(file.workers),
        replicas: file.replicas.len(),
        load: KvLoadFigures::of(&spec, &load),
        checksums,
    };
    let mut out = io::stdout().lock();
    if json {
        writeln!(out, "{}", serde_json::to_string(&r)?)?;
        return Ok(());
    }
    let same = r.checksums.windows(2).all(|w| w[0] == w[1]);
    write!(
        out,
        "service      kv ({} workers of {}, {} replicas, from {})\n{}checksums    {} ({})\n",
        r.workers,
        r.exec,
        r.replicas,
        path.display(),
        r.load.table_lines(),
        r.checksums.iter().map(|c| format!("{c:016x}")).collect::<Vec<_>>().join(" "),
        if same { "equal" } else { "DIFFERENT" },
    )?;
    Ok(())
}

/// How long the replicas get to answer the checksum command after a bench.
const CHECKSUMS_WITHIN: Duration = Duration::from_secs(10);
