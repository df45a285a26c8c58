//! Integration tier for Multi-Ring Paxos: real `ringsmr node` processes on loopback running a
//! Multi-Ring file.
//!
//! Three processes take part in two rings (one group each) and subscribe to both; together they
//! multicast 100,000 messages, alternating groups. Every process must deliver all of them in the
//! same merged order (checksum of each process' merged stream), on both I/O backends.

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
