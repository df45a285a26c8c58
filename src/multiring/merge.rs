//! The deterministic merge of Multi-Ring Paxos (thesis 5.2, Algorithm 1, Task 4).
//!
//! A learner that subscribes to several groups receives each group's decided instances from its
//! ring, in instance order, and delivers them round-robin: M instances of the first group (in
//! group-id order), then M of the next, and so on. Two learners that subscribe to the same groups
//! therefore deliver the same sequence, and any two learners order the messages they both deliver
//! the same way (uniform partial order, thesis 2.2.4 and the proof in the appendix): a message's
//! place in the merge depends only on its group and its instance, never on when it arrived.
//!
//! A ring whose load is below the others' would stall the merge; its coordinator proposes *skip*
//! instances to keep its rate at λ (5.2.4). Many skips are decided in one consensus instance, so a
//! skip here counts for `instances` of the merge's turns at once, and is never delivered.
//!
//! Each group's queue of decided instances not merged yet is bounded: [`Merge::push`] refuses
//! beyond it, which is the learner's backpressure towards a ring that runs ahead (the caller stops
//! taking that ring's deliveries, so its flow control slows its coordinator down) instead of
//! memory growing without bound.
//!
//! Pure: no I/O, no time. The node feeds it what each ring's core delivers.

use std::collections::VecDeque;

/// What one group's ring decided in one consensus instance, as far as the merge is concerned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decided<T> {
    /// Something to deliver (a batch of messages decided in one instance).
    Value(T),
    /// `instances` skip instances decided together (5.2.4): turns of the round-robin that deliver
    /// nothing.
    Skip { instances: u64 },
}

/// [`Merge::push`] refused: the group's queue holds `capacity` decided instances already.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the merge holds {capacity} decided instances of group {group} not delivered yet")]
pub struct QueueFull<T> {
    pub group: u32,
    pub capacity: usize,
    /// What was refused, handed back.
    pub decided: Decided<T>,
}

#[derive(Debug)]
struct GroupQueue<T> {
    group: u32,
    /// Instances of this group merged per turn (its M).
    instances_per_turn: u64,
    queue: VecDeque<Decided<T>>,
}

/// Where a merge stands, as a replica's snapshot keeps it (`service::snapshot`): whose turn it
/// is, how many of that turn's instances are left, and what each group has queued, front first.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MergePosition<T> {
    pub turn: usize,
    pub left_in_turn: u64,
    pub queues: Vec<(u32, Vec<Decided<T>>)>,
}

/// See the module docs.
#[derive(Debug)]
pub struct Merge<T> {
    /// The subscribed groups, in group-id order: the order of the round-robin.
    groups: Vec<GroupQueue<T>>,
    /// Decided instances a group's queue holds at most.
    capacity: usize,
    /// Whose turn it is, and how many of its M instances are left in this turn.
    turn: usize,
    left_in_turn: u64,
}

impl<T> Merge<T> {
    /// A merge of `groups` (any order; duplicates are one), `instances_per_turn` (M, at least 1)
    /// instances of each per turn, at most `capacity` (at least 1) decided instances queued per
    /// group.
    pub fn new(groups: &[u32], instances_per_turn: u64, capacity: usize) -> Merge<T> {
        let turns: Vec<(u32, u64)> = groups.iter().map(|&g| (g, instances_per_turn)).collect();
        Merge::with_turns(&turns, capacity)
    }

    /// A merge of `(group, M)` pairs: each group with an M of its own (thesis 5.2.1 weighs groups
    /// of different rates this way). Every learner of a group must use the same M for it.
    pub fn with_turns(groups: &[(u32, u64)], capacity: usize) -> Merge<T> {
        assert!(capacity > 0, "the capacity is at least 1");
        assert!(groups.iter().all(|&(_, m)| m > 0), "M is at least 1");
        let mut ids = groups.to_vec();
        ids.sort_unstable();
        ids.dedup_by_key(|&mut (g, _)| g);
        assert!(!ids.is_empty(), "a learner subscribes to at least one group");
        Merge {
            left_in_turn: ids[0].1,
            groups: ids
                .into_iter()
                .map(|(group, instances_per_turn)| GroupQueue {
                    group,
                    instances_per_turn,
                    queue: VecDeque::with_capacity(capacity),
                })
                .collect(),
            capacity,
            turn: 0,
        }
    }

    /// The subscribed groups, in the order of the round-robin.
    pub fn groups(&self) -> impl Iterator<Item = u32> + '_ {
        self.groups.iter().map(|g| g.group)
    }

    /// The next instance `group` decided (each group's in instance order). Refused, and handed
    /// back, when the group's queue is full; a group not subscribed to is a caller's bug.
    pub fn push(&mut self, group: u32, decided: Decided<T>) -> Result<(), QueueFull<T>> {
        let capacity = self.capacity;
        let g = self
            .groups
            .iter_mut()
            .find(|g| g.group == group)
            .unwrap_or_else(|| panic!("group {group} is not subscribed to"));
        if g.queue.len() >= capacity {
            return Err(QueueFull { group, capacity, decided });
        }
        if let Decided::Skip { instances: 0 } = decided {
            return Ok(()); // no turn at all
        }
        g.queue.push_back(decided);
        Ok(())
    }

    /// Decided instances of `group` queued and not merged yet.
    pub fn queued(&self, group: u32) -> usize {
        self.groups.iter().find(|g| g.group == group).map_or(0, |g| g.queue.len())
    }

    /// Whether `group`'s queue is full (the caller holds the ring's deliveries back).
    pub fn is_full(&self, group: u32) -> bool {
        self.queued(group) >= self.capacity
    }

    /// The group whose instance the merge waits for when [`Merge::pop`] returns `None`.
    pub fn waiting_for(&self) -> u32 {
        self.groups[self.turn].group
    }

    /// The next value in merged order, with its group; `None` while the group whose turn it is
    /// has decided nothing more yet. Skips are consumed on the way and never returned.
    pub fn pop(&mut self) -> Option<(u32, T)> {
        loop {
            self.skip_whole_rounds();
            let g = &mut self.groups[self.turn];
            match g.queue.pop_front()? {
                Decided::Value(v) => {
                    let group = g.group;
                    self.take_turns(1);
                    return Some((group, v));
                }
                Decided::Skip { instances } => {
                    let taken = instances.min(self.left_in_turn);
                    if instances > taken {
                        g.queue.push_front(Decided::Skip { instances: instances - taken });
                    }
                    self.take_turns(taken);
                }
            }
        }
    }

    /// When a round starts and every group's next decision is a skip, whole rounds of skips go at
    /// once: idle rings that skip λΔ instances each per interval would otherwise cost a loop
    /// iteration per M of them.
    fn skip_whole_rounds(&mut self) {
        if self.turn != 0 || self.left_in_turn != self.groups[0].instances_per_turn {
            return;
        }
        let mut rounds = u64::MAX;
        for g in &self.groups {
            match g.queue.front() {
                Some(Decided::Skip { instances }) => {
                    rounds = rounds.min(*instances / g.instances_per_turn)
                }
                _ => return,
            }
        }
        if rounds == 0 {
            return;
        }
        for g in &mut self.groups {
            let per_turn = g.instances_per_turn;
            if let Some(Decided::Skip { instances }) = g.queue.front_mut() {
                *instances -= rounds * per_turn;
                if *instances == 0 {
                    g.queue.pop_front();
                }
            }
        }
    }

    /// Where the merge stands (see [`MergePosition`]).
    pub fn position(&self) -> MergePosition<T>
    where
        T: Clone,
    {
        MergePosition {
            turn: self.turn,
            left_in_turn: self.left_in_turn,
            queues: self
                .groups
                .iter()
                .map(|g| (g.group, g.queue.iter().cloned().collect()))
                .collect(),
        }
    }

    /// Puts a fresh merge of the same groups where `p` says (a replica restored from its
    /// snapshot). `Err` names what does not fit: other groups, a turn out of range, a queue
    /// beyond the capacity.
    pub fn restore(&mut self, p: MergePosition<T>) -> Result<(), &'static str> {
        if p.queues.len() != self.groups.len()
            || p.queues.iter().zip(&self.groups).any(|((g, _), mine)| *g != mine.group)
        {
            return Err("the snapshot's merge has other groups");
        }
        let Some(turn) = self.groups.get(p.turn) else { return Err("turn out of range") };
        if p.left_in_turn == 0 || p.left_in_turn > turn.instances_per_turn {
            return Err("instances left in the turn out of range");
        }
        if p.queues.iter().any(|(_, q)| q.len() > self.capacity) {
            return Err("a queue beyond the merge's capacity");
        }
        self.turn = p.turn;
        self.left_in_turn = p.left_in_turn;
        for (g, (_, q)) in self.groups.iter_mut().zip(p.queues) {
            g.queue = q.into();
        }
        Ok(())
    }

    /// `n` (at most what is left) of the current group's instances are merged.
    fn take_turns(&mut self, n: u64) {
        self.left_in_turn -= n;
        if self.left_in_turn == 0 {
            self.turn = (self.turn + 1) % self.groups.len();
            self.left_in_turn = self.groups[self.turn].instances_per_turn;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use proptest::prelude::*;

    use super::*;

    fn drain(m: &mut Merge<u64>) -> Vec<(u32, u64)> {
        std::iter::from_fn(|| m.pop()).collect()
    }

    #[test]
    fn m_instances_of_each_group_in_group_id_order_and_skips_are_turns_not_deliveries() {
        let mut m = Merge::new(&[7, 3], 2, 16);
        assert_eq!(m.groups().collect::<Vec<_>>(), [3, 7]);
        for v in [70, 71, 72] {
            m.push(7, Decided::Value(v)).unwrap();
        }
        assert_eq!(m.pop(), None, "group 3 goes first and has decided nothing");
        assert_eq!(m.waiting_for(), 3);
        m.push(3, Decided::Value(30)).unwrap();
        m.push(3, Decided::Skip { instances: 3 }).unwrap();
        m.push(3, Decided::Value(31)).unwrap();
        // 30 and one skip make group 3's turn; 70, 71 group 7's; two skips group 3's; then 72 and
        // one more of group 7 before 31.
        assert_eq!(drain(&mut m), [(3, 30), (7, 70), (7, 71), (7, 72)]);
        assert_eq!(m.waiting_for(), 7);
        m.push(7, Decided::Skip { instances: 1 }).unwrap();
        assert_eq!(drain(&mut m), [(3, 31)]);
    }

    #[test]
    fn a_full_queue_refuses_and_hands_the_decision_back() {
        let mut m = Merge::new(&[1, 2], 1, 2);
        m.push(2, Decided::Value(1)).unwrap();
        m.push(2, Decided::Value(2)).unwrap();
        assert!(m.is_full(2));
        let refused = m.push(2, Decided::Value(3)).unwrap_err();
        assert_eq!((refused.group, refused.decided), (2, Decided::Value(3)));
        m.push(1, Decided::Value(10)).unwrap();
        assert_eq!(drain(&mut m), [(1, 10), (2, 1)]);
        assert!(!m.is_full(2), "room again once the merge moved on");
    }

    #[test]
    fn idle_rings_skipping_many_instances_cost_no_loop_per_instance() {
        let mut m = Merge::new(&[1, 2], 1, 4);
        m.push(1, Decided::Skip { instances: u64::MAX / 2 }).unwrap();
        m.push(2, Decided::Skip { instances: u64::MAX / 2 }).unwrap();
        m.push(2, Decided::Value(5)).unwrap();
        m.push(1, Decided::Value(4)).unwrap();
        assert_eq!(drain(&mut m), [(1, 4), (2, 5)], "returns at once");
    }

    /// Per group, a sequence of decisions; each learner gets them interleaved its own way. Each group
    /// has an M of its own (`ms`).
    fn decisions() -> impl Strategy<Value = Vec<Vec<Decided<u64>>>> {
        let one = prop_oneof![
            3 => any::<u64>().prop_map(Decided::Value),
            1 => (0u64..5).prop_map(|instances| Decided::Skip { instances }),
        ];
        proptest::collection::vec(proptest::collection::vec(one, 0..30), 4)
    }

    /// Feeds `per_group` (groups 0..4) to a merge of `subscribed`, group by group in the order
    /// `schedule` picks, popping whenever it can; returns what it delivered.
    fn learner(
        per_group: &[Vec<Decided<u64>>],
        subscribed: &[u32],
        ms: &[u64],
        schedule: &[u8],
    ) -> Vec<(u32, u64)> {
        let turns: Vec<(u32, u64)> = subscribed.iter().map(|&g| (g, ms[g as usize])).collect();
        let mut merge = Merge::with_turns(&turns, 64);
        let mut next: HashMap<u32, usize> = HashMap::new();
        let mut out = Vec::new();
        let mut picks = schedule.iter().cycle();
        loop {
            let open: Vec<u32> = subscribed
                .iter()
                .copied()
                .filter(|g| next.get(g).copied().unwrap_or(0) < per_group[*g as usize].len())
                .collect();
            if open.is_empty() {
                break;
            }
            let g = open[usize::from(*picks.next().unwrap()) % open.len()];
            let k = next.entry(g).or_default();
            merge.push(g, per_group[g as usize][*k].clone()).unwrap();
            *k += 1;
            out.extend(std::iter::from_fn(|| merge.pop()));
        }
        out
    }

    proptest! {
        /// Uniform agreement and total order among learners of the same groups, whatever order
        /// the rings' decisions reach them in; skips are never delivered.
        #[test]
        fn learners_of_the_same_groups_deliver_the_same_sequence(
            per_group in decisions(),
            ms in proptest::collection::vec(1u64..4, 4),
            a in proptest::collection::vec(any::<u8>(), 1..16),
            b in proptest::collection::vec(any::<u8>(), 1..16),
        ) {
            let groups = [0, 1, 2];
            prop_assert_eq!(learner(&per_group, &groups, &ms, &a), learner(&per_group, &groups, &ms, &b));
        }

        /// Uniform partial order (thesis 2.2.4): two learners with overlapping subscriptions
        /// deliver the messages they share in the same relative order.
        #[test]
        fn overlapping_subscriptions_order_shared_messages_alike(
            per_group in decisions(),
            ms in proptest::collection::vec(1u64..4, 4),
            a in proptest::collection::vec(any::<u8>(), 1..16),
            b in proptest::collection::vec(any::<u8>(), 1..16),
        ) {
            // Messages are told apart by (group, position in the group).
            let tagged: Vec<Vec<Decided<u64>>> = per_group
                .iter()
                .map(|ds| {
                    ds.iter()
                        .enumerate()
                        .map(|(i, d)| match d {
                            Decided::Value(_) => Decided::Value(i as u64),
                            skip => skip.clone(),
                        })
                        .collect()
                })
                .collect();
            let p = learner(&tagged, &[0, 1, 2], &ms, &a);
            let q = learner(&tagged, &[1, 2, 3], &ms, &b);
            let shared = |d: &[(u32, u64)]| -> Vec<(u32, u64)> {
                d.iter().copied().filter(|(g, _)| *g == 1 || *g == 2).collect()
            };
            // Each may be waiting for a group the other does not have: one's shared messages are
            // a prefix of the other's.
            let (p, q) = (shared(&p), shared(&q));
            let n = p.len().min(q.len());
            prop_assert_eq!(&p[..n], &q[..n]);
        }
    }
}
