//! `ringsmr bench` against real `ringsmr node` processes on loopback.
//!
//! - Three node processes, one bench with `--baseline`: the JSON object carries the figures DESIGN
//!   "Benchmarks" asks for, the baseline measured through the nodes' control endpoints, and the
//!   learners' orders agree. U-Ring on the host's loopback; M-Ring inside a network namespace the
//!   test creates (multicast on its loopback; the host's is left alone), skipped without the
//!   privilege for that.
//! - A node that is not running: the bench gives up within its connect timeout and says which node
//!   and how to start it.

mod common;

use std::path::Path;
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use common::{BIN, Children, Netns, TempDir, free_ports, output_within, three_node_cluster_toml};

/// A 3-node cluster file on loopback with explicit control addresses.
fn cluster_file(dir: &Path, protocol: &str) -> std::path::PathBuf {
    let ports = free_ports(7);
    let s = three_node_cluster_toml(43, protocol, &ports[..3], Some(&ports[3..6]), (8, ports[6]));
    let file = dir.join("cluster.toml");
    std::fs::write(&file, s).unwrap();
    file
}

fn start_nodes(file: &Path, ids: &[u16], netns: Option<&Netns>) -> Children {
    let mut nodes = Children::default();
    for id in ids {
        let child = Netns::command(netns, BIN)
            .args(["node", "--config"])
            .arg(file)
            .args(["--id", &id.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("ringsmr node starts");
        nodes.push(child);
    }
    nodes
}

/// Runs `ringsmr bench` with `args` and returns its output; fails the test if it runs past
/// `within` (the bench bounds each of its waits, so this only catches a hang).
fn bench(file: &Path, args: &[&str], netns: Option<&Netns>, within: Duration) -> Output {
    let mut cmd = Netns::command(netns, BIN);
    cmd.args(["bench", "--config"]).arg(file).args(args);
    output_within(&mut cmd, within)
}

/// Runs `ringsmr bench --baseline` against three node processes and checks its JSON.
fn bench_with_baseline(protocol: &str, netns: Option<&Netns>) {
    let dir = TempDir::new(&format!("bench-{protocol}"));
    let file = cluster_file(dir.path(), protocol);
    let _nodes = start_nodes(&file, &[0, 1, 2], netns);
    let args = ["--baseline", "--duration", "2", "--json"];
    let out = bench(&file, &args, netns, Duration::from_secs(50));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "ringsmr bench failed: {stderr}");
    let stdout = String::from_utf8(out.stdout).unwrap();
    let v: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap_or_else(|e| {
        panic!("not one JSON object ({e}): {stdout}");
    });
    let number = |key: &str| v[key].as_f64().unwrap_or_else(|| panic!("no `{key}` in {v}"));
    assert!(number("delivered_msgs") > 0.0, "{v}");
    assert!(number("mbit_per_s") > 0.0, "{v}");
    assert!(number("baseline_mbit_per_s") > 0.0, "{v}");
    assert!(number("efficiency") > 0.0, "{v}");
    assert_eq!(v["orders_agree"], true, "{v}");
    assert!(number("orders_compared_values") > 0.0, "{v}");
    let cpu = v["cpu_per_node"].as_array().unwrap_or_else(|| panic!("no cpu_per_node: {v}"));
    assert_eq!(cpu.len(), 3, "{v}");
    assert!(cpu.iter().all(|c| c.as_f64().is_some_and(|c| c > 0.0)), "{v}");
    for key in ["protocol", "nodes", "payload_bytes", "batch_bytes", "secs", "io_backend"] {
        assert!(v.get(key).is_some(), "no `{key}` in {v}");
    }
    assert_eq!(v["nodes"], 3);
    assert_eq!(v["protocol"], protocol);
    assert!(v["latency_us"]["p50"].as_u64().is_some_and(|p| p > 0), "{v}");
}

#[test]
fn uring_bench_with_baseline_reports_the_figures_of_three_node_processes() {
    bench_with_baseline("uring", None);
}

#[test]
fn mring_bench_with_baseline_reports_the_figures_of_three_node_processes() {
    let Some(ns) = Netns::create("bench") else { return };
    bench_with_baseline("mring", Some(&ns));
}

#[test]
fn bench_names_a_node_that_is_not_running_and_how_to_start_it() {
    let dir = TempDir::new("bench-missing");
    let file = cluster_file(dir.path(), "uring");
    let _nodes = start_nodes(&file, &[0, 1], None);
    let started = Instant::now();
    let out = bench(&file, &["--duration", "1", "--json"], None, Duration::from_secs(30));
    assert!(!out.status.success());
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "gave up only after {:?}",
        started.elapsed()
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    let start_it = format!("ringsmr node --config {} --id 2", file.display());
    assert!(stderr.contains("node 2") && stderr.contains(&start_it), "{stderr}");
    assert!(out.stdout.is_empty());
}
