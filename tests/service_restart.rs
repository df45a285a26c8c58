//! A replica of the key-value store killed and restarted under load, for every execution model:
//! three `ringsmr node` processes run a service file (each a replica and an acceptor of every
//! ring, logging with `storage = "sync"`), clients run a Zipfian mixed workload through the
//! client library, and one replica gets SIGKILL and is started again 2.5 s later. Process 0
//! coordinates every ring at first: killing it (SMR, opt-PSMR) also takes the rings through
//! coordinator failover.
//!
//! The test requires:
//! - the clients go on being answered while the replica is down (the two others serve);
//! - the restarted replica comes back: its acceptors from their logs, its store, client tables
//!   and place in every ring from the newest snapshot (the replicas checkpoint every 200 ms), the
//!   rest from the rings, so it answers a `checksum` command ordered after everything the
//!   clients sent;
//! - the three replicas' checksums at that command are equal;
//! - the clients' recorded history is linearizable (checked against the preloaded tree).
//!
//! The same for a replica paused (SIGSTOP) past what the acceptors keep for a laggard: when it
//! resumes, its learners find the instances they need trimmed, and it must come back from another
//! replica's newer snapshot by itself (`service::rejoin`), saying `rejoined` on its stdout.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use common::{BIN, Children, TempDir, free_ports_for_restarts, lines_of, three_node_cluster_toml};
use ringsmr::apps::kv::store::preloaded_value;
use ringsmr::apps::kv::workload::{KeyDist, Mix};
use ringsmr::service::ClientOptions;
use ringsmr::service::config::ServiceFile;
use ringsmr::service::kv_load::{KvLoad, KvLoadSpec, checksums};
use ringsmr::smr::{ExecModel, linearizability};

const PRELOAD_KEYS: u64 = 2_000;

/// A service file in `dir` for `model` with `workers`: one ring per group, each of the three
/// processes, logging with `sync` storage under `dir`; every process a replica. With
/// `retain_instances`, the acceptors keep that many decided instances for a lagging learner.
fn write_service(
    dir: &Path,
    model: ExecModel,
    workers: usize,
    retain_instances: Option<u64>,
) -> PathBuf {
    let retain = retain_instances.map(|n| format!("retain_instances = {n}\n")).unwrap_or_default();
    let groups = model.groups(model.lanes(workers)).len();
    // Per ring three nodes and a spare for the multicast port M-Ring would use; then the
    // replicas' client ports.
    let ports = free_ports_for_restarts(4 * groups + 3);
    let mut multiring = String::new();
    for ring in 0..groups {
        let p = &ports[4 * ring..4 * ring + 4];
        let toml = three_node_cluster_toml(80 + ring as u32, "uring", &p[..3], None, (0, p[3]))
            .replace(
                "ring = [0, 1, 2]\n",
                &format!(
                    "ring = [0, 1, 2]\nstorage = \"sync\"\ndata_dir = \"{}\"\n{retain}",
                    dir.join(format!("data-{ring}")).display()
                ),
            );
        std::fs::write(dir.join(format!("ring-{ring}.toml")), toml).unwrap();
        multiring += &format!("[[ring]]\nid = {ring}\ncluster = \"ring-{ring}.toml\"\n");
    }
    std::fs::write(dir.join("multiring.toml"), multiring).unwrap();
    let mut service = format!(
        "multiring = \"multiring.toml\"\nservice = \"kv\"\nexec = \"{}\"\nworkers = {workers}\n\
         preload_keys = {PRELOAD_KEYS}\ncheckpoint_interval_ms = 200\n",
        model.name()
    );
    for (process, port) in ports[4 * groups..].iter().enumerate() {
        service += &format!("[[replica]]\nprocess = {process}\nclients = \"127.0.0.1:{port}\"\n");
    }
    let path = dir.join("service.toml");
    std::fs::write(&path, service).unwrap();
    path
}

/// Starts process `id` of `file`; returns it with its stdout lines.
fn start(file: &Path, id: usize) -> (Child, Receiver<String>) {
    let mut child = std::process::Command::new(BIN)
        .args(["node", "--config"])
        .arg(file)
        .args(["--id", &id.to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("ringsmr node starts");
    let out = lines_of(child.stdout.take().unwrap());
    (child, out)
}

/// Waits for the line of `lines` that says the replica takes clients.
fn wait_ready(lines: &Receiver<String>, within: Duration) {
    wait_for(lines, "ready clients", within);
}

/// Waits for a line of `lines` that starts with `start`.
fn wait_for(lines: &Receiver<String>, start: &str, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        match lines.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(l) if l.starts_with(start) => return,
            Ok(_) => {}
            Err(RecvTimeoutError::Timeout) => panic!("no line \"{start}...\" within {within:?}"),
            Err(RecvTimeoutError::Disconnected) => panic!("the replica exited before \"{start}\""),
        }
    }
}

/// What happens to the victim.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Fault {
    /// SIGKILL, then started again 2.5 s later.
    Killed,
    /// SIGSTOP for 4 s, then SIGCONT: meanwhile the others checkpoint and the acceptors, which
    /// keep 500 decided instances for a laggard, trim their logs past everything it had
    /// learned, so it must come back from a newer snapshot.
    Paused,
}

fn replica_killed_and_restarted(model: ExecModel, workers: usize, victim: usize) {
    replica_through_a_fault(model, workers, victim, Fault::Killed);
}

fn replica_through_a_fault(model: ExecModel, workers: usize, victim: usize, fault: Fault) {
    let how = if fault == Fault::Killed { "killed" } else { "paused" };
    let what = format!("{} with {workers} workers, replica {victim} {how}", model.name());
    let dir = TempDir::new("service-restart");
    // Paused: the acceptors keep little for a laggard, so the pause outlasts it for certain.
    let retain = (fault == Fault::Paused).then_some(500);
    let file = write_service(dir.path(), model, workers, retain);
    let service = ServiceFile::load(&file).unwrap();
    let mut children = Children::default();
    let mut lines = Vec::new();
    for id in 0..3 {
        let (child, out) = start(&file, id);
        children.push(child);
        lines.push(out);
    }
    for l in &lines {
        wait_ready(l, Duration::from_secs(30));
    }

    let opts = ClientOptions::new(
        service.client_addresses(),
        service.model,
        service.workers,
        service.key_space(),
    );
    let spec = KvLoadSpec {
        mix: Mix::All { dependent_percent: 20.0 },
        keys: KeyDist::Zipf { exponent: 1.0 },
        preload_keys: PRELOAD_KEYS,
        clients: 3,
        window: 20,
        warmup: Duration::ZERO,
        record_history: true,
        ..KvLoadSpec::default()
    };
    let load = KvLoad::start(&spec, &opts).unwrap_or_else(|e| panic!("{what}: clients: {e}"));
    let ns = |t: Instant| t.duration_since(load.started_at()).as_nanos() as u64;
    std::thread::sleep(Duration::from_millis(1000));
    let killed_at = ns(Instant::now());
    match fault {
        Fault::Killed => {
            let mut child = children.0[victim].take().unwrap();
            child.kill().unwrap();
            child.wait().unwrap();
            // Long enough for the rings to elect new coordinators when the victim coordinated
            // them.
            std::thread::sleep(Duration::from_millis(2500));
        }
        Fault::Paused => {
            let pid = children.0[victim].as_ref().unwrap().id() as i32;
            let signal = |s| nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), s).unwrap();
            signal(nix::sys::signal::Signal::SIGSTOP);
            std::thread::sleep(Duration::from_millis(4000));
            signal(nix::sys::signal::Signal::SIGCONT);
        }
    }
    let restarted_at = ns(Instant::now());
    match fault {
        Fault::Killed => {
            let (child, out) = start(&file, victim);
            children.0[victim] = Some(child);
            wait_ready(&out, Duration::from_secs(30));
        }
        // It finds itself behind what the rings keep, and says so before it comes back.
        Fault::Paused => wait_for(&lines[victim], "rejoined", Duration::from_secs(30)),
    }
    std::thread::sleep(Duration::from_millis(1500));
    let report = load.stop().unwrap_or_else(|e| panic!("{what}: clients: {e}"));

    let answered = |from: u64, to: u64| {
        let within =
            |o: &&linearizability::Operation| o.returned.is_some_and(|(t, _)| t >= from && t < to);
        report.history.iter().filter(within).count()
    };
    let before = answered(0, killed_at);
    let while_down = answered(killed_at, restarted_at);
    let after = answered(restarted_at, u64::MAX);
    eprintln!("{what}: answered {before} before, {while_down} while down, {after} after");
    assert!(before > 100, "{what}: {before} commands answered before the kill");
    assert!(while_down > 100, "{what}: {while_down} commands answered while a replica was down");
    assert!(after > 100, "{what}: {after} commands answered after the restart");

    // The restarted replica must execute the whole order again to answer this one.
    let sums = checksums(&opts, Duration::from_secs(60))
        .unwrap_or_else(|e| panic!("{what}: checksums: {e}"));
    assert_eq!(sums.len(), 3);
    assert!(sums.windows(2).all(|w| w[0] == w[1]), "{what}: replicas differ: {sums:x?}");

    let preloaded = |k: u64| preloaded_value(PRELOAD_KEYS, k);
    if let Err(e) = linearizability::check_from(&report.history, preloaded) {
        panic!("{what}: not linearizable on key {}: {:?}", e.key, e.operations);
    }
    if model == ExecModel::OptPsmr {
        assert!(report.conflicts > 0, "{what}: no command met a conflict");
    }
}

#[test]
fn smr_replica_killed_and_restarted() {
    replica_killed_and_restarted(ExecModel::Smr, 1, 0);
}

#[test]
fn spsmr_replica_killed_and_restarted() {
    replica_killed_and_restarted(ExecModel::SpSmr, 2, 1);
}

#[test]
fn psmr_replica_killed_and_restarted() {
    replica_killed_and_restarted(ExecModel::Psmr, 2, 2);
}

#[test]
fn opt_psmr_replica_killed_and_restarted() {
    replica_killed_and_restarted(ExecModel::OptPsmr, 2, 0);
}

#[test]
fn smr_replica_paused_past_what_the_rings_keep_rejoins() {
    replica_through_a_fault(ExecModel::Smr, 1, 2, Fault::Paused);
}

#[test]
fn psmr_replica_paused_past_what_the_rings_keep_rejoins() {
    replica_through_a_fault(ExecModel::Psmr, 2, 1, Fault::Paused);
}
