//! How many Multi-Ring runs exercised each hard path, so the tests can insist the seeds keep
//! reaching them: merges that never interleave two rings, or rings that never decide a skip,
//! would pass every checker and prove nothing.

use std::fmt;

use crate::proto::Protocol;

use super::super::Coverage;
use super::driver::MultiRingReport;

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct MultiRingCoverage {
    pub runs: usize,
    pub rings: usize,
    /// The single-ring figures over every ring of every run.
    pub per_ring: Coverage,
    /// Some ring crashed and restarted processes.
    pub crashes: usize,
    /// Some ring changed coordinator or ring.
    pub new_rounds: usize,
    /// Some learner of some ring needed state transfer.
    pub state_transfer: usize,
    /// U-Ring and M-Ring rings in one run.
    pub mixed_protocols: usize,
    /// Every ring decided skip instances ...
    pub skips_in_every_ring: usize,
    /// ... and how many skip instances were decided in all runs.
    pub skip_instances: u64,
    /// Some learner's application got values of more than one group: the merge interleaved rings.
    pub interleaved: usize,
    /// Two learners of the same two or more groups, whose merges the agreement checker compared.
    pub identical_subscriptions: usize,
    /// Two learners of different groups that share some, one of them of several groups: the
    /// partial-order checker compared orders that are not the same sequence.
    pub partial_overlap: usize,
    /// A learner of two or more groups was held to liveness (not excused by a state transfer).
    pub merged_liveness_held: usize,
    /// Learners of two or more groups in all runs, and those of them excused from liveness.
    pub multi_group_learners: usize,
    pub multi_group_learners_excused: usize,
    /// Groups of one run had different M (and so λ).
    pub different_m: usize,
    /// The merges delivered everything only after the rings had settled: a ring had run ahead of
    /// λ (or a new coordinator caught up on skips), and the others' skips had to make up for it.
    pub merges_lagged: usize,
}

impl MultiRingCoverage {
    pub fn add(&mut self, report: &MultiRingReport) {
        self.runs += 1;
        self.rings += report.rings.len();
        let mut any = Coverage::default();
        for r in &report.rings {
            self.per_ring.add(r);
            any.add(r);
        }
        self.crashes += usize::from(any.crashes > 0);
        self.new_rounds += usize::from(any.new_rounds > 0);
        self.state_transfer += usize::from(any.state_transfer > 0);
        let protocols = &report.config.rings;
        self.mixed_protocols += usize::from(
            protocols.iter().any(|r| r.protocol == Protocol::URing)
                && protocols.iter().any(|r| r.protocol == Protocol::MRing),
        );
        self.skips_in_every_ring +=
            usize::from(!report.skips.is_empty() && report.skips.iter().all(|s| s.instances > 0));
        self.skip_instances += report.skips.iter().map(|s| s.instances).sum::<u64>();
        self.interleaved += usize::from(report.merged.iter().any(|m| m.groups_delivered > 1));
        let subs = &report.config.subscriptions;
        let pairs =
            || subs.iter().enumerate().flat_map(|(i, a)| subs[i + 1..].iter().map(move |b| (a, b)));
        self.identical_subscriptions +=
            usize::from(pairs().any(|(a, b)| a.groups.len() > 1 && a.groups == b.groups));
        self.partial_overlap += usize::from(pairs().any(|(a, b)| {
            a.groups != b.groups
                && a.groups.len().max(b.groups.len()) > 1
                && a.groups.iter().any(|g| b.groups.contains(g))
        }));
        self.merged_liveness_held +=
            usize::from(report.merged.iter().any(|m| m.groups.len() > 1 && !m.excused));
        let multi = || report.merged.iter().filter(|m| m.groups.len() > 1);
        self.multi_group_learners += multi().count();
        self.multi_group_learners_excused += multi().filter(|m| m.excused).count();
        let ms = &report.config.instances_per_turn;
        self.different_m += usize::from(ms.iter().any(|&m| m != ms[0]));
        self.merges_lagged += usize::from(report.settled_us.is_some_and(|t| t < report.end_us));
    }
}

impl fmt::Display for MultiRingCoverage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "of {} runs ({} rings): {} crashed processes in some ring, {} changed coordinator or ring in some ring, {} had a learner needing state transfer, {} mixed U-Ring and M-Ring, {} decided skips in every ring ({} skip instances in all), {} interleaved rings in a merge, {} had two learners of the same groups, {} had learners sharing only some groups, {} had groups of different M, {} had merges finish after the rings settled, {} held a learner of several groups to liveness ({} of {} such learners excused); per ring, {}",
            self.runs,
            self.rings,
            self.crashes,
            self.new_rounds,
            self.state_transfer,
            self.mixed_protocols,
            self.skips_in_every_ring,
            self.skip_instances,
            self.interleaved,
            self.identical_subscriptions,
            self.partial_overlap,
            self.different_m,
            self.merges_lagged,
            self.merged_liveness_held,
            self.multi_group_learners_excused,
            self.multi_group_learners,
            self.per_ring,
        )
    }
}
