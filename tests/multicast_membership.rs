//! M-Ring Paxos' coordinator does not receive its own multicasts (`node::multicast_link`): with
//! `IP_MULTICAST_LOOP` the kernel hands every joined socket on the sending host a copy, the sender's
//! own included, and on the coordinator that copy is pure cost (a receive, a copy of 8 KB and a
//! wake-up per datagram). It leaves the group while it coordinates.
//!
//! The first test pins down the kernel behaviour the design rests on, on the reactor: a joined
//! sender gets its copy, one that left gets none (which needs `IP_MULTICAST_ALL` off: by default a
//! socket bound to the group's address gets the group's datagrams while any socket on the host is in
//! it), and one that joins again gets its copies again. The second runs a 3-node M-Ring cluster and
//! counts the datagrams each node got from itself.
//!
//! Both need multicast on a loopback: each moves its own thread (and the threads it starts) into a
//! network namespace it creates, and skips where it may not.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::time::{Duration, Instant};

use bytes::Bytes;
use ringsmr::io::buffer::InBuf;
use ringsmr::io::socket::{MulticastOptions, SocketOptions};
use ringsmr::io::{BackendChoice, ConnId, Handler, Limits, Reactor, Received, UdpId};
use ringsmr::node::{ClusterFile, Node, NodeOptions, ProtocolName};
use ringsmr::proto::Msg;
use ringsmr::wire::{self, Hello};

mod common;

const TIMEOUT: Duration = Duration::from_secs(20);

/// Collects the datagrams a reactor receives.
#[derive(Default)]
struct Datagrams(Vec<Bytes>);

impl Handler for Datagrams {
    fn accepted(&mut self, _: ConnId, _: SocketAddr) {}
    fn connected(&mut self, _: ConnId) {}
    fn closed(&mut self, _: ConnId, _: std::io::Error) {}
    fn received(&mut self, _: ConnId, _: &mut InBuf) -> Received {
        Received::Close
    }
    fn datagram(&mut self, _: UdpId, datagram: Bytes) {
        self.0.push(datagram);
    }
    fn woken(&mut self) {}
}

struct Member {
    reactor: Reactor,
    udp: UdpId,
    got: Datagrams,
}

impl Member {
    fn join(backend: BackendChoice, group: MulticastOptions) -> Member {
        let mut reactor = Reactor::new(backend, Limits::default()).unwrap();
        let udp = reactor.add_multicast(group, SocketOptions::default()).unwrap();
        Member { reactor, udp, got: Datagrams::default() }
    }

    /// Polls until `what` has arrived (panics after [`TIMEOUT`]).
    fn wait_for(&mut self, what: &[u8]) {
        let deadline = Instant::now() + TIMEOUT;
        while !self.got.0.iter().any(|d| d == what) {
            assert!(Instant::now() < deadline, "{what:?} did not arrive");
            self.reactor.poll(Some(Duration::from_millis(10)), &mut self.got).unwrap();
        }
    }

    /// What has arrived by now, taken. The kernel delivers a multicast on loopback to every member
    /// inside the sender's `sendto`, so once another member holds a datagram, whatever this one
    /// was to get of it is queued too; a zero-timeout poll then finds it.
    fn take_arrived(&mut self) -> Vec<Bytes> {
        for _ in 0..3 {
            self.reactor.poll(Some(Duration::ZERO), &mut self.got).unwrap();
        }
        std::mem::take(&mut self.got.0)
    }
}

fn a_sender_that_left_the_group_gets_no_copy(backend: BackendChoice, tag: &str) {
    let Some(_ns) = common::Netns::create_and_enter(tag) else { return };
    let group = MulticastOptions {
        group: SocketAddrV4::new(Ipv4Addr::new(239, 255, 82, 9), 47_001),
        interface: Ipv4Addr::LOCALHOST,
        ttl: 1,
        loopback: true,
    };
    let to = SocketAddr::V4(group.group);
    let mut sender = Member::join(backend, group);
    let mut other = Member::join(backend, group);

    sender.reactor.send_datagram(sender.udp, b"joined", to).unwrap();
    other.wait_for(b"joined");
    sender.wait_for(b"joined"); // the copy the coordinator must not pay for
    assert_eq!(sender.take_arrived(), [&b"joined"[..]]);

    sender.reactor.set_multicast_membership(sender.udp, &group, false).unwrap();
    sender.reactor.send_datagram(sender.udp, b"left", to).unwrap();
    other.wait_for(b"left");
    assert!(sender.take_arrived().is_empty(), "a sender outside the group got its own datagram");

    sender.reactor.set_multicast_membership(sender.udp, &group, true).unwrap();
    sender.reactor.send_datagram(sender.udp, b"back", to).unwrap();
    other.wait_for(b"back");
    sender.wait_for(b"back");
    let others: Vec<Bytes> = other.take_arrived();
    assert_eq!(others, [&b"joined"[..], b"left", b"back"], "the other member got each once");
}

#[test]
fn a_sender_that_left_the_group_gets_no_copy_on_epoll() {
    a_sender_that_left_the_group_gets_no_copy(BackendChoice::Epoll, "mcast-epoll");
}

#[test]
fn a_sender_that_left_the_group_gets_no_copy_on_io_uring() {
    if Reactor::new(BackendChoice::Uring, Limits::default()).is_err() {
        eprintln!("skipped: io_uring is not available here");
        return;
    }
    a_sender_that_left_the_group_gets_no_copy(BackendChoice::Uring, "mcast-uring");
}

/// Values each node proposes.
const VALUES_PER_NODE: usize = 3_000;

#[test]
fn the_coordinator_of_an_m_ring_cluster_receives_none_of_its_own_multicasts() {
    let Some(_ns) = common::Netns::create_and_enter("mcast-cluster") else { return };
    let cluster = ClusterFile::local_on_free_ports(ProtocolName::Mring, 3, 1).unwrap();
    let mut nodes: Vec<Node> =
        (0..3).map(|id| Node::start(&cluster, id, NodeOptions::default()).unwrap()).collect();
    let payload = Bytes::from(vec![3u8; 1000]);
    let expected = 3 * VALUES_PER_NODE;
    let mut proposed = [0usize; 3];
    let mut delivered = [0usize; 3];
    let deadline = Instant::now() + TIMEOUT * 3;
    while delivered.iter().any(|&d| d < expected) {
        assert!(Instant::now() < deadline, "delivered {delivered:?} of {expected} each");
        for (i, node) in nodes.iter_mut().enumerate() {
            while proposed[i] < VALUES_PER_NODE && node.propose(payload.clone()).is_ok() {
                proposed[i] += 1;
            }
            while node.try_recv().is_some() {
                delivered[i] += 1;
            }
        }
        std::thread::sleep(Duration::from_micros(200));
    }
    let reports: Vec<_> = nodes.into_iter().map(Node::stop).collect();
    // Whoever coordinated (a wrong suspicion may have made it more than one node) multicast every
    // Phase 2A, and left the group before the first.
    assert!(reports.iter().any(|r| r.core.rounds_started > 0), "no node coordinated");
    for (i, r) in reports.iter().enumerate() {
        assert_eq!(r.delivered_values as usize, expected, "node {i} delivered each value once");
        assert_eq!(r.runtime.own_datagrams, 0, "node {i} received its own multicasts");
        assert_eq!(r.runtime.membership_failures, 0, "node {i}");
    }
}

/// One datagram carries the sender's hello and then any number of whole frames (the runtime packs a
/// step's small multicasts together): a receiver takes every frame, and a frame that does not
/// decode ends the datagram and is counted, the frames before it standing.
#[test]
fn a_datagram_of_several_frames_is_taken_whole_and_a_bad_tail_is_counted() {
    let Some(_ns) = common::Netns::create_and_enter("mcast-frames") else { return };
    let cluster = ClusterFile::local_on_free_ports(ProtocolName::Mring, 3, 1).unwrap();
    let group = cluster.multicast_options().unwrap();
    let mut nodes: Vec<Node> =
        (0..3).map(|id| Node::start(&cluster, id, NodeOptions::default()).unwrap()).collect();
    // Wait until the cluster orders values, so every node's socket is up and in the group.
    let deadline = Instant::now() + TIMEOUT;
    nodes[0].propose(Bytes::from_static(b"warm-up value")).unwrap();
    while (0..3).any(|i| nodes[i].delivered_values() == 0) {
        assert!(Instant::now() < deadline, "the cluster did not deliver its first value");
        std::thread::sleep(Duration::from_millis(5));
    }
    for node in nodes.iter_mut() {
        while node.try_recv().is_some() {}
    }

    // As node 1 would send them: two heartbeats in one datagram, then one followed by garbage.
    let heartbeat = Msg::Heartbeat { acceptor_ready: true, decided_below: 0, applied_below: 0 };
    let hello = Hello { cluster_id: cluster.cluster_id, from: 1 }.encode();
    let mut two_frames = hello.to_vec();
    wire::encode(&heartbeat, &mut two_frames);
    wire::encode(&heartbeat, &mut two_frames);
    let mut bad_tail = hello.to_vec();
    wire::encode(&heartbeat, &mut bad_tail);
    bad_tail.extend_from_slice(b"not a frame");
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket.set_multicast_loop_v4(true).unwrap();
    socket.send_to(&two_frames, group.group).unwrap();
    socket.send_to(&bad_tail, group.group).unwrap();
    // A value ordered after both datagrams were sent shows that node 2 has handled them: on
    // loopback a multicast is queued at every member within the sender's `sendto`, so they are
    // ahead of the coordinator's Phase 2A for it in node 2's socket.
    nodes[1].propose(Bytes::from_static(b"after the datagrams")).unwrap();
    let deadline = Instant::now() + TIMEOUT;
    while (0..3).any(|i| nodes[i].delivered_values() < 2) {
        assert!(Instant::now() < deadline, "the cluster stopped delivering");
        std::thread::sleep(Duration::from_millis(5));
    }
    let reports: Vec<_> = nodes.into_iter().map(Node::stop).collect();
    // Node 2 took both (node 1 takes them for its own, and the coordinator is not in the group).
    let r = &reports[2];
    assert_eq!(r.core.rounds_started, 0, "node 2 coordinated: the test cannot tell");
    assert_eq!(r.runtime.malformed_datagrams, 1, "only the bad tail is malformed");
    assert_eq!(r.core.malformed_dropped, 0);
}
