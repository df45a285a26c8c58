//! A Multi-Ring cluster inside the test process, on loopback: every learner delivers the same merged
//! sequence, subscriptions are honoured, shared rings filter by group, and idle rings do not hold
//! the merge back (skips).

use std::time::{Duration, Instant};

use bytes::Bytes;

use super::config::{GroupEntry, LearnerEntry, MultiRingFile};
use super::node::{MultiRingNode, MultiRingOptions, MulticastDelivery};
use crate::node::ProtocolName;

/// Takes what every node delivers until each has `want[i]` messages or `timeout` passes.
fn collect(
    nodes: &mut [MultiRingNode],
    want: &[usize],
    timeout: Duration,
) -> Vec<Vec<MulticastDelivery>> {
    let deadline = Instant::now() + timeout;
    let mut got: Vec<Vec<MulticastDelivery>> = vec![Vec::new(); nodes.len()];
    while Instant::now() < deadline && got.iter().zip(want).any(|(g, &w)| g.len() < w) {
        let mut any = false;
        for (n, g) in nodes.iter_mut().zip(got.iter_mut()) {
            while let Some(d) = n.try_deliver() {
                g.push(d);
                any = true;
            }
        }
        if !any {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    got
}

fn start(file: &MultiRingFile) -> Vec<MultiRingNode> {
    file.processes()
        .into_iter()
        .map(|p| MultiRingNode::start(file, p, MultiRingOptions::default()).unwrap())
        .collect()
}

#[test]
fn learners_of_the_same_groups_deliver_one_merged_sequence_and_subsets_agree_with_it() {
    // Process 2 subscribes to group 1 only; 0 and 1 to both.
    let learners = vec![LearnerEntry { process: 2, groups: vec![1] }];
    let file = MultiRingFile::local_on_free_ports(ProtocolName::Uring, 2, 3, 1, learners).unwrap();
    let mut nodes = start(&file);
    // Only group 0 gets load from process 0 at first: group 1's ring is idle and must skip, or
    // nobody subscribed to both would deliver anything.
    for i in 0..200u32 {
        nodes[0].multicast(0, Bytes::from(i.to_le_bytes().to_vec())).unwrap();
    }
    for i in 0..100u32 {
        nodes[1].multicast(1, Bytes::from((1000 + i).to_le_bytes().to_vec())).unwrap();
    }
    let got = collect(&mut nodes, &[300, 300, 100], Duration::from_secs(20));
    assert_eq!(got[0].len(), 300, "node 0 delivered everything");
    assert_eq!(got[0], got[1], "learners of the same groups deliver the same sequence");
    let group1: Vec<&MulticastDelivery> = got[0].iter().filter(|d| d.group == 1).collect();
    assert_eq!(got[2].iter().collect::<Vec<_>>(), group1, "the subset is the same order");
    assert!(got[2].iter().all(|d| d.group == 1));
    // Each group's messages in the order their proposer sent them (one proposer each).
    let payloads = |g: u32| -> Vec<u32> {
        got[0]
            .iter()
            .filter(|d| d.group == g)
            .map(|d| u32::from_le_bytes(d.payload[..4].try_into().unwrap()))
            .collect()
    };
    assert_eq!(payloads(0), (0..200).collect::<Vec<_>>());
    assert_eq!(payloads(1), (1000..1100).collect::<Vec<_>>());
    let reports: Vec<_> = nodes.into_iter().map(MultiRingNode::stop).collect();
    let skips: u64 = reports
        .iter()
        .flat_map(|r| r.rings.iter())
        .map(|(_, n)| n.core.skip_instances_opened)
        .sum();
    assert!(skips > 0, "the idle ring's coordinator proposed skips");
}

#[test]
fn a_ring_shared_by_two_groups_delivers_each_learner_only_its_groups() {
    let mut file =
        MultiRingFile::local_on_free_ports(ProtocolName::Uring, 1, 3, 1, Vec::new()).unwrap();
    file = MultiRingFile::new(
        file.lambda_instances,
        file.delta_us,
        file.merge_queue_instances,
        file.rings,
        vec![GroupEntry { id: 3, ring: 0, m: 1 }, GroupEntry { id: 4, ring: 0, m: 1 }],
        vec![LearnerEntry { process: 1, groups: vec![4] }],
    )
    .unwrap();
    let mut nodes = start(&file);
    for i in 0..50u8 {
        nodes[0].multicast(3 + u32::from(i % 2), Bytes::from(vec![i])).unwrap();
    }
    let got = collect(&mut nodes, &[50, 25, 50], Duration::from_secs(20));
    assert_eq!(got[0].len(), 50);
    assert_eq!(got[1].len(), 25);
    assert!(got[1].iter().all(|d| d.group == 4 && d.payload[0] % 2 == 1), "the tag is gone");
    assert_eq!(nodes[1].dropped_messages(), 25);
    let err = nodes[0].multicast(9, Bytes::from_static(b"x")).unwrap_err();
    assert!(err.to_string().contains("no group 9"), "{err}");
    for n in nodes {
        n.stop();
    }
}
