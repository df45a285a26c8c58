//! One Multi-Ring run: every ring a whole single-ring [`Simulation`] of the real cores with its own
//! faults, all on one virtual clock, then the learners' merges judged.
//!
//! ```text
//!   t = 0, 1 ms, 2 ms, ...   ring 0: events <= t | ring 1: events <= t | ...   (lockstep)
//!   after the heal phase, every 50 ms: every ring settled (single-ring sense) and every learner's
//!   merge delivered what liveness requires?  -> stop; else go on until the heal bound
//!   finish: each ring's report (single-ring invariants), then merge every learner's rings and run
//!   the Multi-Ring checkers
//! ```
//!
//! Rings share no messages and no processes' state: a process of Multi-Ring Paxos runs one core per
//! ring (thesis 5.2.5), and what ties the rings together is only the clock their coordinators'
//! skip intervals run on, and the learners' merges.

use std::cell::Cell;
use std::panic::{self, AssertUnwindSafe};

use crate::proto::skip::SKIP_PROPOSER;
use crate::proto::{NodeId, Tick};

use super::super::{SimReport, Simulation};
use super::config::MultiRingSimConfig;
use super::invariants::{self, MergeViolation};
use super::merged::{self, RingDeliveries};

/// How often, once every ring healed, the run looks whether it may stop.
const SETTLE_CHECK_US: Tick = 50_000;

/// One learner's merge at the end of a run.
#[derive(Debug, Clone)]
pub struct MergedSummary {
    pub learner: NodeId,
    pub groups: Vec<u32>,
    /// Values its application got.
    pub delivered: usize,
    /// Groups those values came from (more than one: the merge interleaved rings).
    pub groups_delivered: usize,
    /// Excused from liveness (it needs a state transfer in one of its rings).
    pub excused: bool,
}

/// Skip instances one ring decided, as its longest learner log has them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SkipsDecided {
    /// Consensus instances whose value was a skip ...
    pub instances: u64,
    /// ... and the highest logical position one named (`proto::skip`).
    pub highest_target: u64,
}

/// What a Multi-Ring run did and what the checkers found.
#[derive(Debug)]
pub struct MultiRingReport {
    pub config: MultiRingSimConfig,
    /// Each ring's single-ring report, its own invariants checked (empty if the run panicked).
    pub rings: Vec<SimReport>,
    /// What the Multi-Ring checkers found.
    pub violations: Vec<MergeViolation>,
    pub end_us: Tick,
    /// When every ring had first settled in the single-ring sense (everything proposed by a
    /// process that is up delivered by every learner that is up), if it did. The run goes on from
    /// there until the learners' merges have delivered it too, which takes every ring's count of
    /// instances, skips included, past the last value's.
    pub settled_us: Option<Tick>,
    pub merged: Vec<MergedSummary>,
    pub skips: Vec<SkipsDecided>,
}

impl MultiRingReport {
    pub fn passed(&self) -> bool {
        self.violations.is_empty() && self.rings.iter().all(SimReport::passed)
    }

    /// A one-line summary naming the seed.
    pub fn summary(&self) -> String {
        let c = &self.config;
        let rings: Vec<String> = c
            .rings
            .iter()
            .map(|r| {
                format!(
                    "{:?} n={} f={} {} λ={}",
                    r.protocol,
                    r.nodes,
                    r.f,
                    if r.recoverable { "recoverable" } else { "in-memory" },
                    r.skip_lambda_instances
                )
            })
            .collect();
        let learners: Vec<String> =
            c.subscriptions.iter().map(|s| format!("{}:{:?}", s.learner, s.groups)).collect();
        let failures =
            self.violations.len() + self.rings.iter().map(|r| r.violations.len()).sum::<usize>();
        format!(
            "multiring seed {} [{}] Δ={} µs M={:?} learners {}: {} — merged {:?} values, skips {:?}, rings settled {} ms, end {} ms",
            c.seed,
            rings.join(", "),
            c.rings.first().map_or(0, |r| r.skip_interval_us),
            c.instances_per_turn,
            learners.join(" "),
            if failures == 0 { "ok".to_string() } else { format!("{failures} VIOLATIONS") },
            self.merged.iter().map(|m| m.delivered).collect::<Vec<_>>(),
            self.skips.iter().map(|s| s.instances).collect::<Vec<_>>(),
            self.settled_us.map_or("never".to_string(), |t| (t / 1_000).to_string()),
            self.end_us / 1_000,
        )
    }
}

/// Runs one seed's rings and checks every invariant. A panic in a ring (a core's `assert!`) is
/// reported as [`MergeViolation::Panicked`] naming the ring, so the seed can be replayed and the
/// seeds after it still run.
pub fn run(cfg: MultiRingSimConfig) -> MultiRingReport {
    let stepping = Cell::new(None);
    match panic::catch_unwind(AssertUnwindSafe(|| run_rings(&cfg, &stepping))) {
        Ok(report) => report,
        Err(payload) => {
            let message = crate::sim::simulation::panic_message(payload.as_ref());
            MultiRingReport {
                config: cfg,
                rings: Vec::new(),
                violations: vec![MergeViolation::Panicked { ring: stepping.get(), message }],
                end_us: 0,
                settled_us: None,
                merged: Vec::new(),
                skips: Vec::new(),
            }
        }
    }
}

/// The run; `stepping` names the ring being stepped, for a panic's report.
fn run_rings(cfg: &MultiRingSimConfig, stepping: &Cell<Option<usize>>) -> MultiRingReport {
    let mut sims: Vec<Simulation> = cfg.rings.iter().cloned().map(Simulation::new).collect();
    for (i, sim) in sims.iter_mut().enumerate() {
        stepping.set(Some(i));
        sim.start();
    }
    let deadline = sims.iter().map(Simulation::deadline_us).max().unwrap_or(0);
    let healed_at = cfg.rings.iter().map(|r| r.fault_phase_us).max().unwrap_or(0);
    let (mut now, mut next_check) = (0, healed_at);
    let mut settled_us = None;
    while now < deadline {
        now = (now + cfg.step_us.max(1)).min(deadline);
        let mut stopped = false;
        for (i, sim) in sims.iter_mut().enumerate() {
            stepping.set(Some(i));
            stopped |= !sim.step_until(now);
        }
        stepping.set(None);
        if stopped {
            break; // a message storm: the ring's report names it
        }
        if now >= next_check {
            next_check = now + SETTLE_CHECK_US;
            if sims.iter().all(|s| s.healed() && s.settled()) {
                settled_us.get_or_insert(now);
                if merges_live(cfg, &sims) {
                    break;
                }
            }
        }
    }
    let mut reports = Vec::with_capacity(sims.len());
    let mut histories = Vec::with_capacity(sims.len());
    for (i, sim) in sims.into_iter().enumerate() {
        stepping.set(Some(i));
        let (report, history) = sim.finish_with_history();
        reports.push(report);
        histories.push(history);
    }
    stepping.set(None);
    let rings: Vec<RingDeliveries<'_>> = histories.iter().map(RingDeliveries::of_history).collect();
    let merged = merged::merge_all(cfg, &rings);
    let violations = invariants::check_all(&merged, &rings);
    let skips = histories
        .iter()
        .map(|h| {
            let longest = h.logs.iter().max_by_key(|l| l.delivered.len());
            let mut skips = SkipsDecided::default();
            for (_, v, _) in longest.iter().flat_map(|l| &l.delivered) {
                if v.proposer == SKIP_PROPOSER {
                    skips.instances += 1;
                    skips.highest_target = skips.highest_target.max(v.seq);
                }
            }
            skips
        })
        .collect();
    MultiRingReport {
        config: cfg.clone(),
        rings: reports,
        violations,
        end_us: now,
        settled_us,
        merged: merged
            .iter()
            .map(|m| MergedSummary {
                learner: m.learner,
                groups: m.groups.clone(),
                delivered: m.delivered.len(),
                groups_delivered: m
                    .groups
                    .iter()
                    .filter(|&&g| m.delivered.iter().any(|&(h, _)| h == g))
                    .count(),
                excused: m.excused,
            })
            .collect(),
        skips,
    }
}

/// Whether every learner's merge, as the rings stand now, delivered what liveness requires: once
/// it has, going on proves nothing more.
fn merges_live(cfg: &MultiRingSimConfig, sims: &[Simulation]) -> bool {
    let rings: Vec<RingDeliveries<'_>> = sims.iter().map(RingDeliveries::of_running).collect();
    let merged = merged::merge_all(cfg, &rings);
    merged.len() == cfg.subscriptions.len()
        && invariants::liveness::check(&merged, &rings).is_empty()
}
