//! Agreement among learners of the same groups (thesis 5.2.2: "each two learners will round robin
//! through the groups they subscribe to in the same order"): their merged sequences are prefixes of
//! one sequence. A merge's output depends only on what its rings decided, never on when it arrived,
//! so a divergence means a ring decided differently for two learners (the single-ring checkers see
//! that too) or two merges counted turns differently.

use std::collections::BTreeMap;

use super::super::merged::MergedLog;
use super::MergeViolation;

pub fn check(merged: &[MergedLog]) -> Vec<MergeViolation> {
    let mut by_groups: BTreeMap<&[u32], Vec<&MergedLog>> = BTreeMap::new();
    for log in merged {
        by_groups.entry(&log.groups).or_default().push(log);
    }
    let mut violations = Vec::new();
    for (groups, logs) in by_groups {
        let Some(longest) = logs.iter().max_by_key(|l| l.delivered.len()) else { continue };
        for log in &logs {
            let first_difference =
                log.delivered.iter().zip(&longest.delivered).position(|(a, b)| a != b);
            if let Some(position) = first_difference {
                violations.push(MergeViolation::Agreement {
                    groups: groups.to_vec(),
                    learners: [log.learner, longest.learner],
                    position,
                    values: [log.delivered[position], longest.delivered[position]],
                });
            }
        }
    }
    violations
}

#[cfg(test)]
mod tests {
    use super::super::tests::log;
    use super::*;

    #[test]
    fn prefixes_agree_and_a_divergence_among_the_same_groups_is_reported() {
        let mut logs = vec![
            log(0, &[0, 1], &[(0, 1), (1, 1), (0, 2)]),
            log(1, &[0, 1], &[(0, 1), (1, 1)]),
            // Other groups: compared with nobody here.
            log(2, &[1], &[(1, 1), (1, 2)]),
        ];
        assert!(check(&logs).is_empty());
        logs.push(log(3, &[0, 1], &[(0, 1), (0, 2)]));
        let v = check(&logs);
        assert!(
            matches!(&v[..], [MergeViolation::Agreement { learners: [3, 0], position: 1, .. }]),
            "{v:?}"
        );
    }
}
