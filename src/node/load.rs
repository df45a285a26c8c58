//! The benchmark workload: propose from every node for a fixed time, and measure what the learners
//! deliver (throughput) and how long each value took from `propose` to its delivery at its own
//! proposer (latency). DESIGN "Benchmarks" lists the figures; [`LoadReport::to_json`] writes them.
//!
//! One driver, [`NodeLoad`] under `drive`, runs the workload on the nodes of one process:
//!
//! ```text
//! ringsmr local:  one process, every node      drive([node 0, node 1, node 2])  -> LoadReport
//! ringsmr bench:  one process per node         drive([node i]) -> NodeLoadReport ──control──> merge
//! ```
//!
//! A run has three phases: every node proposes a probe and waits until it comes back (links are
//! up, a coordinator runs, the ring works end to end); proposers keep `outstanding_per_proposer` of
//! their own values in flight for the run's duration while deliveries are counted; then the
//! proposers stop and wait (briefly) for their last values, whose latency still counts, so that no
//! value of this run is left to be mistaken for one of the next.
//!
//! Each node keeps the proposal time of its values in flight by id (`proposal_stamps`), so payloads
//! are static bytes and a delivered batch is timed without reading it. Every node also traces its
//! delivered stream ([`StreamTrace`]) so that the learners' orders can be compared afterwards.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::io::BackendChoice;
use crate::io::pin::allowed_cores;
use crate::io::scheduling::Scheduling;
use crate::proto::types::{NodeId, VALUE_OVERHEAD_BYTES, ValueId};

use super::baseline::{self, RingSenders};
use super::checksum::{
    Checkpoint, PrefixComparison, StreamChecksum, StreamTrace, compare_prefixes,
};
use super::config::{ClusterFile, ProtocolName};
use super::handle::{Node, NodeError, NodeOptions, NodeReport};
use super::histogram::Histogram;
use super::proposal_stamps::ProposalStamps;

/// What `ringsmr local` runs.
#[derive(Clone, Debug)]
pub struct LoadSpec {
    pub cluster: ClusterFile,
    pub payload_bytes: usize,
    pub duration: Duration,
    /// Values a proposer may have proposed and not seen delivered.
    pub outstanding_per_proposer: usize,
    pub backend: BackendChoice,
    /// Measure the raw transport first (`efficiency` = protocol / raw).
    pub baseline: bool,
    /// Which stages of the U-Ring baseline send (see [`RingSenders`]).
    pub baseline_senders: RingSenders,
    /// Draw a progress line on stderr (when it is a terminal).
    pub progress: bool,
}

/// What every proposer does during one run.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Workload {
    /// Bytes of each value.
    pub payload_bytes: usize,
    pub duration: Duration,
    /// Values a proposer may have proposed and not seen delivered.
    pub outstanding_per_proposer: usize,
}

/// What every proposed value holds (its first `payload_bytes`): static bytes, handed to the node
/// without writing or counting anything per value (see `proposal_stamps`). Zeros, so they take no
/// room in the executable.
static PAYLOAD: [u8; PAYLOAD_BYTES_MAX] = [0; PAYLOAD_BYTES_MAX];
/// Values proposed back to back that share one reading of the clock as their stamp. They leave
/// within a few microseconds of each other, far below the latencies measured (hundreds of
/// microseconds), while a reading per value took 1.5% of all CPU samples of a 1 KB U-Ring run.
const STAMP_SHARED_BY: usize = 16;
/// The largest value a run proposes (the largest batch the protocol takes).
pub const PAYLOAD_BYTES_MAX: usize = 1 << 20;
/// The most values a proposer keeps in flight (the node's proposal queue holds 65,536 anyway).
pub const OUTSTANDING_MAX: usize = 1 << 20;
/// The longest run.
pub const DURATION_SECS_MAX: f64 = 3600.0;

/// `secs` as a run's duration: finite, positive, at most an hour. Errors name `field`.
pub fn duration_from_secs(field: &str, secs: f64) -> Result<Duration, String> {
    if secs.is_finite() && secs > 0.0 && secs <= DURATION_SECS_MAX {
        Ok(Duration::from_secs_f64(secs))
    } else {
        Err(format!("`{field}` must be within (0, {DURATION_SECS_MAX}] seconds, got {secs}"))
    }
}

impl Workload {
    /// A workload from numbers given on a command line or by a control command; refuses what no
    /// run can use, naming the field.
    pub fn new(
        payload_bytes: usize,
        duration_secs: f64,
        outstanding_per_proposer: usize,
    ) -> Result<Workload, String> {
        if !(1..=PAYLOAD_BYTES_MAX).contains(&payload_bytes) {
            return Err(format!(
                "`payload_bytes` must be within 1..={PAYLOAD_BYTES_MAX}, got {payload_bytes}"
            ));
        }
        if !(1..=OUTSTANDING_MAX).contains(&outstanding_per_proposer) {
            return Err(format!(
                "`outstanding_per_proposer` must be within 1..={OUTSTANDING_MAX}, got \
                 {outstanding_per_proposer}"
            ));
        }
        let duration = duration_from_secs("duration_secs", duration_secs)?;
        Ok(Workload { payload_bytes, duration, outstanding_per_proposer })
    }
}
/// How long the nodes may take to deliver their probes before a run starts.
pub const READY_TIMEOUT: Duration = Duration::from_secs(15);
/// How long proposers wait for their last values after a run.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// What one node measured in one run: what a node process sends `ringsmr bench`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeLoadReport {
    pub node: NodeId,
    pub backend: String,
    /// The scheduling policy of the node's thread (`io::scheduling`: `batch`, `normal`, or `other`).
    #[serde(default)]
    pub scheduling: String,
    pub proposer: bool,
    pub learner: bool,
    /// Values (of every proposer) delivered during the run's duration.
    pub delivered_msgs: u64,
    pub delivered_bytes: u64,
    /// The run's duration as this node measured it.
    pub secs: f64,
    /// Propose-to-delivery latency of this node's own values.
    pub latency_us: Histogram,
    /// The node's delivered stream (since the node started) at the checkpoints it passed from the
    /// run's start on, ending with where it stood after the run.
    pub checkpoints: Vec<Checkpoint>,
    /// CPU time of the node thread during the run over the run's duration; `None` where the
    /// platform does not tell.
    pub cpu_share: Option<f64>,
}

/// The figures of one run.
#[derive(Clone, Debug)]
pub struct LoadReport {
    pub protocol: &'static str,
    pub nodes: usize,
    pub payload_bytes: usize,
    pub batch_bytes: usize,
    pub secs: f64,
    /// The nodes' I/O backend; several, comma-separated, when the nodes differ.
    pub io_backend: String,
    /// The nodes' scheduling policy; several, comma-separated, when the nodes differ.
    pub scheduling: String,
    pub delivered_msgs: u64,
    pub delivered_bytes: u64,
    pub latency_us: Histogram,
    pub baseline_mbit_per_s: Option<f64>,
    /// One entry per node, in node order.
    pub cpu_per_node: Vec<Option<f64>>,
    /// The learners' delivered streams compared on their common prefix.
    pub orders: PrefixComparison,
}

impl LoadReport {
    pub fn msgs_per_s(&self) -> f64 {
        self.delivered_msgs as f64 / self.secs
    }

    pub fn mbit_per_s(&self) -> f64 {
        self.delivered_bytes as f64 * 8.0 / self.secs / 1e6
    }

    pub fn efficiency(&self) -> Option<f64> {
        self.baseline_mbit_per_s.map(|b| self.mbit_per_s() / b)
    }

    /// The object DESIGN "Benchmarks" describes, one line.
    pub fn to_json(&self) -> serde_json::Value {
        let l = &self.latency_us;
        let mut v = serde_json::json!({
            "protocol": self.protocol,
            "nodes": self.nodes,
            "rings": 1,
            "payload_bytes": self.payload_bytes,
            "batch_bytes": self.batch_bytes,
            "secs": self.secs,
            "io_backend": self.io_backend,
            "scheduling": self.scheduling,
            "delivered_msgs": self.delivered_msgs,
            "delivered_bytes": self.delivered_bytes,
            "msgs_per_s": self.msgs_per_s(),
            "mbit_per_s": self.mbit_per_s(),
            "latency_us": {
                "p50": l.quantile(0.5), "p99": l.quantile(0.99),
                "p999": l.quantile(0.999), "max": l.max(),
            },
            "cpu_per_node": self.cpu_per_node,
            "cores": allowed_cores().len(),
            "orders_agree": self.orders.agree,
            "orders_compared_values": self.orders.compared_values,
        });
        if let (Some(b), Some(e)) = (self.baseline_mbit_per_s, self.efficiency()) {
            v["baseline_mbit_per_s"] = b.into();
            v["efficiency"] = e.into();
        }
        v
    }

    /// The human table.
    pub fn table(&self) -> String {
        let l = &self.latency_us;
        let mut s = format!(
            "protocol      {} ({} nodes, one ring, {} cores, backend {}, scheduling {})\n\
             workload      {} B payloads, batches up to {} B, {:.1} s\n\
             throughput    {:.1} Mbit/s   {:.0} msgs/s   ({} values delivered)\n\
             latency       p50 {} us   p99 {} us   p999 {} us   max {} us\n",
            self.protocol,
            self.nodes,
            allowed_cores().len(),
            self.io_backend,
            self.scheduling,
            self.payload_bytes,
            self.batch_bytes,
            self.secs,
            self.mbit_per_s(),
            self.msgs_per_s(),
            self.delivered_msgs,
            l.quantile(0.5),
            l.quantile(0.99),
            l.quantile(0.999),
            l.max(),
        );
        if let (Some(b), Some(e)) = (self.baseline_mbit_per_s, self.efficiency()) {
            s += &format!("baseline      {b:.1} Mbit/s raw transport   efficiency {e:.2}\n");
        }
        s += &match self.orders.agree {
            Some(true) => format!(
                "orders        agree (every learner, first {} values)\n",
                self.orders.compared_values
            ),
            Some(false) => format!(
                "orders        DIFFER between learners (within the first {} values)\n",
                self.orders.compared_values
            ),
            None => "orders        not compared (the learners share no checkpoint)\n".to_string(),
        };
        s += "cpu per node ";
        for (i, c) in self.cpu_per_node.iter().enumerate() {
            match c {
                Some(c) => s += &format!("  node {i}: {:.0}%", c * 100.0),
                None => s += &format!("  node {i}: n/a"),
            }
        }
        s.push('\n');
        s
    }
}

/// The figures of a run from what each node measured: throughput is what the first learner
/// delivered (node 0 when every node learns; any learner would do, they deliver the same stream),
/// latency merges every proposer's, and the learners' streams are compared.
pub fn merge(
    cluster: &ClusterFile,
    payload_bytes: usize,
    baseline_mbit_per_s: Option<f64>,
    nodes: &[NodeLoadReport],
) -> LoadReport {
    let mut latency_us = Histogram::default();
    for r in nodes {
        latency_us.merge(&r.latency_us);
    }
    let counted = nodes.iter().find(|r| r.learner);
    let distinct = |field: fn(&NodeLoadReport) -> &str| {
        let mut seen: Vec<&str> = Vec::new();
        for r in nodes {
            if !seen.contains(&field(r)) {
                seen.push(field(r));
            }
        }
        seen.join(",")
    };
    let learners: Vec<&[Checkpoint]> =
        nodes.iter().filter(|r| r.learner).map(|r| r.checkpoints.as_slice()).collect();
    LoadReport {
        protocol: match cluster.protocol {
            ProtocolName::Uring => "uring",
            ProtocolName::Mring => "mring",
        },
        nodes: cluster.nodes.len(),
        payload_bytes,
        batch_bytes: cluster.batch_bytes,
        secs: counted.map_or(0.0, |r| r.secs),
        io_backend: distinct(|r| &r.backend),
        scheduling: distinct(|r| &r.scheduling),
        delivered_msgs: counted.map_or(0, |r| r.delivered_msgs),
        delivered_bytes: counted.map_or(0, |r| r.delivered_bytes),
        latency_us,
        baseline_mbit_per_s,
        cpu_per_node: nodes.iter().map(|r| r.cpu_share).collect(),
        orders: compare_prefixes(&learners),
    }
}

/// One node's part of a run: proposes (when the node is a proposer) so that `outstanding` of its
/// own values are in flight, and measures what the node delivers.
pub struct NodeLoad<'a> {
    node: &'a mut Node,
    trace: &'a mut StreamTrace,
    /// Also kept up to date, when someone reads it (it costs a pass over every payload byte).
    payload_checksum: Option<&'a mut StreamChecksum>,
    proposer: bool,
    learner: bool,
    /// Own values proposed and not delivered yet.
    outstanding: usize,
    /// The node delivered one of its own values (its probe) before the run.
    ready: bool,
    delivered_msgs: u64,
    delivered_bytes: u64,
    latency_us: Histogram,
    /// Where the delivered stream stood when the run started.
    trace_from_values: u64,
    cpu_at_start: Option<Duration>,
    cpu_share: Option<f64>,
    secs: f64,
    /// When each own value in flight was proposed (see `proposal_stamps`).
    stamps: ProposalStamps,
}

impl<'a> NodeLoad<'a> {
    /// `trace` is the node's stream since it started: it goes on across runs.
    pub fn new(
        node: &'a mut Node,
        trace: &'a mut StreamTrace,
        cluster: &ClusterFile,
    ) -> Result<NodeLoad<'a>, NodeError> {
        let cfg = cluster.node_config(node.id())?;
        Ok(NodeLoad {
            node,
            trace,
            payload_checksum: None,
            proposer: cfg.proposer,
            learner: cfg.learner,
            outstanding: 0,
            // Only a proposer can check its own path around the ring; a pure acceptor or learner
            // waits for nothing.
            ready: !cfg.proposer,
            delivered_msgs: 0,
            delivered_bytes: 0,
            latency_us: Histogram::default(),
            trace_from_values: 0,
            cpu_at_start: None,
            cpu_share: None,
            secs: 0.0,
            stamps: ProposalStamps::default(),
        })
    }

    /// Keeps `sum` (the node's checksum of its payloads too) up to date with the deliveries.
    pub fn with_payload_checksum(mut self, sum: &'a mut StreamChecksum) -> NodeLoad<'a> {
        self.payload_checksum = Some(sum);
        self
    }

    fn propose_probe(&mut self) {
        if self.proposer {
            // Its latency is never recorded: the run has not started.
            let _ = self.node.propose(Bytes::from_static(b"probe"));
        }
    }

    fn propose(&mut self, w: &Workload, clock: Instant) {
        if !self.proposer {
            return;
        }
        let payload = PAYLOAD.get(..w.payload_bytes).unwrap_or(&PAYLOAD);
        let (mut stamp_ns, mut proposed) = (0, 0);
        while self.outstanding < w.outstanding_per_proposer {
            // Values proposed back to back share a reading of the clock (see STAMP_SHARED_BY).
            if proposed % STAMP_SHARED_BY == 0 {
                stamp_ns = clock.elapsed().as_nanos() as u64;
            }
            proposed += 1;
            match self.node.propose(Bytes::from_static(payload)) {
                Ok(id) => self.stamps.insert(id.seq, stamp_ns),
                // The queue is full: proposed again next time, with a fresh stamp.
                Err(_) => break,
            }
            self.outstanding += 1;
        }
    }

    /// Takes what the node delivered; `Some(clock)` records the latency of own values (stamped
    /// against `clock`), `counting` adds the deliveries to the run's throughput. True when there
    /// was anything.
    fn take_deliveries(&mut self, clock: Option<Instant>, counting: bool) -> bool {
        let me = self.node.id();
        let now_ns = clock.map(|c| c.elapsed().as_nanos() as u64);
        let mut any = false;
        // A batch at a time: with small payloads, per-value work here would make this one thread
        // (which serves every node in `local`) the bottleneck.
        while let Some(b) = self.node.try_recv_batch() {
            any = true;
            if counting {
                self.delivered_msgs += b.values.len() as u64;
            }
            // A batch as its proposer formed it: the ids follow from the first, so it is traced,
            // counted and timed without reading its values, which are cold in this thread's cache
            // by now.
            if let Some(first) = b.values.run_start()
                && self.payload_checksum.is_none()
            {
                let len = b.values.len() as u64;
                for seq in first.seq..first.seq + len {
                    let id = ValueId { seq, ..first };
                    self.trace.add(b.instance, id);
                    if id.proposer == me {
                        self.own_delivered(id, now_ns);
                    }
                }
                if counting {
                    let overhead_bytes = len * VALUE_OVERHEAD_BYTES as u64;
                    self.delivered_bytes += b.values.bytes() as u64 - overhead_bytes;
                }
                continue;
            }
            for v in b.values.values() {
                self.trace.add(b.instance, v.id);
                if let Some(sum) = self.payload_checksum.as_deref_mut() {
                    sum.add_value(b.instance, v.id, &v.payload);
                }
                if counting {
                    self.delivered_bytes += v.payload.len() as u64;
                }
                if v.id.proposer == me {
                    self.own_delivered(v.id, now_ns);
                }
            }
        }
        any
    }

    /// This node's value `id` came back at `now_ns` on the run's clock (`None` before the run, when
    /// latency is not recorded). A value proposed before the run has no stamp, so it is not timed.
    fn own_delivered(&mut self, id: ValueId, now_ns: Option<u64>) {
        self.ready = true;
        self.outstanding = self.outstanding.saturating_sub(1);
        if let (Some(now_ns), Some(sent_ns)) = (now_ns, self.stamps.take(id.seq)) {
            self.latency_us.record(now_ns.saturating_sub(sent_ns) / 1000);
        }
    }

    fn start(&mut self) {
        self.trace_from_values = self.trace.values();
        self.cpu_at_start = self.node.thread_cpu_time();
    }

    fn end(&mut self, secs: f64) {
        self.secs = secs;
        self.cpu_share = match (self.cpu_at_start, self.node.thread_cpu_time()) {
            (Some(a), Some(b)) => Some(b.saturating_sub(a).as_secs_f64() / secs.max(1e-9)),
            _ => None,
        };
    }

    pub fn report(self) -> NodeLoadReport {
        NodeLoadReport {
            node: self.node.id(),
            backend: self.node.backend().to_string(),
            scheduling: self.node.scheduling().map_or("other", Scheduling::name).to_string(),
            proposer: self.proposer,
            learner: self.learner,
            delivered_msgs: self.delivered_msgs,
            delivered_bytes: self.delivered_bytes,
            secs: self.secs,
            latency_us: self.latency_us,
            checkpoints: self.trace.checkpoints_since(self.trace_from_values),
            cpu_share: self.cpu_share,
        }
    }
}

/// Runs `w` on `loads`, the nodes of this process (every node of a `local` cluster, or the one node
/// of a `ringsmr node` process): probe, measured run, drain (see the module docs). `stop` ends the
/// run early (the process is asked to exit). Progress goes to stderr when asked and it is a
/// terminal.
pub fn drive(
    loads: &mut [NodeLoad<'_>],
    w: &Workload,
    stop: &AtomicBool,
    progress: bool,
) -> Result<(), NodeError> {
    // Each node wakes this thread when it delivers; the timeouts below only keep the deadlines.
    for l in loads.iter() {
        l.node.wake_on_delivery(std::thread::current());
    }
    let park = || std::thread::park_timeout(Duration::from_millis(5));

    let ready_by = Instant::now() + READY_TIMEOUT;
    loads.iter_mut().for_each(NodeLoad::propose_probe);
    while let Some(waiting) = loads.iter().find(|l| !l.ready).map(|l| l.node.id()) {
        if stop.load(Ordering::Relaxed) {
            return Err(NodeError::Start { id: waiting, what: "stopped before the run".into() });
        }
        if Instant::now() >= ready_by {
            return Err(NodeError::Start {
                id: waiting,
                what: format!(
                    "the cluster did not deliver this node's first value within {} s (are all \
                     nodes up and their ports free? is multicast on for mring, e.g. on loopback \
                     `ip link set lo multicast on`?)",
                    READY_TIMEOUT.as_secs()
                ),
            });
        }
        let mut any = false;
        for l in loads.iter_mut() {
            any |= l.take_deliveries(None, false);
        }
        if !any {
            park();
        }
    }

    let progress = progress && std::io::stderr().is_terminal();
    let clock = Instant::now();
    let deadline = clock + w.duration;
    for l in loads.iter_mut() {
        l.stamps.reset(w.outstanding_per_proposer);
        l.start();
    }
    let mut next_progress = clock;
    while Instant::now() < deadline && !stop.load(Ordering::Relaxed) {
        for l in loads.iter_mut() {
            l.propose(w, clock);
        }
        let mut any = false;
        for l in loads.iter_mut() {
            any |= l.take_deliveries(Some(clock), true);
        }
        if !any {
            park();
        }
        if progress && Instant::now() >= next_progress {
            next_progress += Duration::from_millis(250);
            let shown = loads.iter().find(|l| l.learner).map_or(0, |l| l.delivered_bytes);
            draw_progress(clock.elapsed(), w.duration, shown);
        }
    }
    let secs = clock.elapsed().as_secs_f64();
    for l in loads.iter_mut() {
        l.end(secs);
    }
    if progress {
        eprint!("\r{:72}\r", "");
    }

    let drained_by = Instant::now() + DRAIN_TIMEOUT;
    while loads.iter().any(|l| l.outstanding > 0)
        && Instant::now() < drained_by
        && !stop.load(Ordering::Relaxed)
    {
        let mut any = false;
        for l in loads.iter_mut() {
            any |= l.take_deliveries(Some(clock), false);
        }
        if !any {
            park();
        }
    }
    Ok(())
}

/// Runs `w` on the one node of this process (the `load` command of a `ringsmr node` process).
/// `payload_checksum`, when given, goes on checksumming every delivered payload.
pub fn run_on_node(
    node: &mut Node,
    trace: &mut StreamTrace,
    payload_checksum: Option<&mut StreamChecksum>,
    cluster: &ClusterFile,
    w: &Workload,
    stop: &AtomicBool,
) -> Result<NodeLoadReport, NodeError> {
    let mut load = NodeLoad::new(node, trace, cluster)?;
    if let Some(sum) = payload_checksum {
        load = load.with_payload_checksum(sum);
    }
    let mut loads = [load];
    drive(&mut loads, w, stop, false)?;
    let [load] = loads;
    Ok(load.report())
}

fn cpu_share(r: &NodeReport) -> f64 {
    r.cpu.as_secs_f64() / r.wall.as_secs_f64().max(1e-9)
}

/// Runs the workload on a cluster inside this process; the baseline (if asked) first, on the same
/// backend and loopback.
pub fn run_local(spec: &LoadSpec) -> Result<LoadReport, NodeError> {
    let w = Workload::new(
        spec.payload_bytes,
        spec.duration.as_secs_f64(),
        spec.outstanding_per_proposer,
    )
    .map_err(|what| NodeError::Start { id: 0, what })?;
    let n = spec.cluster.nodes.len();
    let baseline_mbit_per_s = if spec.baseline {
        let b = match spec.cluster.protocol {
            ProtocolName::Uring => {
                baseline::tcp_ring(spec.backend, n, spec.baseline_senders, spec.duration)
            }
            ProtocolName::Mring => {
                let m = spec.cluster.multicast_options().expect("validated: mring has multicast");
                baseline::multicast(spec.backend, n, m, spec.duration)
            }
        };
        Some(b.map_err(|e| NodeError::Start { id: 0, what: format!("baseline: {e}") })?)
    } else {
        None
    };

    let cores = allowed_cores();
    let mut nodes = Vec::with_capacity(n);
    for id in 0..n {
        let opts = NodeOptions {
            backend: spec.backend,
            core: Some(cores[id % cores.len()]),
            ..NodeOptions::default()
        };
        nodes.push(Node::start(&spec.cluster, id as u16, opts)?);
    }
    let mut traces = vec![StreamTrace::default(); n];
    let mut reports = {
        let mut loads = nodes
            .iter_mut()
            .zip(traces.iter_mut())
            .map(|(node, trace)| NodeLoad::new(node, trace, &spec.cluster))
            .collect::<Result<Vec<_>, _>>()?;
        drive(&mut loads, &w, &AtomicBool::new(false), spec.progress)?;
        loads.into_iter().map(NodeLoad::report).collect::<Vec<_>>()
    };
    for (report, node) in reports.iter_mut().zip(nodes) {
        let stopped = node.stop();
        // Without /proc, the node thread's share over its whole life is the next best figure.
        report.cpu_share = report.cpu_share.or(Some(cpu_share(&stopped)));
    }
    Ok(merge(&spec.cluster, w.payload_bytes, baseline_mbit_per_s, &reports))
}

fn draw_progress(elapsed: Duration, total: Duration, delivered_bytes: u64) {
    let frac = (elapsed.as_secs_f64() / total.as_secs_f64()).min(1.0);
    let width = 30;
    let done = (frac * width as f64) as usize;
    let mbit = delivered_bytes as f64 * 8.0 / elapsed.as_secs_f64() / 1e6;
    eprint!(
        "\r[{}{}] {:4.1}/{:.0} s  {mbit:8.1} Mbit/s",
        "=".repeat(done),
        " ".repeat(width - done),
        elapsed.as_secs_f64(),
        total.as_secs_f64()
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(node: NodeId, learner: bool, msgs: u64, checksum: u64) -> NodeLoadReport {
        let mut latency_us = Histogram::default();
        latency_us.record(100 * u64::from(node + 1));
        NodeLoadReport {
            node,
            backend: if node == 2 { "io_uring" } else { "epoll" }.into(),
            scheduling: "batch".into(),
            proposer: true,
            learner,
            delivered_msgs: msgs,
            delivered_bytes: msgs * 1000,
            secs: 2.0,
            latency_us,
            checkpoints: vec![Checkpoint { values: 1024, checksum }],
            cpu_share: Some(0.5),
        }
    }

    #[test]
    fn merged_figures_count_the_first_learner_and_every_proposers_latency() {
        let cluster = ClusterFile::local(ProtocolName::Uring, 3, 1, 7000);
        let nodes = [report(0, false, 0, 9), report(1, true, 500, 7), report(2, true, 400, 7)];
        let r = merge(&cluster, 1000, Some(8.0), &nodes);
        assert_eq!((r.delivered_msgs, r.delivered_bytes, r.secs), (500, 500_000, 2.0));
        assert_eq!((r.latency_us.count(), r.latency_us.max()), (3, 300));
        assert_eq!(r.io_backend, "epoll,io_uring");
        assert_eq!(r.scheduling, "batch");
        assert_eq!(r.orders, PrefixComparison { compared_values: 1024, agree: Some(true) });
        assert_eq!(r.efficiency(), Some(2.0 / 8.0));
        let json = r.to_json();
        assert_eq!(json["orders_agree"], true);
        assert_eq!(json["cpu_per_node"].as_array().map(Vec::len), Some(3));
        assert!(r.table().contains("orders        agree"), "{}", r.table());

        let differ = [report(0, true, 5, 1), report(1, true, 5, 2), report(2, true, 5, 1)];
        let r = merge(&cluster, 1000, None, &differ);
        assert_eq!(r.orders.agree, Some(false));
        assert_eq!(r.to_json()["orders_agree"], false);
        assert!(r.to_json().get("efficiency").is_none());
    }

    #[test]
    fn a_node_load_report_survives_the_control_plane() {
        let r = report(1, true, 10, 3);
        let back: NodeLoadReport =
            serde_json::from_str(&serde_json::to_string(&r).unwrap()).unwrap();
        assert_eq!(back, r);
    }
}
