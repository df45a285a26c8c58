//! Phase 1 at the coordinator (thesis Alg. 1–3, Task 3): gather promises from an m-quorum, then pick
//! for every instance the value it may propose.
//!
//! The one rule that makes Paxos safe lives in `choose`: among the votes an m-quorum reports for an
//! instance, the value of the highest v-rnd wins. Any value decided in an earlier round was voted by an
//! m-quorum, which intersects this one, and every later vote was for the same value, so the highest
//! vote is the decided value if there is one. (Votes of more acceptors than a quorum change nothing:
//! the highest of a superset is still at least the decided round, and every vote from that round on
//! is for the decided value.)
//!
//! # Phase 1 in pieces
//!
//! The thesis runs Phase 1 "for all instances from i onward" in one exchange. An acceptor's votes from
//! i onward can be far larger than one message (a coordinator that lags behind the acceptors' logs, 32
//! KB batches, a retention margin of 100,000 instances), so each acceptor reports them in pieces of
//! bounded bytes, and the coordinator pulls the next piece of each acceptor as it uses the last:
//!
//! ```text
//!   coordinator                      acceptor a
//!     Phase1A(c_rnd, from = i)  -->  promise c_rnd; votes in i..j (≤ phase1b_bytes_max)
//!     <--  Phase1B(from = i, votes_below = j)
//!     Phase1A(c_rnd, from = j)  -->  (asked once the coordinator's window nears j)
//!     <--  Phase1B(from = j, votes_below = MAX)   all of a's votes are reported
//! ```
//!
//! Why this is safe: each acceptor's report is contiguous from `from` (a piece that does not start
//! within what is already known of that acceptor is ignored), and an instance is acted on only once an
//! m-quorum has reported it. Between two pieces an acceptor can only vote in rounds ≥ `c_rnd` (it
//! promised), and this coordinator proposes only in instances already reported, so a later piece never
//! hides a vote of an earlier round. Instances below any reported `trimmed_below` were decided and
//! garbage-collected (3.3.7): they are skipped, never proposed, since an acceptor that trimmed them no
//! longer reports their votes.
//!
//! Why pieces are pulled and not pushed: the coordinator opens re-proposals under its window (in
//! instances and bytes) and asks an acceptor for more only when what it has nearly runs out, so the
//! memory Phase 1 holds stays bounded by a window plus one piece per acceptor, whatever the logs hold.

use std::collections::BTreeMap;

use super::config::{ClusterConfig, ValueChoice};
use super::types::{Batch, Instance, NodeId, Round, Tick, Vid, Vote};

/// What one acceptor reported so far in this round.
#[derive(Debug)]
struct Report {
    acceptor: NodeId,
    /// The acceptor promised `c_rnd` (its first Phase 1B arrived).
    promised: bool,
    /// Every vote of the acceptor in `from..covered_below` is known; `Instance::MAX` once it reported
    /// its whole log.
    covered_below: Instance,
    /// When the Phase 1A asking for the piece at `covered_below` was last sent; `None` when no request
    /// is outstanding.
    asked_at: Option<Tick>,
}

/// The promises and votes gathered so far for round `c_rnd`.
#[derive(Debug)]
pub struct Phase1 {
    pub c_rnd: Round,
    /// The first instance of this Phase 1 (the coordinator's first undelivered instance).
    pub from: Instance,
    quorum: usize,
    choice: ValueChoice,
    reports: Vec<Report>,
    /// The highest `trimmed_below` any acceptor reported: every instance below it is decided.
    trimmed_below: Instance,
    /// Per instance, the votes reported so far (from any acceptor that reported the instance).
    votes: BTreeMap<Instance, Vec<(Round, Vid, Batch)>>,
}

/// What the coordinator may do at one instance, as far as Phase 1 knows.
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    /// Some acceptor of the m-quorum voted here: propose this value again, with its id.
    Repropose { c_vid: Vid, c_val: Batch },
    /// The m-quorum reported no vote here: propose a no-op, so learners never wait on a hole.
    NoOp,
    /// Instances below `to` are decided and trimmed at some acceptor: propose nothing there.
    Skip { to: Instance },
    /// Not enough acceptors reported this instance yet.
    Wait,
    /// An m-quorum reported its whole log and no vote lies at or above the instance: Phase 1 is over.
    Complete,
}

impl Phase1 {
    /// Phase 1 of round `c_rnd` from instance `from`, to be answered by the acceptors of `cluster`
    /// (an m-quorum of them suffices). The caller sends the first Phase 1A to all of them at `now`.
    pub fn new(
        c_rnd: Round,
        from: Instance,
        cluster: &ClusterConfig,
        choice: ValueChoice,
        now: Tick,
    ) -> Phase1 {
        let quorum = cluster.quorum();
        let reports = cluster
            .acceptors
            .iter()
            .map(|&acceptor| Report {
                acceptor,
                promised: false,
                covered_below: from,
                asked_at: Some(now),
            })
            .collect();
        Phase1 { c_rnd, from, quorum, choice, reports, trimmed_below: 0, votes: BTreeMap::new() }
    }

    /// Records one piece of `acceptor`'s Phase 1B: its votes in `from..votes_below`. Returns false,
    /// recording nothing, for a piece that adds nothing: from a process that is not an acceptor, a
    /// duplicate, or a piece that does not start within what is known of the acceptor (a stale answer
    /// to an earlier request; the coordinator asks again).
    pub fn on_phase1b(
        &mut self,
        acceptor: NodeId,
        from: Instance,
        trimmed_below: Instance,
        votes_below: Instance,
        votes: Vec<Vote>,
    ) -> bool {
        let Some(report) = self.reports.iter_mut().find(|r| r.acceptor == acceptor) else {
            return false;
        };
        let known_below = report.covered_below;
        if from > known_below || votes_below <= known_below {
            return false;
        }
        report.promised = true;
        report.covered_below = votes_below;
        report.asked_at = None;
        self.trimmed_below = self.trimmed_below.max(trimmed_below);
        for v in votes {
            if v.instance >= known_below && v.instance < votes_below {
                self.votes.entry(v.instance).or_default().push((v.v_rnd, v.v_vid, v.v_val));
            }
        }
        true
    }

    /// Acceptors that promised `c_rnd`.
    pub fn promises(&self) -> usize {
        self.reports.iter().filter(|r| r.promised).count()
    }

    /// Every instance below this was reported by an m-quorum: the largest coverage that at least
    /// `quorum` promised acceptors reach (2f+1 acceptors, so the quadratic scan is a few dozen steps
    /// and allocates nothing).
    fn quorum_covered_below(&self) -> Instance {
        let promised = || self.reports.iter().filter(|r| r.promised);
        promised()
            .map(|r| r.covered_below)
            .filter(|&c| promised().filter(|o| o.covered_below >= c).count() >= self.quorum)
            .max()
            .unwrap_or(self.from)
    }

    /// Task 3 for `instance`, the next instance the coordinator would open. Votes below `instance` are
    /// forgotten: the coordinator has moved past them.
    pub fn step(&mut self, instance: Instance) -> Step {
        while self.votes.first_key_value().is_some_and(|(&i, _)| i < instance) {
            self.votes.pop_first();
        }
        if instance < self.trimmed_below {
            return Step::Skip { to: self.trimmed_below };
        }
        let covered_below = self.quorum_covered_below();
        if covered_below == Instance::MAX && self.votes.is_empty() {
            return Step::Complete;
        }
        if instance >= covered_below {
            return Step::Wait;
        }
        match self.votes.remove(&instance) {
            Some(votes) => {
                let (_, c_vid, c_val) = choose(&votes, self.choice);
                Step::Repropose { c_vid, c_val }
            }
            None => Step::NoOp,
        }
    }

    /// The pieces to ask for now, as (acceptor, from): acceptors that have not answered, and those
    /// whose report ends before `horizon` (the coordinator will soon need what lies beyond), when no
    /// request to them is outstanding or the last one is `retry_us` old.
    pub fn requests(
        &mut self,
        now: Tick,
        retry_us: Tick,
        horizon: Instance,
        out: &mut Vec<(NodeId, Instance)>,
    ) {
        for r in &mut self.reports {
            let wanted = !r.promised || r.covered_below < horizon;
            let due = r.asked_at.is_none_or(|t| now >= t.saturating_add(retry_us));
            if r.covered_below != Instance::MAX && wanted && due {
                r.asked_at = Some(now);
                out.push((r.acceptor, r.covered_below));
            }
        }
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

    const ALL: Instance = Instance::MAX;

    fn vote(instance: Instance, rnd: u64, seq: u64) -> Vote {
        Vote {
            instance,
            v_rnd: Round(rnd << 16),
            v_vid: Vid { rnd: Round(rnd << 16), seq },
            v_val: Batch::empty(),
        }
    }

    fn phase1(from: Instance, choice: ValueChoice) -> Phase1 {
        let cluster = ClusterConfig { nodes: 3, acceptors: vec![0, 1, 2], f: 1 };
        Phase1::new(Round(9 << 16), from, &cluster, choice, 0)
    }

    /// Steps from `instance` until Phase 1 waits or completes; returns what it chose at each instance.
    fn steps(p: &mut Phase1, mut instance: Instance) -> (Vec<(Instance, Option<u64>)>, Step) {
        let mut out = Vec::new();
        loop {
            match p.step(instance) {
                Step::Repropose { c_vid, .. } => out.push((instance, Some(c_vid.seq))),
                Step::NoOp => out.push((instance, None)),
                Step::Skip { to } => {
                    instance = to;
                    continue;
                }
                last => return (out, last),
            }
            instance += 1;
        }
    }

    #[test]
    fn highest_v_rnd_wins_and_trimmed_instances_are_skipped() {
        let mut p = phase1(2, ValueChoice::HighestVRnd);
        assert!(p.on_phase1b(0, 2, 0, ALL, vec![vote(2, 1, 10), vote(3, 4, 30), vote(5, 1, 50)]));
        assert!(!p.on_phase1b(0, 2, 0, ALL, vec![]), "a repeated promise does not count twice");
        assert_eq!(p.step(2), Step::Wait, "one promise is not an m-quorum");
        assert!(p.on_phase1b(1, 2, 3, ALL, vec![vote(3, 2, 31), vote(5, 3, 51)]));
        assert_eq!(p.promises(), 2);
        assert_eq!(p.step(2), Step::Skip { to: 3 }, "acceptor 1 trimmed below 3");
        let (chosen, last) = steps(&mut p, 3);
        assert_eq!(chosen, vec![(3, Some(30)), (4, None), (5, Some(51))]);
        assert_eq!(last, Step::Complete);
    }

    #[test]
    fn the_planted_bug_picks_the_lowest_v_rnd() {
        let mut p = phase1(3, ValueChoice::PlantedBugLowestVRnd);
        p.on_phase1b(0, 3, 0, ALL, vec![vote(3, 4, 30), vote(5, 1, 50)]);
        p.on_phase1b(1, 3, 0, ALL, vec![vote(3, 2, 31), vote(5, 3, 51)]);
        assert_eq!(steps(&mut p, 3).0, vec![(3, Some(31)), (4, None), (5, Some(50))]);
    }

    #[test]
    fn an_instance_waits_until_an_m_quorum_reported_it() {
        let mut p = phase1(0, ValueChoice::HighestVRnd);
        p.on_phase1b(0, 0, 0, 4, vec![vote(1, 1, 10), vote(3, 1, 30)]);
        p.on_phase1b(1, 0, 0, ALL, vec![vote(3, 2, 31), vote(6, 2, 60)]);
        let (chosen, last) = steps(&mut p, 0);
        assert_eq!(chosen, vec![(0, None), (1, Some(10)), (2, None), (3, Some(31))]);
        assert_eq!(last, Step::Wait, "instance 6 waits for the rest of acceptor 0's votes");

        // A third acceptor that reported everything makes instances 4.. covered by {1, 2}.
        p.on_phase1b(2, 0, 0, ALL, vec![]);
        let (chosen, last) = steps(&mut p, 4);
        assert_eq!(chosen, vec![(4, None), (5, None), (6, Some(60))]);
        assert_eq!(last, Step::Complete);
    }

    #[test]
    fn pieces_must_continue_what_is_known_and_are_asked_for_near_the_horizon() {
        let mut p = phase1(0, ValueChoice::HighestVRnd);
        let mut asked = Vec::new();
        p.requests(5, 100, 10, &mut asked);
        assert!(asked.is_empty(), "the first Phase 1A is outstanding at every acceptor");

        assert!(p.on_phase1b(0, 0, 0, 4, vec![vote(1, 1, 10)]));
        assert!(!p.on_phase1b(0, 5, 0, 9, vec![vote(7, 1, 70)]), "a gap between pieces");
        assert!(!p.on_phase1b(0, 0, 0, 3, vec![]), "a stale piece that adds nothing");
        assert!(p.on_phase1b(0, 2, 0, 8, vec![vote(1, 7, 11), vote(5, 1, 50)]), "an overlap");

        p.requests(6, 100, 8, &mut asked);
        assert!(asked.is_empty(), "acceptor 0 covers up to the horizon; 1 and 2 were asked at 0");
        p.requests(100, 100, 9, &mut asked);
        assert_eq!(asked, vec![(0, 8), (1, 0), (2, 0)]);

        // The overlap's vote at 1 was already known from the first piece: it is not counted twice.
        p.on_phase1b(1, 0, 0, ALL, vec![]);
        assert_eq!(steps(&mut p, 0).0[..2], [(0, None), (1, Some(10))]);
    }
}
