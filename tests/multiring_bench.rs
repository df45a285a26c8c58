//! `ringsmr bench --config MULTIRING_FILE` against real `ringsmr node` processes of a Multi-Ring
//! file on loopback (thesis 5.4: the figures come from a cluster of processes).
//!
//! - Three processes in two U-Ring rings, every process proposer and learner of both groups: the
//!   bench reaches each at its node's control address in ring 0 (its lowest ring), loads all at
//!   once, and its JSON says two rings, three processes, positive merged and aggregate throughput,
//!   and learners whose merged orders agree.
//! - The same processes, benched with ring 0's own cluster file: the bench of one ring reaches them
//!   (they serve on that file's control addresses) and must refuse to drive a Multi-Ring process
//!   rather than send it a load it cannot run.
//! - `--baseline` with a Multi-Ring file is refused before anything is reached.

mod common;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use common::{BIN, Children, TempDir, free_ports, output_within, three_node_cluster_toml};

/// Two rings of three processes on loopback, ring 0 with explicit control addresses (where the
/// processes serve the bench). Returns the Multi-Ring file and ring 0's cluster file.
fn write_files(dir: &Path) -> (PathBuf, PathBuf) {
    let ports = free_ports(9);
    let ring0 = three_node_cluster_toml(80, "uring", &ports[..3], Some(&ports[3..6]), (0, 0));
    let ring1 = three_node_cluster_toml(81, "uring", &ports[6..9], None, (0, 0));
    let ring0_path = dir.join("ring-0.toml");
    std::fs::write(&ring0_path, ring0).unwrap();
    std::fs::write(dir.join("ring-1.toml"), ring1).unwrap();
    let multi = dir.join("multiring.toml");
    std::fs::write(
        &multi,
        "lambda_instances = 20\ndelta_us = 1000\n\
         [[ring]]\nid = 0\ncluster = \"ring-0.toml\"\n\
         [[ring]]\nid = 1\ncluster = \"ring-1.toml\"\n",
    )
    .unwrap();
    (multi, ring0_path)
}

fn start_processes(multi: &Path) -> Children {
    let mut children = Children::default();
    for p in 0..3 {
        let child = std::process::Command::new(BIN)
            .args(["node", "--config"])
            .arg(multi)
            .args(["--id", &p.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("ringsmr node starts");
        children.push(child);
    }
    children
}

fn bench(config: &Path, args: &[&str]) -> std::process::Output {
    let mut cmd = std::process::Command::new(BIN);
    cmd.args(["bench", "--config"]).arg(config).args(args);
    output_within(&mut cmd, Duration::from_secs(60))
}

#[test]
fn bench_of_a_multiring_file_loads_its_processes_and_reports_agreeing_merged_orders() {
    let dir = TempDir::new("multiring-bench");
    let (multi, ring0) = write_files(dir.path());
    let _processes = start_processes(&multi);

    let out = bench(&multi, &["--duration", "2", "--payload", "512", "--json"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "ringsmr bench failed: {stderr}");
    let stdout = String::from_utf8(out.stdout).unwrap();
    let v: serde_json::Value = serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("not one JSON object ({e}): {stdout}"));
    let number = |key: &str| v[key].as_f64().unwrap_or_else(|| panic!("no `{key}` in {v}"));
    assert_eq!(v["protocol"], "multiring", "{v}");
    assert_eq!(v["ring_protocol"], "uring", "{v}");
    assert_eq!(v["rings"], 2, "{v}");
    assert_eq!(v["nodes"], 3, "{v}");
    assert_eq!(v["payload_bytes"], 512, "{v}");
    assert!(number("mbit_per_s") > 0.0, "merged throughput: {v}");
    assert!(number("aggregate_mbit_per_s") > 0.0, "aggregate throughput: {v}");
    // Each group counted at its best learner is at least what the best learner merged of all.
    assert!(number("aggregate_mbit_per_s") >= number("mbit_per_s"), "{v}");
    assert!(number("secs") >= 2.0, "{v}");
    assert_eq!(v["orders_agree"], true, "{v}");
    assert!(v["latency_us"]["p50"].as_u64().is_some_and(|p| p > 0), "{v}");
    let per_process = v["per_process"].as_array().unwrap_or_else(|| panic!("no per_process: {v}"));
    let ids: Vec<u64> = per_process.iter().filter_map(|p| p["process"].as_u64()).collect();
    assert_eq!(ids, [0, 1, 2], "{v}");
    assert!(per_process.iter().all(|p| p["delivered_msgs"].as_u64() > Some(0)), "{v}");

    // Ring 0's cluster file names the same control addresses: a bench of one ring finds these
    // processes and must say what they are.
    let out = bench(&ring0, &["--duration", "1", "--json"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "a single-ring bench drove Multi-Ring processes");
    assert!(stderr.contains("node 0") && stderr.contains("Multi-Ring process"), "{stderr}");
    assert!(out.stdout.is_empty());
}

#[test]
fn bench_refuses_a_baseline_for_a_multiring_file() {
    let dir = TempDir::new("multiring-bench-baseline");
    let (multi, _) = write_files(dir.path());
    // No process runs: the refusal comes before any connection is tried.
    let out = bench(&multi, &["--baseline", "--duration", "1"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("--baseline") && stderr.contains("Multi-Ring file"), "{stderr}");
    assert!(!stderr.contains("nothing answers"), "{stderr}");
}
