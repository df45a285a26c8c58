//! How a coordinator lays out the ring of its round (thesis 3.3.2, 3.3.3, 3.3.5): it leaves out
//! suspected processes and draws on spare acceptors.
//!
//! ```text
//!   M-Ring:  a1 -> a2 -> ... -> af -> coordinator            (f+1 acceptors; spares stay off)
//!   U-Ring:  coordinator -> a1 -> ... -> af -> p -> q -> ...  (every live process; back to the start)
//! ```

use super::config::{ClusterConfig, Protocol};
use super::types::{NodeId, Ring};

/// The ring for a round coordinated by `coordinator`, built from the processes `usable` says are
/// alive (and, for acceptors, serving). `None` when fewer than f other acceptors are usable.
pub fn lay_out(
    protocol: Protocol,
    cluster: &ClusterConfig,
    coordinator: NodeId,
    usable_acceptor: impl Fn(NodeId) -> bool,
    alive: impl Fn(NodeId) -> bool,
) -> Option<Ring> {
    let voters: Vec<NodeId> = cluster
        .acceptors
        .iter()
        .copied()
        .filter(|&a| a != coordinator && usable_acceptor(a))
        .take(cluster.f)
        .collect();
    if voters.len() < cluster.f {
        return None;
    }
    let mut members = Vec::with_capacity(usize::from(cluster.nodes));
    match protocol {
        Protocol::MRing => {
            members.extend_from_slice(&voters);
            members.push(coordinator);
        }
        Protocol::URing => {
            members.push(coordinator);
            members.extend_from_slice(&voters);
            for n in 0..cluster.nodes {
                if !members.contains(&n) && alive(n) {
                    members.push(n);
                }
            }
        }
    }
    Ring::new(&members)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rings_skip_suspects_and_use_spares() {
        let c = ClusterConfig { nodes: 6, acceptors: vec![0, 1, 2, 3, 4], f: 2 };
        let m = lay_out(Protocol::MRing, &c, 0, |a| a != 1, |_| true).unwrap();
        assert_eq!(m.members(), &[2, 3, 0]);
        let u = lay_out(Protocol::URing, &c, 0, |a| a != 1, |n| n != 1).unwrap();
        assert_eq!(u.members(), &[0, 2, 3, 4, 5]);
        assert!(lay_out(Protocol::MRing, &c, 0, |a| a == 0 || a == 4, |_| true).is_none());
    }
}
