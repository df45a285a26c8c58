//! Message → frame. The body is described once, generically over a [`Sink`], so the two writers (the
//! fields, then the batch regions) and the length computation ([`encoded_len`]) cannot disagree.

use bytes::Bytes;

use crate::proto::decided_ids::DecidedIds;
use crate::proto::msg::{Carried, Msg};
use crate::proto::types::{Batch, Ring, Round, ValueId, Vid, Vote};

use super::error::WireError;
use super::frame::{FRAME_BODY_BYTES_MAX, FRAME_HEADER_BYTES, FrameHeader};
use super::kind::Kind;

/// Appends one frame holding `msg` to `out`. Nothing is allocated besides growing `out`.
///
/// # Panics
///
/// If the body would exceed [`FRAME_BODY_BYTES_MAX`]: no peer would accept the frame, so sending it
/// is a bug in whoever built the message (batches are meant to be bounded well below the limit). `out`
/// is left as it was before the call. Use [`try_encode`] to get an error instead.
pub fn encode(msg: &Msg, out: &mut Vec<u8>) {
    encode_sharing(msg, out, &mut |_, _| false);
}

/// [`encode`], where the values of a batch may stay where they are: `share(region, at)` is asked
/// for each batch region in turn, with `at` the length of `out` at that point, and when it returns
/// true the region is not copied into `out` (the caller sends it from where it is, right after
/// `out[..at]`; see `io::outbuf`). The frame is then `out`'s new bytes with the shared regions
/// spliced in at their places, and [`encoded_len`] long.
pub fn encode_sharing(msg: &Msg, out: &mut Vec<u8>, share: &mut dyn FnMut(&Bytes, usize) -> bool) {
    let frame_start = out.len();
    // The header needs the parts' lengths and checksums: reserve it, write the body, then patch it.
    out.extend_from_slice(&[0; FRAME_HEADER_BYTES]);
    let fields_start = out.len();
    let mut fields = FieldWriter { out, regions: Regions::None, regions_bytes: 0 };
    put_msg(&mut fields, msg);
    let (regions, regions_len_bytes) = (fields.regions, fields.regions_bytes);
    let fields_len_bytes = out.len() - fields_start;
    let body_len_bytes = fields_len_bytes.saturating_add(regions_len_bytes);
    if body_len_bytes > FRAME_BODY_BYTES_MAX {
        out.truncate(frame_start);
        panic!(
            "{} message body of {body_len_bytes} bytes exceeds FRAME_BODY_BYTES_MAX ({FRAME_BODY_BYTES_MAX})",
            msg.kind()
        );
    }
    let fields_crc32 = crc32fast::hash(&out[fields_start..]);
    // Several regions are checksummed together as they are written; one brings its own checksum.
    let several = matches!(regions, Regions::Many).then(crc32fast::Hasher::new);
    let mut writer = RegionWriter { out, share, several };
    put_msg(&mut writer, msg);
    let regions_crc32 = match (regions, writer.several) {
        // The CRC-32 of no bytes.
        (Regions::None, _) => 0,
        // The whole regions part is this one batch: its own checksum, without a pass over it.
        (Regions::One { crc32 }, _) => crc32,
        (Regions::Many, several) => several.map_or(0, crc32fast::Hasher::finalize),
    };
    let header = FrameHeader {
        kind: Kind::of(msg),
        fields_len_bytes,
        regions_len_bytes,
        fields_crc32,
        regions_crc32,
    };
    out[frame_start..fields_start].copy_from_slice(&header.to_bytes());
}

/// Like [`encode`], but a body over [`FRAME_BODY_BYTES_MAX`] is reported as
/// [`WireError::BodyTooLong`] (with `out` untouched) instead of panicking.
pub fn try_encode(msg: &Msg, out: &mut Vec<u8>) -> Result<(), WireError> {
    let body_len_bytes = body_len_bytes(msg);
    if body_len_bytes > FRAME_BODY_BYTES_MAX {
        return Err(WireError::BodyTooLong { body_len_bytes });
    }
    encode(msg, out);
    Ok(())
}

/// The exact number of bytes [`encode`] appends for `msg` (header included). Walks the message but
/// touches no payload byte.
pub fn encoded_len(msg: &Msg) -> usize {
    FRAME_HEADER_BYTES.saturating_add(body_len_bytes(msg))
}

fn body_len_bytes(msg: &Msg) -> usize {
    let mut counter = ByteCounter(0);
    put_msg(&mut counter, msg);
    counter.0
}

/// Where an encoded body goes: the fields to the output buffer, then the regions to it, or both to a
/// counter that only measures them.
trait Sink {
    /// Bytes of the fields part.
    fn put(&mut self, bytes: &[u8]);

    /// The values of a batch, which go to the regions part.
    fn put_region(&mut self, batch: &Batch);

    fn put_u8(&mut self, value: u8) {
        self.put(&[value]);
    }

    fn put_u16(&mut self, value: u16) {
        self.put(&value.to_le_bytes());
    }

    fn put_u32(&mut self, value: u32) {
        self.put(&value.to_le_bytes());
    }

    fn put_u64(&mut self, value: u64) {
        self.put(&value.to_le_bytes());
    }

    /// A u32 count or length. Saturating is safe: anything over u32::MAX makes the body larger than
    /// FRAME_BODY_BYTES_MAX, which `encode` refuses before the frame can be used.
    fn put_len(&mut self, len: usize) {
        self.put_u32(u32::try_from(len).unwrap_or(u32::MAX));
    }
}

/// The non-empty batch regions of a message, as far as the regions' checksum is concerned.
#[derive(Clone, Copy)]
enum Regions {
    None,
    One { crc32: u32 },
    Many,
}

/// Writes the fields and notes the regions.
struct FieldWriter<'a> {
    out: &'a mut Vec<u8>,
    regions: Regions,
    regions_bytes: usize,
}

impl Sink for FieldWriter<'_> {
    fn put(&mut self, bytes: &[u8]) {
        self.out.extend_from_slice(bytes);
    }

    fn put_region(&mut self, batch: &Batch) {
        self.regions_bytes = self.regions_bytes.saturating_add(batch.bytes());
        if batch.bytes() > 0 {
            self.regions = match self.regions {
                Regions::None => Regions::One { crc32: batch.crc32() },
                Regions::One { .. } | Regions::Many => Regions::Many,
            };
        }
    }
}

/// Writes the regions (or has them shared), in the order the fields name them.
struct RegionWriter<'a, 's> {
    out: &'a mut Vec<u8>,
    share: &'s mut dyn FnMut(&Bytes, usize) -> bool,
    /// The running checksum of the regions, when there are several.
    several: Option<crc32fast::Hasher>,
}

impl Sink for RegionWriter<'_, '_> {
    fn put(&mut self, _: &[u8]) {}

    fn put_region(&mut self, batch: &Batch) {
        let region = batch.region();
        if let Some(h) = self.several.as_mut() {
            h.update(region);
        }
        // The region is the values already encoded back to back (proto::batch): sent from where it
        // is, or copied once.
        if region.is_empty() || !(self.share)(region, self.out.len()) {
            self.out.extend_from_slice(region);
        }
    }
}

struct ByteCounter(usize);

impl Sink for ByteCounter {
    fn put(&mut self, bytes: &[u8]) {
        self.0 = self.0.saturating_add(bytes.len());
    }

    fn put_region(&mut self, batch: &Batch) {
        self.0 = self.0.saturating_add(batch.bytes());
    }
}

/// The body of `msg`; fields in declaration order, matching `decode::read_msg`.
fn put_msg(s: &mut impl Sink, msg: &Msg) {
    match msg {
        Msg::Proposal { values, via_rnd, ttl } => {
            put_batch(s, values);
            put_round(s, *via_rnd);
            s.put_u8(*ttl);
        }
        Msg::Phase1A { c_rnd, from, ring } => {
            put_round(s, *c_rnd);
            s.put_u64(*from);
            put_ring(s, ring);
        }
        Msg::Phase1B { rnd, from, trimmed_below, votes_below, votes } => {
            put_round(s, *rnd);
            s.put_u64(*from);
            s.put_u64(*trimmed_below);
            s.put_u64(*votes_below);
            s.put_len(votes.len());
            for vote in votes {
                put_vote(s, vote);
            }
        }
        Msg::Nack { rnd } => put_round(s, *rnd),
        Msg::Phase2A { c_rnd, instance, c_vid, c_val, ring, decided } => {
            put_round(s, *c_rnd);
            s.put_u64(*instance);
            put_vid(s, *c_vid);
            put_carried(s, c_val);
            put_ring(s, ring);
            put_decided(s, decided);
        }
        Msg::Phase2B { c_rnd, instance, c_vid, ring } => {
            put_round(s, *c_rnd);
            s.put_u64(*instance);
            put_vid(s, *c_vid);
            put_ring(s, ring);
        }
        Msg::Decision { instance, c_vid, c_val, ring } => {
            s.put_u64(*instance);
            put_vid(s, *c_vid);
            put_option(s, c_val.as_ref(), put_carried);
            put_option(s, ring.as_ref(), put_round_ring);
        }
        Msg::Retransmit { from, to } => {
            s.put_u64(*from);
            s.put_u64(*to);
        }
        Msg::Trimmed { trimmed_below } => s.put_u64(*trimmed_below),
        Msg::Heartbeat { acceptor_ready, decided_below, applied_below } => {
            s.put_u8(u8::from(*acceptor_ready));
            s.put_u64(*decided_below);
            s.put_u64(*applied_below);
        }
        Msg::FlowNotice { learner, backlog_instances } => {
            s.put_u16(*learner);
            s.put_u32(*backlog_instances);
        }
    }
}

fn put_round(s: &mut impl Sink, round: Round) {
    s.put_u64(round.0);
}

fn put_vid(s: &mut impl Sink, vid: Vid) {
    put_round(s, vid.rnd);
    s.put_u64(vid.seq);
}

fn put_batch(s: &mut impl Sink, batch: &Batch) {
    s.put_len(batch.len());
    s.put_region(batch);
}

fn put_carried(s: &mut impl Sink, carried: &Carried) {
    match carried {
        Carried::Value(batch) => {
            s.put_u8(0);
            put_batch(s, batch);
        }
        Carried::Proposal(id) => {
            s.put_u8(1);
            put_value_id(s, id.first);
            s.put_u32(id.count);
        }
    }
}

fn put_value_id(s: &mut impl Sink, id: ValueId) {
    s.put_u16(id.proposer);
    s.put_u32(id.incarnation);
    s.put_u64(id.seq);
}

fn put_ring(s: &mut impl Sink, ring: &Ring) {
    // Ring::new bounds the length by RING_MEMBERS_MAX (32), so it always fits the u8.
    s.put_u8(u8::try_from(ring.len()).unwrap_or(u8::MAX));
    for &member in ring.members() {
        s.put_u16(member);
    }
}

fn put_decided(s: &mut impl Sink, decided: &DecidedIds) {
    // A DecidedIds holds at most DECIDED_IDS_PER_PACKET_MAX (8) entries: the count fits the u8.
    s.put_u8(u8::try_from(decided.len()).unwrap_or(u8::MAX));
    for (instance, vid) in decided.iter() {
        s.put_u64(instance);
        put_vid(s, vid);
    }
}

fn put_round_ring(s: &mut impl Sink, (rnd, ring): &(Round, Ring)) {
    put_round(s, *rnd);
    put_ring(s, ring);
}

fn put_vote(s: &mut impl Sink, vote: &Vote) {
    s.put_u64(vote.instance);
    put_round(s, vote.v_rnd);
    put_vid(s, vote.v_vid);
    put_batch(s, &vote.v_val);
}

fn put_option<S: Sink, T: ?Sized>(s: &mut S, value: Option<&T>, put: fn(&mut S, &T)) {
    match value {
        None => s.put_u8(0),
        Some(value) => {
            s.put_u8(1);
            put(s, value);
        }
    }
}
