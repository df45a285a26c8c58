//! What one simulated Multi-Ring run looks like: the rings (one per group, each a single-ring
//! [`SimConfig`] with a fault schedule of its own), λ and Δ of the skip instances, M per group, and
//! which learner subscribes to which groups.

use crate::proto::{NodeId, Protocol, Tick};

use super::super::SimConfig;
use super::super::rng::Rng;

/// The groups one learner subscribes to (group `g` is ring `g`), in group-id order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscription {
    /// The process whose learners, one per subscribed ring, feed its merge.
    pub learner: NodeId,
    pub groups: Vec<u32>,
}

/// A bug planted in one learner's merge, so tests can see the checkers catch it. Only tests set it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlantedMergeBug {
    /// The learner takes one instance more of its first group per turn than every other learner.
    WrongM { learner: NodeId },
    /// The learner hands every delivered instance to the merge as a value, without the ring cursor:
    /// gaps are not counted as turns and skip instances are delivered.
    NoCursor { learner: NodeId },
}

#[derive(Debug, Clone, PartialEq)]
pub struct MultiRingSimConfig {
    pub seed: u64,
    /// Ring `g` orders group `g`. Every ring has the same Δ and a λ proportional to its group's M.
    pub rings: Vec<SimConfig>,
    /// M of each group (indexed by group id): instances of the group each learner merges per turn.
    /// Every learner of a group uses the same M, or their merges would disagree.
    pub instances_per_turn: Vec<u64>,
    pub subscriptions: Vec<Subscription>,
    /// The rings run in lockstep: each handles its events up to the next multiple of this, then
    /// the next ring does.
    pub step_us: Tick,
    pub planted_bug: Option<PlantedMergeBug>,
}

/// Δ, the skip interval of every ring: 5–10 ms of virtual time.
const SKIP_INTERVAL_US_MIN: Tick = 5_000;
const SKIP_INTERVAL_US_MAX: Tick = 10_000;

impl MultiRingSimConfig {
    /// The run of `seed`: 2–4 rings of U-Ring or M-Ring Paxos (mixed), f = 1 and sometimes 2, each
    /// the single-ring run of a seed derived from `seed` and the ring's index (so each ring has a
    /// fault schedule, storage mode, batching and checkpoints of its own), with a smaller workload
    /// than a single-ring run so hundreds of seeds stay cheap.
    ///
    /// λ follows the thesis' rule for groups of different M (5.2.1): a learner delivers at the
    /// rings' full rate only when M/λ is the same for every group, so ring `g` must open
    /// `M_g · λ₁` instances per Δ, where λ₁ (2, 8 or 24) is the rate of a group with M = 1. With one λ for
    /// all, a group with a larger M would hold every merge back at its own pace.
    ///
    /// The learners are the processes every ring has. Each subscribes to a non-empty set of groups;
    /// one subscribes to all (so every other subscription overlaps its), and often one copies
    /// another's, so the merges of two learners of the same groups are compared.
    pub fn for_seed(seed: u64) -> MultiRingSimConfig {
        let mut rng = Rng::new(seed.wrapping_mul(0x9E6C_63D0_676A_9A99) ^ 0x6D75_6C74_6972_696E);
        let ring_count = rng.range(2, 4) as usize;
        let skip_interval_us = rng.range(SKIP_INTERVAL_US_MIN, SKIP_INTERVAL_US_MAX);
        // Mostly above the instances a ring opens under the simulated load (a few hundred a
        // second, more with Phase 1's no-ops after a failover). A ring that opens more than λ
        // runs ahead of the shared clock, and the merge holds its messages until the other rings'
        // skips catch up with it as time passes (5.4.6): a third of the runs have λ₁ = 2 to get
        // there; with λ₁ = 1 that took longer than the heal bound.
        let lambda_per_m = [2, 8, 24][rng.range(0, 2) as usize];
        let instances_per_turn: Vec<u64> = (0..ring_count).map(|_| rng.range(1, 3)).collect();
        let rings: Vec<SimConfig> = instances_per_turn
            .iter()
            .enumerate()
            .map(|(g, &m)| {
                // A stream of its own per ring: how ring g's run is drawn does not depend on how
                // many rings come before it.
                let ring_seed =
                    Rng::new(seed ^ (g as u64 + 1).wrapping_mul(0xD1B5_4A32_D192_ED03)).next_u64();
                let protocol = if rng.chance(0.5) { Protocol::URing } else { Protocol::MRing };
                let f = if rng.chance(0.1) { 2 } else { 1 };
                let mut c = SimConfig::for_seed(protocol, f, ring_seed);
                // Half the single-ring workload (10–40 values per proposer over the 2 s fault
                // phase): several rings make a run, and hundreds of seeds must stay cheap.
                c.values_per_proposer /= 2;
                c.heal_bound_us = 10_000_000;
                // Learners take checkpoints in most rings (a third of single-ring runs take
                // none): a learner that falls behind the trim point then catches up by state
                // transfer instead of being excused from liveness, and with it its whole merge.
                if c.checkpoint_interval_instances == 0 && rng.chance(0.75) {
                    c.checkpoint_interval_instances = 16;
                }
                c.skip_lambda_instances = m * lambda_per_m;
                c.skip_interval_us = skip_interval_us;
                c
            })
            .collect();
        let learners = rings.iter().map(|c| c.nodes).min().unwrap_or(0);
        let subscriptions = draw_subscriptions(&mut rng, learners, ring_count);
        MultiRingSimConfig {
            seed,
            rings,
            instances_per_turn,
            subscriptions,
            step_us: 1_000,
            planted_bug: None,
        }
    }

    /// `(group, M)` of every group `learner` subscribes to, as its merge takes them.
    pub fn turns_of(&self, subscription: &Subscription) -> Vec<(u32, u64)> {
        let mut turns: Vec<(u32, u64)> =
            subscription.groups.iter().map(|&g| (g, self.instances_per_turn[g as usize])).collect();
        if self.planted_bug == Some(PlantedMergeBug::WrongM { learner: subscription.learner })
            && let Some((_, m)) = turns.first_mut()
        {
            *m += 1;
        }
        turns
    }

    /// The learner that subscribes to the most groups (all of them, as drawn by `for_seed`).
    pub fn widest_learner(&self) -> Option<NodeId> {
        self.subscriptions.iter().max_by_key(|s| s.groups.len()).map(|s| s.learner)
    }
}

/// Subscriptions of learners `0..learners` to groups `0..groups`, as [`MultiRingSimConfig::for_seed`]
/// describes.
fn draw_subscriptions(rng: &mut Rng, learners: NodeId, groups: usize) -> Vec<Subscription> {
    let all: Vec<u32> = (0..groups as u32).collect();
    let widest = rng.range(0, u64::from(learners) - 1) as NodeId;
    let mut subscriptions: Vec<Subscription> = Vec::with_capacity(usize::from(learners));
    for learner in 0..learners {
        let groups = if learner == widest {
            all.clone()
        } else if !subscriptions.is_empty() && rng.chance(0.4) {
            let i = rng.range(0, subscriptions.len() as u64 - 1) as usize;
            subscriptions[i].groups.clone()
        } else {
            let mut some: Vec<u32> = all.iter().copied().filter(|_| rng.chance(0.5)).collect();
            if some.is_empty() {
                some.push(rng.range(0, groups as u64 - 1) as u32);
            }
            some
        };
        subscriptions.push(Subscription { learner, groups });
    }
    subscriptions
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_seed_draws_overlapping_subscriptions_one_of_them_to_all_groups() {
        let mut identical = 0;
        for seed in 0..200 {
            let c = MultiRingSimConfig::for_seed(seed);
            assert!((2..=4).contains(&c.rings.len()));
            let all: Vec<u32> = (0..c.rings.len() as u32).collect();
            assert!(c.subscriptions.iter().any(|s| s.groups == all), "seed {seed}");
            assert!(c.subscriptions.iter().all(|s| !s.groups.is_empty()
                && s.groups.windows(2).all(|w| w[0] < w[1])
                && c.rings.iter().all(|r| s.learner < r.nodes)));
            for (g, r) in c.rings.iter().enumerate() {
                assert_eq!(r.skip_lambda_instances % c.instances_per_turn[g], 0, "λ ∝ M");
                assert_eq!(r.skip_interval_us, c.rings[0].skip_interval_us, "one Δ");
            }
            let seeds: std::collections::HashSet<u64> = c.rings.iter().map(|r| r.seed).collect();
            assert_eq!(seeds.len(), c.rings.len(), "each ring a schedule of its own");
            identical += usize::from(c.subscriptions.iter().enumerate().any(|(i, a)| {
                a.groups.len() > 1 && c.subscriptions[..i].iter().any(|b| b.groups == a.groups)
            }));
        }
        assert!(identical > 40, "two learners of the same groups in only {identical} of 200 seeds");
    }

    #[test]
    fn a_planted_wrong_m_changes_only_that_learners_turns() {
        let mut c = MultiRingSimConfig::for_seed(1);
        let s = c.subscriptions[0].clone();
        let right = c.turns_of(&s);
        c.planted_bug = Some(PlantedMergeBug::WrongM { learner: s.learner });
        let wrong = c.turns_of(&s);
        assert_eq!(wrong[0].1, right[0].1 + 1);
        assert_eq!(wrong[1..], right[1..]);
        let other = Subscription { learner: s.learner + 1, groups: s.groups };
        assert_eq!(c.turns_of(&other), right);
    }
}
