//! Integration tier for Multi-Ring Paxos: real `ringsmr node` processes on loopback running a
//! Multi-Ring file.
//!
//! - Three processes take part in two rings (one group each) and subscribe to both; together they
//!   multicast 100,000 messages, alternating groups. Every process must deliver all of them in the
//!   same merged order (checksum of each process' merged stream), on both I/O backends.
//! - A ring whose coordinator is lost (SIGSTOP) stalls the merged delivery of a learner of both
//!   rings only until the ring has a new coordinator (5.4.7), which makes up for the instances
//!   the ring missed with skips; then the learner delivers everything.

mod common;

use std::process::Stdio;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use common::{BIN, Children, TempDir, free_ports, lines_of, three_node_cluster_toml};

const MESSAGES: u64 = 100_000;

/// Writes two rings' cluster files and the Multi-Ring file naming them; returns the latter.
fn write_files(dir: &std::path::Path) -> std::path::PathBuf {
    let ports = free_ports(8);
    for ring in 0..2 {
        let p = &ports[4 * ring..4 * ring + 4];
        let toml = three_node_cluster_toml(60 + ring as u32, "uring", &p[..3], None, (0, p[3]));
        std::fs::write(dir.join(format!("ring-{ring}.toml")), toml).unwrap();
    }
    let multi = dir.join("multiring.toml");
    std::fs::write(
        &multi,
        "lambda_instances = 20\ndelta_us = 1000\n\
         [[ring]]\nid = 0\ncluster = \"ring-0.toml\"\n\
         [[ring]]\nid = 1\ncluster = \"ring-1.toml\"\n",
    )
    .unwrap();
    multi
}

fn wait_delivered(lines: &Receiver<String>, process: usize, timeout: Duration) -> String {
    let deadline = Instant::now() + timeout;
    loop {
        match lines.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(l) if l.starts_with("delivered") => return l,
            Ok(_) => {}
            Err(RecvTimeoutError::Timeout) => {
                panic!("process {process}: nothing delivered within {timeout:?}")
            }
            Err(RecvTimeoutError::Disconnected) => panic!("process {process} exited early"),
        }
    }
}

fn identical_merged_order(backend: &str) {
    let dir = TempDir::new(&format!("multiring-{backend}"));
    let multi = write_files(dir.path());
    let mut children = Children::default();
    let mut lines = Vec::new();
    let third = MESSAGES / 3;
    for (p, propose) in [third, third, MESSAGES - 2 * third].iter().enumerate() {
        let mut cmd = std::process::Command::new(BIN);
        cmd.args(["node", "--config"])
            .arg(&multi)
            .args(["--id", &p.to_string(), "--propose", &propose.to_string()])
            .args(["--expect", &MESSAGES.to_string()])
            .env("RINGSMR_IO", backend)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let mut child = cmd.spawn().expect("ringsmr node starts");
        lines.push(lines_of(child.stdout.take().unwrap()));
        children.push(child);
    }
    let got: Vec<String> = lines
        .iter()
        .enumerate()
        .map(|(p, l)| wait_delivered(l, p, Duration::from_secs(120)))
        .collect();
    let expected_count = format!("delivered {MESSAGES} ");
    assert!(got.iter().all(|l| l.starts_with(&expected_count)), "{got:?}");
    assert!(got.iter().all(|l| *l == got[0]), "merged orders differ: {got:?}");
    drop(children);
}

#[test]
fn two_rings_three_processes_identical_merged_order_epoll() {
    identical_merged_order("epoll");
}

#[test]
fn two_rings_three_processes_identical_merged_order_io_uring() {
    identical_merged_order("uring");
}

/// `(messages, at_ms)` of a `progress N checksum X at_ms T` line.
fn progress(line: &str) -> (u64, u64) {
    let w: Vec<&str> = line.split_whitespace().collect();
    (w[1].parse().unwrap(), w[5].parse().unwrap())
}

/// The newest progress line of `lines`: those already queued are skipped (they tell of the past);
/// if none is queued, the next one within `timeout`.
fn latest_progress(lines: &Receiver<String>, timeout: Duration) -> (u64, u64) {
    let mut latest = None;
    while let Ok(l) = lines.try_recv() {
        if l.starts_with("progress") {
            latest = Some(progress(&l));
        }
    }
    let deadline = Instant::now() + timeout;
    while latest.is_none() {
        match lines.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(l) if l.starts_with("progress") => latest = Some(progress(&l)),
            Ok(_) => {}
            Err(e) => panic!("no progress line from the learner within {timeout:?}: {e:?}"),
        }
    }
    latest.unwrap()
}

#[test]
fn a_ring_that_loses_its_coordinator_stalls_the_merge_only_until_it_has_a_new_one() {
    let dir = TempDir::new("multiring-halt");
    let ports = free_ports(8);
    for ring in 0..2 {
        let p = &ports[4 * ring..4 * ring + 4];
        let toml = three_node_cluster_toml(70 + ring as u32, "uring", &p[..3], None, (0, p[3]));
        std::fs::write(dir.path().join(format!("ring-{ring}.toml")), toml).unwrap();
    }
    // Ring 0: processes 0, 1, 2; ring 1: processes 3 (its coordinator), 4 and 0. Process 0 alone
    // learns both groups.
    let multi = dir.path().join("multiring.toml");
    std::fs::write(
        &multi,
        "lambda_instances = 20\ndelta_us = 1000\n\
         [[ring]]\nid = 0\ncluster = \"ring-0.toml\"\n\
         [[ring]]\nid = 1\ncluster = \"ring-1.toml\"\nprocesses = [3, 4, 0]\n\
         [[learner]]\nprocess = 1\ngroups = [0]\n[[learner]]\nprocess = 2\ngroups = [0]\n\
         [[learner]]\nprocess = 3\ngroups = [1]\n[[learner]]\nprocess = 4\ngroups = [1]\n",
    )
    .unwrap();
    const EACH: u64 = 12_000;
    const RATE: u64 = 2_000;
    let mut children = Children::default();
    let mut learner = None;
    for p in 0..5 {
        let mut cmd = std::process::Command::new(BIN);
        cmd.args(["node", "--config"]).arg(&multi).args(["--id", &p.to_string()]);
        match p {
            0 => cmd.args(["--expect", &(2 * EACH).to_string(), "--progress-ms", "50"]),
            1 => cmd.args(["--groups", "0", "--propose", &EACH.to_string()]),
            4 => cmd.args(["--groups", "1", "--propose", &EACH.to_string()]),
            _ => &mut cmd,
        };
        cmd.args(["--propose-rate", &RATE.to_string()])
            .stdout(if p == 0 { Stdio::piped() } else { Stdio::null() })
            .stderr(Stdio::inherit());
        let mut child = cmd.spawn().expect("ringsmr node starts");
        if p == 0 {
            learner = Some(lines_of(child.stdout.take().unwrap()));
        }
        children.push(child);
    }
    let lines = learner.unwrap();
    // Running: the merge delivers from both rings.
    while latest_progress(&lines, Duration::from_secs(30)).0 < 2_000 {
        std::thread::sleep(Duration::from_millis(20));
    }
    let coordinator = children.0[3].as_ref().unwrap().id() as i32;
    // SAFETY-free: a plain signal to a process this test started, by its pid.
    let signal = |sig: &str| {
        let ok = std::process::Command::new("kill")
            .args([sig, &coordinator.to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill {sig} {coordinator}");
    };
    signal("-STOP");
    let stopped = Instant::now();
    // The merge stalls: nothing of ring 0 passes the point ring 1 stopped at, until ring 1 has a
    // new coordinator (suspicion after 100 ms, then Phase 1).
    std::thread::sleep(Duration::from_millis(50));
    let at_stop = latest_progress(&lines, Duration::from_secs(5));
    // Delivery resumes while the old coordinator is still stopped.
    let resumed = loop {
        std::thread::sleep(Duration::from_millis(20));
        let p = latest_progress(&lines, Duration::from_secs(5));
        if p.0 > at_stop.0 + 1_000 {
            break stopped.elapsed();
        }
        assert!(stopped.elapsed() < Duration::from_secs(5), "the merge did not resume: {p:?}");
    };
    eprintln!(
        "merged delivery stalled at {} messages and resumed {resumed:?} after the coordinator of \
         ring 1 stopped",
        at_stop.0
    );
    assert!(at_stop.0 + 1_000 < 2 * EACH, "the run ended before the coordinator stopped");
    signal("-CONT");
    // Everything is delivered in the end.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match lines.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(l) if l.starts_with("delivered") => {
                assert!(l.starts_with(&format!("delivered {} ", 2 * EACH)), "{l}");
                break;
            }
            Ok(_) => {}
            Err(e) => panic!("the learner did not deliver everything: {e:?}"),
        }
    }
    drop(children);
}
