//! Property tests of the wire format: every message round-trips, and no input — random, corrupted,
//! cut short or padded — makes the decoder panic or accept something encode would not have written.

use bytes::Bytes;
use proptest::collection::{btree_set, vec};
use proptest::prelude::*;
use proptest::sample::Index;

use crate::proto::msg::Msg;
use crate::proto::types::{Batch, RING_MEMBERS_MAX, Ring, Round, Value, ValueId, Vid, Vote};

use super::*;

fn arb_round() -> impl Strategy<Value = Round> {
    any::<u64>().prop_map(Round)
}

fn arb_vid() -> impl Strategy<Value = Vid> {
    (arb_round(), any::<u64>()).prop_map(|(rnd, seq)| Vid { rnd, seq })
}

fn arb_value() -> impl Strategy<Value = Value> {
    (any::<u16>(), any::<u32>(), any::<u64>(), vec(any::<u8>(), 0..300)).prop_map(
        |(proposer, incarnation, seq, payload)| Value {
            id: ValueId { proposer, incarnation, seq },
            payload: Bytes::from(payload),
        },
    )
}

fn arb_batch() -> impl Strategy<Value = Batch> {
    vec(arb_value(), 0..6).prop_map(Batch::new)
}

/// 1..=32 distinct members in random order. (A BTreeSet rather than a HashSet keeps generation
/// deterministic for a given seed; the shuffle restores arbitrary order.)
fn arb_ring() -> impl Strategy<Value = Ring> {
    btree_set(any::<u16>(), 1..=RING_MEMBERS_MAX)
        .prop_map(|members| members.into_iter().collect::<Vec<_>>())
        .prop_shuffle()
        .prop_map(|members| Ring::new(&members).expect("distinct, 1..=32 members"))
}

fn arb_vote() -> impl Strategy<Value = Vote> {
    (any::<u64>(), arb_round(), arb_vid(), arb_batch())
        .prop_map(|(instance, v_rnd, v_vid, v_val)| Vote { instance, v_rnd, v_vid, v_val })
}

fn arb_msg() -> impl Strategy<Value = Msg> {
    prop_oneof![
        (arb_batch(), arb_round(), any::<u8>()).prop_map(|(values, via_rnd, ttl)| Msg::Proposal {
            values,
            via_rnd,
            ttl
        }),
        (arb_round(), any::<u64>(), arb_ring()).prop_map(|(c_rnd, from, ring)| Msg::Phase1A {
            c_rnd,
            from,
            ring
        }),
        (arb_round(), any::<u64>(), any::<u64>(), any::<u64>(), vec(arb_vote(), 0..4)).prop_map(
            |(rnd, from, trimmed_below, votes_below, votes)| Msg::Phase1B {
                rnd,
                from,
                trimmed_below,
                votes_below,
                votes
            }
        ),
        arb_round().prop_map(|rnd| Msg::Nack { rnd }),
        (arb_round(), any::<u64>(), arb_vid(), arb_batch(), arb_ring()).prop_map(
            |(c_rnd, instance, c_vid, c_val, ring)| Msg::Phase2A {
                c_rnd,
                instance,
                c_vid,
                c_val,
                ring
            }
        ),
        (arb_round(), any::<u64>(), arb_vid(), arb_ring()).prop_map(
            |(c_rnd, instance, c_vid, ring)| Msg::Phase2B { c_rnd, instance, c_vid, ring }
        ),
        (
            any::<u64>(),
            arb_vid(),
            proptest::option::of(arb_batch()),
            proptest::option::of((arb_round(), arb_ring()))
        )
            .prop_map(|(instance, c_vid, c_val, ring)| Msg::Decision {
                instance,
                c_vid,
                c_val,
                ring
            }),
        (any::<u64>(), any::<u64>()).prop_map(|(from, to)| Msg::Retransmit { from, to }),
        any::<u64>().prop_map(|trimmed_below| Msg::Trimmed { trimmed_below }),
        (any::<bool>(), any::<u64>(), any::<u64>()).prop_map(
            |(acceptor_ready, decided_below, applied_below)| Msg::Heartbeat {
                acceptor_ready,
                decided_below,
                applied_below,
            }
        ),
        (any::<u16>(), any::<u32>()).prop_map(|(learner, backlog_instances)| Msg::FlowNotice {
            learner,
            backlog_instances
        }),
    ]
}

fn frame_of(msg: &Msg) -> Vec<u8> {
    let mut out = Vec::new();
    encode(msg, &mut out);
    out
}

/// Puts a correct header (kind, length, checksum) around `body`, so the body decoder itself sees it.
fn sealed(kind: u8, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&FRAME_MAGIC.to_le_bytes());
    out.push(FRAME_VERSION);
    out.push(kind);
    out.extend_from_slice(&u32::try_from(body.len()).unwrap().to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(body).to_le_bytes());
    out.extend_from_slice(body);
    out
}

/// What must hold for the decoders on *any* input: they agree, and they either accept exactly a
/// canonical frame at the front of `buf` or give an error consistent with `buf`.
fn check_decoders_agree_and_are_canonical(buf: &[u8]) -> Result<(), TestCaseError> {
    let copied = decode(buf);
    let shared = decode_bytes(&Bytes::copy_from_slice(buf));
    prop_assert_eq!(&copied, &shared);
    match copied {
        Ok((msg, consumed)) => {
            prop_assert!(consumed <= buf.len());
            prop_assert_eq!(consumed, encoded_len(&msg));
            prop_assert_eq!(frame_of(&msg), &buf[..consumed]);
        }
        Err(WireError::Truncated { needed_bytes }) => prop_assert!(needed_bytes > buf.len()),
        Err(_) => {}
    }
    Ok(())
}

proptest! {
    #[test]
    fn every_message_round_trips(msg in arb_msg()) {
        let frame = frame_of(&msg);
        prop_assert_eq!(frame.len(), encoded_len(&msg));
        prop_assert_eq!(decode(&frame), Ok((msg.clone(), frame.len())));
        prop_assert_eq!(decode_bytes(&Bytes::from(frame.clone())), Ok((msg, frame.len())));
    }

    #[test]
    fn arbitrary_bytes_never_panic(buf in vec(any::<u8>(), 0..2000)) {
        check_decoders_agree_and_are_canonical(&buf)?;
    }

    #[test]
    fn arbitrary_bodies_in_a_valid_header_never_panic(kind in 0u8..=12, body in vec(any::<u8>(), 0..2000)) {
        check_decoders_agree_and_are_canonical(&sealed(kind, &body))?;
    }

    #[test]
    fn byte_flips_never_panic_and_body_flips_fail_the_checksum(
        msg in arb_msg(),
        at in any::<Index>(),
        mask in 1u8..=255,
    ) {
        let mut frame = frame_of(&msg);
        let at = at.index(frame.len());
        frame[at] ^= mask;
        check_decoders_agree_and_are_canonical(&frame)?;
        // CRC-32 detects every error burst of up to 32 bits, so one changed byte in the body or in the
        // checksum field itself cannot go unnoticed.
        if at >= 8 {
            let is_checksum_mismatch = matches!(decode(&frame), Err(WireError::ChecksumMismatch { .. }));
            prop_assert!(is_checksum_mismatch);
        }
    }

    #[test]
    fn resealed_body_corruption_never_panics(
        msg in arb_msg(),
        flips in vec((any::<Index>(), 1u8..=255), 1..4),
    ) {
        let frame = frame_of(&msg);
        let mut body = frame[FRAME_HEADER_BYTES..].to_vec();
        if !body.is_empty() {
            for (at, mask) in flips {
                let at = at.index(body.len());
                body[at] ^= mask;
            }
        }
        check_decoders_agree_and_are_canonical(&sealed(frame[3], &body))?;
    }

    #[test]
    fn resealed_cut_body_is_malformed(msg in arb_msg(), cut in any::<Index>()) {
        let frame = frame_of(&msg);
        let body = &frame[FRAME_HEADER_BYTES..];
        // Encodings are prefix-free: a proper prefix of a body is never a whole message.
        let cut = cut.index(body.len());
        let result = decode(&sealed(frame[3], &body[..cut]));
        prop_assert!(matches!(&result, Err(err) if !err.is_incomplete()), "{:?}", result);
    }

    #[test]
    fn every_cut_short_frame_is_incomplete(msg in arb_msg(), cut in any::<Index>()) {
        let frame = frame_of(&msg);
        let cut = cut.index(frame.len());
        match decode(&frame[..cut]) {
            Err(WireError::Truncated { needed_bytes }) => {
                prop_assert!(needed_bytes > cut && needed_bytes <= frame.len());
            }
            other => prop_assert!(false, "cut at {} of {}: {:?}", cut, frame.len(), other),
        }
    }

    #[test]
    fn appended_garbage_is_left_alone(msg in arb_msg(), garbage in vec(any::<u8>(), 0..64)) {
        let mut buf = frame_of(&msg);
        let frame_len_bytes = buf.len();
        buf.extend_from_slice(&garbage);
        prop_assert_eq!(decode(&buf), Ok((msg.clone(), frame_len_bytes)));
        prop_assert_eq!(decode_bytes(&Bytes::from(buf)), Ok((msg, frame_len_bytes)));
    }

    #[test]
    fn concatenated_frames_decode_one_after_another(msgs in vec(arb_msg(), 1..6)) {
        let mut buf = Vec::new();
        for msg in &msgs {
            encode(msg, &mut buf);
        }
        let shared = Bytes::from(buf.clone());
        let mut offset = 0;
        for msg in &msgs {
            let (decoded, consumed) = decode(&buf[offset..]).unwrap();
            prop_assert_eq!(&decoded, msg);
            prop_assert_eq!(decode_bytes(&shared.slice(offset..)), Ok((decoded, consumed)));
            offset += consumed;
        }
        prop_assert_eq!(offset, buf.len());
    }
}
