//! `wire`: how [`Msg`](crate::proto::msg::Msg) values travel as bytes.
//!
//! Every message is one self-delimiting *frame*: a fixed 12-byte header followed by the body. All
//! integers are little-endian and fixed width, and bools and option tags admit one byte each, so every
//! message has exactly one encoding: decode accepts exactly what encode produces.
//!
//! ```text
//! header  magic u16 = 0x5252 | version u8 = 2 | kind u8 | body_len u32 | crc32 u32 (of the body)
//! body    the fields of the variant, in declaration order:
//!         u8 u8, u32 u32, NodeId u16, Round u64, Instance u64,
//!         Vid = rnd u64 + seq u64,
//!         ValueId = proposer u16 + incarnation u32 + seq u64,
//!         Value = ValueId + payload_len u32 + payload,
//!         Batch = count u32 + count × Value,
//!         Ring = len u8 + len × NodeId,
//!         Vote = instance u64 + v_rnd u64 + v_vid Vid + v_val Batch,  Vec<Vote> = count u32 + votes,
//!         ProposalId = ValueId + count u32 (at least 1),
//!         Carried = tag u8 (0 value, 1 proposal id) + Batch | ProposalId,
//!         Option<T> = tag u8 (0 none, 1 some) [+ T],  bool = u8 (0 or 1)
//! ```
//!
//! The kind byte of each variant is listed on [`Kind`]. Bodies are bounded by
//! [`FRAME_BODY_BYTES_MAX`]; decoding never panics and tells a frame that is merely incomplete (wait
//! for more bytes, [`WireError::is_incomplete`]) from one that is malformed (drop the connection).
#![forbid(unsafe_code)]

mod decode;
mod encode;
mod error;
mod frame;
mod hello;
mod kind;
mod reader;

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;

pub use decode::{decode, decode_bytes};
pub use encode::{encode, encoded_len, try_encode};
pub use error::WireError;
pub use frame::{
    FRAME_BODY_BYTES_MAX, FRAME_HEADER_BYTES, FRAME_MAGIC, FRAME_VERSION, complete_frame_len,
};
pub use hello::{HELLO_BYTES, Hello};
pub use kind::Kind;
