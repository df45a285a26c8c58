//! Phase 1 at the coordinator (thesis Alg. 1–3, Task 3): gather promises from an m-quorum, then pick
//! for every instance the value it may propose.
//!
//! The one rule that makes Paxos safe lives in `choose`: among the votes an m-quorum reports for an
//! instance, the value of the highest v-rnd wins. Any value decided in an earlier round was voted by an
//! m-quorum, which intersects this one, and every later vote was for the same value, so the highest
//! vote is the decided value if there is one.

use std::collections::BTreeMap;

use super::config::ValueChoice;
use super::types::{Batch, Instance, NodeId, Round, Vid, Vote};

/// The promises gathered so far for round `c_rnd`.
#[derive(Debug)]
pub struct Phase1 {
    pub c_rnd: Round,
    pub from: Instance,
    /// Acceptors that promised, with the first instance each still holds.
    promised: Vec<(NodeId, Instance)>,
    /// Per instance, the votes reported so far.
    votes: BTreeMap<Instance, Vec<(Round, Vid, Batch)>>,
}

/// What Phase 1 leaves the coordinator once an m-quorum promised.
#[derive(Debug, PartialEq, Eq)]
pub struct Phase1Outcome {
    /// The first instance the coordinator may propose in: nothing below it may be touched, either
    /// because the coordinator knows it decided or because an acceptor of the quorum trimmed it.
    pub start: Instance,
    /// Instances at or after `start` where some acceptor voted, with the value that must be proposed.
    pub reproposals: Vec<(Instance, Vid, Batch)>,
}

impl Phase1 {
    pub fn new(c_rnd: Round, from: Instance) -> Phase1 {
        Phase1 { c_rnd, from, promised: Vec::new(), votes: BTreeMap::new() }
    }

    /// Records one Phase 1B. Returns false for a repeated answer of the same acceptor.
    pub fn on_phase1b(
        &mut self,
        acceptor: NodeId,
        trimmed_below: Instance,
        votes: Vec<Vote>,
    ) -> bool {
        if self.promised.iter().any(|(a, _)| *a == acceptor) {
            return false;
        }
        self.promised.push((acceptor, trimmed_below));
        for v in votes {
            if v.instance >= self.from {
                self.votes.entry(v.instance).or_default().push((v.v_rnd, v.v_vid, v.v_val));
            }
        }
        true
    }

    pub fn promises(&self) -> usize {
        self.promised.len()
    }

    /// Task 3, once `promises() >= quorum`.
    pub fn outcome(&self, choice: ValueChoice) -> Phase1Outcome {
        let trimmed = self.promised.iter().map(|(_, t)| *t).max().unwrap_or(0);
        let start = self.from.max(trimmed);
        let reproposals = self
            .votes
            .range(start..)
            .map(|(&instance, votes)| {
                let (_, vid, val) = choose(votes, choice);
                (instance, vid, val)
            })
            .collect();
        Phase1Outcome { start, reproposals }
    }
}

/// "Let k be the largest v-rnd value received; let c-val be the only v-val in V" (Task 3). `votes` is
/// never empty: an instance appears only when some acceptor voted in it.
fn choose(votes: &[(Round, Vid, Batch)], choice: ValueChoice) -> (Round, Vid, Batch) {
    let pick = match choice {
        ValueChoice::HighestVRnd => votes.iter().max_by_key(|(r, _, _)| *r),
        #[cfg(test)]
        ValueChoice::PlantedBugLowestVRnd => votes.iter().min_by_key(|(r, _, _)| *r),
    };
    // The caller only builds non-empty vote lists (an entry is created by pushing a vote).
    pick.cloned().expect("an instance in the vote map has at least one vote")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vote(instance: Instance, rnd: u64, seq: u64) -> Vote {
        Vote {
            instance,
            v_rnd: Round(rnd << 16),
            v_vid: Vid { rnd: Round(rnd << 16), seq },
            v_val: Batch::empty(),
        }
    }

    #[test]
    fn highest_v_rnd_wins_and_trimmed_instances_are_untouched() {
        let mut p = Phase1::new(Round(9 << 16), 2);
        assert!(p.on_phase1b(0, 0, vec![vote(2, 1, 10), vote(3, 4, 30), vote(5, 1, 50)]));
        assert!(!p.on_phase1b(0, 0, vec![]), "a repeated promise does not count twice");
        assert!(p.on_phase1b(1, 3, vec![vote(3, 2, 31), vote(5, 3, 51)]));
        assert_eq!(p.promises(), 2);
        let out = p.outcome(ValueChoice::HighestVRnd);
        assert_eq!(out.start, 3, "acceptor 1 trimmed below 3");
        let picked: Vec<_> = out.reproposals.iter().map(|(i, v, _)| (*i, v.seq)).collect();
        assert_eq!(picked, vec![(3, 30), (5, 51)]);
        let buggy = p.outcome(ValueChoice::PlantedBugLowestVRnd);
        let picked: Vec<_> = buggy.reproposals.iter().map(|(i, v, _)| (*i, v.seq)).collect();
        assert_eq!(picked, vec![(3, 31), (5, 50)]);
    }
}
