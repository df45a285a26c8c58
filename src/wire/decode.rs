//! Frame → message. Written once, generic over how payloads are produced ([`PayloadSource`]), and
//! total: any input yields a message or a [`WireError`], never a panic.

#![deny(
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

use bytes::Bytes;

use crate::proto::batch::RunCheck;
use crate::proto::decided_ids::{DECIDED_IDS_PER_PACKET_MAX, DecidedIds};
use crate::proto::msg::{Carried, Msg};
use crate::proto::types::{
    Batch, ProposalId, RING_MEMBERS_MAX, Ring, Round, VALUE_OVERHEAD_BYTES, ValueId, Vid, Vote,
};

use super::error::WireError;
use super::frame::{FRAME_HEADER_BYTES, FrameHeader};
use super::kind::Kind;
use super::reader::{CopyPayloads, PayloadSource, Reader, SharedPayloads};

// Smallest encoded sizes, used to refuse counts the rest of the body cannot hold.
const ROUND_BYTES: usize = 8;
const INSTANCE_BYTES: usize = 8;
const VID_BYTES: usize = ROUND_BYTES + 8;
const VALUE_ID_BYTES: usize = 2 + 4 + 8;
const COUNT_BYTES: usize = 4;
const VALUE_BYTES_MIN: usize = VALUE_ID_BYTES + COUNT_BYTES;
const VOTE_BYTES_MIN: usize = INSTANCE_BYTES + ROUND_BYTES + VID_BYTES + COUNT_BYTES;

// `Value::batch_bytes` (types.rs) promises the batch limit measures exactly what goes on the wire.
const _: () = assert!(VALUE_BYTES_MIN == VALUE_OVERHEAD_BYTES);

/// Decodes the frame at the start of `buf`; returns the message and the frame's length in bytes
/// (what to drop from the front of a stream buffer). Bytes after the frame are not looked at.
/// Payloads are copied out of `buf`; see [`decode_bytes`] to share them instead.
pub fn decode(buf: &[u8]) -> Result<(Msg, usize), WireError> {
    decode_with(buf, &CopyPayloads)
}

/// [`decode`] for a [`Bytes`] buffer: every payload is a zero-copy slice of `buf`.
pub fn decode_bytes(buf: &Bytes) -> Result<(Msg, usize), WireError> {
    decode_with(buf, &SharedPayloads(buf))
}

fn decode_with<P: PayloadSource>(buf: &[u8], payloads: &P) -> Result<(Msg, usize), WireError> {
    let header = FrameHeader::parse(buf)?;
    let frame_len_bytes = header.frame_len_bytes();
    let body = buf
        .get(FRAME_HEADER_BYTES..frame_len_bytes)
        .ok_or(WireError::Truncated { needed_bytes: frame_len_bytes })?;
    // The body is exactly fields + regions long, so this split cannot fail.
    let (fields, regions) = body
        .split_at_checked(header.fields_len_bytes)
        .ok_or(WireError::Truncated { needed_bytes: frame_len_bytes })?;
    // Every byte is checked before any field is believed.
    for (part, bytes, header_crc32) in
        [("fields", fields, header.fields_crc32), ("regions", regions, header.regions_crc32)]
    {
        let body_crc32 = crc32fast::hash(bytes);
        if body_crc32 != header_crc32 {
            return Err(WireError::ChecksumMismatch { part, header_crc32, body_crc32 });
        }
    }
    let mut reader = Reader::new(fields, regions, header.regions_crc32, payloads);
    let msg = read_msg(&mut reader, header.kind)?;
    // Trailing bytes would mean sender and receiver disagree on the layout: refuse rather than guess.
    let trailing_bytes = reader.remaining_bytes().saturating_add(reader.other_remaining_bytes());
    if trailing_bytes != 0 {
        return Err(WireError::TrailingBytes { kind: msg.kind(), trailing_bytes });
    }
    Ok((msg, frame_len_bytes))
}

/// The body of a `kind` message; fields in declaration order, matching `encode::put_msg`. (Struct
/// expressions evaluate their fields in the order written, which is what sequences the reads.)
fn read_msg<P: PayloadSource>(r: &mut Reader<'_, P>, kind: Kind) -> Result<Msg, WireError> {
    Ok(match kind {
        Kind::Proposal => Msg::Proposal {
            values: read_batch(r, "Proposal.values")?,
            via_rnd: read_round(r, "Proposal.via_rnd")?,
            ttl: r.u8("Proposal.ttl")?,
        },
        Kind::Phase1A => Msg::Phase1A {
            c_rnd: read_round(r, "Phase1A.c_rnd")?,
            from: r.u64("Phase1A.from")?,
            ring: read_ring(r, "Phase1A.ring")?,
        },
        Kind::Phase1B => Msg::Phase1B {
            rnd: read_round(r, "Phase1B.rnd")?,
            from: r.u64("Phase1B.from")?,
            trimmed_below: r.u64("Phase1B.trimmed_below")?,
            votes_below: r.u64("Phase1B.votes_below")?,
            votes: read_votes(r, "Phase1B.votes")?,
        },
        Kind::Nack => Msg::Nack { rnd: read_round(r, "Nack.rnd")? },
        Kind::Phase2A => Msg::Phase2A {
            c_rnd: read_round(r, "Phase2A.c_rnd")?,
            instance: r.u64("Phase2A.instance")?,
            c_vid: read_vid(r, "Phase2A.c_vid")?,
            c_val: read_carried(r, "Phase2A.c_val")?,
            ring: read_ring(r, "Phase2A.ring")?,
            decided: read_decided(r, "Phase2A.decided")?,
        },
        Kind::Phase2B => Msg::Phase2B {
            c_rnd: read_round(r, "Phase2B.c_rnd")?,
            instance: r.u64("Phase2B.instance")?,
            c_vid: read_vid(r, "Phase2B.c_vid")?,
            ring: read_ring(r, "Phase2B.ring")?,
        },
        Kind::Decision => Msg::Decision {
            instance: r.u64("Decision.instance")?,
            c_vid: read_vid(r, "Decision.c_vid")?,
            c_val: read_option(r, "Decision.c_val", read_carried)?,
            ring: read_option(r, "Decision.ring", read_round_ring)?,
        },
        Kind::Retransmit => {
            Msg::Retransmit { from: r.u64("Retransmit.from")?, to: r.u64("Retransmit.to")? }
        }
        Kind::Trimmed => Msg::Trimmed { trimmed_below: r.u64("Trimmed.trimmed_below")? },
        Kind::Heartbeat => Msg::Heartbeat {
            acceptor_ready: read_bool(r, "Heartbeat.acceptor_ready")?,
            decided_below: r.u64("Heartbeat.decided_below")?,
            applied_below: r.u64("Heartbeat.applied_below")?,
        },
        Kind::FlowNotice => Msg::FlowNotice {
            learner: r.u16("FlowNotice.learner")?,
            backlog_instances: r.u32("FlowNotice.backlog_instances")?,
        },
    })
}

fn read_round<P: PayloadSource>(
    r: &mut Reader<'_, P>,
    field: &'static str,
) -> Result<Round, WireError> {
    r.u64(field).map(Round)
}

fn read_vid<P: PayloadSource>(
    r: &mut Reader<'_, P>,
    field: &'static str,
) -> Result<Vid, WireError> {
    Ok(Vid { rnd: read_round(r, field)?, seq: r.u64(field)? })
}

fn read_value_id<P: PayloadSource>(
    r: &mut Reader<'_, P>,
    field: &'static str,
) -> Result<ValueId, WireError> {
    Ok(ValueId { proposer: r.u16(field)?, incarnation: r.u32(field)?, seq: r.u64(field)? })
}

/// Steps over one value, checking that all of it is there; returns its id.
fn skip_value<P: PayloadSource>(
    r: &mut Reader<'_, P>,
    field: &'static str,
) -> Result<ValueId, WireError> {
    let id = read_value_id(r, field)?;
    let payload_len_bytes = r.u32(field)?;
    r.skip(payload_len_bytes, field)?;
    Ok(id)
}

/// A count among the fields; that many values back to back are the next bytes of the regions. The
/// region is taken whole (one copy, or a shared slice with [`decode_bytes`]) once every value in
/// it has been checked.
fn read_batch<'a, P: PayloadSource>(
    r: &mut Reader<'a, P>,
    field: &'static str,
) -> Result<Batch, WireError> {
    let count = r.u32(field)?;
    r.switch_parts();
    let count = r.check_count(count, field, VALUE_BYTES_MIN)?;
    let start = r.rest();
    let mut run = RunCheck::default();
    for _ in 0..count {
        run.push(skip_value(r, field)?);
    }
    let region_bytes = start.len().saturating_sub(r.remaining_bytes());
    let region = start.get(..region_bytes).unwrap_or_default();
    r.switch_parts();
    // `count` came from a u32 and every one of them was read.
    let len = u32::try_from(count).unwrap_or(u32::MAX);
    let crc32 = r.region_crc32(region);
    Ok(Batch::from_checked_region(r.payload_of(region), len, run.is_run(), crc32))
}

fn read_carried<P: PayloadSource>(
    r: &mut Reader<'_, P>,
    field: &'static str,
) -> Result<Carried, WireError> {
    match r.u8(field)? {
        0 => read_batch(r, field).map(Carried::Value),
        1 => {
            let first = read_value_id(r, field)?;
            match r.u32(field)? {
                0 => Err(WireError::EmptyProposal { field }),
                count => Ok(Carried::Proposal(ProposalId { first, count })),
            }
        }
        found => Err(WireError::BadCarriedTag { field, found }),
    }
}

fn read_ring<P: PayloadSource>(
    r: &mut Reader<'_, P>,
    field: &'static str,
) -> Result<Ring, WireError> {
    let members_len = r.u8(field)?;
    let invalid = |reason| WireError::InvalidRing { field, members_len, reason };
    // Checked before the members are read, so a hostile length is named as such rather than
    // surfacing as a short body.
    if members_len == 0 {
        return Err(invalid("a ring needs at least one member"));
    }
    let mut members = [0; RING_MEMBERS_MAX];
    let members = members
        .get_mut(..usize::from(members_len))
        .ok_or(invalid("more members than RING_MEMBERS_MAX"))?;
    for member in members.iter_mut() {
        *member = r.u16(field)?;
    }
    // Ring::new is the one authority on what a ring is; the only rule left to break is uniqueness.
    Ring::new(members).ok_or(invalid("a member appears twice"))
}

fn read_round_ring<P: PayloadSource>(
    r: &mut Reader<'_, P>,
    field: &'static str,
) -> Result<(Round, Ring), WireError> {
    Ok((read_round(r, field)?, read_ring(r, field)?))
}

fn read_vote<P: PayloadSource>(
    r: &mut Reader<'_, P>,
    field: &'static str,
) -> Result<Vote, WireError> {
    Ok(Vote {
        instance: r.u64(field)?,
        v_rnd: read_round(r, field)?,
        v_vid: read_vid(r, field)?,
        v_val: read_batch(r, field)?,
    })
}

fn read_votes<P: PayloadSource>(
    r: &mut Reader<'_, P>,
    field: &'static str,
) -> Result<Vec<Vote>, WireError> {
    let count = r.count(field, VOTE_BYTES_MIN)?;
    let mut votes = Vec::with_capacity(count);
    for _ in 0..count {
        votes.push(read_vote(r, field)?);
    }
    Ok(votes)
}

fn read_bool<P: PayloadSource>(
    r: &mut Reader<'_, P>,
    field: &'static str,
) -> Result<bool, WireError> {
    match r.u8(field)? {
        0 => Ok(false),
        1 => Ok(true),
        found => Err(WireError::BadBool { field, found }),
    }
}

fn read_decided<P: PayloadSource>(
    r: &mut Reader<'_, P>,
    field: &'static str,
) -> Result<DecidedIds, WireError> {
    let count = r.u8(field)?;
    if usize::from(count) > DECIDED_IDS_PER_PACKET_MAX {
        return Err(WireError::TooManyEntries { field, count, max: DECIDED_IDS_PER_PACKET_MAX });
    }
    let mut decided = DecidedIds::NONE;
    for _ in 0..count {
        let instance = r.u64(field)?;
        // Cannot fail: the count was checked against the bound above.
        decided.push(instance, read_vid(r, field)?);
    }
    Ok(decided)
}

fn read_option<'a, P: PayloadSource, T>(
    r: &mut Reader<'a, P>,
    field: &'static str,
    read: fn(&mut Reader<'a, P>, &'static str) -> Result<T, WireError>,
) -> Result<Option<T>, WireError> {
    match r.u8(field)? {
        0 => Ok(None),
        1 => read(r, field).map(Some),
        found => Err(WireError::BadOptionTag { field, found }),
    }
}
