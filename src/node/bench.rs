//! `ringsmr bench`: the workload of `ringsmr local` against a cluster of `ringsmr node` processes,
//! possibly on other hosts, driven through their control endpoints ([`control`](super::control)).
//!
//! ```text
//!   connect to every node's `control` (retrying for CONNECT_TIMEOUT), check it is the node meant
//!   --baseline: start every stage, then collect what the measuring ones measured
//!        U-Ring: sink (node n-1) first, then each stage before it, told where the next listens;
//!                the figure is what the sink received
//!        M-Ring: receivers (nodes 1..n) first, then the sender (node 0); the figure is the mean
//!                over receivers
//!   load: every node at once; each replies with what it measured; merged as for `local`
//! ```
//!
//! The U-Ring baseline listens on the node's data address with a port the OS picks (the reply
//! names it), so it needs no port in the cluster file. The M-Ring baseline multicasts to the
//! cluster's group on the port next to the group's (port + 1; port - 1 for 65535), so that the
//! nodes' protocol sockets, joined to the group's own port, never see its datagrams.

use std::net::{SocketAddr, SocketAddrV4};
use std::time::{Duration, Instant};

use thiserror::Error;

use crate::proto::types::NodeId;

use super::baseline::{self, FIRST_BYTE_TIMEOUT, MulticastRole, StageReport, WARMUP};
use super::config::{ClusterFile, ProtocolName};
use super::control::{Command, Reply, StageSpec};
use super::control_transport::ControlLink;
use super::load::{self, DRAIN_TIMEOUT, LoadReport, NodeLoadReport, READY_TIMEOUT, Workload};

/// How long the bench keeps trying to reach a node's control endpoint.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a node may take to answer a command that does not wait for a measurement.
pub const QUICK_REPLY_TIMEOUT: Duration = Duration::from_secs(10);
/// Beyond the longest a measurement can take, how long the bench waits for its reply.
pub const REPLY_SLACK: Duration = Duration::from_secs(10);

/// What to run.
#[derive(Clone, Debug)]
pub struct BenchSpec {
    pub cluster: ClusterFile,
    /// The cluster file's path, for the messages that tell how to start a missing node.
    pub config_path: String,
    pub workload: Workload,
    /// Measure the raw transport first (`efficiency` = protocol / raw).
    pub baseline: bool,
    /// Say on stderr what the bench is doing.
    pub progress: bool,
}

/// Why a bench run failed; each names the node and what to do.
#[derive(Debug, Error)]
pub enum BenchError {
    #[error(
        "node {id}: nothing answers at its control address {addr} ({cause}) after {} s; start \
         `ringsmr node --config {config} --id {id}` on that host (or fix `control` of node {id})",
        CONNECT_TIMEOUT.as_secs()
    )]
    Unreachable { id: NodeId, addr: SocketAddr, cause: String, config: String },
    #[error("node {id} (control {addr}): {what}")]
    Node { id: NodeId, addr: SocketAddr, what: String },
    #[error("bench: {0}")]
    Invalid(String),
}

/// The bench's connection to one node's control endpoint.
struct Link {
    id: NodeId,
    addr: SocketAddr,
    link: ControlLink,
}

impl Link {
    /// Connects, retrying until `deadline`: the node processes may still be starting.
    fn connect(
        id: NodeId,
        addr: SocketAddr,
        deadline: Instant,
        config: &str,
    ) -> Result<Link, BenchError> {
        let link = ControlLink::connect(addr, deadline).map_err(|e| BenchError::Unreachable {
            id,
            addr,
            cause: e.to_string(),
            config: config.to_string(),
        })?;
        Ok(Link { id, addr, link })
    }

    fn error(&self, what: impl Into<String>) -> BenchError {
        BenchError::Node { id: self.id, addr: self.addr, what: what.into() }
    }

    fn send(&mut self, cmd: &Command) -> Result<(), BenchError> {
        self.link.send(cmd).map_err(|e| self.error(e.0))
    }

    /// The next reply, within `timeout`; an error reply becomes an error naming the node.
    fn receive(&mut self, timeout: Duration) -> Result<Reply, BenchError> {
        match self.link.receive(timeout).map_err(|e| self.error(e.0))? {
            Reply::Error { error } => Err(self.error(error)),
            r => Ok(r),
        }
    }

    fn call(&mut self, cmd: &Command, timeout: Duration) -> Result<Reply, BenchError> {
        self.send(cmd)?;
        self.receive(timeout)
    }

    fn unexpected(&self, reply: &Reply) -> BenchError {
        self.error(format!("unexpected reply {reply:?}"))
    }

    /// Checks that the process is the node of the cluster file the bench meant.
    fn check_info(&mut self, cluster: &ClusterFile) -> Result<(), BenchError> {
        let protocol = format!("{:?}", cluster.protocol).to_lowercase();
        match self.call(&Command::Info {}, QUICK_REPLY_TIMEOUT)? {
            // A Multi-Ring process serves on the control address of its node in its lowest ring,
            // so a bench given that ring's cluster file finds it there, with the right ids.
            Reply::Info { protocol: p, .. } if p == "multiring" => Err(self.error(
                "this is a Multi-Ring process (it runs a Multi-Ring file, not this cluster file): \
                 bench it with `ringsmr bench --config` its Multi-Ring file",
            )),
            Reply::Info { node, cluster_id, protocol: p, .. }
                if node == self.id && cluster_id == cluster.cluster_id && p == protocol =>
            {
                Ok(())
            }
            Reply::Info { node, cluster_id, protocol: p, .. } => Err(self.error(format!(
                "this is node {node} of cluster {cluster_id} ({p}), not node {} of cluster {} \
                 ({protocol}): is it running another cluster file?",
                self.id, cluster.cluster_id
            ))),
            other => Err(self.unexpected(&other)),
        }
    }

    /// Waits for this link's baseline stage and returns what it measured.
    fn finish_stage(&mut self, timeout: Duration) -> Result<StageReport, BenchError> {
        match self.call(&Command::BaselineFinish {}, timeout)? {
            Reply::BaselineFinished { received_bytes, secs } => {
                Ok(StageReport { received_bytes, secs })
            }
            other => Err(self.unexpected(&other)),
        }
    }
}

/// The M-Ring baseline's multicast group: the cluster's, on the port next to its own.
pub fn baseline_group(group: SocketAddrV4) -> SocketAddrV4 {
    let port = group.port().checked_add(1).unwrap_or(group.port() - 1);
    SocketAddrV4::new(*group.ip(), port)
}

/// Runs the raw-transport measurement on the node processes; Mbit/s.
fn run_baseline(links: &mut [Link], spec: &BenchSpec) -> Result<f64, BenchError> {
    let n = links.len();
    if n < 2 {
        return Err(BenchError::Invalid("the baseline needs at least 2 nodes".into()));
    }
    let duration = spec.workload.duration;
    let duration_secs = duration.as_secs_f64();
    // The longest a measuring stage takes: waiting for its first byte, warming up, its window.
    let measured_within = FIRST_BYTE_TIMEOUT + WARMUP + duration + REPLY_SLACK;
    match spec.cluster.protocol {
        ProtocolName::Uring => {
            let mut next: Option<SocketAddr> = None;
            for i in (0..n).rev() {
                let listen = SocketAddr::new(spec.cluster.nodes[i].address.ip(), 0);
                let stage = StageSpec::Ring { role: baseline::ring_role(i, n), listen, next };
                let link = &mut links[i];
                match link
                    .call(&Command::BaselineStart { stage, duration_secs }, QUICK_REPLY_TIMEOUT)?
                {
                    Reply::BaselineStarted { listening: Some(mut a) } => {
                        // A stage bound to every interface is reached where its control is.
                        if a.ip().is_unspecified() {
                            a.set_ip(link.addr.ip());
                        }
                        next = Some(a);
                    }
                    other => return Err(link.unexpected(&other)),
                }
            }
            let sink = links[n - 1].finish_stage(measured_within)?;
            for link in &mut links[..n - 1] {
                link.finish_stage(QUICK_REPLY_TIMEOUT)?;
            }
            Ok(sink.mbit_per_s())
        }
        ProtocolName::Mring => {
            let Some(m) = spec.cluster.multicast.as_ref() else {
                return Err(BenchError::Invalid("an mring cluster file needs [multicast]".into()));
            };
            let group = baseline_group(m.group);
            // Receivers first, so that they have joined when the sender starts.
            for i in (1..n).chain([0]) {
                let role = if i == 0 { MulticastRole::Sender } else { MulticastRole::Receiver };
                let stage = StageSpec::Multicast { role, group };
                let link = &mut links[i];
                match link
                    .call(&Command::BaselineStart { stage, duration_secs }, QUICK_REPLY_TIMEOUT)?
                {
                    Reply::BaselineStarted { .. } => {}
                    other => return Err(link.unexpected(&other)),
                }
            }
            let mut sum_mbit_per_s = 0.0;
            for link in &mut links[1..] {
                sum_mbit_per_s += link.finish_stage(measured_within)?.mbit_per_s();
            }
            links[0].finish_stage(QUICK_REPLY_TIMEOUT)?;
            Ok(sum_mbit_per_s / (n - 1) as f64)
        }
    }
}

/// Runs the benchmark on the cluster's node processes and merges what they measured.
pub fn run_bench(spec: &BenchSpec) -> Result<LoadReport, BenchError> {
    let say = |what: &str| {
        if spec.progress {
            eprintln!("ringsmr bench: {what}");
        }
    };
    let deadline = Instant::now() + CONNECT_TIMEOUT;
    let mut links = Vec::with_capacity(spec.cluster.nodes.len());
    for node in &spec.cluster.nodes {
        let Some(addr) = node.control_address() else {
            return Err(BenchError::Invalid(format!("node {} has no control address", node.id)));
        };
        let mut link = Link::connect(node.id, addr, deadline, &spec.config_path)?;
        link.check_info(&spec.cluster)?;
        links.push(link);
    }

    let baseline_mbit_per_s = if spec.baseline {
        say(&format!(
            "measuring the raw transport for {:.1} s",
            spec.workload.duration.as_secs_f64()
        ));
        Some(run_baseline(&mut links, spec)?)
    } else {
        None
    };

    say(&format!(
        "loading {} nodes for {:.1} s",
        links.len(),
        spec.workload.duration.as_secs_f64()
    ));
    let w = spec.workload;
    let cmd = Command::Load {
        payload_bytes: w.payload_bytes,
        duration_secs: w.duration.as_secs_f64(),
        outstanding_per_proposer: w.outstanding_per_proposer,
    };
    // Every node starts at once; each then takes its probe, its run and its drain.
    for link in &mut links {
        link.send(&cmd)?;
    }
    let replies_by = Instant::now() + READY_TIMEOUT + w.duration + DRAIN_TIMEOUT + REPLY_SLACK;
    let mut reports: Vec<NodeLoadReport> = Vec::with_capacity(links.len());
    for link in &mut links {
        match link.receive(replies_by.saturating_duration_since(Instant::now()))? {
            Reply::Load { report } if report.node == link.id => reports.push(report),
            other => return Err(link.unexpected(&other)),
        }
    }
    Ok(load::merge(&spec.cluster, w.payload_bytes, baseline_mbit_per_s, &reports))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_baseline_group_is_next_to_the_clusters() {
        let g = |s: &str| s.parse::<SocketAddrV4>().unwrap();
        assert_eq!(baseline_group(g("239.1.2.3:7400")), g("239.1.2.3:7401"));
        assert_eq!(baseline_group(g("239.1.2.3:65535")), g("239.1.2.3:65534"));
    }

    #[test]
    fn a_missing_node_is_named_with_the_command_that_starts_it() {
        let cluster = ClusterFile::local_on_free_ports(ProtocolName::Uring, 3, 1).unwrap();
        let addr = cluster.nodes[0].control_address().unwrap();
        let started = Instant::now();
        let e = Link::connect(0, addr, started + Duration::from_millis(300), "c.toml")
            .err()
            .expect("nothing listens there");
        assert!(started.elapsed() < Duration::from_secs(3));
        let e = e.to_string();
        assert!(e.contains("node 0") && e.contains(&addr.to_string()), "{e}");
        assert!(e.contains("ringsmr node --config c.toml --id 0"), "{e}");
    }
}
