//! Property tests of the wire format: every message round-trips, and no input — random, corrupted,
//! cut short or padded — makes the decoder panic or accept something encode would not have written.

use bytes::Bytes;
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::Index;

use crate::proto::arb::{self, Bounds};
use crate::proto::msg::Msg;

use super::*;

fn arb_msg() -> impl Strategy<Value = Msg> {
    arb::arb_msg(Bounds::ANY)
}

fn frame_of(msg: &Msg) -> Vec<u8> {
    let mut out = Vec::new();
    encode(msg, &mut out);
    out
}

/// Puts a correct header (kind, lengths, checksums) around `body`, its first `fields_len` bytes
/// (at most all of them) as the fields and the rest as the regions, so the body decoder itself sees
/// it.
fn sealed(kind: u8, body: &[u8], fields_len: usize) -> Vec<u8> {
    let (fields, regions) = body.split_at(fields_len.min(body.len()));
    let mut out = Vec::new();
    seal_frame(kind, fields, regions, &mut out);
    out
}

/// Where a frame's fields end, from its header.
fn fields_len_of(frame: &[u8]) -> usize {
    u32::from_le_bytes(frame[4..8].try_into().unwrap()) as usize
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
    fn arbitrary_bodies_in_a_valid_header_never_panic(
        kind in 0u8..=12,
        body in vec(any::<u8>(), 0..2000),
        fields_len in 0usize..2000,
    ) {
        check_decoders_agree_and_are_canonical(&sealed(kind, &body, fields_len))?;
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
        // CRC-32 detects every error burst of up to 32 bits, so one changed byte in the body or in a
        // checksum field cannot go unnoticed.
        if at >= 12 {
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
        check_decoders_agree_and_are_canonical(&sealed(frame[3], &body, fields_len_of(&frame)))?;
    }

    #[test]
    fn resealed_cut_body_is_malformed(msg in arb_msg(), cut in any::<Index>()) {
        let frame = frame_of(&msg);
        let body = &frame[FRAME_HEADER_BYTES..];
        // Encodings are prefix-free: a proper prefix of a body is never a whole message.
        let cut = cut.index(body.len());
        let result = decode(&sealed(frame[3], &body[..cut], fields_len_of(&frame)));
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
