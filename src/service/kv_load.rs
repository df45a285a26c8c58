//! Closed-loop clients of the key-value store (thesis 6.5.1: "clients run closed loops, each with
//! a window of outstanding commands"), wherever its replicas run: in this process
//! ([`kv_local`](super::kv_local)), in `ringsmr node` processes (`ringsmr bench` against a
//! service file), or in a test that kills one of them.
//!
//! Each client is a thread of its own with one [`Client`]: it keeps `window` commands outstanding,
//! counts those answered after the warm-up, records their latency from submit to reply, and, when
//! asked, records every operation for the linearizability checker.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::apps::kv::command::{self, KvOp};
use crate::apps::kv::store::KvStore;
use crate::apps::kv::workload::{KeyDist, Mix, OpStream};
use crate::node::histogram::Histogram;
use crate::smr::Status;
use crate::smr::linearizability::Operation;

use super::client::{Client, ClientError, ClientOptions};

/// What the clients do.
#[derive(Clone, Debug)]
pub struct KvLoadSpec {
    pub mix: Mix,
    pub keys: KeyDist,
    /// Keys the replicas preloaded (the workload's key space is twice this).
    pub preload_keys: u64,
    pub clients: usize,
    /// Commands each client keeps outstanding (at most the replicas' table window, 64).
    pub window: usize,
    /// Bytes of each command (padding past the store's 17).
    pub command_bytes: usize,
    /// Answers before this long after the start are not counted.
    pub warmup: Duration,
    pub record_history: bool,
    pub seed: u64,
}

impl Default for KvLoadSpec {
    /// Reads of uniform keys on a million-key tree by 4 clients, each with 50 outstanding.
    fn default() -> KvLoadSpec {
        KvLoadSpec {
            mix: Mix::Read,
            keys: KeyDist::Uniform,
            preload_keys: 1_000_000,
            clients: 4,
            window: 50,
            command_bytes: command::COMMAND_BYTES,
            warmup: Duration::from_secs(1),
            record_history: false,
            seed: 1,
        }
    }
}

/// What the clients did.
#[derive(Debug, Default)]
pub struct KvLoadReport {
    /// Commands answered after the warm-up.
    pub completed: u64,
    /// From the end of the warm-up to the stop.
    pub secs: f64,
    pub latency: Histogram,
    pub conflicts: u64,
    pub retries: u64,
    pub reconnects: u64,
    /// Every operation, when recorded; times in nanoseconds from the start.
    pub history: Vec<Operation>,
}

/// What a run's clients measured, as every service report gives it (`--json` keys alike).
#[derive(Clone, Debug, Serialize)]
pub struct KvLoadFigures {
    pub clients: usize,
    pub window: usize,
    pub command_bytes: usize,
    pub preload_keys: u64,
    pub workload: String,
    pub keys: String,
    /// Measured: from the end of the warm-up to the stop.
    pub secs: f64,
    /// Commands answered in the measured interval.
    pub completed: u64,
    pub kcps: f64,
    pub latency_us: LatencyUs,
    /// opt-PSMR: commands a replica refused for conflict and clients sent again.
    pub conflicts: u64,
    pub retries: u64,
    pub reconnects: u64,
}

/// Latency percentiles in microseconds.
#[derive(Clone, Debug, Serialize)]
pub struct LatencyUs {
    pub p50: u64,
    pub p99: u64,
    pub p999: u64,
    pub max: u64,
}

impl KvLoadFigures {
    pub fn of(spec: &KvLoadSpec, r: &KvLoadReport) -> KvLoadFigures {
        let h = &r.latency;
        KvLoadFigures {
            clients: spec.clients,
            window: spec.window,
            command_bytes: spec.command_bytes.max(command::COMMAND_BYTES),
            preload_keys: spec.preload_keys,
            workload: format!("{:?}", spec.mix),
            keys: format!("{:?}", spec.keys),
            secs: r.secs,
            completed: r.completed,
            kcps: r.completed as f64 / r.secs.max(1e-9) / 1e3,
            latency_us: LatencyUs {
                p50: h.quantile(0.5),
                p99: h.quantile(0.99),
                p999: h.quantile(0.999),
                max: h.max(),
            },
            conflicts: r.conflicts,
            retries: r.retries,
            reconnects: r.reconnects,
        }
    }

    /// The `load`, `throughput`, `latency` and `clients` lines of a report's table.
    pub fn table_lines(&self) -> String {
        format!(
            "load         {} clients x {} outstanding, {} keys, {} B commands, {} / {}\n\
             throughput   {:.1} Kcps ({} commands in {:.1} s)\n\
             latency      p50 {} us  p99 {} us  p999 {} us  max {} us\n\
             clients      conflicts {}; retries {}; reconnects {}\n",
            self.clients,
            self.window,
            self.preload_keys,
            self.command_bytes,
            self.workload,
            self.keys,
            self.kcps,
            self.completed,
            self.secs,
            self.latency_us.p50,
            self.latency_us.p99,
            self.latency_us.p999,
            self.latency_us.max,
            self.conflicts,
            self.retries,
            self.reconnects,
        )
    }
}

/// Clients running (see the module docs).
pub struct KvLoad {
    stop: Arc<AtomicBool>,
    start: Instant,
    warmup: Duration,
    handles: Vec<JoinHandle<Result<ClientRun, ClientError>>>,
}

impl KvLoad {
    /// Connects `spec.clients` clients with `opts` (each with a fresh id and `spec.window`) and
    /// starts their loops; returns once every one is connected, which is the start.
    pub fn start(spec: &KvLoadSpec, opts: &ClientOptions) -> Result<KvLoad, ClientError> {
        let opts = &ClientOptions { window: spec.window, client_id: None, ..opts.clone() };
        let stop = Arc::new(AtomicBool::new(false));
        let ready = Arc::new(Barrier::new(spec.clients + 1));
        // The clients learn the start from the connected barrier, after it is taken.
        let started = Arc::new(std::sync::OnceLock::new());
        let mut handles = Vec::new();
        for c in 0..spec.clients {
            let (spec, opts) = (spec.clone(), opts.clone());
            let (stop, ready, started) =
                (Arc::clone(&stop), Arc::clone(&ready), Arc::clone(&started));
            handles.push(std::thread::spawn(move || {
                let client = Client::<KvStore>::connect(opts);
                ready.wait();
                let start: Instant = *started.wait();
                run_client(client?, &spec, c as u64, start, &stop)
            }));
        }
        ready.wait();
        let start = Instant::now();
        started.set(start).expect("set once");
        Ok(KvLoad { stop, start, warmup: spec.warmup, handles })
    }

    /// When the clients started: the history's time 0.
    pub fn started_at(&self) -> Instant {
        self.start
    }

    /// Stops the clients (what they have outstanding stays unanswered) and sums up.
    pub fn stop(self) -> Result<KvLoadReport, ClientError> {
        self.stop.store(true, Ordering::Release);
        let secs = self.start.elapsed().saturating_sub(self.warmup).as_secs_f64();
        let mut report = KvLoadReport { secs, ..KvLoadReport::default() };
        let mut failure = None;
        for h in self.handles {
            match h.join().expect("a client thread panicked") {
                Ok(run) => {
                    report.latency.merge(&run.latency);
                    report.completed += run.completed;
                    report.conflicts += run.conflicts;
                    report.retries += run.retries;
                    report.reconnects += run.reconnects;
                    report.history.extend(run.history);
                }
                Err(e) => failure = Some(e),
            }
        }
        match failure {
            Some(e) => Err(e),
            None => Ok(report),
        }
    }
}

struct ClientRun {
    latency: Histogram,
    completed: u64,
    conflicts: u64,
    retries: u64,
    reconnects: u64,
    history: Vec<Operation>,
}

/// One client's closed loop.
fn run_client(
    mut client: Client<KvStore>,
    spec: &KvLoadSpec,
    index: u64,
    start: Instant,
    stop: &AtomicBool,
) -> Result<ClientRun, ClientError> {
    let mut ops = OpStream::new(spec.mix, spec.keys, spec.preload_keys, spec.seed ^ (index << 32));
    let warm_at = start + spec.warmup;
    let window = crate::smr::client_table::WINDOW_MAX as usize;
    // Per outstanding command (by sequence number in the window): when it was submitted, and its
    // index in the history.
    let mut submitted: Vec<(Instant, usize)> = vec![(start, 0); window];
    let mut run = ClientRun {
        latency: Histogram::default(),
        completed: 0,
        conflicts: 0,
        retries: 0,
        reconnects: 0,
        history: Vec::new(),
    };
    let mut buf = Vec::with_capacity(spec.command_bytes.max(command::COMMAND_BYTES));
    let ns = |t: Instant| t.duration_since(start).as_nanos() as u64;
    while !stop.load(Ordering::Acquire) {
        // One clock read for the commands submitted together and one for the replies a poll
        // takes in: a read per command cost the clients a twentieth of the machine. A recorded
        // history keeps a read per command and per reply, so the linearizability checker sees
        // each operation's interval as tight as it was.
        let submitted_at = Instant::now();
        while client.has_room() {
            let op: KvOp = ops.next_op();
            buf.clear();
            command::encode(op, spec.command_bytes, &mut buf);
            let now = if spec.record_history { Instant::now() } else { submitted_at };
            let seq = client.submit(&buf).expect("the window has room and the command is good");
            let at = run.history.len();
            if spec.record_history {
                run.history.push(Operation {
                    client: client.id(),
                    call: ns(now),
                    returned: None,
                    op,
                });
            }
            submitted[(seq % window as u64) as usize] = (now, at);
        }
        let history = &mut run.history;
        let (latency, completed) = (&mut run.latency, &mut run.completed);
        let mut replies_at = None;
        client.poll(Duration::from_millis(1), |seq, status, body| {
            let now = if spec.record_history {
                Instant::now()
            } else {
                *replies_at.get_or_insert_with(Instant::now)
            };
            let (at_submit, at) = submitted[(seq % window as u64) as usize];
            if now >= warm_at && at_submit >= warm_at {
                latency.record(now.duration_since(at_submit).as_micros() as u64);
            }
            if now >= warm_at {
                *completed += 1;
            }
            if spec.record_history
                && status == Status::Executed
                && let Some(reply) = command::decode_reply(body)
            {
                history[at].returned = Some((ns(now), reply));
            }
        })?;
    }
    let stats = client.stats();
    (run.conflicts, run.retries, run.reconnects) =
        (stats.conflicts, stats.retries, stats.reconnects);
    Ok(run)
}

/// Every replica's state checksum at one place in the order: one `checksum` command (it depends
/// on all), submitted through one connection per replica under one client id and sequence
/// number. The replicas execute it once, where the first copy is ordered, and each answers the
/// copy it took in with the reply its client table kept, so each answer comes from that replica's
/// own execution. `Err` names the replicas that did not answer within `timeout`.
pub fn checksums(opts: &ClientOptions, timeout: Duration) -> Result<Vec<u64>, String> {
    let id = opts.client_id.unwrap_or_else(super::client::fresh_id);
    let mut clients = Vec::new();
    for &replica in &opts.replicas {
        let one = ClientOptions {
            replicas: vec![replica],
            client_id: Some(id),
            retry_after: timeout * 2, // no retry through another replica: there is none
            ..opts.clone()
        };
        let c = Client::<KvStore>::connect(one).map_err(|e| format!("{replica}: {e}"))?;
        clients.push(c);
    }
    let mut command = Vec::new();
    command::encode_checksum(0, &mut command);
    for c in &mut clients {
        c.submit(&command).map_err(|e| e.to_string())?;
        c.flush();
    }
    let deadline = Instant::now() + timeout;
    let mut sums: Vec<Option<u64>> = vec![None; clients.len()];
    while sums.iter().any(Option::is_none) && Instant::now() < deadline {
        for (c, sum) in clients.iter_mut().zip(&mut sums).filter(|(_, s)| s.is_none()) {
            c.poll(Duration::from_millis(5), |_, status, body| {
                if status == Status::Executed {
                    *sum = command::decode_checksum_reply(body);
                }
            })
            .map_err(|e| e.to_string())?;
        }
    }
    let missing: Vec<String> = opts
        .replicas
        .iter()
        .zip(&sums)
        .filter(|(_, s)| s.is_none())
        .map(|(r, _)| r.to_string())
        .collect();
    if !missing.is_empty() {
        return Err(format!("no checksum within {timeout:?} from {}", missing.join(", ")));
    }
    Ok(sums.into_iter().flatten().collect())
}
