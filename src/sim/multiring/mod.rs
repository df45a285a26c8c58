//! The Multi-Ring Paxos simulation (thesis chapter 5: 5.2.2 Algorithm 1, the deterministic merge;
//! 5.2.1 and 5.2.4, skip instances): several rings, each a whole single-ring [`Simulation`] of the
//! real cores with a fault schedule of its own (crashes, partitions, loss), run in lockstep on one
//! virtual clock with skip instances on; each learner's per-ring deliveries go through the real
//! merge (`multiring::RingCursor` and `multiring::Merge`), and the checkers of [`invariants`] judge
//! what the applications got. Every ring's own run is judged by the single-ring checkers as well.
//!
//! ```text
//!   ring 0 (U-Ring, own faults) --learner l's log--+
//!   ring 1 (M-Ring, own faults) --learner l's log--+--> RingCursor --> Merge (M per group) --+
//!   ring 2 ...                                                                              |
//!        l's application <-------------------------------------------------------------------+
//!   checked: agreement, partial order, no skip delivered, liveness
//! ```
//!
//! A run is a pure function of its [`MultiRingSimConfig`] (and so of its seed): `RINGSMR_SEED=<n>`
//! replays a seed in the tests, `ringsmr sim --protocol multiring --seed <n>` from the command
//! line.
//!
//! [`Simulation`]: super::Simulation

pub mod config;
pub mod coverage;
pub mod driver;
pub mod invariants;
pub mod merged;

pub use config::{MultiRingSimConfig, PlantedMergeBug, Subscription};
pub use coverage::MultiRingCoverage;
pub use driver::{MultiRingReport, run};

use super::replay_seed;

/// Runs `seeds` (or only the `RINGSMR_SEED` one); returns the reports of the seeds that failed,
/// after printing each with every violation and the command that replays it, and what the runs
/// exercised.
pub fn run_seeds(seeds: impl Iterator<Item = u64>) -> (MultiRingCoverage, Vec<MultiRingReport>) {
    let seeds: Vec<u64> = match replay_seed() {
        Some(seed) => vec![seed],
        None => seeds.collect(),
    };
    let mut failed = Vec::new();
    let mut coverage = MultiRingCoverage::default();
    for seed in seeds {
        let report = run(MultiRingSimConfig::for_seed(seed));
        coverage.add(&report);
        if !report.passed() {
            eprintln!("{}", report.summary());
            print_violations(&report, |line| eprintln!("{line}"));
            eprintln!(
                "  replay: RINGSMR_SEED={seed} cargo test --release sim_multiring -- --nocapture"
            );
            failed.push(report);
        }
    }
    (coverage, failed)
}

/// Hands every violation of `report` to `out` as a line: each ring's (naming the ring), then the
/// merge's.
pub fn print_violations(report: &MultiRingReport, mut out: impl FnMut(String)) {
    for (g, ring) in report.rings.iter().enumerate() {
        if !ring.passed() {
            out(format!("  ring {g}: {}", ring.summary()));
        }
        for v in &ring.violations {
            out(format!("  ring {g}: {v}"));
        }
    }
    for v in &report.violations {
        out(format!("  {v}"));
    }
}

#[cfg(test)]
mod tests;
