//! The TCP links of one process: one outgoing connection to each other process (the one to the
//! ring successor carries the ring's traffic; the others carry heartbeats, Phase 1, retransmissions
//! and proposals sent direct), and the incoming connections of the others, each identified by the
//! [`Hello`](crate::wire::Hello) it opens with. Lost links are re-established with exponential backoff.

use std::net::SocketAddr;

use crate::io::{ConnId, Reactor};
use crate::proto::types::{NodeId, Tick};

const BACKOFF_MIN_US: Tick = 10_000;
const BACKOFF_MAX_US: Tick = 1_000_000;

/// What one connection of the reactor is to us.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinkRole {
    /// Ours, to send to `peer`.
    Out { peer: NodeId },
    /// Theirs, to receive from; `None` until its hello arrived.
    In { peer: Option<NodeId> },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum PeerLink {
    Myself,
    Idle { retry_at: Tick, backoff_us: Tick },
    Connecting { conn: ConnId, backoff_us: Tick },
    Open { conn: ConnId },
}

#[derive(Debug)]
pub struct Links {
    addresses: Vec<SocketAddr>,
    peers: Vec<PeerLink>,
    roles: Vec<Option<LinkRole>>,
    /// Links lost (closed or refused) since start.
    pub links_lost: u64,
}

impl Links {
    pub fn new(me: NodeId, addresses: Vec<SocketAddr>, conns_max: usize) -> Links {
        let peers = (0..addresses.len())
            .map(|p| {
                if p == usize::from(me) {
                    PeerLink::Myself
                } else {
                    PeerLink::Idle { retry_at: 0, backoff_us: BACKOFF_MIN_US }
                }
            })
            .collect();
        Links { addresses, peers, roles: vec![None; conns_max], links_lost: 0 }
    }

    /// Starts the connects that are due.
    pub fn connect_due(&mut self, now: Tick, reactor: &mut Reactor) {
        for peer in 0..self.peers.len() {
            if let PeerLink::Idle { retry_at, backoff_us } = self.peers[peer]
                && retry_at <= now
            {
                match reactor.connect(self.addresses[peer]) {
                    Ok(conn) => {
                        self.peers[peer] = PeerLink::Connecting { conn, backoff_us };
                        self.set_role(conn, LinkRole::Out { peer: peer as NodeId });
                    }
                    Err(_) => self.back_off(peer, now, backoff_us),
                }
            }
        }
    }

    fn back_off(&mut self, peer: usize, now: Tick, backoff_us: Tick) {
        self.peers[peer] = PeerLink::Idle {
            retry_at: now + backoff_us,
            backoff_us: (backoff_us * 2).min(BACKOFF_MAX_US),
        };
    }

    fn set_role(&mut self, conn: ConnId, role: LinkRole) {
        if let Some(slot) = self.roles.get_mut(conn) {
            *slot = Some(role);
        }
    }

    pub fn role(&self, conn: ConnId) -> Option<LinkRole> {
        self.roles.get(conn).copied().flatten()
    }

    pub fn accepted(&mut self, conn: ConnId) {
        self.set_role(conn, LinkRole::In { peer: None });
    }

    /// An incoming link said who it is.
    pub fn identified(&mut self, conn: ConnId, peer: NodeId) {
        self.set_role(conn, LinkRole::In { peer: Some(peer) });
    }

    /// Our connect completed; returns the peer so the caller can send its hello.
    pub fn connected(&mut self, conn: ConnId) -> Option<NodeId> {
        let Some(LinkRole::Out { peer }) = self.role(conn) else { return None };
        self.peers[usize::from(peer)] = PeerLink::Open { conn };
        Some(peer)
    }

    pub fn closed(&mut self, conn: ConnId, now: Tick) {
        let role = self.roles.get_mut(conn).and_then(Option::take);
        if let Some(LinkRole::Out { peer }) = role {
            self.links_lost += 1;
            let p = usize::from(peer);
            let backoff_us = match self.peers[p] {
                // A link that was up starts over from the shortest backoff.
                PeerLink::Open { .. } => BACKOFF_MIN_US,
                PeerLink::Connecting { backoff_us, .. } => backoff_us,
                other => unreachable!("a closed outgoing link was {other:?}"),
            };
            self.back_off(p, now, backoff_us);
        }
    }

    /// The open connection to `peer`, if any.
    pub fn conn_to(&self, peer: NodeId) -> Option<ConnId> {
        match self.peers.get(usize::from(peer))? {
            PeerLink::Open { conn } => Some(*conn),
            _ => None,
        }
    }
}
