//! The deterministic simulator (TigerBeetle's VOPR and openraft's simulation fuzzer are the models):
//! the real `proto` cores of every process run on virtual time over a seeded network that drops,
//! duplicates, reorders and delays messages, loses multicast copies per receiver, partitions processes
//! and crashes and restarts them. A safety phase with faults is followed by a liveness phase without;
//! the checkers in [`invariants`] then judge what every learner delivered.
//!
//! A run is a pure function of its [`SimConfig`] (and so of its seed): a failure prints the seed, and
//! `RINGSMR_SEED=<n>` makes the test suite run exactly that seed again. `ringsmr sim` runs seeds from
//! the command line.
//!
//! `sim` depends on `proto` and on `wire` (every message is encoded and decoded on its way), never on
//! `io`.

pub mod config;
pub mod faults;
pub mod invariants;
pub mod network;
pub mod rng;
pub mod simulation;

pub use config::SimConfig;
pub use simulation::{SimReport, Simulation, run};

use crate::proto::Protocol;

/// The seed to replay from `RINGSMR_SEED`, if set. An unparsable value is an error worth stopping for.
pub fn replay_seed() -> Option<u64> {
    let s = std::env::var("RINGSMR_SEED").ok()?;
    match s.trim().parse() {
        Ok(seed) => Some(seed),
        Err(_) => panic!("RINGSMR_SEED must be an unsigned integer, got {s:?}"),
    }
}

/// Runs `seeds` (or only the `RINGSMR_SEED` one) for `protocol` with `f`; returns the reports of the
/// seeds that failed, after printing each with the command that replays it.
pub fn run_seeds(
    protocol: Protocol,
    f: usize,
    seeds: impl Iterator<Item = u64>,
) -> (usize, Vec<SimReport>) {
    let seeds: Vec<u64> = match replay_seed() {
        Some(seed) => vec![seed],
        None => seeds.collect(),
    };
    let mut failed = Vec::new();
    for &seed in &seeds {
        let report = run(SimConfig::for_seed(protocol, f, seed));
        if !report.passed() {
            eprintln!("{}", report.summary());
            for v in &report.violations {
                eprintln!("  {v}");
            }
            eprintln!("  replay: RINGSMR_SEED={seed} cargo test --release sim_ -- --nocapture");
            failed.push(report);
        }
    }
    (seeds.len(), failed)
}

#[cfg(test)]
mod tests;
