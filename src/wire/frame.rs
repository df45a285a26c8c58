//! The frame envelope: the 20-byte header that delimits, tags and checksums one message body.
//!
//! A body is the message's fields followed by its batch regions (see the `wire` module docs), each
//! part with its own length and CRC-32 in the header. A frame that carries one batch, which is every
//! Proposal, Phase 2A and Decision, takes the regions' checksum from the batch itself
//! ([`Batch::crc32`](crate::proto::types::Batch::crc32), computed once where the batch was formed), so
//! forwarding a batch costs no pass over its bytes; the receiver still checks every byte once.

#![deny(
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

use super::error::WireError;
use super::kind::Kind;

/// The first two bytes of every frame ("RR"): catches a peer that speaks something else, or a stream
/// that lost its place, before its length field is believed.
pub const FRAME_MAGIC: u16 = 0x5252;

/// The format version this build writes and the only one it reads.
pub const FRAME_VERSION: u8 = 4;

/// magic (2) + version (1) + kind (1) + fields_len (4) + regions_len (4) + fields_crc32 (4) +
/// regions_crc32 (4).
pub const FRAME_HEADER_BYTES: usize = 20;

/// The largest body a frame may carry. Bounds what one hostile or corrupt length field can make a
/// reader buffer or allocate.
pub const FRAME_BODY_BYTES_MAX: usize = 4 * 1024 * 1024;

// Where each header field starts.
const MAGIC_AT: usize = 0;
const VERSION_AT: usize = 2;
const KIND_AT: usize = 3;
const FIELDS_LEN_AT: usize = 4;
const REGIONS_LEN_AT: usize = 8;
const FIELDS_CRC_AT: usize = 12;
const REGIONS_CRC_AT: usize = 16;

/// A validated header.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) struct FrameHeader {
    pub kind: Kind,
    /// The fields part of the body, which comes first. With `regions_len_bytes`, at most
    /// [`FRAME_BODY_BYTES_MAX`].
    pub fields_len_bytes: usize,
    /// The batch regions, back to back after the fields.
    pub regions_len_bytes: usize,
    pub fields_crc32: u32,
    pub regions_crc32: u32,
}

impl FrameHeader {
    /// The header bytes. The body must not exceed [`FRAME_BODY_BYTES_MAX`] (the encoder checks).
    pub(crate) fn to_bytes(self) -> [u8; FRAME_HEADER_BYTES] {
        // Saturating keeps this total; a length that large is refused by the encoder before it gets here.
        let len = |bytes: usize| u32::try_from(bytes).unwrap_or(u32::MAX).to_le_bytes();
        let fields: [&[u8]; 6] = [
            &FRAME_MAGIC.to_le_bytes(),
            &[FRAME_VERSION, self.kind.byte()],
            &len(self.fields_len_bytes),
            &len(self.regions_len_bytes),
            &self.fields_crc32.to_le_bytes(),
            &self.regions_crc32.to_le_bytes(),
        ];
        let mut header = [0; FRAME_HEADER_BYTES];
        for (to, from) in header.iter_mut().zip(fields.into_iter().flatten()) {
            *to = *from;
        }
        header
    }

    /// Reads the header at the start of `buf`.
    ///
    /// Every header field that has fully arrived is checked even if the rest has not, so garbage is
    /// reported as malformed as early as possible instead of being waited on. If the header is
    /// incomplete the error is [`WireError::Truncated`], asking for the whole frame once the length
    /// field is known.
    pub(crate) fn parse(buf: &[u8]) -> Result<FrameHeader, WireError> {
        if let Some(bytes) = field::<2>(buf, MAGIC_AT) {
            let found = u16::from_le_bytes(bytes);
            if found != FRAME_MAGIC {
                return Err(WireError::BadMagic { found });
            }
        }
        if let Some([found]) = field::<1>(buf, VERSION_AT)
            && found != FRAME_VERSION
        {
            return Err(WireError::BadVersion { found });
        }
        let kind = match field::<1>(buf, KIND_AT) {
            Some([found]) => Some(Kind::from_byte(found).ok_or(WireError::UnknownKind { found })?),
            None => None,
        };
        let fields_len = field::<4>(buf, FIELDS_LEN_AT).map(u32::from_le_bytes);
        if let Some(f) = fields_len {
            // Either length alone may already condemn the frame.
            checked_body_len(u64::from(f))?;
        }
        let regions_len = field::<4>(buf, REGIONS_LEN_AT).map(u32::from_le_bytes);
        let body_len_bytes = match (fields_len, regions_len) {
            (Some(f), Some(r)) => {
                Some(checked_body_len(u64::from(f).saturating_add(u64::from(r)))?)
            }
            _ => None,
        };
        let fields_crc32 = field::<4>(buf, FIELDS_CRC_AT).map(u32::from_le_bytes);
        let regions_crc32 = field::<4>(buf, REGIONS_CRC_AT).map(u32::from_le_bytes);
        match (kind, fields_len, regions_len, fields_crc32, regions_crc32, body_len_bytes) {
            (Some(kind), Some(f), Some(r), Some(fields_crc32), Some(regions_crc32), Some(_)) => {
                Ok(FrameHeader {
                    kind,
                    // Both fit a usize: their sum passed the body limit.
                    fields_len_bytes: usize::try_from(f).unwrap_or(usize::MAX),
                    regions_len_bytes: usize::try_from(r).unwrap_or(usize::MAX),
                    fields_crc32,
                    regions_crc32,
                })
            }
            (.., body_len_bytes) => Err(WireError::Truncated {
                needed_bytes: body_len_bytes.map_or(FRAME_HEADER_BYTES, frame_len_bytes),
            }),
        }
    }

    /// Fields plus regions.
    pub(crate) fn body_len_bytes(&self) -> usize {
        self.fields_len_bytes.saturating_add(self.regions_len_bytes)
    }

    /// Header plus body.
    pub(crate) fn frame_len_bytes(&self) -> usize {
        frame_len_bytes(self.body_len_bytes())
    }
}

/// Appends a frame of kind byte `kind` with a correct header around arbitrary `fields` and
/// `regions`: for tests and fuzzers, which need the decoder to look past the checksums at contents no
/// encoder writes. (The lengths saturate; a body over [`FRAME_BODY_BYTES_MAX`] is refused by the
/// decoder like any other.)
pub fn seal_frame(kind: u8, fields: &[u8], regions: &[u8], out: &mut Vec<u8>) {
    let len = |bytes: &[u8]| u32::try_from(bytes.len()).unwrap_or(u32::MAX).to_le_bytes();
    out.extend_from_slice(&FRAME_MAGIC.to_le_bytes());
    out.extend_from_slice(&[FRAME_VERSION, kind]);
    out.extend_from_slice(&len(fields));
    out.extend_from_slice(&len(regions));
    out.extend_from_slice(&crc32fast::hash(fields).to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(regions).to_le_bytes());
    out.extend_from_slice(fields);
    out.extend_from_slice(regions);
}

/// The length of the frame at the start of `buf` once all of it is there: `Ok(None)` while it is
/// incomplete, an error when its header is malformed. A stream receiver takes exactly this many
/// bytes out of its buffer and decodes them (`decode_bytes`) without copying.
pub fn complete_frame_len(buf: &[u8]) -> Result<Option<usize>, WireError> {
    match FrameHeader::parse(buf) {
        Ok(header) => Ok(Some(header.frame_len_bytes()).filter(|&n| n <= buf.len())),
        Err(e) if e.is_incomplete() => Ok(None),
        Err(e) => Err(e),
    }
}

/// Header plus a body of `body_len_bytes` (bounded by [`FRAME_BODY_BYTES_MAX`], so it cannot overflow;
/// saturating keeps it total anyway).
fn frame_len_bytes(body_len_bytes: usize) -> usize {
    FRAME_HEADER_BYTES.saturating_add(body_len_bytes)
}

fn checked_body_len(body_len: u64) -> Result<usize, WireError> {
    // Saturating keeps the conversion total; anything that large is refused just below.
    let body_len_bytes = usize::try_from(body_len).unwrap_or(usize::MAX);
    if body_len_bytes > FRAME_BODY_BYTES_MAX {
        return Err(WireError::BodyTooLong { body_len_bytes });
    }
    Ok(body_len_bytes)
}

/// The `N` bytes at `at`, if the buffer holds all of them.
fn field<const N: usize>(buf: &[u8], at: usize) -> Option<[u8; N]> {
    buf.get(at..)?.first_chunk::<N>().copied()
}
