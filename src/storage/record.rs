//! One record of an acceptor's log: what an acceptor must not forget (thesis 3.3.5: rnd, v-rnd,
//! v-vid, v-val) and where its garbage collection stands (3.3.7).
//!
//! ```text
//! record := crc32 u32 | body_len u32 | lsn u64 | body | zero padding to a multiple of 8 bytes
//! body   := PROMISE rnd u64
//!         | VOTE    instance u64 | v_rnd u64 | v_vid.rnd u64 | v_vid.seq u64 | values u32 | region
//!         | TRIMMED below u64
//!         | DECIDED instance u64 | vid.rnd u64 | vid.seq u64
//! ```
//!
//! All integers little-endian. `crc32` (CRC-32, as the wire's frames) covers `body_len`, `lsn` and the
//! body, so a record that a crash cut short, or whose bytes the disk damaged, fails it. `lsn` (log
//! sequence number) counts records from 1 across segments: a record that reads well but does not
//! follow its predecessor is not part of this log. A header of zeros is no record but the end of
//! what was written: segments are preallocated and read as zeros where nothing was written.
//!
//! A vote carries its batch as the region the batch travels in (`proto::batch`), so writing it needs
//! no re-encoding, and its checksum combines the batch's own CRC-32 (taken where the batch was formed
//! or received) with that of the few bytes before it: no pass over the values to log them.

use bytes::Bytes;

use crate::proto::{Batch, Durable, Round, Vid};

/// Bytes of a record's header (crc32, body_len, lsn).
pub const RECORD_HEADER_BYTES: usize = 16;
/// Records start at multiples of this, so the scan for records after a damaged one (see
/// `recovery`) needs to look only there.
pub const RECORD_ALIGN_BYTES: usize = 8;

const KIND_PROMISE: u8 = 1;
const KIND_VOTE: u8 = 2;
const KIND_TRIMMED: u8 = 3;
const KIND_DECIDED: u8 = 4;

/// Bytes of a vote's body before its region: kind, instance, v_rnd, v_vid (rnd, seq), value count.
const VOTE_FIELDS_BYTES: usize = 1 + 8 + 8 + 8 + 8 + 4;

/// Why the bytes at some offset are not a record of this log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BadRecord {
    /// The record runs past the end of the segment.
    Truncated,
    /// The checksum does not match.
    Checksum,
    /// The checksum matches but the body is not one this version writes.
    Body,
}

fn body_len(record: &Durable) -> usize {
    match record {
        Durable::Promise { .. } | Durable::Trimmed { .. } => 1 + 8,
        Durable::Decided { .. } => 1 + 3 * 8,
        Durable::Vote { v_val, .. } => VOTE_FIELDS_BYTES + v_val.region().len(),
    }
}

/// Bytes `record` takes in a segment, padding included.
pub fn stored_bytes(record: &Durable) -> usize {
    padded(RECORD_HEADER_BYTES + body_len(record))
}

/// Appends `record`, numbered `lsn`, to `out` (header, body, padding).
pub fn encode(record: &Durable, lsn: u64, out: &mut Vec<u8>) {
    let start = out.len();
    let body_len = u32::try_from(body_len(record)).expect("a record fits a u32 length");
    out.extend_from_slice(&[0; 4]); // the checksum, filled in below
    out.extend_from_slice(&body_len.to_le_bytes());
    out.extend_from_slice(&lsn.to_le_bytes());
    let region = match record {
        Durable::Promise { rnd } => {
            out.push(KIND_PROMISE);
            out.extend_from_slice(&rnd.0.to_le_bytes());
            None
        }
        Durable::Trimmed { below } => {
            out.push(KIND_TRIMMED);
            out.extend_from_slice(&below.to_le_bytes());
            None
        }
        Durable::Decided { instance, vid } => {
            out.push(KIND_DECIDED);
            for word in [*instance, vid.rnd.0, vid.seq] {
                out.extend_from_slice(&word.to_le_bytes());
            }
            None
        }
        Durable::Vote { instance, v_rnd, v_vid, v_val } => {
            out.push(KIND_VOTE);
            for word in [*instance, v_rnd.0, v_vid.rnd.0, v_vid.seq] {
                out.extend_from_slice(&word.to_le_bytes());
            }
            out.extend_from_slice(&(v_val.len() as u32).to_le_bytes());
            Some(v_val)
        }
    };
    let mut crc = crc32fast::Hasher::new();
    crc.update(&out[start + 4..]);
    if let Some(batch) = region {
        out.extend_from_slice(batch.region());
        let region_bytes = batch.region().len() as u64;
        crc.combine(&crc32fast::Hasher::new_with_initial_len(batch.crc32(), region_bytes));
    }
    out[start..start + 4].copy_from_slice(&crc.finalize().to_le_bytes());
    out.resize(start + stored_bytes(record), 0);
}

/// `bytes` rounded up to the record alignment.
pub fn padded(bytes: usize) -> usize {
    bytes.div_ceil(RECORD_ALIGN_BYTES) * RECORD_ALIGN_BYTES
}

/// What [`decode`] found at an offset.
#[derive(Debug, PartialEq, Eq)]
pub enum Decoded {
    /// A record numbered `lsn` that takes `stored_bytes` (padding included).
    Record {
        lsn: u64,
        record: Durable,
        stored_bytes: usize,
    },
    /// A header of zeros: nothing was written from here on.
    End,
    Bad(BadRecord),
}

/// Reads the record at the start of `buf` (the rest of a segment from an aligned offset).
pub fn decode(buf: &[u8]) -> Decoded {
    let Some(header) = buf.get(..RECORD_HEADER_BYTES) else {
        // Less than a header left: the end, if nothing was written there.
        return if buf.iter().all(|&b| b == 0) {
            Decoded::End
        } else {
            Decoded::Bad(BadRecord::Truncated)
        };
    };
    if header.iter().all(|&b| b == 0) {
        return Decoded::End;
    }
    let crc = u32::from_le_bytes(header[0..4].try_into().expect("4 bytes"));
    let body_len = u32::from_le_bytes(header[4..8].try_into().expect("4 bytes")) as usize;
    let lsn = u64::from_le_bytes(header[8..16].try_into().expect("8 bytes"));
    let Some(body) = buf.get(RECORD_HEADER_BYTES..RECORD_HEADER_BYTES.saturating_add(body_len))
    else {
        return Decoded::Bad(BadRecord::Truncated);
    };
    if crc32fast::hash(&buf[4..RECORD_HEADER_BYTES + body_len]) != crc {
        return Decoded::Bad(BadRecord::Checksum);
    }
    match decode_body(body) {
        Some(record) => {
            Decoded::Record { lsn, record, stored_bytes: padded(RECORD_HEADER_BYTES + body_len) }
        }
        None => Decoded::Bad(BadRecord::Body),
    }
}

fn decode_body(body: &[u8]) -> Option<Durable> {
    let word = |at: usize| -> Option<u64> {
        Some(u64::from_le_bytes(body.get(at..at + 8)?.try_into().ok()?))
    };
    match *body.first()? {
        KIND_PROMISE if body.len() == 9 => Some(Durable::Promise { rnd: Round(word(1)?) }),
        KIND_TRIMMED if body.len() == 9 => Some(Durable::Trimmed { below: word(1)? }),
        KIND_DECIDED if body.len() == 25 => Some(Durable::Decided {
            instance: word(1)?,
            vid: Vid { rnd: Round(word(9)?), seq: word(17)? },
        }),
        KIND_VOTE if body.len() >= VOTE_FIELDS_BYTES => {
            let values = u32::from_le_bytes(body.get(33..37)?.try_into().ok()?);
            let region = Bytes::copy_from_slice(&body[VOTE_FIELDS_BYTES..]);
            let v_val = Batch::from_region(region).ok().filter(|b| b.len() == values as usize)?;
            Some(Durable::Vote {
                instance: word(1)?,
                v_rnd: Round(word(9)?),
                v_vid: Vid { rnd: Round(word(17)?), seq: word(25)? },
                v_val,
            })
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::{Value, ValueId};

    fn batch(values: usize, payload_bytes: usize) -> Batch {
        Batch::new(
            (0..values)
                .map(|seq| Value {
                    id: ValueId { proposer: 2, incarnation: 7, seq: seq as u64 },
                    payload: Bytes::from(vec![seq as u8; payload_bytes]),
                })
                .collect(),
        )
    }

    fn round_trip(record: Durable, lsn: u64) -> Durable {
        let mut out = vec![0xEE; 3]; // records are appended after whatever is there
        encode(&record, lsn, &mut out);
        assert_eq!(out.len(), 3 + stored_bytes(&record));
        assert_eq!(stored_bytes(&record) % RECORD_ALIGN_BYTES, 0);
        match decode(&out[3..]) {
            Decoded::Record { lsn: got, record: read, stored_bytes } => {
                assert_eq!((got, stored_bytes), (lsn, out.len() - 3));
                assert_eq!(read, record);
                read
            }
            other => panic!("decoded {other:?}"),
        }
    }

    #[test]
    fn every_kind_reads_back_as_written() {
        let v_val = batch(5, 100);
        let v_vid = Vid { rnd: Round(0x1_0003), seq: 42 };
        round_trip(Durable::Promise { rnd: Round(0x5_0001) }, 1);
        round_trip(Durable::Trimmed { below: 900 }, 2);
        round_trip(Durable::Decided { instance: 5, vid: Vid { rnd: Round(3), seq: 8 } }, 3);
        round_trip(Durable::Vote { instance: 77, v_rnd: Round(0x2_0003), v_vid, v_val }, u64::MAX);
        let noop = Batch::empty();
        let vote = Durable::Vote { instance: 3, v_rnd: Round(9), v_vid, v_val: noop };
        assert!(matches!(round_trip(vote, 4), Durable::Vote { v_val, .. } if v_val.is_empty()));
    }

    #[test]
    fn the_combined_checksum_is_the_checksum_of_the_bytes() {
        // The vote's CRC is built from the batch's; it must equal one taken over the bytes.
        let v_val = batch(3, 1000);
        let mut out = Vec::new();
        let vote = Durable::Vote { instance: 1, v_rnd: Round(1), v_vid: Vid::default(), v_val };
        encode(&vote, 1, &mut out);
        let body_len = u32::from_le_bytes(out[4..8].try_into().unwrap()) as usize;
        let crc = crc32fast::hash(&out[4..RECORD_HEADER_BYTES + body_len]);
        assert_eq!(crc.to_le_bytes(), out[0..4]);
    }

    #[test]
    fn zeros_are_the_end_and_damage_is_bad() {
        assert_eq!(decode(&[0; 64]), Decoded::End);
        assert_eq!(decode(&[0; 5]), Decoded::End);
        assert_eq!(decode(&[]), Decoded::End);
        let mut out = Vec::new();
        let v_val = batch(4, 64);
        let vote = Durable::Vote { instance: 1, v_rnd: Round(1), v_vid: Vid::default(), v_val };
        encode(&vote, 1, &mut out);
        // Every single flipped byte of the record (padding aside) is caught.
        let body_end =
            RECORD_HEADER_BYTES + (u32::from_le_bytes(out[4..8].try_into().unwrap()) as usize);
        for at in 0..body_end {
            let mut damaged = out.clone();
            damaged[at] ^= 0x40;
            assert!(matches!(decode(&damaged), Decoded::Bad(_)), "flip at {at} went unnoticed");
        }
        // A record cut short anywhere is truncated, not read.
        for len in 1..out.len() - 8 {
            assert!(
                matches!(decode(&out[..len]), Decoded::Bad(_)),
                "cut at {len} read as a record"
            );
        }
    }

    #[test]
    fn a_body_of_an_unknown_kind_is_refused_even_with_a_good_checksum() {
        let mut out = vec![0; 4];
        out.extend_from_slice(&9u32.to_le_bytes());
        out.extend_from_slice(&1u64.to_le_bytes());
        out.push(99);
        out.extend_from_slice(&[1; 8]);
        let crc = crc32fast::hash(&out[4..]);
        out[..4].copy_from_slice(&crc.to_le_bytes());
        out.resize(padded(out.len()), 0);
        assert_eq!(decode(&out), Decoded::Bad(BadRecord::Body));
    }
}
