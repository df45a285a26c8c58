//! Uniform partial order (thesis 2.2.4): if a learner delivers m before m', no learner delivers m'
//! before m. Through third values too: the union over all learners of "delivered before" must be
//! acyclic, or no single order explains what the applications saw (with three groups and three
//! learners, each pair of learners may agree on the two values they share while the three orders
//! make a cycle).
//!
//! "Delivered before" at one learner is the transitive closure of its consecutive deliveries, and
//! a union of closures has a cycle exactly when the union of the consecutive pairs has one: the
//! graph holds one edge per pair of consecutive deliveries of some learner, and Kahn's algorithm
//! removes every value with no predecessor left until nothing or only cycles remain.

use std::collections::{HashMap, HashSet};

use crate::proto::NodeId;

use super::super::merged::MergedLog;
use super::{GroupValue, MergeViolation};

/// Values of one cycle reported at most (a long cycle says no more than its start).
const CYCLE_SHOWN_MAX: usize = 8;

pub fn check(merged: &[MergedLog]) -> Vec<MergeViolation> {
    let mut index: HashMap<GroupValue, usize> = HashMap::new();
    let mut values: Vec<GroupValue> = Vec::new();
    // Successors of each value, each edge with a learner that delivered the two in a row.
    let mut successors: Vec<Vec<(usize, NodeId)>> = Vec::new();
    let mut edges: HashSet<(usize, usize)> = HashSet::new();
    for log in merged {
        let mut previous: Option<usize> = None;
        for &value in &log.delivered {
            let v = *index.entry(value).or_insert_with(|| {
                values.push(value);
                successors.push(Vec::new());
                values.len() - 1
            });
            if let Some(p) = previous
                && edges.insert((p, v))
            {
                successors[p].push((v, log.learner));
            }
            previous = Some(v);
        }
    }
    let mut predecessors_left = vec![0usize; values.len()];
    for &(_, to) in &edges {
        predecessors_left[to] += 1;
    }
    let mut ready: Vec<usize> = (0..values.len()).filter(|&v| predecessors_left[v] == 0).collect();
    while let Some(v) = ready.pop() {
        for &(s, _) in &successors[v] {
            predecessors_left[s] -= 1;
            if predecessors_left[s] == 0 {
                ready.push(s);
            }
        }
    }
    let Some(start) = (0..values.len()).find(|&v| predecessors_left[v] > 0) else {
        return Vec::new();
    };
    // Every value left has a predecessor left: walking back from one must come round.
    let mut predecessor: HashMap<usize, (usize, NodeId)> = HashMap::new();
    for (from, tos) in
        successors.iter().enumerate().filter(|&(from, _)| predecessors_left[from] > 0)
    {
        for &(to, learner) in tos.iter().filter(|&&(to, _)| predecessors_left[to] > 0) {
            predecessor.entry(to).or_insert((from, learner));
        }
    }
    let mut walked: Vec<usize> = vec![start];
    let cycle_start = loop {
        let v = walked[walked.len() - 1];
        let Some(&(p, _)) = predecessor.get(&v) else { break 0 };
        if let Some(at) = walked.iter().position(|&w| w == p) {
            break at;
        }
        walked.push(p);
    };
    // `walked[cycle_start..]` runs backwards along the cycle; reported forwards, each value with
    // the learner that delivered it right before the next.
    let forward: Vec<usize> = walked[cycle_start..].iter().rev().copied().collect();
    let mut cycle: Vec<(GroupValue, NodeId)> = forward
        .iter()
        .enumerate()
        .map(|(i, &w)| {
            let next = forward[(i + 1) % forward.len()];
            (values[w], predecessor.get(&next).map_or(NodeId::MAX, |&(_, learner)| learner))
        })
        .collect();
    cycle.truncate(CYCLE_SHOWN_MAX);
    vec![MergeViolation::PartialOrder { cycle }]
}

#[cfg(test)]
mod tests {
    use super::super::tests::log;
    use super::*;

    #[test]
    fn consistent_orders_pass_and_a_cycle_through_three_learners_is_reported() {
        // Group 0's value 1, group 1's value 1, group 2's value 1: a, b, c.
        let (a, b, c) = ((0, 1), (1, 1), (2, 1));
        let mut logs = vec![
            log(0, &[0, 1], &[a, b]),
            log(1, &[1, 2], &[b, c]),
            log(2, &[0, 1, 2], &[a, b, c]),
        ];
        assert!(check(&logs).is_empty());
        // Each pair of the three learners below agrees on what it shares, and yet a < b < c < a.
        logs.truncate(2);
        logs.push(log(2, &[0, 2], &[c, a]));
        let v = check(&logs);
        let [MergeViolation::PartialOrder { cycle }] = &v[..] else { panic!("{v:?}") };
        assert_eq!(cycle.len(), 3, "{cycle:?}");
        // Reported forwards: each value before the next, at the learner given.
        let id =
            |(g, s): (u32, u64)| (g, crate::proto::ValueId { proposer: 0, incarnation: 0, seq: s });
        let at = |x| cycle.iter().position(|(v, _)| *v == id(x)).unwrap();
        assert_eq!(cycle[(at(a) + 1) % 3].0, id(b));
        assert_eq!(cycle[at(a)].1, 0);
        assert_eq!(cycle[at(c)].1, 2);
    }

    #[test]
    fn two_learners_ordering_two_values_differently_make_a_cycle() {
        let logs = vec![log(0, &[0, 1], &[(0, 1), (1, 1)]), log(1, &[0, 1], &[(1, 1), (0, 1)])];
        let v = check(&logs);
        assert!(matches!(&v[..], [MergeViolation::PartialOrder { cycle }] if cycle.len() == 2));
    }
}
