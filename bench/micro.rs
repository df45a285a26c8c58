//! Micro-benchmarks of the hot paths under one consensus instance: the wire codec and one step of
//! the protocol core.
//!
//! ```sh
//! cargo bench --bench micro                          # measure (reports go to target/criterion)
//! cargo bench --locked --bench micro -- --test       # smoke form (CI): run each benchmark once
//! cargo bench --bench micro -- wire/phase2a          # a subset, by name filter
//! ```
//!
//! What each benchmark measures (throughput is in bytes of the encoded frame):
//!
//! - `wire/phase2a_32k/{encode,decode,decode_bytes}`: a `Msg::Phase2A` carrying a full batch of
//!   64-byte values, as the coordinator forms it under the default `batch_bytes_max` (32 KiB of
//!   batch bytes, i.e. payload plus `VALUE_OVERHEAD_BYTES` per value: 399 values). `encode` appends
//!   the frame to a reused `Vec` (header, body and CRC-32); `decode` parses it from a `&[u8]`,
//!   copying every payload; `decode_bytes` parses it from a `Bytes`, slicing payloads without
//!   copying. Both decoders include dropping the decoded message.
//! - `wire/decision_small/{encode,decode,decode_bytes}`: the same for a U-Ring `Msg::Decision` that
//!   carries the id only (`c_val: None`) and the three-process ring of its round.
//! - `proto/uring_acceptor_phase2a_32k`: one step of a U-Ring `RingNode` — process 1 of three, f = 1,
//!   the last acceptor of the ring `0 -> 1 -> 2` — that promised the round in Phase 1 and now
//!   receives the Phase 2A/2B of the next instance from the coordinator (process 0), with a fresh
//!   batch like the one above: `on_message` plus `drain_actions` into a reused `Vec`, and dropping
//!   the drained actions. In that step the acceptor votes, decides (it closes the quorum), delivers
//!   the batch's values to its application and forwards the decision with the value to process 2.
//!   Messages are built outside the timed section; the node is replaced by a fresh one (outside the
//!   timed section too) every `FRESH_NODE_EVERY_INSTANCES`, which bounds the memory its acceptor log
//!   holds, since nothing in a benchmark drives garbage collection.

use std::hint::black_box;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

use ringsmr::proto::decided_ids::DecidedIds;
use ringsmr::proto::{
    Action, Batch, Boot, Carried, ClusterConfig, Instance, Msg, NodeConfig, NodeId, Protocol, Ring,
    RingNode, Round, Tick, VALUE_OVERHEAD_BYTES, Value, ValueId, Vid,
};
use ringsmr::wire;

/// Payload bytes of one application value.
const VALUE_PAYLOAD_BYTES: usize = 64;
/// The coordinator, first on the ring and owner of the round.
const COORDINATOR: NodeId = 0;
/// The acceptor under test: second on the ring, which with f = 1 makes it the last acceptor.
const ACCEPTOR: NodeId = 1;
/// The process after the last acceptor; the decision goes on to it with the value.
const SUCCESSOR: NodeId = 2;
/// The proposer named in the values' ids.
const PROPOSER: NodeId = 2;
/// Time of every input; the step under test reads no timer.
const NOW: Tick = 1_000;
/// Phase 2A messages built ahead of one timed section.
const MESSAGES_PER_SECTION: u64 = 64;
/// Instances one node serves before it is replaced (about 19 KiB of log per instance).
const FRESH_NODE_EVERY_INSTANCES: u64 = 2_048;

fn cluster() -> ClusterConfig {
    ClusterConfig { nodes: 3, acceptors: vec![0, 1, 2], f: 1 }
}

fn node_config(id: NodeId) -> NodeConfig {
    NodeConfig::new(id, Protocol::URing, cluster())
}

/// The ring the coordinator lays out for its round when every process is up.
fn ring() -> Ring {
    Ring::new(&[COORDINATOR, ACCEPTOR, SUCCESSOR]).expect("a valid ring")
}

/// The first round the coordinator owns.
fn round() -> Round {
    Round::next_owned(Round::ZERO, COORDINATOR).expect("the first round exists")
}

/// Values of `VALUE_PAYLOAD_BYTES` each, as many as fit in one batch under the default bound.
fn values_per_batch() -> usize {
    node_config(COORDINATOR).batch_bytes_max / (VALUE_PAYLOAD_BYTES + VALUE_OVERHEAD_BYTES)
}

/// A full batch whose value ids start at `first_seq`; the payloads are slices of `payloads`, as
/// `wire::decode_bytes` hands them to a node.
fn batch(payloads: &Bytes, first_seq: u64) -> Batch {
    let values = (0..values_per_batch())
        .map(|i| Value {
            id: ValueId { proposer: PROPOSER, incarnation: 0, seq: first_seq + i as u64 },
            payload: payloads.slice(i * VALUE_PAYLOAD_BYTES..(i + 1) * VALUE_PAYLOAD_BYTES),
        })
        .collect();
    Batch::new(values)
}

fn payload_buffer() -> Bytes {
    let len = values_per_batch() * VALUE_PAYLOAD_BYTES;
    Bytes::from((0..len).map(|i| (i % 251) as u8).collect::<Vec<u8>>())
}

fn phase2a(instance: Instance, c_val: Batch) -> Msg {
    let c_rnd = round();
    let c_vid = Vid { rnd: c_rnd, seq: instance };
    let (c_val, ring, decided) = (Carried::Value(c_val), ring(), DecidedIds::NONE);
    Msg::Phase2A { c_rnd, instance, c_vid, c_val, ring, decided }
}

// -------------------------------------------------------------------------------------------------
// Wire codec
// -------------------------------------------------------------------------------------------------

fn bench_codec(c: &mut Criterion, name: &str, msg: &Msg) {
    let mut frame = Vec::new();
    wire::encode(msg, &mut frame);
    assert_eq!(frame.len(), wire::encoded_len(msg));
    let shared = Bytes::from(frame.clone());
    assert_eq!(wire::decode(&frame).expect("the frame decodes"), (msg.clone(), frame.len()));
    assert_eq!(wire::decode_bytes(&shared).expect("the frame decodes"), (msg.clone(), frame.len()));

    let mut group = c.benchmark_group(format!("wire/{name}"));
    group.throughput(Throughput::Bytes(frame.len() as u64));
    let mut out = Vec::with_capacity(frame.len());
    group.bench_function("encode", |b| {
        b.iter(|| {
            out.clear();
            wire::encode(black_box(msg), &mut out);
            black_box(out.len())
        })
    });
    group.bench_function("decode", |b| b.iter(|| wire::decode(black_box(&frame))));
    group.bench_function("decode_bytes", |b| b.iter(|| wire::decode_bytes(black_box(&shared))));
    group.finish();
}

fn wire_phase2a(c: &mut Criterion) {
    let msg = phase2a(7, batch(&payload_buffer(), 0));
    bench_codec(c, "phase2a_32k", &msg);
}

fn wire_decision(c: &mut Criterion) {
    let c_rnd = round();
    let msg = Msg::Decision {
        instance: 7,
        c_vid: Vid { rnd: c_rnd, seq: 7 },
        c_val: None,
        ring: Some((c_rnd, ring())),
    };
    bench_codec(c, "decision_small", &msg);
}

// -------------------------------------------------------------------------------------------------
// One protocol step at a U-Ring acceptor
// -------------------------------------------------------------------------------------------------

/// The acceptor under test and the next instance the coordinator will send it.
struct AcceptorStep {
    node: RingNode,
    next_instance: Instance,
    payloads: Bytes,
}

impl AcceptorStep {
    /// A fresh acceptor that promised the coordinator's round (Phase 1), as it is once a round runs.
    fn new(payloads: &Bytes) -> AcceptorStep {
        let mut node =
            RingNode::new(node_config(ACCEPTOR), 0, Boot::Fresh).expect("a valid configuration");
        let mut actions = Vec::new();
        node.drain_actions(&mut actions);
        actions.clear();
        let c_rnd = round();
        node.on_message(NOW, COORDINATOR, Msg::Phase1A { c_rnd, from: 0, ring: ring() });
        node.drain_actions(&mut actions);
        let promised = actions.iter().any(|a| {
            matches!(a, Action::Send { to: COORDINATOR, msg: Msg::Phase1B { rnd, .. } } if *rnd == c_rnd)
        });
        assert!(promised, "the acceptor must promise the round first: {actions:?}");
        assert_eq!(node.acceptor_state().map(|a| a.rnd), Some(c_rnd));
        AcceptorStep { node, next_instance: 0, payloads: payloads.clone() }
    }

    /// The coordinator's Phase 2A for the next instance, with values never delivered before (a
    /// learner delivers each value id once).
    fn next_message(&mut self) -> Msg {
        let instance = self.next_instance;
        self.next_instance += 1;
        let first_seq = instance * values_per_batch() as u64;
        phase2a(instance, batch(&self.payloads, first_seq))
    }

    fn step(&mut self, msg: Msg, actions: &mut Vec<Action>) {
        self.node.on_message(NOW, COORDINATOR, msg);
        self.node.drain_actions(actions);
    }
}

/// Checks once, outside the timed code, that the step takes the voting path: the acceptor votes,
/// delivers every value and passes the decision with its value to its successor.
fn check_acceptor_step(payloads: &Bytes) -> u64 {
    let mut acceptor = AcceptorStep::new(payloads);
    let mut actions = Vec::new();
    for _ in 0..3 {
        let msg = acceptor.next_message();
        let Msg::Phase2A { c_rnd, instance, c_vid, c_val: Carried::Value(c_val), .. } = msg.clone()
        else {
            unreachable!("next_message builds a Phase 2A that carries its value")
        };
        acceptor.step(msg, &mut actions);
        let mut expected = vec![Action::Deliver { instance, values: c_val.clone() }];
        let decision = Msg::Decision {
            instance,
            c_vid,
            c_val: Some(c_val.into()),
            ring: Some((c_rnd, ring())),
        };
        expected.push(Action::Send { to: SUCCESSOR, msg: decision });
        assert_eq!(actions, expected, "instance {instance}");
        let state = acceptor.node.acceptor_state().expect("an acceptor");
        let vote = state.slots.get(instance).and_then(|slot| slot.vote.as_ref());
        assert!(vote.is_some_and(|(rnd, vid, _)| *rnd == c_rnd && *vid == c_vid), "no vote");
        assert_eq!(acceptor.node.delivered_below(), instance + 1);
        actions.clear();
    }
    assert_eq!(acceptor.node.counters().refused_stale_round, 0);
    let mut frame = Vec::new();
    wire::encode(&acceptor.next_message(), &mut frame);
    frame.len() as u64
}

fn proto_acceptor_step(c: &mut Criterion) {
    let payloads = payload_buffer();
    let frame_len_bytes = check_acceptor_step(&payloads);

    let mut group = c.benchmark_group("proto");
    group.throughput(Throughput::Bytes(frame_len_bytes));
    let mut acceptor = AcceptorStep::new(&payloads);
    let mut messages = Vec::with_capacity(MESSAGES_PER_SECTION as usize);
    let mut actions = Vec::new();
    group.bench_function("uring_acceptor_phase2a_32k", |b| {
        b.iter_custom(|iters| {
            let mut elapsed = Duration::ZERO;
            let mut done = 0;
            while done < iters {
                let section = (iters - done).min(MESSAGES_PER_SECTION);
                if acceptor.next_instance + section > FRESH_NODE_EVERY_INSTANCES {
                    acceptor = AcceptorStep::new(&payloads);
                }
                messages.extend((0..section).map(|_| acceptor.next_message()));
                let start = Instant::now();
                for msg in messages.drain(..) {
                    acceptor.step(black_box(msg), &mut actions);
                    black_box(&actions);
                    actions.clear();
                }
                elapsed += start.elapsed();
                done += section;
            }
            elapsed
        })
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().without_plots();
    targets = wire_phase2a, wire_decision, proto_acceptor_step
}
criterion_main!(benches);
