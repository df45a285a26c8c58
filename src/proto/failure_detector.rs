//! Failure suspicion and coordinator selection (thesis 3.3.5).
//!
//! Every process heartbeats every other. A process not heard from within `suspect_timeout_us` is
//! suspected. The coordinator is the first acceptor, in the configured preference order, that is not
//! suspected and serves as an acceptor. Suspicion can be wrong (a slow or partitioned process): two
//! processes may then both act as coordinator, which Paxos tolerates; after GST all correct processes
//! pick the same one.

use super::config::ClusterConfig;
use super::types::{Instance, NodeId, Tick};

#[derive(Debug, Clone, Copy, Default)]
struct Peer {
    last_heard_at: Option<Tick>,
    /// When the peer became alive again after a suspicion (for rejoin hysteresis).
    alive_since: Tick,
    acceptor_ready: bool,
    decided_below: Instance,
    applied_below: Instance,
}

#[derive(Debug)]
pub struct FailureDetector {
    peers: Vec<Peer>,
    suspect_timeout_us: Tick,
}

impl FailureDetector {
    /// Every peer starts out trusted, as if just heard from: at start-up the preferred acceptor
    /// coordinates without a round of elections.
    pub fn new(cluster: &ClusterConfig, suspect_timeout_us: Tick, now: Tick) -> FailureDetector {
        let peers = (0..cluster.nodes)
            .map(|n| Peer {
                last_heard_at: Some(now),
                alive_since: now,
                acceptor_ready: cluster.is_acceptor(n),
                ..Peer::default()
            })
            .collect();
        FailureDetector { peers, suspect_timeout_us }
    }

    /// Any message from `node` proves it alive.
    pub fn heard_from(&mut self, node: NodeId, now: Tick) {
        let timeout = self.suspect_timeout_us;
        if let Some(p) = self.peers.get_mut(usize::from(node)) {
            let was_alive = p.last_heard_at.is_some_and(|t| now < t + timeout);
            if !was_alive {
                p.alive_since = now;
            }
            p.last_heard_at = Some(now);
        }
    }

    pub fn on_heartbeat(
        &mut self,
        node: NodeId,
        acceptor_ready: bool,
        decided_below: Instance,
        applied_below: Instance,
    ) {
        if let Some(p) = self.peers.get_mut(usize::from(node)) {
            p.acceptor_ready = acceptor_ready;
            p.decided_below = p.decided_below.max(decided_below);
            p.applied_below = applied_below;
        }
    }

    pub fn alive(&self, node: NodeId, now: Tick) -> bool {
        self.peers
            .get(usize::from(node))
            .and_then(|p| p.last_heard_at)
            .is_some_and(|t| now < t + self.suspect_timeout_us)
    }

    /// Alive without interruption for at least `for_us`.
    pub fn alive_for(&self, node: NodeId, now: Tick, for_us: Tick) -> bool {
        self.alive(node, now) && self.peers[usize::from(node)].alive_since + for_us <= now
    }

    pub fn acceptor_ready(&self, node: NodeId) -> bool {
        self.peers.get(usize::from(node)).is_some_and(|p| p.acceptor_ready)
    }

    /// The highest `decided_below` any process reported.
    pub fn decided_below_max(&self) -> Instance {
        self.peers.iter().map(|p| p.decided_below).max().unwrap_or(0)
    }

    /// Versions (applied_below) of every process heard from, for garbage collection.
    pub fn applied_versions(&self) -> impl Iterator<Item = (NodeId, Instance)> + '_ {
        self.peers.iter().enumerate().map(|(n, p)| (n as NodeId, p.applied_below))
    }

    /// Records this process' own progress, so it counts like everybody else's.
    pub fn set_own(
        &mut self,
        me: NodeId,
        now: Tick,
        acceptor_ready: bool,
        decided_below: Instance,
        applied_below: Instance,
    ) {
        self.heard_from(me, now);
        self.on_heartbeat(me, acceptor_ready, decided_below, applied_below);
    }

    /// The coordinator this process believes in: the first acceptor in preference order that is alive
    /// and serving.
    pub fn leader(&self, cluster: &ClusterConfig, now: Tick) -> Option<NodeId> {
        cluster.acceptors.iter().copied().find(|&a| self.alive(a, now) && self.acceptor_ready(a))
    }
}
