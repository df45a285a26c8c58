//! One Ring Paxos process fed whatever messages, from whichever sender, at whatever time: it must
//! never panic and must answer each input with a bounded number of actions.
//!
//! Input layout: one byte picks the protocol, f, the cluster size and the node's id; then records of
//! `sender u8 | dt u8 | kind u8 | body_len u16 | body`. The harness seals each body in a frame with a
//! correct header and checksum, so the fuzzer explores message contents instead of checksums; a body
//! the decoder refuses ends the input.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ringsmr::proto::{Action, Boot, ClusterConfig, NodeConfig, NodeId, Protocol, RingNode};
use ringsmr::wire::{self, FRAME_MAGIC, FRAME_VERSION};

/// More actions than one input may cause (a window of Phase 2As, a retransmission answer,
/// heartbeats and Phase 1As to every process), with room to spare.
const ACTIONS_PER_INPUT_MAX: usize = 1_000;

fn sealed(kind: u8, body: &[u8], frame: &mut Vec<u8>) {
    frame.clear();
    frame.extend_from_slice(&FRAME_MAGIC.to_le_bytes());
    frame.push(FRAME_VERSION);
    frame.push(kind);
    frame.extend_from_slice(&(body.len() as u32).to_le_bytes());
    frame.extend_from_slice(&crc32fast::hash(body).to_le_bytes());
    frame.extend_from_slice(body);
}

fuzz_target!(|data: &[u8]| {
    let Some((&setup, mut rest)) = data.split_first() else { return };
    let protocol = if setup & 1 == 0 { Protocol::URing } else { Protocol::MRing };
    let f = 1 + usize::from(setup >> 1 & 1);
    let nodes = 2 * f as u16 + 1 + u16::from(setup >> 2 & 3).min(2);
    let id = NodeId::from(setup >> 4) % nodes;
    let cluster = ClusterConfig { nodes, acceptors: (0..(2 * f as NodeId + 1)).collect(), f };
    let mut node = RingNode::new(NodeConfig::new(id, protocol, cluster), 0, Boot::Fresh)
        .expect("the default configuration is valid");
    let (mut now, mut out, mut frame) = (0, Vec::<Action>::new(), Vec::new());
    node.drain_actions(&mut out);
    while let [sender, dt, kind, len_lo, len_hi, tail @ ..] = rest {
        let body_len = usize::from(u16::from_le_bytes([*len_lo, *len_hi])).min(tail.len());
        let (body, next) = tail.split_at(body_len);
        rest = next;
        sealed(*kind, body, &mut frame);
        let Ok((msg, _)) = wire::decode(&frame) else { return };
        now += u64::from(*dt) * 1_000;
        node.on_message(now, NodeId::from(*sender) % (nodes + 1), msg);
        if dt & 1 == 1 {
            node.on_tick(now);
        }
        out.clear();
        node.drain_actions(&mut out);
        assert!(out.len() <= ACTIONS_PER_INPUT_MAX, "one input caused {} actions", out.len());
    }
});
