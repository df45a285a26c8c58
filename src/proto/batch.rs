//! [`Batch`]: the value of one consensus instance, kept in the form it travels in.
//!
//! Thesis 3.3.2 runs Phase 2 "for a batch of proposed values", and 3.5.2 keeps those batches as the
//! packets themselves: 8–32 KB buffers that are received, stored and forwarded without being taken
//! apart. A batch here is likewise one contiguous region of encoded values,
//!
//! ```text
//! value := proposer u16 | incarnation u32 | seq u64 | payload length u32 | payload     (little-endian)
//! region := value value ...
//! ```
//!
//! so forwarding a batch (Phase 2A along a U-Ring, a decision with its value, a retransmission) is one
//! copy of the region into the outgoing buffer, and receiving one is one copy out of the stream (see
//! `wire`, which puts the value count among a frame's fields and the region among its regions). The
//! region's CRC-32 is taken once, where the batch is formed or received, and goes with it, so no
//! frame that forwards it passes over its bytes again. Values are read out of the region only when
//! they are delivered; their payloads are slices of it, so delivering allocates nothing per value.
//!
//! Earlier the batch was an `Arc<[Value]>` with a separately allocated payload per value: that cost
//! one allocation and one copy per value at every hop, which dominated with small payloads.

use std::fmt;

use bytes::{BufMut, Bytes, BytesMut};

use super::types::{ProposalId, VALUE_OVERHEAD_BYTES, Value, ValueId};

/// The value of one consensus instance (c-val, v-val): a batch of application values. Cloning shares
/// the region; a batch is immutable once formed.
///
/// An empty batch is a no-op: the new coordinator proposes it to fill an instance in which Phase 1
/// found no vote.
#[derive(Clone, Default)]
pub struct Batch {
    /// The values, encoded back to back (module docs).
    region: Bytes,
    /// How many values the region holds.
    len: u32,
    /// The values are one proposer's, numbered consecutively, as a proposer forms a batch: delivery
    /// then checks for repeats once per batch rather than reading every value's id (see
    /// [`Batch::run_start`]). False where that is not known; never true where it is not so.
    run: bool,
    /// The CRC-32 of the region, taken once where the batch was formed or received, so that every
    /// frame it is sent in reuses it (`wire`). `None` only for a batch that is not meant to travel
    /// (what is left of a delivered one): [`Batch::crc32`] computes it then.
    crc32: Option<u32>,
}

/// Two batches are equal when they hold the same values; `run` and `crc32` only describe them.
impl PartialEq for Batch {
    fn eq(&self, other: &Batch) -> bool {
        self.len == other.len && self.region == other.region
    }
}

impl Eq for Batch {}

/// A region that does not hold whole values (see [`Batch::from_region`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BadRegion {
    /// Bytes into the region where the first value that does not fit starts.
    pub at_bytes: usize,
}

impl Batch {
    /// The batch of `values`, in order (one allocation for the region).
    pub fn new(values: Vec<Value>) -> Batch {
        let bytes = values.iter().map(Value::batch_bytes).sum();
        let mut b = BatchBuilder::with_capacity(bytes);
        for v in &values {
            b.push(v.id, &v.payload);
        }
        b.finish()
    }

    /// The no-op batch; allocates nothing.
    pub fn empty() -> Batch {
        Batch::default()
    }

    /// Takes `region` as a batch after checking that it holds whole values and nothing else.
    pub fn from_region(region: Bytes) -> Result<Batch, BadRegion> {
        let mut at = 0;
        let mut len: u32 = 0;
        let mut run = RunCheck::default();
        while at < region.len() {
            let next = region
                .get(at..)
                .and_then(|rest| Some((value_header(rest)?.0, value_extent(rest)?)))
                .and_then(|(id, extent)| Some((id, at.checked_add(extent)?)))
                .filter(|_| len < u32::MAX)
                .ok_or(BadRegion { at_bytes: at })?;
            run.push(next.0);
            at = next.1;
            len += 1;
        }
        Ok(Batch::with_crc32(region, len, run.is_run()))
    }

    /// A region the caller has already walked value by value (the wire decoder, which reports a bad
    /// value by its field, and tells whether the values are a run with [`RunCheck`]): `len`
    /// values, nothing else. `crc32` is the region's checksum when the caller knows it (checked),
    /// `None` to compute it.
    pub(crate) fn from_checked_region(
        region: Bytes,
        len: u32,
        run: bool,
        crc32: Option<u32>,
    ) -> Batch {
        debug_assert_eq!(
            Batch::from_region(region.clone()).map(|b| (b.len, b.run)),
            Ok((len, run))
        );
        match crc32 {
            Some(crc32) => {
                debug_assert_eq!(crc32, crc32fast::hash(&region));
                Batch { region, len, run, crc32: Some(crc32) }
            }
            None => Batch::with_crc32(region, len, run),
        }
    }

    /// A batch whose checksum is taken now (one pass over `region`).
    fn with_crc32(region: Bytes, len: u32, run: bool) -> Batch {
        let crc32 = Some(crc32fast::hash(&region));
        Batch { region, len, run, crc32 }
    }

    /// The CRC-32 of [`Batch::region`]: what a frame carrying this batch alone puts in its header.
    pub fn crc32(&self) -> u32 {
        self.crc32.unwrap_or_else(|| crc32fast::hash(&self.region))
    }

    /// The id of the first value when the values are one proposer's, numbered consecutively from
    /// it (a batch as its proposer formed it); `None` when that is not known or the batch is empty.
    pub fn run_start(&self) -> Option<ValueId> {
        if !self.run {
            return None;
        }
        self.ids().next()
    }

    /// Splits off the longest front that stays within `bytes_max` (at least one value, so a value
    /// larger than the limit still goes alone); both parts are slices of this region.
    pub fn split_to_fit(&self, bytes_max: usize) -> (Batch, Option<Batch>) {
        if self.bytes() <= bytes_max {
            return (self.clone(), None);
        }
        let (mut at, mut len) = (0, 0);
        while let Some(extent) = self.region.get(at..).and_then(value_extent) {
            if len > 0 && at + extent > bytes_max {
                break;
            }
            at += extent;
            len += 1;
        }
        let head = Batch::with_crc32(self.region.slice(..at), len, self.run);
        let tail = Batch::with_crc32(self.region.slice(at..), self.len - len, self.run);
        (head, (!tail.is_empty()).then_some(tail))
    }

    /// The values, in order; each payload is a slice of the batch's region.
    pub fn values(&self) -> Values<'_> {
        Values { batch: self, at: 0, left: self.len }
    }

    /// The id this batch travels under as a proposal: its first value's id and its length (`None` for
    /// the empty batch, which no proposer sends).
    pub fn proposal_id(&self) -> Option<ProposalId> {
        let first = self.ids().next()?;
        Some(ProposalId { first, count: self.len })
    }

    /// The ids of the values, in order, without touching the payloads (no reference counting per
    /// value: this is what the learner's duplicate check and the proposer's bookkeeping read).
    pub fn ids(&self) -> impl Iterator<Item = ValueId> + '_ {
        let mut at = 0;
        (0..self.len).map_while(move |_| {
            let rest = self.region.get(at..)?;
            let (id, payload_len) = value_header(rest)?;
            at += VALUE_OVERHEAD_BYTES + payload_len;
            Some(id)
        })
    }

    /// The encoded values, as they go on the wire after the count.
    pub fn region(&self) -> &Bytes {
        &self.region
    }

    pub fn len(&self) -> usize {
        self.len as usize
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The encoded size of the values (the figure that `batch_bytes_max` bounds).
    pub fn bytes(&self) -> usize {
        self.region.len()
    }
}

impl fmt::Debug for Batch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.values().map(|v| v.id)).finish()
    }
}

/// Tells, value by value, whether ids form a run: one proposer's, numbered consecutively.
#[derive(Debug, Default)]
pub(crate) struct RunCheck {
    next: Option<ValueId>,
    broken: bool,
}

impl RunCheck {
    pub(crate) fn push(&mut self, id: ValueId) {
        self.push_run(Some(id), 1);
    }

    /// `count` values starting at `first` when they are a run, `None` when they are not (or not
    /// known to be).
    pub(crate) fn push_run(&mut self, first: Option<ValueId>, count: u32) {
        match first {
            Some(first) if self.next.is_none_or(|next| next == first) => {
                self.next =
                    Some(ValueId { seq: first.seq.wrapping_add(u64::from(count)), ..first });
            }
            _ => self.broken = true,
        }
    }

    pub(crate) fn is_run(&self) -> bool {
        !self.broken && self.next.is_some()
    }
}

/// Builds a batch value by value.
#[derive(Debug)]
pub struct BatchBuilder {
    region: BytesMut,
    len: u32,
    check: RunCheck,
}

impl BatchBuilder {
    pub fn with_capacity(bytes: usize) -> BatchBuilder {
        BatchBuilder { region: BytesMut::with_capacity(bytes), len: 0, check: RunCheck::default() }
    }

    /// Appends one value. Payloads longer than `u32::MAX` bytes cannot be framed and are refused by
    /// the proposer long before they reach a batch.
    pub fn push(&mut self, id: ValueId, payload: &[u8]) {
        put_value(&mut self.region, id, payload);
        self.len += 1;
        self.check.push(id);
    }

    /// Encoded bytes so far.
    pub fn bytes(&self) -> usize {
        self.region.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn finish(self) -> Batch {
        Batch::with_crc32(self.region.freeze(), self.len, self.check.is_run())
    }
}

/// Appends one encoded value (module docs) to `region`, growing it only if it has no room.
pub(crate) fn put_value(region: &mut BytesMut, id: ValueId, payload: &[u8]) {
    let payload_len = u32::try_from(payload.len()).expect("payload fits a u32 length");
    region.reserve(VALUE_OVERHEAD_BYTES + payload.len());
    region.put_u16_le(id.proposer);
    region.put_u32_le(id.incarnation);
    region.put_u64_le(id.seq);
    region.put_u32_le(payload_len);
    region.put_slice(payload);
}

/// Iterator over a batch's values.
#[derive(Debug)]
pub struct Values<'a> {
    batch: &'a Batch,
    at: usize,
    left: u32,
}

impl Iterator for Values<'_> {
    type Item = Value;

    fn next(&mut self) -> Option<Value> {
        let region = &self.batch.region;
        let rest = region.get(self.at..)?;
        let (id, payload_len) = value_header(rest)?;
        let start = self.at + VALUE_OVERHEAD_BYTES;
        // Every region was checked (or built) whole, so the payload is there; `get` keeps even a
        // broken invariant from panicking.
        region.get(start..start + payload_len)?;
        self.at = start + payload_len;
        self.left = self.left.saturating_sub(1);
        Some(Value { id, payload: region.slice(start..start + payload_len) })
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left as usize, Some(self.left as usize))
    }
}

impl ExactSizeIterator for Values<'_> {}

impl IntoIterator for Batch {
    type Item = Value;
    type IntoIter = IntoValues;

    fn into_iter(self) -> IntoValues {
        let left = self.len;
        IntoValues { batch: self, at: 0, left }
    }
}

/// Owning iterator over a batch's values; [`IntoValues::rest`] gives back what is left as a batch.
#[derive(Debug)]
pub struct IntoValues {
    batch: Batch,
    at: usize,
    left: u32,
}

impl IntoValues {
    /// The values not taken yet (a slice of the region, no copy; its checksum is taken only if it
    /// is ever sent).
    pub fn rest(self) -> Batch {
        let crc32 = if self.at == 0 { self.batch.crc32 } else { None };
        let region = self.batch.region.slice(self.at..);
        Batch { region, len: self.left, run: self.batch.run, crc32 }
    }
}

impl Iterator for IntoValues {
    type Item = Value;

    fn next(&mut self) -> Option<Value> {
        let mut values = Values { batch: &self.batch, at: self.at, left: self.left };
        let value = values.next()?;
        (self.at, self.left) = (values.at, values.left);
        Some(value)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left as usize, Some(self.left as usize))
    }
}

impl ExactSizeIterator for IntoValues {}

/// The id and payload length of the value at the start of `bytes`.
fn value_header(bytes: &[u8]) -> Option<(ValueId, usize)> {
    let header: &[u8; VALUE_OVERHEAD_BYTES] = bytes.first_chunk()?;
    let (proposer, rest) = header.split_first_chunk::<2>()?;
    let (incarnation, rest) = rest.split_first_chunk::<4>()?;
    let (seq, rest) = rest.split_first_chunk::<8>()?;
    let payload_len: &[u8; 4] = rest.first_chunk()?;
    let id = ValueId {
        proposer: u16::from_le_bytes(*proposer),
        incarnation: u32::from_le_bytes(*incarnation),
        seq: u64::from_le_bytes(*seq),
    };
    Some((id, usize::try_from(u32::from_le_bytes(*payload_len)).ok()?))
}

/// Bytes the whole value at the start of `bytes` takes, if it is all there.
fn value_extent(bytes: &[u8]) -> Option<usize> {
    let (_, payload_len) = value_header(bytes)?;
    let extent = VALUE_OVERHEAD_BYTES.checked_add(payload_len)?;
    (extent <= bytes.len()).then_some(extent)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(seq: u64, payload: &'static [u8]) -> Value {
        Value {
            id: ValueId { proposer: 2, incarnation: 9, seq },
            payload: Bytes::from_static(payload),
        }
    }

    #[test]
    fn values_come_back_in_order_and_measure_what_they_encode() {
        let values = vec![value(1, b"one"), value(2, b""), value(3, b"three")];
        let b = Batch::new(values.clone());
        assert_eq!(b.len(), 3);
        assert_eq!(b.bytes(), 3 * VALUE_OVERHEAD_BYTES + 8);
        assert_eq!(b.values().collect::<Vec<_>>(), values);
        assert_eq!(b.ids().collect::<Vec<_>>(), values.iter().map(|v| v.id).collect::<Vec<_>>());
        assert!(Batch::empty().is_empty() && Batch::empty().values().next().is_none());
    }

    #[test]
    fn a_run_is_one_proposers_consecutive_values_however_the_batch_was_made() {
        let run = Batch::new(vec![value(4, b"a"), value(5, b"b"), value(6, b"c")]);
        let start = run.ids().next();
        assert_eq!(run.run_start(), start);
        assert_eq!(Batch::from_region(run.region().clone()).unwrap().run_start(), start);
        let (head, tail) = run.split_to_fit(VALUE_OVERHEAD_BYTES + 1);
        assert_eq!(head.run_start(), start);
        let tail = tail.unwrap();
        assert_eq!(tail.run_start(), tail.ids().next());

        let gap = Batch::new(vec![value(4, b"a"), value(6, b"c")]);
        assert_eq!(gap.run_start(), None);
        assert_eq!(Batch::from_region(gap.region().clone()).unwrap().run_start(), None);
        let other = Value { id: ValueId { proposer: 3, incarnation: 9, seq: 7 }, ..value(7, b"") };
        assert_eq!(Batch::new(vec![value(6, b"c"), other]).run_start(), None, "two proposers");
        assert_eq!(Batch::empty().run_start(), None);
        let mixed = Batch::new(vec![value(4, b"a"), value(5, b"b"), value(9, b"c")]);
        let (head, _) = mixed.split_to_fit(2 * VALUE_OVERHEAD_BYTES + 2);
        assert_eq!(head.run_start(), None, "not known: its batch was no run");
        let same = Batch::new(vec![value(4, b"a"), value(5, b"b")]);
        assert!(same.run_start().is_some());
        assert_eq!(head, same, "equality is about the values only");
    }

    #[test]
    fn a_region_is_taken_only_whole() {
        let b = Batch::new(vec![value(1, b"abc"), value(2, b"de")]);
        assert_eq!(Batch::from_region(b.region().clone()), Ok(b.clone()));
        let cut = b.region().slice(..b.bytes() - 1);
        assert_eq!(Batch::from_region(cut), Err(BadRegion { at_bytes: VALUE_OVERHEAD_BYTES + 3 }));
        let header_only = b.region().slice(..VALUE_OVERHEAD_BYTES - 1);
        assert_eq!(Batch::from_region(header_only), Err(BadRegion { at_bytes: 0 }));
        assert_eq!(Batch::from_region(Bytes::new()), Ok(Batch::empty()));
    }

    #[test]
    fn split_to_fit_keeps_at_least_one_value_and_shares_the_region() {
        let b = Batch::new(vec![value(1, b"abc"), value(2, b"de"), value(3, b"f")]);
        let (head, tail) = b.split_to_fit(2 * VALUE_OVERHEAD_BYTES + 5);
        assert_eq!(head.values().map(|v| v.id.seq).collect::<Vec<_>>(), vec![1, 2]);
        let tail = tail.expect("one value left");
        assert_eq!(tail.values().map(|v| v.id.seq).collect::<Vec<_>>(), vec![3]);
        assert_eq!(tail.region().as_ptr(), b.region()[head.bytes()..].as_ptr());
        let (alone, rest) = b.split_to_fit(1);
        assert_eq!((alone.len(), rest.map(|r| r.len())), (1, Some(2)));
        assert_eq!(b.split_to_fit(b.bytes()), (b.clone(), None));
    }

    #[test]
    fn an_owning_iterator_hands_back_the_rest_as_a_batch() {
        let b = Batch::new(vec![value(1, b"a"), value(2, b"bb"), value(3, b"ccc")]);
        let mut it = b.clone().into_iter();
        assert_eq!(it.next().map(|v| v.id.seq), Some(1));
        assert_eq!(it.len(), 2);
        let rest = it.rest();
        assert_eq!(rest.values().map(|v| v.id.seq).collect::<Vec<_>>(), vec![2, 3]);
        assert_eq!(rest.bytes(), b.bytes() - VALUE_OVERHEAD_BYTES - 1);
    }
}
