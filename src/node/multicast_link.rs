//! The node's multicast socket (M-Ring Paxos, thesis 3.3.1 and 3.5.2): where Phase 2A messages and
//! decisions go out, and where they arrive, and the group membership that follows the node's role.
//!
//! Only the coordinator multicasts. With `IP_MULTICAST_LOOP` (processes sharing a host) the kernel
//! hands a copy of every datagram to *every* joined socket on the sending host, the sender's own
//! included, and the coordinator's core has already handled its copy ([`RingNode`]'s `multicast`
//! pushes it locally). That copy costs the coordinator a receive, a copy of 8 KB and, worst, a
//! socket wake-up per datagram, all on the busiest thread of the cluster. So the coordinator leaves
//! the group while it coordinates and joins again as soon as it does not: a new coordinator's
//! datagrams it misses meanwhile are repaired like any other loss (3.3.4). A separate, unjoined
//! socket for sending would not help: the loop-back copy goes to the joined receiving socket.
//! Leaving only works with `IP_MULTICAST_ALL` off (`io::socket::multicast_socket`). The lowest-id
//! live acceptor leads, so a coordinator that left the group never needs a multicast to learn that
//! it was replaced: it steps down when it sees a preferred process alive, and a higher round reaches
//! it by the acceptors' Nack over TCP.
//!
//! Measured (3 nodes of `ringsmr local --protocol mring` on one 2-core host, epoll, 3 alternating
//! runs of 4 s): 1,948 → 2,215 Mbit/s.
//!
//! [`RingNode`]: crate::proto::RingNode

use std::io;
use std::net::SocketAddr;

use crate::io::socket::MulticastOptions;
use crate::io::{Reactor, UdpId};

#[derive(Debug)]
pub(crate) struct MulticastLink {
    pub udp: UdpId,
    pub options: MulticastOptions,
    /// Whether the socket is in the group now.
    joined: bool,
}

impl MulticastLink {
    /// A link whose socket has just joined the group (`Reactor::add_multicast`).
    pub fn joined(udp: UdpId, options: MulticastOptions) -> MulticastLink {
        MulticastLink { udp, options, joined: true }
    }

    pub fn group(&self) -> SocketAddr {
        SocketAddr::V4(self.options.group)
    }

    /// Leaves the group while `coordinating`, and is in it otherwise. A change the kernel refuses
    /// leaves the membership as it was, to be tried again at the next call.
    pub fn follow_role(&mut self, reactor: &mut Reactor, coordinating: bool) -> io::Result<()> {
        let want_joined = !coordinating;
        if want_joined != self.joined {
            reactor.set_multicast_membership(self.udp, &self.options, want_joined)?;
            self.joined = want_joined;
        }
        Ok(())
    }
}
