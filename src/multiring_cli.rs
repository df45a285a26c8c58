//! The command line of Multi-Ring Paxos: `ringsmr local --protocol multiring`, and `ringsmr node`
//! and `ringsmr bench` with a Multi-Ring file.

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context, Result, bail};

use ringsmr::io::BackendChoice;
use ringsmr::multiring::bench::{MultiRingBenchSpec, run_bench};
use ringsmr::multiring::config::LearnerEntry;
use ringsmr::multiring::control::{MultiLoad, MultiRingControl};
use ringsmr::multiring::load::{
    LocalMultiRingSpec, MultiRingLoadReport, MultiRingWorkload, Offered, ProcessLoad, SeriesRow,
    drive, run_local, stream_key,
};
use ringsmr::multiring::{GroupId, MultiRingFile, MultiRingNode, MultiRingOptions, ProcessId};
use ringsmr::node::load::duration_from_secs;
use ringsmr::node::{ProtocolName, Role, StreamChecksum, StreamTrace};

/// Which groups each process of a `local` run delivers.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum Subscribe {
    /// Every process every group (5.4.3's second case: the merge at each learner).
    All,
    /// Process p group p mod rings, and multicasts to it only (5.4.3's first case: aggregate
    /// throughput, no merge).
    One,
    /// Process 0 every group, the others none (one learner, as in 5.4.4–5.4.7).
    First,
}

/// Which processes of a `local` run multicast.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum Proposers {
    All,
    /// Process 0 only (one client, as in 5.4.4–5.4.7).
    First,
}

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum RingProtocol {
    Uring,
    Mring,
}

/// The options of `ringsmr local --protocol multiring`.
#[derive(clap::Args, Debug)]
pub struct MultiRingArgs {
    /// Multi-Ring: rings (one group each); every process takes part in every ring.
    #[arg(long, default_value_t = 2)]
    pub rings: u32,
    /// Multi-Ring: the Ring Paxos variant of each ring.
    #[arg(long, value_enum, default_value = "uring")]
    pub ring_protocol: RingProtocol,
    /// Multi-Ring: which groups each process delivers.
    #[arg(long, value_enum, default_value = "all")]
    pub subscribe: Subscribe,
    /// Multi-Ring: which processes multicast (to every group).
    #[arg(long, value_enum, default_value = "all")]
    pub proposers: Proposers,
    /// Multi-Ring: λ, instances each ring is expected to decide per Δ (0: no skip instances).
    #[arg(long)]
    pub lambda: Option<u64>,
    /// Multi-Ring: Δ in microseconds.
    #[arg(long)]
    pub delta_us: Option<u64>,
    /// Multi-Ring: M, instances of a group merged per turn (one value, or one per group).
    #[arg(long, value_delimiter = ',')]
    pub m: Vec<u64>,
    /// Multi-Ring: open loop: messages a second each proposer multicasts to each group (one
    /// value, or one per group); default: a window of messages outstanding (`--outstanding`).
    #[arg(long, value_delimiter = ',')]
    pub rate: Vec<f64>,
    /// Multi-Ring: raise each rate by its first value every this many seconds.
    #[arg(long)]
    pub rate_step_secs: Option<f64>,
    /// Multi-Ring: swing each rate ±50% over this period, in seconds.
    #[arg(long)]
    pub oscillate_secs: Option<f64>,
    /// Multi-Ring: write each process' merged delivery, sampled every `--series-ms`, to this CSV.
    #[arg(long)]
    pub series: Option<PathBuf>,
    #[arg(long, default_value_t = 100)]
    pub series_ms: u64,
}

/// One value per group, from a list of one (for all) or of one per group.
fn per_group<T: Copy>(field: &str, values: &[T], groups: usize) -> Result<Option<Vec<T>>> {
    match values.len() {
        0 => Ok(None),
        1 => Ok(Some(vec![values[0]; groups])),
        n if n == groups => Ok(Some(values.to_vec())),
        n => bail!("{field} takes one value or one per group ({groups}), got {n}"),
    }
}

impl MultiRingArgs {
    /// What each proposer offers to each of `groups`.
    fn traffic(&self, groups: &[GroupId], outstanding: usize) -> Result<Vec<(GroupId, Offered)>> {
        let rates = per_group("--rate", &self.rate, groups.len())?;
        Ok(groups
            .iter()
            .enumerate()
            .map(|(i, &g)| {
                let offered = match &rates {
                    Some(r) => Offered::Rate {
                        base_per_s: r[i],
                        step_secs: self.rate_step_secs,
                        oscillate_secs: self.oscillate_secs,
                    },
                    None => Offered::Window { outstanding },
                };
                (g, offered)
            })
            .collect())
    }
}

/// The options `local` shares with single-ring runs.
pub struct LocalCommon {
    pub processes: u16,
    pub f: usize,
    pub batch_bytes: Option<usize>,
    pub window_instances: u32,
    pub window_bytes: usize,
    pub payload_bytes: usize,
    pub duration_secs: f64,
    pub outstanding: Option<usize>,
}

pub fn run_local_multiring(c: LocalCommon, a: &MultiRingArgs) -> Result<MultiRingLoadReport> {
    if !(1..=16).contains(&a.rings) {
        bail!("--rings must be within 1..=16, got {}", a.rings);
    }
    let protocol = match a.ring_protocol {
        RingProtocol::Uring => ProtocolName::Uring,
        RingProtocol::Mring => ProtocolName::Mring,
    };
    let processes = match a.subscribe {
        Subscribe::One => c.processes.max(a.rings as u16),
        Subscribe::All | Subscribe::First => c.processes,
    };
    let learners: Vec<LearnerEntry> = match a.subscribe {
        Subscribe::All => Vec::new(),
        Subscribe::First => (0..processes)
            .map(|p| LearnerEntry {
                process: p,
                groups: if p == 0 { (0..a.rings).collect() } else { Vec::new() },
            })
            .collect(),
        Subscribe::One => (0..processes)
            .map(|p| LearnerEntry { process: p, groups: vec![u32::from(p) % a.rings] })
            .collect(),
    };
    let mut file =
        MultiRingFile::local_on_free_ports(protocol, a.rings, processes, c.f, learners.clone())?;
    let groups: Vec<GroupId> = (0..a.rings).collect();
    let ms = per_group("--m", &a.m, groups.len())?;
    for r in &mut file.rings {
        r.cluster.batch_bytes = c.batch_bytes.unwrap_or(match protocol {
            ProtocolName::Uring => 32 * 1024,
            ProtocolName::Mring => 8 * 1024,
        });
        r.cluster.window_instances = c.window_instances;
        r.cluster.window_bytes = c.window_bytes;
        r.cluster.validate()?;
    }
    for (g, m) in file.groups.iter_mut().zip(ms.unwrap_or_default()) {
        g.m = m;
    }
    let file = MultiRingFile::new(
        a.lambda.unwrap_or(file.lambda_instances),
        a.delta_us.unwrap_or(file.delta_us),
        file.merge_queue_instances,
        file.rings,
        file.groups,
        learners,
    )?;
    let proposers: Vec<ProcessId> = match a.proposers {
        Proposers::All => file.processes(),
        Proposers::First => vec![0],
    };
    let per_value = c.payload_bytes + ringsmr::proto::VALUE_OVERHEAD_BYTES;
    // Each ring's window of bytes shared among the proposers, as for one ring.
    let outstanding =
        c.outstanding.unwrap_or((c.window_bytes / per_value / proposers.len().max(1)).max(256));
    let workload = MultiRingWorkload {
        payload_bytes: c.payload_bytes,
        duration: duration_from_secs("--duration", c.duration_secs).map_err(anyhow::Error::msg)?,
        traffic: a.traffic(&groups, outstanding)?,
        series_ms: a.series.as_ref().map(|_| a.series_ms.max(1)),
    };
    let backend = BackendChoice::from_env()?;
    let offer_subscribed_only = matches!(a.subscribe, Subscribe::One);
    let spec = LocalMultiRingSpec { file, workload, proposers, offer_subscribed_only, backend };
    let report = run_local(&spec)?;
    if let Some(path) = &a.series {
        let rows: Vec<&SeriesRow> =
            report.processes_reports.iter().flat_map(|p| p.series.iter()).collect();
        write_series(path, &rows)?;
    }
    Ok(report)
}

/// The series as CSV: one row per process and sample; per-group columns joined by `;`.
pub fn write_series(path: &Path, rows: &[&SeriesRow]) -> Result<()> {
    let join = |v: &[u64]| v.iter().map(u64::to_string).collect::<Vec<_>>().join(";");
    let mut out = String::from(
        "t_ms,process,offered_msgs,delivered_msgs,delivered_per_group,delivered_mbit_per_s,\
         latency_p50_us,latency_p99_us,queued_instances\n",
    );
    for r in rows {
        let queued: Vec<u64> = r.queued_instances.iter().map(|&q| q as u64).collect();
        out += &format!(
            "{},{},{},{},{},{:.3},{},{},{}\n",
            r.t_ms,
            r.process,
            join(&r.offered_msgs),
            r.delivered_msgs,
            join(&r.delivered_per_group),
            r.delivered_mbit_per_s,
            r.latency_p50_us,
            r.latency_p99_us,
            join(&queued)
        );
    }
    std::fs::write(path, out).with_context(|| format!("writing {}", path.display()))
}

/// Whether `path` is a Multi-Ring file (it has `[[ring]]` tables) rather than a cluster file.
pub fn is_multiring_file(path: &Path) -> Result<bool> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let doc: toml::Table = toml::from_str(&text).with_context(|| format!("{}", path.display()))?;
    Ok(
        matches!(doc.get("ring"), Some(toml::Value::Array(a)) if a.iter().all(toml::Value::is_table) && !a.is_empty()),
    )
}

/// What `ringsmr node` does with a Multi-Ring file.
pub struct NodeRun {
    pub process: ProcessId,
    /// Multicast this many messages in all, round-robin over `groups` (0: only learn).
    pub propose: u64,
    pub groups: Vec<GroupId>,
    pub payload_bytes: usize,
    /// Messages a second, in all (default: a window of 1,000 outstanding per group).
    pub propose_rate: Option<u64>,
    pub expect: Option<u64>,
    /// Print `progress N checksum X at_ms T` this often.
    pub progress_ms: Option<u64>,
    /// Run a measured load of this long instead, printing one JSON line with its figures.
    pub load_secs: Option<f64>,
    pub outstanding: usize,
    pub series: Option<PathBuf>,
    pub series_ms: u64,
}

impl NodeRun {
    /// A process that proposes nothing of its own and prints nothing but its start.
    pub fn only_ordering(process: ProcessId) -> NodeRun {
        NodeRun {
            process,
            propose: 0,
            groups: Vec::new(),
            payload_bytes: 0,
            propose_rate: None,
            expect: None,
            progress_ms: None,
            load_secs: None,
            outstanding: 1,
            series: None,
            series_ms: 100,
        }
    }
}

/// The payload of message `seq` of process `p`: the same on every run.
fn payload(p: ProcessId, seq: u64, len: usize) -> bytes::Bytes {
    let word = (u64::from(p) << 48) ^ seq;
    let mut v: Vec<u8> = word.to_le_bytes().iter().copied().cycle().take(len).collect();
    v.truncate(len);
    bytes::Bytes::from(v)
}

pub fn run_node_multiring(path: &Path, r: NodeRun) -> Result<ExitCode> {
    let file = MultiRingFile::load(path)?;
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(signal, Arc::clone(&stop))?;
    }
    // Thread per core: each ring's node pinned to a core of its own, ring by ring.
    let rings = file.rings.iter().filter(|x| x.node_of(r.process).is_some()).count();
    let opts = MultiRingOptions {
        backend: BackendChoice::from_env()?,
        ..MultiRingOptions::pinned(0, rings)
    };
    let mut node = MultiRingNode::start(&file, r.process, opts)?;
    let groups = if r.groups.is_empty() {
        // Every group of a ring in which this process proposes.
        file.multicast_groups(r.process)
    } else {
        r.groups.clone()
    };
    eprintln!(
        "ringsmr: process {} up in rings {:?} ({} backend), delivers groups {:?}, multicasts to {:?}",
        r.process,
        node.rings().collect::<Vec<_>>(),
        node.backend(),
        node.subscriptions(),
        groups
    );
    // The control endpoint is how `ringsmr bench` reaches this process. Without it the process
    // still takes part, so only an address the file names explicitly is a must.
    let control = match MultiRingControl::start(&file, r.process, groups.clone(), node.backend()) {
        Ok(c) => {
            eprintln!("ringsmr: process {} takes bench commands on {}", r.process, c.local_addr());
            Some(c)
        }
        Err(e) if !control_named(&file, r.process) => {
            eprintln!("ringsmr: {e}; `ringsmr bench` cannot reach this process");
            None
        }
        Err(e) => return Err(e.into()),
    };
    let mut out = io::stdout();
    // The merged stream's order since the start, for `ringsmr bench` to compare learners.
    let mut trace = StreamTrace::default();
    if let Some(secs) = r.load_secs {
        let traffic = groups
            .iter()
            .map(|&g| {
                let offered = match r.propose_rate {
                    Some(rate) => Offered::Rate {
                        base_per_s: rate as f64 / groups.len().max(1) as f64,
                        step_secs: None,
                        oscillate_secs: None,
                    },
                    None => Offered::Window { outstanding: r.outstanding.max(1) },
                };
                (g, offered)
            })
            .collect();
        let w = MultiRingWorkload {
            payload_bytes: r.payload_bytes,
            duration: duration_from_secs("--load-secs", secs).map_err(anyhow::Error::msg)?,
            traffic,
            series_ms: r.series.as_ref().map(|_| r.series_ms.max(1)),
        };
        let report = {
            let mut loads = [ProcessLoad::new(&mut node, &w).continuing(trace, None)];
            drive(&mut loads, &w, &stop).map_err(anyhow::Error::msg)?;
            let [l] = loads;
            let (report, went_on, _) = l.finish();
            trace = went_on;
            report
        };
        if let Some(path) = &r.series {
            write_series(path, &report.series.iter().collect::<Vec<_>>())?;
        }
        let mbit = report.delivered_bytes() as f64 * 8.0 / report.secs.max(1e-9) / 1e6;
        writeln!(
            out,
            "{}",
            serde_json::json!({
                "process": report.process,
                "subscriptions": report.subscriptions,
                "secs": report.secs,
                "delivered_msgs": report.delivered_msgs(),
                "delivered_bytes": report.delivered_bytes(),
                "mbit_per_s": mbit,
                "latency_us": {"p50": report.latency_us.quantile(0.5), "p99": report.latency_us.quantile(0.99)},
                "cpu_per_ring": report.cpu_per_ring.iter().map(|(_, c)| c).collect::<Vec<_>>(),
            })
        )?;
        out.flush()?;
        // Then go on taking part (other processes may still be measuring) until told to stop.
    }
    let mut sum = StreamChecksum::default();
    // Only a line that prints it needs the payload checksum kept up to date during a bench load.
    let payload_checksum_read = r.expect.is_some() || r.progress_ms.is_some();
    let mut proposed = 0u64;
    let mut reported = false;
    let started = std::time::Instant::now();
    let mut next_progress = r.progress_ms.map(|_| started);
    while !stop.load(Ordering::Relaxed) {
        if let (Some(at), Some(ms)) = (next_progress, r.progress_ms)
            && std::time::Instant::now() >= at
        {
            next_progress = Some(at + Duration::from_millis(ms));
            let at_ms = started.elapsed().as_millis();
            writeln!(out, "progress {} checksum {:016x} at_ms {at_ms}", sum.values, sum.value())?;
            out.flush()?;
        }
        let allowed = r.propose_rate.map_or(r.propose, |rate| {
            r.propose.min((started.elapsed().as_secs_f64() * rate as f64) as u64)
        });
        while proposed < allowed && !groups.is_empty() {
            let g = groups[(proposed % groups.len() as u64) as usize];
            if node.multicast(g, payload(r.process, proposed, r.payload_bytes)).is_err() {
                break;
            }
            proposed += 1;
        }
        let wait = Duration::from_millis(if proposed < r.propose { 1 } else { 20 });
        let mut next = node.recv_timeout(wait);
        while let Some(d) = next {
            let key = stream_key(d.ring, d.instance);
            sum.add_value(key, d.id, &d.payload);
            trace.add(key, d.id);
            if r.expect == Some(sum.values) && !reported {
                reported = true;
                writeln!(out, "delivered {} checksum {:016x}", sum.values, sum.value())?;
                out.flush()?;
            }
            next = node.try_deliver();
        }
        if let Some(c) = &control {
            let sum = payload_checksum_read.then_some(&mut sum);
            c.serve_pending_load(&mut node, &mut trace, sum, &stop);
        }
    }
    let malformed = control.as_ref().map_or(0, MultiRingControl::malformed_commands);
    let report = node.stop();
    eprintln!("ringsmr: process {}: {malformed} malformed control commands", r.process);
    for (ring, n) in &report.rings {
        eprintln!(
            "ringsmr: process {} ring {ring}: {} values delivered, {:.2} s CPU, {} skip instances opened, {} positions skipped",
            r.process,
            n.delivered_values,
            n.cpu.as_secs_f64(),
            n.core.skip_instances_opened,
            n.core.positions_skipped
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Whether the file names `process`' control address itself (rather than leaving the default).
fn control_named(file: &MultiRingFile, process: ProcessId) -> bool {
    file.control_endpoint(process).is_some_and(|(ring, node, _)| {
        file.ring(ring).is_some_and(|r| r.cluster.nodes[usize::from(node)].control.is_some())
    })
}

/// The options `bench` shares with single-ring runs.
pub struct BenchCommon {
    pub payload_bytes: usize,
    pub duration_secs: f64,
    /// Messages each proposer keeps outstanding per group (default: each ring's window of bytes
    /// shared among its proposers, as `local` does).
    pub outstanding: Option<usize>,
    pub progress: bool,
}

/// `ringsmr bench --config MULTIRING_FILE`: loads the file's `ringsmr node` processes.
pub fn run_bench_multiring(path: &Path, c: BenchCommon) -> Result<MultiRingLoadReport> {
    let file = MultiRingFile::load(path)?;
    let per_value = c.payload_bytes + ringsmr::proto::VALUE_OVERHEAD_BYTES;
    // The tightest ring's share, so no ring's coordinator queues what its window cannot hold.
    let outstanding = c.outstanding.unwrap_or_else(|| {
        file.rings
            .iter()
            .map(|r| {
                let proposers =
                    r.cluster.nodes.iter().filter(|n| n.roles.contains(&Role::Proposer)).count();
                (r.cluster.window_bytes / per_value / proposers.max(1)).max(256)
            })
            .min()
            .unwrap_or(256)
    });
    let load =
        MultiLoad::new(c.payload_bytes, c.duration_secs, outstanding, None).map_err(|e| {
            anyhow::anyhow!(
                "{}",
                e.replace("`payload_bytes`", "--payload")
                    .replace("`duration_secs`", "--duration")
                    .replace("`outstanding_per_group`", "--outstanding")
            )
        })?;
    let spec = MultiRingBenchSpec {
        file,
        config_path: path.display().to_string(),
        load,
        progress: c.progress,
    };
    Ok(run_bench(&spec)?)
}
