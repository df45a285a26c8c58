//! The command line of the replicated services: `ringsmr local --service kv`.

use std::io::{self, Write};
use std::time::Duration;

use anyhow::{Result, anyhow};

use ringsmr::apps::kv::workload::{KeyDist, Mix};
use ringsmr::io::BackendChoice;
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
    /// Service: read, update, read-update, insert, or mixed:<percent of inserts and deletes>.
    #[arg(long, default_value = "read")]
    pub workload: String,
    /// Service: key choice, uniform, zipf or zipf:<exponent>.
    #[arg(long, default_value = "uniform")]
    pub keys: String,
    /// Service: keys preloaded in every replica's tree.
    #[arg(long, default_value_t = 1_000_000)]
    pub preload: u64,
    /// Service: client threads, each a closed loop.
    #[arg(long, default_value_t = 4)]
    pub clients: usize,
    /// Service: commands each client keeps outstanding (at most 64).
    #[arg(long, default_value_t = 50)]
    pub client_window: usize,
    /// Service: bytes of each command (at least 17).
    #[arg(long, default_value_t = 17)]
    pub command_bytes: usize,
    /// Service: processes of the three that execute (the others only order).
    #[arg(long, default_value_t = 1)]
    pub replicas: u16,
    /// Service: rings the groups share, group g on ring g mod N (default: one ring per group).
    #[arg(long)]
    pub service_rings: Option<usize>,
    /// Service: seconds of warm-up before measuring.
    #[arg(long, default_value_t = 1.0)]
    pub warmup: f64,
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
    let mix = Mix::parse(&a.workload).map_err(|e| anyhow!("--workload: {e}"))?;
    let keys = KeyDist::parse(&a.keys).map_err(|e| anyhow!("--keys: {e}"))?;
    let finite_positive = duration_secs.is_finite() && duration_secs > 0.0;
    if !finite_positive || !a.warmup.is_finite() || a.warmup < 0.0 {
        return Err(anyhow!("--duration must be positive and --warmup not negative"));
    }
    let spec = KvLocalSpec {
        mix,
        keys,
        preload_keys: a.preload,
        clients: a.clients.max(1),
        window: a.client_window,
        command_bytes: a.command_bytes,
        duration: Duration::from_secs_f64(duration_secs),
        warmup: Duration::from_secs_f64(a.warmup),
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
         load         {} clients x {} outstanding, {} keys, {} B commands, {} / {}\n\
         throughput   {:.1} Kcps ({} commands in {:.1} s)\n\
         latency      p50 {} us  p99 {} us  p999 {} us  max {} us\n\
         per thread   {} Kcps\n\
         synchronous  {} commands; conflicts {}; retries {}\n\
         checksums    {}\n",
        r.workers,
        r.exec,
        r.rings,
        r.lambda_instances,
        r.delta_us,
        r.replicas,
        r.io_backend,
        r.clients,
        r.window,
        r.preload_keys,
        r.command_bytes,
        r.workload,
        r.keys,
        r.kcps,
        r.completed,
        r.secs,
        r.latency_us.p50,
        r.latency_us.p99,
        r.latency_us.p999,
        r.latency_us.max,
        threads.join(" "),
        r.synchronous,
        r.conflicts,
        r.retries,
        r.checksums.iter().map(|c| format!("{c:016x}")).collect::<Vec<_>>().join(" "),
    )
}
