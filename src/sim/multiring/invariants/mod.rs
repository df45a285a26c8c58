//! Invariant checkers over what the learners of a Multi-Ring run merged (atomic multicast, thesis
//! 2.2.4 and 5.2; the proof of the merge is in the thesis' appendix):
//!
//! - [`agreement`]: learners of the same groups deliver the same sequence (one a prefix of the
//!   other's).
//! - [`partial_order`]: uniform partial order: no two learners order two values differently, even
//!   through values of a third.
//! - [`skips`]: no skip instance reaches an application.
//! - [`liveness`]: after the heal phase, every learner got every value its groups' correct
//!   proposers multicast.
//!
//! Each ring's own run is judged by the single-ring checkers (`sim::invariants`) as well. One file
//! per invariant; each reads the [`MergedLog`]s of `merged` and reports [`MergeViolation`]s.

pub mod agreement;
pub mod liveness;
pub mod partial_order;
pub mod skips;

use std::fmt;

use crate::proto::{NodeId, ValueId};

use super::merged::{MergedLog, RingDeliveries};

/// A value as an application of Multi-Ring Paxos sees it: value ids are per ring, so its group
/// tells it apart.
pub type GroupValue = (u32, ValueId);

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MergeViolation {
    /// Two learners of the same groups diverge at `position` of their merged sequences.
    Agreement { groups: Vec<u32>, learners: [NodeId; 2], position: usize, values: [GroupValue; 2] },
    /// The learners' "delivered before" relations make a cycle: each value of `cycle` was delivered
    /// right before the next one (the last before the first) by the learner next to it.
    PartialOrder { cycle: Vec<(GroupValue, NodeId)> },
    /// A skip instance reached `learner`'s application as its `position`-th delivery.
    SkipDelivered { learner: NodeId, group: u32, position: usize },
    /// After healing, `learner` still misses `missing` values of group `group`'s correct proposers.
    Liveness { learner: NodeId, group: u32, missing: usize, example: ValueId },
    /// The run panicked (a broken internal invariant), in the ring being stepped if known.
    Panicked { ring: Option<usize>, message: String },
}

impl fmt::Display for MergeViolation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MergeViolation::Agreement { groups, learners, position, values } => write!(
                f,
                "merge agreement violated: learners {} and {} of groups {groups:?} deliver {:?} and {:?} as delivery #{position}",
                learners[0], learners[1], values[0], values[1]
            ),
            MergeViolation::PartialOrder { cycle } => {
                write!(f, "uniform partial order violated: a cycle of deliveries")?;
                for ((group, value), learner) in cycle {
                    write!(f, " (group {group}, {value:?}) before, at learner {learner},")?;
                }
                match cycle.first() {
                    Some(((group, value), _)) => write!(f, " (group {group}, {value:?})"),
                    None => Ok(()),
                }
            }
            MergeViolation::SkipDelivered { learner, group, position } => write!(
                f,
                "a skip instance of group {group} reached learner {learner}'s application as delivery #{position}"
            ),
            MergeViolation::Liveness { learner, group, missing, example } => write!(
                f,
                "merge liveness violated: after healing, learner {learner} still misses {missing} values of group {group}'s correct proposers, e.g. {example:?}"
            ),
            MergeViolation::Panicked { ring: Some(ring), message } => {
                write!(f, "ring {ring} panicked: {message}")
            }
            MergeViolation::Panicked { ring: None, message } => write!(f, "panicked: {message}"),
        }
    }
}

/// Runs every checker.
pub fn check_all(merged: &[MergedLog], rings: &[RingDeliveries<'_>]) -> Vec<MergeViolation> {
    let mut v = agreement::check(merged);
    v.extend(partial_order::check(merged));
    v.extend(skips::check(merged));
    v.extend(liveness::check(merged, rings));
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The merged log of `learner` of `groups` that delivered `(group, seq)`, in order.
    pub(super) fn log(learner: NodeId, groups: &[u32], seq: &[(u32, u64)]) -> MergedLog {
        MergedLog {
            learner,
            groups: groups.to_vec(),
            delivered: seq
                .iter()
                .map(|&(g, s)| (g, ValueId { proposer: 0, incarnation: 0, seq: s }))
                .collect(),
            excused: false,
        }
    }
}
