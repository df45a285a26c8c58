//! `ringsmr bench --config MULTIRING_FILE`: the Multi-Ring workload of `ringsmr local --protocol
//! multiring` against a cluster of `ringsmr node --config MULTIRING_FILE --id P` processes,
//! possibly on other hosts (thesis 5.4: every figure of the chapter comes from such a cluster),
//! driven through their control endpoints ([`control`](super::control)).
//!
//! ```text
//!   connect to every process of the file at its control endpoint (its node's `control` in its
//!   lowest ring), retrying for CONNECT_TIMEOUT; `info` must say: Multi-Ring, this process, its rings
//!   `multi_load` to every process at once: each proposer multicasts to its groups (a window of
//!   `outstanding_per_group` each), every learner measures its merge; each replies with its report
//!   the reports summarized as for `local` (aggregate and merged throughput, latency, orders)
//! ```
//!
//! The same [`summarize`] as `local` turns the reports into figures, so the two print alike. The
//! learners' orders are compared on the merged stream since each process started (the control
//! endpoint keeps it), since their loads start at slightly different points of it. There is no
//! raw-transport baseline: a Multi-Ring run is compared with a run of one ring instead (5.4.3).

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use thiserror::Error;

use crate::node::bench::{CONNECT_TIMEOUT, QUICK_REPLY_TIMEOUT, REPLY_SLACK};
use crate::node::control_transport::ControlLink;
use crate::proto::NodeId;

use super::config::{MultiRingFile, ProcessId, RingId};
use super::control::{Command, MultiLoad, Reply};
use super::load::{
    DRAIN_TIMEOUT, MultiRingLoadReport, ProcessLoadReport, READY_TIMEOUT, summarize,
};

/// What to run.
#[derive(Clone, Debug)]
pub struct MultiRingBenchSpec {
    pub file: MultiRingFile,
    /// The Multi-Ring file's path, for the messages that tell how to start a missing process.
    pub config_path: String,
    pub load: MultiLoad,
    /// Say on stderr what the bench is doing.
    pub progress: bool,
}

/// Why a bench run failed; each names the process and what to do.
#[derive(Debug, Error)]
pub enum MultiRingBenchError {
    #[error(
        "process {process}: nothing answers at its control address {addr} ({cause}) after {} s; \
         start `ringsmr node --config {config} --id {process}` on that host (or fix `control` of \
         node {node} in ring {ring}'s cluster file: a process serves on its node's in its lowest \
         ring)",
        CONNECT_TIMEOUT.as_secs()
    )]
    Unreachable {
        process: ProcessId,
        ring: RingId,
        node: NodeId,
        addr: SocketAddr,
        cause: String,
        config: String,
    },
    #[error("process {process} (control {addr}): {what}")]
    Process { process: ProcessId, addr: SocketAddr, what: String },
    #[error("bench: {0}")]
    Invalid(String),
}

/// The bench's connection to one process' control endpoint.
struct Link {
    process: ProcessId,
    addr: SocketAddr,
    link: ControlLink,
}

impl Link {
    /// Connects to `process`' control endpoint, retrying until `deadline`: the processes may still
    /// be starting.
    fn connect(
        spec: &MultiRingBenchSpec,
        process: ProcessId,
        deadline: Instant,
    ) -> Result<Link, MultiRingBenchError> {
        let Some((ring, node, addr)) = spec.file.control_endpoint(process) else {
            return Err(MultiRingBenchError::Invalid(format!(
                "process {process} has no control address"
            )));
        };
        match ControlLink::connect(addr, deadline) {
            Ok(link) => Ok(Link { process, addr, link }),
            Err(e) => Err(MultiRingBenchError::Unreachable {
                process,
                ring,
                node,
                addr,
                cause: e.to_string(),
                config: spec.config_path.clone(),
            }),
        }
    }

    fn error(&self, what: impl Into<String>) -> MultiRingBenchError {
        MultiRingBenchError::Process { process: self.process, addr: self.addr, what: what.into() }
    }

    fn send(&mut self, cmd: &Command) -> Result<(), MultiRingBenchError> {
        self.link.send(cmd).map_err(|e| self.error(e.0))
    }

    /// The next reply, within `timeout`; an error reply becomes an error naming the process.
    fn receive(&mut self, timeout: Duration) -> Result<Reply, MultiRingBenchError> {
        match self.link.receive(timeout).map_err(|e| self.error(e.0))? {
            Reply::Error { error } => Err(self.error(error)),
            r => Ok(r),
        }
    }

    /// Checks that the process is the one of the file the bench meant; returns its I/O backend.
    fn check_info(&mut self, file: &MultiRingFile) -> Result<String, MultiRingBenchError> {
        self.send(&Command::Info {})?;
        let reply = self.receive(QUICK_REPLY_TIMEOUT)?;
        let Reply::Info { protocol, process, rings, cluster_ids, node, cluster_id, backend } =
            reply
        else {
            return Err(self.error(format!("unexpected reply {reply:?}")));
        };
        if protocol != "multiring" {
            return Err(self.error(format!(
                "this is node {node} of cluster {cluster_id} ({protocol}), a single-ring `ringsmr \
                 node`: is it running a ring's cluster file rather than the Multi-Ring file?"
            )));
        }
        let in_rings = file.rings.iter().filter(|r| r.node_of(self.process).is_some());
        let (want_rings, want_ids): (Vec<RingId>, Vec<u32>) =
            in_rings.map(|r| (r.id, r.cluster.cluster_id)).unzip();
        if process != Some(self.process) || rings != want_rings || cluster_ids != want_ids {
            let p = process.map_or("?".to_string(), |p| p.to_string());
            return Err(self.error(format!(
                "this is process {p} of rings {rings:?} (cluster ids {cluster_ids:?}), not process \
                 {} of rings {want_rings:?} (cluster ids {want_ids:?}): is it running another \
                 Multi-Ring file?",
                self.process
            )));
        }
        Ok(backend)
    }
}

/// Runs the Multi-Ring workload on the file's processes and summarizes what they measured.
pub fn run_bench(spec: &MultiRingBenchSpec) -> Result<MultiRingLoadReport, MultiRingBenchError> {
    let say = |what: &str| {
        if spec.progress {
            eprintln!("ringsmr bench: {what}");
        }
    };
    let processes = spec.file.processes();
    let deadline = Instant::now() + CONNECT_TIMEOUT;
    let mut links = Vec::with_capacity(processes.len());
    let mut backends = BTreeSet::new();
    for &process in &processes {
        let mut link = Link::connect(spec, process, deadline)?;
        backends.insert(link.check_info(&spec.file)?);
        links.push(link);
    }

    let load = &spec.load;
    say(&format!(
        "loading {} processes of {} rings for {:.1} s",
        links.len(),
        spec.file.rings.len(),
        load.duration.as_secs_f64()
    ));
    // Every process starts at once; each then waits for its probes, runs, and drains.
    let cmd = load.command();
    for link in &mut links {
        link.send(&cmd)?;
    }
    let replies_by = Instant::now() + READY_TIMEOUT + load.duration + DRAIN_TIMEOUT + REPLY_SLACK;
    let mut reports: Vec<ProcessLoadReport> = Vec::with_capacity(links.len());
    for link in &mut links {
        match link.receive(replies_by.saturating_duration_since(Instant::now()))? {
            Reply::MultiLoad { report } if report.process == link.process => reports.push(report),
            other => return Err(link.error(format!("unexpected reply {other:?}"))),
        }
    }
    let skips = reports.iter().fold((0, 0), |(opened, skipped), r| {
        (opened + r.skip_instances, skipped.max(r.positions_skipped))
    });
    // Only the payload size of the workload enters the figures; which groups each process offered
    // to is its own (the control endpoint knows).
    let w = load.workload(&[]);
    let backend = backends.into_iter().collect::<Vec<_>>().join("+");
    Ok(summarize(&spec.file, &w, backend, skips, reports))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node::ProtocolName;

    #[test]
    fn a_missing_process_is_named_with_its_node_and_the_command_that_starts_it() {
        let file =
            MultiRingFile::local_on_free_ports(ProtocolName::Uring, 2, 3, 1, Vec::new()).unwrap();
        let (_, _, addr) = file.control_endpoint(2).unwrap();
        let spec = MultiRingBenchSpec {
            file,
            config_path: "multi.toml".into(),
            load: MultiLoad::new(64, 1.0, 1, None).unwrap(),
            progress: false,
        };
        let started = Instant::now();
        let e = Link::connect(&spec, 2, started + Duration::from_millis(300))
            .err()
            .expect("nothing listens there");
        assert!(started.elapsed() < Duration::from_secs(3));
        let e = e.to_string();
        assert!(e.contains("process 2") && e.contains(&addr.to_string()), "{e}");
        assert!(e.contains("ringsmr node --config multi.toml --id 2"), "{e}");
        assert!(e.contains("node 2 in ring 0"), "{e}");
    }
}
