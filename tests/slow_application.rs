//! An application that stops taking deliveries slows the cluster down (flow control, thesis 3.3.6)
//! but does not stop its node: the node goes on voting, forwarding and sending heartbeats, so nobody
//! suspects it and no new round starts, and once the application reads again it gets every value in
//! the order the others delivered them.
//!
//! (A node used to wait for room in a full delivery queue: a U-Ring member then stopped forwarding,
//! was suspected after `suspect_timeout_us` and replaced by a new round with a new ring.)

use std::time::{Duration, Instant};

use bytes::Bytes;
use ringsmr::node::{ClusterFile, Node, NodeOptions, ProtocolName};
use ringsmr::proto::types::ValueId;

static PAYLOAD: [u8; 100] = [3; 100];
/// Values the proposer (node 0) keeps in flight.
const OUTSTANDING: usize = 1024;
/// Delivered batches node 2's application lets wait: the stall outgrows it at once.
const SLOW_QUEUE_BATCHES: usize = 16;
/// Ten times the default suspicion timeout (100 ms).
const STALL: Duration = Duration::from_secs(1);
const PHASE_TIMEOUT: Duration = Duration::from_secs(60);

struct Reader {
    node: Node,
    ids: Vec<ValueId>,
}

impl Reader {
    /// Takes what the node delivered.
    fn read(&mut self) {
        while let Some(b) = self.node.try_recv_batch() {
            self.ids.extend(b.values.ids());
        }
    }
}

/// Proposes on `proposer` (node 0) up to the outstanding bound, given how many of its values it
/// delivered.
fn propose(proposer: &mut Reader, proposed: &mut usize) {
    while *proposed - proposer.ids.len() < OUTSTANDING
        && proposer.node.propose(Bytes::from_static(&PAYLOAD)).is_ok()
    {
        *proposed += 1;
    }
}

fn rounds(readers: &[Reader]) -> u64 {
    readers.iter().map(|r| r.node.rounds_started()).sum()
}

#[test]
fn a_stalled_application_neither_stalls_its_node_nor_costs_a_round() {
    let cluster = ClusterFile::local_on_free_ports(ProtocolName::Uring, 3, 1).unwrap();
    let mut readers: Vec<Reader> = (0..3)
        .map(|id| {
            let deliveries_capacity = if id == 2 {
                SLOW_QUEUE_BATCHES
            } else {
                NodeOptions::default().deliveries_capacity
            };
            let opts = NodeOptions { deliveries_capacity, ..NodeOptions::default() };
            Reader { node: Node::start(&cluster, id, opts).unwrap(), ids: Vec::new() }
        })
        .collect();
    let mut proposed = 0;

    // Warm up: every application reads, until the first round is well settled.
    let deadline = Instant::now() + PHASE_TIMEOUT;
    while readers[0].ids.len() < 20_000 {
        assert!(Instant::now() < deadline, "warm-up: {} values", readers[0].ids.len());
        propose(&mut readers[0], &mut proposed);
        readers.iter_mut().for_each(Reader::read);
        std::thread::yield_now();
    }
    let rounds_before = rounds(&readers);

    // Node 2's application stops reading; the others go on.
    let stalled_at = readers[0].ids.len();
    let until = Instant::now() + STALL;
    while Instant::now() < until {
        propose(&mut readers[0], &mut proposed);
        readers[..2].iter_mut().for_each(Reader::read);
        std::thread::yield_now();
    }
    let during_stall = readers[0].ids.len() - stalled_at;
    assert!(
        during_stall >= 1_000,
        "only {during_stall} values were delivered while one application did not read"
    );

    // Everyone reads again; the proposer stops once node 2 has caught up with node 0.
    let deadline = Instant::now() + PHASE_TIMEOUT;
    loop {
        assert!(
            Instant::now() < deadline,
            "catching up: node 2 at {} of {} values",
            readers[2].ids.len(),
            readers[0].ids.len()
        );
        readers.iter_mut().for_each(Reader::read);
        if proposed == readers[0].ids.len() && readers.iter().all(|r| r.ids.len() == proposed) {
            break;
        }
        std::thread::yield_now();
    }

    assert_eq!(rounds(&readers), rounds_before, "nobody was suspected: no new round");
    assert_eq!(
        readers[2].ids, readers[0].ids,
        "node 2 delivered the same values in the same order"
    );
    assert_eq!(readers[1].ids, readers[0].ids);
}
