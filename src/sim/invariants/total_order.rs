//! Uniform agreement and uniform total order (thesis 2.2.3 III–IV): every learner incarnation's
//! delivered sequence of (instance, value) must be a prefix of one common sequence. Comparing each log
//! with the longest one finds any divergence; where both sides are in the same instance it is an
//! agreement violation (the instance was decided two ways), otherwise an order violation.

use super::{History, Violation};

pub fn check(history: &History) -> Vec<Violation> {
    let Some(longest) = history.logs.iter().max_by_key(|l| l.delivered.len()) else {
        return Vec::new();
    };
    let mut violations = Vec::new();
    for log in &history.logs {
        let first_difference = log
            .delivered
            .iter()
            .zip(&longest.delivered)
            .position(|((ia, va, _), (ib, vb, _))| ia != ib || va != vb);
        let Some(position) = first_difference else { continue };
        let (ia, va, _) = &log.delivered[position];
        let (ib, vb, _) = &longest.delivered[position];
        let learners = [(log.node, log.incarnation), (longest.node, longest.incarnation)];
        violations.push(if ia == ib {
            Violation::Agreement { instance: *ia, learners, values: [*va, *vb] }
        } else {
            Violation::TotalOrder { position, learners }
        });
    }
    violations
}

#[cfg(test)]
mod tests {
    use super::super::LearnerLog;
    use super::*;
    use crate::proto::ValueId;
    use bytes::Bytes;

    fn log(node: u16, seq: &[(u64, u64)]) -> LearnerLog {
        LearnerLog {
            node,
            incarnation: 0,
            delivered: seq
                .iter()
                .map(|&(i, s)| (i, ValueId { proposer: 0, incarnation: 0, seq: s }, Bytes::new()))
                .collect(),
            alive_at_end: true,
            needs_state_transfer: false,
        }
    }

    #[test]
    fn prefixes_pass_divergence_is_reported() {
        let mut h = History {
            logs: vec![log(0, &[(0, 1), (1, 2), (2, 3)]), log(1, &[(0, 1), (1, 2)])],
            ..History::default()
        };
        assert!(check(&h).is_empty());
        h.logs.push(log(2, &[(0, 1), (1, 9)]));
        assert!(matches!(check(&h)[..], [Violation::Agreement { instance: 1, .. }]));
        h.logs[2] = log(2, &[(0, 1), (2, 3)]);
        assert!(matches!(check(&h)[..], [Violation::TotalOrder { position: 1, .. }]));
    }
}
