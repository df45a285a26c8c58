//! Liveness after healing (thesis 2.2.3 I, validity, under the partial synchrony of 2.1): once faults
//! stop, every value proposed by a proposer that stayed up must be delivered by every learner that is
//! up at the end. The one excuse is a learner that reported it needs state transfer (every acceptor
//! trimmed what it misses, 3.3.7) and has installed no snapshot since, which the run counts
//! separately: one that installed a snapshot goes on in a new log, held to catch up like any other.

use std::collections::HashSet;

use super::{History, Violation};

pub fn check(history: &History) -> Vec<Violation> {
    let mut violations = Vec::new();
    for log in history.logs.iter().filter(|l| l.alive_at_end && !l.needs_state_transfer) {
        let delivered: HashSet<_> = log.delivered.iter().map(|(_, v, _)| *v).collect();
        let missing: Vec<_> =
            history.must_deliver.iter().filter(|v| !delivered.contains(v)).collect();
        if let Some(example) = missing.first() {
            violations.push(Violation::Liveness {
                learner: log.node,
                missing: missing.len(),
                example: **example,
            });
        }
    }
    violations
}

#[cfg(test)]
mod tests {
    use super::super::LearnerLog;
    use super::*;
    use crate::proto::ValueId;
    use bytes::Bytes;

    #[test]
    fn a_missing_value_is_reported_unless_excused() {
        let id = |seq| ValueId { proposer: 1, incarnation: 0, seq };
        let mut h = History { must_deliver: vec![id(0), id(1)], ..History::default() };
        let mut log = LearnerLog {
            node: 2,
            incarnation: 0,
            delivered: vec![(0, id(0), Bytes::new())],
            alive_at_end: true,
            needs_state_transfer: false,
        };
        h.logs.push(log.clone());
        assert!(matches!(check(&h)[..], [Violation::Liveness { learner: 2, missing: 1, .. }]));
        log.needs_state_transfer = true;
        h.logs[0] = log;
        assert!(check(&h).is_empty());
    }
}
