//! A peer may be buggy, or a frame may be damaged in a way its checksum cannot see: whatever
//! well-formed message arrives, from whichever sender, at whatever time, a core must handle it or drop
//! it (and count it), never panic, and answer it with a bounded number of actions (DESIGN, Errors).
//!
//! The messages come in two kinds: wild ones (every field over its whole type, as a codec sees them)
//! and ones that stay inside the cluster (its node ids, small instance numbers and rounds), which get
//! past the first checks and drive the roles into their deeper states.

use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::Index;

use super::arb::{Bounds, arb_msg};
use super::*;

/// More actions than any single input may cause: a window of Phase 2As (32 by default), one
/// retransmission answer (64 decisions), heartbeats and Phase 1As to every process, with room to spare.
const ACTIONS_PER_INPUT_MAX: usize = 1_000;

/// One input: a message from `from` after `dt_us`, then, if `tick`, a timer firing.
fn arb_inputs(nodes: u16) -> impl Strategy<Value = Vec<(u16, Msg, u64, bool)>> {
    let msg = prop_oneof![1 => arb_msg(Bounds::ANY), 4 => arb_msg(Bounds::cluster(nodes, 24))];
    // Senders include one id past the cluster's last, which a core must refuse.
    vec((0..=nodes, msg, 0u64..200_000, any::<bool>()), 1..60)
}

/// Gives `msg` the ring the owner of its round would lay out (leaving out `suspect`), where it carries
/// a ring and the owner is an acceptor: random rings almost never have that shape, and a message
/// with any other ring is dropped before it reaches the roles this test means to drive.
fn with_laid_out_ring(
    msg: Msg,
    protocol: Protocol,
    cluster: &ClusterConfig,
    suspect: NodeId,
) -> Msg {
    let laid_out = |rnd: Round| {
        let owner = rnd.owner();
        if !cluster.is_acceptor(owner) {
            return None;
        }
        super::ring_layout::lay_out(protocol, cluster, owner, |a| a != suspect, |n| n != suspect)
    };
    match msg {
        Msg::Phase1A { c_rnd, from, ring } => {
            Msg::Phase1A { c_rnd, from, ring: laid_out(c_rnd).unwrap_or(ring) }
        }
        Msg::Phase2A { c_rnd, instance, c_vid, c_val, ring, decided } => {
            let ring = laid_out(c_rnd).unwrap_or(ring);
            Msg::Phase2A { c_rnd, instance, c_vid, c_val, ring, decided }
        }
        Msg::Phase2B { c_rnd, instance, c_vid, ring } => {
            Msg::Phase2B { c_rnd, instance, c_vid, ring: laid_out(c_rnd).unwrap_or(ring) }
        }
        Msg::Decision { instance, c_vid, c_val, ring: Some((rnd, ring)) } => {
            let ring = Some((rnd, laid_out(rnd).unwrap_or(ring)));
            Msg::Decision { instance, c_vid, c_val, ring }
        }
        other => other,
    }
}

fn run(protocol: Protocol, f: usize, nodes: u16, id: NodeId, inputs: Vec<(u16, Msg, u64, bool)>) {
    let cluster = ClusterConfig { nodes, acceptors: (0..(2 * f as NodeId + 1)).collect(), f };
    let cfg = NodeConfig::new(id, protocol, cluster.clone());
    let mut node = RingNode::new(cfg, 0, Boot::Fresh).unwrap();
    let mut out = Vec::new();
    node.drain_actions(&mut out);
    let mut now = 0;
    for (i, (from, msg, dt_us, tick)) in inputs.into_iter().enumerate() {
        // Four messages in five get a laid-out ring (one without any suspect among the processes).
        let msg = if dt_us % 5 == 0 {
            msg
        } else {
            with_laid_out_ring(msg, protocol, &cluster, (dt_us % 8) as NodeId)
        };
        now += dt_us;
        node.on_message(now, from, msg);
        if tick {
            node.on_tick(now);
        }
        out.clear();
        node.drain_actions(&mut out);
        assert!(
            out.len() <= ACTIONS_PER_INPUT_MAX,
            "input #{i} made node {id} emit {} actions",
            out.len()
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn no_message_from_any_sender_makes_a_node_panic(
        m_ring in any::<bool>(),
        f in 1usize..=2,
        spare in 0u16..=2,
        id in any::<Index>(),
        inputs in arb_inputs(7),
    ) {
        let protocol = if m_ring { Protocol::MRing } else { Protocol::URing };
        let nodes = 2 * f as u16 + 1 + spare;
        let inputs = inputs.into_iter().map(|(from, msg, dt, tick)| (from % (nodes + 1), msg, dt, tick)).collect();
        run(protocol, f, nodes, id.index(usize::from(nodes)) as NodeId, inputs);
    }
}
