//! Handler tests in the openraft style: set a node up, feed it one input, and compare the exact actions
//! it drains with the ones the thesis' algorithms prescribe. Heartbeats and timer requests are left
//! out of the comparison (they accompany every tick); everything else must match exactly.

use bytes::Bytes;

use super::*;
use crate::proto::decided_ids::DecidedIds;

fn cluster(f: usize, nodes: u16) -> ClusterConfig {
    ClusterConfig { nodes, acceptors: (0..(2 * f as NodeId + 1)).collect(), f }
}

fn config(id: NodeId, protocol: Protocol, f: usize, nodes: u16) -> NodeConfig {
    NodeConfig::new(id, protocol, cluster(f, nodes))
}

fn node(id: NodeId, protocol: Protocol, f: usize, nodes: u16) -> RingNode {
    node_with(config(id, protocol, f, nodes))
}

/// A freshly started node of configuration `cfg`, its start-up actions drained.
fn node_with(cfg: NodeConfig) -> RingNode {
    let mut n = RingNode::new(cfg, 0, Boot::Fresh).unwrap();
    drain(&mut n);
    n
}

/// The drained actions without heartbeats and timers.
fn drain(n: &mut RingNode) -> Vec<Action> {
    let mut out = Vec::new();
    n.drain_actions(&mut out);
    out.retain(|a| {
        !matches!(a, Action::SetTimer { .. } | Action::Send { msg: Msg::Heartbeat { .. }, .. })
    });
    out
}

/// Round `counter` owned by `owner`.
fn r(counter: u64, owner: NodeId) -> Round {
    Round((counter << 16) | u64::from(owner))
}

fn ring(members: &[NodeId]) -> Ring {
    Ring::new(members).unwrap()
}

fn vid(rnd: Round, seq: u64) -> Vid {
    Vid { rnd, seq }
}

fn value(proposer: NodeId, seq: u64) -> Value {
    Value {
        id: ValueId { proposer, incarnation: 0, seq },
        payload: Bytes::from(format!("v{proposer}.{seq}")),
    }
}

fn value_with(proposer: NodeId, seq: u64, payload: &'static [u8]) -> Value {
    Value { id: ValueId { proposer, incarnation: 0, seq }, payload: Bytes::from_static(payload) }
}

fn batch(values: &[Value]) -> Batch {
    Batch::new(values.to_vec())
}

fn phase2a(c_rnd: Round, instance: Instance, c_vid: Vid, c_val: &Batch, ring: Ring) -> Msg {
    let decided = DecidedIds::NONE;
    Msg::Phase2A { c_rnd, instance, c_vid, c_val: c_val.clone().into(), ring, decided }
}

/// A U-Ring Phase 2A that names the proposal `c_val` instead of carrying it.
fn phase2a_named(c_rnd: Round, instance: Instance, c_vid: Vid, c_val: &Batch, ring: Ring) -> Msg {
    let id = c_val.proposal_id().unwrap();
    let decided = DecidedIds::NONE;
    Msg::Phase2A { c_rnd, instance, c_vid, c_val: Carried::Proposal(id), ring, decided }
}

/// An acceptor's Phase 1B for `rnd`: its promise, and no vote anywhere in its log.
fn promise_without_votes(rnd: Round) -> Msg {
    Msg::Phase1B { rnd, from: 0, trimmed_below: 0, votes_below: Instance::MAX, votes: vec![] }
}

fn deliveries(instance: Instance, b: &Batch) -> Vec<Action> {
    if b.is_empty() {
        return vec![];
    }
    vec![Action::Deliver { instance, values: b.clone() }]
}

// ------------------------------------------------------------------------------------------------
// Phase 1 / Phase 2 at the acceptor
// ------------------------------------------------------------------------------------------------

#[test]
fn an_acceptor_that_saw_a_higher_round_refuses_phase1a_and_phase2a_with_a_nack() {
    let mut a = node(1, Protocol::MRing, 1, 3);
    let m_ring = ring(&[1, 2]);
    a.on_message(0, 2, Msg::Phase1A { c_rnd: r(2, 2), from: 0, ring: m_ring });
    assert_eq!(drain(&mut a), vec![Action::Send { to: 2, msg: promise_without_votes(r(2, 2)) }]);
    let old = ring(&[1, 0]);
    a.on_message(1, 0, phase2a(r(1, 0), 0, vid(r(1, 0), 1), &Batch::empty(), old));
    assert_eq!(drain(&mut a), vec![Action::Send { to: 0, msg: Msg::Nack { rnd: r(2, 2) } }]);
    a.on_message(2, 0, Msg::Phase1A { c_rnd: r(1, 0), from: 0, ring: old });
    assert_eq!(drain(&mut a), vec![Action::Send { to: 0, msg: Msg::Nack { rnd: r(2, 2) } }]);
    assert_eq!(a.counters().refused_stale_round, 2);
    assert!(
        a.acceptor_state().unwrap().votes_from(0, usize::MAX).0.is_empty(),
        "the stale Phase 2A left no vote"
    );
}

#[test]
fn a_repeated_phase1a_of_the_same_round_is_answered_again_with_the_votes() {
    let mut a = node(1, Protocol::URing, 1, 3);
    let u_ring = ring(&[0, 1, 2]);
    let val = batch(&[value(2, 0)]);
    a.on_message(0, 0, phase2a(r(1, 0), 4, vid(r(1, 0), 1), &val, u_ring));
    drain(&mut a);
    for _ in 0..2 {
        a.on_message(1, 2, Msg::Phase1A { c_rnd: r(2, 2), from: 3, ring: ring(&[2, 0, 1]) });
        let vote = Vote { instance: 4, v_rnd: r(1, 0), v_vid: vid(r(1, 0), 1), v_val: val.clone() };
        assert_eq!(
            drain(&mut a),
            vec![Action::Send {
                to: 2,
                msg: Msg::Phase1B {
                    rnd: r(2, 2),
                    from: 3,
                    trimmed_below: 0,
                    votes_below: u64::MAX,
                    votes: vec![vote]
                }
            }]
        );
    }
}

#[test]
fn m_ring_acceptor_votes_only_with_the_value_not_just_its_id() {
    // f = 2: ring a1=1 -> a2=2 -> coordinator 0.
    let m_ring = ring(&[1, 2, 0]);
    let c_rnd = r(1, 0);
    let x = vid(c_rnd, 1);
    let val = batch(&[value(3, 0)]);
    let mut a2 = node(2, Protocol::MRing, 2, 5);
    let phase2b = Msg::Phase2B { c_rnd, instance: 0, c_vid: x, ring: m_ring };

    // The Phase 2B overtakes the multicast Phase 2A: a2 holds no value, so it must not pass the vote on.
    a2.on_message(0, 1, phase2b.clone());
    assert_eq!(drain(&mut a2), vec![]);
    assert_eq!(a2.counters().phase2b_without_vote, 1);

    // The value arrives: a2 votes and, not being first on the ring, starts no Phase 2B itself, but
    // passes on the one that came early (it used to wait for the coordinator's retry, 50 ms).
    let to_coordinator = vec![Action::Send {
        to: 0,
        msg: Msg::Phase2B { c_rnd, instance: 0, c_vid: x, ring: m_ring },
    }];
    a2.on_message(1, 0, phase2a(c_rnd, 0, x, &val, m_ring));
    assert_eq!(drain(&mut a2), to_coordinator);

    // A retransmitted Phase 2B goes on to the coordinator again.
    a2.on_message(2, 1, phase2b);
    assert_eq!(drain(&mut a2), to_coordinator);

    // A Phase 2B for another value id in the same instance is not a vote a2 cast.
    let other = Msg::Phase2B { c_rnd, instance: 0, c_vid: vid(c_rnd, 2), ring: m_ring };
    a2.on_message(3, 1, other);
    assert_eq!(drain(&mut a2), vec![]);

    // The first acceptor of the ring starts Phase 2B as soon as it votes (Alg. 2 Task 4).
    let mut a1 = node(1, Protocol::MRing, 2, 5);
    a1.on_message(0, 0, phase2a(c_rnd, 0, x, &val, m_ring));
    assert_eq!(
        drain(&mut a1),
        vec![Action::Send {
            to: 2,
            msg: Msg::Phase2B { c_rnd, instance: 0, c_vid: x, ring: m_ring }
        }]
    );
}

#[test]
fn m_ring_coordinator_decides_on_the_last_phase2b_and_multicasts_the_id_only() {
    let mut c = node(0, Protocol::MRing, 1, 3);
    c.on_tick(0);
    let sent = drain(&mut c);
    let m_ring = ring(&[1, 0]);
    let c_rnd = r(1, 0);
    assert_eq!(
        sent,
        vec![
            Action::Send { to: 1, msg: Msg::Phase1A { c_rnd, from: 0, ring: m_ring } },
            Action::Send { to: 2, msg: Msg::Phase1A { c_rnd, from: 0, ring: m_ring } },
        ]
    );
    c.on_message(1, 1, promise_without_votes(c_rnd));
    assert_eq!(drain(&mut c), vec![]);
    assert_eq!(c.coordinating(), Some(c_rnd));

    c.propose(2, b"hello").unwrap();
    let hello = batch(&[Value {
        id: ValueId { proposer: 0, incarnation: 0, seq: 0 },
        payload: Bytes::from_static(b"hello"),
    }]);
    let x = vid(c_rnd, 1);
    assert_eq!(
        drain(&mut c),
        vec![Action::Multicast { msg: phase2a(c_rnd, 0, x, &hello, m_ring) }]
    );

    c.on_message(3, 1, Msg::Phase2B { c_rnd, instance: 0, c_vid: x, ring: m_ring });
    let mut expected = vec![Action::Multicast {
        msg: Msg::Decision { instance: 0, c_vid: x, c_val: None, ring: None },
    }];
    expected.extend(deliveries(0, &hello));
    assert_eq!(drain(&mut c), expected);
    assert_eq!(c.pending_values(), 0, "the proposer saw its value delivered");
}

#[test]
fn m_ring_decisions_ride_on_the_phase2a_of_the_same_step_and_learners_take_them_from_it() {
    let mut c = node(0, Protocol::MRing, 1, 3);
    let mut learner = node(2, Protocol::MRing, 1, 3);
    c.on_tick(0);
    drain(&mut c);
    let m_ring = ring(&[1, 0]);
    let c_rnd = r(1, 0);
    c.on_message(1, 1, promise_without_votes(c_rnd));
    c.propose(2, b"hello").unwrap();
    let sent = drain(&mut c);
    let [Action::Multicast { msg: first }] = &sent[..] else { panic!("one Phase 2A: {sent:?}") };
    let hello = batch(&[value_with(0, 0, b"hello")]);
    let x = vid(c_rnd, 1);
    assert_eq!(*first, phase2a(c_rnd, 0, x, &hello, m_ring));

    // The vote completing instance 0 and a new value arrive in one step: one datagram carries both.
    c.on_message(3, 1, Msg::Phase2B { c_rnd, instance: 0, c_vid: x, ring: m_ring });
    c.propose(3, b"world").unwrap();
    let world = batch(&[value_with(0, 1, b"world")]);
    let y = vid(c_rnd, 2);
    let mut decided = DecidedIds::NONE;
    decided.push(0, x);
    let second =
        Msg::Phase2A { c_rnd, instance: 1, c_vid: y, c_val: world.into(), ring: m_ring, decided };
    let mut expected = vec![Action::Multicast { msg: second.clone() }];
    expected.extend(deliveries(0, &hello));
    assert_eq!(drain(&mut c), expected, "no decision multicast on its own");

    // A learner that got both datagrams delivers instance 0 without a decision message of its own.
    learner.on_message(4, 0, first.clone());
    assert_eq!(drain(&mut learner), vec![]);
    learner.on_message(5, 0, second);
    assert_eq!(drain(&mut learner), deliveries(0, &hello));
}

#[test]
fn decisions_inside_a_u_ring_phase2a_are_malformed() {
    let mut a = node(1, Protocol::URing, 1, 3);
    let c_rnd = r(1, 0);
    let phase2a_deciding = |decided: &[(Instance, Vid)]| {
        let mut ids = DecidedIds::NONE;
        for &(i, v) in decided {
            ids.push(i, v);
        }
        let c_val = Batch::empty().into();
        let ring = ring(&[0, 1]);
        Msg::Phase2A { c_rnd, instance: 1, c_vid: vid(c_rnd, 2), c_val, ring, decided: ids }
    };
    a.on_message(1, 0, phase2a_deciding(&[(0, vid(c_rnd, 1))]));
    assert_eq!(drain(&mut a), vec![]);
    assert_eq!(a.counters().malformed_dropped, 1);
    a.on_message(2, 0, phase2a_deciding(&[]));
    assert!(!drain(&mut a).is_empty(), "without decisions the same Phase 2A is voted on");
    assert_eq!(a.counters().malformed_dropped, 1);
}

// ------------------------------------------------------------------------------------------------
// Phase 1 at the coordinator: the highest v-rnd wins
// ------------------------------------------------------------------------------------------------

#[test]
fn a_new_coordinator_reproposes_the_value_of_the_highest_v_rnd_and_fills_holes() {
    // f = 2, M-Ring. Node 0 first hears of round r(2, 1), so its own round is r(3, 0).
    let mut c = node(0, Protocol::MRing, 2, 5);
    c.on_message(0, 1, Msg::Phase1A { c_rnd: r(2, 1), from: 0, ring: ring(&[2, 3, 1]) });
    drain(&mut c);
    c.on_tick(1);
    let c_rnd = r(3, 0);
    let m_ring = ring(&[1, 2, 0]);
    assert_eq!(drain(&mut c).len(), 4, "Phase 1A to the four other acceptors");

    let x = vid(r(1, 1), 1);
    let y = vid(r(2, 2), 1);
    let z = vid(r(1, 1), 2);
    let (x_val, y_val, z_val) =
        (batch(&[value(3, 0)]), batch(&[value(4, 0)]), batch(&[value(3, 1)]));
    let vote = |instance, v_rnd, v_vid, v_val: &Batch| Vote {
        instance,
        v_rnd,
        v_vid,
        v_val: v_val.clone(),
    };
    c.on_message(
        2,
        1,
        Msg::Phase1B {
            rnd: c_rnd,
            from: 0,
            trimmed_below: 0,
            votes_below: u64::MAX,
            votes: vec![vote(0, r(1, 1), x, &x_val), vote(2, r(1, 1), z, &z_val)],
        },
    );
    assert_eq!(drain(&mut c), vec![], "two promises of three");
    c.on_message(
        3,
        2,
        Msg::Phase1B {
            rnd: c_rnd,
            from: 0,
            trimmed_below: 0,
            votes_below: u64::MAX,
            votes: vec![vote(0, r(2, 2), y, &y_val)],
        },
    );
    assert_eq!(
        drain(&mut c),
        vec![
            // Instance 0: y (v-rnd r2.2) beats x (v-rnd r1.1).
            Action::Multicast { msg: phase2a(c_rnd, 0, y, &y_val, m_ring) },
            // Instance 1: no vote in the quorum, a no-op so learners never wait on a hole.
            Action::Multicast { msg: phase2a(c_rnd, 1, vid(c_rnd, 1), &Batch::empty(), m_ring) },
            Action::Multicast { msg: phase2a(c_rnd, 2, z, &z_val, m_ring) },
        ]
    );
}

#[test]
fn an_acceptor_reports_a_large_log_in_pieces_of_bounded_bytes() {
    let mut cfg = config(1, Protocol::MRing, 1, 4);
    cfg.phase1b_bytes_max = 50; // two 22-byte batches fit, three do not
    let mut a = node_with(cfg);
    let (old, m_ring) = (r(1, 0), ring(&[1, 0]));
    let vals: Vec<Batch> = (0..3).map(|i| batch(&[value(3, i)])).collect();
    for (i, val) in vals.iter().enumerate() {
        a.on_message(1, 0, phase2a(old, i as Instance, vid(old, i as u64 + 1), val, m_ring));
    }
    drain(&mut a);
    let vote = |i: usize| Vote {
        instance: i as Instance,
        v_rnd: old,
        v_vid: vid(old, i as u64 + 1),
        v_val: vals[i].clone(),
    };

    let c_rnd = r(2, 2);
    let piece = |from, votes_below, votes| {
        let msg = Msg::Phase1B { rnd: c_rnd, from, trimmed_below: 0, votes_below, votes };
        vec![Action::Send { to: 2, msg }]
    };
    a.on_message(2, 2, Msg::Phase1A { c_rnd, from: 0, ring: ring(&[1, 2]) });
    assert_eq!(drain(&mut a), piece(0, 2, vec![vote(0), vote(1)]));
    a.on_message(3, 2, Msg::Phase1A { c_rnd, from: 2, ring: ring(&[1, 2]) });
    assert_eq!(drain(&mut a), piece(2, Instance::MAX, vec![vote(2)]));
}

#[test]
fn a_coordinator_pulls_the_next_piece_and_ignores_a_stale_one() {
    // M-Ring, f = 1: node 0 coordinates; its own (empty) acceptor and acceptor 1 form the m-quorum.
    let mut c = node(0, Protocol::MRing, 1, 3);
    c.on_tick(0);
    assert_eq!(drain(&mut c).len(), 2, "Phase 1A to acceptors 1 and 2");
    let (c_rnd, m_ring) = (r(1, 0), ring(&[1, 0]));
    let old = r(0, 1);
    let (x, z) = (vid(old, 1), vid(old, 3));
    let (x_val, z_val) = (batch(&[value(1, 0)]), batch(&[value(1, 2)]));
    let vote =
        |instance, v_vid, v_val: &Batch| Vote { instance, v_rnd: old, v_vid, v_val: v_val.clone() };
    let first_piece = Msg::Phase1B {
        rnd: c_rnd,
        from: 0,
        trimmed_below: 0,
        votes_below: 2,
        votes: vec![vote(0, x, &x_val)],
    };
    c.on_message(1, 1, first_piece.clone());
    assert_eq!(
        drain(&mut c),
        vec![
            // The window (32 instances) reaches past acceptor 1's report: ask for what follows.
            Action::Send { to: 1, msg: Msg::Phase1A { c_rnd, from: 2, ring: m_ring } },
            // Instances 0 and 1 are reported by the m-quorum {0, 1}: x again, then a no-op.
            Action::Multicast { msg: phase2a(c_rnd, 0, x, &x_val, m_ring) },
            Action::Multicast { msg: phase2a(c_rnd, 1, vid(c_rnd, 1), &Batch::empty(), m_ring) },
        ]
    );
    assert_eq!(c.coordinating(), None, "Phase 1 is not complete");

    c.on_message(2, 1, first_piece);
    assert_eq!(drain(&mut c), vec![], "a repeated piece adds nothing");
    assert_eq!(c.counters().phase1b_ignored, 1);

    c.on_message(
        3,
        1,
        Msg::Phase1B {
            rnd: c_rnd,
            from: 2,
            trimmed_below: 0,
            votes_below: u64::MAX,
            votes: vec![vote(3, z, &z_val)],
        },
    );
    assert_eq!(
        drain(&mut c),
        vec![
            Action::Multicast { msg: phase2a(c_rnd, 2, vid(c_rnd, 2), &Batch::empty(), m_ring) },
            Action::Multicast { msg: phase2a(c_rnd, 3, z, &z_val, m_ring) },
        ]
    );
    assert_eq!(c.coordinating(), Some(c_rnd));
}

#[test]
fn messages_no_correct_process_sends_are_dropped_and_counted() {
    // U-Ring, f = 1, node 1 an acceptor. Each message below is well-formed bytes that no correct
    // process sends; each is dropped before any role sees it.
    let mut a = node(1, Protocol::URing, 1, 4);
    let (c_rnd, x, val) = (r(1, 1), vid(r(1, 1), 1), batch(&[value(2, 0)]));
    let malformed = [
        // A ring of one: node 1 would be its own successor and pass this to itself for ever.
        phase2a(c_rnd, 0, x, &val, ring(&[1])),
        // The ring's coordinator is not the round's owner (node 1 owns r(1, 1)).
        phase2a(c_rnd, 0, x, &val, ring(&[0, 1, 2, 3])),
        // Process 9 is not in the cluster.
        phase2a(c_rnd, 0, x, &val, ring(&[1, 0, 9])),
        // No acceptor owns rounds of process 3.
        Msg::Nack { rnd: r(5, 3) },
        // Instance::MAX means "everything" on the wire; it is no instance.
        Msg::Decision {
            instance: Instance::MAX,
            c_vid: x,
            c_val: Some(val.clone().into()),
            ring: None,
        },
    ];
    let count = malformed.len() as u64;
    for msg in malformed {
        a.on_message(1, 0, msg);
        assert_eq!(drain(&mut a), vec![]);
    }
    assert_eq!(a.counters().malformed_dropped, count);
    assert!(a.acceptor_state().unwrap().slots.is_empty(), "nothing was voted");
}

#[test]
fn a_refusal_naming_the_last_round_there_is_stops_the_coordinator_instead_of_wrapping() {
    let mut c = node(0, Protocol::MRing, 1, 3);
    c.on_tick(0);
    assert_eq!(drain(&mut c).len(), 2, "Phase 1A of round 1.0 to acceptors 1 and 2");

    // The last round acceptor 1 can own: there is no higher round for node 0. Wrapping around would
    // give a lower one, which node 0's own acceptor refuses, which would start another, for ever.
    c.on_message(2, 1, Msg::Nack { rnd: Round(((1 << 48) - 1) << 16 | 1) });
    assert_eq!(drain(&mut c), vec![]);
    assert_eq!((c.counters().rounds_started, c.counters().rounds_exhausted), (1, 1));
    assert_eq!(c.coordinating(), None);
}

// ------------------------------------------------------------------------------------------------
// Decisions and learners
// ------------------------------------------------------------------------------------------------

#[test]
fn a_duplicate_decision_delivers_nothing_twice() {
    let mut l = node(3, Protocol::MRing, 1, 4);
    let c_rnd = r(1, 0);
    let x = vid(c_rnd, 1);
    let val = batch(&[value(1, 0), value(2, 0)]);
    l.on_message(0, 0, phase2a(c_rnd, 0, x, &val, ring(&[1, 0])));
    assert_eq!(drain(&mut l), vec![], "proposed is not decided");
    let decision = Msg::Decision { instance: 0, c_vid: x, c_val: None, ring: None };
    l.on_message(1, 0, decision.clone());
    assert_eq!(drain(&mut l), deliveries(0, &val));
    l.on_message(2, 0, decision);
    l.on_message(
        3,
        1,
        Msg::Decision { instance: 0, c_vid: x, c_val: Some(val.clone().into()), ring: None },
    );
    assert_eq!(drain(&mut l), vec![]);
    assert_eq!(l.delivered_below(), 1);
}

#[test]
fn a_value_decided_twice_in_two_instances_is_delivered_once() {
    let mut l = node(3, Protocol::MRing, 1, 4);
    let c_rnd = r(1, 0);
    let v = value(1, 7);
    let first = batch(std::slice::from_ref(&v));
    let again = batch(&[v, value(1, 8)]);
    l.on_message(
        0,
        0,
        Msg::Decision {
            instance: 0,
            c_vid: vid(c_rnd, 1),
            c_val: Some(first.clone().into()),
            ring: None,
        },
    );
    l.on_message(
        1,
        0,
        Msg::Decision {
            instance: 1,
            c_vid: vid(c_rnd, 2),
            c_val: Some(again.clone().into()),
            ring: None,
        },
    );
    let mut expected = deliveries(0, &first);
    expected.push(Action::Deliver { instance: 1, values: batch(&[value(1, 8)]) });
    assert_eq!(drain(&mut l), expected);
}

#[test]
fn decisions_beyond_the_applications_room_wait_count_as_backlog_and_flow_once_there_is_room() {
    let mut cfg = config(3, Protocol::MRing, 1, 4);
    cfg.flow_backlog_instances_max = 1;
    let mut l = node_with(cfg);
    l.set_delivery_room(0, 1);
    let c_rnd = r(1, 0);
    let vals: Vec<Batch> = (0..3).map(|s| batch(&[value(1, s)])).collect();
    for (i, val) in vals.iter().enumerate() {
        let c_val = Some(val.clone().into());
        let i = i as Instance;
        l.on_message(1, 0, Msg::Decision { instance: i, c_vid: vid(c_rnd, i), c_val, ring: None });
    }
    assert_eq!(drain(&mut l), deliveries(0, &vals[0]), "room for one instance");
    assert_eq!(l.delivered_below(), 1);
    l.on_tick(2);
    let notices: Vec<_> = drain(&mut l)
        .into_iter()
        .filter(|a| matches!(a, Action::Send { msg: Msg::FlowNotice { .. }, .. }))
        .collect();
    assert_eq!(
        notices,
        vec![Action::Send { to: 0, msg: Msg::FlowNotice { learner: 3, backlog_instances: 2 } }],
        "the two held back are backlog"
    );
    l.set_delivery_room(3, 0);
    assert_eq!(drain(&mut l), vec![], "still no room");
    l.set_delivery_room(4, 5);
    let mut rest = deliveries(1, &vals[1]);
    rest.extend(deliveries(2, &vals[2]));
    assert_eq!(drain(&mut l), rest);
    assert_eq!(l.delivered_below(), 3);
}

#[test]
fn a_decision_that_arrives_before_its_value_waits_for_it() {
    let mut l = node(3, Protocol::MRing, 1, 4);
    let c_rnd = r(1, 0);
    let x = vid(c_rnd, 1);
    let val = batch(&[value(1, 0)]);
    l.on_message(0, 0, Msg::Decision { instance: 0, c_vid: x, c_val: None, ring: None });
    assert_eq!(drain(&mut l), vec![]);
    l.on_message(1, 0, phase2a(c_rnd, 0, x, &val, ring(&[1, 0])));
    assert_eq!(drain(&mut l), deliveries(0, &val));
}

#[test]
fn u_ring_last_acceptor_decides_and_the_decision_carries_the_value_only_where_needed() {
    // f = 1, ring 0 (coordinator) -> 1 (last acceptor) -> 2 -> 3 -> back to 0.
    let u_ring = ring(&[0, 1, 2, 3]);
    let c_rnd = r(1, 0);
    let x = vid(c_rnd, 1);
    let val = batch(&[value(3, 0)]);
    let with_value = Msg::Decision {
        instance: 0,
        c_vid: x,
        c_val: Some(val.clone().into()),
        ring: Some((c_rnd, u_ring)),
    };
    let id_only = Msg::Decision { instance: 0, c_vid: x, c_val: None, ring: Some((c_rnd, u_ring)) };

    let mut last = node(1, Protocol::URing, 1, 4);
    last.on_message(0, 0, phase2a(c_rnd, 0, x, &val, u_ring));
    let mut expected = deliveries(0, &val);
    expected.push(Action::Send { to: 2, msg: with_value.clone() });
    assert_eq!(drain(&mut last), expected);

    let mut p2 = node(2, Protocol::URing, 1, 4);
    p2.on_message(0, 1, with_value.clone());
    let mut expected = deliveries(0, &val);
    expected.push(Action::Send { to: 3, msg: with_value.clone() });
    assert_eq!(drain(&mut p2), expected);

    // Node 3 precedes the coordinator, which voted and holds the value: the id alone goes on.
    let mut p3 = node(3, Protocol::URing, 1, 4);
    p3.on_message(0, 2, with_value);
    let mut expected = deliveries(0, &val);
    expected.push(Action::Send { to: 0, msg: id_only.clone() });
    assert_eq!(drain(&mut p3), expected);
}

#[test]
fn a_u_ring_proposal_goes_once_around_the_ring_while_views_agree_then_straight_to_the_coordinator()
{
    // f = 1; node 3 is neither coordinator nor acceptor. It first learns ring r1 = 0 1 3 2 from a
    // decision forwarded along it (its successor there is 2; the coordinator is 0).
    let mut p = node(3, Protocol::URing, 1, 4);
    let (r1, r2) = (r(1, 0), r(2, 0));
    let (ring1, ring2) = (ring(&[0, 1, 3, 2]), ring(&[0, 1, 2, 3]));
    let val = batch(&[value(1, 0)]);
    let decision = |rnd, ring| Msg::Decision {
        instance: 0,
        c_vid: vid(r1, 1),
        c_val: Some(val.clone().into()),
        ring: Some((rnd, ring)),
    };
    p.on_message(1, 1, decision(r1, ring1));
    let mut expected = deliveries(0, &val);
    expected.push(Action::Send { to: 2, msg: decision(r1, ring1) });
    assert_eq!(drain(&mut p), expected, "delivered and passed on, with the value, to 2");

    let values = batch(&[value(1, 0)]);
    let proposal = |via_rnd, ttl| Msg::Proposal { values: values.clone(), via_rnd, ttl };
    p.on_message(2, 1, proposal(r1, 9));
    assert_eq!(drain(&mut p), vec![Action::Send { to: 2, msg: proposal(r1, 8) }], "same ring");
    let from_2 = Msg::Proposal { values: batch(&[value(2, 0)]), via_rnd: r1, ttl: 9 };
    p.on_message(2, 1, from_2);
    assert_eq!(drain(&mut p), vec![], "node 3 precedes the proposer, 2: once around, and kept");
    p.on_message(3, 1, proposal(r(7, 1), 9));
    assert_eq!(
        drain(&mut p),
        vec![Action::Send { to: 0, msg: proposal(Round::ZERO, 8) }],
        "came along a ring node 3 does not know: straight to the coordinator"
    );
    p.on_message(4, 2, proposal(Round::ZERO, 9));
    assert_eq!(drain(&mut p), vec![Action::Send { to: 0, msg: proposal(Round::ZERO, 8) }]);
    p.on_message(5, 2, proposal(r1, 0));
    assert_eq!(drain(&mut p), vec![], "no hops left");
    assert_eq!(p.counters().proposals_dropped, 1);

    // A decision forwarded along the newer ring r2 updates node 3's view: r1 is now stale.
    p.on_message(6, 2, decision(r2, ring2));
    let id_only =
        Msg::Decision { instance: 0, c_vid: vid(r1, 1), c_val: None, ring: Some((r2, ring2)) };
    assert_eq!(
        drain(&mut p),
        vec![Action::Send { to: 0, msg: id_only }],
        "on r2 the coordinator follows node 3 and already holds the value: the id only"
    );
    p.on_message(7, 1, proposal(r1, 9));
    assert_eq!(drain(&mut p), vec![Action::Send { to: 0, msg: proposal(Round::ZERO, 8) }]);
}

#[test]
fn a_u_ring_acceptor_votes_only_for_a_named_proposal_it_holds() {
    // f = 1, ring 0 (coordinator) -> 1 (last acceptor) -> 2 -> 3; the proposal is node 2's.
    let (c_rnd, u_ring) = (r(1, 0), ring(&[0, 1, 2, 3]));
    let val = batch(&[value(2, 0), value(2, 1)]);
    let named = Carried::Proposal(val.proposal_id().unwrap());
    let mut a = node(1, Protocol::URing, 1, 4);
    a.on_message(1, 0, phase2a_named(c_rnd, 0, vid(c_rnd, 1), &val, u_ring));
    assert_eq!(drain(&mut a), vec![], "it never saw the proposal: no vote");
    assert_eq!(a.counters().phase2a_value_missing, 1);
    assert_eq!(a.acceptor_state().unwrap().value_of(0, vid(c_rnd, 1)), None);

    a.on_message(2, 0, Msg::Proposal { values: val.clone(), via_rnd: c_rnd, ttl: 9 });
    assert_eq!(drain(&mut a), vec![], "kept, not passed to its own proposer");
    a.on_message(3, 0, phase2a_named(c_rnd, 0, vid(c_rnd, 1), &val, u_ring));
    let decision = |c_val| Msg::Decision {
        instance: 0,
        c_vid: vid(c_rnd, 1),
        c_val,
        ring: Some((c_rnd, u_ring)),
    };
    let mut expected = deliveries(0, &val);
    expected.push(Action::Send { to: 2, msg: decision(Some(named.clone())) });
    assert_eq!(drain(&mut a), expected, "voted, decided, and the decision names the proposal");

    // Node 3 resolves the name from what it kept; without it, the decision waits for its value.
    let mut kept = node(3, Protocol::URing, 1, 4);
    kept.on_message(0, 0, Msg::Phase1A { c_rnd, from: 0, ring: u_ring });
    assert_eq!(drain(&mut kept), vec![], "no acceptor, but now it knows the ring");
    kept.on_message(1, 2, Msg::Proposal { values: val.clone(), via_rnd: c_rnd, ttl: 9 });
    assert_eq!(
        drain(&mut kept),
        vec![Action::Send {
            to: 0,
            msg: Msg::Proposal { values: val.clone(), via_rnd: c_rnd, ttl: 8 }
        }]
    );
    kept.on_message(2, 2, decision(Some(named.clone())));
    let mut expected = deliveries(0, &val);
    expected.push(Action::Send { to: 0, msg: decision(None) });
    assert_eq!(drain(&mut kept), expected);
    let mut lacking = node(3, Protocol::URing, 1, 4);
    lacking.on_message(2, 2, decision(Some(named)));
    assert_eq!(drain(&mut lacking), vec![Action::Send { to: 0, msg: decision(None) }]);
    assert_eq!(lacking.delivered_below(), 0);
}

#[test]
fn u_ring_coordinator_piggybacks_the_next_phase2a_on_the_decision_it_forwards() {
    // f = 2, ring 0 -> 1 -> 2 (last acceptor) -> 3 -> 0; forwarding ends at 1, the predecessor of 2.
    let mut cfg = config(0, Protocol::URing, 2, 6);
    cfg.window_instances = 1;
    cfg.window_instances_min = 1;
    let mut c = RingNode::new(cfg, 0, Boot::Fresh).unwrap();
    c.on_tick(0);
    drain(&mut c);
    let c_rnd = r(1, 0);
    let u_ring = ring(&[0, 1, 2, 3, 4, 5]);
    for from in [1, 2] {
        c.on_message(1, from, promise_without_votes(c_rnd));
    }
    assert_eq!(drain(&mut c), vec![]);
    c.propose(2, b"a").unwrap();
    let a = batch(&[Value {
        id: ValueId { proposer: 0, incarnation: 0, seq: 0 },
        payload: Bytes::from_static(b"a"),
    }]);
    let proposal = |values: &Batch| Msg::Proposal {
        values: values.clone(),
        via_rnd: c_rnd,
        ttl: 2 * RING_MEMBERS_MAX as u8,
    };
    assert_eq!(
        drain(&mut c),
        vec![
            Action::Send { to: 1, msg: proposal(&a) },
            Action::Send { to: 1, msg: phase2a_named(c_rnd, 0, vid(c_rnd, 1), &a, u_ring) }
        ],
        "the proposal sets off around the ring, and Phase 2A follows it, naming it"
    );
    c.propose(3, b"b").unwrap();
    let b = batch(&[Value {
        id: ValueId { proposer: 0, incarnation: 0, seq: 1 },
        payload: Bytes::from_static(b"b"),
    }]);
    assert_eq!(
        drain(&mut c),
        vec![Action::Send { to: 1, msg: proposal(&b) }],
        "window of one instance is full: the proposal travels, Phase 2A waits"
    );

    c.on_message(
        4,
        5,
        Msg::Decision {
            instance: 0,
            c_vid: vid(c_rnd, 1),
            c_val: None,
            ring: Some((c_rnd, u_ring)),
        },
    );
    let mut expected = deliveries(0, &a);
    expected.push(Action::Send {
        to: 1,
        msg: Msg::Decision {
            instance: 0,
            c_vid: vid(c_rnd, 1),
            c_val: None,
            ring: Some((c_rnd, u_ring)),
        },
    });
    expected.push(Action::Send { to: 1, msg: phase2a_named(c_rnd, 1, vid(c_rnd, 2), &b, u_ring) });
    assert_eq!(
        drain(&mut c),
        expected,
        "decision and next Phase 2A leave together for the successor"
    );
}

// ------------------------------------------------------------------------------------------------
// Loss, garbage collection, flow control
// ------------------------------------------------------------------------------------------------

#[test]
fn the_coordinator_retransmits_an_undecided_phase2a_after_the_timeout() {
    let mut cfg = config(0, Protocol::URing, 1, 3);
    // Keep the coordinator's own learner from asking for the missing decision within this test.
    cfg.gap_timeout_us = 10 * cfg.phase_retry_us;
    let mut c = RingNode::new(cfg, 0, Boot::Fresh).unwrap();
    c.on_tick(0);
    drain(&mut c);
    let c_rnd = r(1, 0);
    c.on_message(1, 1, promise_without_votes(c_rnd));
    c.propose(1, b"a").unwrap();
    let a = batch(&[Value {
        id: ValueId { proposer: 0, incarnation: 0, seq: 0 },
        payload: Bytes::from_static(b"a"),
    }]);
    let u_ring = ring(&[0, 1, 2]);
    let sent = drain(&mut c);
    let named = Action::Send { to: 1, msg: phase2a_named(c_rnd, 0, vid(c_rnd, 1), &a, u_ring) };
    assert_eq!(sent.len(), 2, "the proposal, then Phase 2A: {sent:?}");
    assert_eq!(sent[1], named);
    let retry_us = c.config().phase_retry_us;
    c.on_tick(retry_us / 2);
    assert_eq!(drain(&mut c), vec![], "not yet");
    c.on_tick(1 + retry_us);
    assert_eq!(
        drain(&mut c),
        vec![Action::Send { to: 1, msg: phase2a(c_rnd, 0, vid(c_rnd, 1), &a, u_ring) }],
        "the same Phase 2A again, now carrying the value: the successor may lack the proposal"
    );
    assert_eq!(c.counters().phase2_retransmissions, 1);
}

/// U-Ring node 1 (the second acceptor of ring 0 1 2, so the one that decides) after it voted in
/// and decided instances 0..20 of round (1, 0), keeping `retain` instances for lagging learners.
fn acceptor_that_decided_20_instances(retain: u64) -> RingNode {
    let mut cfg = config(1, Protocol::URing, 1, 3);
    cfg.gc_retain_instances = retain;
    let mut a = node_with(cfg);
    let u_ring = ring(&[0, 1, 2]);
    let c_rnd = r(1, 0);
    for i in 0..20 {
        a.on_message(i, 0, phase2a(c_rnd, i, vid(c_rnd, i + 1), &batch(&[value(0, i)]), u_ring));
    }
    drain(&mut a);
    a
}

#[test]
fn garbage_collection_keeps_only_what_the_slowest_process_lacks_while_it_is_within_the_margin() {
    let mut a = acceptor_that_decided_20_instances(10);
    let trimmed_after = |a: &mut RingNode, now: Tick, versions: [(NodeId, Instance); 2]| {
        for (from, applied_below) in versions {
            a.on_message(
                now,
                from,
                Msg::Heartbeat { acceptor_ready: true, decided_below: 20, applied_below },
            );
        }
        a.on_tick(now + 1);
        drain(a);
        a.acceptor_state().unwrap().trimmed_below
    };
    // f+1 = 2 processes (this one and node 0) applied everything below 20; the margin alone would
    // trim below 10, but every process applied below 14, so nothing below 14 is needed.
    assert_eq!(trimmed_after(&mut a, 30, [(0, 20), (2, 14)]), 14);
    // The slowest process moves on: so does the trim point.
    assert_eq!(trimmed_after(&mut a, 40, [(0, 20), (2, 17)]), 17);
    // Every process applied everything: nothing is kept.
    assert_eq!(trimmed_after(&mut a, 50, [(0, 20), (2, 20)]), 20);
}

#[test]
fn a_trimmed_instance_is_neither_voted_nor_retransmitted_and_phase1b_says_where_the_log_starts() {
    let mut a = acceptor_that_decided_20_instances(5);
    let u_ring = ring(&[0, 1, 2]);
    // Node 1 (deciding) applied all 20, node 0 everything below 15, node 2 only below 3: f+1 = 2
    // learners reached 15, and node 2 lags by more than the margin, so trim below 15 - 5.
    for (from, applied_below) in [(0, 15), (2, 3)] {
        a.on_message(
            30,
            from,
            Msg::Heartbeat { acceptor_ready: true, decided_below: 15, applied_below },
        );
    }
    a.on_tick(31);
    drain(&mut a);
    assert_eq!(a.acceptor_state().unwrap().trimmed_below, 10);

    a.on_message(32, 2, Msg::Retransmit { from: 5, to: 8 });
    assert_eq!(
        drain(&mut a),
        vec![Action::Send { to: 2, msg: Msg::Trimmed { trimmed_below: 10 } }]
    );

    a.on_message(33, 0, phase2a(r(2, 0), 5, vid(r(2, 0), 1), &Batch::empty(), u_ring));
    assert_eq!(drain(&mut a), vec![], "no vote and no decision for a trimmed instance");

    a.on_message(34, 2, Msg::Phase1A { c_rnd: r(3, 2), from: 0, ring: ring(&[2, 0, 1]) });
    let out = drain(&mut a);
    let [Action::Send { to: 2, msg: Msg::Phase1B { trimmed_below, votes, .. } }] = &out[..] else {
        panic!("expected one Phase 1B, got {out:?}")
    };
    assert_eq!(*trimmed_below, 10);
    assert_eq!(votes.iter().map(|v| v.instance).collect::<Vec<_>>(), (10..20).collect::<Vec<_>>());
}

#[test]
fn a_flow_notice_halves_the_coordinators_window() {
    let mut cfg = config(0, Protocol::URing, 1, 3);
    cfg.window_instances = 8;
    cfg.batch_bytes_max = 64;
    let mut c = RingNode::new(cfg, 0, Boot::Fresh).unwrap();
    c.on_tick(0);
    c.on_message(1, 1, promise_without_votes(r(1, 0)));
    drain(&mut c);
    // Above the notice bound (1,024), below the pause bound (2,048).
    c.on_message(2, 1, Msg::FlowNotice { learner: 2, backlog_instances: 1_500 });
    for _ in 0..20 {
        c.propose(3, &[7u8; 40]).unwrap();
    }
    let sent = drain(&mut c);
    let phase2a_count =
        sent.iter().filter(|a| matches!(a, Action::Send { msg: Msg::Phase2A { .. }, .. })).count();
    assert_eq!(phase2a_count, 4, "window 8 halved to 4 instances");
    assert_eq!(c.coordinator_load(), (4, 16));
}

#[test]
fn an_acceptor_forwards_a_learners_flow_notice_to_the_coordinator() {
    let mut a = node(1, Protocol::MRing, 1, 4);
    a.on_message(0, 3, Msg::FlowNotice { learner: 3, backlog_instances: 5_000 });
    assert_eq!(
        drain(&mut a),
        vec![Action::Send { to: 0, msg: Msg::FlowNotice { learner: 3, backlog_instances: 5_000 } }],
        "the coordinator needs the backlog to tell a slow learner from a stalled one"
    );
}

#[test]
fn an_amnesiac_acceptor_neither_promises_nor_votes() {
    let mut a = RingNode::new(config(1, Protocol::MRing, 1, 3), 0, Boot::Amnesiac).unwrap();
    drain(&mut a);
    a.on_message(0, 0, Msg::Phase1A { c_rnd: r(1, 0), from: 0, ring: ring(&[1, 0]) });
    a.on_message(1, 0, phase2a(r(1, 0), 0, vid(r(1, 0), 1), &Batch::empty(), ring(&[1, 0])));
    assert_eq!(drain(&mut a), vec![]);
    assert!(a.acceptor_state().is_none());
}

#[test]
fn an_acceptor_reserves_slots_for_everything_it_can_hold_at_once() {
    // What a node's cluster file gives for 32 KiB batches: 64 MiB kept for a lagging learner.
    let mut cfg = config(1, Protocol::URing, 1, 3);
    cfg.gc_retain_instances = 2048;
    let span = 2048 + cfg.flow_backlog_instances_max as usize + cfg.window_instances as usize;
    let a = node_with(cfg);
    let slots = &a.acceptor_state().unwrap().slots;
    assert!(slots.capacity() >= span, "{} slots for a span of {span}", slots.capacity());
    // The default keeps 100,000 instances: the reserve stops at its cap instead.
    let a = node_with(config(1, Protocol::URing, 1, 3));
    let reserved_bytes = a.acceptor_state().unwrap().slots.capacity()
        * std::mem::size_of::<Option<super::acceptor::Slot>>();
    assert!(reserved_bytes <= 1 << 20, "{reserved_bytes} bytes reserved");
}

// ------------------------------------------------------------------------------------------------
// Recoverable Ring Paxos: what an acceptor persists, and before what
// ------------------------------------------------------------------------------------------------

#[test]
fn a_recoverable_acceptor_persists_its_promise_and_vote_before_the_messages_that_reveal_them() {
    let mut cfg = config(1, Protocol::MRing, 1, 3);
    cfg.stable_storage = true;
    let mut a = node_with(cfg);
    let m_ring = ring(&[1, 2]);
    a.on_message(0, 2, Msg::Phase1A { c_rnd: r(2, 2), from: 0, ring: m_ring });
    assert_eq!(
        drain(&mut a),
        vec![
            Action::Persist(Durable::Promise { rnd: r(2, 2) }),
            Action::Send { to: 2, msg: promise_without_votes(r(2, 2)) },
        ]
    );
    // The same Phase 1A again (its answer was lost): answered, nothing new to persist.
    a.on_message(1, 2, Msg::Phase1A { c_rnd: r(2, 2), from: 0, ring: m_ring });
    assert_eq!(drain(&mut a), vec![Action::Send { to: 2, msg: promise_without_votes(r(2, 2)) }]);
    // The first acceptor of the M-Ring votes and starts Phase 2B: the vote is persisted first.
    let b = batch(&[value(0, 1)]);
    let c_vid = vid(r(2, 2), 1);
    a.on_message(2, 2, phase2a(r(2, 2), 0, c_vid, &b, m_ring));
    let vote = Durable::Vote { instance: 0, v_rnd: r(2, 2), v_vid: c_vid, v_val: b.clone() };
    let phase2b = Msg::Phase2B { c_rnd: r(2, 2), instance: 0, c_vid, ring: m_ring };
    assert_eq!(
        drain(&mut a),
        vec![Action::Persist(vote), Action::Send { to: 2, msg: phase2b.clone() }]
    );
    // A duplicate of the Phase 2A re-sends Phase 2B without writing the vote again.
    a.on_message(3, 2, phase2a(r(2, 2), 0, c_vid, &b, m_ring));
    assert_eq!(drain(&mut a), vec![Action::Send { to: 2, msg: phase2b }]);
}

#[test]
fn an_in_memory_acceptor_persists_nothing() {
    let mut a = node(1, Protocol::MRing, 1, 3);
    let m_ring = ring(&[1, 2]);
    a.on_message(0, 2, Msg::Phase1A { c_rnd: r(2, 2), from: 0, ring: m_ring });
    let b = batch(&[value(0, 1)]);
    a.on_message(1, 2, phase2a(r(2, 2), 0, vid(r(2, 2), 1), &b, m_ring));
    assert!(drain(&mut a).iter().all(|x| !matches!(x, Action::Persist(_))));
}
