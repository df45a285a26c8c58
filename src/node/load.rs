//! The benchmark workload of `ringsmr local`: start a cluster in this process, propose from every
//! node for a fixed time, and measure what the learners deliver (throughput) and how long each value
//! took from `propose` to its delivery at its own proposer (latency). DESIGN "Benchmarks" lists the
//! figures; [`LoadReport::to_json`] writes them.
//!
//! Each payload starts with the time it was proposed (nanoseconds since the run started), so latency
//! needs no table of outstanding values.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::io::BackendChoice;
use crate::io::pin::allowed_cores;

use super::baseline;
use super::config::{ClusterFile, ProtocolName};
use super::handle::{Node, NodeError, NodeOptions, NodeReport};
use super::histogram::Histogram;

/// What to run.
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
    /// Draw a progress line on stderr (when it is a terminal).
    pub progress: bool,
}

/// The figures of one run.
#[derive(Clone, Debug)]
pub struct LoadReport {
    pub protocol: &'static str,
    pub nodes: usize,
    pub payload_bytes: usize,
    pub batch_bytes: usize,
    pub secs: f64,
    pub io_backend: &'static str,
    pub delivered_msgs: u64,
    pub delivered_bytes: u64,
    pub latency_us: Histogram,
    pub baseline_mbit_per_s: Option<f64>,
    pub node_reports: Vec<NodeReport>,
}

/// Bytes of the timestamp each payload starts with.
const STAMP_BYTES: usize = 8;

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
            "delivered_msgs": self.delivered_msgs,
            "delivered_bytes": self.delivered_bytes,
            "msgs_per_s": self.msgs_per_s(),
            "mbit_per_s": self.mbit_per_s(),
            "latency_us": {
                "p50": l.quantile(0.5), "p99": l.quantile(0.99),
                "p999": l.quantile(0.999), "max": l.max(),
            },
            "cpu_per_node": self.node_reports.iter().map(cpu_share).collect::<Vec<_>>(),
            "cores": allowed_cores().len(),
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
            "protocol      {} ({} nodes, one ring, {} cores, backend {})\n\
             workload      {} B payloads, batches up to {} B, {:.1} s\n\
             throughput    {:.1} Mbit/s   {:.0} msgs/s   ({} values delivered)\n\
             latency       p50 {} us   p99 {} us   p999 {} us   max {} us\n",
            self.protocol,
            self.nodes,
            allowed_cores().len(),
            self.io_backend,
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
        s += "cpu per node ";
        for (i, r) in self.node_reports.iter().enumerate() {
            s += &format!("  node {i}: {:.0}%", cpu_share(r) * 100.0);
        }
        s.push('\n');
        s
    }
}

fn cpu_share(r: &NodeReport) -> f64 {
    r.cpu.as_secs_f64() / r.wall.as_secs_f64().max(1e-9)
}

/// Runs the workload; the baseline (if asked) first, on the same backend and loopback.
pub fn run_local(spec: &LoadSpec) -> Result<LoadReport, NodeError> {
    let n = spec.cluster.nodes.len();
    let baseline_mbit_per_s = if spec.baseline {
        let b = match spec.cluster.protocol {
            ProtocolName::Uring => baseline::tcp_ring(spec.backend, n, spec.duration),
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
    let io_backend = nodes[0].backend();
    wait_until_ready(&mut nodes)?;

    let started = Instant::now();
    let deadline = started + spec.duration;
    let mut latency_us = Histogram::default();
    let mut outstanding = vec![0usize; n];
    let mut delivered_msgs = 0u64;
    let mut next_progress = started;
    let progress = spec.progress && std::io::stderr().is_terminal();
    let payload_bytes = spec.payload_bytes.max(STAMP_BYTES);
    let filler = vec![0xa5; payload_bytes - STAMP_BYTES];
    for node in &nodes {
        node.wake_on_delivery(std::thread::current());
    }
    while Instant::now() < deadline {
        for (i, node) in nodes.iter_mut().enumerate() {
            while outstanding[i] < spec.outstanding_per_proposer {
                // One allocation of the payload's own size: the allocator hands the same few
                // blocks round as values are delivered and dropped, where carving values out of
                // large shared buffers kept fresh pages (and their zeroing) coming.
                let mut payload = Vec::with_capacity(payload_bytes);
                payload.extend_from_slice(&(started.elapsed().as_nanos() as u64).to_le_bytes());
                payload.extend_from_slice(&filler);
                if node.propose(Bytes::from(payload)).is_err() {
                    break;
                }
                outstanding[i] += 1;
            }
        }
        let now_ns = started.elapsed().as_nanos() as u64;
        let mut any = false;
        for (i, node) in nodes.iter_mut().enumerate() {
            // A batch at a time: with small payloads, per-value work here would make this one
            // thread (which serves every node) the bottleneck.
            while let Some(b) = node.try_recv_batch() {
                any = true;
                if i == 0 {
                    delivered_msgs += b.values.len() as u64;
                }
                for v in b.values.values().filter(|v| usize::from(v.id.proposer) == i) {
                    outstanding[i] = outstanding[i].saturating_sub(1);
                    if let Some(stamp) = v.payload.first_chunk::<STAMP_BYTES>() {
                        let sent_ns = u64::from_le_bytes(*stamp);
                        latency_us.record(now_ns.saturating_sub(sent_ns) / 1000);
                    }
                }
            }
        }
        if !any {
            // Every node unparks this thread when it delivers; the bound only keeps the deadline
            // and the progress line on time.
            std::thread::park_timeout(Duration::from_millis(5));
        }
        if progress && Instant::now() >= next_progress {
            next_progress += Duration::from_millis(250);
            draw_progress(started.elapsed(), spec.duration, delivered_msgs, payload_bytes);
        }
    }
    let secs = started.elapsed().as_secs_f64();
    if progress {
        eprint!("\r{:72}\r", "");
    }
    let node_reports = nodes.into_iter().map(Node::stop).collect();
    Ok(LoadReport {
        protocol: match spec.cluster.protocol {
            ProtocolName::Uring => "uring",
            ProtocolName::Mring => "mring",
        },
        nodes: n,
        payload_bytes,
        batch_bytes: spec.cluster.batch_bytes,
        secs,
        io_backend,
        delivered_msgs,
        delivered_bytes: delivered_msgs * payload_bytes as u64,
        latency_us,
        baseline_mbit_per_s,
        node_reports,
    })
}

fn draw_progress(elapsed: Duration, total: Duration, delivered: u64, payload_bytes: usize) {
    let frac = (elapsed.as_secs_f64() / total.as_secs_f64()).min(1.0);
    let width = 30;
    let done = (frac * width as f64) as usize;
    let mbit = delivered as f64 * payload_bytes as f64 * 8.0 / elapsed.as_secs_f64() / 1e6;
    eprint!(
        "\r[{}{}] {:4.1}/{:.0} s  {mbit:8.1} Mbit/s",
        "=".repeat(done),
        " ".repeat(width - done),
        elapsed.as_secs_f64(),
        total.as_secs_f64()
    );
}

/// Waits until every node delivered one value proposed by node 0: links are up, a coordinator
/// runs, and the ring works end to end.
fn wait_until_ready(nodes: &mut [Node]) -> Result<(), NodeError> {
    let deadline = Instant::now() + Duration::from_secs(15);
    let _ = nodes[0].propose(Bytes::from_static(&[0; STAMP_BYTES]));
    for node in nodes.iter_mut() {
        let left = deadline.saturating_duration_since(Instant::now());
        if node.recv_timeout(left).is_none() {
            return Err(NodeError::Start {
                id: node.id(),
                what: "the cluster did not deliver a first value within 15 s (are the ports \
                       free? is loopback multicast on for mring: `ip link set lo multicast on`?)"
                    .into(),
            });
        }
    }
    Ok(())
}
