//! Three nodes in one process over real loopback sockets: every learner delivers the same stream.

use std::time::{Duration, Instant};

use bytes::Bytes;

use super::*;
use crate::io::BackendChoice;

fn cluster_on_free_ports(protocol: ProtocolName) -> ClusterFile {
    ClusterFile::local_on_free_ports(protocol, 3, 1).unwrap()
}

fn three_nodes_agree(backend: BackendChoice) {
    let cluster = cluster_on_free_ports(ProtocolName::Uring);
    let opts = NodeOptions { backend, ..NodeOptions::default() };
    let mut nodes: Vec<Node> =
        (0..3).map(|id| Node::start(&cluster, id, opts.clone()).unwrap()).collect();
    const VALUES: u64 = 20_000;
    let mut sums = vec![StreamChecksum::default(); 3];
    let mut proposed = 0u64;
    // What `propose` said each value's id would be, by proposal order (which its payload holds).
    let mut promised_ids = Vec::with_capacity(VALUES as usize);
    let deadline = Instant::now() + Duration::from_secs(60);
    while sums.iter().any(|s| s.values < VALUES) {
        assert!(Instant::now() < deadline, "delivered {:?} of {VALUES}", sums.map_values());
        while proposed < VALUES {
            let payload = Bytes::from(proposed.to_le_bytes().repeat(8));
            match nodes[0].propose(payload) {
                Ok(id) => promised_ids.push(id),
                Err(_) => break,
            }
            proposed += 1;
        }
        for (node, sum) in nodes.iter_mut().zip(sums.iter_mut()) {
            while let Some(d) = node.try_recv() {
                let order = u64::from_le_bytes(d.payload[..8].try_into().unwrap());
                assert_eq!(d.id, promised_ids[order as usize], "value {order} at {}", node.id());
                sum.add(&d);
            }
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    assert!(sums.iter().all(|s| s.values == VALUES && s.value() == sums[0].value()), "{sums:?}");
    for node in nodes {
        let report = node.stop();
        assert_eq!(report.runtime.malformed_frames, 0);
    }
}

trait MapValues {
    fn map_values(&self) -> Vec<u64>;
}
impl MapValues for Vec<StreamChecksum> {
    fn map_values(&self) -> Vec<u64> {
        self.iter().map(|s| s.values).collect()
    }
}

#[test]
fn three_uring_nodes_deliver_the_same_stream_on_epoll() {
    three_nodes_agree(BackendChoice::Epoll);
}

#[test]
fn three_uring_nodes_deliver_the_same_stream_on_io_uring() {
    three_nodes_agree(BackendChoice::Auto);
}
