//! No skip reaches an application (thesis 5.2.2, Algorithm 1 line 32: "if v ≠ ⊥ then deliver v"):
//! a skip instance is a number of turns of the merge, never a delivery. A skip is a value of the
//! reserved proposer id (`proto::skip`), which no process has.

use crate::proto::skip::SKIP_PROPOSER;

use super::super::merged::MergedLog;
use super::MergeViolation;

pub fn check(merged: &[MergedLog]) -> Vec<MergeViolation> {
    merged
        .iter()
        .filter_map(|log| {
            let position = log.delivered.iter().position(|(_, v)| v.proposer == SKIP_PROPOSER)?;
            let (group, _) = log.delivered[position];
            Some(MergeViolation::SkipDelivered { learner: log.learner, group, position })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::super::tests::log;
    use super::*;

    #[test]
    fn a_skip_delivered_is_reported_once_per_learner() {
        let mut logs = vec![log(0, &[0], &[(0, 1), (0, 2)])];
        assert!(check(&logs).is_empty());
        logs[0].delivered[1].1.proposer = SKIP_PROPOSER;
        let skip = logs[0].delivered[1];
        logs[0].delivered.push(skip);
        assert_eq!(
            check(&logs),
            [MergeViolation::SkipDelivered { learner: 0, group: 0, position: 1 }]
        );
    }
}
