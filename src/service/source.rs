//! A worker's deliveries from the rings: its own merge of the groups it delivers (P-SMR: g_i and
//! g_all; SMR and sP-SMR: the one group), over the rings' delivery taps.
//!
//! Its *position* (`smr::checkpoint`) is where its merge stands and the batch it hands out
//! values of, which it hands out again from the start after a restore:
//!
//! ```text
//! position := cursors u32 | (ring u32 | next_instance u64 | logical_next u64)*
//!             | turn u32 | left_in_turn u64 | queues u32 | (ring u32 | items u32 | item*)*
//!             | current u8 (0: none, 1: ring u32 | instance u64 | group u32 | batch)
//! item     := 0 u8 | instances u64          (skip)
//!           | 1 u8 | instance u64 | batch   (value)
//! batch    := bytes u64 | region            (`proto::Batch::region`)
//! group    := u32::MAX when the ring orders several groups (payloads carry their tag)
//! ```

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::multiring::node::split_group_tag;
use crate::multiring::{
    Decided, GroupId, MergePosition, MergedBatch, RingId, TapMerge, TapMergePosition,
};
use crate::proto::{Batch, Instance, IntoValues};
use crate::smr::byte_reader::{ByteReader, put_with_len};
use crate::smr::{Delivered, ExecModel, WorkSource};

/// How long a worker with nothing to deliver sleeps before it looks at the stop flag again (the
/// rings unpark it as soon as they deliver).
const IDLE_PARK: Duration = Duration::from_millis(1);

/// See the module docs.
pub struct RingSource {
    model: ExecModel,
    merge: TapMerge,
    /// The groups this worker delivers; messages of others (rings shared by groups) are skipped.
    groups: Vec<GroupId>,
    /// The batch being handed out, and its group when the ring orders one group only.
    current: Option<(Option<GroupId>, IntoValues)>,
    /// That batch whole, for a position.
    current_batch: Option<MergedBatch>,
    stop: Arc<AtomicBool>,
    registered: bool,
}

impl RingSource {
    pub fn new(
        model: ExecModel,
        merge: TapMerge,
        groups: Vec<GroupId>,
        stop: Arc<AtomicBool>,
    ) -> RingSource {
        RingSource::resume(model, merge, groups, stop, None)
    }

    /// A source whose merge was resumed from a position (`TapMerge::resume`), handing out
    /// `current` (the position's batch) first, from its start.
    pub fn resume(
        model: ExecModel,
        merge: TapMerge,
        groups: Vec<GroupId>,
        stop: Arc<AtomicBool>,
        current: Option<MergedBatch>,
    ) -> RingSource {
        let mut s = RingSource {
            model,
            merge,
            groups,
            current: None,
            current_batch: None,
            stop,
            registered: false,
        };
        if let Some(b) = current {
            s.take(b);
        }
        s
    }

    fn take(&mut self, b: MergedBatch) {
        self.current = Some((b.group, b.values.clone().into_iter()));
        self.current_batch = Some(b);
    }

    fn next_value(&mut self) -> Option<Delivered> {
        loop {
            let (group, values) = self.current.as_mut()?;
            let Some(v) = values.next() else {
                self.current = None;
                return None;
            };
            let (group, payload) = match *group {
                Some(g) => (g, v.payload),
                None => match split_group_tag(&v.payload) {
                    Some(tagged) => tagged,
                    None => continue,
                },
            };
            if self.groups.contains(&group) {
                return Some(Delivered {
                    scope: self.model.scope_of(group),
                    payload,
                    position: None,
                });
            }
        }
    }
}

impl WorkSource for RingSource {
    fn next(&mut self) -> Option<Delivered> {
        if !self.registered {
            self.merge.wake_on_delivery(std::thread::current());
            self.registered = true;
        }
        loop {
            if let Some(d) = self.next_value() {
                return Some(d);
            }
            if self.stop.load(Ordering::Acquire) {
                return None;
            }
            match self.merge.try_deliver_batch() {
                Some(b) => self.take(b),
                None => std::thread::park_timeout(IDLE_PARK),
            }
        }
    }

    fn position(&self, out: &mut Vec<u8>) {
        encode_position(&self.merge.position(), self.current_batch.as_ref(), out);
    }
}

const NO_GROUP: u32 = u32::MAX;

/// Writes a source's position (module docs).
pub fn encode_position(p: &TapMergePosition, current: Option<&MergedBatch>, out: &mut Vec<u8>) {
    out.extend_from_slice(&(p.cursors.len() as u32).to_le_bytes());
    for &(ring, next, logical) in &p.cursors {
        out.extend_from_slice(&ring.to_le_bytes());
        out.extend_from_slice(&next.to_le_bytes());
        out.extend_from_slice(&logical.to_le_bytes());
    }
    out.extend_from_slice(&(p.merge.turn as u32).to_le_bytes());
    out.extend_from_slice(&p.merge.left_in_turn.to_le_bytes());
    out.extend_from_slice(&(p.merge.queues.len() as u32).to_le_bytes());
    for (ring, items) in &p.merge.queues {
        out.extend_from_slice(&ring.to_le_bytes());
        out.extend_from_slice(&(items.len() as u32).to_le_bytes());
        for item in items {
            match item {
                Decided::Skip { instances } => {
                    out.push(0);
                    out.extend_from_slice(&instances.to_le_bytes());
                }
                Decided::Value((instance, batch)) => {
                    out.push(1);
                    out.extend_from_slice(&instance.to_le_bytes());
                    put_with_len(out, batch.region());
                }
            }
        }
    }
    match current {
        None => out.push(0),
        Some(b) => {
            out.push(1);
            out.extend_from_slice(&b.ring.to_le_bytes());
            out.extend_from_slice(&b.instance.to_le_bytes());
            out.extend_from_slice(&b.group.unwrap_or(NO_GROUP).to_le_bytes());
            put_with_len(out, b.values.region());
        }
    }
}

/// A source's position as [`encode_position`] wrote it.
#[derive(Clone, Debug)]
pub struct SourcePosition {
    pub merge: TapMergePosition,
    pub current: Option<MergedBatch>,
}

impl SourcePosition {
    /// Per ring, the lowest instance this source needs its ring to hand over again: the
    /// current batch's, its merge's first queued value's, or its cursor's next.
    pub fn needed_from(&self) -> Vec<(RingId, Instance)> {
        let mut needed = self.merge.needed_from();
        if let Some(b) = &self.current
            && let Some(n) = needed.iter_mut().find(|(r, _)| *r == b.ring)
        {
            n.1 = n.1.min(b.instance);
        }
        needed
    }

    pub fn decode(bytes: &[u8]) -> Result<SourcePosition, &'static str> {
        let mut r = ByteReader::new(bytes);
        let batch = |r: &mut ByteReader<'_>| -> Result<Batch, &'static str> {
            let region = bytes::Bytes::copy_from_slice(r.bytes_with_len()?);
            Batch::from_region(region).map_err(|_| "a batch that does not parse")
        };
        let mut cursors = Vec::new();
        for _ in 0..r.u32()? {
            cursors.push((r.u32()?, r.u64()?, r.u64()?));
        }
        let turn = r.u32()? as usize;
        let left_in_turn = r.u64()?;
        let mut queues = Vec::new();
        for _ in 0..r.u32()? {
            let ring = r.u32()?;
            let mut items = Vec::new();
            for _ in 0..r.u32()? {
                items.push(match r.u8()? {
                    0 => Decided::Skip { instances: r.u64()? },
                    1 => Decided::Value((r.u64()?, batch(&mut r)?)),
                    _ => return Err("an unknown kind of queued instance"),
                });
            }
            queues.push((ring, items));
        }
        let current = match r.u8()? {
            0 => None,
            1 => {
                let (ring, instance, group) = (r.u32()?, r.u64()?, r.u32()?);
                let group = (group != NO_GROUP).then_some(group);
                Some(MergedBatch { ring, instance, group, values: batch(&mut r)? })
            }
            _ => return Err("an unknown kind of current batch"),
        };
        if !r.is_empty() {
            return Err("bytes after the position");
        }
        let merge =
            TapMergePosition { cursors, merge: MergePosition { turn, left_in_turn, queues } };
        Ok(SourcePosition { merge, current })
    }
}
