//! Integration tier for Recoverable Ring Paxos: real `ringsmr node` processes whose acceptors log
//! with `storage = "sync"`.
//!
//! - An acceptor killed with SIGKILL under load comes back from its log: it reads back the promise
//!   and votes it wrote, and serves as an acceptor again. That it serves is shown by killing a
//!   second acceptor afterwards: of three, only the restarted one and the survivor are left, so the
//!   cluster decides anything more only if the restarted acceptor takes part in the majority.
//! - A learner killed with SIGKILL under load and started again from its snapshot delivers the rest
//!   of the stream: at the same count of values, its stream's checksum (the snapshot's, then every
//!   value after it) equals the checksums of the learners that never stopped.
//! - A learner stopped while the others run far past what the acceptors keep comes back by state
//!   transfer, twice: once resumed with SIGCONT, once restarted after SIGKILL, each time from a
//!   snapshot another learner serves, and ends with the others' checksum.
//! - The one-minute kill loop of issue 4.

mod common;

use std::process::{Child, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use common::{BIN, Children, TempDir, free_ports_for_restarts, lines_of, three_node_cluster_toml};

/// More than any of the processes proposes before the test ends.
const PROPOSE: u64 = 10_000_000;

/// Starts node `id` of the cluster file `file` with `args` more (proposing [`PROPOSE`] values
/// unless they say `--propose`); returns it with its stdout lines, and its stderr lines when
/// `read_stderr` (otherwise they go to the test's).
fn start(
    file: &std::path::Path,
    id: usize,
    args: &[String],
    read_stderr: bool,
) -> (Child, Receiver<String>, Option<Receiver<String>>) {
    let propose = if args.iter().any(|a| a == "--propose") {
        vec![]
    } else {
        vec!["--propose".to_string(), PROPOSE.to_string()]
    };
    let mut child = std::process::Command::new(BIN)
        .args(["node", "--config"])
        .arg(file)
        .args(["--id", &id.to_string()])
        .args(propose)
        .args(["--progress-ms", "20"])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(if read_stderr { Stdio::piped() } else { Stdio::inherit() })
        .spawn()
        .expect("ringsmr node starts");
    let out = lines_of(child.stdout.take().unwrap());
    let err = child.stderr.take().map(lines_of);
    (child, out, err)
}

/// The first line of `lines` that contains `what`, within `timeout`.
fn wait_for(lines: &Receiver<String>, what: &str, timeout: Duration) -> String {
    let deadline = Instant::now() + timeout;
    loop {
        match lines.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(l) if l.contains(what) => return l,
            Ok(l) if !l.starts_with("progress") => eprintln!("  {l}"),
            Ok(_) => {}
            Err(RecvTimeoutError::Timeout) => panic!("no line with `{what}` within {timeout:?}"),
            Err(RecvTimeoutError::Disconnected) => panic!("the process exited before `{what}`"),
        }
    }
}

/// The first lines of `lines` that contain each of `what`, in whatever order they come, within
/// `timeout` (lines that different threads of a process print may come in either order).
fn wait_for_each(lines: &Receiver<String>, what: &[&str], timeout: Duration) -> Vec<String> {
    let deadline = Instant::now() + timeout;
    let mut found: Vec<Option<String>> = vec![None; what.len()];
    while found.iter().any(Option::is_none) {
        let left = deadline.saturating_duration_since(Instant::now());
        match lines.recv_timeout(left) {
            Ok(l) => {
                match what.iter().zip(&mut found).find(|(w, f)| f.is_none() && l.contains(**w)) {
                    Some((_, f)) => *f = Some(l),
                    None if !l.starts_with("progress") => eprintln!("  {l}"),
                    None => {}
                }
            }
            Err(RecvTimeoutError::Timeout) => panic!("not all of {what:?} within {timeout:?}"),
            Err(RecvTimeoutError::Disconnected) => panic!("the process exited before {what:?}"),
        }
    }
    found.into_iter().flatten().collect()
}

/// The number of values in the next `progress N checksum X` line.
fn progress(lines: &Receiver<String>) -> u64 {
    let line = wait_for(lines, "progress", Duration::from_secs(20));
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// Waits until node 0 has delivered `more` values beyond what it had when called (lines printed
/// before the call are skipped: they tell of the past).
fn delivers_more(lines: &Receiver<String>, more: u64, within: Duration) -> Duration {
    while lines.try_recv().is_ok() {}
    let start = progress(lines);
    let t0 = Instant::now();
    while progress(lines) < start + more {
        assert!(t0.elapsed() < within, "node 0 delivered fewer than {more} values in {within:?}");
    }
    t0.elapsed()
}

/// A 3-node U-Ring cluster file in `dir` whose acceptors log with `sync` storage under `dir`.
fn sync_cluster(dir: &TempDir, cluster_id: u32) -> std::path::PathBuf {
    sync_cluster_retaining(dir, cluster_id, 100_000)
}

/// [`sync_cluster`], whose acceptors keep at most `retain` decided instances for laggards.
fn sync_cluster_retaining(dir: &TempDir, cluster_id: u32, retain: u64) -> std::path::PathBuf {
    let ports = free_ports_for_restarts(4);
    let toml = three_node_cluster_toml(cluster_id, "uring", &ports[..3], None, (8, ports[3]))
        .replace(
            "ring = [0, 1, 2]\n",
            &format!(
                "ring = [0, 1, 2]\nstorage = \"sync\"\ndata_dir = \"{}\"\nretain_instances = \
                 {retain}\n",
                dir.path().join("data").display()
            ),
        );
    let file = dir.path().join("cluster.toml");
    std::fs::write(&file, toml).unwrap();
    file
}

/// Sends `signal` to the process in `children`' slot `id`.
fn signal(children: &Children, id: usize, signal: nix::sys::signal::Signal) {
    let pid = children.0[id].as_ref().unwrap().id();
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), signal).unwrap();
}

/// The instance and the count of values of a `state restored from the snapshot at instance V (N
/// values)` line.
fn restored_at(line: &str) -> (u64, u64) {
    let after = |key: &str| -> u64 {
        let rest = line.split(key).nth(1).unwrap_or_else(|| panic!("no `{key}` in: {line}"));
        rest.trim_start_matches('(').split(' ').next().unwrap().parse().unwrap()
    };
    (after("at instance "), after(" ("))
}

/// SIGKILLs the process in `children`' slot `id` and reaps it.
fn kill(children: &mut Children, id: usize) {
    let mut child = children.0[id].take().unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn an_acceptor_killed_under_load_comes_back_from_its_log_and_serves_again() {
    let dir = TempDir::new("recovery");
    let file = sync_cluster(&dir, 43);
    let mut children = Children::default();
    let mut stdout = Vec::new();
    for id in 0..3 {
        let (child, out, _) = start(&file, id, &[], false);
        children.push(child);
        stdout.push(out);
    }
    // Under load: node 0 (the coordinator) delivers.
    delivers_more(&stdout[0], 20_000, Duration::from_secs(30));

    // SIGKILL node 2 and start it again on the same log.
    kill(&mut children, 2);
    let (child, _out, err) = start(&file, 2, &[], true);
    children.0[2] = Some(child);
    let err = err.unwrap();
    let read_back = wait_for(&err, "records read back", Duration::from_secs(10));
    // What node 2 says from now on goes to the test's stderr, as the others' does.
    std::thread::spawn(move || err.iter().for_each(|l| eprintln!("{l}")));
    let records: u64 = read_back
        .split(": ")
        .find_map(|part| {
            part.split_whitespace().next()?.parse().ok().filter(|_| part.contains("records"))
        })
        .expect("the line counts the records");
    assert!(records > 0, "{read_back}");
    eprintln!("{read_back}");

    // Give the coordinator time to take node 2 back onto the ring, then kill node 1: from now on
    // a majority is node 0 and the restarted node 2.
    delivers_more(&stdout[0], 20_000, Duration::from_secs(30));
    std::thread::sleep(Duration::from_millis(500));
    kill(&mut children, 1);
    // Beyond the window the old ring had open (32 instances of at most 399 values of 64 bytes),
    // every value was decided with node 2's vote.
    let took = delivers_more(&stdout[0], 3 * 32 * 399, Duration::from_secs(20));
    eprintln!("with node 1 down, node 0 delivered again within {took:?}");
    drop(children);
}

#[test]
fn a_learner_killed_under_load_resumes_from_its_checkpoint_with_the_same_stream() {
    const EXPECT: u64 = 1_500_000;
    let dir = TempDir::new("checkpoint");
    let file = sync_cluster(&dir, 44);
    let args = |_: usize| {
        ["--expect", &EXPECT.to_string(), "--checkpoint-every", "100"].map(String::from).to_vec()
    };
    let mut children = Children::default();
    let mut stdout = Vec::new();
    for id in 0..3 {
        let (child, out, _) = start(&file, id, &args(id), false);
        children.push(child);
        stdout.push(out);
    }
    // Kill node 2 a good way into the run, after its first checkpoints, well before EXPECT.
    delivers_more(&stdout[2], EXPECT / 4, Duration::from_secs(60));
    kill(&mut children, 2);
    let (child, out, err) = start(&file, 2, &args(2), true);
    children.0[2] = Some(child);
    stdout[2] = out;
    let err = err.unwrap();
    let resumed = wait_for(&err, "restored from the snapshot", Duration::from_secs(10));
    eprintln!("{resumed}");
    std::thread::spawn(move || err.iter().for_each(|l| eprintln!("{l}")));
    let at: u64 =
        resumed.split("at instance ").nth(1).unwrap().split(' ').next().unwrap().parse().unwrap();
    assert!(at > 0, "{resumed}");
    // Every learner's checksum at EXPECT values: the restarted one's must be the same.
    let delivered: Vec<String> =
        stdout.iter().map(|lines| wait_for(lines, "delivered", Duration::from_secs(60))).collect();
    assert!(delivered.iter().all(|l| l == &delivered[0]), "learners diverge: {delivered:?}");
    drop(children);
}

/// Issue 4's state-transfer line. Acceptors keep 100 decided instances for laggards; nodes 0 and 1
/// propose 8,000,000 values each as fast as the cluster takes them, node 2 only learns, and every
/// learner stores a snapshot every 20 instances.
///
/// 1. Node 2 is stopped (SIGSTOP) while the others deliver 2,000,000 more values, some 50 times
///    what the acceptors keep; resumed (SIGCONT), it is turned away by every acceptor, fetches a
///    snapshot from a learner that is ahead, installs it, and delivers again, keeping up with the
///    load from then on.
/// 2. Node 2 is killed (SIGKILL) while the others deliver 2,000,000 more, then started again: it
///    resumes from its own snapshot (the one it fetched or stored since), is behind the trim
///    point again, and comes back by state transfer again.
///
/// At the end every learner prints its checksum at the same count of values, the whole stream:
/// they must be equal.
#[test]
fn a_learner_stopped_while_the_others_run_far_past_the_trim_point_comes_back_by_state_transfer() {
    use nix::sys::signal::Signal;
    const EACH: u64 = 8_000_000;
    const FAR: u64 = 2_000_000;
    let dir = TempDir::new("state-transfer");
    let file = sync_cluster_retaining(&dir, 46, 100);
    let args = |id: usize| {
        let propose = if id == 2 { 0 } else { EACH };
        [
            "--propose",
            &propose.to_string(),
            "--expect",
            &(2 * EACH).to_string(),
            "--checkpoint-every",
            "20",
        ]
        .map(String::from)
        .to_vec()
    };
    let mut children = Children::default();
    let mut stdout = Vec::new();
    let mut node2_err = None;
    for id in 0..3 {
        let (child, out, err) = start(&file, id, &args(id), id == 2);
        children.push(child);
        stdout.push(out);
        node2_err = node2_err.or(err);
    }
    let mut err = node2_err.unwrap();
    delivers_more(&stdout[2], 100_000, Duration::from_secs(30));
    let first = wait_for(&stdout[2], "progress", Duration::from_secs(5));
    eprintln!("node 2 before it stops: {first}");

    // 1. Stopped while the others run on, then resumed.
    signal(&children, 2, Signal::SIGSTOP);
    let stopped_at = progress(&stdout[0]);
    delivers_more(&stdout[0], FAR, Duration::from_secs(60));
    signal(&children, 2, Signal::SIGCONT);
    let transfer =
        ["needs state transfer", "installing a snapshot", "state restored from the snapshot"];
    let said = wait_for_each(&err, &transfer, Duration::from_secs(30));
    eprintln!("{said:#?}");
    let (_, values) = restored_at(&said[2]);
    assert!(
        values >= stopped_at + FAR / 2,
        "the snapshot ({values} values) is from far past where node 2 stopped ({stopped_at})"
    );
    // It delivers again, from the acceptors, after the snapshot.
    delivers_more(&stdout[2], 50_000, Duration::from_secs(30));

    // 2. Killed while the others run on, then started again.
    kill(&mut children, 2);
    delivers_more(&stdout[0], FAR, Duration::from_secs(60));
    let (child, out, restart_err) = start(&file, 2, &args(2), true);
    children.0[2] = Some(child);
    stdout[2] = out;
    err = restart_err.unwrap();
    let own = wait_for(&err, "state restored from the snapshot", Duration::from_secs(10));
    eprintln!("{own}");
    let said = wait_for_each(&err, &transfer, Duration::from_secs(30));
    eprintln!("{said:#?}");
    let restored = &said[2];
    assert!(restored_at(restored).1 >= restored_at(&own).1 + FAR / 2, "{own} / {restored}");
    std::thread::spawn(move || err.iter().for_each(|l| eprintln!("{l}")));

    // The whole stream, everywhere: the same checksum at the same count.
    let delivered: Vec<String> =
        stdout.iter().map(|lines| wait_for(lines, "delivered", Duration::from_secs(90))).collect();
    eprintln!("{delivered:?}");
    assert!(delivered.iter().all(|l| l == &delivered[0]), "learners diverge: {delivered:?}");
    drop(children);
}

/// The `at N checksum X` lines of every process (and every incarnation of it) so far.
#[derive(Default)]
struct StreamChecks {
    /// The checksum first printed at each multiple, and by whom.
    at: std::collections::BTreeMap<u64, (String, String)>,
    /// Lines that disagree with the first one at their multiple.
    conflicts: Vec<String>,
    /// The highest multiple each process printed (any incarnation).
    highest: [u64; 3],
}

impl StreamChecks {
    fn absorb(&mut self, id: usize, incarnation: usize, lines: &Receiver<String>) {
        while let Ok(line) = lines.try_recv() {
            let w: Vec<&str> = line.split_whitespace().collect();
            if w.first() != Some(&"at") {
                continue;
            }
            let n: u64 = w[1].parse().unwrap();
            let who = format!("node {id} (start {incarnation})");
            self.highest[id] = self.highest[id].max(n);
            match self.at.get(&n) {
                Some((sum, first)) if sum != w[3] => self
                    .conflicts
                    .push(format!("at {n} values: {who} has {}, {first} had {sum}", w[3])),
                Some(_) => {}
                None => {
                    self.at.insert(n, (w[3].to_string(), who));
                }
            }
        }
    }
}

/// Issue 4's durability run: under load (every process proposes as fast as the cluster takes
/// values), with `sync` storage, a random node is killed with SIGKILL every 2–3 s for 60 s and
/// started again at once, from its acceptor log and its learner snapshot (or, when the acceptors
/// trimmed past it meanwhile, from a snapshot another learner serves). Every learner, each of its
/// restarts included, prints its delivered stream's checksum at every multiple of `CHECK` values:
/// wherever two of them printed one, they must agree (so no learner lost, reordered or invented a
/// value, acknowledged or not), and after the kills every learner must go on past the point the
/// stream had reached when they ended.
#[test]
fn a_random_node_killed_every_few_seconds_for_a_minute_loses_nothing() {
    const KILLING_FOR: Duration = Duration::from_secs(60);
    const CHECK: u64 = 5_000;
    let dir = TempDir::new("kill-loop");
    let file = sync_cluster(&dir, 45);
    let args = |_: usize| {
        ["--checksum-every", &CHECK.to_string(), "--checkpoint-every", "50"]
            .map(String::from)
            .to_vec()
    };
    let mut children = Children::default();
    let mut stdout = Vec::new();
    let mut starts = [0usize; 3];
    for id in 0..3 {
        let (child, out, err) = start(&file, id, &args(id), true);
        let err = err.unwrap();
        std::thread::spawn(move || err.iter().for_each(|l| eprintln!("{l}")));
        children.push(child);
        stdout.push(out);
    }
    let mut checks = StreamChecks::default();
    // A small generator of our own: which node, and when, differ from run to run.
    let mut seed = u64::from(std::process::id()) ^ 0x9E37_79B9_7F4A_7C15;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let began = Instant::now();
    let mut kills = 0;
    while began.elapsed() < KILLING_FOR {
        let pause = Duration::from_millis(2_000 + next() % 1_000);
        let until = Instant::now() + pause;
        while Instant::now() < until {
            for id in 0..3 {
                checks.absorb(id, starts[id], &stdout[id]);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let victim = (next() % 3) as usize;
        kill(&mut children, victim);
        checks.absorb(victim, starts[victim], &stdout[victim]);
        let (child, out, err) = start(&file, victim, &args(victim), true);
        let err = err.unwrap();
        std::thread::spawn(move || err.iter().for_each(|l| eprintln!("{l}")));
        children.0[victim] = Some(child);
        stdout[victim] = out;
        starts[victim] += 1;
        kills += 1;
        eprintln!("kill {kills}: node {victim} at {:?}", began.elapsed());
    }
    // Every learner goes on past where the stream was when the kills ended.
    let reached = checks.highest.iter().copied().max().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while checks.highest.iter().any(|&h| h < reached + CHECK) {
        assert!(
            Instant::now() < deadline,
            "learners did not all pass {} values within 60 s of the last kill: {:?}",
            reached + CHECK,
            checks.highest
        );
        for id in 0..3 {
            checks.absorb(id, starts[id], &stdout[id]);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    eprintln!(
        "{kills} kills; {} multiples of {CHECK} values checked, up to {}",
        checks.at.len(),
        checks.highest.iter().max().unwrap()
    );
    assert!(checks.conflicts.is_empty(), "learners diverge: {:#?}", checks.conflicts);
    assert!(kills >= 20, "only {kills} kills");
    drop(children);
}
