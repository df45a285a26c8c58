//! Uniform integrity (thesis 2.2.3 II): a learner delivers a value at most once, and only if it was
//! proposed — with exactly the payload it was proposed with.
//!
//! A skip instance of Multi-Ring Paxos (thesis 5.2.2, `proto::skip`) reaches the learner as one
//! value of the reserved proposer that nobody proposed: in a ring whose coordinators propose skips
//! it passes if it stands alone in its instance and carries nothing, and two alike (the same count)
//! are two instances, not a duplicate. In any other ring it is a value nobody proposed.

use std::collections::HashSet;

use crate::proto::skip::SKIP_PROPOSER;

use super::{History, Violation};

pub fn check(history: &History) -> Vec<Violation> {
    let mut violations = Vec::new();
    for log in &history.logs {
        let learner = (log.node, log.incarnation);
        let mut seen = HashSet::with_capacity(log.delivered.len());
        for (k, (instance, value, payload)) in log.delivered.iter().enumerate() {
            if history.skip_instances && value.proposer == SKIP_PROPOSER {
                // The log is in instance order: a neighbour in the same instance shares it.
                let shares = |j: usize| log.delivered.get(j).is_some_and(|(i, _, _)| i == instance);
                let alone = !shares(k + 1) && !k.checked_sub(1).is_some_and(shares);
                if !alone || !payload.is_empty() {
                    violations.push(Violation::MalformedSkip { learner, instance: *instance });
                }
                continue;
            }
            if history.proposed.get(value) != Some(payload) {
                violations.push(Violation::NotProposed { learner, value: *value });
            }
            if !seen.insert(*value) {
                violations.push(Violation::Duplicate { learner, value: *value });
            }
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
    fn unproposed_altered_and_duplicate_values_are_caught() {
        let id = |seq| ValueId { proposer: 1, incarnation: 0, seq };
        let mut h = History::default();
        h.proposed.insert(id(0), Bytes::from_static(b"a"));
        h.proposed.insert(id(1), Bytes::from_static(b"b"));
        let entry = |seq, p: &'static [u8]| (seq, id(seq), Bytes::from_static(p));
        h.logs.push(LearnerLog {
            node: 0,
            incarnation: 0,
            delivered: vec![entry(0, b"a"), entry(1, b"x"), entry(0, b"a"), entry(7, b"a")],
            alive_at_end: true,
            needs_state_transfer: false,
        });
        let v = check(&h);
        assert_eq!(v.len(), 3, "{v:?}");
        assert!(matches!(v[0], Violation::NotProposed { value, .. } if value == id(1)));
        assert!(matches!(v[1], Violation::Duplicate { value, .. } if value == id(0)));
        assert!(matches!(v[2], Violation::NotProposed { value, .. } if value == id(7)));
    }

    #[test]
    fn skips_pass_alone_only_in_rings_that_propose_them() {
        let skip = |count| ValueId { proposer: SKIP_PROPOSER, incarnation: 0, seq: count };
        let a = ValueId { proposer: 1, incarnation: 0, seq: 0 };
        let mut h = History::default();
        h.proposed.insert(a, Bytes::from_static(b"a"));
        let log = |delivered| LearnerLog {
            node: 0,
            incarnation: 0,
            delivered,
            alive_at_end: true,
            needs_state_transfer: false,
        };
        // Two skips of the same count in instances of their own, then one sharing an instance.
        h.logs.push(log(vec![
            (0, skip(4), Bytes::new()),
            (1, skip(4), Bytes::new()),
            (2, a, Bytes::from_static(b"a")),
            (2, skip(1), Bytes::new()),
        ]));
        assert!(matches!(check(&h)[..], [Violation::NotProposed { .. }, ..]), "skips off");
        h.skip_instances = true;
        assert_eq!(check(&h), [Violation::MalformedSkip { learner: (0, 0), instance: 2 }]);
        h.logs[0].delivered.truncate(3);
        assert!(check(&h).is_empty());
    }
}
