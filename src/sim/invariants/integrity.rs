//! Uniform integrity (thesis 2.2.3 II): a learner delivers a value at most once, and only if it was
//! proposed — with exactly the payload it was proposed with.

use std::collections::HashSet;

use super::{History, Violation};

pub fn check(history: &History) -> Vec<Violation> {
    let mut violations = Vec::new();
    for log in &history.logs {
        let learner = (log.node, log.incarnation);
        let mut seen = HashSet::with_capacity(log.delivered.len());
        for (_, value, payload) in &log.delivered {
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
}
