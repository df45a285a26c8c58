//! A bounds-checked cursor over one frame body (its fields, and its batch regions, which a reader of
//! a batch switches to), and the two ways a payload can be taken out of it.
//!
//! Every read either returns the bytes it asked for or a [`WireError`]; nothing here can index out
//! of bounds or overflow, whatever the body holds.

#![deny(
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

use bytes::Bytes;

use super::error::WireError;

/// How a decoded payload gets its own [`Bytes`] from the slice of input it occupies. This is the only
/// thing the two public decoders do differently, so the decoder itself is written once, generic over it.
pub(crate) trait PayloadSource {
    /// `slice` is always a sub-slice of the buffer being decoded.
    fn payload(&self, slice: &[u8]) -> Bytes;
}

/// For a borrowed `&[u8]` input: the payload must outlive the buffer, so it is copied.
pub(crate) struct CopyPayloads;

impl PayloadSource for CopyPayloads {
    fn payload(&self, slice: &[u8]) -> Bytes {
        Bytes::copy_from_slice(slice)
    }
}

/// For a [`Bytes`] input: payloads share its allocation (zero-copy).
pub(crate) struct SharedPayloads<'a>(pub &'a Bytes);

impl PayloadSource for SharedPayloads<'_> {
    fn payload(&self, slice: &[u8]) -> Bytes {
        // `slice_ref` asserts that `slice` lies inside `self.0`. It does: the decoder reads from
        // `&self.0[..]` and the reader only ever narrows that slice.
        self.0.slice_ref(slice)
    }
}

/// What is left of one frame body.
pub(crate) struct Reader<'a, P> {
    /// Where reads go: the fields, or the regions while a batch is read (see [`Reader::switch_parts`]).
    rest: &'a [u8],
    /// The other part.
    other: &'a [u8],
    /// The whole regions part's length and (checked) checksum.
    regions_len_bytes: usize,
    regions_crc32: u32,
    payloads: &'a P,
}

impl<'a, P: PayloadSource> Reader<'a, P> {
    /// Reads `fields`; [`Reader::switch_parts`] turns to `regions` (whose checksum, checked, is
    /// `regions_crc32`) and back.
    pub(crate) fn new(
        fields: &'a [u8],
        regions: &'a [u8],
        regions_crc32: u32,
        payloads: &'a P,
    ) -> Self {
        let regions_len_bytes = regions.len();
        Reader { rest: fields, other: regions, regions_len_bytes, regions_crc32, payloads }
    }

    /// The checksum of `region` (a batch's values, read out of the regions part) when the header
    /// holds it: when the batch is the frame's only one, its region is the whole part.
    pub(crate) fn region_crc32(&self, region: &[u8]) -> Option<u32> {
        (region.len() == self.regions_len_bytes && !region.is_empty()).then_some(self.regions_crc32)
    }

    /// Bytes left in the part being read.
    pub(crate) fn remaining_bytes(&self) -> usize {
        self.rest.len()
    }

    /// Bytes left in the other part.
    pub(crate) fn other_remaining_bytes(&self) -> usize {
        self.other.len()
    }

    /// Reads from the other part from now on, where it was left.
    pub(crate) fn switch_parts(&mut self) {
        std::mem::swap(&mut self.rest, &mut self.other);
    }

    /// The next `len_bytes` bytes.
    fn take(&mut self, len_bytes: usize, field: &'static str) -> Result<&'a [u8], WireError> {
        let (head, tail) =
            self.rest.split_at_checked(len_bytes).ok_or(WireError::BodyUnderrun {
                field,
                needed_bytes: len_bytes,
                remaining_bytes: self.rest.len(),
            })?;
        self.rest = tail;
        Ok(head)
    }

    fn array<const N: usize>(&mut self, field: &'static str) -> Result<[u8; N], WireError> {
        let (head, tail) = self.rest.split_first_chunk::<N>().ok_or(WireError::BodyUnderrun {
            field,
            needed_bytes: N,
            remaining_bytes: self.rest.len(),
        })?;
        self.rest = tail;
        Ok(*head)
    }

    pub(crate) fn u8(&mut self, field: &'static str) -> Result<u8, WireError> {
        let [byte] = self.array::<1>(field)?;
        Ok(byte)
    }

    pub(crate) fn u16(&mut self, field: &'static str) -> Result<u16, WireError> {
        self.array(field).map(u16::from_le_bytes)
    }

    pub(crate) fn u32(&mut self, field: &'static str) -> Result<u32, WireError> {
        self.array(field).map(u32::from_le_bytes)
    }

    pub(crate) fn u64(&mut self, field: &'static str) -> Result<u64, WireError> {
        self.array(field).map(u64::from_le_bytes)
    }

    /// A u32 element count, checked against the rest of the body: each element takes at least
    /// `element_bytes_min` bytes, so a count that could not fit is refused before the caller
    /// allocates room for it.
    pub(crate) fn count(
        &mut self,
        field: &'static str,
        element_bytes_min: usize,
    ) -> Result<usize, WireError> {
        let count = self.u32(field)?;
        self.check_count(count, field, element_bytes_min)
    }

    /// [`Reader::count`] for a count already read (from the other part).
    pub(crate) fn check_count(
        &self,
        count: u32,
        field: &'static str,
        element_bytes_min: usize,
    ) -> Result<usize, WireError> {
        let remaining_bytes = self.rest.len();
        // usize → u64 is lossless on every target Rust supports; the product cannot overflow
        // (u32 × small constant) but saturates to stay total.
        let needed_bytes = u64::from(count).saturating_mul(element_bytes_min as u64);
        if needed_bytes > remaining_bytes as u64 {
            return Err(WireError::CountTooLarge { field, count, needed_bytes, remaining_bytes });
        }
        // Fits: it is at most the number of remaining bytes (element_bytes_min ≥ 1 at every caller).
        usize::try_from(count).map_err(|_| WireError::CountTooLarge {
            field,
            count,
            needed_bytes,
            remaining_bytes,
        })
    }

    /// What is left of the body; with [`Reader::remaining_bytes`] after some reads, it tells which
    /// bytes those reads covered.
    pub(crate) fn rest(&self) -> &'a [u8] {
        self.rest
    }

    /// Steps over `len_bytes` bytes that must be there.
    pub(crate) fn skip(&mut self, len_bytes: u32, field: &'static str) -> Result<(), WireError> {
        let remaining_bytes = self.rest.len();
        let len_bytes = usize::try_from(len_bytes).map_err(|_| WireError::BodyUnderrun {
            field,
            needed_bytes: usize::MAX,
            remaining_bytes,
        })?;
        self.take(len_bytes, field).map(|_| ())
    }

    /// `slice` (a part of the body already read) as its own [`Bytes`].
    pub(crate) fn payload_of(&self, slice: &[u8]) -> Bytes {
        self.payloads.payload(slice)
    }
}
