//! `wire`: how [`Msg`](crate::proto::msg::Msg) values travel as bytes.
//!
//! Every message is one self-delimiting *frame*: a fixed 20-byte header followed by the body. All
//! integers are little-endian and fixed width, and bools and option tags admit one byte each, so every
//! message has exactly one encoding: decode accepts exactly what encode produces.
//!
//! ```text
//! header  magic u16 = 0x5252 | version u8 = 4 | kind u8 | fields_len u32 | regions_len u32
//!         | fields_crc32 u32 | regions_crc32 u32
//! body    fields (fields_len bytes), then regions (regions_len bytes)
//! fields  the fields of the variant, in declaration order:
//!         u8 u8, u32 u32, NodeId u16, Round u64, Instance u64,
//!         Vid = rnd u64 + seq u64,
//!         ValueId = proposer u16 + incarnation u32 + seq u64,
//!         Batch = count u32 (its values are the next count × Value of the regions),
//!         Ring = len u8 + len × NodeId,
//!         Vote = instance u64 + v_rnd u64 + v_vid Vid + v_val Batch,  Vec<Vote> = count u32 + votes,
//!         ProposalId = ValueId + count u32 (at least 1),
//!         Carried = tag u8 (0 value, 1 proposal id) + Batch | ProposalId,
//!         Option<T> = tag u8 (0 none, 1 some) [+ T],  bool = u8 (0 or 1)
//! regions the values of every batch, in the order the fields name the batches:
//!         Value = ValueId + payload_len u32 + payload
//! ```
//!
//! Why the values go after the fields, with a checksum of their own (version 4): a batch is formed
//! once and then forwarded, hop after hop (U-Ring proposals, the M-Ring coordinator's Phase 2A). Its
//! checksum is taken once where it is formed and kept with it ([`Batch`](crate::proto::types::Batch)),
//! and a frame that carries one batch, which is every Proposal, Phase 2A and Decision, puts that
//! checksum in its header, so a sender no longer passes over the values to checksum them. (Version 3
//! checksummed the whole body at every send, the cost of a full pass at every hop: a sixth of U-Ring's
//! throughput in a build without checksums.) A receiver still checks every byte, the fields and the
//! regions, before it believes any field. The split also leaves the regions contiguous for a sender
//! that would hand them to the kernel without copying.
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
pub use encode::{encode, encode_sharing, encoded_len, try_encode};
pub use error::WireError;
pub use frame::{
    FRAME_BODY_BYTES_MAX, FRAME_HEADER_BYTES, FRAME_MAGIC, FRAME_VERSION, complete_frame_len,
    seal_frame,
};
pub use hello::{HELLO_BYTES, Hello};
pub use kind::Kind;
