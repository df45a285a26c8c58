//! The `ringsmr` command.

mod multiring_cli;
mod service_cli;

use std::io::{self, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;

use anyhow::{Result, bail};
use clap::{Parser, Subcommand, ValueEnum};

use ringsmr::io::BackendChoice;
use ringsmr::io::scheduling::Scheduling;
use ringsmr::multiring::load::MultiRingLoadReport;
use ringsmr::node::baseline::RingSenders;
use ringsmr::node::checksum::StreamChecksum;
use ringsmr::node::config::StorageMode;
use ringsmr::node::{
    BenchSpec, ClusterFile, ControlServer, LoadSpec, Node, NodeOptions, ProtocolName, Role,
    StreamTrace, Workload, run_bench, run_local as run_load,
};
use ringsmr::proto::{Protocol, VALUE_OVERHEAD_BYTES};
use ringsmr::service::config::is_service_file;
use ringsmr::sim::multiring::{self, MultiRingCoverage, MultiRingSimConfig};
use ringsmr::sim::{self, SimConfig};

#[derive(Parser)]
#[command(name = "ringsmr", version, about = "State-machine replication on Ring Paxos")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum ProtocolArg {
    /// U-Ring Paxos: every process on one ring of unicast links.
    Uring,
    /// M-Ring Paxos: ip-multicast values, votes along a ring of f+1 acceptors.
    Mring,
    /// Multi-Ring Paxos: several rings, one group each, merged at the learners (`local`:
    /// `--rings`, each `--ring-protocol`; `sim`: 2–4 rings of either kind, each with its own faults,
    /// and every learner's merge checked).
    Multiring,
}

#[derive(Subcommand)]
enum Command {
    /// Start a cluster inside this process on loopback (real sockets), load it for a while and print
    /// throughput, latency and CPU. With no options: 3-node U-Ring Paxos, 10 s.
    Local(LocalArgs),
    /// Run one process of the cluster described by a cluster file (or a Multi-Ring file). It also
    /// listens for `ringsmr bench` on the node's `control` address (Multi-Ring: its node's in its
    /// lowest ring). With a service file: a replica of the service, serving its clients.
    Node(NodeArgs),
    /// Load a cluster of `ringsmr node` processes (possibly on other hosts) through their control
    /// endpoints and print throughput, latency and CPU like `local`. With a service file: clients
    /// of its replicas, reporting Kcps, latency and the replicas' checksums.
    Bench(BenchArgs),
    /// Run the protocol cores in the deterministic simulator with faults and check every invariant.
    Sim {
        #[arg(long, value_enum, default_value = "uring")]
        protocol: ProtocolArg,
        /// How many seeds to run, starting at --first-seed.
        #[arg(long, default_value_t = 100)]
        seeds: u64,
        #[arg(long, default_value_t = 0)]
        first_seed: u64,
        /// Run only this seed (also read from RINGSMR_SEED) and print its fault plan.
        #[arg(long)]
        seed: Option<u64>,
        /// Acceptor failures tolerated (2f+1 acceptors). Multi-Ring runs draw f for each ring.
        #[arg(long, default_value_t = 1)]
        f: usize,
        /// Print one line per seed, not only failures.
        #[arg(short, long)]
        verbose: bool,
    },
}

#[derive(clap::Args)]
struct LocalArgs {
    #[arg(long, value_enum, default_value = "uring")]
    protocol: ProtocolArg,
    #[arg(long, default_value_t = 3)]
    nodes: u16,
    /// Acceptor failures tolerated (the first 2f+1 nodes are acceptors).
    #[arg(long, default_value_t = 1)]
    f: usize,
    #[command(flatten)]
    w: WorkloadArgs,
    /// Which stages of the U-Ring baseline send: `first` (a chain from one sender, what
    /// `efficiency` has always been measured against) or `every` (a closed ring in which every
    /// stage sends, the traffic of this run, where every node proposes).
    #[arg(long, value_enum, default_value = "first")]
    baseline_senders: BaselineSenders,
    /// Largest batch of one instance (default 32768; M-Ring: 8192, one datagram).
    #[arg(long)]
    batch: Option<usize>,
    /// Instances open at once at the coordinator.
    #[arg(long, default_value_t = 32)]
    window: u32,
    /// Bytes of values in the open instances.
    #[arg(long, default_value_t = 1 << 20)]
    window_bytes: usize,
    /// Where the acceptors keep their promises and votes: `memory`, `async` (logged, synced every
    /// 10 ms) or `sync` (durable before they are sent; Recoverable Ring Paxos).
    #[arg(long, value_enum, default_value = "memory")]
    storage: StorageArg,
    /// Where the acceptors' logs go with `--storage async|sync` (kept afterwards); default: a new
    /// directory under the system's temporary directory, removed at the end of the run.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    #[command(flatten)]
    multiring: multiring_cli::MultiRingArgs,
    #[command(flatten)]
    service: service_cli::ServiceArgs,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum StorageArg {
    Memory,
    Async,
    Sync,
}

/// The workload options `local` and `bench` share.
#[derive(clap::Args)]
struct WorkloadArgs {
    /// Bytes of each proposed value.
    #[arg(long, default_value_t = 1024)]
    payload: usize,
    /// Seconds of load (and of the baseline).
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Values each proposer keeps outstanding (default: the coordinator's window of bytes shared
    /// among the proposers; more only waits in the coordinator's queue).
    #[arg(long)]
    outstanding: Option<usize>,
    /// First measure the raw transport (between the same processes, on the same hosts) and report
    /// efficiency = protocol / raw.
    #[arg(long)]
    baseline: bool,
    /// Print one JSON object instead of the table.
    #[arg(long)]
    json: bool,
}

/// Which stages of the U-Ring baseline send bytes of their own.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
enum BaselineSenders {
    /// Every stage, around a closed ring: the traffic of a run in which every node proposes.
    Every,
    /// The first stage only, along a chain to the last: the traffic of a single proposer.
    First,
}

impl WorkloadArgs {
    /// The workload these options ask for, refused with the option named when no run can use it.
    fn workload(&self, window_bytes: usize, proposers: usize) -> Result<Workload> {
        let outstanding = self.outstanding(window_bytes, proposers);
        Workload::new(self.payload, self.duration, outstanding).map_err(|e| {
            anyhow::anyhow!(
                "{}",
                e.replace("`payload_bytes`", "--payload")
                    .replace("`duration_secs`", "--duration")
                    .replace("`outstanding_per_proposer`", "--outstanding")
            )
        })
    }

    /// `--outstanding`, or each of `proposers` proposers' share of what `window_bytes` hold: with
    /// more in flight, values only queue at the coordinator and latency grows with no gain in
    /// throughput (a third of the latency and 10% more throughput on 3 nodes, 1 KB payloads).
    fn outstanding(&self, window_bytes: usize, proposers: usize) -> usize {
        let per_value_bytes = self.payload + VALUE_OVERHEAD_BYTES;
        self.outstanding.unwrap_or((window_bytes / per_value_bytes / proposers.max(1)).max(256))
    }

    /// Prints `report` as the table or, with `--json`, as one JSON object.
    fn print(&self, report: &ringsmr::node::LoadReport) -> Result<()> {
        let mut out = io::stdout().lock();
        if self.json {
            writeln!(out, "{}", report.to_json())?;
        } else {
            write!(out, "{}", report.table())?;
        }
        Ok(())
    }

    /// Prints a Multi-Ring `report` the same way (`local` and `bench` alike).
    fn print_multiring(&self, report: &MultiRingLoadReport) -> Result<()> {
        let mut out = io::stdout().lock();
        if self.json {
            writeln!(out, "{}", report.to_json())?;
        } else {
            write!(out, "{}", report.table())?;
        }
        Ok(())
    }
}

#[derive(clap::Args)]
struct BenchArgs {
    /// The cluster file (TOML) the node processes run, or the Multi-Ring file (`[[ring]]` tables;
    /// each process then serves on its node's `control` in its lowest ring; `--outstanding` is per
    /// group, and there is no `--baseline`), or a service file (`multiring = ...`: clients of its
    /// replicas, with the `Service:` options).
    #[arg(long)]
    config: std::path::PathBuf,
    #[command(flatten)]
    w: WorkloadArgs,
    /// With a service file: the clients.
    #[command(flatten)]
    service: service_cli::ServiceLoadArgs,
}

#[derive(clap::Args)]
struct NodeArgs {
    /// The cluster file (TOML), a Multi-Ring file (`[[ring]]` tables) or a service file
    /// (`multiring = ...`: a replica of the service, or a process that only orders).
    #[arg(long)]
    config: std::path::PathBuf,
    /// This process' node id in the file.
    #[arg(long)]
    id: u16,
    /// Propose this many values, then only learn.
    #[arg(long, default_value_t = 0)]
    propose: u64,
    /// Bytes of each proposed value.
    #[arg(long, default_value_t = 64)]
    payload: usize,
    /// Print `delivered N checksum X` once N values were delivered.
    #[arg(long)]
    expect: Option<u64>,
    /// Print `progress N checksum X` every this many milliseconds.
    #[arg(long)]
    progress_ms: Option<u64>,
    /// Propose at most this many values a second, 10 ms' worth at a time (default: as fast as the
    /// node takes them).
    #[arg(long)]
    propose_rate: Option<u64>,
    /// Print `at N checksum X` each time the delivered stream reaches a multiple N of this many
    /// values: learners (and restarts of one) can be compared at every multiple they all passed.
    #[arg(long)]
    checksum_every: Option<u64>,
    /// Store a snapshot (the learner's checkpoint and the delivered stream's checksum) every this
    /// many instances (0: never). A restarted node goes on from its snapshot, and a learner that
    /// fell behind what the acceptors keep is given a snapshot by one that is ahead.
    #[arg(long, default_value_t = 0)]
    checkpoint_every: u64,
    /// Where the snapshot is kept (default: the node's directory in the cluster file).
    #[arg(long)]
    snapshot_dir: Option<PathBuf>,
    /// Multi-Ring file: the groups to multicast to, round-robin, and those a `ringsmr bench` load
    /// multicasts to (default: every group of a ring in which this process proposes).
    #[arg(long, value_delimiter = ',')]
    groups: Vec<u32>,
    /// Multi-Ring file: run a measured load of this many seconds (a window of messages per group,
    /// or `--propose-rate` in all) and print its figures as one JSON line; then keep taking part.
    #[arg(long)]
    load_secs: Option<f64>,
    /// Multi-Ring file, with `--load-secs`: messages of its own this process keeps in flight per
    /// group (without `--propose-rate`).
    #[arg(long, default_value_t = 1000)]
    outstanding: usize,
    /// Multi-Ring file, with `--load-secs`: write the merged delivery, sampled every
    /// `--series-ms`, to this CSV.
    #[arg(long)]
    series: Option<PathBuf>,
    #[arg(long, default_value_t = 100)]
    series_ms: u64,
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(code) => code,
        // The reader of our output went away (`ringsmr sim ... | head`): nothing left to say.
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ringsmr: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.downcast_ref::<io::Error>().is_some_and(|e| e.kind() == io::ErrorKind::BrokenPipe)
}

fn run(cli: Cli) -> Result<ExitCode> {
    if !matches!(cli.command, Command::Sim { .. }) {
        // Before any thread starts, so nodes, the load generator and the baseline all inherit it.
        let scheduling = Scheduling::from_env()?;
        if let Err(e) = scheduling.apply_to_current_thread() {
            eprintln!(
                "ringsmr: warning: scheduling policy {} refused ({e}); running under the default",
                scheduling.name()
            );
        }
    }
    match cli.command {
        Command::Sim { protocol, seeds, first_seed, seed, f, verbose } => {
            run_sim(protocol, seeds, first_seed, seed, f, verbose)
        }
        Command::Local(args) => run_local(args),
        Command::Node(args) => run_node(args),
        Command::Bench(args) => run_bench_command(args),
    }
}

fn run_local(a: LocalArgs) -> Result<ExitCode> {
    if a.service.service.is_some() {
        service_cli::run_local_service(&a.service, &a.multiring, a.w.duration, a.w.json)?;
        return Ok(ExitCode::SUCCESS);
    }
    let protocol = match a.protocol {
        ProtocolArg::Uring => ProtocolName::Uring,
        ProtocolArg::Mring => ProtocolName::Mring,
        ProtocolArg::Multiring => return run_local_multiring(a),
    };
    if a.nodes < 2 {
        bail!("--nodes must be at least 2");
    }
    let mut cluster = ClusterFile::local_on_free_ports(protocol, a.nodes, a.f)?;
    cluster.batch_bytes = a.batch.unwrap_or(match protocol {
        ProtocolName::Uring => 32 * 1024,
        ProtocolName::Mring => 8 * 1024,
    });
    cluster.window_instances = a.window;
    cluster.window_bytes = a.window_bytes;
    cluster.storage = match a.storage {
        StorageArg::Memory => StorageMode::Memory,
        StorageArg::Async => StorageMode::Async,
        StorageArg::Sync => StorageMode::Sync,
    };
    // A directory of the run's own unless one is named; removed when the run ends.
    let scratch = match (&a.data_dir, a.storage) {
        (_, StorageArg::Memory) | (Some(_), _) => None,
        (None, _) => Some(ScratchDir::new()?),
    };
    cluster.data_dir = a.data_dir.clone().or_else(|| scratch.as_ref().map(|s| s.0.clone()));
    cluster.validate()?;
    let proposers = cluster.nodes.iter().filter(|n| n.roles.contains(&Role::Proposer)).count();
    let workload = a.w.workload(a.window_bytes, proposers)?;
    let spec = LoadSpec {
        cluster,
        payload_bytes: workload.payload_bytes,
        duration: workload.duration,
        outstanding_per_proposer: workload.outstanding_per_proposer,
        backend: BackendChoice::from_env()?,
        baseline: a.w.baseline,
        baseline_senders: match a.baseline_senders {
            BaselineSenders::Every => RingSenders::Every,
            BaselineSenders::First => RingSenders::First,
        },
        progress: !a.w.json,
    };
    a.w.print(&run_load(&spec)?)?;
    drop(scratch);
    Ok(ExitCode::SUCCESS)
}

fn run_local_multiring(a: LocalArgs) -> Result<ExitCode> {
    if a.storage != StorageArg::Memory {
        bail!(
            "--storage with --protocol multiring: give each ring's cluster file a `storage` and run `ringsmr node` processes"
        );
    }
    if a.w.baseline {
        bail!("--baseline is for one ring; compare `--rings 1` with more instead");
    }
    let common = multiring_cli::LocalCommon {
        processes: a.nodes,
        f: a.f,
        batch_bytes: a.batch,
        window_instances: a.window,
        window_bytes: a.window_bytes,
        payload_bytes: a.w.payload,
        duration_secs: a.w.duration,
        outstanding: a.w.outstanding,
    };
    let report = multiring_cli::run_local_multiring(common, &a.multiring)?;
    a.w.print_multiring(&report)?;
    Ok(ExitCode::SUCCESS)
}

fn run_bench_command(a: BenchArgs) -> Result<ExitCode> {
    if is_service_file(&a.config)? {
        service_cli::run_bench_service(&a.config, &a.service, a.w.duration, a.w.json)?;
        return Ok(ExitCode::SUCCESS);
    }
    if multiring_cli::is_multiring_file(&a.config)? {
        if a.w.baseline {
            bail!(
                "--baseline is for a cluster file of one ring; with a Multi-Ring file, compare with \
                 a Multi-Ring file of one ring instead"
            );
        }
        let common = multiring_cli::BenchCommon {
            payload_bytes: a.w.payload,
            duration_secs: a.w.duration,
            outstanding: a.w.outstanding,
            progress: !a.w.json && io::stderr().is_terminal(),
        };
        a.w.print_multiring(&multiring_cli::run_bench_multiring(&a.config, common)?)?;
        return Ok(ExitCode::SUCCESS);
    }
    let cluster = ClusterFile::load(&a.config)?;
    let proposers = cluster.nodes.iter().filter(|n| n.roles.contains(&Role::Proposer)).count();
    let workload = a.w.workload(cluster.window_bytes, proposers)?;
    let spec = BenchSpec {
        cluster,
        config_path: a.config.display().to_string(),
        workload,
        baseline: a.w.baseline,
        progress: !a.w.json && io::stderr().is_terminal(),
    };
    a.w.print(&run_bench(&spec)?)?;
    Ok(ExitCode::SUCCESS)
}

/// A directory of `ringsmr local`'s own for the acceptors' logs, removed when dropped.
struct ScratchDir(PathBuf);

impl ScratchDir {
    fn new() -> Result<ScratchDir> {
        let dir = std::env::temp_dir().join(format!("ringsmr-local-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).map_err(|e| {
            anyhow::anyhow!("creating {} for the acceptor logs: {e}", dir.display())
        })?;
        Ok(ScratchDir(dir))
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The payload of value `seq` of node `id`: the same on every run, so runs can be compared.
fn node_payload(id: u16, seq: u64, len: usize) -> Bytes {
    let mut v = Vec::with_capacity(len);
    let word = (u64::from(id) << 48) ^ seq;
    while v.len() < len {
        v.extend_from_slice(&word.to_le_bytes());
    }
    v.truncate(len);
    Bytes::from(v)
}

fn run_node(a: NodeArgs) -> Result<ExitCode> {
    if is_service_file(&a.config)? {
        return service_cli::run_service_node(&a.config, a.id, a.progress_ms);
    }
    if multiring_cli::is_multiring_file(&a.config)? {
        let run = multiring_cli::NodeRun {
            process: a.id,
            propose: a.propose,
            groups: a.groups.clone(),
            payload_bytes: a.payload,
            propose_rate: a.propose_rate,
            expect: a.expect,
            progress_ms: a.progress_ms,
            load_secs: a.load_secs,
            outstanding: a.outstanding,
            series: a.series.clone(),
            series_ms: a.series_ms,
        };
        return multiring_cli::run_node_multiring(&a.config, run);
    }
    let cluster = ClusterFile::load(&a.config)?;
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(signal, Arc::clone(&stop))?;
    }
    let backend = BackendChoice::from_env()?;
    let opts = NodeOptions {
        backend,
        checkpoint_interval_instances: a.checkpoint_every,
        snapshot_dir: a.snapshot_dir.clone(),
        ..NodeOptions::default()
    };
    let mut node = Node::start(&cluster, a.id, opts)?;
    eprintln!(
        "ringsmr: node {} of cluster {} up on {} ({} backend)",
        a.id,
        cluster.cluster_id,
        cluster.nodes[usize::from(a.id)].address,
        node.backend()
    );
    // The control endpoint is how `ringsmr bench` reaches this process. Without it the node still
    // runs the protocol, so only an address the cluster file names explicitly is a must.
    let control = match ControlServer::start(&cluster, a.id, backend, node.backend()) {
        Ok(c) => {
            eprintln!("ringsmr: node {} takes bench commands on {}", a.id, c.local_addr());
            Some(c)
        }
        Err(e) if cluster.nodes[usize::from(a.id)].control.is_none() => {
            eprintln!("ringsmr: {e}; `ringsmr bench` cannot reach this node");
            None
        }
        Err(e) => return Err(e.into()),
    };
    let started = Instant::now();
    let mut sum = StreamChecksum::default();
    // The order of every delivery since the start, for `ringsmr bench` to compare learners.
    let mut trace = StreamTrace::default();
    // Only a line that prints it needs the payload checksum kept up to date during a bench load.
    let payload_checksum_read = a.expect.is_some() || a.progress_ms.is_some();
    let mut proposed = 0u64;
    let mut reported = false;
    let mut next_progress = a.progress_ms.map(|_| started);
    let mut out = io::stdout();
    while !stop.load(Ordering::Relaxed) {
        // With a rate, only as many as the time since the start allows, in steps of 10 ms' worth
        // (so the proposer forms batches of them, not one batch per value).
        let allowed = a.propose_rate.map_or(a.propose, |r| {
            let due = a.propose.min((started.elapsed().as_secs_f64() * r as f64) as u64);
            let step = (r / 100).max(1);
            if due >= proposed + step || due == a.propose { due } else { proposed }
        });
        while proposed < allowed {
            if node.propose(node_payload(a.id, proposed, a.payload)).is_err() {
                break;
            }
            proposed += 1;
        }
        let wait =
            if proposed < a.propose { Duration::from_millis(1) } else { Duration::from_millis(20) };
        if let Some(d) = node.recv_timeout(wait) {
            let mut next = Some(d);
            while let Some(d) = next {
                sum.add(&d);
                trace.add(d.instance, d.id);
                if a.checksum_every.is_some_and(|k| k > 0 && sum.values % k == 0) {
                    writeln!(out, "at {} checksum {:016x}", sum.values, sum.value())?;
                }
                // The checksum at exactly `expect` values, whatever arrives after them.
                if a.expect == Some(sum.values) && !reported {
                    reported = true;
                    writeln!(out, "delivered {} checksum {:016x}", sum.values, sum.value())?;
                    out.flush()?;
                }
                next = node.try_recv();
            }
        }
        // `try_recv` stops at a checkpoint: the stream's checksum is exactly the checkpoint's.
        if let Some(cp) = node.take_checkpoint() {
            let state = sum.to_bytes();
            node.store_snapshot(&cp, |w| w.write_all(&state))?;
        }
        // The stream goes on from a snapshot: the one stored before a restart, or one that state
        // transfer brought. Its checksum is the state.
        if let Some(snapshot) = node.take_installed_snapshot() {
            let at = snapshot.checkpoint.next_instance;
            let state = snapshot.state.read_all()?;
            sum = StreamChecksum::from_bytes(&state).ok_or_else(|| {
                anyhow::anyhow!("the snapshot at instance {at} does not hold a stream checksum")
            })?;
            eprintln!(
                "ringsmr: node {}: state restored from the snapshot at instance {at} ({} values)",
                a.id, sum.values
            );
            if a.expect == Some(sum.values) && !reported {
                reported = true;
                writeln!(out, "delivered {} checksum {:016x}", sum.values, sum.value())?;
                out.flush()?;
            }
        }
        if let Some(c) = &control {
            let sum = payload_checksum_read.then_some(&mut sum);
            c.serve_pending_load(&mut node, &mut trace, sum, &stop);
        }
        if let (Some(at), Some(ms)) = (next_progress, a.progress_ms)
            && Instant::now() >= at
        {
            next_progress = Some(at + Duration::from_millis(ms));
            writeln!(
                out,
                "progress {} checksum {:016x} at_ms {}",
                sum.values,
                sum.value(),
                started.elapsed().as_millis()
            )?;
            out.flush()?;
        }
    }
    let report = node.stop();
    eprintln!(
        "ringsmr: node {} stopped: {} values delivered, {:.2} s CPU; {:?}; {:?}; {} malformed \
         control commands",
        a.id,
        report.delivered_values,
        report.cpu.as_secs_f64(),
        report.runtime,
        report.core,
        control.as_ref().map_or(0, ControlServer::malformed_commands)
    );
    Ok(ExitCode::SUCCESS)
}

fn run_sim(
    protocol: ProtocolArg,
    seeds: u64,
    first_seed: u64,
    seed: Option<u64>,
    f: usize,
    verbose: bool,
) -> Result<ExitCode> {
    let protocol = match protocol {
        ProtocolArg::Uring => Protocol::URing,
        ProtocolArg::Mring => Protocol::MRing,
        ProtocolArg::Multiring => return run_multiring_sim(seeds, first_seed, seed, verbose),
    };
    if f == 0 || f > 3 {
        bail!("--f must be 1, 2 or 3 (the simulator runs 2f+1 acceptors), got {f}");
    }
    let (single, seeds) = seeds_to_run(seeds, first_seed, seed);
    let started = Instant::now();
    let mut out = io::stdout().lock();
    let mut failed = Vec::new();
    let mut coverage = sim::Coverage::default();
    for cfg in seeds.iter().flat_map(|&s| SimConfig::in_both_storage_modes(protocol, f, s)) {
        let s = cfg.seed;
        let report = sim::run(cfg);
        coverage.add(&report);
        if verbose || single.is_some() || !report.passed() {
            writeln!(out, "{}", report.summary())?;
        }
        if single.is_some() {
            writeln!(out, "  config: {:?}", report.config)?;
            writeln!(out, "  faults: {:?}", report.plan)?;
            for p in &report.processes {
                writeln!(out, "  {p:?}")?;
            }
        }
        for v in &report.violations {
            writeln!(out, "  {v}")?;
        }
        if !report.passed() && failed.last() != Some(&s) {
            failed.push(s);
        }
    }
    let what = format!("{} seeds (each in-memory and recoverable)", seeds.len());
    tally(&mut out, &what, &failed, started, single.is_none().then_some(&coverage))
}

/// The seeds a `sim` command runs: `seed` (or `RINGSMR_SEED`) alone, or `seeds` from `first_seed`;
/// and the single one, if so.
fn seeds_to_run(seeds: u64, first_seed: u64, seed: Option<u64>) -> (Option<u64>, Vec<u64>) {
    let single = seed.or_else(sim::replay_seed);
    match single {
        Some(s) => (single, vec![s]),
        None => (None, (first_seed..first_seed + seeds).collect()),
    }
}

/// The last lines of a `sim` command: how many seeds failed, which, and what the runs exercised.
fn tally(
    out: &mut impl Write,
    what: &str,
    failed: &[u64],
    started: Instant,
    coverage: Option<&dyn std::fmt::Display>,
) -> Result<ExitCode> {
    writeln!(
        out,
        "{what}, {} failed, {:.1} s{}",
        failed.len(),
        started.elapsed().as_secs_f64(),
        if failed.is_empty() { String::new() } else { format!(" — failing seeds: {failed:?}") }
    )?;
    if let Some(coverage) = coverage {
        writeln!(out, "exercised, {coverage}")?;
    }
    Ok(if failed.is_empty() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

/// `ringsmr sim --protocol multiring`: Multi-Ring runs of several rings each (`sim::multiring`).
fn run_multiring_sim(
    seeds: u64,
    first_seed: u64,
    seed: Option<u64>,
    verbose: bool,
) -> Result<ExitCode> {
    let (single, seeds) = seeds_to_run(seeds, first_seed, seed);
    let started = Instant::now();
    let mut out = io::stdout().lock();
    let mut failed = Vec::new();
    let mut coverage = MultiRingCoverage::default();
    for &s in &seeds {
        let report = multiring::run(MultiRingSimConfig::for_seed(s));
        coverage.add(&report);
        if verbose || single.is_some() || !report.passed() {
            writeln!(out, "{}", report.summary())?;
        }
        if single.is_some() {
            for (g, ring) in report.rings.iter().enumerate() {
                writeln!(out, "  ring {g}: {}", ring.summary())?;
                writeln!(out, "    config: {:?}", ring.config)?;
                writeln!(out, "    faults: {:?}", ring.plan)?;
                for p in &ring.processes {
                    writeln!(out, "    {p:?}")?;
                }
            }
            for m in &report.merged {
                writeln!(out, "  merged: {m:?}")?;
            }
        }
        let mut lines = Vec::new();
        multiring::print_violations(&report, |line| lines.push(line));
        for line in lines {
            writeln!(out, "{line}")?;
        }
        if !report.passed() {
            failed.push(s);
        }
    }
    let what = format!("{} multiring seeds", seeds.len());
    tally(&mut out, &what, &failed, started, single.is_none().then_some(&coverage))
}
