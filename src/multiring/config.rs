//! The Multi-Ring file: which rings there are, which groups each ring orders, and which groups each
//! learner subscribes to (thesis 5.2.1–5.2.4).
//!
//! ```toml
//! lambda_instances = 100        # λ: instances a ring is expected to decide per Δ (0: no skips)
//! delta_us = 1000               # Δ: how often a coordinator compares its ring with λ·t/Δ
//! merge_queue_instances = 1024  # decided instances a learner holds per ring before it pushes back
//!
//! [[ring]]
//! id = 0
//! cluster = "ring-0.toml"       # a cluster file (relative to this file)
//! processes = [0, 1, 2]         # optional: the process that is node i of the ring; default: i
//!
//! [[ring]]
//! id = 1
//! cluster = "ring-1.toml"
//!
//! [[group]]
//! id = 0                        # optional table: by default each ring orders the group of its id,
//! ring = 0                      # with M = 1
//! m = 1                         # M: instances of this group's ring merged per turn
//!
//! [[learner]]
//! process = 2
//! groups = [1]                  # default: every group of every ring the process learns in;
//!                               # [] delivers nothing (an acceptor or proposer only)
//! ```
//!
//! A *process* takes part in every ring whose nodes it plays, one core thread per ring
//! (`multiring::node`). Each ring is an ordinary cluster (its own ports, multicast group, storage,
//! acceptors); λ and Δ apply to all of them, since the merge needs every ring to keep the same pace.
//! Skips take each ring to λ·t/Δ on the hosts' wall clocks (`proto::skip`): keep the hosts'
//! clocks synchronised, since their skew adds to the merge's latency, and set λ above what any ring
//! decides, since a ring that decides more runs ahead and the merge holds its messages for the
//! others (5.4.6).
//!
//! Several groups may share a ring (5.2.4): their messages carry the group id (4 bytes) so a learner
//! can drop those of groups it does not subscribe to. The merge runs over rings: every group of a
//! ring must have the same M, and every learner of a ring merges it with that M, so learners with
//! overlapping subscriptions order what they share alike.
//!
//! A process run as `ringsmr node --config MULTIRING_FILE --id P` serves `ringsmr bench` on one
//! control endpoint ([`control`](super::control)): the `control` address of the node it plays in
//! its lowest-id ring (in that ring's cluster file; by default the node's data port + 1000). One
//! endpoint per process, since the bench loads processes, not rings; the `control` addresses of its
//! nodes in other rings are not used. [`MultiRingFile::control_endpoint`] says which it is.
//!
//! Like the cluster file, unknown keys are refused and every refusal names the field.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::node::config::{ClusterFile, ClusterFileError, ProtocolName, Role};
use crate::proto::NodeId;

/// A group's id (totally ordered: the merge's round-robin follows it).
pub type GroupId = u32;
/// A ring's id.
pub type RingId = u32;
/// A process of a Multi-Ring deployment (it plays one node of each ring it is in).
pub type ProcessId = u16;

/// λ per Δ when the file does not say: above what one ring decides on this hardware (about 40
/// instances per millisecond of 32 KB batches over loopback), so no busy ring outruns the skips of an idle one
/// (5.4.6: too small a λ stalls the merge at high load). Skips cost the same whatever their count.
pub const DEFAULT_LAMBDA_INSTANCES: u64 = 100;
pub const DEFAULT_DELTA_US: u64 = 1_000;
/// With 32 KB batches, 32 MiB per ring; flow control adds at most twice its backlog bound
/// (`proto::flow_control`).
pub const DEFAULT_MERGE_QUEUE_INSTANCES: usize = 1_024;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default = "default_lambda")]
    lambda_instances: u64,
    #[serde(default = "default_delta")]
    delta_us: u64,
    #[serde(default = "default_merge_queue")]
    merge_queue_instances: usize,
    #[serde(rename = "ring")]
    rings: Vec<RawRing>,
    #[serde(default, rename = "group")]
    groups: Vec<GroupEntry>,
    #[serde(default, rename = "learner")]
    learners: Vec<LearnerEntry>,
}

fn default_lambda() -> u64 {
    DEFAULT_LAMBDA_INSTANCES
}
fn default_delta() -> u64 {
    DEFAULT_DELTA_US
}
fn default_merge_queue() -> usize {
    DEFAULT_MERGE_QUEUE_INSTANCES
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRing {
    id: RingId,
    cluster: PathBuf,
    #[serde(default)]
    processes: Option<Vec<ProcessId>>,
}

/// One group: the ring that orders it and its M.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupEntry {
    pub id: GroupId,
    pub ring: RingId,
    #[serde(default = "default_m")]
    pub m: u64,
}

fn default_m() -> u64 {
    1
}

/// The groups one process delivers.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LearnerEntry {
    pub process: ProcessId,
    pub groups: Vec<GroupId>,
}

/// One ring: its cluster and which process plays each of its nodes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RingEntry {
    pub id: RingId,
    pub cluster: ClusterFile,
    /// `processes[i]` plays node `i`.
    pub processes: Vec<ProcessId>,
}

impl RingEntry {
    /// The node `process` plays in this ring, if any.
    pub fn node_of(&self, process: ProcessId) -> Option<NodeId> {
        self.processes.iter().position(|&p| p == process).map(|i| i as NodeId)
    }
}

/// A validated Multi-Ring file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MultiRingFile {
    pub lambda_instances: u64,
    pub delta_us: u64,
    pub merge_queue_instances: usize,
    /// In ring-id order.
    pub rings: Vec<RingEntry>,
    /// In group-id order.
    pub groups: Vec<GroupEntry>,
    pub learners: Vec<LearnerEntry>,
}

fn invalid<T>(field: impl Into<String>, reason: impl Into<String>) -> Result<T, ClusterFileError> {
    Err(ClusterFileError::Invalid { field: field.into(), reason: reason.into() })
}

impl MultiRingFile {
    /// Reads and validates `path`, and the rings' cluster files it names.
    pub fn load(path: &Path) -> Result<MultiRingFile, ClusterFileError> {
        let text = std::fs::read_to_string(path).map_err(|source| ClusterFileError::Read {
            path: path.display().to_string(),
            source,
        })?;
        let raw: RawFile = toml::from_str(&text)?;
        let base = path.parent().unwrap_or(Path::new("."));
        let mut rings = Vec::with_capacity(raw.rings.len());
        for (i, r) in raw.rings.into_iter().enumerate() {
            let cluster_path = base.join(&r.cluster);
            let cluster = ClusterFile::load(&cluster_path).map_err(|e| match e {
                ClusterFileError::Invalid { field, reason } => ClusterFileError::Invalid {
                    field: format!("ring[{i}].cluster ({}): {field}", cluster_path.display()),
                    reason,
                },
                other => ClusterFileError::Invalid {
                    field: format!("ring[{i}].cluster"),
                    reason: other.to_string(),
                },
            })?;
            let processes =
                r.processes.unwrap_or_else(|| (0..cluster.nodes.len() as ProcessId).collect());
            rings.push(RingEntry { id: r.id, cluster, processes });
        }
        MultiRingFile::new(
            raw.lambda_instances,
            raw.delta_us,
            raw.merge_queue_instances,
            rings,
            raw.groups,
            raw.learners,
        )
    }

    /// Validates the parts; `groups` empty means one group per ring, of the ring's id, M = 1.
    pub fn new(
        lambda_instances: u64,
        delta_us: u64,
        merge_queue_instances: usize,
        mut rings: Vec<RingEntry>,
        mut groups: Vec<GroupEntry>,
        learners: Vec<LearnerEntry>,
    ) -> Result<MultiRingFile, ClusterFileError> {
        if rings.is_empty() {
            return invalid("ring", "at least one ring is needed");
        }
        if lambda_instances > 0 && !(1..=60_000_000).contains(&delta_us) {
            return invalid("delta_us", "must be between 1 us and 60 s");
        }
        if !(1..=1 << 20).contains(&merge_queue_instances) {
            return invalid("merge_queue_instances", "must be within 1..=1048576");
        }
        rings.sort_by_key(|r| r.id);
        for (i, r) in rings.iter().enumerate() {
            if i > 0 && rings[i - 1].id == r.id {
                return invalid(format!("ring[{i}].id"), format!("ring {} is named twice", r.id));
            }
            if r.processes.len() != r.cluster.nodes.len() {
                return invalid(
                    format!("ring[{i}].processes"),
                    format!(
                        "names {} processes for a ring of {} nodes",
                        r.processes.len(),
                        r.cluster.nodes.len()
                    ),
                );
            }
            for (k, p) in r.processes.iter().enumerate() {
                if r.processes[..k].contains(p) {
                    return invalid(
                        format!("ring[{i}].processes"),
                        format!("process {p} plays two nodes of ring {}", r.id),
                    );
                }
            }
        }
        if groups.is_empty() {
            groups = rings.iter().map(|r| GroupEntry { id: r.id, ring: r.id, m: 1 }).collect();
        }
        groups.sort_by_key(|g| g.id);
        let mut m_of_ring: BTreeMap<RingId, u64> = BTreeMap::new();
        for (i, g) in groups.iter().enumerate() {
            if i > 0 && groups[i - 1].id == g.id {
                return invalid(format!("group[{i}].id"), format!("group {} is named twice", g.id));
            }
            if !rings.iter().any(|r| r.id == g.ring) {
                return invalid(format!("group[{i}].ring"), format!("no ring {}", g.ring));
            }
            if !(1..=1 << 20).contains(&g.m) {
                return invalid(format!("group[{i}].m"), "must be within 1..=1048576");
            }
            if let Some(m) = m_of_ring.insert(g.ring, g.m)
                && m != g.m
            {
                return invalid(
                    format!("group[{i}].m"),
                    format!(
                        "groups of ring {} must share one M (the merge takes the ring's \
                         instances, whatever their groups): {m} and {}",
                        g.ring, g.m
                    ),
                );
            }
        }
        let file = MultiRingFile {
            lambda_instances,
            delta_us,
            merge_queue_instances,
            rings,
            groups,
            learners,
        };
        for (i, l) in file.learners.iter().enumerate() {
            for g in &l.groups {
                let Some(group) = file.group(*g) else {
                    return invalid(format!("learner[{i}].groups"), format!("no group {g}"));
                };
                let ring = file.ring(group.ring).expect("validated above");
                let learns = ring.node_of(l.process).is_some_and(|n| {
                    let roles = &ring.cluster.nodes[usize::from(n)].roles;
                    roles.contains(&Role::Learner) || roles.contains(&Role::Proposer)
                });
                if !learns {
                    return invalid(
                        format!("learner[{i}].groups"),
                        format!(
                            "process {} subscribes to group {g}, but is no learner of its ring {}",
                            l.process, group.ring
                        ),
                    );
                }
            }
        }
        Ok(file)
    }

    /// `rings` rings of `processes` processes each on 127.0.0.1, every process in every ring
    /// (proposer and learner; the first 2f+1 acceptors), ring `r` on ports `base_port + 100 r ..`,
    /// one group per ring; learners subscribe to every group unless `learners` says otherwise.
    pub fn local(
        protocol: ProtocolName,
        rings: u32,
        processes: u16,
        f: usize,
        base_port: u16,
        learners: Vec<LearnerEntry>,
    ) -> Result<MultiRingFile, ClusterFileError> {
        let entries = (0..rings)
            .map(|r| {
                let mut cluster =
                    ClusterFile::local(protocol, processes, f, base_port + 100 * r as u16);
                cluster.cluster_id = 100 + r;
                RingEntry { id: r, cluster, processes: (0..processes).collect() }
            })
            .collect();
        MultiRingFile::new(
            DEFAULT_LAMBDA_INSTANCES,
            DEFAULT_DELTA_US,
            DEFAULT_MERGE_QUEUE_INSTANCES,
            entries,
            Vec::new(),
            learners,
        )
    }

    /// [`MultiRingFile::local`] on loopback ports that were free a moment ago.
    pub fn local_on_free_ports(
        protocol: ProtocolName,
        rings: u32,
        processes: u16,
        f: usize,
        learners: Vec<LearnerEntry>,
    ) -> Result<MultiRingFile, ClusterFileError> {
        let mut file = MultiRingFile::local(protocol, rings, processes, f, 0, learners)?;
        for r in &mut file.rings {
            let id = r.cluster.cluster_id;
            r.cluster = ClusterFile::local_on_free_ports(protocol, processes, f)?;
            r.cluster.cluster_id = id;
        }
        Ok(file)
    }

    pub fn ring(&self, id: RingId) -> Option<&RingEntry> {
        self.rings.iter().find(|r| r.id == id)
    }

    pub fn group(&self, id: GroupId) -> Option<&GroupEntry> {
        self.groups.iter().find(|g| g.id == id)
    }

    /// The groups ring `ring` orders, in id order.
    pub fn groups_of_ring(&self, ring: RingId) -> impl Iterator<Item = &GroupEntry> + '_ {
        self.groups.iter().filter(move |g| g.ring == ring)
    }

    /// Whether ring `ring`'s messages carry their group id (it orders more than one group).
    pub fn tags_groups(&self, ring: RingId) -> bool {
        self.groups_of_ring(ring).nth(1).is_some()
    }

    /// The groups `process` delivers: its `[[learner]]` entry, or every group of every ring in
    /// which it learns.
    pub fn subscriptions(&self, process: ProcessId) -> Vec<GroupId> {
        if let Some(l) = self.learners.iter().find(|l| l.process == process) {
            let mut g = l.groups.clone();
            g.sort_unstable();
            g.dedup();
            return g;
        }
        self.groups
            .iter()
            .filter(|g| {
                let ring = self.ring(g.ring).expect("validated");
                ring.node_of(process)
                    .is_some_and(|n| ring.cluster.node_config(n).is_ok_and(|c| c.learner))
            })
            .map(|g| g.id)
            .collect()
    }

    /// The groups `process` multicasts to unless told otherwise: every group of every ring in
    /// which it is a proposer.
    pub fn multicast_groups(&self, process: ProcessId) -> Vec<GroupId> {
        self.groups
            .iter()
            .filter(|g| {
                let ring = self.ring(g.ring).expect("validated");
                ring.node_of(process)
                    .is_some_and(|n| ring.cluster.node_config(n).is_ok_and(|c| c.proposer))
            })
            .map(|g| g.id)
            .collect()
    }

    /// Where `process` serves `ringsmr bench` (module docs): the control address of its node in
    /// its lowest-id ring, with that ring and node. `None` when no ring names the process (or the
    /// default address would pass port 65535, which the cluster file's validation refuses).
    pub fn control_endpoint(&self, process: ProcessId) -> Option<(RingId, NodeId, SocketAddr)> {
        // `rings` is in id order, so the first that names the process is its lowest.
        let ring = self.rings.iter().find(|r| r.node_of(process).is_some())?;
        let node = ring.node_of(process)?;
        let addr = ring.cluster.nodes.get(usize::from(node))?.control_address()?;
        Some((ring.id, node, addr))
    }

    /// Every process some ring names, in order.
    pub fn processes(&self) -> Vec<ProcessId> {
        let mut all: Vec<ProcessId> =
            self.rings.iter().flat_map(|r| r.processes.iter().copied()).collect();
        all.sort_unstable();
        all.dedup();
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::temp_dir::TempDir;

    fn write_ring(dir: &Path, name: &str, port: u16) {
        let cluster = format!(
            "cluster_id = {port}\nprotocol = \"uring\"\nf = 1\nring = [0, 1, 2]\n\
             [[node]]\nid = 0\naddress = \"127.0.0.1:{}\"\nroles = [\"acceptor\", \"proposer\", \"learner\"]\n\
             [[node]]\nid = 1\naddress = \"127.0.0.1:{}\"\nroles = [\"acceptor\"]\n\
             [[node]]\nid = 2\naddress = \"127.0.0.1:{}\"\nroles = [\"acceptor\", \"learner\"]\n",
            port,
            port + 1,
            port + 2
        );
        std::fs::write(dir.join(name), cluster).unwrap();
    }

    #[test]
    fn a_file_with_two_rings_maps_processes_groups_and_subscriptions() {
        let dir = TempDir::new("multiring-config");
        std::fs::create_dir_all(dir.path()).unwrap();
        write_ring(dir.path(), "r0.toml", 7100);
        write_ring(dir.path(), "r1.toml", 7200);
        let text = "lambda_instances = 50\n\
             [[ring]]\nid = 1\ncluster = \"r1.toml\"\nprocesses = [3, 1, 2]\n\
             [[ring]]\nid = 0\ncluster = \"r0.toml\"\n\
             [[group]]\nid = 5\nring = 1\nm = 2\n\
             [[group]]\nid = 6\nring = 1\nm = 2\n\
             [[group]]\nid = 0\nring = 0\n";
        let path = dir.path().join("multi.toml");
        std::fs::write(&path, text).unwrap();
        let file = MultiRingFile::load(&path).unwrap();
        assert_eq!(file.lambda_instances, 50);
        assert_eq!(file.rings.iter().map(|r| r.id).collect::<Vec<_>>(), [0, 1]);
        assert_eq!(file.ring(1).unwrap().node_of(3), Some(0));
        assert_eq!(file.ring(1).unwrap().node_of(0), None);
        assert!(file.tags_groups(1) && !file.tags_groups(0));
        // Process 0 learns in ring 0 only; process 2 in both; process 1 is an acceptor only.
        assert_eq!(file.subscriptions(0), [0]);
        assert_eq!(file.subscriptions(2), [0, 5, 6]);
        assert_eq!(file.subscriptions(1), Vec::<GroupId>::new());
        assert_eq!(file.subscriptions(3), [5, 6]);
        assert_eq!(file.processes(), [0, 1, 2, 3]);
        // Only node 0 of each ring proposes: process 0 in ring 0, process 3 in ring 1.
        assert_eq!(file.multicast_groups(0), [0]);
        assert_eq!(file.multicast_groups(3), [5, 6]);
        assert_eq!(file.multicast_groups(2), Vec::<GroupId>::new());
        // Process 2 plays node 2 of ring 0 and node 2 of ring 1: it serves where the lower ring
        // says; process 3 is in ring 1 only (node 0, data port 7200).
        let at = |port: u16| SocketAddr::from(([127, 0, 0, 1], port));
        assert_eq!(file.control_endpoint(2), Some((0, 2, at(7102 + 1000))));
        assert_eq!(file.control_endpoint(3), Some((1, 0, at(7200 + 1000))));
        assert_eq!(file.control_endpoint(9), None);
    }

    #[test]
    fn refusals_name_the_field() {
        let dir = TempDir::new("multiring-config-bad");
        std::fs::create_dir_all(dir.path()).unwrap();
        write_ring(dir.path(), "r0.toml", 7300);
        let cases = [
            ("[[ring]]\nid = 0\ncluster = \"r0.toml\"\nprocesses = [0, 1]\n", "ring[0].processes"),
            (
                "[[ring]]\nid = 0\ncluster = \"r0.toml\"\nprocesses = [0, 1, 1]\n",
                "ring[0].processes",
            ),
            (
                "[[ring]]\nid = 0\ncluster = \"r0.toml\"\n[[group]]\nid = 1\nring = 4\n",
                "group[0].ring",
            ),
            (
                "[[ring]]\nid = 0\ncluster = \"r0.toml\"\n[[group]]\nid = 1\nring = 0\nm = 1\n\
                 [[group]]\nid = 2\nring = 0\nm = 3\n",
                "group[1].m",
            ),
            (
                "[[ring]]\nid = 0\ncluster = \"r0.toml\"\n[[learner]]\nprocess = 1\ngroups = [0]\n",
                "learner[0].groups",
            ),
            (
                "[[ring]]\nid = 0\ncluster = \"r0.toml\"\n[[learner]]\nprocess = 0\ngroups = [9]\n",
                "learner[0].groups",
            ),
            ("delta_us = 0\n[[ring]]\nid = 0\ncluster = \"r0.toml\"\n", "delta_us"),
            ("[[ring]]\nid = 0\ncluster = \"missing.toml\"\n", "ring[0].cluster"),
        ];
        for (text, field) in cases {
            let path = dir.path().join("multi.toml");
            std::fs::write(&path, text).unwrap();
            match MultiRingFile::load(&path) {
                Err(ClusterFileError::Invalid { field: f, reason }) => {
                    assert!(f.starts_with(field), "{text}: named {f} ({reason}), not {field}")
                }
                other => panic!("{text}: expected a refusal naming {field}, got {other:?}"),
            }
        }
        std::fs::write(
            dir.path().join("multi.toml"),
            "[[ring]]\nid = 0\ncluster = \"r0.toml\"\nlamda = 3\n",
        )
        .unwrap();
        assert!(
            matches!(
                MultiRingFile::load(&dir.path().join("multi.toml")),
                Err(ClusterFileError::Parse(_))
            ),
            "a misspelt key is refused"
        );
    }

    #[test]
    fn local_files_give_every_ring_its_own_ports_and_cluster_id() {
        let file = MultiRingFile::local(ProtocolName::Mring, 3, 3, 1, 20_000, Vec::new()).unwrap();
        let ids: Vec<u32> = file.rings.iter().map(|r| r.cluster.cluster_id).collect();
        assert_eq!(ids, [100, 101, 102]);
        let groups: Vec<_> =
            file.rings.iter().map(|r| r.cluster.multicast.as_ref().unwrap().group).collect();
        assert!(groups[0] != groups[1] && groups[1] != groups[2]);
        assert_eq!(file.subscriptions(2), [0, 1, 2]);
    }
}
