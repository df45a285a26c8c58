//! How a coordinator lays out the ring of its round (thesis 3.3.2, 3.3.3, 3.3.5): it leaves out
//! suspected processes and draws on spare acceptors.
//!
//! ```text
//!   M-Ring:  a1 -> a2 -> ... -> af -> coordinator            (f+1 acceptors; spares stay off)
//!   U-Ring:  coordinator -> a1 -> ... -> af -> p -> q -> ...  (every live process; back to the start)
//! ```

use super::config::{ClusterConfig, Protocol};
use super::types::{NodeId, Ring, Round};

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

/// Whether `ring` has the shape [`lay_out`] gives the coordinator of `rnd`: processes of the cluster,
/// with f+1 acceptors where the protocol puts its voters, and the round's owner as coordinator (last
/// in M-Ring Paxos, first in U-Ring Paxos). A message carrying any other ring did not come from a
/// correct coordinator and is dropped: following it could, for one, make a process its own
/// successor and pass a Phase 2A to itself without end.
pub fn is_laid_out(protocol: Protocol, cluster: &ClusterConfig, rnd: Round, ring: &Ring) -> bool {
    let members = ring.members();
    let voters = cluster.f + 1;
    if members.len() < voters || members.iter().any(|&n| n >= cluster.nodes) {
        return false;
    }
    match protocol {
        Protocol::MRing => {
            members.len() == voters
                && members.iter().all(|&n| cluster.is_acceptor(n))
                && ring.last() == rnd.owner()
        }
        Protocol::URing => {
            members[..voters].iter().all(|&n| cluster.is_acceptor(n)) && ring.first() == rnd.owner()
        }
    }
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

    #[test]
    fn only_rings_a_coordinator_could_lay_out_are_accepted() {
        let c = ClusterConfig { nodes: 6, acceptors: vec![0, 1, 2, 3, 4], f: 2 };
        let r3 = Round::next_owned(Round::ZERO, 3).unwrap();
        for protocol in [Protocol::MRing, Protocol::URing] {
            for suspect in 0..6 {
                let ring = lay_out(protocol, &c, 3, |a| a != suspect, |n| n != suspect).unwrap();
                assert!(is_laid_out(protocol, &c, r3, &ring), "{protocol:?} {ring:?}");
                let other_owner = Round::next_owned(r3, 4).unwrap();
                assert!(!is_laid_out(protocol, &c, other_owner, &ring), "{protocol:?} {ring:?}");
            }
        }
        let ring = |m: &[NodeId]| Ring::new(m).unwrap();
        assert!(
            !is_laid_out(Protocol::URing, &c, r3, &ring(&[3])),
            "too short: 3 is its own successor"
        );
        assert!(!is_laid_out(Protocol::URing, &c, r3, &ring(&[3, 5, 1])), "5 is no acceptor");
        assert!(!is_laid_out(Protocol::URing, &c, r3, &ring(&[3, 1, 2, 9])), "9 is no process");
        assert!(!is_laid_out(Protocol::MRing, &c, r3, &ring(&[1, 2, 4, 3])), "f+2 voters");
        assert!(is_laid_out(Protocol::MRing, &c, r3, &ring(&[1, 2, 3])));
    }
}
