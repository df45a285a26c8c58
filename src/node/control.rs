//! The control plane of a node process: the endpoint `ringsmr bench` drives a cluster of
//! `ringsmr node` processes through (see [`bench`](mod@super::bench)).
//!
//! It is separate from the protocol on purpose. The node thread owns its reactor, its links and its
//! protocol core and never blocks; the control plane is a plain blocking `std::net` listener on a
//! thread of its own, at its own address (`control` in the cluster file, by default the data port +
//! 1000), speaking line-delimited JSON. Benchmark coordination is rare, slow and human-debuggable
//! (`nc host 8000` and type a command); none of it touches the hot path or the wire format of the
//! protocol, and a bad command can only ever earn an error reply.
//!
//! ```text
//!  ringsmr bench ──TCP, one JSON line per command──> control thread ──┬─> baseline stage thread
//!                <──────── one JSON line per reply ──                  └─> main thread: load on the
//!                                                                          process' Node handle
//! ```
//!
//! Commands (`{"cmd": ...}`), each answered by one reply (`{"reply": ...}`):
//!
//! - `info`: the node id, cluster id, protocol and I/O backend of this process, so the bench can
//!   check it reached the node it meant.
//! - `baseline_start` `{stage, duration_secs}`: set up one stage of the raw-transport measurement
//!   ([`baseline`](super::baseline)) and start it: a U-Ring stage listens on `listen` (port 0: any
//!   free port, which the reply names) and connects to `next`; an M-Ring stage joins `group` with
//!   the cluster file's multicast interface, TTL and loopback. Replies `baseline_started`.
//! - `baseline_finish`: wait for this connection's stage (a measuring stage ends after its window;
//!   a sending stage is stopped) and reply `baseline_finished` with the bytes it received and the
//!   seconds it measured.
//! - `load` `{payload_bytes, duration_secs, outstanding_per_proposer}`: run the workload on this
//!   process' node ([`load::run_on_node`], the same driver `ringsmr local` runs for every node) and
//!   reply `load` with its [`NodeLoadReport`].
//!
//! A line that is not a valid command (bad JSON, unknown command or field, a value out of range,
//! longer than [`COMMAND_BYTES_MAX`]) gets an `error` reply and is counted; the connection stays
//! open. A connection that closes stops its baseline stage.
//!
//! The transport under these commands (bounded lines, the connection limit, the hand-off of a load
//! to the thread that owns the node, the bench's end of a connection) is `node::control_transport`.
//! It knows no command set, so that a Multi-Ring process can serve its own over it from
//! `multiring::control` while `node` stays below `multiring` (`tests/layering.rs`). A Multi-Ring
//! process serves on the `control` address of the node it plays in its lowest-id ring, answers
//! `info` with `"protocol": "multiring"` and its process id, and takes `multi_load` instead of
//! `load`; the bench of one ring sees that protocol and refuses to drive it.

use std::io;
use std::net::{SocketAddr, SocketAddrV4, TcpListener};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::io::BackendChoice;
use crate::proto::types::NodeId;

use super::baseline::{MulticastRole, MulticastStage, RingRole, RingStage, StageReport};
use super::checksum::{StreamChecksum, StreamTrace};
use super::config::ClusterFile;
use super::control_transport::{self, Handoff, Pending, Session};
use super::handle::Node;
use super::load::{self, NodeLoadReport, Workload, duration_from_secs};

pub use super::control_transport::{COMMAND_BYTES_MAX, CONNECTIONS_MAX, REPLY_BYTES_MAX};

/// A command to a node process.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case", deny_unknown_fields)]
pub enum Command {
    // Empty braces rather than unit variants: serde checks for unknown fields only in struct
    // variants of an internally tagged enum.
    Info {},
    BaselineStart { stage: StageSpec, duration_secs: f64 },
    BaselineFinish {},
    Load { payload_bytes: usize, duration_secs: f64, outstanding_per_proposer: usize },
}

/// The stage of the baseline a node process runs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum StageSpec {
    Ring { role: RingRole, listen: SocketAddr, next: Option<SocketAddr> },
    Multicast { role: MulticastRole, group: SocketAddrV4 },
}

/// A node process' answer to one command.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "reply", rename_all = "snake_case")]
pub enum Reply {
    Error { error: String },
    Info { node: NodeId, cluster_id: u32, protocol: String, backend: String },
    BaselineStarted { listening: Option<SocketAddr> },
    BaselineFinished { received_bytes: u64, secs: f64 },
    Load { report: NodeLoadReport },
}

/// Parses and checks one command line: every refusal says what was wrong.
pub fn parse_command(line: &[u8]) -> Result<Command, String> {
    let cmd: Command = serde_json::from_slice(line).map_err(|e| format!("bad command: {e}"))?;
    match &cmd {
        Command::Info {} | Command::BaselineFinish {} => {}
        Command::BaselineStart { stage, duration_secs } => {
            duration_from_secs("duration_secs", *duration_secs)?;
            if let StageSpec::Ring { role, next, .. } = stage {
                match (role, next) {
                    (RingRole::Sink, Some(_)) => return Err("a sink takes no `next`".into()),
                    (RingRole::Source | RingRole::Forwarder | RingRole::Relay { .. }, None) => {
                        return Err(format!("a {role:?} stage needs `next`").to_lowercase());
                    }
                    _ => {}
                }
            }
        }
        Command::Load { payload_bytes, duration_secs, outstanding_per_proposer } => {
            Workload::new(*payload_bytes, *duration_secs, *outstanding_per_proposer)?;
        }
    }
    Ok(cmd)
}

/// The control endpoint could not be set up.
#[derive(Debug, Error)]
pub enum ControlError {
    #[error(
        "node {id}: cannot listen for `ringsmr bench` on {addr}: {source} (set `control` of node \
         {id} in the cluster file to a free address)"
    )]
    Bind {
        id: NodeId,
        addr: SocketAddr,
        #[source]
        source: io::Error,
    },
    #[error("node {id}: {what}")]
    Start { id: NodeId, what: String },
}

/// A load the bench asked for, handed to the thread that owns the node, and its outcome.
type LoadHandoff = Handoff<Workload, Result<NodeLoadReport, String>>;

/// What every connection of one node process shares.
struct Context {
    node: NodeId,
    cluster: ClusterFile,
    backend: BackendChoice,
    backend_name: &'static str,
    loads: LoadHandoff,
    malformed_commands: AtomicU64,
}

/// The control endpoint of a node process: listens on its own thread; the thread that owns the
/// process' [`Node`] runs the loads it is asked for ([`ControlServer::serve_pending_load`]).
pub struct ControlServer {
    addr: SocketAddr,
    loads: Pending<Workload, Result<NodeLoadReport, String>>,
    context: Arc<Context>,
}

impl ControlServer {
    /// Listens on node `id`'s control address. `backend` runs baseline stages; `backend_name` is
    /// the node's, for `info`.
    pub fn start(
        cluster: &ClusterFile,
        id: NodeId,
        backend: BackendChoice,
        backend_name: &'static str,
    ) -> Result<ControlServer, ControlError> {
        let Some(addr) = cluster.nodes.get(usize::from(id)).and_then(|n| n.control_address())
        else {
            return Err(ControlError::Start {
                id,
                what: "has no control address (validate the cluster file)".into(),
            });
        };
        let listener =
            TcpListener::bind(addr).map_err(|source| ControlError::Bind { id, addr, source })?;
        let addr = listener.local_addr().unwrap_or(addr);
        let (loads, pending) = control_transport::handoff();
        let context = Arc::new(Context {
            node: id,
            cluster: cluster.clone(),
            backend,
            backend_name,
            loads,
            malformed_commands: AtomicU64::new(0),
        });
        let shared = Arc::clone(&context);
        let new_session = move || NodeSession { context: Arc::clone(&shared), stage: None };
        control_transport::serve(listener, format!("ringsmr-control-{id}"), new_session)
            .map_err(|e| ControlError::Start { id, what: format!("spawning its thread: {e}") })?;
        Ok(ControlServer { addr, loads: pending, context })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Command lines refused since the start.
    pub fn malformed_commands(&self) -> u64 {
        self.context.malformed_commands.load(Ordering::Relaxed)
    }

    /// Runs a load a bench asked for, if one waits, on `node`, whose deliveries go on into
    /// `trace` (the process' stream since it started) and, when given, `payload_checksum`. Returns
    /// whether it ran one. Called by the thread that owns `node`, between its own work; `stop` ends
    /// the load early.
    pub fn serve_pending_load(
        &self,
        node: &mut Node,
        trace: &mut StreamTrace,
        payload_checksum: Option<&mut StreamChecksum>,
        stop: &AtomicBool,
    ) -> bool {
        let cluster = &self.context.cluster;
        self.loads.serve_one(|workload| {
            load::run_on_node(node, trace, payload_checksum, cluster, &workload, stop)
                .map_err(|e| e.to_string())
        })
    }
}

/// A baseline stage running for one connection.
struct RunningStage {
    /// A measuring stage ends on its own; the others are stopped.
    measuring: bool,
    stop: Arc<AtomicBool>,
    thread: JoinHandle<io::Result<StageReport>>,
}

impl RunningStage {
    fn finish(self) -> io::Result<StageReport> {
        if !self.measuring {
            self.stop.store(true, Ordering::Relaxed);
        }
        self.thread.join().unwrap_or_else(|_| Err(io::Error::other("the baseline stage panicked")))
    }
}

/// One bench connection: the commands it sends, and the baseline stage it started.
struct NodeSession {
    context: Arc<Context>,
    stage: Option<RunningStage>,
}

impl Session for NodeSession {
    type Reply = Reply;

    fn answer(&mut self, line: Result<&[u8], String>) -> Reply {
        match line.and_then(parse_command) {
            Ok(cmd) => execute(cmd, &self.context, &mut self.stage),
            Err(error) => {
                self.context.malformed_commands.fetch_add(1, Ordering::Relaxed);
                Reply::Error { error }
            }
        }
    }
}

impl Drop for NodeSession {
    /// Whoever started a stage and left does not need it any more.
    fn drop(&mut self) {
        if let Some(s) = self.stage.take() {
            s.stop.store(true, Ordering::Relaxed);
            let _ = s.finish();
        }
    }
}

fn execute(cmd: Command, context: &Context, stage: &mut Option<RunningStage>) -> Reply {
    let error = |error: String| Reply::Error { error };
    match cmd {
        Command::Info {} => Reply::Info {
            node: context.node,
            cluster_id: context.cluster.cluster_id,
            protocol: format!("{:?}", context.cluster.protocol).to_lowercase(),
            backend: context.backend_name.to_string(),
        },
        Command::BaselineStart { stage: spec, duration_secs } => {
            if stage.is_some() {
                return error(
                    "a baseline stage already runs on this connection; send baseline_finish first"
                        .into(),
                );
            }
            let duration = match duration_from_secs("duration_secs", duration_secs) {
                Ok(d) => d,
                Err(e) => return error(e),
            };
            match start_stage(spec, duration, context) {
                Ok((running, listening)) => {
                    *stage = Some(running);
                    Reply::BaselineStarted { listening }
                }
                Err(e) => error(format!("baseline: {e}")),
            }
        }
        Command::BaselineFinish {} => match stage.take() {
            None => error("no baseline stage runs on this connection".into()),
            Some(s) => match s.finish() {
                Ok(r) => Reply::BaselineFinished { received_bytes: r.received_bytes, secs: r.secs },
                Err(e) => error(format!("baseline: {e}")),
            },
        },
        Command::Load { payload_bytes, duration_secs, outstanding_per_proposer } => {
            let workload =
                match Workload::new(payload_bytes, duration_secs, outstanding_per_proposer) {
                    Ok(w) => w,
                    Err(e) => return error(e),
                };
            match context.loads.ask(workload) {
                Ok(Ok(report)) => Reply::Load { report },
                Ok(Err(e)) => error(format!("load: {e}")),
                Err(e) => error(e),
            }
        }
    }
}

/// Sets up the stage (listening or joined before this returns, so the bench can start the next
/// one) and runs it on a thread of its own.
fn start_stage(
    spec: StageSpec,
    duration: Duration,
    context: &Context,
) -> io::Result<(RunningStage, Option<SocketAddr>)> {
    let stop = Arc::new(AtomicBool::new(false));
    let stopped = Arc::clone(&stop);
    let name = format!("ringsmr-baseline-{}", context.node);
    let (measuring, listening, thread) = match spec {
        StageSpec::Ring { role, listen, next } => {
            let stage = RingStage::bind(context.backend, listen)
                .map_err(|e| io::Error::new(e.kind(), format!("listening on {listen}: {e}")))?;
            let listening = stage.local_addr();
            let thread = std::thread::Builder::new()
                .name(name)
                .spawn(move || stage.run(role, next, duration, &stopped))?;
            (role.measures(), Some(listening), thread)
        }
        StageSpec::Multicast { role, group } => {
            let Some(mut options) = context.cluster.multicast_options() else {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "the cluster file has no [multicast] section",
                ));
            };
            options.group = group;
            let stage = MulticastStage::join(context.backend, options)?;
            let thread = std::thread::Builder::new()
                .name(name)
                .spawn(move || stage.run(role, duration, &stopped))?;
            (role == MulticastRole::Receiver, None, thread)
        }
    };
    Ok((RunningStage { measuring, stop, thread }, listening))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node::config::ProtocolName;
    use crate::node::control_transport::{Line, read_line_bounded};
    use std::io::{BufReader, Write};
    use std::net::TcpStream;

    #[test]
    fn commands_parse_and_bad_ones_say_why() {
        let load = br#"{"cmd":"load","payload_bytes":1024,"duration_secs":2,"outstanding_per_proposer":100}"#;
        assert_eq!(
            parse_command(load),
            Ok(Command::Load {
                payload_bytes: 1024,
                duration_secs: 2.0,
                outstanding_per_proposer: 100
            })
        );
        let sink = br#"{"cmd":"baseline_start","duration_secs":1,"stage":{"ring":{"role":"sink","listen":"127.0.0.1:0","next":null}}}"#;
        assert!(matches!(parse_command(sink), Ok(Command::BaselineStart { .. })));
        for (line, says) in [
            (&b"not json"[..], "bad command"),
            (b"", "bad command"),
            (br#"{"cmd":"reboot"}"#, "unknown variant"),
            (br#"{"cmd":"info","x":1}"#, "unknown field"),
            (
                br#"{"cmd":"load","payload_bytes":0,"duration_secs":2,"outstanding_per_proposer":1}"#,
                "payload_bytes",
            ),
            (
                br#"{"cmd":"load","payload_bytes":64,"duration_secs":-1,"outstanding_per_proposer":1}"#,
                "duration_secs",
            ),
            (
                br#"{"cmd":"load","payload_bytes":64,"duration_secs":1,"outstanding_per_proposer":0}"#,
                "outstanding_per_proposer",
            ),
            (
                br#"{"cmd":"baseline_start","duration_secs":1,"stage":{"ring":{"role":"source","listen":"127.0.0.1:0","next":null}}}"#,
                "needs `next`",
            ),
            (b"\xff\xfe", "bad command"),
        ] {
            let e = parse_command(line).unwrap_err();
            assert!(e.contains(says), "{:?}: {e}", String::from_utf8_lossy(line));
        }
    }

    /// A control endpoint with no node behind it (loads then wait forever, so none is sent).
    fn server() -> (ControlServer, SocketAddr) {
        let cluster = ClusterFile::local_on_free_ports(ProtocolName::Uring, 3, 1).unwrap();
        let s = ControlServer::start(&cluster, 1, BackendChoice::Epoll, "epoll").unwrap();
        let addr = s.local_addr();
        (s, addr)
    }

    fn call(r: &mut BufReader<TcpStream>, w: &mut TcpStream, line: &[u8]) -> Reply {
        w.write_all(line).unwrap();
        let mut buf = Vec::new();
        assert_eq!(read_line_bounded(r, REPLY_BYTES_MAX, &mut buf).unwrap(), Line::Text);
        serde_json::from_slice(&buf).unwrap()
    }

    #[test]
    fn a_malformed_line_gets_an_error_reply_is_counted_and_the_connection_goes_on() {
        let (server, addr) = server();
        let mut w = TcpStream::connect(addr).unwrap();
        let mut r = BufReader::new(w.try_clone().unwrap());
        let Reply::Error { error } = call(&mut r, &mut w, b"{\"cmd\": nonsense\n") else {
            panic!("a malformed line must get an error reply")
        };
        assert!(error.contains("bad command"), "{error}");
        let long = format!("{}\n", "y".repeat(COMMAND_BYTES_MAX + 1));
        assert!(matches!(call(&mut r, &mut w, long.as_bytes()), Reply::Error { .. }));
        assert_eq!(server.malformed_commands(), 2);
        let info = call(&mut r, &mut w, b"{\"cmd\":\"info\"}\n");
        let want = Reply::Info {
            node: 1,
            cluster_id: 1,
            protocol: "uring".into(),
            backend: "epoll".into(),
        };
        assert_eq!(info, want);
        let Reply::Error { error } = call(&mut r, &mut w, b"{\"cmd\":\"baseline_finish\"}\n")
        else {
            panic!("finish without a stage is an error")
        };
        assert!(error.contains("no baseline stage"), "{error}");
    }

    #[test]
    fn a_ring_stage_runs_over_the_control_plane_and_stops_when_finished() {
        let (_server, addr) = server();
        let mut w = TcpStream::connect(addr).unwrap();
        let mut r = BufReader::new(w.try_clone().unwrap());
        // This node is the source; the sink is a stage of this test.
        let sink = RingStage::bind(BackendChoice::Epoll, "127.0.0.1:0".parse().unwrap()).unwrap();
        let next = sink.local_addr();
        let start = format!(
            "{{\"cmd\":\"baseline_start\",\"duration_secs\":0.2,\"stage\":{{\"ring\":{{\"role\":\
             \"source\",\"listen\":\"127.0.0.1:0\",\"next\":\"{next}\"}}}}}}\n"
        );
        let Reply::BaselineStarted { listening: Some(_) } = call(&mut r, &mut w, start.as_bytes())
        else {
            panic!("a ring stage names where it listens")
        };
        let never = AtomicBool::new(false);
        let measured = sink.run(RingRole::Sink, None, Duration::from_millis(200), &never).unwrap();
        assert!(measured.received_bytes > 0, "{measured:?}");
        let finished = call(&mut r, &mut w, b"{\"cmd\":\"baseline_finish\"}\n");
        assert!(matches!(finished, Reply::BaselineFinished { .. }), "{finished:?}");
    }
}
