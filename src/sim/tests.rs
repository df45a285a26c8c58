//! The simulation tier of the test suite: hundreds of seeds per protocol and f, every invariant
//! checked, and a test that the checkers catch a planted bug.
//!
//! A failing seed prints itself and the command that replays it (`RINGSMR_SEED=<n>`).

use crate::proto::{Protocol, ValueChoice};

use super::invariants::Violation;
use super::{SimConfig, SimReport, replay_seed, run, run_seeds};

/// Seeds per (protocol, f), each run in-memory and recoverable (`sync` storage): 2 × 2 × 300 =
/// 1,200 runs per protocol, 3–7 processes, small and large batches, windows and garbage-collection
/// margins.
const SEEDS: u64 = 300;

fn all_seeds_pass(protocol: Protocol, f: usize) {
    let (coverage, failed) = run_seeds(protocol, f, 0..SEEDS);
    let seeds: Vec<u64> = failed.iter().map(|r| r.config.seed).collect();
    assert!(
        failed.is_empty(),
        "{} of {} seeds failed: {seeds:?} (see above for the violations)",
        failed.len(),
        coverage.runs
    );
    if replay_seed().is_none() {
        // The seeds must keep reaching the hard paths, or passing them proves little. The floors sit
        // well below what the seeds reach today (printed on failure), so only a real loss trips them.
        // Today (300 seeds in both modes, 600 runs each): 77–95% change coordinator or ring, 79–80%
        // crash processes, 27–32% have a majority of acceptors down at once (recoverable runs),
        // 48–51% restart a learner from its checkpoint, 31–40% run Phase 1 in pieces, 50–55%
        // have a learner needing state transfer, 20–25% install a snapshot by state transfer.
        // Every run with checkpoints on whose learner stalled installs a snapshot; installs are
        // rarer than the need because a third of the runs take no checkpoints (nobody has a
        // snapshot to give, and a restarted learner starts from 0, usually below the trim point:
        // 83–88% of them stall), while with checkpoints a restarted learner resumes from the version it
        // reported, and only a learner down or cut off for longer than a small retention margin
        // (8, sometimes 64 instances) falls behind the trim point (31–38% of those runs).
        let tenth = coverage.runs / 10;
        assert!(
            coverage.new_rounds >= 5 * tenth
                && coverage.crashes >= 5 * tenth
                && coverage.majority_down >= tenth
                && coverage.checkpoint_resumes >= tenth
                && coverage.phase1_in_pieces >= tenth
                && coverage.state_transfer >= tenth
                && coverage.snapshots_installed >= tenth,
            "{protocol:?} f={f}: the seeds no longer exercise enough: {coverage}"
        );
    }
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

/// Seeds that once failed, run on every `cargo test` (beyond the 0..SEEDS range). A change to how a
/// seed becomes a run (`SimConfig::for_seed`, the fault plan) turns these into other runs: then find
/// the old failures again with the soak, or leave them to the handler tests that pin each fix.
const REGRESSION_SEEDS: &[(Protocol, usize, u64, &str)] = &[
    (Protocol::URing, 2, 3179, "proposals passed back and forth between two views of the ring"),
    (Protocol::URing, 2, 5448, "the same"),
    (Protocol::URing, 2, 7874, "the same"),
];

#[test]
fn seeds_that_once_failed_pass() {
    for &(protocol, f, seed, why) in REGRESSION_SEEDS {
        let report = run(SimConfig::for_seed(protocol, f, seed));
        assert!(report.passed(), "{} ({why}): {:?}", report.summary(), report.violations);
    }
}

/// The checker of the checker: with Phase 1 picking the value of the *lowest* v-rnd instead of the
/// highest, a new coordinator can re-propose a value other than the one already decided, and the
/// simulator must report that as an agreement (or order) violation. It must do so in many seeds, not
/// by luck in one: at the time of writing about one seed in seven catches it.
/// Whether a run broke uniform agreement or total order.
fn breaks_order(report: &SimReport) -> bool {
    report
        .violations
        .iter()
        .any(|v| matches!(v, Violation::Agreement { .. } | Violation::TotalOrder { .. }))
}

/// The seeds below `seeds` (f = 1) whose run, changed by `plant`, breaks agreement or total order.
fn seeds_breaking_order(
    protocol: Protocol,
    seeds: u64,
    plant: impl Fn(&mut SimConfig),
) -> Vec<u64> {
    (0..seeds)
        .filter(|&seed| {
            let mut cfg = SimConfig::for_seed(protocol, 1, seed);
            plant(&mut cfg);
            breaks_order(&run(cfg))
        })
        .collect()
}

#[test]
fn planted_bug_lowest_v_rnd_is_caught() {
    const PLANTED_SEEDS: u64 = 200;
    for protocol in [Protocol::URing, Protocol::MRing] {
        let caught = seeds_breaking_order(protocol, PLANTED_SEEDS, |cfg| {
            cfg.value_choice = ValueChoice::PlantedBugLowestVRnd;
        });
        assert!(
            caught.len() >= 5,
            "{protocol:?}: the planted Phase 1 bug was caught in only {} of {PLANTED_SEEDS} seeds: {caught:?}",
            caught.len()
        );
    }
}

/// The checker of the disk model: a driver that sends votes before they are durable (write-behind,
/// `async` storage) loses votes that made a decision when a majority of acceptors crash at once,
/// and a later coordinator may then decide otherwise. The simulator must catch that in some seeds;
/// with the votes synced first (every other test) no seed may fail. The disk here is slow (syncs of
/// 0.1–0.3 s), so that the outage of a majority often finds votes that were sent and not yet
/// durable: the proposals of a run are sparse, and with millisecond syncs they rarely are.
#[test]
fn votes_sent_before_they_are_durable_are_caught() {
    const PLANTED_SEEDS: u64 = 300;
    let slow_disk = |cfg: &mut SimConfig| {
        cfg.recoverable = true;
        (cfg.disk_sync_us_min, cfg.disk_sync_us_max) = (100_000, 300_000);
    };
    for protocol in [Protocol::URing, Protocol::MRing] {
        let caught = seeds_breaking_order(protocol, PLANTED_SEEDS, |cfg| {
            slow_disk(cfg);
            cfg.sync_before_acting = false;
        });
        assert!(
            !caught.is_empty(),
            "{protocol:?}: votes sent before they were durable were never caught in {PLANTED_SEEDS} seeds"
        );
        eprintln!("{protocol:?}: write-behind caught in seeds {caught:?}");
        // The same runs, same slow disk, with each vote durable before it is sent: all safe. (Not
        // all live: syncs slower than the failure detector's 100 ms hold heartbeats long enough
        // for processes to suspect each other without end; timeouts must exceed the disk's.)
        for &seed in &caught {
            let mut cfg = SimConfig::for_seed(protocol, 1, seed);
            slow_disk(&mut cfg);
            let report = run(cfg);
            assert!(!breaks_order(&report), "{}: {:?}", report.summary(), report.violations);
        }
    }
}

/// The run-level checks can fail: a run that exceeds its message bound is stopped and reported as a
/// storm naming the busiest kind, and a panic inside a run is reported as that seed's violation.
#[test]
fn a_storm_and_a_panic_are_reported_as_violations_of_their_seed() {
    let mut cfg = SimConfig::for_seed(Protocol::URing, 1, 3);
    cfg.messages_max = 500;
    let report = run(cfg);
    assert!(
        matches!(report.violations.last(), Some(Violation::MessageStorm { messages_sent, .. }) if *messages_sent > 500),
        "{:?}",
        report.violations
    );

    let mut cfg = SimConfig::for_seed(Protocol::MRing, 1, 3);
    cfg.batch_bytes_max = 0;
    let report = run(cfg);
    assert!(
        matches!(&report.violations[..], [Violation::Panicked { message }] if message.contains("batch_bytes_max")),
        "{:?}",
        report.violations
    );
    assert!(report.summary().starts_with("seed 3 "));
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
