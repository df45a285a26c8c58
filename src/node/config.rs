//! The cluster file: one TOML document every process of a cluster reads, naming the cluster, its
//! processes and their roles, the ring, and every bound of the protocol (thesis 3.5.6: batch size and
//! window are the knobs that decide throughput).
//!
//! ```toml
//! cluster_id = 1
//! protocol = "uring"            # or "mring"
//! f = 1
//! ring = [0, 1, 2]              # the 2f+1 acceptors in ring order; the first alive one coordinates
//! batch_bytes = 32768
//! window_instances = 32
//! window_bytes = 1048576
//! socket_buffer_bytes = 4194304
//! storage = "sync"              # "memory" (default), "async" or "sync": see `StorageMode`
//! data_dir = "/var/lib/ringsmr"  # acceptor logs and learner snapshots go to <data_dir>/node-<id>
//! retain_instances = 100000     # decided instances acceptors keep for lagging learners, at most
//!
//! [multicast]                   # M-Ring Paxos only
//! group = "239.255.82.1:7400"
//! interface = "127.0.0.1"
//!
//! [[node]]
//! id = 0
//! address = "127.0.0.1:7000"
//! roles = ["acceptor", "proposer", "learner"]
//! control = "127.0.0.1:8000"    # optional; the default is `address` with port + 1000
//! storage = "memory"            # optional; overrides the cluster's for this node
//! data_dir = "/data/n0"         # optional; this node's log directory itself
//! snapshot = "127.0.0.1:9000"   # optional; the default is `address` with port + 2000
//! ```
//!
//! `control` is where the node process takes commands from `ringsmr bench` (see
//! [`control`](super::control)): a separate, slow TCP endpoint, so the benchmark's coordination never
//! shares a socket or a thread with the protocol's links. It must differ from every node's
//! `address` and from the other nodes' `control`.
//!
//! `snapshot` is where a learner that stores snapshots (`NodeOptions::checkpoint_interval_instances`)
//! serves them to a learner that fell behind what the acceptors keep (state transfer, see
//! [`snapshot`](super::snapshot)); it must differ from every other endpoint.
//!
//! Unknown keys are refused (a misspelt bound must not silently fall back to its default); every
//! refusal names the field.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::{Path, PathBuf};

use serde::Deserialize;
use thiserror::Error;

use crate::io::socket::MulticastOptions;
use crate::proto::types::NodeId;
use crate::proto::{ClusterConfig, NodeConfig, Protocol};

/// A cluster file that could not be used.
#[derive(Debug, Error)]
pub enum ClusterFileError {
    #[error("reading {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("cluster file: {0}")]
    Parse(#[from] toml::de::Error),
    #[error("cluster file: `{field}` {reason}")]
    Invalid { field: String, reason: String },
}

fn invalid<T>(field: impl Into<String>, reason: impl Into<String>) -> Result<T, ClusterFileError> {
    Err(ClusterFileError::Invalid { field: field.into(), reason: reason.into() })
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProtocolName {
    Uring,
    Mring,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Acceptor,
    Proposer,
    Learner,
}

/// Where an acceptor keeps its promises and votes (thesis 3.3.5, 5.1; `storage`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StorageMode {
    /// In memory only: in-memory Ring Paxos, which assumes a majority of acceptors never fails.
    Memory,
    /// Logged behind: votes are written to the log as they are cast and synced every
    /// [`ASYNC_SYNC_INTERVAL_US`], so a crash may take the votes of the last interval with it.
    /// Having maybe forgotten votes it sent, a restarted acceptor does not serve as one again
    /// (as in `memory`); the log costs throughput only in the page cache.
    Async,
    /// Recoverable Ring Paxos: a promise or vote is durable before anything that depends on it
    /// leaves the process (group commit: one `fdatasync` for everything the node handled at once).
    /// A restarted acceptor reads its log back and serves again, so any number of acceptors,
    /// all of them included, may crash.
    Sync,
}

/// How often an `async` acceptor syncs its log.
pub const ASYNC_SYNC_INTERVAL_US: u64 = 10_000;

#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeEntry {
    pub id: NodeId,
    pub address: SocketAddr,
    pub roles: Vec<Role>,
    /// The control endpoint `ringsmr bench` talks to; `None`: `address` with port + 1000
    /// ([`NodeEntry::control_address`]).
    #[serde(default)]
    pub control: Option<SocketAddr>,
    /// This node's storage mode; `None`: the cluster's `storage`.
    #[serde(default)]
    pub storage: Option<StorageMode>,
    /// This node's log directory; `None`: `<cluster data_dir>/node-<id>`.
    #[serde(default)]
    pub data_dir: Option<PathBuf>,
    /// Where the node serves its learner snapshot for state transfer; `None`: `address` with
    /// port + 2000 ([`NodeEntry::snapshot_address`]).
    #[serde(default)]
    pub snapshot: Option<SocketAddr>,
}

/// How far above its data port a node's control endpoint listens when `control` is not set.
pub const CONTROL_PORT_OFFSET: u16 = 1000;
/// How far above its data port a node serves snapshots when `snapshot` is not set.
pub const SNAPSHOT_PORT_OFFSET: u16 = 2000;

impl NodeEntry {
    /// Where the node's control endpoint listens: `control`, or `address` with port + 1000. `None`
    /// when that default would pass port 65535 ([`ClusterFile::validate`] refuses such a file).
    pub fn control_address(&self) -> Option<SocketAddr> {
        self.control.or_else(|| {
            let port = self.address.port().checked_add(CONTROL_PORT_OFFSET)?;
            Some(SocketAddr::new(self.address.ip(), port))
        })
    }

    /// Where the node serves snapshots: `snapshot`, or `address` with port + 2000. `None` when that
    /// default would pass port 65535 ([`ClusterFile::validate`] refuses such a file).
    pub fn snapshot_address(&self) -> Option<SocketAddr> {
        self.snapshot.or_else(|| {
            let port = self.address.port().checked_add(SNAPSHOT_PORT_OFFSET)?;
            Some(SocketAddr::new(self.address.ip(), port))
        })
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MulticastSection {
    pub group: SocketAddrV4,
    #[serde(default = "default_interface")]
    pub interface: Ipv4Addr,
    #[serde(default = "default_ttl")]
    pub ttl: u32,
    /// Deliver datagrams to receivers on the sending host too (needed when processes share a host).
    #[serde(default = "default_true")]
    pub loopback: bool,
}

fn default_interface() -> Ipv4Addr {
    Ipv4Addr::LOCALHOST
}
fn default_ttl() -> u32 {
    1
}
fn default_true() -> bool {
    true
}

/// Timeouts, in microseconds; unset ones keep the protocol core's defaults.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimeoutsSection {
    pub tick_us: Option<u64>,
    pub heartbeat_us: Option<u64>,
    pub suspect_us: Option<u64>,
    pub phase_retry_us: Option<u64>,
    pub proposal_retry_us: Option<u64>,
    pub gap_us: Option<u64>,
}

/// The whole cluster file.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterFile {
    pub cluster_id: u32,
    pub protocol: ProtocolName,
    pub f: usize,
    /// The 2f+1 acceptors in ring order (coordinator preference order).
    pub ring: Vec<NodeId>,
    #[serde(default = "default_batch_bytes")]
    pub batch_bytes: usize,
    #[serde(default = "default_window_instances")]
    pub window_instances: u32,
    #[serde(default = "default_window_bytes")]
    pub window_bytes: usize,
    #[serde(default = "default_socket_buffer_bytes")]
    pub socket_buffer_bytes: usize,
    #[serde(default = "default_storage")]
    pub storage: StorageMode,
    /// Where the acceptors' logs and the learners' snapshots go, one directory per node
    /// (`node-<id>`), unless a node names its own `data_dir`. Needed when an acceptor's storage is
    /// not `memory`.
    #[serde(default)]
    pub data_dir: Option<PathBuf>,
    /// The most decided instances an acceptor keeps for lagging learners (3.3.7), at most
    /// [`RETAINED_INSTANCES_MAX`]; it also keeps at most [`RETAINED_BYTES`] of them. A learner that
    /// falls further behind is brought back by state transfer.
    #[serde(default = "default_retain_instances")]
    pub retain_instances: u64,
    pub multicast: Option<MulticastSection>,
    #[serde(default)]
    pub timeouts: TimeoutsSection,
    #[serde(rename = "node")]
    pub nodes: Vec<NodeEntry>,
}

/// Bytes of decided batches an acceptor keeps at most below the version f+1 processes reached
/// (3.3.7), so a learner that lags a little catches up from it. While every process keeps up, an
/// acceptor keeps only what the slowest one has not applied, far less (see
/// `RingNode::garbage_collect`). Received batches stay in the buffers they arrived in, so the
/// receive buffers are sized for this much too (see `io::buffer`).
///
/// Everything kept is memory the receive buffers cycle through: the more is kept, the colder the
/// buffer the kernel writes the next batch into. 64 MiB (2,048 batches of 32 KB: about 60 ms of a
/// saturated loopback ring) delivered 4–5% more than 256 MiB on U-Ring in alternating runs, when
/// this was kept always (bench/RESULTS.md); a learner that falls further behind than this recovers
/// by state transfer.
pub const RETAINED_BYTES: usize = 64 * 1024 * 1024;
/// The most decided instances an acceptor keeps for lagging learners, however small they are:
/// well inside the span of an acceptor's slot buffer (`proto::instance_map`).
pub const RETAINED_INSTANCES_MAX: u64 = 100_000;

/// Bytes of batches a process's receive buffers and batch arenas allocate up front: twice what its
/// acceptor keeps, for the batches in flight and for chunks that a few late batches still pin.
/// Reserved memory costs nothing until it is written.
pub const BUFFER_RESERVE_BYTES: usize = 2 * RETAINED_BYTES;

fn default_batch_bytes() -> usize {
    32 * 1024
}
fn default_window_instances() -> u32 {
    32
}
fn default_window_bytes() -> usize {
    1024 * 1024
}
fn default_socket_buffer_bytes() -> usize {
    4 * 1024 * 1024
}
fn default_retain_instances() -> u64 {
    RETAINED_INSTANCES_MAX
}
fn default_storage() -> StorageMode {
    StorageMode::Memory
}

/// Node `i`'s `field` endpoint, `address` (what [`NodeEntry`] derived: the field, or the data
/// port + `offset`), or the refusal of a default that would pass port 65535.
fn derived_endpoint(
    i: usize,
    n: &NodeEntry,
    field: &str,
    offset: u16,
    address: Option<SocketAddr>,
) -> Result<SocketAddr, ClusterFileError> {
    address.map_or_else(
        || {
            invalid(
                format!("node[{i}].{field}"),
                format!(
                    "is not set and its default ({}'s port + {offset}) passes 65535; set \
                     `{field}` to a free address",
                    n.address
                ),
            )
        },
        Ok,
    )
}

/// The largest datagram an M-Ring batch may fill (IPv4 UDP payload limit, less headers).
const MULTICAST_BATCH_BYTES_MAX: usize = 60 * 1024;

impl ClusterFile {
    pub fn load(path: &Path) -> Result<ClusterFile, ClusterFileError> {
        let text = std::fs::read_to_string(path).map_err(|source| ClusterFileError::Read {
            path: path.display().to_string(),
            source,
        })?;
        ClusterFile::parse(&text)
    }

    /// Parses and validates.
    pub fn parse(text: &str) -> Result<ClusterFile, ClusterFileError> {
        let file: ClusterFile = toml::from_str(text)?;
        file.validate()?;
        Ok(file)
    }

    /// A cluster of `nodes` processes on 127.0.0.1, ports `base_port..`, every one proposer and
    /// learner, the first 2f+1 acceptors. M-Ring clusters multicast on 239.255.82.1 via loopback.
    pub fn local(protocol: ProtocolName, nodes: u16, f: usize, base_port: u16) -> ClusterFile {
        let acceptors = (2 * f + 1).min(usize::from(nodes)) as u16;
        ClusterFile {
            cluster_id: 1,
            protocol,
            f,
            ring: (0..acceptors).collect(),
            batch_bytes: default_batch_bytes(),
            window_instances: default_window_instances(),
            window_bytes: default_window_bytes(),
            socket_buffer_bytes: default_socket_buffer_bytes(),
            storage: StorageMode::Memory,
            data_dir: None,
            retain_instances: RETAINED_INSTANCES_MAX,
            multicast: (protocol == ProtocolName::Mring).then(|| MulticastSection {
                group: SocketAddrV4::new(Ipv4Addr::new(239, 255, 82, 1), base_port + nodes),
                interface: Ipv4Addr::LOCALHOST,
                ttl: 0,
                loopback: true,
            }),
            timeouts: TimeoutsSection::default(),
            nodes: (0..nodes)
                .map(|id| NodeEntry {
                    id,
                    address: SocketAddr::from(([127, 0, 0, 1], base_port + id)),
                    roles: if id < acceptors {
                        vec![Role::Acceptor, Role::Proposer, Role::Learner]
                    } else {
                        vec![Role::Proposer, Role::Learner]
                    },
                    control: None,
                    storage: None,
                    data_dir: None,
                    snapshot: None,
                })
                .collect(),
        }
    }

    /// [`ClusterFile::local`] on loopback ports that were free a moment ago: data, control and
    /// snapshot ports of every node and a multicast port. (The default control and snapshot ports,
    /// data port + 1000 and + 2000, are not taken from the OS and may be in use.)
    pub fn local_on_free_ports(
        protocol: ProtocolName,
        nodes: u16,
        f: usize,
    ) -> Result<ClusterFile, ClusterFileError> {
        let ports =
            crate::io::socket::free_loopback_ports(3 * usize::from(nodes) + 1).map_err(|e| {
                ClusterFileError::Invalid {
                    field: "node.address".into(),
                    reason: format!("no free loopback port: {e}"),
                }
            })?;
        let mut c = ClusterFile::local(protocol, nodes, f, 0);
        let (data_ports, rest) = ports.split_at(usize::from(nodes));
        let (control_ports, rest) = rest.split_at(usize::from(nodes));
        let (snapshot_ports, multicast_port) = rest.split_at(usize::from(nodes));
        let ports = data_ports.iter().zip(control_ports).zip(snapshot_ports);
        for (n, ((data, control), snapshot)) in c.nodes.iter_mut().zip(ports) {
            n.address.set_port(*data);
            n.control = Some(SocketAddr::new(n.address.ip(), *control));
            n.snapshot = Some(SocketAddr::new(n.address.ip(), *snapshot));
        }
        if let (Some(m), Some(port)) = (c.multicast.as_mut(), multicast_port.first()) {
            m.group.set_port(*port);
        }
        c.validate()?;
        Ok(c)
    }

    pub fn validate(&self) -> Result<(), ClusterFileError> {
        if self.nodes.is_empty() {
            return invalid("node", "lists no node");
        }
        for (i, n) in self.nodes.iter().enumerate() {
            if usize::from(n.id) != i {
                return invalid(
                    format!("node[{i}].id"),
                    format!("is {}, expected {i}: ids are dense and listed in order", n.id),
                );
            }
            if n.roles.is_empty() {
                return invalid(format!("node[{i}].roles"), "is empty");
            }
            if self.nodes[..i].iter().any(|m| m.address == n.address) {
                return invalid(
                    format!("node[{i}].address"),
                    format!("{} is used twice", n.address),
                );
            }
            let control =
                derived_endpoint(i, n, "control", CONTROL_PORT_OFFSET, n.control_address())?;
            if let Some(m) = self.nodes.iter().find(|m| m.address == control) {
                return invalid(
                    format!("node[{i}].control"),
                    format!(
                        "{control} is node {}'s data address; give the control endpoint a port \
                         of its own",
                        m.id
                    ),
                );
            }
            if let Some(m) = self.nodes[..i].iter().find(|m| m.control_address() == Some(control)) {
                return invalid(
                    format!("node[{i}].control"),
                    format!("{control} is node {}'s control address too; they must differ", m.id),
                );
            }
            let snapshot =
                derived_endpoint(i, n, "snapshot", SNAPSHOT_PORT_OFFSET, n.snapshot_address())?;
            let taken = |m: &NodeEntry| {
                m.address == snapshot
                    || m.control_address() == Some(snapshot)
                    || (m.id < n.id && m.snapshot_address() == Some(snapshot))
            };
            if let Some(m) = self.nodes.iter().find(|m| taken(m)) {
                return invalid(
                    format!("node[{i}].snapshot"),
                    format!(
                        "{snapshot} is one of node {}'s endpoints too; give the snapshot \
                         endpoint a port of its own",
                        m.id
                    ),
                );
            }
            let acceptor = n.roles.contains(&Role::Acceptor);
            if acceptor != self.ring.contains(&n.id) {
                return invalid(
                    "ring",
                    format!(
                        "must list exactly the acceptors; node {} is {}an acceptor but {}in it",
                        n.id,
                        if acceptor { "" } else { "not " },
                        if acceptor { "not " } else { "" }
                    ),
                );
            }
        }
        for (i, n) in self.nodes.iter().enumerate() {
            if self.storage_of(n.id).is_some_and(|(_, dir)| dir.is_none()) {
                return invalid(
                    format!("node[{i}].data_dir"),
                    "is needed: this acceptor's storage is not \"memory\" (set it, or `data_dir` \
                     for the whole cluster)",
                );
            }
        }
        if !(1..=RETAINED_INSTANCES_MAX).contains(&self.retain_instances) {
            return invalid(
                "retain_instances",
                format!("must be between 1 and {RETAINED_INSTANCES_MAX}"),
            );
        }
        if self.socket_buffer_bytes < 64 * 1024 {
            return invalid("socket_buffer_bytes", "must be at least 65536");
        }
        match (self.protocol, &self.multicast) {
            (ProtocolName::Mring, None) => {
                return invalid("multicast", "is required for protocol = \"mring\"");
            }
            (ProtocolName::Mring, Some(m)) => {
                if !m.group.ip().is_multicast() {
                    return invalid("multicast.group", "must be an IPv4 multicast address");
                }
                if self.batch_bytes > MULTICAST_BATCH_BYTES_MAX {
                    return invalid(
                        "batch_bytes",
                        format!(
                            "must be at most {MULTICAST_BATCH_BYTES_MAX} with M-Ring Paxos: a \
                             batch travels in one datagram"
                        ),
                    );
                }
            }
            (ProtocolName::Uring, _) => {}
        }
        // The protocol core checks the rest (and names its fields).
        for id in 0..self.nodes.len() as NodeId {
            self.node_config(id)?;
        }
        Ok(())
    }

    /// Node `id`'s own directory: its `data_dir`, or `<cluster data_dir>/node-<id>`; `None` when
    /// neither is set. Its acceptor log and its learner snapshot live there.
    pub fn node_dir(&self, id: NodeId) -> Option<PathBuf> {
        let n = self.nodes.get(usize::from(id))?;
        n.data_dir.clone().or_else(|| self.data_dir.as_ref().map(|d| d.join(format!("node-{id}"))))
    }

    /// The storage mode of acceptor `id` and the directory of its log (`None` without a
    /// `data_dir`); `None` for an acceptor that keeps its state in memory, and for any other node.
    pub fn storage_of(&self, id: NodeId) -> Option<(StorageMode, Option<PathBuf>)> {
        let n = self.nodes.get(usize::from(id)).filter(|_| self.ring.contains(&id))?;
        let mode = n.storage.unwrap_or(self.storage);
        if mode == StorageMode::Memory {
            return None;
        }
        Some((mode, self.node_dir(id)))
    }

    /// The protocol core's configuration of process `id`.
    pub fn node_config(&self, id: NodeId) -> Result<NodeConfig, ClusterFileError> {
        let Some(entry) = self.nodes.get(usize::from(id)) else {
            return invalid("--id", format!("{id} is not a node of this cluster file"));
        };
        let protocol = match self.protocol {
            ProtocolName::Uring => Protocol::URing,
            ProtocolName::Mring => Protocol::MRing,
        };
        let cluster = ClusterConfig {
            nodes: self.nodes.len() as u16,
            acceptors: self.ring.clone(),
            f: self.f,
        };
        let mut c = NodeConfig::new(id, protocol, cluster);
        c.proposer = entry.roles.contains(&Role::Proposer);
        // An `async` acceptor logs too, but its log does not gate its answers (see StorageMode).
        c.stable_storage = self.storage_of(id).is_some();
        c.learner = entry.roles.contains(&Role::Learner) || c.proposer;
        c.batch_bytes_max = self.batch_bytes;
        c.window_instances = self.window_instances;
        c.window_instances_min = c.window_instances_min.min(self.window_instances);
        c.window_bytes = self.window_bytes;
        // Keep up to RETAINED_BYTES of decided batches for lagging learners (3.3.7), however full
        // the batches are (the arenas this process writes batches in are sized for them from the
        // start), and at most RETAINED_INSTANCES_MAX instances. Counted in instances alone (64 MiB
        // of full 32 KB batches, 2,048), a load of small values made that 0.3 s of history.
        c.gc_retain_instances = self.retain_instances;
        c.gc_retain_bytes = RETAINED_BYTES as u64;
        c.arena_reserve_bytes = BUFFER_RESERVE_BYTES;
        let t = &self.timeouts;
        let set = |slot: &mut u64, v: Option<u64>| {
            if let Some(v) = v {
                *slot = v;
            }
        };
        set(&mut c.tick_interval_us, t.tick_us);
        set(&mut c.heartbeat_interval_us, t.heartbeat_us);
        set(&mut c.suspect_timeout_us, t.suspect_us);
        set(&mut c.phase_retry_us, t.phase_retry_us);
        set(&mut c.proposal_retry_us, t.proposal_retry_us);
        set(&mut c.gap_timeout_us, t.gap_us);
        c.validate().map_err(|e| {
            let field = match e.field {
                "batch_bytes_max" => "batch_bytes",
                "cluster.acceptors" => "ring",
                "cluster.f" => "f",
                "tick_interval_us" => "timeouts.tick_us",
                "heartbeat_interval_us" => "timeouts.heartbeat_us",
                "suspect_timeout_us" => "timeouts.suspect_us",
                "phase_retry_us" => "timeouts.phase_retry_us",
                "proposal_retry_us" => "timeouts.proposal_retry_us",
                "gap_timeout_us" => "timeouts.gap_us",
                other => other,
            };
            ClusterFileError::Invalid { field: field.to_string(), reason: e.reason }
        })?;
        Ok(c)
    }

    pub fn multicast_options(&self) -> Option<MulticastOptions> {
        self.multicast.as_ref().map(|m| MulticastOptions {
            group: m.group,
            interface: m.interface,
            ttl: m.ttl,
            loopback: m.loopback,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
cluster_id = 7
protocol = "uring"
f = 1
ring = [0, 1, 2]
[[node]]
id = 0
address = "127.0.0.1:7000"
roles = ["acceptor", "proposer", "learner"]
[[node]]
id = 1
address = "127.0.0.1:7001"
roles = ["acceptor", "learner"]
[[node]]
id = 2
address = "127.0.0.1:7002"
roles = ["acceptor"]
"#;

    fn refusal(text: &str) -> String {
        ClusterFile::parse(text).unwrap_err().to_string()
    }

    #[test]
    fn a_good_file_gives_each_node_its_roles() {
        let f = ClusterFile::parse(GOOD).unwrap();
        assert_eq!(f.batch_bytes, 32 * 1024);
        let c = f.node_config(1).unwrap();
        assert!(c.learner && !c.proposer);
        assert_eq!(c.cluster.acceptors, [0, 1, 2]);
        assert!(!f.node_config(2).unwrap().learner);
        assert!(f.node_config(3).unwrap_err().to_string().contains("--id"));
    }

    #[test]
    fn refusals_name_the_field() {
        let e = refusal(&GOOD.replace("f = 1", "f = 1\nbatch_byte = 10"));
        assert!(e.contains("batch_byte"), "unknown keys are refused by name: {e}");
        let e = refusal(&GOOD.replace("ring = [0, 1, 2]", "ring = [0, 1]"));
        assert!(e.contains("`ring`"), "{e}");
        let e = refusal(&GOOD.replace("f = 1", "f = 1\nbatch_bytes = 10"));
        assert!(e.contains("`batch_bytes`"), "{e}");
        let e = refusal(&GOOD.replace("\"uring\"", "\"mring\""));
        assert!(e.contains("`multicast`"), "{e}");
        let e = refusal(&GOOD.replace("id = 2", "id = 5"));
        assert!(e.contains("`node[2].id`"), "{e}");
        let e = refusal(&GOOD.replace("7002", "7001"));
        assert!(e.contains("`node[2].address`"), "{e}");
        let e = refusal(&GOOD.replace("f = 1", "f = 1\nstorage = \"disk\""));
        assert!(e.contains("storage") && e.contains("`sync`"), "{e}");
        let e = refusal(&GOOD.replace("f = 1", "f = 1\nstorage = \"sync\""));
        assert!(e.contains("`node[0].data_dir`"), "{e}");
        let e = refusal(&format!("{GOOD}\n[timeouts]\nsuspect_us = 1\n"));
        assert!(e.contains("`timeouts.suspect_us`"), "{e}");
    }

    #[test]
    fn control_defaults_to_port_plus_1000_and_must_be_distinct() {
        let f = ClusterFile::parse(GOOD).unwrap();
        assert_eq!(f.nodes[1].control_address(), Some("127.0.0.1:8001".parse().unwrap()));
        let explicit = GOOD.replace(
            "address = \"127.0.0.1:7001\"",
            "address = \"127.0.0.1:7001\"\ncontrol = \"10.0.0.2:9000\"",
        );
        let f = ClusterFile::parse(&explicit).unwrap();
        assert_eq!(f.nodes[1].control_address(), Some("10.0.0.2:9000".parse().unwrap()));

        // A control endpoint on a node's data address (its own or another's) is refused by name.
        let e = refusal(&GOOD.replace(
            "address = \"127.0.0.1:7001\"",
            "address = \"127.0.0.1:7001\"\ncontrol = \"127.0.0.1:7002\"",
        ));
        assert!(e.contains("`node[1].control`") && e.contains("node 2's data address"), "{e}");
        // Two nodes' control endpoints (one explicit, one default) on the same address.
        let e = refusal(&GOOD.replace(
            "address = \"127.0.0.1:7002\"",
            "address = \"127.0.0.1:7002\"\ncontrol = \"127.0.0.1:8000\"",
        ));
        assert!(e.contains("`node[2].control`") && e.contains("node 0's control"), "{e}");
        // A default that would pass port 65535.
        let e = refusal(&GOOD.replace("127.0.0.1:7002", "127.0.0.1:65000"));
        assert!(e.contains("`node[2].control`") && e.contains("65535"), "{e}");
        let e =
            refusal(&GOOD.replace("roles = [\"acceptor\"]", "roles = [\"acceptor\"]\ncontrol = 5"));
        assert!(e.contains("control"), "{e}");
    }

    #[test]
    fn snapshot_defaults_to_port_plus_2000_and_must_be_distinct() {
        let f = ClusterFile::parse(GOOD).unwrap();
        assert_eq!(f.nodes[1].snapshot_address(), Some("127.0.0.1:9001".parse().unwrap()));
        // On another node's control endpoint, or on another node's snapshot endpoint.
        let e = refusal(&GOOD.replace(
            "address = \"127.0.0.1:7001\"",
            "address = \"127.0.0.1:7001\"\nsnapshot = \"127.0.0.1:8002\"",
        ));
        assert!(e.contains("`node[1].snapshot`") && e.contains("node 2's endpoints"), "{e}");
        let e = refusal(&GOOD.replace(
            "address = \"127.0.0.1:7002\"",
            "address = \"127.0.0.1:7002\"\nsnapshot = \"127.0.0.1:9000\"",
        ));
        assert!(e.contains("`node[2].snapshot`") && e.contains("node 0's endpoints"), "{e}");
        // A default that would pass port 65535 (the control endpoint's, port + 1000, does not).
        let e = refusal(&GOOD.replace(
            "address = \"127.0.0.1:7002\"",
            "address = \"127.0.0.1:64000\"\ncontrol = \"127.0.0.1:8002\"",
        ));
        assert!(e.contains("`node[2].snapshot`") && e.contains("65535"), "{e}");
        let e = refusal(&format!("retain_instances = 0\n{GOOD}"));
        assert!(e.contains("`retain_instances`"), "{e}");
    }

    #[test]
    fn storage_is_per_node_with_a_directory_each_and_only_acceptors_log() {
        let text = GOOD.replace("f = 1", "f = 1\nstorage = \"sync\"\ndata_dir = \"/d\"").replace(
            "address = \"127.0.0.1:7001\"",
            "address = \"127.0.0.1:7001\"\nstorage = \"async\"\ndata_dir = \"/own\"",
        );
        let f = ClusterFile::parse(&text).unwrap();
        assert_eq!(f.storage_of(0), Some((StorageMode::Sync, Some("/d/node-0".into()))));
        assert_eq!(f.storage_of(1), Some((StorageMode::Async, Some("/own".into()))));
        assert!(f.node_config(0).unwrap().stable_storage);
        // A node that is no acceptor has nothing to log.
        let mut four = f.clone();
        four.nodes.push(NodeEntry {
            id: 3,
            address: "127.0.0.1:7003".parse().unwrap(),
            ..f.nodes[2].clone()
        });
        four.nodes[3].roles = vec![Role::Learner];
        four.validate().unwrap();
        assert_eq!(four.storage_of(3), None);
        assert!(!four.node_config(3).unwrap().stable_storage);
        // `memory` on one node turns its log off.
        let text =
            text.replace("roles = [\"acceptor\"]", "roles = [\"acceptor\"]\nstorage = \"memory\"");
        let f = ClusterFile::parse(&text).unwrap();
        assert_eq!(f.storage_of(2), None);
        assert!(!f.node_config(2).unwrap().stable_storage);
    }

    #[test]
    fn local_clusters_are_valid() {
        for p in [ProtocolName::Uring, ProtocolName::Mring] {
            for (nodes, f) in [(3, 1), (5, 2), (4, 1)] {
                ClusterFile::local(p, nodes, f, 7000).validate().unwrap();
            }
            let c = ClusterFile::local_on_free_ports(p, 3, 1).unwrap();
            assert!(c.nodes.iter().all(|n| n.control.is_some()));
        }
    }
}
