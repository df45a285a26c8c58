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
//! [`multiring`] runs several rings side by side and merges what their learners delivered
//! (Multi-Ring Paxos, thesis chapter 5).
//!
//! `sim` depends on `proto`, on `wire` (every message is encoded and decoded on its way) and on the
//! pure merge of `multiring`, never on `io`.

pub mod config;
pub mod disk;
pub mod faults;
pub mod invariants;
pub mod multiring;
pub mod network;
pub mod rng;
pub mod simulation;

pub use config::SimConfig;
pub use simulation::{SimReport, Simulation, run};

use crate::proto::{NodeId, Protocol};

/// The seed to replay from `RINGSMR_SEED`, if set. An unparsable value is an error worth stopping for.
pub fn replay_seed() -> Option<u64> {
    let s = std::env::var("RINGSMR_SEED").ok()?;
    match s.trim().parse() {
        Ok(seed) => Some(seed),
        Err(_) => panic!("RINGSMR_SEED must be an unsigned integer, got {s:?}"),
    }
}

/// How many runs of a set of seeds exercised each hard path, so a test can insist that the seeds keep
/// reaching them: a simulator whose faults stopped causing coordinator changes would pass every
/// invariant and prove nothing.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Coverage {
    pub runs: usize,
    /// More than one round was started: a coordinator change or a new ring.
    pub new_rounds: usize,
    /// Some acceptor reported its votes to a new coordinator in more than one Phase 1B.
    pub phase1_in_pieces: usize,
    /// Some learner fell behind what every acceptor trimmed and needs state transfer.
    pub state_transfer: usize,
    /// Some learner that needed state transfer installed a donor's snapshot (3.3.7).
    pub snapshots_installed: usize,
    /// The run crashed and restarted processes.
    pub crashes: usize,
    /// More than f acceptors were down at once (recoverable runs only: they come back from disk).
    pub majority_down: usize,
    /// A restarted learner went on from its stored checkpoint.
    pub checkpoint_resumes: usize,
}

impl Coverage {
    pub fn add(&mut self, report: &SimReport) {
        self.runs += 1;
        self.new_rounds += usize::from(report.rounds_started > 1);
        self.phase1_in_pieces += usize::from(report.phase1b_pieces_sent > 0);
        self.state_transfer += usize::from(report.learners_needing_state_transfer > 0);
        self.snapshots_installed += usize::from(report.snapshots_installed > 0);
        self.crashes += usize::from(!report.plan.crashes.is_empty());
        let acceptors: Vec<NodeId> = (0..(2 * report.config.f as NodeId + 1)).collect();
        let down = report.plan.acceptors_down_at_once_max(&acceptors);
        self.majority_down += usize::from(down > report.config.f);
        self.checkpoint_resumes += usize::from(report.learners_resumed > 0);
    }
}

impl std::fmt::Display for Coverage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "of {} runs: {} changed coordinator or ring, {} crashed processes, {} had a majority of acceptors down at once, {} restarted a learner from its checkpoint, {} ran Phase 1 in pieces, {} had a learner needing state transfer, {} installed a snapshot by state transfer",
            self.runs,
            self.new_rounds,
            self.crashes,
            self.majority_down,
            self.checkpoint_resumes,
            self.phase1_in_pieces,
            self.state_transfer,
            self.snapshots_installed
        )
    }
}

/// Runs `seeds` (or only the `RINGSMR_SEED` one) for `protocol` with `f`; returns the reports of the
/// seeds that failed, after printing each with the command that replays it, and what the runs
/// exercised.
pub fn run_seeds(
    protocol: Protocol,
    f: usize,
    seeds: impl Iterator<Item = u64>,
) -> (Coverage, Vec<SimReport>) {
    let seeds: Vec<u64> = match replay_seed() {
        Some(seed) => vec![seed],
        None => seeds.collect(),
    };
    let mut failed = Vec::new();
    let mut coverage = Coverage::default();
    for cfg in seeds.iter().flat_map(|&seed| SimConfig::in_both_storage_modes(protocol, f, seed)) {
        let seed = cfg.seed;
        let report = run(cfg);
        coverage.add(&report);
        if !report.passed() {
            eprintln!("{}", report.summary());
            for v in &report.violations {
                eprintln!("  {v}");
            }
            eprintln!("  replay: RINGSMR_SEED={seed} cargo test --release sim_ -- --nocapture");
            failed.push(report);
        }
    }
    (coverage, failed)
}

#[cfg(test)]
mod tests;
