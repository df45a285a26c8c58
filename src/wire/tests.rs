//! Unit tests of the wire format: exact layouts, and one test per way a frame can be refused.

use bytes::Bytes;

use crate::proto::decided_ids::{DECIDED_IDS_PER_PACKET_MAX, DecidedIds};
use crate::proto::msg::{Carried, Msg};
use crate::proto::types::{Batch, ProposalId, Ring, Round, Value, ValueId, Vid, Vote};

use super::*;

fn frame_of(msg: &Msg) -> Vec<u8> {
    let mut out = Vec::new();
    encode(msg, &mut out);
    out
}

/// A frame with a correct header (lengths and checksums) around arbitrary, possibly hostile,
/// fields and regions.
fn frame_with_parts(kind: u8, fields: &[u8], regions: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    seal_frame(kind, fields, regions, &mut out);
    out
}

/// [`frame_with_parts`] with no regions: a body that names no batch values.
fn frame_with_body(kind: u8, body: &[u8]) -> Vec<u8> {
    frame_with_parts(kind, body, &[])
}

/// The whole body: the fields, then the regions.
fn body_of(frame: &[u8]) -> &[u8] {
    &frame[FRAME_HEADER_BYTES..]
}

/// The fields and the regions of a frame, as its header delimits them.
fn parts_of(frame: &[u8]) -> (&[u8], &[u8]) {
    let len_at = |at: usize| u32::from_le_bytes(frame[at..at + 4].try_into().unwrap()) as usize;
    let (fields_len, regions_len) = (len_at(4), len_at(8));
    let body = &frame[FRAME_HEADER_BYTES..];
    assert_eq!(body.len(), fields_len + regions_len);
    body.split_at(fields_len)
}

fn value(proposer: u16, seq: u64, payload: &'static [u8]) -> Value {
    Value { id: ValueId { proposer, incarnation: 7, seq }, payload: Bytes::from_static(payload) }
}

fn ring(members: &[u16]) -> Ring {
    Ring::new(members).unwrap()
}

/// One message of every variant, with its kind byte.
fn samples() -> Vec<(u8, Msg)> {
    let batch = Batch::new(vec![value(1, 1, b"alpha"), value(2, 9, b""), value(3, 4, b"gamma!")]);
    let vid = Vid { rnd: Round(0x1_0002), seq: 11 };
    vec![
        (1, Msg::Proposal { values: batch.clone(), via_rnd: Round(0x2_0001), ttl: 3 }),
        (2, Msg::Phase1A { c_rnd: Round(0x3_0002), from: 40, ring: ring(&[2, 5, 9]) }),
        (
            3,
            Msg::Phase1B {
                rnd: Round(0x3_0002),
                from: 40,
                trimmed_below: 12,
                votes_below: u64::MAX,
                votes: vec![
                    Vote { instance: 40, v_rnd: Round(0x1_0001), v_vid: vid, v_val: batch.clone() },
                    Vote {
                        instance: 41,
                        v_rnd: Round(0x2_0001),
                        v_vid: vid,
                        v_val: Batch::empty(),
                    },
                ],
            },
        ),
        (4, Msg::Nack { rnd: Round(u64::MAX) }),
        (
            5,
            Msg::Phase2A {
                c_rnd: Round(0x3_0002),
                instance: 42,
                c_vid: vid,
                c_val: batch.clone().into(),
                ring: ring(&[9, 5, 2]),
                decided: DecidedIds::NONE,
            },
        ),
        (
            5,
            Msg::Phase2A {
                c_rnd: Round(0x3_0002),
                instance: 43,
                c_vid: vid,
                c_val: Carried::Proposal(ProposalId {
                    first: ValueId { proposer: 1, incarnation: 2, seq: 3 },
                    count: 4,
                }),
                ring: ring(&[9, 5, 2]),
                decided: {
                    let mut d = DecidedIds::NONE;
                    d.push(40, vid);
                    d.push(41, Vid { rnd: Round(0x1_0001), seq: 7 });
                    d
                },
            },
        ),
        (6, Msg::Phase2B { c_rnd: Round(0x3_0002), instance: 42, c_vid: vid, ring: ring(&[7]) }),
        (
            7,
            Msg::Decision {
                instance: 42,
                c_vid: vid,
                c_val: Some(batch.into()),
                ring: Some((Round(0x3_0002), ring(&[1, 2]))),
            },
        ),
        (7, Msg::Decision { instance: 43, c_vid: vid, c_val: None, ring: None }),
        (8, Msg::Retransmit { from: 3, to: 17 }),
        (9, Msg::Trimmed { trimmed_below: 1000 }),
        (10, Msg::Heartbeat { acceptor_ready: false, decided_below: 5, applied_below: 4 }),
        (11, Msg::FlowNotice { learner: 6, backlog_instances: 250 }),
    ]
}

#[test]
fn heartbeat_frame_has_exact_bytes() {
    let msg = Msg::Heartbeat {
        acceptor_ready: true,
        decided_below: 0x0102_0304_0506_0708,
        applied_below: 42,
    };
    #[rustfmt::skip]
    let expected: &[u8] = &[
        0x52, 0x52,             // magic
        4,                      // version
        10,                     // kind: Heartbeat
        17, 0, 0, 0,            // fields_len
        0, 0, 0, 0,             // regions_len
        0x90, 0xb5, 0x6a, 0xa2, // crc32 of the fields (IEEE, as zlib computes it)
        0, 0, 0, 0,             // crc32 of no regions
        1,                      // acceptor_ready
        8, 7, 6, 5, 4, 3, 2, 1, // decided_below
        42, 0, 0, 0, 0, 0, 0, 0, // applied_below
    ];
    assert_eq!(frame_of(&msg), expected);
    assert_eq!(encoded_len(&msg), expected.len());
    assert_eq!(decode(expected), Ok((msg, expected.len())));
}

#[test]
fn flow_notice_frame_has_exact_bytes() {
    let msg = Msg::FlowNotice { learner: 0x0203, backlog_instances: 0x0a0b_0c0d };
    #[rustfmt::skip]
    let expected: &[u8] = &[
        0x52, 0x52, 4, 11, 6, 0, 0, 0, 0, 0, 0, 0, 0x01, 0x91, 0xc7, 0xb5, 0, 0, 0, 0,
        0x03, 0x02,             // learner
        0x0d, 0x0c, 0x0b, 0x0a, // backlog_instances
    ];
    assert_eq!(frame_of(&msg), expected);
}

#[test]
fn decision_body_has_exact_layout() {
    let msg = Msg::Decision {
        instance: 7,
        c_vid: Vid { rnd: Round(0x1_0001), seq: 3 },
        c_val: Some(
            Batch::new(vec![Value {
                id: ValueId { proposer: 5, incarnation: 6, seq: 9 },
                payload: Bytes::from_static(b"hi"),
            }])
            .into(),
        ),
        ring: Some((Round(0x4_0003), ring(&[1, 2]))),
    };
    #[rustfmt::skip]
    let expected_fields: &[u8] = &[
        7, 0, 0, 0, 0, 0, 0, 0, // instance
        1, 0, 1, 0, 0, 0, 0, 0, // c_vid.rnd
        3, 0, 0, 0, 0, 0, 0, 0, // c_vid.seq
        1,                      // c_val: some
        0,                      // carried: the value
        1, 0, 0, 0,             // batch count
        1,                      // ring: some
        3, 0, 4, 0, 0, 0, 0, 0, // ring.0: the round
        2,                      // ring len
        1, 0, 2, 0,             // members
    ];
    #[rustfmt::skip]
    let expected_regions: &[u8] = &[
        5, 0,                   // proposer
        6, 0, 0, 0,             // incarnation
        9, 0, 0, 0, 0, 0, 0, 0, // seq
        2, 0, 0, 0,             // payload_len
        b'h', b'i',             // payload
    ];
    let frame = frame_of(&msg);
    assert_eq!(parts_of(&frame), (expected_fields, expected_regions));
    assert_eq!(frame, frame_with_parts(7, expected_fields, expected_regions));
}

#[test]
fn phase1b_body_has_exact_layout() {
    let msg = Msg::Phase1B {
        rnd: Round(2),
        from: 3,
        trimmed_below: 4,
        votes_below: 9,
        votes: vec![Vote {
            instance: 5,
            v_rnd: Round(6),
            v_vid: Vid { rnd: Round(7), seq: 8 },
            v_val: Batch::empty(),
        }],
    };
    let mut expected_body = Vec::new();
    for word in [2u64, 3, 4, 9] {
        expected_body.extend_from_slice(&word.to_le_bytes());
    }
    expected_body.extend_from_slice(&1u32.to_le_bytes()); // vote count
    for word in [5u64, 6, 7, 8] {
        expected_body.extend_from_slice(&word.to_le_bytes());
    }
    expected_body.extend_from_slice(&0u32.to_le_bytes()); // empty batch
    assert_eq!(body_of(&frame_of(&msg)), expected_body);
}

#[test]
fn every_variant_round_trips_with_its_kind_byte() {
    for (kind, msg) in samples() {
        let frame = frame_of(&msg);
        assert_eq!(frame[3], kind, "{msg:?}");
        assert_eq!(Kind::of(&msg).byte(), kind);
        assert_eq!(Kind::from_byte(kind), Some(Kind::of(&msg)));
        assert_eq!(frame.len(), encoded_len(&msg), "{msg:?}");
        assert_eq!(decode(&frame), Ok((msg.clone(), frame.len())));
        assert_eq!(decode_bytes(&Bytes::from(frame.clone())), Ok((msg, frame.len())));
    }
}

#[test]
fn proposal_body_has_exact_layout_and_value_overhead_matches_types() {
    let values = Batch::new(vec![Value {
        id: ValueId { proposer: 0x0102, incarnation: 0x0304_0506, seq: 0x0708 },
        payload: Bytes::from_static(b"abc"),
    }]);
    let msg = Msg::Proposal { values: values.clone(), via_rnd: Round(0x0a0b), ttl: 9 };
    #[rustfmt::skip]
    let expected_fields: &[u8] = &[
        1, 0, 0, 0,             // batch count
        0x0b, 0x0a, 0, 0, 0, 0, 0, 0, // via_rnd
        9,                      // ttl
    ];
    #[rustfmt::skip]
    let expected_regions: &[u8] = &[
        0x02, 0x01,             // proposer
        0x06, 0x05, 0x04, 0x03, // incarnation
        0x08, 0x07, 0, 0, 0, 0, 0, 0, // seq
        3, 0, 0, 0,             // payload_len
        b'a', b'b', b'c',       // payload
    ];
    let frame = frame_of(&msg);
    assert_eq!(parts_of(&frame), (expected_fields, expected_regions));
    // The regions' checksum in the header is the batch's own.
    assert_eq!(frame[16..20], values.crc32().to_le_bytes());
    assert_eq!(values.crc32(), crc32fast::hash(expected_regions));
    // Value::batch_bytes (what batch_bytes_max bounds) is exactly what a value costs on the wire.
    assert_eq!(encoded_len(&msg), FRAME_HEADER_BYTES + 4 + values.bytes() + 8 + 1);
}

#[test]
fn checksum_mismatch_is_malformed() {
    let mut frame = frame_of(&Msg::Retransmit { from: 1, to: 2 });
    frame[FRAME_HEADER_BYTES + 3] ^= 0x40;
    let err = decode(&frame).unwrap_err();
    assert!(matches!(err, WireError::ChecksumMismatch { part: "fields", .. }), "{err}");
    assert!(!err.is_incomplete());

    let values = Batch::new(vec![value(1, 1, b"payload")]);
    let mut frame = frame_of(&Msg::Proposal { values, via_rnd: Round(1), ttl: 1 });
    let last = frame.len() - 1;
    frame[last] ^= 1;
    let err = decode(&frame).unwrap_err();
    assert!(matches!(err, WireError::ChecksumMismatch { part: "regions", .. }), "{err}");
}

#[test]
fn a_frame_of_several_batches_checksums_their_regions_together() {
    let vote = |instance, v_val: Batch| Vote {
        instance,
        v_rnd: Round(1),
        v_vid: Vid { rnd: Round(1), seq: instance },
        v_val,
    };
    let (a, b) = (Batch::new(vec![value(1, 1, b"a")]), Batch::new(vec![value(2, 1, b"bb")]));
    let msg = Msg::Phase1B {
        rnd: Round(1),
        from: 0,
        trimmed_below: 0,
        votes_below: 9,
        votes: vec![vote(1, a.clone()), vote(2, Batch::empty()), vote(3, b.clone())],
    };
    let frame = frame_of(&msg);
    let (_, regions) = parts_of(&frame);
    assert_eq!(regions, [&a.region()[..], &b.region()[..]].concat());
    assert_eq!(frame[16..20], crc32fast::hash(regions).to_le_bytes());
    let (decoded, _) = decode(&frame).unwrap();
    assert_eq!(decoded, msg);
    let Msg::Phase1B { votes, .. } = decoded else { panic!("not a Phase 1B") };
    assert_eq!(votes[2].v_val.crc32(), b.crc32(), "a batch's checksum is its region's");
}

#[test]
fn every_truncation_point_is_incomplete() {
    for (_, msg) in samples() {
        let frame = frame_of(&msg);
        for cut in 0..frame.len() {
            let err = decode(&frame[..cut]).unwrap_err();
            // Both lengths have arrived at byte 12.
            let expected_needed_bytes = if cut < 12 { FRAME_HEADER_BYTES } else { frame.len() };
            assert_eq!(
                err,
                WireError::Truncated { needed_bytes: expected_needed_bytes },
                "{msg:?} cut at {cut}"
            );
            assert!(err.is_incomplete());
        }
    }
}

#[test]
fn bad_magic_is_malformed_as_soon_as_it_arrives() {
    let mut frame = frame_of(&Msg::Nack { rnd: Round(1) });
    frame[0] = 0x53;
    assert_eq!(decode(&frame), Err(WireError::BadMagic { found: 0x5253 }));
    assert_eq!(decode(&frame[..2]), Err(WireError::BadMagic { found: 0x5253 }));
    assert!(!decode(&frame[..2]).unwrap_err().is_incomplete());
}

#[test]
fn bad_version_is_malformed() {
    let mut frame = frame_of(&Msg::Nack { rnd: Round(1) });
    frame[2] = 1;
    assert_eq!(decode(&frame[..3]), Err(WireError::BadVersion { found: 1 }));
    let err = decode(&frame).unwrap_err();
    assert_eq!(err, WireError::BadVersion { found: 1 });
    assert!(err.to_string().contains("version 1"), "{err}");
}

#[test]
fn unknown_kind_is_malformed() {
    for kind in [0u8, 12, 200, 255] {
        let frame = frame_with_body(kind, &[0; 8]);
        assert_eq!(decode(&frame), Err(WireError::UnknownKind { found: kind }));
        assert_eq!(decode(&frame[..4]), Err(WireError::UnknownKind { found: kind }));
        assert_eq!(Kind::from_byte(kind), None);
    }
}

#[test]
fn body_over_the_maximum_is_refused_from_the_header_alone() {
    let mut frame = frame_with_body(4, &[0; 8]);
    let too_long = u32::try_from(FRAME_BODY_BYTES_MAX + 1).unwrap();
    frame[4..8].copy_from_slice(&too_long.to_le_bytes());
    let err = decode(&frame[..8]).unwrap_err();
    assert_eq!(err, WireError::BodyTooLong { body_len_bytes: FRAME_BODY_BYTES_MAX + 1 });
    assert!(!err.is_incomplete());
    frame[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
    assert!(matches!(decode(&frame), Err(WireError::BodyTooLong { .. })));
    // Fields and regions each within the limit, together over it.
    let max = u32::try_from(FRAME_BODY_BYTES_MAX).unwrap();
    frame[4..8].copy_from_slice(&max.to_le_bytes());
    frame[8..12].copy_from_slice(&1u32.to_le_bytes());
    let err = decode(&frame[..12]).unwrap_err();
    assert_eq!(err, WireError::BodyTooLong { body_len_bytes: FRAME_BODY_BYTES_MAX + 1 });
}

#[test]
fn body_at_the_maximum_is_waited_for() {
    let mut header = frame_with_body(1, &[]);
    let max = u32::try_from(FRAME_BODY_BYTES_MAX).unwrap();
    header[4..8].copy_from_slice(&max.to_le_bytes());
    assert_eq!(
        decode(&header),
        Err(WireError::Truncated { needed_bytes: FRAME_HEADER_BYTES + FRAME_BODY_BYTES_MAX })
    );
}

#[test]
fn bool_other_than_zero_or_one_is_malformed() {
    let mut body = body_of(&frame_of(&Msg::Heartbeat {
        acceptor_ready: true,
        decided_below: 1,
        applied_below: 1,
    }))
    .to_vec();
    body[0] = 2;
    let err = decode(&frame_with_body(10, &body)).unwrap_err();
    assert_eq!(err, WireError::BadBool { field: "Heartbeat.acceptor_ready", found: 2 });
    assert!(err.to_string().contains("Heartbeat.acceptor_ready"), "{err}");
}

#[test]
fn option_tag_other_than_zero_or_one_is_malformed() {
    let msg = Msg::Decision { instance: 1, c_vid: Vid::default(), c_val: None, ring: None };
    let mut body = body_of(&frame_of(&msg)).to_vec();
    let c_val_tag_at = 8 + 16;
    body[c_val_tag_at] = 3;
    assert_eq!(
        decode(&frame_with_body(7, &body)),
        Err(WireError::BadOptionTag { field: "Decision.c_val", found: 3 })
    );
}

#[test]
fn a_phase2a_names_a_proposal_by_first_value_id_and_count() {
    let first = ValueId { proposer: 5, incarnation: 6, seq: 9 };
    let msg = Msg::Phase2A {
        c_rnd: Round(2),
        instance: 7,
        c_vid: Vid { rnd: Round(2), seq: 3 },
        c_val: Carried::Proposal(ProposalId { first, count: 4 }),
        ring: ring(&[1]),
        decided: DecidedIds::NONE,
    };
    #[rustfmt::skip]
    let expected_body: &[u8] = &[
        2, 0, 0, 0, 0, 0, 0, 0, // c_rnd
        7, 0, 0, 0, 0, 0, 0, 0, // instance
        2, 0, 0, 0, 0, 0, 0, 0, // c_vid.rnd
        3, 0, 0, 0, 0, 0, 0, 0, // c_vid.seq
        1,                      // carried: a proposal id
        5, 0,                   // proposer
        6, 0, 0, 0,             // incarnation
        9, 0, 0, 0, 0, 0, 0, 0, // seq
        4, 0, 0, 0,             // count
        1, 1, 0,                // ring
        0,                      // decided: none
    ];
    let frame = frame_of(&msg);
    assert_eq!(body_of(&frame), expected_body);
    let carried_at = 32;
    let mut bad_tag = expected_body.to_vec();
    bad_tag[carried_at] = 2;
    assert_eq!(
        decode(&frame_with_body(5, &bad_tag)),
        Err(WireError::BadCarriedTag { field: "Phase2A.c_val", found: 2 })
    );
    let mut empty = expected_body.to_vec();
    empty[carried_at + 15..carried_at + 19].fill(0);
    assert_eq!(
        decode(&frame_with_body(5, &empty)),
        Err(WireError::EmptyProposal { field: "Phase2A.c_val" })
    );
}

#[test]
fn a_phase2a_carries_the_decisions_of_its_step_and_no_more_than_its_bound() {
    let mut decided = DecidedIds::NONE;
    decided.push(5, Vid { rnd: Round(2), seq: 1 });
    let msg = Msg::Phase2A {
        c_rnd: Round(2),
        instance: 7,
        c_vid: Vid { rnd: Round(2), seq: 3 },
        c_val: Batch::empty().into(),
        ring: ring(&[1]),
        decided,
    };
    let frame = frame_of(&msg);
    #[rustfmt::skip]
    let decided_bytes: &[u8] = &[
        1,                      // one decision
        5, 0, 0, 0, 0, 0, 0, 0, // instance
        2, 0, 0, 0, 0, 0, 0, 0, // vid.rnd
        1, 0, 0, 0, 0, 0, 0, 0, // vid.seq
    ];
    let body = body_of(&frame);
    assert_eq!(&body[body.len() - decided_bytes.len()..], decided_bytes);
    assert_eq!(decode(&frame), Ok((msg, frame.len())));

    // A count over the bound is refused before any entry is read.
    let mut too_many = body[..body.len() - decided_bytes.len()].to_vec();
    too_many.push(DECIDED_IDS_PER_PACKET_MAX as u8 + 1);
    too_many.extend(std::iter::repeat_n(0, 24 * (DECIDED_IDS_PER_PACKET_MAX + 1)));
    assert_eq!(
        decode(&frame_with_body(5, &too_many)),
        Err(WireError::TooManyEntries {
            field: "Phase2A.decided",
            count: DECIDED_IDS_PER_PACKET_MAX as u8 + 1,
            max: DECIDED_IDS_PER_PACKET_MAX
        })
    );
}

#[test]
fn invalid_rings_are_malformed() {
    let phase2b_body = |ring_bytes: &[u8]| {
        let mut body = vec![0; 8 + 8 + 16];
        body.extend_from_slice(ring_bytes);
        frame_with_body(6, &body)
    };
    let reason_of = |frame: &[u8]| match decode(frame) {
        Err(WireError::InvalidRing { field: "Phase2B.ring", reason, .. }) => reason,
        other => panic!("expected an invalid ring, got {other:?}"),
    };
    assert!(reason_of(&phase2b_body(&[0])).contains("at least one"));
    let mut long_ring = vec![33];
    for member in 0..33u16 {
        long_ring.extend_from_slice(&member.to_le_bytes());
    }
    assert!(reason_of(&phase2b_body(&long_ring)).contains("RING_MEMBERS_MAX"));
    // The length alone condemns it, even if the members never came.
    assert!(reason_of(&phase2b_body(&[200])).contains("RING_MEMBERS_MAX"));
    assert!(reason_of(&phase2b_body(&[3, 1, 0, 2, 0, 1, 0])).contains("twice"));
}

#[test]
fn hostile_counts_are_refused_before_allocating() {
    let err = decode(&frame_with_body(1, &u32::MAX.to_le_bytes())).unwrap_err();
    assert_eq!(
        err,
        WireError::CountTooLarge {
            field: "Proposal.values",
            count: u32::MAX,
            needed_bytes: u64::from(u32::MAX) * 18,
            remaining_bytes: 0,
        }
    );

    // 18 bytes of regions: room for exactly one empty value, not two.
    assert!(matches!(
        decode(&frame_with_parts(1, &2u32.to_le_bytes(), &[0; 18])),
        Err(WireError::CountTooLarge { count: 2, needed_bytes: 36, remaining_bytes: 18, .. })
    ));

    let mut body = vec![0; 32];
    body.extend_from_slice(&0x0100_0000u32.to_le_bytes());
    assert!(matches!(
        decode(&frame_with_body(3, &body)),
        Err(WireError::CountTooLarge { field: "Phase1B.votes", count: 0x0100_0000, .. })
    ));
}

#[test]
fn payload_longer_than_the_body_is_malformed() {
    let mut regions = vec![0; 14]; // value id
    regions.extend_from_slice(&u32::MAX.to_le_bytes()); // payload_len
    regions.extend_from_slice(b"tiny");
    let err = decode(&frame_with_parts(1, &1u32.to_le_bytes(), &regions)).unwrap_err();
    assert!(matches!(err, WireError::BodyUnderrun { field: "Proposal.values", .. }), "{err}");
    assert!(!err.is_incomplete());
}

#[test]
fn short_body_is_malformed_not_incomplete() {
    let err = decode(&frame_with_body(4, &[0; 7])).unwrap_err();
    assert_eq!(
        err,
        WireError::BodyUnderrun { field: "Nack.rnd", needed_bytes: 8, remaining_bytes: 7 }
    );
    assert!(!err.is_incomplete());
}

#[test]
fn trailing_bytes_inside_the_body_are_malformed() {
    assert_eq!(
        decode(&frame_with_body(4, &[0; 9])),
        Err(WireError::TrailingBytes { kind: "nack", trailing_bytes: 1 })
    );
    assert_eq!(
        decode(&frame_with_parts(4, &[0; 8], &[0; 2])),
        Err(WireError::TrailingBytes { kind: "nack", trailing_bytes: 2 }),
        "regions no field names"
    );
}

#[test]
fn bytes_after_the_frame_are_left_alone() {
    let msg = Msg::Trimmed { trimmed_below: 9 };
    let mut buf = frame_of(&msg);
    let frame_len_bytes = buf.len();
    buf.extend_from_slice(b"\xffgarbage");
    assert_eq!(decode(&buf), Ok((msg, frame_len_bytes)));
}

#[test]
fn concatenated_frames_decode_in_turn() {
    let msgs: Vec<Msg> = samples().into_iter().map(|(_, msg)| msg).collect();
    let mut buf = Vec::new();
    for msg in &msgs {
        encode(msg, &mut buf);
    }
    let mut rest = &buf[..];
    for msg in &msgs {
        let (decoded, consumed) = decode(rest).unwrap();
        assert_eq!(&decoded, msg);
        rest = &rest[consumed..];
    }
    assert!(rest.is_empty());
    assert_eq!(decode(rest), Err(WireError::Truncated { needed_bytes: FRAME_HEADER_BYTES }));
}

#[test]
fn decode_bytes_shares_payloads_with_the_input() {
    let values = Batch::new(vec![value(1, 1, b"zero-copy payload")]);
    let msg = Msg::Proposal { values, via_rnd: Round::ZERO, ttl: 1 };
    let buf = Bytes::from(frame_of(&msg));
    let (decoded, _) = decode_bytes(&buf).unwrap();
    let Msg::Proposal { values, .. } = decoded else { panic!("not a proposal") };
    let payload = values.values().next().unwrap().payload;
    assert_eq!(&payload[..], b"zero-copy payload");
    let input = buf.as_ptr_range();
    assert!(input.contains(&payload.as_ptr()), "payload was copied");

    let (copied, _) = decode(&buf).unwrap();
    let Msg::Proposal { values, .. } = copied else { panic!("not a proposal") };
    assert!(!input.contains(&values.values().next().unwrap().payload.as_ptr()));
}

fn oversized_proposal() -> Msg {
    let payload = Bytes::from(vec![0; FRAME_BODY_BYTES_MAX]);
    Msg::Proposal {
        values: Batch::new(vec![Value {
            id: ValueId { proposer: 1, incarnation: 1, seq: 1 },
            payload,
        }]),
        via_rnd: Round::ZERO,
        ttl: 1,
    }
}

#[test]
fn try_encode_refuses_an_oversized_body_and_leaves_out_alone() {
    let msg = oversized_proposal();
    let mut out = vec![1, 2, 3];
    let body_len_bytes = encoded_len(&msg) - FRAME_HEADER_BYTES;
    assert_eq!(try_encode(&msg, &mut out), Err(WireError::BodyTooLong { body_len_bytes }));
    assert_eq!(out, [1, 2, 3]);
    assert_eq!(try_encode(&Msg::Trimmed { trimmed_below: 1 }, &mut out), Ok(()));
    assert_eq!(out.len(), 3 + FRAME_HEADER_BYTES + 8);
}

#[test]
#[should_panic(expected = "exceeds FRAME_BODY_BYTES_MAX")]
fn encode_panics_on_an_oversized_body() {
    encode(&oversized_proposal(), &mut Vec::new());
}

#[test]
fn a_body_of_exactly_the_maximum_round_trips() {
    let overhead_bytes = 4 + 18 + 8 + 1; // batch count, one value's id and length, via_rnd, ttl
    let payload = Bytes::from(vec![7; FRAME_BODY_BYTES_MAX - overhead_bytes]);
    let msg = Msg::Proposal {
        values: Batch::new(vec![Value {
            id: ValueId { proposer: 1, incarnation: 1, seq: 1 },
            payload,
        }]),
        via_rnd: Round::ZERO,
        ttl: 1,
    };
    let frame = frame_of(&msg);
    assert_eq!(frame.len(), FRAME_HEADER_BYTES + FRAME_BODY_BYTES_MAX);
    assert_eq!(decode(&frame), Ok((msg, frame.len())));
}

#[test]
fn a_shared_region_is_left_out_of_the_buffer_and_goes_back_in_at_its_place() {
    let big = Batch::new(vec![value(1, 1, &[9; 5000])]);
    let msg = Msg::Proposal { values: big.clone(), via_rnd: Round(3), ttl: 2 };
    let mut out = b"earlier frames".to_vec();
    let mut shared = Vec::new();
    encode_sharing(&msg, &mut out, &mut |region, at| {
        shared.push((at, region.clone()));
        true
    });
    assert_eq!(shared.len(), 1);
    let (at, region) = &shared[0];
    assert_eq!(region.as_ptr(), big.region().as_ptr(), "the batch's own bytes, not a copy");
    let mut spliced = out[..*at].to_vec();
    spliced.extend_from_slice(region);
    spliced.extend_from_slice(&out[*at..]);
    let mut copied = b"earlier frames".to_vec();
    encode(&msg, &mut copied);
    assert_eq!(spliced, copied);
    assert_eq!(out.len() + region.len() - 14, encoded_len(&msg));
}
