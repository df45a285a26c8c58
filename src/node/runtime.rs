//! The node thread: one reactor and one protocol core, following the core's driving contract
//! (DESIGN "Driving a protocol core"): feed every input, then drain the actions and perform them.
//!
//! ```text
//! loop:
//!   poll the reactor ──> frames decoded ──> RingNode::on_message
//!   timer due        ──> RingNode::on_tick
//!   proposals ring   ──> RingNode::propose        (until the core pushes back)
//!   drain actions; an acceptor with a log writes their Persist records first, and in `sync` mode
//!                  makes them durable (one fdatasync) before performing any (`durability`)
//!   perform them:  Send -> outbox of the link to `to`;  Multicast -> into the datagram being
//!                  filled (a new one when the next frame would overflow it, see below);
//!                  Deliver -> deliveries ring (a batch per instance);     SetTimer -> next wake-up
//!   (the core delivers no more batches than the deliveries ring has room for: a slow application
//!    slows the coordinator through flow control, never this loop)
//!   NeedsStateTransfer -> a fetch on its own thread (`state_transfer`); once it brought a
//!                  snapshot, a later iteration installs it in the core and puts a marker in the
//!                  deliveries ring ahead of the deliveries that follow it
//!   flush: every send of this iteration in one submission (and the last datagram)
//! ```
//!
//! A datagram carries the sender's hello and then one or more frames. The frames of one step's
//! multicasts share datagrams up to the configured batch bytes (thesis 3.5.2: M-Ring's packet is
//! the batch, 8 KB): a Phase 2A whose batch fills a datagram goes alone, but the decisions left
//! over at the end of a step, 50 bytes each, used to go out as a datagram apiece, and every
//! datagram costs the sender a socket buffer and each receiver a wake-up whatever its size.
//! Receivers decode frames until the datagram ends.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::io::buffer::InBuf;
use crate::io::outbuf::OutBuf;
use crate::io::{ConnId, Handler, Reactor, Received, UdpId};
use crate::proto::types::{NodeId, Tick};
use crate::proto::{Action, Batch, RingNode};
use crate::wire::{self, HELLO_BYTES, Hello};

use super::delivery_tap::DeliveryQueues;
use super::durability::Durability;
use super::handle::{DeliveredBatch, Marker, NodeReport, Shared};
use super::links::{LinkRole, Links};
use super::multicast_link::MulticastLink;
use super::state_transfer::StateTransfer;

/// Proposals taken from the application per loop iteration, so a flood of them cannot starve the
/// network.
const PROPOSALS_PER_ITERATION_MAX: usize = 8192;
/// The longest the loop sleeps without a timer (it still wakes for I/O and proposals).
const IDLE_WAIT_MAX: Duration = Duration::from_millis(10);

/// Counts of inputs the runtime dropped, beside the core's own counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RuntimeCounters {
    /// Frames (or hellos) that did not decode: the link was closed.
    pub malformed_frames: u64,
    /// Datagrams that did not decode or came from another cluster.
    pub malformed_datagrams: u64,
    /// Messages not sent because the link to the peer was down.
    pub sends_unconnected: u64,
    /// Messages not sent because the link's send buffer was full.
    pub sends_overflowed: u64,
    /// Multicast datagrams the kernel did not take.
    pub multicasts_failed: u64,
    /// Our own multicasts the kernel looped back to us (the coordinator leaves the group so that it
    /// gets none; see `node::multicast_link`).
    pub own_datagrams: u64,
    /// Joins and leaves of the multicast group the kernel refused.
    pub membership_failures: u64,
}

pub(crate) struct Runtime {
    pub core: RingNode,
    pub reactor: Reactor,
    pub links: Links,
    pub cluster_id: u32,
    /// The acceptor's log, when its storage is not `memory`.
    pub durability: Option<Durability>,
    pub started: Instant,
    pub multicast: Option<MulticastLink>,
    pub proposals: rtrb::Consumer<Bytes>,
    pub deliveries: DeliveryQueues,
    /// With checkpoints: fetches and installs snapshots when the learner falls behind the trim.
    pub state_transfer: Option<StateTransfer>,
    pub shared: Arc<Shared>,
}

/// The reactor's view of the runtime during one poll.
struct Inputs<'a> {
    core: &'a mut RingNode,
    links: &'a mut Links,
    counters: &'a mut RuntimeCounters,
    me: NodeId,
    nodes: u16,
    cluster_id: u32,
    now: Tick,
    /// Outgoing links that came up during this poll: their hello is written right after it (the
    /// reactor cannot take sends during its own poll).
    newly_open: &'a mut Vec<ConnId>,
}

impl Inputs<'_> {
    fn valid_peer(&self, h: &Hello) -> bool {
        h.cluster_id == self.cluster_id && h.from < self.nodes && h.from != self.me
    }
}

impl Handler for Inputs<'_> {
    fn accepted(&mut self, conn: ConnId, _peer: SocketAddr) {
        self.links.accepted(conn);
    }

    fn connected(&mut self, conn: ConnId) {
        self.newly_open.push(conn);
    }

    fn closed(&mut self, conn: ConnId, _cause: std::io::Error) {
        self.newly_open.retain(|&c| c != conn);
        self.links.closed(conn, self.now);
    }

    fn received(&mut self, conn: ConnId, inbox: &mut InBuf) -> Received {
        let from = match self.links.role(conn) {
            Some(LinkRole::In { peer: Some(p) }) => p,
            Some(LinkRole::In { peer: None }) => match Hello::decode(inbox.filled()) {
                Ok(h) if self.valid_peer(&h) => {
                    self.links.identified(conn, h.from);
                    inbox.consume(HELLO_BYTES);
                    h.from
                }
                Err(e) if e.is_incomplete() => return Received::Keep,
                _ => {
                    self.counters.malformed_frames += 1;
                    return Received::Close;
                }
            },
            // Nothing is ever sent to us on our own outgoing links.
            Some(LinkRole::Out { .. }) | None => {
                self.counters.malformed_frames += 1;
                return Received::Close;
            }
        };
        loop {
            // Each frame is taken out of the inbox whole and decoded in place: the batches it
            // carries are slices of the receive buffer (no copy, no allocation).
            let decoded = match wire::complete_frame_len(inbox.filled()) {
                Ok(None) => return Received::Keep,
                Ok(Some(n)) => wire::decode_bytes(&inbox.take(n)),
                Err(e) => Err(e),
            };
            match decoded {
                Ok((msg, _)) => self.core.on_message(self.now, from, msg),
                Err(_) => {
                    // A stream that lost its framing cannot be resynchronised: drop the link; the
                    // peer reconnects and the protocol retransmits what was lost (3.3.4).
                    self.counters.malformed_frames += 1;
                    return Received::Close;
                }
            }
        }
    }

    fn datagram(&mut self, _udp: UdpId, datagram: Bytes) {
        let hello = match Hello::decode(&datagram) {
            Ok(h) if h.cluster_id == self.cluster_id && h.from < self.nodes => h,
            _ => {
                self.counters.malformed_datagrams += 1;
                return;
            }
        };
        if hello.from == self.me {
            // Our own multicast, looped back: the core already handled its copy. A node leaves the
            // group before it multicasts (`node::multicast_link`), so none should come; the count
            // would show it if they did.
            self.counters.own_datagrams += 1;
            return;
        }
        // Decoded in place: the batch a Phase 2A carries is a slice of the receive buffer. A frame
        // that does not decode ends the datagram (its length cannot be trusted); the frames before
        // it were whole and stand.
        let mut rest = datagram.slice(HELLO_BYTES..);
        if rest.is_empty() {
            self.counters.malformed_datagrams += 1;
        }
        while !rest.is_empty() {
            match wire::decode_bytes(&rest) {
                Ok((msg, n)) => {
                    self.core.on_message(self.now, hello.from, msg);
                    rest = rest.slice(n..);
                }
                Err(_) => {
                    self.counters.malformed_datagrams += 1;
                    break;
                }
            }
        }
    }

    fn woken(&mut self) {}
}

impl Runtime {
    fn now(&self) -> Tick {
        self.started.elapsed().as_micros() as Tick
    }

    /// Runs until the handle asks it to stop.
    pub fn run(mut self) -> NodeReport {
        let cpu_before = crate::io::pin::thread_cpu_time();
        let me = self.core.id();
        let nodes = self.core.config().cluster.nodes;
        let hello = Hello { cluster_id: self.cluster_id, from: me }.encode();
        let mut counters = RuntimeCounters::default();
        let mut actions: Vec<Action> =
            Vec::with_capacity(crate::proto::ring_node::ACTIONS_CAPACITY);
        // The multicast datagram being filled: our hello, then whole frames, whose batches are sent
        // from where they are (see `io::outbuf`).
        let mut datagram = OutBuf::for_datagrams(wire::FRAME_BODY_BYTES_MAX);
        let datagram_bytes_max = self.core.config().batch_bytes_max;
        let mut timer_at: Tick = 0;
        let mut newly_open: Vec<ConnId> = Vec::with_capacity(nodes.into());
        let mut delivered_values: u64 = 0;
        let mut room_freed = false;
        // The core's pending values when it last refused a proposal: until some of them are
        // delivered it has no room, so the queued proposals give no reason to poll without waiting.
        let mut refused_at_pending: Option<usize> = None;
        let mut storage_error = None;

        while !self.shared.stop.load(Ordering::Acquire) {
            let now = self.now();
            // Every delivery of this iteration fits: the application only frees slots meanwhile.
            self.core.set_delivery_room(now, self.deliveries.slots());
            self.install_fetched_snapshot(now);
            self.links.connect_due(now, &mut self.reactor);
            let core_may_take = refused_at_pending.is_none_or(|p| self.core.pending_values() < p);
            let timeout = if (!self.proposals.is_empty() && core_may_take) || room_freed {
                Duration::ZERO
            } else {
                Duration::from_micros(timer_at.saturating_sub(now)).min(IDLE_WAIT_MAX)
            };
            let mut inputs = Inputs {
                core: &mut self.core,
                links: &mut self.links,
                counters: &mut counters,
                me,
                nodes,
                cluster_id: self.cluster_id,
                now,
                newly_open: &mut newly_open,
            };
            if let Err(e) = self.reactor.poll(Some(timeout), &mut inputs) {
                eprintln!("ringsmr: node {me}: reactor poll failed: {e}");
                break;
            }
            for conn in newly_open.drain(..) {
                if self.links.connected(conn).is_some()
                    && let Some(out) = self.reactor.outbox(conn)
                {
                    out.push(&hello);
                }
            }

            let now = self.now();
            self.core.set_stable_version(self.shared.stable_version.load(Ordering::Acquire));
            if now >= timer_at {
                timer_at = now + self.core.config().tick_interval_us;
                self.core.on_tick(now);
            }
            refused_at_pending = None;
            for _ in 0..PROPOSALS_PER_ITERATION_MAX {
                let Ok(payload) = self.proposals.peek() else { break };
                if self.core.propose(now, payload).is_err() {
                    // Back-pressure: the value stays queued until the core has room.
                    refused_at_pending = Some(self.core.pending_values());
                    break;
                }
                let _ = self.proposals.pop();
            }

            // Before this step's multicasts go out: a node that has just become coordinator
            // leaves the group before its first Phase 2A could come back to it.
            if let Some(link) = self.multicast.as_mut()
                && let Err(e) = link.follow_role(&mut self.reactor, self.core.has_coordinator())
            {
                counters.membership_failures += 1;
                if counters.membership_failures == 1 {
                    eprintln!("ringsmr: node {me}: {e}");
                }
            }
            self.core.drain_actions(&mut actions);
            // Promises and votes are durable before anything of this step leaves (`durability`).
            if let Some(d) = self.durability.as_mut()
                && let Err(e) = d.persist(&actions, now)
            {
                eprintln!("ringsmr: node {me}: stopping: acceptor log: {e}");
                storage_error = Some(e.to_string());
                break;
            }
            let mut delivered_now = false;
            for action in actions.drain(..) {
                match action {
                    Action::Send { to, msg } => {
                        let Some(conn) = self.links.conn_to(to) else {
                            counters.sends_unconnected += 1;
                            continue;
                        };
                        let len = wire::encoded_len(&msg);
                        let pushed = self.reactor.outbox(conn).is_some_and(|out| {
                            out.push_frame(len, |v, share| wire::encode_sharing(&msg, v, share))
                        });
                        if !pushed {
                            counters.sends_overflowed += 1;
                        }
                    }
                    Action::Multicast { msg } => {
                        let Some(link) = self.multicast.as_ref() else {
                            counters.multicasts_failed += 1;
                            continue;
                        };
                        let frame_bytes = wire::encoded_len(&msg);
                        let filled = datagram.pending_bytes();
                        if filled > HELLO_BYTES && filled + frame_bytes > datagram_bytes_max {
                            send_datagram(&mut self.reactor, link, &mut datagram, &mut counters);
                        }
                        if datagram.is_empty() {
                            datagram.push(&hello);
                        }
                        let pushed = datagram.push_frame(frame_bytes, |v, share| {
                            wire::encode_sharing(&msg, v, share)
                        });
                        if !pushed {
                            counters.multicasts_failed += 1;
                        }
                    }
                    Action::Deliver { instance, values } => {
                        delivered_values += values.len() as u64;
                        delivered_now = true;
                        let pushed =
                            self.deliveries.push(DeliveredBatch { instance, values, marker: None });
                        assert!(pushed.is_ok(), "the core delivered beyond the room it was given");
                    }
                    Action::SetTimer { at } => timer_at = at,
                    // Written above.
                    Action::Persist(_) => {}
                    Action::Checkpoint(cp) => {
                        // Between the batches it follows and the next, in the same queue: the
                        // core kept a slot of the room it was given for it.
                        let marker = DeliveredBatch {
                            instance: cp.next_instance,
                            values: Batch::empty(),
                            marker: Some(Marker::Checkpoint(cp)),
                        };
                        let pushed = self.deliveries.push(marker);
                        assert!(
                            pushed.is_ok(),
                            "the core checkpointed beyond the room it was given"
                        );
                        delivered_now = true;
                    }
                    Action::NeedsStateTransfer { next_instance, trimmed_below } => {
                        let how = match self.state_transfer.as_mut() {
                            Some(t) => {
                                t.needed(trimmed_below);
                                "fetching a snapshot from a learner that is ahead"
                            }
                            None => {
                                self.shared
                                    .learner_behind
                                    .fetch_max(trimmed_below, Ordering::AcqRel);
                                if self.shared.application_versions {
                                    "the application must come back from a newer snapshot of its own"
                                } else {
                                    "it stores no snapshots and so cannot be given one: run \
                                     learners with checkpoints"
                                }
                            }
                        };
                        eprintln!(
                            "ringsmr: node {me}: learner needs state transfer (next instance \
                             {next_instance}, acceptors trimmed below {trimmed_below}): {how}"
                        );
                    }
                }
            }
            if let Some(link) = self.multicast.as_ref()
                && !datagram.is_empty()
            {
                send_datagram(&mut self.reactor, link, &mut datagram, &mut counters);
            }
            self.reactor.flush();
            // The counters the handle reads while the node runs (a benchmark counts skip
            // instances over its run without stopping the node).
            let counters = self.core.counters();
            self.shared.rounds_started.store(counters.rounds_started, Ordering::Release);
            let (opened, skipped) = (counters.skip_instances_opened, counters.positions_skipped);
            self.shared.skip_instances_opened.store(opened, Ordering::Release);
            self.shared.positions_skipped.store(skipped, Ordering::Release);
            // Out of room, decided instances may wait: the application's next take wakes us. One
            // it made since we last looked would not, so then look again without sleeping.
            room_freed = false;
            if self.core.delivery_room() == 0 {
                self.shared.deliveries_held.store(true, Ordering::Release);
                room_freed = self.deliveries.slots() > 0;
            }
            if delivered_now {
                self.shared.delivered_values.store(delivered_values, Ordering::Release);
                self.shared.unpark_consumer();
            }
            if let Some(t) = self.state_transfer.as_mut() {
                t.poll(now, &self.core);
            }
        }
        NodeReport {
            backend: self.reactor.backend_name(),
            cpu: crate::io::pin::thread_cpu_time().saturating_sub(cpu_before),
            wall: self.started.elapsed(),
            delivered_values,
            core: self.core.counters().clone(),
            runtime: counters,
            links_lost: self.links.links_lost,
            storage_error,
        }
    }
}

impl Runtime {
    /// Installs a snapshot state transfer brought, when there is one and the deliveries ring has
    /// room for its marker (and the checkpoint slot the core keeps): the marker goes in first, so
    /// the application replaces its state before it applies anything decided after the snapshot.
    /// Called right after the delivery room was set, with no delivery of this iteration pending.
    fn install_fetched_snapshot(&mut self, now: Tick) {
        let Some(t) = self.state_transfer.as_mut() else { return };
        if self.deliveries.slots() < 2 {
            return;
        }
        let Some(snapshot) = t.take_ready() else { return };
        let version = snapshot.checkpoint.next_instance;
        if version <= self.core.delivered_below() {
            return;
        }
        // Said before the marker goes in: the application's own word on restoring the state
        // comes after it.
        eprintln!(
            "ringsmr: node {}: installing a snapshot at instance {version} from state transfer",
            self.core.id()
        );
        let cp = snapshot.checkpoint.clone();
        let marker = DeliveredBatch {
            instance: version,
            values: Batch::empty(),
            marker: Some(Marker::Installed(Box::new(snapshot))),
        };
        let pushed = self.deliveries.push(marker);
        assert!(pushed.is_ok(), "room was checked");
        self.shared.stable_version.fetch_max(version, Ordering::AcqRel);
        self.core.set_delivery_room(now, self.deliveries.slots());
        let installed = self.core.install_snapshot(now, &cp);
        debug_assert!(installed, "the learner was behind the snapshot");
        self.shared.unpark_consumer();
    }
}

/// Multicasts the datagram filled so far and empties it.
fn send_datagram(
    reactor: &mut Reactor,
    link: &MulticastLink,
    datagram: &mut OutBuf,
    counters: &mut RuntimeCounters,
) {
    if reactor.send_datagram_from(link.udp, datagram, link.group()).is_err() {
        counters.multicasts_failed += 1;
    }
}
