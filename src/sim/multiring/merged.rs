//! What each learner of a Multi-Ring run hands its application: the real deterministic merge
//! (`multiring::Merge`, thesis 5.2.2 Algorithm 1 Task 4) fed, through `multiring::RingCursor`, with
//! what the learner's core delivered in each ring it subscribes to.
//!
//! ```text
//!   ring 0 log: (i, v) (i, v) (i', v') ..  --by instance--> Batch --RingCursor--> Decided --+
//!   ring 2 log: ...                                                                  ... --+
//!                                                           Merge --> (group, value) ..  <-+
//! ```
//!
//! A ring's log is read as a stream from its instance 0: the log a learner delivers into always
//! starts there, since a learner that restarts from a checkpoint or installs a snapshot begins its
//! new log with what its application had applied (`simulation`). Which log stands for a learner
//! is the one its process delivers into at the end (or now, while the run goes on); a learner
//! whose process is down in one of its rings is left out (at the end of a run every process is up:
//! the heal phase restarts them all).

use std::collections::VecDeque;

use bytes::Bytes;

use crate::multiring::{Decided, Merge, RingCursor};
use crate::proto::{Batch, Instance, NodeId, Value, ValueId};

use super::super::Simulation;
use super::super::invariants::History;
use super::config::{MultiRingSimConfig, PlantedMergeBug, Subscription};

/// One ring's deliveries as the merge checker reads them.
#[derive(Debug, Default)]
pub struct RingDeliveries<'a> {
    /// Each process' learner stream, by process id: `None` while the process is down.
    pub streams: Vec<Option<LearnerStream<'a>>>,
    /// The values liveness requires of every learner of the ring (their proposers are up).
    pub must_deliver: Vec<ValueId>,
}

#[derive(Debug, Clone, Copy)]
pub struct LearnerStream<'a> {
    pub delivered: &'a [(Instance, ValueId, Bytes)],
    /// The learner needs a state transfer no donor served: the single-ring liveness checker
    /// excuses it (`invariants::liveness`), and so does the merge's.
    pub excused: bool,
}

impl<'a> RingDeliveries<'a> {
    /// A finished ring: the logs alive at the end.
    pub fn of_history(history: &'a History) -> RingDeliveries<'a> {
        let mut streams: Vec<Option<LearnerStream<'a>>> = Vec::new();
        for log in history.logs.iter().filter(|l| l.alive_at_end) {
            let i = usize::from(log.node);
            if streams.len() <= i {
                streams.resize(i + 1, None);
            }
            streams[i] = Some(LearnerStream {
                delivered: &log.delivered,
                excused: log.needs_state_transfer,
            });
        }
        RingDeliveries { streams, must_deliver: history.must_deliver.clone() }
    }

    /// A ring still running: what the same checks would read if it ended now.
    pub fn of_running(sim: &'a Simulation) -> RingDeliveries<'a> {
        let streams = sim
            .current_logs()
            .map(|(log, up)| {
                up.then_some(LearnerStream {
                    delivered: &log.delivered,
                    excused: log.needs_state_transfer,
                })
            })
            .collect();
        RingDeliveries { streams, must_deliver: sim.required_values().collect() }
    }
}

/// One learner's merged delivery.
#[derive(Debug, Clone)]
pub struct MergedLog {
    pub learner: NodeId,
    pub groups: Vec<u32>,
    /// What the application got, in order: each value with its group (value ids are per ring).
    pub delivered: Vec<(u32, ValueId)>,
    /// Excused from liveness in one of its rings (see [`LearnerStream::excused`]).
    pub excused: bool,
}

/// Decided instances of a group the merge holds at most: small, so a ring far ahead of another
/// meets the merge's backpressure as in a node, which the order must not depend on.
const MERGE_QUEUE_INSTANCES: usize = 16;

/// The merged delivery of every learner whose process is up in all its rings.
pub fn merge_all(cfg: &MultiRingSimConfig, rings: &[RingDeliveries<'_>]) -> Vec<MergedLog> {
    cfg.subscriptions.iter().filter_map(|s| merge_one(cfg, s, rings)).collect()
}

fn merge_one(
    cfg: &MultiRingSimConfig,
    subscription: &Subscription,
    rings: &[RingDeliveries<'_>],
) -> Option<MergedLog> {
    let learner = subscription.learner;
    let streams: Vec<LearnerStream<'_>> = subscription
        .groups
        .iter()
        .map(|&g| *rings[g as usize].streams.get(usize::from(learner))?)
        .collect::<Option<_>>()?;
    let use_cursor = cfg.planted_bug != Some(PlantedMergeBug::NoCursor { learner });
    let mut feeds: Vec<Feed<'_>> = subscription
        .groups
        .iter()
        .zip(&streams)
        .map(|(&group, s)| Feed {
            group,
            instances: Instances { delivered: s.delivered },
            cursor: RingCursor::new(),
            pending: VecDeque::new(),
            use_cursor,
        })
        .collect();
    let mut merge: Merge<Batch> =
        Merge::with_turns(&cfg.turns_of(subscription), MERGE_QUEUE_INSTANCES);
    let mut delivered = Vec::new();
    // Round-robin over the rings, each pushing what the merge accepts, then popping what it
    // releases, as a node taking its rings' deliveries would; until nothing moves: every stream
    // is used up, or the merge waits for a ring whose stream is.
    loop {
        let mut moved = false;
        for feed in &mut feeds {
            moved |= feed.push_into(&mut merge);
        }
        while let Some((group, batch)) = merge.pop() {
            moved = true;
            delivered.extend(batch.ids().map(|id| (group, id)));
        }
        if !moved {
            break;
        }
    }
    Some(MergedLog {
        learner,
        groups: subscription.groups.clone(),
        delivered,
        excused: streams.iter().any(|s| s.excused),
    })
}

/// One ring's stream on its way into one learner's merge.
struct Feed<'a> {
    group: u32,
    instances: Instances<'a>,
    cursor: RingCursor,
    /// What the cursor made of the last instance and the merge has not taken yet.
    pending: VecDeque<Decided<Batch>>,
    use_cursor: bool,
}

impl Feed<'_> {
    /// Pushes into `merge` until its queue for this group is full or the stream is used up;
    /// whether anything went in.
    fn push_into(&mut self, merge: &mut Merge<Batch>) -> bool {
        let mut pushed = false;
        loop {
            if self.pending.is_empty() {
                let Some((instance, batch)) = self.instances.next() else { return pushed };
                if self.use_cursor {
                    let [gap, this] = self.cursor.advance(instance, &batch, || batch.clone());
                    self.pending.extend(gap.into_iter().chain(this));
                } else {
                    self.pending.push_back(Decided::Value(batch));
                }
            }
            let Some(decided) = self.pending.pop_front() else { return pushed };
            match merge.push(self.group, decided) {
                Ok(()) => pushed = true,
                Err(full) => {
                    self.pending.push_front(full.decided);
                    return pushed;
                }
            }
        }
    }
}

/// A learner's log read back as the instances its core delivered: consecutive entries of one
/// instance make the batch delivered there (the values a core delivers in one instance are one
/// `Action::Deliver`).
struct Instances<'a> {
    delivered: &'a [(Instance, ValueId, Bytes)],
}

impl Iterator for Instances<'_> {
    type Item = (Instance, Batch);

    fn next(&mut self) -> Option<(Instance, Batch)> {
        let (instance, _, _) = self.delivered.first()?;
        let n = self.delivered.iter().take_while(|(i, _, _)| i == instance).count();
        let (this, rest) = self.delivered.split_at(n);
        self.delivered = rest;
        let values = this
            .iter()
            .map(|(_, id, payload)| Value { id: *id, payload: payload.clone() })
            .collect();
        Some((*instance, Batch::new(values)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::skip::SKIP_PROPOSER;

    fn v(proposer: NodeId, seq: u64) -> ValueId {
        ValueId { proposer, incarnation: 0, seq }
    }

    fn entry(instance: Instance, id: ValueId) -> (Instance, ValueId, Bytes) {
        (instance, id, Bytes::new())
    }

    fn config(ms: Vec<u64>, subscriptions: &[(NodeId, &[u32])]) -> MultiRingSimConfig {
        let mut c = MultiRingSimConfig::for_seed(0);
        c.instances_per_turn = ms;
        c.subscriptions = subscriptions
            .iter()
            .map(|&(learner, groups)| Subscription { learner, groups: groups.to_vec() })
            .collect();
        c
    }

    fn ring(streams: Vec<&[(Instance, ValueId, Bytes)]>) -> RingDeliveries<'_> {
        RingDeliveries {
            streams: streams
                .into_iter()
                .map(|delivered| Some(LearnerStream { delivered, excused: false }))
                .collect(),
            must_deliver: Vec::new(),
        }
    }

    #[test]
    fn gaps_and_skips_are_turns_and_instances_regroup_into_batches() {
        // Ring 0 (M = 1): a, b in instance 0; nothing in 1 (a no-op); c in 2.
        let r0 = [entry(0, v(0, 0)), entry(0, v(0, 1)), entry(2, v(0, 2))];
        // Ring 1 (M = 2): d, a skip from position 1 to 4 (3 positions), e.
        let r1 = [entry(0, v(1, 0)), entry(1, v(SKIP_PROPOSER, 4)), entry(2, v(1, 1))];
        let c = config(vec![1, 2], &[(0, &[0, 1])]);
        let merged = merge_all(&c, &[ring(vec![&r0]), ring(vec![&r1])]);
        // Turns: r0 i0 (a b) | r1 d, skip | r0 i1 (no-op) | r1 skip, skip | r0 c | r1 e.
        let expected = [(0, v(0, 0)), (0, v(0, 1)), (1, v(1, 0)), (0, v(0, 2)), (1, v(1, 1))];
        assert_eq!(merged[0].delivered, expected);
    }

    #[test]
    fn the_planted_bugs_change_what_one_learner_delivers() {
        let r0 = [entry(0, v(0, 0)), entry(2, v(0, 1))];
        let r1 = [entry(0, v(1, 0)), entry(1, v(SKIP_PROPOSER, 1)), entry(2, v(1, 1))];
        let mut c = config(vec![1, 1], &[(0, &[0, 1]), (1, &[0, 1])]);
        let rings = [ring(vec![&r0, &r0]), ring(vec![&r1, &r1])];
        let merged = merge_all(&c, &rings);
        assert_eq!(merged[0].delivered, merged[1].delivered);
        c.planted_bug = Some(PlantedMergeBug::NoCursor { learner: 1 });
        let merged = merge_all(&c, &rings);
        assert!(merged[1].delivered.contains(&(1, v(SKIP_PROPOSER, 1))));
        c.planted_bug = Some(PlantedMergeBug::WrongM { learner: 1 });
        let merged = merge_all(&c, &rings);
        assert_ne!(merged[0].delivered, merged[1].delivered);
    }

    #[test]
    fn a_learner_down_in_one_of_its_rings_is_left_out() {
        let r = [entry(0, v(0, 0))];
        let c = config(vec![1, 1], &[(0, &[0, 1]), (1, &[0])]);
        let mut down = ring(vec![&r, &r]);
        down.streams[0] = None;
        let merged = merge_all(&c, &[ring(vec![&r, &r]), down]);
        assert_eq!(merged.len(), 1);
        assert_eq!(merged[0].learner, 1);
    }
}
