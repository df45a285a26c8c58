//! The Multi-Ring benchmark workload (thesis 5.4): processes multicast to groups, either keeping a
//! window of their own messages outstanding per group (closed loop, for the scaling runs of 5.4.3)
//! or at a rate that may step up and oscillate over time (open loop, for the λ, Δ and M runs of
//! 5.4.4–5.4.6 and the halted ring of 5.4.7), and every learner measures what its merge delivers.
//!
//! Figures:
//!
//! - *aggregate* throughput: for each group, what the learner that delivered most of it delivered,
//!   summed over the groups (5.4.3's first case: each learner subscribes to one group);
//! - *merged* throughput: the most one learner delivered of all its groups (the second case: a
//!   learner subscribes to all);
//! - latency: from `multicast` to the merged delivery at the process that multicast it (when it
//!   subscribes to the group);
//! - orders: learners with the same subscriptions compared on their common prefix.
//!
//! With `series_ms`, each process also samples its merged delivery every so often (a row of
//! [`SeriesRow`]): the time series behind Figs. 5.8–5.11.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::io::pin::allowed_cores;
use crate::node::checksum::{Checkpoint, PrefixComparison, StreamChecksum, StreamTrace};
use crate::node::histogram::Histogram;
use crate::node::load::PAYLOAD_BYTES_MAX;
use crate::node::proposal_stamps::ProposalStamps;
use crate::proto::{Instance, VALUE_OVERHEAD_BYTES, ValueId};

use super::config::{GroupId, MultiRingFile, ProcessId, RingId};
use super::node::{
    GROUP_TAG_BYTES, MultiRingError, MultiRingNode, MultiRingOptions, split_group_tag,
};

/// Payload bytes proposed (zeros: static, nothing to write per message).
static PAYLOAD: [u8; PAYLOAD_BYTES_MAX] = [0; PAYLOAD_BYTES_MAX];

/// How fast a process offers messages to one group.
#[derive(Clone, Debug, PartialEq)]
pub enum Offered {
    /// Keep this many of its own messages in flight (sent, not yet delivered back to it; a process
    /// that does not subscribe to the group counts them delivered when its ring's queue takes
    /// them).
    Window { outstanding: usize },
    /// Open loop: `base_per_s` messages a second, raised by `base_per_s` every `step_secs` (Figs.
    /// 5.8–5.10 raise the load every 20 s), and swinging ±50% over `oscillate_secs` (Fig. 5.10).
    Rate { base_per_s: f64, step_secs: Option<f64>, oscillate_secs: Option<f64> },
}

impl Offered {
    /// Messages a second at `t_secs` into the run (open loop only).
    pub fn rate_at(&self, t_secs: f64) -> Option<f64> {
        let Offered::Rate { base_per_s, step_secs, oscillate_secs } = self else { return None };
        let steps = step_secs.map_or(0.0, |s| (t_secs / s).floor());
        let swing = oscillate_secs
            .map_or(1.0, |p| 1.0 + 0.5 * (2.0 * std::f64::consts::PI * t_secs / p).sin());
        Some(base_per_s * (1.0 + steps) * swing)
    }
}

/// What one process offers, group by group.
#[derive(Clone, Debug, PartialEq)]
pub struct MultiRingWorkload {
    pub payload_bytes: usize,
    pub duration: Duration,
    pub traffic: Vec<(GroupId, Offered)>,
    /// Sample the merged delivery this often (`None`: no series).
    pub series_ms: Option<u64>,
}

/// One sample of one process' merged delivery.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SeriesRow {
    pub t_ms: u64,
    pub process: ProcessId,
    /// Messages multicast by this process during the sample, per group (group-id order of
    /// `traffic`).
    pub offered_msgs: Vec<u64>,
    /// Messages its merge delivered during the sample, in all and per subscribed group.
    pub delivered_msgs: u64,
    pub delivered_per_group: Vec<u64>,
    pub delivered_mbit_per_s: f64,
    /// Latency of its own messages delivered during the sample.
    pub latency_p50_us: u64,
    pub latency_p99_us: u64,
    /// Decided instances waiting for the merge, per merged ring, at the end of the sample.
    pub queued_instances: Vec<usize>,
}

/// What one process measured: what a Multi-Ring process sends `ringsmr bench`
/// ([`control`](super::control)), without its series.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProcessLoadReport {
    pub process: ProcessId,
    pub subscriptions: Vec<GroupId>,
    /// Messages and payload bytes delivered during the run, per subscribed group.
    #[serde(with = "delivered_as_list")]
    pub delivered: BTreeMap<GroupId, (u64, u64)>,
    pub secs: f64,
    pub latency_us: Histogram,
    /// The merged stream at the checkpoints it passed from the run's start on, ending with where it
    /// stood after the run; counted from where the stream the load continued began
    /// ([`ProcessLoad::continuing`]).
    pub checkpoints: Vec<Checkpoint>,
    /// CPU share of each ring's node thread during the run, in ring-id order.
    pub cpu_per_ring: Vec<(RingId, Option<f64>)>,
    /// Skip instances this process' nodes opened as coordinators during the run (what `ringsmr
    /// bench` sums; `ringsmr local` reads its nodes' totals), and the logical positions skips took
    /// up at its learners, summed over its rings.
    #[serde(default)]
    pub skip_instances: u64,
    #[serde(default)]
    pub positions_skipped: u64,
    /// Not sent over a control connection: a process writes its own series (`--series`).
    #[serde(skip)]
    pub series: Vec<SeriesRow>,
}

/// [`ProcessLoadReport::delivered`] over the wire as `[[group, msgs, bytes], ...]`: a JSON object's
/// keys are strings, and the reply that carries the report (an internally tagged enum, which serde
/// buffers before it knows the variant) does not turn them back into group ids.
mod delivered_as_list {
    use std::collections::BTreeMap;

    use serde::{Deserialize, Deserializer, Serializer};

    use super::GroupId;

    pub fn serialize<S: Serializer>(
        delivered: &BTreeMap<GroupId, (u64, u64)>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.collect_seq(delivered.iter().map(|(g, (msgs, bytes))| (g, msgs, bytes)))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<BTreeMap<GroupId, (u64, u64)>, D::Error> {
        let list = Vec::<(GroupId, u64, u64)>::deserialize(d)?;
        Ok(list.into_iter().map(|(g, msgs, bytes)| (g, (msgs, bytes))).collect())
    }
}

impl ProcessLoadReport {
    pub fn delivered_msgs(&self) -> u64 {
        self.delivered.values().map(|d| d.0).sum()
    }

    pub fn delivered_bytes(&self) -> u64 {
        self.delivered.values().map(|d| d.1).sum()
    }
}

/// The stream position a merged delivery is traced under: instances of different rings must not
/// look alike.
pub fn stream_key(ring: RingId, instance: Instance) -> Instance {
    (u64::from(ring) << 48) ^ instance
}

/// One process' part of a run.
pub struct ProcessLoad<'a> {
    node: &'a mut MultiRingNode,
    traffic: Vec<(GroupId, Offered)>,
    payload_bytes: usize,
    /// Per traffic entry: own messages in flight (window) or offered so far (rate, fractional).
    outstanding: Vec<usize>,
    offered: Vec<f64>,
    proposed: Vec<u64>,
    /// Whether this process delivers the group (so its own messages come back to it).
    loops_back: Vec<bool>,
    /// Send time of own messages in flight, per ring by sequence number (a hash map here took a
    /// seventh of a one-ring run's CPU samples).
    stamps: Vec<(RingId, ProposalStamps)>,
    /// The merged stream's order (and, when asked, its payloads).
    pub trace: StreamTrace,
    pub checksum: Option<StreamChecksum>,
    ready: bool,
    counting: bool,
    delivered: BTreeMap<GroupId, (u64, u64)>,
    latency_us: Histogram,
    trace_from_values: u64,
    cpu_at_start: Vec<Option<Duration>>,
    cpu_per_ring: Vec<(RingId, Option<f64>)>,
    /// The nodes' skip counters when the run started, and what they added during it.
    skips_at_start: (u64, u64),
    skips: (u64, u64),
    secs: f64,
    /// The current sample.
    window: Window,
    series: Vec<SeriesRow>,
}

#[derive(Default)]
struct Window {
    offered: Vec<u64>,
    delivered: BTreeMap<GroupId, (u64, u64)>,
    latency_us: Histogram,
}

impl<'a> ProcessLoad<'a> {
    pub fn new(node: &'a mut MultiRingNode, w: &MultiRingWorkload) -> ProcessLoad<'a> {
        let subscribed = node.subscriptions().to_vec();
        let loops_back = w.traffic.iter().map(|(g, _)| subscribed.contains(g)).collect();
        let n = w.traffic.len();
        let delivered: BTreeMap<GroupId, (u64, u64)> =
            subscribed.iter().map(|&g| (g, (0, 0))).collect();
        ProcessLoad {
            node,
            traffic: w.traffic.clone(),
            payload_bytes: w.payload_bytes.min(PAYLOAD_BYTES_MAX),
            outstanding: vec![0; n],
            offered: vec![0.0; n],
            proposed: vec![0; n],
            loops_back,
            stamps: Vec::new(),
            trace: StreamTrace::default(),
            checksum: None,
            ready: w.traffic.is_empty(),
            counting: false,
            window: Window {
                offered: vec![0; n],
                delivered: delivered.clone(),
                latency_us: Histogram::default(),
            },
            delivered,
            latency_us: Histogram::default(),
            trace_from_values: 0,
            cpu_at_start: Vec::new(),
            cpu_per_ring: Vec::new(),
            skips_at_start: (0, 0),
            skips: (0, 0),
            secs: 0.0,
            series: Vec::new(),
        }
    }

    /// Also checksums every delivered payload (what `ringsmr node --expect` prints).
    pub fn with_payload_checksum(mut self) -> ProcessLoad<'a> {
        self.checksum = Some(StreamChecksum::default());
        self
    }

    /// Goes on with the stream the process delivered so far (its order, and its payload checksum
    /// when it keeps one): a `ringsmr node` process loaded by `ringsmr bench`, whose learners
    /// started their loads at different points of the merged stream and are compared on positions
    /// counted from the process' start. [`ProcessLoad::finish`] hands them back.
    pub fn continuing(
        mut self,
        trace: StreamTrace,
        checksum: Option<StreamChecksum>,
    ) -> ProcessLoad<'a> {
        self.trace = trace;
        self.checksum = checksum;
        self
    }

    pub fn node(&mut self) -> &mut MultiRingNode {
        self.node
    }

    /// A probe to every group this process offers to; it is ready when the probes it can see came
    /// back (a process that delivers none of its groups cannot tell, and is ready at once).
    fn propose_probes(&mut self) {
        let mut waits = false;
        for (i, (g, _)) in self.traffic.iter().enumerate() {
            if self.node.multicast(*g, Bytes::from_static(b"probe")).is_ok() && self.loops_back[i] {
                self.outstanding[i] += 1;
                waits = true;
            }
        }
        self.ready = !waits;
    }

    fn propose(&mut self, run: Instant, t_secs: f64, dt_secs: f64) {
        let payload = &PAYLOAD[..self.payload_bytes];
        for i in 0..self.traffic.len() {
            let (group, offered) = &self.traffic[i];
            let group = *group;
            let allowed = match offered {
                Offered::Window { outstanding } => {
                    outstanding.saturating_sub(self.outstanding[i]) as u64
                }
                Offered::Rate { .. } => {
                    let rate = offered.rate_at(t_secs).unwrap_or(0.0);
                    self.offered[i] += rate * dt_secs;
                    (self.offered[i] as u64).saturating_sub(self.proposed[i])
                }
            };
            if allowed == 0 {
                continue;
            }
            let stamp_ns = run.elapsed().as_nanos() as u64;
            let Some(ring) = self.node.ring_of(group) else { continue };
            for _ in 0..allowed {
                match self.node.multicast(group, Bytes::from_static(payload)) {
                    Ok(id) => {
                        self.proposed[i] += 1;
                        self.window.offered[i] += 1;
                        if self.loops_back[i] {
                            self.outstanding[i] += 1;
                            self.stamps_of(ring).insert(id.seq, stamp_ns);
                        }
                    }
                    // The ring's proposal queue is full: offered again next time.
                    Err(_) => break,
                }
            }
        }
    }

    /// Takes what the merge delivers; true when there was anything.
    fn take_deliveries(&mut self, run: Option<Instant>) -> bool {
        let now_ns = run.map(|r| r.elapsed().as_nanos() as u64);
        let mut any = false;
        while let Some(b) = self.node.try_deliver_batch() {
            any = true;
            let key = stream_key(b.ring, b.instance);
            let me = self.node.node_id(b.ring);
            // A batch of one group as its proposer formed it: its ids follow from the first, so it
            // is traced, counted and timed without reading its values (as `node::load` does: this
            // one thread serves every process of a `local` run).
            if let (Some(group), Some(first), None) =
                (b.group, b.values.run_start(), &self.checksum)
            {
                let n = b.values.len() as u64;
                for seq in first.seq..first.seq + n {
                    self.trace.add(key, ValueId { seq, ..first });
                }
                if self.counting {
                    let bytes = b.values.bytes() as u64 - n * VALUE_OVERHEAD_BYTES as u64;
                    for d in [&mut self.delivered, &mut self.window.delivered] {
                        let e = d.entry(group).or_default();
                        e.0 += n;
                        e.1 += bytes;
                    }
                }
                if Some(first.proposer) == me {
                    for seq in first.seq..first.seq + n {
                        self.own_delivered(b.ring, group, ValueId { seq, ..first }, now_ns);
                    }
                }
                continue;
            }
            for v in b.values.values() {
                // The message as `MultiRingNode::try_deliver` hands it out (without the group tag
                // of a shared ring), so a load's checksum goes on with the stream `ringsmr node`
                // checksums between loads.
                let (group, message) = match b.group {
                    Some(g) => (g, &v.payload[..]),
                    None => match split_group_tag(&v.payload) {
                        Some((g, _)) if self.delivered.contains_key(&g) => {
                            (g, &v.payload[GROUP_TAG_BYTES..])
                        }
                        _ => continue,
                    },
                };
                let payload_len = message.len();
                self.trace.add(key, v.id);
                if let Some(sum) = self.checksum.as_mut() {
                    sum.add_value(key, v.id, message);
                }
                if self.counting {
                    for d in [&mut self.delivered, &mut self.window.delivered] {
                        let e = d.entry(group).or_default();
                        e.0 += 1;
                        e.1 += payload_len as u64;
                    }
                }
                if Some(v.id.proposer) == me {
                    self.own_delivered(b.ring, group, v.id, now_ns);
                }
            }
        }
        any
    }

    fn stamps_of(&mut self, ring: RingId) -> &mut ProposalStamps {
        let i = self.stamps.iter().position(|(r, _)| *r == ring).unwrap_or_else(|| {
            self.stamps.push((ring, ProposalStamps::default()));
            self.stamps.len() - 1
        });
        &mut self.stamps[i].1
    }

    fn own_delivered(&mut self, ring: RingId, group: GroupId, id: ValueId, now_ns: Option<u64>) {
        self.ready = true;
        if let Some(i) = self.traffic.iter().position(|(g, _)| *g == group) {
            self.outstanding[i] = self.outstanding[i].saturating_sub(1);
        }
        if let Some(sent_ns) = self.stamps_of(ring).take(id.seq)
            && let Some(now_ns) = now_ns
        {
            let us = now_ns.saturating_sub(sent_ns) / 1000;
            self.latency_us.record(us);
            self.window.latency_us.record(us);
        }
    }

    /// Own messages of groups this process does not deliver count as delivered once their ring
    /// took them: the window then bounds what waits in its proposal queue.
    fn release_unseen(&mut self) {
        for i in 0..self.traffic.len() {
            if !self.loops_back[i] && matches!(self.traffic[i].1, Offered::Window { .. }) {
                self.outstanding[i] = 0;
            }
        }
    }

    fn start(&mut self) {
        self.counting = true;
        self.trace_from_values = self.trace.values();
        self.cpu_at_start = self.node.thread_cpu_times();
        self.skips_at_start = self.node.skip_counters();
        // Room for what may be in flight: a window, or an open loop's second (more moves to the
        // table's overflow map).
        let in_flight = self.traffic.iter().map(|(_, o)| match o {
            Offered::Window { outstanding } => *outstanding,
            Offered::Rate { .. } => 1 << 16,
        });
        let in_flight = in_flight.max().unwrap_or(1);
        self.stamps = self.node.rings().map(|r| (r, ProposalStamps::default())).collect();
        for (_, s) in &mut self.stamps {
            s.reset(in_flight);
        }
    }

    fn end(&mut self, secs: f64) {
        self.counting = false;
        self.secs = secs;
        let (opened, skipped) = self.node.skip_counters();
        let (opened_before, skipped_before) = self.skips_at_start;
        self.skips = (opened.saturating_sub(opened_before), skipped.saturating_sub(skipped_before));
        let rings: Vec<RingId> = self.node.rings().collect();
        let now = self.node.thread_cpu_times();
        self.cpu_per_ring = rings
            .into_iter()
            .zip(self.cpu_at_start.iter().zip(now))
            .map(|(r, (a, b))| match (a, b) {
                (Some(a), Some(b)) => {
                    (r, Some(b.saturating_sub(*a).as_secs_f64() / secs.max(1e-9)))
                }
                _ => (r, None),
            })
            .collect();
    }

    fn sample(&mut self, t_ms: u64, span_ms: u64) {
        let w = std::mem::take(&mut self.window);
        let bytes: u64 = w.delivered.values().map(|d| d.1).sum();
        self.series.push(SeriesRow {
            t_ms,
            process: self.node.process(),
            offered_msgs: w.offered.clone(),
            delivered_msgs: w.delivered.values().map(|d| d.0).sum(),
            delivered_per_group: w.delivered.values().map(|d| d.0).collect(),
            delivered_mbit_per_s: bytes as f64 * 8.0 / (span_ms.max(1) as f64 * 1e3),
            latency_p50_us: w.latency_us.quantile(0.5),
            latency_p99_us: w.latency_us.quantile(0.99),
            queued_instances: self.node.queued_instances().into_iter().map(|q| q.1).collect(),
        });
        self.window = Window {
            offered: vec![0; self.traffic.len()],
            delivered: w.delivered.keys().map(|&g| (g, (0, 0))).collect(),
            latency_us: Histogram::default(),
        };
    }

    pub fn report(self) -> ProcessLoadReport {
        self.finish().0
    }

    /// The report, and the stream's order and payload checksum to go on with.
    pub fn finish(self) -> (ProcessLoadReport, StreamTrace, Option<StreamChecksum>) {
        let report = ProcessLoadReport {
            process: self.node.process(),
            subscriptions: self.node.subscriptions().to_vec(),
            delivered: self.delivered,
            secs: self.secs,
            latency_us: self.latency_us,
            checkpoints: self.trace.checkpoints_since(self.trace_from_values),
            cpu_per_ring: self.cpu_per_ring,
            skip_instances: self.skips.0,
            positions_skipped: self.skips.1,
            series: self.series,
        };
        (report, self.trace, self.checksum)
    }
}

/// How long the processes may take to see their probes before a run starts.
pub const READY_TIMEOUT: Duration = Duration::from_secs(15);
/// How long processes wait for their last messages after a run.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// Runs `w` on `loads` (every process of a `local` run, or the one of a `ringsmr node` process):
/// probes, the measured run, a drain. `stop` ends it early.
pub fn drive(
    loads: &mut [ProcessLoad<'_>],
    w: &MultiRingWorkload,
    stop: &AtomicBool,
) -> Result<(), String> {
    for l in loads.iter() {
        l.node.wake_on_delivery(std::thread::current());
    }
    let park = || std::thread::park_timeout(Duration::from_millis(1));
    let ready_by = Instant::now() + READY_TIMEOUT;
    loads.iter_mut().for_each(ProcessLoad::propose_probes);
    while let Some(p) = loads.iter().find(|l| !l.ready).map(|l| l.node.process()) {
        if stop.load(Ordering::Relaxed) {
            return Err(format!("process {p}: stopped before the run"));
        }
        if Instant::now() >= ready_by {
            return Err(format!(
                "process {p}: its first messages were not delivered within {} s (are all \
                 processes up and their ports free? is multicast on for mring, e.g. on loopback \
                 `ip link set lo multicast on`?)",
                READY_TIMEOUT.as_secs()
            ));
        }
        let mut any = false;
        for l in loads.iter_mut() {
            any |= l.take_deliveries(None);
        }
        if !any {
            park();
        }
    }
    let run = Instant::now();
    for l in loads.iter_mut() {
        l.outstanding.iter_mut().for_each(|o| *o = 0);
        l.start();
    }
    let deadline = run + w.duration;
    let mut last = 0.0;
    let mut next_sample_ms = w.series_ms;
    while Instant::now() < deadline && !stop.load(Ordering::Relaxed) {
        let t = run.elapsed().as_secs_f64();
        let dt = t - last;
        last = t;
        for l in loads.iter_mut() {
            l.propose(run, t, dt);
            l.release_unseen();
        }
        let mut any = false;
        for l in loads.iter_mut() {
            any |= l.take_deliveries(Some(run));
        }
        if let (Some(at), Some(every)) = (next_sample_ms, w.series_ms)
            && run.elapsed().as_millis() as u64 >= at
        {
            next_sample_ms = Some(at + every);
            for l in loads.iter_mut() {
                l.sample(at, every);
            }
        }
        if !any {
            park();
        }
    }
    let secs = run.elapsed().as_secs_f64();
    for l in loads.iter_mut() {
        l.end(secs);
    }
    let drained_by = Instant::now() + DRAIN_TIMEOUT;
    while loads.iter().any(|l| l.loops_back.iter().zip(&l.outstanding).any(|(b, o)| *b && *o > 0))
        && Instant::now() < drained_by
        && !stop.load(Ordering::Relaxed)
    {
        let mut any = false;
        for l in loads.iter_mut() {
            any |= l.take_deliveries(Some(run));
        }
        if !any {
            park();
        }
    }
    Ok(())
}

/// The figures of a run (module docs).
#[derive(Clone, Debug)]
pub struct MultiRingLoadReport {
    pub ring_protocol: &'static str,
    pub rings: usize,
    pub processes: usize,
    pub payload_bytes: usize,
    pub batch_bytes: usize,
    pub lambda_instances: u64,
    pub delta_us: u64,
    pub m: Vec<u64>,
    pub io_backend: String,
    pub secs: f64,
    pub aggregate_msgs: u64,
    pub aggregate_bytes: u64,
    pub merged_msgs: u64,
    pub merged_bytes: u64,
    pub latency_us: Histogram,
    /// Per learner class (same subscriptions): how their streams compare.
    pub orders: Vec<(Vec<GroupId>, PrefixComparison)>,
    /// Skip instances the coordinators opened, and the logical positions skips took up at the
    /// learner that saw most.
    pub skip_instances: u64,
    pub positions_skipped: u64,
    pub processes_reports: Vec<ProcessLoadReport>,
}

impl MultiRingLoadReport {
    fn mbit(&self, bytes: u64) -> f64 {
        bytes as f64 * 8.0 / self.secs.max(1e-9) / 1e6
    }

    pub fn aggregate_mbit_per_s(&self) -> f64 {
        self.mbit(self.aggregate_bytes)
    }

    pub fn merged_mbit_per_s(&self) -> f64 {
        self.mbit(self.merged_bytes)
    }

    /// Every class of learners with the same subscriptions agrees (`None`: nothing compared).
    pub fn orders_agree(&self) -> Option<bool> {
        let compared: Vec<bool> = self.orders.iter().filter_map(|(_, c)| c.agree).collect();
        (!compared.is_empty()).then(|| compared.iter().all(|&a| a))
    }

    pub fn to_json(&self) -> serde_json::Value {
        let l = &self.latency_us;
        serde_json::json!({
            "protocol": "multiring",
            "ring_protocol": self.ring_protocol,
            "rings": self.rings,
            "nodes": self.processes,
            "payload_bytes": self.payload_bytes,
            "batch_bytes": self.batch_bytes,
            "lambda_instances": self.lambda_instances,
            "delta_us": self.delta_us,
            "m": self.m,
            "secs": self.secs,
            "io_backend": self.io_backend,
            "cores": allowed_cores().len(),
            "delivered_msgs": self.merged_msgs,
            "delivered_bytes": self.merged_bytes,
            "msgs_per_s": self.merged_msgs as f64 / self.secs.max(1e-9),
            "mbit_per_s": self.merged_mbit_per_s(),
            "aggregate_msgs_per_s": self.aggregate_msgs as f64 / self.secs.max(1e-9),
            "aggregate_mbit_per_s": self.aggregate_mbit_per_s(),
            "latency_us": {
                "p50": l.quantile(0.5), "p99": l.quantile(0.99),
                "p999": l.quantile(0.999), "max": l.max(),
            },
            "orders_agree": self.orders_agree(),
            "skip_instances": self.skip_instances,
            "positions_skipped": self.positions_skipped,
            "per_process": self.processes_reports.iter().map(|p| serde_json::json!({
                "process": p.process,
                "subscriptions": p.subscriptions,
                "delivered_msgs": p.delivered_msgs(),
                "mbit_per_s": self.mbit(p.delivered_bytes()),
                "cpu_per_ring": p.cpu_per_ring.iter().map(|(_, c)| c).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
        })
    }

    pub fn table(&self) -> String {
        let l = &self.latency_us;
        let mut s = format!(
            "protocol      multiring: {} rings of {} ({} processes, {} cores, backend {})\n\
             skips         lambda {} instances per {} us, M {:?}: {} skip instances, {} positions skipped\n\
             workload      {} B payloads, batches up to {} B, {:.1} s\n\
             aggregate     {:.1} Mbit/s   {:.0} msgs/s   (each group counted once, at its best learner)\n\
             merged        {:.1} Mbit/s   {:.0} msgs/s   (the most one learner delivered)\n\
             latency       p50 {} us   p99 {} us   p999 {} us   max {} us\n",
            self.rings,
            self.ring_protocol,
            self.processes,
            allowed_cores().len(),
            self.io_backend,
            self.lambda_instances,
            self.delta_us,
            self.m,
            self.skip_instances,
            self.positions_skipped,
            self.payload_bytes,
            self.batch_bytes,
            self.secs,
            self.aggregate_mbit_per_s(),
            self.aggregate_msgs as f64 / self.secs.max(1e-9),
            self.merged_mbit_per_s(),
            self.merged_msgs as f64 / self.secs.max(1e-9),
            l.quantile(0.5),
            l.quantile(0.99),
            l.quantile(0.999),
            l.max(),
        );
        for (groups, c) in &self.orders {
            s += &match c.agree {
                Some(true) => format!(
                    "orders        learners of groups {groups:?} agree (first {} messages)\n",
                    c.compared_values
                ),
                Some(false) => format!(
                    "orders        learners of groups {groups:?} DIFFER (within the first {} messages)\n",
                    c.compared_values
                ),
                None => format!("orders        learners of groups {groups:?}: not compared\n"),
            };
        }
        for p in &self.processes_reports {
            s += &format!(
                "process {:<5} groups {:?}: {:.1} Mbit/s; ring threads' cpu",
                p.process,
                p.subscriptions,
                self.mbit(p.delivered_bytes())
            );
            for (r, c) in &p.cpu_per_ring {
                s += &c.map_or(format!(" r{r} n/a"), |c| format!(" r{r} {:.0}%", c * 100.0));
            }
            s.push('\n');
        }
        s
    }
}

/// The figures from what every process measured.
pub fn summarize(
    file: &MultiRingFile,
    w: &MultiRingWorkload,
    io_backend: String,
    skips: (u64, u64),
    reports: Vec<ProcessLoadReport>,
) -> MultiRingLoadReport {
    let secs = reports.iter().map(|r| r.secs).fold(0.0, f64::max);
    let mut best: BTreeMap<GroupId, (u64, u64)> = BTreeMap::new();
    for r in &reports {
        for (g, d) in &r.delivered {
            let e = best.entry(*g).or_default();
            if d.1 > e.1 {
                *e = *d;
            }
        }
    }
    let merged = reports.iter().max_by_key(|r| r.delivered_bytes());
    let mut latency_us = Histogram::default();
    reports.iter().for_each(|r| latency_us.merge(&r.latency_us));
    let mut classes: BTreeMap<Vec<GroupId>, Vec<&[Checkpoint]>> = BTreeMap::new();
    for r in reports.iter().filter(|r| !r.subscriptions.is_empty()) {
        classes.entry(r.subscriptions.clone()).or_default().push(&r.checkpoints);
    }
    let orders = classes
        .into_iter()
        .filter(|(_, c)| c.len() > 1)
        .map(|(g, c)| (g, crate::node::checksum::compare_prefixes(&c)))
        .collect();
    let first = &file.rings[0].cluster;
    MultiRingLoadReport {
        ring_protocol: match first.protocol {
            crate::node::ProtocolName::Uring => "uring",
            crate::node::ProtocolName::Mring => "mring",
        },
        rings: file.rings.len(),
        processes: file.processes().len(),
        payload_bytes: w.payload_bytes,
        batch_bytes: first.batch_bytes,
        lambda_instances: file.lambda_instances,
        delta_us: file.delta_us,
        m: file.groups.iter().map(|g| g.m).collect(),
        io_backend,
        secs,
        aggregate_msgs: best.values().map(|d| d.0).sum(),
        aggregate_bytes: best.values().map(|d| d.1).sum(),
        merged_msgs: merged.map_or(0, ProcessLoadReport::delivered_msgs),
        merged_bytes: merged.map_or(0, ProcessLoadReport::delivered_bytes),
        latency_us,
        orders,
        skip_instances: skips.0,
        positions_skipped: skips.1,
        processes_reports: reports,
    }
}

/// Which processes offer load in a `local` run.
#[derive(Clone, Debug)]
pub struct LocalMultiRingSpec {
    pub file: MultiRingFile,
    pub workload: MultiRingWorkload,
    /// The processes that multicast (`workload.traffic` each); the others only take part.
    pub proposers: Vec<ProcessId>,
    /// Each proposer offers only to the groups it delivers, as clients next to their learners
    /// (5.4.3's first case). A process that does not deliver a group cannot tell when its messages
    /// were delivered, so its window would not bound what it offers.
    pub offer_subscribed_only: bool,
    pub backend: crate::io::BackendChoice,
}

/// Runs a Multi-Ring cluster inside this process and loads it.
pub fn run_local(spec: &LocalMultiRingSpec) -> Result<MultiRingLoadReport, MultiRingError> {
    let processes = spec.file.processes();
    let mut nodes = Vec::with_capacity(processes.len());
    for &p in &processes {
        let rings = spec.file.rings.iter().filter(|r| r.node_of(p).is_some()).count();
        // Thread per core: every ring's node of every process pinned, spread over the cores.
        let opts = MultiRingOptions { backend: spec.backend, ..MultiRingOptions::pinned(p, rings) };
        nodes.push(MultiRingNode::start(&spec.file, p, opts)?);
    }
    let backend = nodes[0].backend().to_string();
    let idle = MultiRingWorkload { traffic: Vec::new(), ..spec.workload.clone() };
    let reports = {
        let workloads: Vec<MultiRingWorkload> = nodes
            .iter()
            .map(|n| {
                if !spec.proposers.contains(&n.process()) {
                    return idle.clone();
                }
                let mut w = spec.workload.clone();
                if spec.offer_subscribed_only {
                    w.traffic.retain(|(g, _)| n.subscriptions().contains(g));
                }
                w
            })
            .collect();
        let mut loads: Vec<ProcessLoad<'_>> =
            nodes.iter_mut().zip(&workloads).map(|(n, w)| ProcessLoad::new(n, w)).collect();
        drive(&mut loads, &spec.workload, &AtomicBool::new(false))
            .map_err(|what| MultiRingError::Load { what })?;
        loads.into_iter().map(ProcessLoad::report).collect::<Vec<_>>()
    };
    let mut skips = (0, 0);
    for n in nodes {
        for (_, r) in n.stop().rings {
            skips.0 += r.core.skip_instances_opened;
            skips.1 = skips.1.max(r.core.positions_skipped);
        }
    }
    Ok(summarize(&spec.file, &spec.workload, backend, skips, reports))
}
