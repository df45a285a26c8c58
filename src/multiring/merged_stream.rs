//! Stepping the deterministic merge over running rings, and [`TapMerge`]: a merge over some
//! rings' delivery taps, which a thread other than the process' own consumer owns.
//!
//! P-SMR's worker t_i delivers g_i and g_all itself (thesis 6.3.2, "parallel delivery"): it
//! merges the tap of g_i's ring with its own tap of g_all's ring, whose node hands every batch to
//! every worker (`node::DeliveryTap`). Each worker's merge is the same deterministic merge as the
//! process' ([`MultiRingNode`](super::MultiRingNode)), so every worker (and every replica) sees
//! g_i's and g_all's messages in the same relative order.

use std::collections::BTreeMap;
use std::thread::Thread;

use crate::node::{DeliveredBatch, DeliveryTap};
use crate::proto::{Batch, Instance};

use super::config::{GroupId, MultiRingFile, RingId};
use super::merge::{Decided, Merge, MergePosition};
use super::node::MergedBatch;
use super::ring_stream::RingCursor;

/// One ring as a merge pulls from it.
pub(crate) trait MergeInput {
    /// The ring's cursor and its next delivered batch, if one waits.
    fn cursor_and_next(&mut self) -> Option<(&mut RingCursor, DeliveredBatch)>;
}

/// Runs `merge` until it has an instance to hand out, pulling only from the ring it waits for
/// (the others wait in their own bounded queues: `MultiRingNode`'s module docs). `None`: that ring
/// has nothing yet.
pub(crate) fn merge_next<I: MergeInput>(
    merge: &mut Merge<(Instance, Batch)>,
    inputs: &mut [I],
    index_of: impl Fn(RingId) -> usize,
) -> Option<(RingId, (Instance, Batch))> {
    loop {
        if let Some(next) = merge.pop() {
            return Some(next);
        }
        let ring = merge.waiting_for();
        let (cursor, b) = inputs[index_of(ring)].cursor_and_next()?;
        let (instance, values) = (b.instance, b.values);
        let turns = cursor.advance(instance, &values, || (instance, values.clone()));
        for decided in turns.into_iter().flatten() {
            // The merge waits for this ring, so its queue has room for what one delivery is.
            let pushed = merge.push(ring, decided);
            assert!(pushed.is_ok(), "the ring the merge waits for has room");
        }
    }
}

struct TapRing {
    ring: RingId,
    tap: DeliveryTap,
    cursor: RingCursor,
    /// The ring's group when it orders one only (else payloads carry their group's tag).
    only_group: Option<GroupId>,
}

impl MergeInput for TapRing {
    fn cursor_and_next(&mut self) -> Option<(&mut RingCursor, DeliveredBatch)> {
        loop {
            let b = self.tap.try_recv_batch()?;
            // A merge resumed from a snapshot holds instances the ring hands over again (its
            // node resumes at the lowest instance any merge of the process still needs).
            if b.instance >= self.cursor.next_instance() {
                return Some((&mut self.cursor, b));
            }
        }
    }
}

/// Where a [`TapMerge`] stands, as a replica's snapshot keeps it: each ring's cursor (next
/// instance, logical position) and the merge with what it has queued.
#[derive(Clone, Debug)]
pub struct TapMergePosition {
    pub cursors: Vec<(RingId, Instance, u64)>,
    pub merge: MergePosition<(Instance, Batch)>,
}

impl TapMergePosition {
    /// Per ring, the lowest instance this merge still needs handed over: its first queued value,
    /// else its cursor's next instance.
    pub fn needed_from(&self) -> Vec<(RingId, Instance)> {
        self.cursors
            .iter()
            .map(|&(ring, next, _)| {
                let queued = self.merge.queues.iter().filter(|(r, _)| *r == ring);
                let first_value = queued.flat_map(|(_, q)| q.iter()).find_map(|d| match d {
                    Decided::Value((instance, _)) => Some(*instance),
                    Decided::Skip { .. } => None,
                });
                (ring, first_value.unwrap_or(next).min(next))
            })
            .collect()
    }

    /// The logical position of `ring`'s instance `instance` at or below its cursor, counting one
    /// position per instance below the cursor (exact unless skips were decided in between).
    pub fn logical_of(&self, ring: RingId, instance: Instance) -> Option<u64> {
        let &(_, next, logical) = self.cursors.iter().find(|c| c.0 == ring)?;
        Some(logical.saturating_sub(next.saturating_sub(instance)))
    }
}

/// See the module docs.
pub struct TapMerge {
    rings: Vec<TapRing>,
    index_of: BTreeMap<RingId, usize>,
    merge: Merge<(Instance, Batch)>,
}

impl TapMerge {
    /// Merges `taps`, one per ring, with each ring's M from `file`.
    pub fn new(file: &MultiRingFile, taps: Vec<(RingId, DeliveryTap)>) -> TapMerge {
        let mut rings: Vec<TapRing> = taps
            .into_iter()
            .map(|(ring, tap)| {
                let groups: Vec<GroupId> = file.groups_of_ring(ring).map(|g| g.id).collect();
                let only_group = (groups.len() == 1).then(|| groups[0]);
                TapRing { ring, tap, cursor: RingCursor::new(), only_group }
            })
            .collect();
        rings.sort_by_key(|r| r.ring);
        let index_of = rings.iter().enumerate().map(|(i, r)| (r.ring, i)).collect();
        let turns: Vec<(u32, u64)> = rings
            .iter()
            .map(|r| (r.ring, file.groups_of_ring(r.ring).next().map_or(1, |g| g.m)))
            .collect();
        TapMerge { rings, index_of, merge: Merge::with_turns(&turns, 4) }
    }

    /// Merges `taps` from where `position` says (a replica restored from its snapshot); `Err`
    /// names what does not fit these rings.
    pub fn resume(
        file: &MultiRingFile,
        taps: Vec<(RingId, DeliveryTap)>,
        position: TapMergePosition,
    ) -> Result<TapMerge, &'static str> {
        let mut m = TapMerge::new(file, taps);
        if position.cursors.len() != m.rings.len() {
            return Err("the snapshot's merge has other rings");
        }
        for (r, &(ring, next, logical)) in m.rings.iter_mut().zip(&position.cursors) {
            if r.ring != ring {
                return Err("the snapshot's merge has other rings");
            }
            r.cursor = RingCursor::at(next, logical);
        }
        m.merge.restore(position.merge)?;
        Ok(m)
    }

    /// Where this merge stands (see [`TapMergePosition`]).
    pub fn position(&self) -> TapMergePosition {
        TapMergePosition {
            cursors: self
                .rings
                .iter()
                .map(|r| (r.ring, r.cursor.next_instance(), r.cursor.logical_next()))
                .collect(),
            merge: self.merge.position(),
        }
    }

    /// The next instance in merged order, if the rings have decided it (skips consumed).
    pub fn try_deliver_batch(&mut self) -> Option<MergedBatch> {
        let index_of = &self.index_of;
        let (ring, (instance, values)) =
            merge_next(&mut self.merge, &mut self.rings, |r| index_of[&r])?;
        let group = self.rings[self.index_of[&ring]].only_group;
        Some(MergedBatch { ring, instance, group, values })
    }

    /// Has every ring's node unpark `thread` when it delivers.
    pub fn wake_on_delivery(&self, thread: Thread) {
        for r in &self.rings {
            r.tap.wake_on_delivery(thread.clone());
        }
    }
}
