//! The service file: a replicated service over a Multi-Ring deployment, which `ringsmr node`
//! runs one process of and `ringsmr bench` loads with clients (thesis 6.3.2: replicas, each with
//! its workers, and clients that reach every replica).
//!
//! ```toml
//! multiring = "multiring.toml"  # the Multi-Ring file (relative to this file)
//! service = "kv"                # the thesis' B+-tree key-value store (6.5.2)
//! exec = "psmr"                 # smr, spsmr, psmr or opt-psmr
//! workers = 2                   # MPL (SMR runs one worker whatever this says)
//! preload_keys = 1000000        # every replica starts with the even keys below 2N
//! checkpoint_interval_ms = 5000 # how often each replica requests a checkpoint (0: never)
//!
//! [[replica]]
//! process = 0                   # a process of the Multi-Ring file
//! clients = "127.0.0.1:7400"    # where its clients connect
//! snapshots = "127.0.0.1:8400"  # optional: where it serves its snapshot (default: clients + 1000)
//! snapshot_dir = "replica-0"    # optional: where it keeps it (default: replica-<process>,
//!                               # relative to this file)
//! ```
//!
//! With checkpoints a restarted replica goes on from the newest snapshot of its own and the other
//! replicas' (`service::snapshot`); without, it must learn every ring from its first instance,
//! which the acceptors keep only while it fits their retention.
//!
//! The Multi-Ring file must have the groups the model orders through (`ExecModel::groups`:
//! group 0 is g_all, group i + 1 worker i's g_i), and every replica must be a proposer (its
//! front multicasts what clients send) and a learner in each of their rings. Processes of the
//! Multi-Ring file that are not replicas only order: `ringsmr node` runs them as their rings'
//! cluster files say, without a service.
//!
//! C-G follows from the model, the workers and the key space, so clients and replicas that read
//! the same file map every command alike. Unknown keys are refused and every refusal names the
//! field, as with the other files.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::apps::kv::workload::key_space;
use crate::multiring::{MultiRingFile, ProcessId};
use crate::node::{ClusterFileError, Role};
use crate::smr::ExecModel;
use crate::smr::cdep::MPL_MAX;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    multiring: PathBuf,
    service: String,
    exec: String,
    #[serde(default = "default_workers")]
    workers: usize,
    #[serde(default = "default_preload")]
    preload_keys: u64,
    #[serde(default = "default_checkpoint_interval")]
    checkpoint_interval_ms: u64,
    #[serde(rename = "replica")]
    replicas: Vec<ReplicaEntry>,
}

fn default_checkpoint_interval() -> u64 {
    5_000
}

fn default_workers() -> usize {
    2
}
fn default_preload() -> u64 {
    1_000_000
}

/// One replica: the process that runs it and its clients' endpoint.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplicaEntry {
    pub process: ProcessId,
    pub clients: SocketAddr,
    #[serde(default)]
    pub snapshots: Option<SocketAddr>,
    #[serde(default)]
    pub snapshot_dir: Option<PathBuf>,
}

impl ReplicaEntry {
    /// Where the replica serves its snapshot: as the file says, else its clients' port + 1000.
    pub fn snapshots_address(&self) -> Option<SocketAddr> {
        self.snapshots.or_else(|| {
            let port = self.clients.port().checked_add(1000)?;
            Some(SocketAddr::new(self.clients.ip(), port))
        })
    }
}

/// A validated service file.
#[derive(Clone, Debug)]
pub struct ServiceFile {
    pub multiring: MultiRingFile,
    /// Where the Multi-Ring file is (processes that are not replicas run it as it is).
    pub multiring_path: PathBuf,
    pub model: ExecModel,
    pub workers: usize,
    pub preload_keys: u64,
    /// 0: no checkpoints.
    pub checkpoint_interval_ms: u64,
    pub replicas: Vec<ReplicaEntry>,
}

fn invalid<T>(field: impl Into<String>, reason: impl Into<String>) -> Result<T, ClusterFileError> {
    Err(ClusterFileError::Invalid { field: field.into(), reason: reason.into() })
}

impl ServiceFile {
    /// Reads and validates `path` and the Multi-Ring file it names.
    pub fn load(path: &Path) -> Result<ServiceFile, ClusterFileError> {
        let text = std::fs::read_to_string(path).map_err(|source| ClusterFileError::Read {
            path: path.display().to_string(),
            source,
        })?;
        let raw: RawFile = toml::from_str(&text)?;
        let multiring_path = path.parent().unwrap_or(Path::new(".")).join(&raw.multiring);
        let multiring = MultiRingFile::load(&multiring_path).map_err(|e| match e {
            ClusterFileError::Invalid { field, reason } => ClusterFileError::Invalid {
                field: format!("multiring ({}): {field}", multiring_path.display()),
                reason,
            },
            other => {
                ClusterFileError::Invalid { field: "multiring".into(), reason: other.to_string() }
            }
        })?;
        if raw.service != "kv" {
            return invalid("service", format!("is `{}`: the one service is `kv`", raw.service));
        }
        let Some(model) = ExecModel::parse(&raw.exec) else {
            return invalid("exec", format!("is `{}`: smr, spsmr, psmr or opt-psmr", raw.exec));
        };
        let base = path.parent().unwrap_or(Path::new("."));
        let mut replicas = raw.replicas;
        for r in &mut replicas {
            let dir =
                r.snapshot_dir.take().unwrap_or_else(|| format!("replica-{}", r.process).into());
            r.snapshot_dir = Some(base.join(dir));
        }
        let mut file = ServiceFile::new(multiring, model, raw.workers, raw.preload_keys, replicas)?;
        file.multiring_path = multiring_path;
        file.checkpoint_interval_ms = raw.checkpoint_interval_ms;
        Ok(file)
    }

    /// Validates the parts (see the module docs); `multiring_path` is left empty.
    pub fn new(
        multiring: MultiRingFile,
        model: ExecModel,
        workers: usize,
        preload_keys: u64,
        replicas: Vec<ReplicaEntry>,
    ) -> Result<ServiceFile, ClusterFileError> {
        if !(1..=MPL_MAX).contains(&workers) {
            return invalid("workers", format!("is {workers}: from 1 to {MPL_MAX}"));
        }
        if preload_keys == 0 || preload_keys > u64::MAX / 4 {
            return invalid("preload_keys", "must be positive and below 2^62");
        }
        if replicas.is_empty() {
            return invalid("replica", "names no replica: a service needs at least one");
        }
        let groups = model.groups(model.lanes(workers));
        for (i, r) in replicas.iter().enumerate() {
            if replicas[..i].iter().any(|o| o.process == r.process) {
                return invalid(format!("replica[{i}].process"), "names a process twice");
            }
            if replicas[..i].iter().any(|o| o.clients == r.clients) {
                return invalid(format!("replica[{i}].clients"), "is another replica's too");
            }
            let Some(snapshots) = r.snapshots_address() else {
                return invalid(
                    format!("replica[{i}].snapshots"),
                    "is needed: clients + 1000 is no port",
                );
            };
            let endpoints = |o: &ReplicaEntry| [Some(o.clients), o.snapshots_address()];
            if snapshots == r.clients
                || replicas[..i].iter().any(|o| endpoints(o).contains(&Some(snapshots)))
            {
                return invalid(format!("replica[{i}].snapshots"), "is another endpoint's too");
            }
            if !multiring.processes().contains(&r.process) {
                return invalid(
                    format!("replica[{i}].process"),
                    format!("is {}, which no ring of the Multi-Ring file names", r.process),
                );
            }
        }
        for &g in &groups {
            let Some(entry) = multiring.group(g) else {
                return invalid(
                    "multiring",
                    format!(
                        "has no group {g}, which {} with {workers} workers orders through",
                        model.name()
                    ),
                );
            };
            let ring = multiring.ring(entry.ring).expect("a validated group's ring exists");
            for (i, r) in replicas.iter().enumerate() {
                let roles = ring
                    .node_of(r.process)
                    .and_then(|n| ring.cluster.nodes.get(usize::from(n)))
                    .map(|n| n.roles.clone())
                    .unwrap_or_default();
                if !roles.contains(&Role::Proposer) || !roles.contains(&Role::Learner) {
                    return invalid(
                        format!("replica[{i}].process"),
                        format!(
                            "is process {}, which is not a proposer and learner of ring {} \
                             (group {g}): a replica multicasts to and delivers every group it \
                             executes",
                            r.process, ring.id
                        ),
                    );
                }
            }
        }
        let multiring_path = PathBuf::new();
        let checkpoint_interval_ms = default_checkpoint_interval();
        Ok(ServiceFile {
            multiring,
            multiring_path,
            model,
            workers,
            preload_keys,
            checkpoint_interval_ms,
            replicas,
        })
    }

    /// The keys C-G splits among the workers: twice the preloaded ones, as the workload draws.
    pub fn key_space(&self) -> u64 {
        key_space(self.preload_keys)
    }

    /// The replica process `process` runs, if any.
    pub fn replica(&self, process: ProcessId) -> Option<&ReplicaEntry> {
        self.replicas.iter().find(|r| r.process == process)
    }

    /// Every replica's clients' endpoint, in the file's order.
    pub fn client_addresses(&self) -> Vec<SocketAddr> {
        self.replicas.iter().map(|r| r.clients).collect()
    }
}

/// Whether `path` is a service file (it names a `multiring` file) rather than a cluster or
/// Multi-Ring file.
pub fn is_service_file(path: &Path) -> Result<bool, ClusterFileError> {
    let text = std::fs::read_to_string(path)
        .map_err(|source| ClusterFileError::Read { path: path.display().to_string(), source })?;
    let doc: toml::Table = toml::from_str(&text)?;
    Ok(doc.contains_key("multiring"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::temp_dir::TempDir;

    /// A Multi-Ring file of `rings` rings of three processes (groups 0.. one per ring) in `dir`.
    fn multiring(dir: &Path, rings: u32, roles: &str) {
        std::fs::create_dir_all(dir).unwrap();
        let mut multi = String::new();
        for r in 0..rings {
            let mut c =
                format!("cluster_id = {}\nprotocol = \"uring\"\nf = 1\nring = [0, 1, 2]\n", 40 + r);
            for n in 0..3 {
                let port = 21_000 + 10 * r + n;
                c += &format!(
                    "[[node]]\nid = {n}\naddress = \"127.0.0.1:{port}\"\nroles = {roles}\n"
                );
            }
            std::fs::write(dir.join(format!("ring-{r}.toml")), c).unwrap();
            multi += &format!("[[ring]]\nid = {r}\ncluster = \"ring-{r}.toml\"\n");
        }
        std::fs::write(dir.join("multiring.toml"), multi).unwrap();
    }

    const ALL_ROLES: &str = "[\"acceptor\", \"proposer\", \"learner\"]";

    fn service(dir: &Path, body: &str) -> Result<ServiceFile, ClusterFileError> {
        let path = dir.join("service.toml");
        std::fs::write(&path, format!("multiring = \"multiring.toml\"\n{body}")).unwrap();
        ServiceFile::load(&path)
    }

    const REPLICAS: &str = "[[replica]]\nprocess = 0\nclients = \"127.0.0.1:7400\"\n\
                            [[replica]]\nprocess = 1\nclients = \"127.0.0.1:7401\"\n";

    #[test]
    fn a_good_file_loads() {
        let dir = TempDir::new("service-file");
        multiring(dir.path(), 3, ALL_ROLES);
        let f =
            service(dir.path(), &format!("service = \"kv\"\nexec = \"psmr\"\n{REPLICAS}")).unwrap();
        assert_eq!((f.model, f.workers, f.key_space()), (ExecModel::Psmr, 2, 2_000_000));
        assert_eq!(f.replica(1).unwrap().clients.port(), 7401);
        assert!(f.replica(2).is_none());
        assert!(is_service_file(&dir.path().join("service.toml")).unwrap());
        assert!(!is_service_file(&dir.path().join("multiring.toml")).unwrap());
    }

    #[test]
    fn every_refusal_names_its_field() {
        let dir = TempDir::new("service-file-bad");
        multiring(dir.path(), 2, ALL_ROLES);
        let refusal = |body: &str| service(dir.path(), body).unwrap_err().to_string();
        let cases = [
            (format!("service = \"sql\"\nexec = \"smr\"\n{REPLICAS}"), "`service`"),
            (format!("service = \"kv\"\nexec = \"fast\"\n{REPLICAS}"), "`exec`"),
            (format!("service = \"kv\"\nexec = \"smr\"\nworkers = 0\n{REPLICAS}"), "`workers`"),
            ("service = \"kv\"\nexec = \"smr\"\n".to_string(), "replica"),
            (
                format!("service = \"kv\"\nexec = \"smr\"\npreload_keys = 0\n{REPLICAS}"),
                "`preload_keys`",
            ),
            // Two rings: groups 0 and 1, but P-SMR with 2 workers needs group 2 as well.
            (format!("service = \"kv\"\nexec = \"psmr\"\n{REPLICAS}"), "has no group 2"),
            (
                "service = \"kv\"\nexec = \"smr\"\n[[replica]]\nprocess = 7\nclients = \
                 \"127.0.0.1:1\"\n"
                    .to_string(),
                "`replica[0].process`",
            ),
            (
                "service = \"kv\"\nexec = \"smr\"\n[[replica]]\nprocess = 0\nclients = \
                 \"127.0.0.1:1\"\n[[replica]]\nprocess = 1\nclients = \"127.0.0.1:1\"\n"
                    .to_string(),
                "`replica[1].clients`",
            ),
            (format!("service = \"kv\"\nexec = \"smr\"\nspeed = 1\n{REPLICAS}"), "speed"),
        ];
        for (body, field) in cases {
            let e = refusal(&body);
            assert!(e.contains(field), "{field} not named in: {e}");
        }
    }

    #[test]
    fn a_replica_must_propose_and_learn_in_its_rings() {
        let dir = TempDir::new("service-file-roles");
        multiring(dir.path(), 1, "[\"acceptor\"]");
        let e = service(dir.path(), &format!("service = \"kv\"\nexec = \"smr\"\n{REPLICAS}"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("`replica[0].process`") && e.contains("proposer and learner"), "{e}");
    }
}
