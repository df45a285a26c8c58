//! A running checksum of a delivered stream, sensitive to order: two learners that delivered the same
//! values in the same order have equal checksums (FNV-1a, 64 bit, over instance, value id and
//! payload of each delivery in turn).
//!
//! [`StreamTrace`] follows the order alone (instance and value id of each value, not the payloads:
//! cheap enough for every value of a benchmark run, where hashing every payload byte would cost more
//! than delivering it). Learners of one run stop at different points of the same stream (each stops
//! when its own clock says so), so their final hashes differ even when their orders agree: a trace
//! also keeps its hash at every multiple of [`CHECKPOINT_EVERY_VALUES`] values, and
//! [`compare_prefixes`] compares learners at the positions they all passed.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use crate::proto::types::{Instance, ValueId};

use super::handle::Delivery;

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StreamChecksum {
    hash: u64,
    pub values: u64,
}

impl Default for StreamChecksum {
    fn default() -> StreamChecksum {
        StreamChecksum { hash: FNV_OFFSET, values: 0 }
    }
}

impl StreamChecksum {
    fn mix(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.hash = (self.hash ^ u64::from(b)).wrapping_mul(FNV_PRIME);
        }
    }

    pub fn add(&mut self, d: &Delivery) {
        self.add_value(d.instance, d.id, &d.payload);
    }

    /// [`StreamChecksum::add`] of a value taken from a delivered batch.
    pub fn add_value(&mut self, instance: Instance, id: ValueId, payload: &[u8]) {
        self.mix(&instance.to_le_bytes());
        self.mix(&id.proposer.to_le_bytes());
        self.mix(&id.incarnation.to_le_bytes());
        self.mix(&id.seq.to_le_bytes());
        self.mix(&(payload.len() as u64).to_le_bytes());
        self.mix(payload);
        self.values += 1;
    }

    pub fn value(&self) -> u64 {
        self.hash
    }

    /// The checksum that stood at `hash` after `values` values (read back from a checkpoint).
    pub fn resumed(hash: u64, values: u64) -> StreamChecksum {
        StreamChecksum { hash, values }
    }

    /// The checksum as an application state of 16 bytes (`ringsmr node` stores it in its
    /// snapshots): hash, then values, little-endian.
    pub fn to_bytes(&self) -> [u8; 16] {
        let mut b = [0u8; 16];
        b[..8].copy_from_slice(&self.hash.to_le_bytes());
        b[8..].copy_from_slice(&self.values.to_le_bytes());
        b
    }

    /// The checksum [`StreamChecksum::to_bytes`] wrote; `None` for bytes of another length.
    pub fn from_bytes(b: &[u8]) -> Option<StreamChecksum> {
        let b: &[u8; 16] = b.try_into().ok()?;
        let word = |at: usize| u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"));
        Some(StreamChecksum::resumed(word(0), word(8)))
    }
}

/// A stream's checksum after its first `values` values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    pub values: u64,
    pub checksum: u64,
}

/// Values between two checkpoints of a [`StreamTrace`].
pub const CHECKPOINT_EVERY_VALUES: u64 = 1024;
/// Checkpoints a [`StreamTrace`] keeps (the newest): about eight million values back. Learners of
/// one run drift apart by a window of instances and a delivery queue, but each starts its measured
/// run only once its probe came back: on a loaded host one started a second after the others,
/// and with a million values kept (over a second of small values) its checkpoints and theirs
/// shared none, and the run could not compare orders. 128 KiB per trace.
pub const CHECKPOINTS_MAX: usize = 8 * 1024;

/// The order of a delivered stream, with its recent checkpoints (module docs).
#[derive(Clone, Debug)]
pub struct StreamTrace {
    hash: u64,
    values: u64,
    checkpoints: VecDeque<Checkpoint>,
}

impl Default for StreamTrace {
    fn default() -> StreamTrace {
        StreamTrace { hash: FNV_OFFSET, values: 0, checkpoints: VecDeque::new() }
    }
}

/// The multiplier of [`StreamTrace`]'s word mix (an odd constant with well-spread bits).
const TRACE_MULTIPLIER: u64 = 0x517c_c1b7_2722_0a95;

impl StreamTrace {
    fn mix(&mut self, word: u64) {
        // Rotate, xor, multiply: order-sensitive, and the rotation carries the multiplication's
        // high bits back down so that every input bit reaches every hash bit within a few words.
        self.hash = (self.hash.rotate_left(23) ^ word).wrapping_mul(TRACE_MULTIPLIER);
    }

    /// Value `id` was delivered in `instance`, after everything added before.
    pub fn add(&mut self, instance: Instance, id: ValueId) {
        self.mix(instance);
        self.mix((u64::from(id.proposer) << 32) | u64::from(id.incarnation));
        self.mix(id.seq);
        self.values += 1;
        if self.values.is_multiple_of(CHECKPOINT_EVERY_VALUES) {
            if self.checkpoints.len() == CHECKPOINTS_MAX {
                self.checkpoints.pop_front();
            }
            self.checkpoints.push_back(self.now());
        }
    }

    /// Values added so far.
    pub fn values(&self) -> u64 {
        self.values
    }

    /// Where the stream is now.
    pub fn now(&self) -> Checkpoint {
        Checkpoint { values: self.values, checksum: self.hash }
    }

    /// The checkpoints kept from position `from_values` on, and the current position.
    pub fn checkpoints_since(&self, from_values: u64) -> Vec<Checkpoint> {
        let mut v: Vec<Checkpoint> =
            self.checkpoints.iter().filter(|c| c.values >= from_values).copied().collect();
        if v.last() != Some(&self.now()) {
            v.push(self.now());
        }
        v
    }
}

/// How the delivered streams of several learners compare.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PrefixComparison {
    /// The longest prefix every learner has a checkpoint of (0: none in common).
    pub compared_values: u64,
    /// Every common checkpoint has the same checksum at every learner. `None`: no common
    /// checkpoint, so nothing could be compared.
    pub agree: Option<bool>,
}

/// Compares learners' streams at every position all of them have a checkpoint of.
pub fn compare_prefixes(traces: &[&[Checkpoint]]) -> PrefixComparison {
    let Some((first, rest)) = traces.split_first() else {
        return PrefixComparison { compared_values: 0, agree: None };
    };
    let mut compared_values = 0;
    let mut agree = None;
    for c in first.iter() {
        let mut all_have = true;
        let mut same = true;
        for t in rest {
            match t.iter().find(|o| o.values == c.values) {
                Some(o) => same &= o.checksum == c.checksum,
                None => all_have = false,
            }
        }
        if all_have {
            compared_values = compared_values.max(c.values);
            agree = Some(agree.unwrap_or(true) && same);
        }
    }
    PrefixComparison { compared_values, agree }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::types::ValueId;
    use bytes::Bytes;

    fn d(instance: u64, seq: u64) -> Delivery {
        Delivery {
            instance,
            id: ValueId { proposer: 1, incarnation: 0, seq },
            payload: Bytes::from_static(b"x"),
        }
    }

    #[test]
    fn order_matters() {
        let (mut a, mut b) = (StreamChecksum::default(), StreamChecksum::default());
        a.add(&d(0, 1));
        a.add(&d(0, 2));
        b.add(&d(0, 2));
        b.add(&d(0, 1));
        assert_ne!(a.value(), b.value());
        let mut c = StreamChecksum::default();
        c.add(&d(0, 1));
        c.add(&d(0, 2));
        assert_eq!(a, c);
    }

    #[test]
    fn traces_stopped_at_different_points_compare_on_their_common_prefix() {
        let d = |seq: u64| (seq / 10, ValueId { proposer: 0, incarnation: 0, seq });
        let (mut a, mut b) = (StreamTrace::default(), StreamTrace::default());
        for seq in 0..5000 {
            let (instance, id) = d(seq);
            a.add(instance, id);
        }
        for seq in 0..3100 {
            let (instance, id) = d(seq);
            b.add(instance, id);
        }
        let from = 1500;
        let (ca, cb) = (a.checkpoints_since(from), b.checkpoints_since(from));
        assert_eq!(ca.first().map(|c| c.values), Some(2048));
        assert_eq!(cb.last(), Some(&b.now()));
        let same = compare_prefixes(&[&ca, &cb]);
        assert_eq!(same, PrefixComparison { compared_values: 3072, agree: Some(true) });

        // A learner that delivered value 3000 before 2999 differs from position 3000 on.
        let mut c = StreamTrace::default();
        for seq in (0..2999).chain([3000, 2999]).chain(3001..4000) {
            let (instance, id) = d(seq);
            c.add(instance, id);
        }
        let cc = c.checkpoints_since(from);
        assert_eq!(compare_prefixes(&[&ca, &cc]).agree, Some(false));
        assert_eq!(compare_prefixes(&[&ca, &cc[..1]]).agree, Some(true), "2048 is before the swap");
        assert_eq!(compare_prefixes(&[&ca[..1], &cb[1..]]).agree, None);
    }
}
