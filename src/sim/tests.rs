//! The simulation tier of the test suite: hundreds of seeds per protocol and f, every invariant
//! checked, and a test that the checkers catch a planted bug.
//!
//! A failing seed prints itself and the command that replays it (`RINGSMR_SEED=<n>`).

use crate::proto::{Protocol, ValueChoice};

use super::invariants::Violation;
use super::{SimConfig, run, run_seeds};

/// Seeds per (protocol, f): 2 × 400 = 800 runs per protocol, mixing in-memory and recoverable runs,
/// 3–7 processes, small and large batches, windows and garbage-collection margins.
const SEEDS: u64 = 400;

fn all_seeds_pass(protocol: Protocol, f: usize) {
    let (ran, failed) = run_seeds(protocol, f, 0..SEEDS);
    let seeds: Vec<u64> = failed.iter().map(|r| r.config.seed).collect();
    assert!(
        failed.is_empty(),
        "{} of {ran} seeds failed: {seeds:?} (see above for the violations)",
        failed.len()
    );
}

#[test]
fn sim_uring_f1() {
    all_seeds_pass(Protocol::URing, 1);
}

#[test]
fn sim_uring_f2() {
    all_seeds_pass(Protocol::URing, 2);
}

#[test]
fn sim_mring_f1() {
    all_seeds_pass(Protocol::MRing, 1);
}

#[test]
fn sim_mring_f2() {
    all_seeds_pass(Protocol::MRing, 2);
}

/// The checker of the checker: with Phase 1 picking the value of the *lowest* v-rnd instead of the
/// highest, a new coordinator can re-propose a value other than the one already decided, and the
/// simulator must report that as an agreement (or order) violation. It must do so in many seeds, not
/// by luck in one: at the time of writing about one seed in seven catches it.
#[test]
fn planted_bug_lowest_v_rnd_is_caught() {
    const PLANTED_SEEDS: u64 = 200;
    for protocol in [Protocol::URing, Protocol::MRing] {
        let caught: Vec<u64> = (0..PLANTED_SEEDS)
            .filter(|&seed| {
                let mut cfg = SimConfig::for_seed(protocol, 1, seed);
                cfg.value_choice = ValueChoice::PlantedBugLowestVRnd;
                run(cfg).violations.iter().any(|v| {
                    matches!(v, Violation::Agreement { .. } | Violation::TotalOrder { .. })
                })
            })
            .collect();
        assert!(
            caught.len() >= 5,
            "{protocol:?}: the planted Phase 1 bug was caught in only {} of {PLANTED_SEEDS} seeds: {caught:?}",
            caught.len()
        );
    }
}

/// A seed is a complete description of a run: running it twice gives the same run.
#[test]
fn a_seed_replays_exactly() {
    for protocol in [Protocol::URing, Protocol::MRing] {
        let a = run(SimConfig::for_seed(protocol, 2, 7));
        let b = run(SimConfig::for_seed(protocol, 2, 7));
        assert_eq!(a.summary(), b.summary());
        assert_eq!(a.messages_sent, b.messages_sent);
        assert!(a.instances_delivered_max > 0, "the run decided nothing: {}", a.summary());
    }
}
