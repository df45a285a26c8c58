//! Why a frame could not be decoded (or encoded).
//!
//! The one *incomplete* case, [`WireError::Truncated`], means "wait for more bytes"; every other variant
//! means the bytes are not a frame this build accepts, and no amount of further input will fix them.

use thiserror::Error;

use super::frame::{FRAME_BODY_BYTES_MAX, FRAME_MAGIC, FRAME_VERSION};

/// A decoding (or, for [`WireError::BodyTooLong`], encoding) failure.
///
/// `field` names the message field being read when the body turned out malformed, as
/// `"Variant.field"` (for example `"Phase1B.votes"`).
#[derive(Clone, PartialEq, Eq, Debug, Error)]
pub enum WireError {
    /// The buffer ends before the frame does. `needed_bytes` counts from the start of the frame and is
    /// always larger than the buffer: the whole frame once the header's length field has arrived, the
    /// header alone before that.
    #[error("incomplete frame: {needed_bytes} bytes needed from the frame start")]
    Truncated { needed_bytes: usize },

    #[error("bad frame magic {found:#06x}, expected {expected:#06x}", expected = FRAME_MAGIC)]
    BadMagic { found: u16 },

    /// A link or datagram that does not open with a [`Hello`](super::Hello).
    #[error("bad hello magic {found:#06x}, expected {expected:#06x}", expected = super::hello::HELLO_MAGIC)]
    BadHelloMagic { found: u16 },

    #[error("unsupported frame version {found}, this build speaks version {FRAME_VERSION}")]
    BadVersion { found: u8 },

    #[error("unknown message kind {found}")]
    UnknownKind { found: u8 },

    /// The header announces (or, when encoding, the message needs) a body over [`FRAME_BODY_BYTES_MAX`].
    #[error("frame body of {body_len_bytes} bytes exceeds the maximum of {max} bytes", max = FRAME_BODY_BYTES_MAX)]
    BodyTooLong { body_len_bytes: usize },

    /// `part` is `"fields"` or `"regions"` (see the `wire` module docs).
    #[error(
        "checksum mismatch in the {part}: header says {header_crc32:#010x}, they hash to {body_crc32:#010x}"
    )]
    ChecksumMismatch { part: &'static str, header_crc32: u32, body_crc32: u32 },

    /// The body ends in the middle of a field: the sender wrote fewer bytes than its own fields announce.
    #[error("{field}: body ends early, {needed_bytes} bytes needed but {remaining_bytes} remain")]
    BodyUnderrun { field: &'static str, needed_bytes: usize, remaining_bytes: usize },

    /// A count read from the body cannot be right: even elements of the smallest size would not fit in
    /// what is left of the body. Refused before anything is allocated for them.
    #[error(
        "{field}: count {count} needs at least {needed_bytes} bytes but {remaining_bytes} remain in the body"
    )]
    CountTooLarge { field: &'static str, count: u32, needed_bytes: u64, remaining_bytes: usize },

    /// A bounded list announces more entries than any sender may put in it.
    #[error("{field}: {count} entries, at most {max} allowed")]
    TooManyEntries { field: &'static str, count: u8, max: usize },

    #[error("{field}: bool byte {found} is neither 0 nor 1")]
    BadBool { field: &'static str, found: u8 },

    #[error("{field}: option tag {found} is neither 0 (none) nor 1 (some)")]
    BadOptionTag { field: &'static str, found: u8 },

    #[error("{field}: tag {found} is neither 0 (the value) nor 1 (a proposal id)")]
    BadCarriedTag { field: &'static str, found: u8 },

    /// A proposal id that names no values: no proposer sends an empty proposal.
    #[error("{field}: a proposal id names at least one value")]
    EmptyProposal { field: &'static str },

    /// The ring is one `Ring::new` refuses.
    #[error("{field}: invalid ring of {members_len} members: {reason}")]
    InvalidRing { field: &'static str, members_len: u8, reason: &'static str },

    /// The body holds more bytes than its message uses.
    #[error("{trailing_bytes} unread bytes after the {kind} body")]
    TrailingBytes { kind: &'static str, trailing_bytes: usize },
}

impl WireError {
    /// True if the input is a valid beginning of a frame that has not fully arrived yet: a stream
    /// reader should wait for more bytes rather than give up on the connection.
    pub fn is_incomplete(&self) -> bool {
        matches!(self, WireError::Truncated { .. })
    }
}
