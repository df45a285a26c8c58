//! The control endpoint of a Multi-Ring process (`ringsmr node --config MULTIRING_FILE --id P`):
//! what `ringsmr bench` drives a cluster of them through ([`bench`](super::bench), thesis 5.4).
//!
//! **Where.** One endpoint per process, on the `control` address of the node the process plays in
//! its lowest-id ring ([`MultiRingFile::control_endpoint`]): the bench loads processes, and each
//! process' merge sits above all of its rings.
//!
//! **Why here.** `node` must not know Multi-Ring Paxos (`multiring` is the layer above), so the
//! control endpoint of a single-ring node process (`node::control`) cannot carry these commands.
//! Both endpoints sit on the same transport, `node::control_transport`, which knows no command set:
//! it reads bounded lines, limits connections, hands a load to the thread that owns the process'
//! nodes and carries the bench's end of a connection. The Multi-Ring command set, and the code that
//! runs a load on a [`MultiRingNode`], live here.
//!
//! ```text
//!  ringsmr bench ──{"cmd":"multi_load",..}──> connection thread ──Handoff──> the thread that owns
//!                <──{"reply":"multi_load",                                  the MultiRingNode:
//!                    "report":{..}}─────────                                serve_pending_load, a
//!                                                                           `load::drive` of its own
//! ```
//!
//! Commands (`{"cmd": ...}`), each answered by one reply (`{"reply": ...}`):
//!
//! - `info`: `"protocol": "multiring"`, the process id, the rings it takes part in with their
//!   cluster ids, the node and cluster id of its lowest ring (the fields a single-ring `info` has,
//!   so a bench of one ring that reaches this process by mistake can tell), and its I/O backend.
//! - `multi_load` `{payload_bytes, duration_secs, outstanding_per_group, rate_per_group}`: run the
//!   Multi-Ring workload ([`load::drive`](super::load::drive), the driver of `ringsmr local
//!   --protocol multiring`) on this process: it multicasts to its groups (`--groups` of `ringsmr
//!   node`, by default every group of a ring where it proposes; [`MultiRingFile::multicast_groups`])
//!   a window of `outstanding_per_group` messages each, or, with `rate_per_group`, that many
//!   messages a second each. Replies `multi_load` with its [`ProcessLoadReport`] (no series).
//!
//! A line that is not a valid command (bad JSON, an unknown command or field, a value out of range,
//! a single-ring node's `load` or `baseline_*`) gets an `error` reply naming what was wrong and is
//! counted; the connection stays open.

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::node::checksum::{StreamChecksum, StreamTrace};
use crate::node::control_transport::{self, Handoff, Pending, Session};
use crate::node::load::{OUTSTANDING_MAX, PAYLOAD_BYTES_MAX, duration_from_secs};
use crate::proto::NodeId;

use super::config::{GroupId, MultiRingFile, ProcessId, RingId};
use super::load::{MultiRingWorkload, Offered, ProcessLoad, ProcessLoadReport, drive};
use super::node::MultiRingNode;

/// The highest rate a `multi_load` asks of one group, messages a second (far above what a ring
/// orders: a number beyond it is a mistake, not a plan).
pub const RATE_PER_GROUP_MAX: f64 = 100_000_000.0;

/// A command to a Multi-Ring process.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case", deny_unknown_fields)]
pub enum Command {
    // Empty braces rather than a unit variant: serde checks for unknown fields only in struct
    // variants of an internally tagged enum.
    Info {},
    MultiLoad {
        payload_bytes: usize,
        duration_secs: f64,
        outstanding_per_group: usize,
        #[serde(default)]
        rate_per_group: Option<f64>,
    },
}

/// A Multi-Ring process' answer to one command.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "reply", rename_all = "snake_case")]
pub enum Reply {
    Error {
        error: String,
    },
    /// `process`, `rings` and `cluster_ids` are missing from a single-ring node's `info`, which
    /// the bench reads with this type too (to say what it reached instead).
    Info {
        protocol: String,
        #[serde(default)]
        process: Option<ProcessId>,
        #[serde(default)]
        rings: Vec<RingId>,
        #[serde(default)]
        cluster_ids: Vec<u32>,
        node: NodeId,
        cluster_id: u32,
        backend: String,
    },
    MultiLoad {
        report: ProcessLoadReport,
    },
}

/// A checked `multi_load`: what each group of a process is offered.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MultiLoad {
    pub payload_bytes: usize,
    pub duration: Duration,
    pub outstanding_per_group: usize,
    pub rate_per_group: Option<f64>,
}

impl MultiLoad {
    /// Refuses what no run can use, naming the field.
    pub fn new(
        payload_bytes: usize,
        duration_secs: f64,
        outstanding_per_group: usize,
        rate_per_group: Option<f64>,
    ) -> Result<MultiLoad, String> {
        if !(1..=PAYLOAD_BYTES_MAX).contains(&payload_bytes) {
            return Err(format!(
                "`payload_bytes` must be within 1..={PAYLOAD_BYTES_MAX}, got {payload_bytes}"
            ));
        }
        let duration = duration_from_secs("duration_secs", duration_secs)?;
        if !(1..=OUTSTANDING_MAX).contains(&outstanding_per_group) {
            return Err(format!(
                "`outstanding_per_group` must be within 1..={OUTSTANDING_MAX}, got \
                 {outstanding_per_group}"
            ));
        }
        if let Some(r) = rate_per_group
            && !(r.is_finite() && r > 0.0 && r <= RATE_PER_GROUP_MAX)
        {
            return Err(format!(
                "`rate_per_group` must be within (0, {RATE_PER_GROUP_MAX}] messages a second, \
                 got {r}"
            ));
        }
        Ok(MultiLoad { payload_bytes, duration, outstanding_per_group, rate_per_group })
    }

    /// The command that asks for this load.
    pub fn command(&self) -> Command {
        Command::MultiLoad {
            payload_bytes: self.payload_bytes,
            duration_secs: self.duration.as_secs_f64(),
            outstanding_per_group: self.outstanding_per_group,
            rate_per_group: self.rate_per_group,
        }
    }

    /// What a process that multicasts to `groups` runs.
    pub fn workload(&self, groups: &[GroupId]) -> MultiRingWorkload {
        let offered = match self.rate_per_group {
            Some(base_per_s) => Offered::Rate { base_per_s, step_secs: None, oscillate_secs: None },
            None => Offered::Window { outstanding: self.outstanding_per_group },
        };
        MultiRingWorkload {
            payload_bytes: self.payload_bytes,
            duration: self.duration,
            traffic: groups.iter().map(|&g| (g, offered.clone())).collect(),
            series_ms: None,
        }
    }
}

/// The commands of a single-ring node process, which a Multi-Ring process refuses by name.
const SINGLE_RING_COMMANDS: [&str; 3] = ["load", "baseline_start", "baseline_finish"];

/// Parses and checks one command line: every refusal says what was wrong.
pub fn parse_command(line: &[u8]) -> Result<Command, String> {
    let cmd: Command = serde_json::from_slice(line).map_err(|e| {
        // A bench of one ring sent this: say what this process is rather than "unknown variant".
        let tag = serde_json::from_slice::<serde_json::Value>(line)
            .ok()
            .and_then(|v| v.get("cmd").and_then(|c| c.as_str()).map(str::to_string));
        match tag {
            Some(t) if SINGLE_RING_COMMANDS.contains(&t.as_str()) => format!(
                "bad command: `{t}` is for a single-ring node; this is a Multi-Ring process \
                 (`ringsmr bench --config` its Multi-Ring file sends `multi_load`)"
            ),
            _ => format!("bad command: {e}"),
        }
    })?;
    if let Command::MultiLoad {
        payload_bytes,
        duration_secs,
        outstanding_per_group,
        rate_per_group,
    } = &cmd
    {
        MultiLoad::new(*payload_bytes, *duration_secs, *outstanding_per_group, *rate_per_group)?;
    }
    Ok(cmd)
}

/// The control endpoint could not be set up.
#[derive(Debug, Error)]
pub enum ControlError {
    #[error(
        "process {process}: cannot listen for `ringsmr bench` on {addr}, the control address of \
         its node {node} in ring {ring} (its lowest ring): {source} (set `control` of node {node} \
         in ring {ring}'s cluster file to a free address)"
    )]
    Bind {
        process: ProcessId,
        ring: RingId,
        node: NodeId,
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("process {process}: {what}")]
    Start { process: ProcessId, what: String },
}

/// A load handed to the thread that owns the process' [`MultiRingNode`], and its outcome.
type LoadOutcome = Result<ProcessLoadReport, String>;

/// What every connection of one process shares.
struct Context {
    info: Reply,
    loads: Handoff<MultiLoad, LoadOutcome>,
    malformed_commands: AtomicU64,
}

/// The control endpoint of a Multi-Ring process: listens on its own thread; the thread that owns
/// the process' [`MultiRingNode`] runs the loads it is asked for
/// ([`MultiRingControl::serve_pending_load`]).
pub struct MultiRingControl {
    addr: SocketAddr,
    /// Where this process' loads multicast.
    groups: Vec<GroupId>,
    loads: Pending<MultiLoad, LoadOutcome>,
    context: Arc<Context>,
}

impl MultiRingControl {
    /// Listens on `process`' control address ([`MultiRingFile::control_endpoint`]). A load
    /// multicasts to `groups`; `backend` is the nodes' I/O backend, for `info`.
    pub fn start(
        file: &MultiRingFile,
        process: ProcessId,
        groups: Vec<GroupId>,
        backend: &'static str,
    ) -> Result<MultiRingControl, ControlError> {
        let Some((ring, node, addr)) = file.control_endpoint(process) else {
            return Err(ControlError::Start {
                process,
                what: "has no control address (is it in a ring of the file?)".into(),
            });
        };
        let listener = TcpListener::bind(addr).map_err(|source| ControlError::Bind {
            process,
            ring,
            node,
            addr,
            source,
        })?;
        let addr = listener.local_addr().unwrap_or(addr);
        let in_rings = file.rings.iter().filter(|r| r.node_of(process).is_some());
        let (rings, cluster_ids) = in_rings.map(|r| (r.id, r.cluster.cluster_id)).unzip();
        let info = Reply::Info {
            protocol: "multiring".into(),
            process: Some(process),
            rings,
            cluster_ids,
            node,
            cluster_id: file.ring(ring).map_or(0, |r| r.cluster.cluster_id),
            backend: backend.into(),
        };
        let (loads, pending) = control_transport::handoff();
        let context = Arc::new(Context { info, loads, malformed_commands: AtomicU64::new(0) });
        let shared = Arc::clone(&context);
        let new_session = move || ProcessSession(Arc::clone(&shared));
        control_transport::serve(listener, format!("ringsmr-control-p{process}"), new_session)
            .map_err(|e| ControlError::Start {
                process,
                what: format!("spawning its thread: {e}"),
            })?;
        Ok(MultiRingControl { addr, groups, loads: pending, context })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Command lines refused since the start.
    pub fn malformed_commands(&self) -> u64 {
        self.context.malformed_commands.load(Ordering::Relaxed)
    }

    /// Runs a load a bench asked for, if one waits, on `node`. Its deliveries go on into `trace`
    /// (the process' merged stream since it started: learners that started their loads at
    /// different points compare on it) and, when given, `payload_checksum`. Returns whether it ran
    /// one. Called by the thread that owns `node`, between its own work; `stop` ends the load early.
    pub fn serve_pending_load(
        &self,
        node: &mut MultiRingNode,
        trace: &mut StreamTrace,
        mut payload_checksum: Option<&mut StreamChecksum>,
        stop: &AtomicBool,
    ) -> bool {
        self.loads.serve_one(|load| {
            let w = load.workload(&self.groups);
            let sum = payload_checksum.as_deref_mut().map(std::mem::take);
            let mut loads = [ProcessLoad::new(node, &w).continuing(std::mem::take(trace), sum)];
            let outcome = drive(&mut loads, &w, stop);
            let [l] = loads;
            let (report, went_on, sum) = l.finish();
            *trace = went_on;
            if let (Some(kept), Some(sum)) = (payload_checksum, sum) {
                *kept = sum;
            }
            outcome.map(|()| report)
        })
    }
}

/// One bench connection.
struct ProcessSession(Arc<Context>);

impl Session for ProcessSession {
    type Reply = Reply;

    fn answer(&mut self, line: Result<&[u8], String>) -> Reply {
        let context = &self.0;
        match line.and_then(parse_command) {
            Ok(Command::Info {}) => context.info.clone(),
            Ok(Command::MultiLoad {
                payload_bytes,
                duration_secs,
                outstanding_per_group,
                rate_per_group,
            }) => {
                let load = MultiLoad::new(
                    payload_bytes,
                    duration_secs,
                    outstanding_per_group,
                    rate_per_group,
                );
                match load.and_then(|l| context.loads.ask(l)) {
                    Ok(Ok(report)) => Reply::MultiLoad { report },
                    Ok(Err(e)) => Reply::Error { error: format!("load: {e}") },
                    Err(error) => Reply::Error { error },
                }
            }
            Err(error) => {
                context.malformed_commands.fetch_add(1, Ordering::Relaxed);
                Reply::Error { error }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node::ProtocolName;
    use crate::node::control_transport::{
        COMMAND_BYTES_MAX, ControlLink, Line, REPLY_BYTES_MAX, read_line_bounded,
    };
    use std::io::{BufReader, Write};
    use std::net::TcpStream;
    use std::time::Instant;

    #[test]
    fn multi_load_parses_and_bad_fields_are_refused_by_name() {
        let line = br#"{"cmd":"multi_load","payload_bytes":512,"duration_secs":2,"outstanding_per_group":64}"#;
        assert_eq!(
            parse_command(line),
            Ok(Command::MultiLoad {
                payload_bytes: 512,
                duration_secs: 2.0,
                outstanding_per_group: 64,
                rate_per_group: None
            })
        );
        let rated = br#"{"cmd":"multi_load","payload_bytes":512,"duration_secs":2,"outstanding_per_group":1,"rate_per_group":5000}"#;
        assert!(matches!(
            parse_command(rated),
            Ok(Command::MultiLoad { rate_per_group: Some(r), .. }) if r == 5000.0
        ));
        assert_eq!(parse_command(br#"{"cmd":"info"}"#), Ok(Command::Info {}));
        for (line, says) in [
            (&b"not json"[..], "bad command"),
            (br#"{"cmd":"reboot"}"#, "unknown variant"),
            (br#"{"cmd":"info","process":1}"#, "unknown field"),
            (
                br#"{"cmd":"multi_load","payload_bytes":0,"duration_secs":2,"outstanding_per_group":1}"#,
                "`payload_bytes`",
            ),
            (
                br#"{"cmd":"multi_load","payload_bytes":64,"duration_secs":0,"outstanding_per_group":1}"#,
                "`duration_secs`",
            ),
            (
                br#"{"cmd":"multi_load","payload_bytes":64,"duration_secs":1,"outstanding_per_group":0}"#,
                "`outstanding_per_group`",
            ),
            (
                br#"{"cmd":"multi_load","payload_bytes":64,"duration_secs":1,"outstanding_per_group":1,"rate_per_group":-3}"#,
                "`rate_per_group`",
            ),
            (
                br#"{"cmd":"multi_load","payload_bytes":64,"duration_secs":1,"outstanding_per_group":1,"groups":[0]}"#,
                "unknown field `groups`",
            ),
            (br#"{"cmd":"multi_load","payload_bytes":64,"duration_secs":1}"#, "outstanding_per_group"),
            (
                br#"{"cmd":"load","payload_bytes":64,"duration_secs":1,"outstanding_per_proposer":1}"#,
                "this is a Multi-Ring process",
            ),
            (br#"{"cmd":"baseline_finish"}"#, "this is a Multi-Ring process"),
        ] {
            let e = parse_command(line).unwrap_err();
            assert!(e.contains(says), "{:?}: {e}", String::from_utf8_lossy(line));
        }
    }

    #[test]
    fn a_load_report_goes_over_the_wire_and_back_unchanged_but_for_its_series() {
        let mut latency_us = crate::node::histogram::Histogram::default();
        latency_us.record(250);
        latency_us.record(4_000);
        let report = ProcessLoadReport {
            process: 2,
            subscriptions: vec![0, 7],
            delivered: [(0, (10, 5_120)), (7, (3, 1_536))].into_iter().collect(),
            secs: 2.01,
            latency_us,
            checkpoints: vec![crate::node::checksum::Checkpoint { values: 1024, checksum: 99 }],
            cpu_per_ring: vec![(0, Some(0.5)), (1, None)],
            skip_instances: 4,
            positions_skipped: 80,
            series: Vec::new(),
        };
        let reply = Reply::MultiLoad { report: report.clone() };
        let line = serde_json::to_vec(&reply).unwrap();
        assert_eq!(serde_json::from_slice::<Reply>(&line).unwrap(), reply);
        let with_series = ProcessLoadReport {
            series: vec![super::super::load::SeriesRow {
                t_ms: 100,
                process: 2,
                offered_msgs: vec![1],
                delivered_msgs: 1,
                delivered_per_group: vec![1],
                delivered_mbit_per_s: 0.1,
                latency_p50_us: 1,
                latency_p99_us: 1,
                queued_instances: vec![0],
            }],
            ..report.clone()
        };
        let line = serde_json::to_vec(&Reply::MultiLoad { report: with_series }).unwrap();
        assert_eq!(serde_json::from_slice::<Reply>(&line).unwrap(), reply);
    }

    #[test]
    fn a_workload_offers_each_group_a_window_or_a_rate() {
        let window = MultiLoad::new(100, 1.0, 8, None).unwrap().workload(&[0, 2]);
        assert_eq!(
            window.traffic,
            [(0, Offered::Window { outstanding: 8 }), (2, Offered::Window { outstanding: 8 })]
        );
        let rate = MultiLoad::new(100, 1.0, 8, Some(50.0)).unwrap().workload(&[1]);
        let open = Offered::Rate { base_per_s: 50.0, step_secs: None, oscillate_secs: None };
        assert_eq!(rate.traffic, [(1, open)]);
        // The command carries what the load was made of.
        let load = MultiLoad::new(100, 1.5, 8, Some(50.0)).unwrap();
        let line = serde_json::to_vec(&load.command()).unwrap();
        let Ok(Command::MultiLoad {
            payload_bytes,
            duration_secs,
            outstanding_per_group,
            rate_per_group,
        }) = parse_command(&line)
        else {
            panic!("a load's own command parses")
        };
        let back =
            MultiLoad::new(payload_bytes, duration_secs, outstanding_per_group, rate_per_group);
        assert_eq!(back, Ok(load));
    }

    #[test]
    fn the_endpoint_says_which_process_it_is_and_refuses_bad_lines_with_the_field_named() {
        let mut file =
            MultiRingFile::local_on_free_ports(ProtocolName::Uring, 2, 3, 1, Vec::new()).unwrap();
        // Process 1 serves where its node of ring 0 says; any free port will do here.
        file.rings[0].cluster.nodes[1].control = Some(SocketAddr::from(([127, 0, 0, 1], 0)));
        // No node behind it: loads would wait forever, so none is sent.
        let control = MultiRingControl::start(&file, 1, vec![0, 1], "epoll").unwrap();
        let addr = control.local_addr();
        let mut link = ControlLink::connect(addr, Instant::now() + Duration::from_secs(5)).unwrap();
        let mut call = |line: &[u8]| -> Reply {
            link.send(&serde_json::from_slice::<serde_json::Value>(line).unwrap()).unwrap();
            link.receive(Duration::from_secs(5)).unwrap()
        };
        let ids = [file.rings[0].cluster.cluster_id, file.rings[1].cluster.cluster_id];
        let want = Reply::Info {
            protocol: "multiring".into(),
            process: Some(1),
            rings: vec![0, 1],
            cluster_ids: ids.to_vec(),
            node: 1,
            cluster_id: ids[0],
            backend: "epoll".into(),
        };
        assert_eq!(call(br#"{"cmd":"info"}"#), want);
        let bad = br#"{"cmd":"multi_load","payload_bytes":64,"duration_secs":1,"outstanding_per_group":0}"#;
        let Reply::Error { error } = call(bad) else { panic!("a bad load gets an error reply") };
        assert!(error.contains("`outstanding_per_group`"), "{error}");
        assert_eq!(control.malformed_commands(), 1);
        // An overlong line is refused too, and the connection goes on.
        let mut raw = TcpStream::connect(addr).unwrap();
        let mut replies = BufReader::new(raw.try_clone().unwrap());
        let mut read_reply = || -> Reply {
            let mut buf = Vec::new();
            let line = read_line_bounded(&mut replies, REPLY_BYTES_MAX, &mut buf).unwrap();
            assert_eq!(line, Line::Text);
            serde_json::from_slice(&buf).unwrap()
        };
        raw.write_all(&vec![b'x'; COMMAND_BYTES_MAX + 1]).unwrap();
        raw.write_all(b"\n").unwrap();
        let reply = read_reply();
        assert!(
            matches!(&reply, Reply::Error { error } if error.contains("longer than")),
            "{reply:?}"
        );
        assert_eq!(control.malformed_commands(), 2);
        raw.write_all(b"{\"cmd\":\"info\"}\n").unwrap();
        assert_eq!(read_reply(), want);
    }
}
