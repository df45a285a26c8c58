//! The frame envelope: the 12-byte header that delimits, tags and checksums one message body.

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
pub const FRAME_VERSION: u8 = 3;

/// magic (2) + version (1) + kind (1) + body_len (4) + crc32 (4).
pub const FRAME_HEADER_BYTES: usize = 12;

/// The largest body a frame may carry. Bounds what one hostile or corrupt length field can make a
/// reader buffer or allocate.
pub const FRAME_BODY_BYTES_MAX: usize = 4 * 1024 * 1024;

// Where each header field starts.
const MAGIC_AT: usize = 0;
const VERSION_AT: usize = 2;
const KIND_AT: usize = 3;
const BODY_LEN_AT: usize = 4;
const CRC_AT: usize = 8;

/// A validated header.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) struct FrameHeader {
    pub kind: Kind,
    /// At most [`FRAME_BODY_BYTES_MAX`].
    pub body_len_bytes: usize,
    pub body_crc32: u32,
}

impl FrameHeader {
    /// The header bytes. `body_len_bytes` must not exceed [`FRAME_BODY_BYTES_MAX`] (the encoder checks).
    pub(crate) fn to_bytes(self) -> [u8; FRAME_HEADER_BYTES] {
        // Saturating keeps this total; a length that large is refused by the encoder before it gets here.
        let body_len = u32::try_from(self.body_len_bytes).unwrap_or(u32::MAX);
        let [m0, m1] = FRAME_MAGIC.to_le_bytes();
        let [l0, l1, l2, l3] = body_len.to_le_bytes();
        let [c0, c1, c2, c3] = self.body_crc32.to_le_bytes();
        [m0, m1, FRAME_VERSION, self.kind.byte(), l0, l1, l2, l3, c0, c1, c2, c3]
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
        let body_len_bytes = match field::<4>(buf, BODY_LEN_AT) {
            Some(bytes) => Some(checked_body_len(u32::from_le_bytes(bytes))?),
            None => None,
        };
        let body_crc32 = field::<4>(buf, CRC_AT).map(u32::from_le_bytes);
        match (kind, body_len_bytes, body_crc32) {
            (Some(kind), Some(body_len_bytes), Some(body_crc32)) => {
                Ok(FrameHeader { kind, body_len_bytes, body_crc32 })
            }
            (_, body_len_bytes, _) => Err(WireError::Truncated {
                needed_bytes: body_len_bytes.map_or(FRAME_HEADER_BYTES, frame_len_bytes),
            }),
        }
    }

    /// Header plus body.
    pub(crate) fn frame_len_bytes(&self) -> usize {
        frame_len_bytes(self.body_len_bytes)
    }
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

fn checked_body_len(body_len: u32) -> Result<usize, WireError> {
    // A u32 fits a usize on every target this crate supports; saturating keeps the conversion total.
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
