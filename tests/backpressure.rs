//! A node whose core refuses more proposals (its proposer has as many pending as it may) waits for
//! its sockets and timers like an idle one; it does not poll again and again for the queued values
//! it cannot take. (It used to: with values left in the proposal queue it polled without waiting, so
//! an overloaded node spun a whole core, which on a machine of two starved the other processes.)

use std::time::{Duration, Instant};

use bytes::Bytes;
use ringsmr::node::{ClusterFile, Node, NodeOptions, ProtocolName};

static PAYLOAD: [u8; 64] = [7; 64];
const HELD: Duration = Duration::from_secs(1);

#[test]
fn a_node_refusing_proposals_waits_instead_of_spinning() {
    // Node 0 of a cluster whose other nodes never start: no value is ever delivered, so once the
    // core's pending allowance is used up every queued value is refused.
    let cluster = ClusterFile::local_on_free_ports(ProtocolName::Uring, 3, 1).unwrap();
    let mut node = Node::start(&cluster, 0, NodeOptions::default()).unwrap();
    // Fill the queue until the core stops emptying it.
    let give_up_at = Instant::now() + Duration::from_secs(30);
    loop {
        while node.propose(Bytes::from_static(&PAYLOAD)).is_ok() {}
        std::thread::sleep(Duration::from_millis(50));
        if node.propose_slots() == 0 {
            break;
        }
        assert!(Instant::now() < give_up_at, "the core never refused a proposal");
    }
    let cpu_before = node.thread_cpu_time().expect("the node thread runs");
    let held_from = Instant::now();
    std::thread::sleep(HELD);
    let cpu = node.thread_cpu_time().expect("the node thread runs") - cpu_before;
    let busy = cpu.as_secs_f64() / held_from.elapsed().as_secs_f64();
    assert_eq!(node.propose_slots(), 0, "nothing was delivered, so nothing was taken");
    node.stop();
    // Spinning costs about the whole interval (or all the CPU it can get); waiting costs a tick and
    // a heartbeat now and then.
    assert!(busy < 0.3, "the node thread was busy {:.0}% of the time", busy * 100.0);
}
