//! One Ring Paxos process fed whatever messages, from whichever sender, at whatever time: it must
//! never panic and must answer each input with a bounded number of actions.
//!
//! Input layout: one byte picks the protocol, f, the cluster size and the node's id; then records of
//! `sender u8 | dt u8 | kind u8 | fields_len u16 | regions_len u16 | fields | regions`. The harness
//! seals each record in a frame with a correct header and checksums (`wire::seal_frame`), so the
//! fuzzer explores message contents instead of checksums; a body the decoder refuses ends the input.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ringsmr::proto::{Action, Boot, ClusterConfig, NodeConfig, NodeId, Protocol, RingNode};
use ringsmr::wire;

/// More actions than one input may cause (a window of Phase 2As, a retransmission answer,
/// heartbeats and Phase 1As to every process), with room to spare.
const ACTIONS_PER_INPUT_MAX: usize = 1_000;

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
    while let [sender, dt, kind, f0, f1, r0, r1, tail @ ..] = rest {
        let fields_len = usize::from(u16::from_le_bytes([*f0, *f1])).min(tail.len());
        let (fields, tail) = tail.split_at(fields_len);
        let regions_len = usize::from(u16::from_le_bytes([*r0, *r1])).min(tail.len());
        let (regions, next) = tail.split_at(regions_len);
        rest = next;
        frame.clear();
        wire::seal_frame(*kind, fields, regions, &mut frame);
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
