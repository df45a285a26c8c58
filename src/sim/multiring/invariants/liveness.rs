//! Liveness of the merge after healing (thesis 2.2.4, validity; 5.2.1): every value multicast to a
//! group by a proposer that is up at the end must be delivered by every learner of the group that
//! is up at the end in all the rings it subscribes to.
//!
//! That takes more than each ring being live: the merge releases a value of group g only once every
//! group before it in the round-robin has decided its instances of that round, so each of the
//! learner's rings must pass, in instances counted with skips, the point where g's last value was
//! decided. Skip instances (λ per Δ at every coordinator) make an idle ring get there; the run goes
//! on after its rings settled until they have (`driver`), within the heal bound.
//!
//! A learner a ring's single-ring checker excuses (it needs a state transfer no donor served) is
//! excused here too: the merge waits at that ring, and everything of its other groups behind it.

use std::collections::HashSet;

use super::super::merged::{MergedLog, RingDeliveries};
use super::{GroupValue, MergeViolation};

pub fn check(merged: &[MergedLog], rings: &[RingDeliveries<'_>]) -> Vec<MergeViolation> {
    let mut violations = Vec::new();
    for log in merged.iter().filter(|l| !l.excused) {
        let delivered: HashSet<GroupValue> = log.delivered.iter().copied().collect();
        for &group in &log.groups {
            let must = &rings[group as usize].must_deliver;
            let missing: Vec<_> =
                must.iter().filter(|v| !delivered.contains(&(group, **v))).collect();
            if let Some(&&example) = missing.first() {
                violations.push(MergeViolation::Liveness {
                    learner: log.learner,
                    group,
                    missing: missing.len(),
                    example,
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
    use crate::proto::ValueId;

    #[test]
    fn a_value_missing_from_a_subscribed_group_is_reported_unless_excused() {
        let id = |seq| ValueId { proposer: 0, incarnation: 0, seq };
        let rings = [
            RingDeliveries { streams: Vec::new(), must_deliver: vec![id(1)] },
            RingDeliveries { streams: Vec::new(), must_deliver: vec![id(1), id(2)] },
        ];
        let mut logs = vec![log(0, &[0, 1], &[(0, 1), (1, 1)]), log(1, &[0], &[(0, 1)])];
        let v = check(&logs, &rings);
        assert!(
            matches!(&v[..], [MergeViolation::Liveness { learner: 0, group: 1, missing: 1, .. }]),
            "{v:?}"
        );
        logs[0].excused = true;
        assert!(check(&logs, &rings).is_empty());
    }
}
