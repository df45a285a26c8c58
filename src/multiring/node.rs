//! A process of Multi-Ring Paxos: one Ring Paxos node per ring it takes part in, each on a thread
//! (and core) of its own, and the deterministic merge of the groups it subscribes to where the
//! application consumes (thesis 5.2.2, Algorithm 1; 5.2.5 "machines can be shared among rings").
//!
//! ```no_run
//! use bytes::Bytes;
//! use ringsmr::multiring::{MultiRingFile, MultiRingNode, MultiRingOptions};
//! use ringsmr::node::ProtocolName;
//!
//! // Two rings of three processes on loopback; this process is process 0 of both.
//! let file = MultiRingFile::local(ProtocolName::Uring, 2, 3, 1, 7000, Vec::new())?;
//! let mut node = MultiRingNode::start(&file, 0, MultiRingOptions::default())?;
//! node.multicast(1, Bytes::from_static(b"to group 1"))?;
//! while let Some(d) = node.recv_timeout(std::time::Duration::from_secs(5)) {
//!     println!("group {} instance {}: {:?}", d.group, d.instance, d.payload);
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! **Merge by pulling.** The merge only ever needs the next instance of the ring whose turn it is
//! ([`Merge::waiting_for`]), so it takes deliveries from that ring's node alone. The other rings'
//! decided instances wait in their nodes' bounded delivery queues (`merge_queue_instances` each):
//! when a ring runs far ahead of the others its queue fills, its node stops delivering, its learner
//! reports a backlog, and flow control slows that ring's coordinator down (3.3.6). Memory stays
//! bounded, and a halted ring stalls the merge only until it decides again (5.4.7).
//!
//! **Rings not merged.** A process may play a node in a ring whose groups it does not subscribe
//! to (an acceptor, or a proposer to that group). What that node delivers is discarded as it
//! arrives, so it never holds its ring back.

use std::collections::BTreeMap;
use std::thread::Thread;
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use thiserror::Error;

use crate::io::BackendChoice;
use crate::io::pin::allowed_cores;
use crate::node::{
    DeliveredBatch, DeliveryTap, Node, NodeError, NodeOptions, NodeReport, ProposeBackpressure,
};
use crate::proto::{Batch, Instance, IntoValues, LearnerCheckpoint, NodeId, ValueId};

use super::config::{GroupId, MultiRingFile, ProcessId, RingId};
use super::merge::Merge;
use super::merged_stream::{MergeInput, merge_next};
use super::ring_stream::RingCursor;

/// Bytes of the group id a message of a ring shared by several groups starts with.
pub const GROUP_TAG_BYTES: usize = 4;

/// How to run a Multi-Ring process.
#[derive(Clone, Debug)]
pub struct MultiRingOptions {
    pub backend: BackendChoice,
    /// The cores the rings' node threads are pinned to, ring by ring in ring-id order, cycling
    /// (`None`: not pinned). Thread per core: each ring's core on its own.
    pub cores: Option<Vec<usize>>,
    /// Values the application may queue per ring before `multicast` pushes back.
    pub proposals_capacity: usize,
    /// Rings whose deliveries go to this many taps each ([`MultiRingNode::take_delivery_taps`]),
    /// for threads that merge on their own ([`TapMerge`](super::TapMerge)); the process' own
    /// merge leaves these rings out.
    pub delivery_taps: Vec<(RingId, usize)>,
    /// The application keeps snapshots of its own (`NodeOptions::application_versions`).
    pub application_versions: bool,
    /// Rings whose learners start where the application's snapshot needs them
    /// (`NodeOptions::resume_from`).
    pub resume_from: Vec<(RingId, LearnerCheckpoint)>,
}

impl Default for MultiRingOptions {
    fn default() -> MultiRingOptions {
        MultiRingOptions {
            backend: BackendChoice::Auto,
            cores: None,
            proposals_capacity: 65_536,
            delivery_taps: Vec::new(),
            application_versions: false,
            resume_from: Vec::new(),
        }
    }
}

impl MultiRingOptions {
    /// Pinned to this machine's cores, the rings of process `process` starting at its own offset, so
    /// the processes of a local cluster spread over the cores.
    pub fn pinned(process: ProcessId, rings: usize) -> MultiRingOptions {
        let cores = allowed_cores();
        let first = usize::from(process) * rings;
        let cores = (0..rings.max(1)).map(|k| cores[(first + k) % cores.len()]).collect();
        MultiRingOptions { cores: Some(cores), ..MultiRingOptions::default() }
    }
}

/// Why a process did not start, or a multicast was refused.
#[derive(Debug, Error)]
pub enum MultiRingError {
    #[error("ring {ring}: {source}")]
    Node {
        ring: RingId,
        #[source]
        source: NodeError,
    },
    #[error("process {process} takes part in no ring of the file")]
    NoRing { process: ProcessId },
    #[error("no group {group} in the Multi-Ring file")]
    NoGroup { group: GroupId },
    #[error("load: {what}")]
    Load { what: String },
    #[error(
        "process {process} cannot multicast to group {group}: it is no proposer of ring {ring}"
    )]
    NotAProposer { process: ProcessId, group: GroupId, ring: RingId },
}

/// `multicast` refused: no group, no proposer role there, or the ring's proposal queue is full
/// (the value handed back; deliver, or wait, before multicasting more).
#[derive(Debug, Error)]
pub enum MulticastError {
    #[error(transparent)]
    Refused(#[from] MultiRingError),
    #[error("group {group}: {source}")]
    Backpressure {
        group: GroupId,
        #[source]
        source: ProposeBackpressure,
    },
}

/// One message in merged order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MulticastDelivery {
    pub group: GroupId,
    pub ring: RingId,
    /// The instance of its ring that decided it.
    pub instance: Instance,
    /// Its identity in its ring (the proposer is the ring's node id).
    pub id: ValueId,
    /// What was multicast (without the group tag of a shared ring).
    pub payload: Bytes,
}

/// The messages of one instance in merged order, for applications that take many small messages
/// (one call per batch; the payloads are slices of the batch as it arrived).
#[derive(Clone, Debug)]
pub struct MergedBatch {
    pub ring: RingId,
    pub instance: Instance,
    /// `Some` when the ring orders one group only; `None` when it orders several and every
    /// payload starts with its group's id ([`split_group_tag`]), groups not subscribed included.
    pub group: Option<GroupId>,
    pub values: Batch,
}

/// The group and the message of a payload from a ring shared by several groups.
pub fn split_group_tag(payload: &Bytes) -> Option<(GroupId, Bytes)> {
    let tag = payload.get(..GROUP_TAG_BYTES)?;
    let group = GroupId::from_le_bytes(tag.try_into().ok()?);
    Some((group, payload.slice(GROUP_TAG_BYTES..)))
}

/// One ring this process takes part in.
struct Member {
    ring: RingId,
    node: Node,
    /// The node's id in the ring.
    node_id: NodeId,
    proposer: bool,
    /// The ring orders several groups: messages carry their group.
    tags: bool,
    /// Its only group when it has one.
    only_group: Option<GroupId>,
    /// The merge takes this ring (some group of it is subscribed to).
    merged: bool,
    cursor: RingCursor,
    /// Messages of this ring's groups not subscribed to, dropped.
    dropped_values: u64,
}

impl MergeInput for Member {
    fn cursor_and_next(&mut self) -> Option<(&mut RingCursor, DeliveredBatch)> {
        let b = self.node.try_recv_batch()?;
        Some((&mut self.cursor, b))
    }
}

/// What a process did, returned by [`MultiRingNode::stop`].
#[derive(Debug)]
pub struct MultiRingReport {
    /// Per ring, in ring-id order.
    pub rings: Vec<(RingId, NodeReport)>,
    /// Messages handed to the application, in merged order.
    pub delivered_messages: u64,
}

/// See the module docs.
pub struct MultiRingNode {
    process: ProcessId,
    members: Vec<Member>,
    /// Where each group goes: its ring's member.
    group_member: BTreeMap<GroupId, usize>,
    subscribed: Vec<GroupId>,
    /// `None` when the process subscribes to no group.
    merge: Option<Merge<(Instance, Batch)>>,
    /// The member of each merged ring, by ring id.
    member_of_ring: BTreeMap<RingId, usize>,
    /// The batch `try_deliver` is going through.
    current: Option<(usize, Instance, IntoValues)>,
    delivered_messages: u64,
}

impl MultiRingNode {
    /// Starts this process' node in every ring it plays one in.
    pub fn start(
        file: &MultiRingFile,
        process: ProcessId,
        opts: MultiRingOptions,
    ) -> Result<MultiRingNode, MultiRingError> {
        let subscribed = file.subscriptions(process);
        let mut members = Vec::new();
        for ring in &file.rings {
            let Some(node_id) = ring.node_of(process) else { continue };
            let core = opts.cores.as_ref().map(|c| c[members.len() % c.len()]);
            let taps = opts.delivery_taps.iter().find(|(r, _)| *r == ring.id).map_or(0, |t| t.1);
            let node_opts = NodeOptions {
                backend: opts.backend,
                core,
                proposals_capacity: opts.proposals_capacity,
                deliveries_capacity: file.merge_queue_instances,
                skip_lambda_instances: file.lambda_instances,
                skip_interval_us: file.delta_us,
                delivery_taps: taps,
                application_versions: opts.application_versions,
                resume_from: opts
                    .resume_from
                    .iter()
                    .find(|(r, _)| *r == ring.id)
                    .map(|r| r.1.clone()),
                ..NodeOptions::default()
            };
            let node_err = |source| MultiRingError::Node { ring: ring.id, source };
            let cfg = ring.cluster.node_config(node_id).map_err(|e| node_err(e.into()))?;
            let node = Node::start(&ring.cluster, node_id, node_opts).map_err(node_err)?;
            let groups: Vec<GroupId> = file.groups_of_ring(ring.id).map(|g| g.id).collect();
            members.push(Member {
                ring: ring.id,
                node,
                node_id,
                proposer: cfg.proposer,
                tags: groups.len() > 1,
                only_group: (groups.len() == 1).then(|| groups[0]),
                merged: taps == 0 && groups.iter().any(|g| subscribed.contains(g)),
                cursor: RingCursor::new(),
                dropped_values: 0,
            });
        }
        if members.is_empty() {
            return Err(MultiRingError::NoRing { process });
        }
        let member_of_ring: BTreeMap<RingId, usize> = members
            .iter()
            .enumerate()
            .filter(|(_, m)| m.merged)
            .map(|(i, m)| (m.ring, i))
            .collect();
        let group_member = file
            .groups
            .iter()
            .filter_map(|g| Some((g.id, members.iter().position(|m| m.ring == g.ring)?)))
            .collect();
        let turns: Vec<(u32, u64)> = member_of_ring
            .keys()
            .map(|&ring| {
                let m = file.groups_of_ring(ring).next().map_or(1, |g| g.m);
                (ring, m)
            })
            .collect();
        // The merge holds at most what one ring's delivery splits into (a gap and an instance):
        // the rings' own delivery queues are the buffers (module docs).
        let merge = (!turns.is_empty()).then(|| Merge::with_turns(&turns, 4));
        Ok(MultiRingNode {
            process,
            members,
            group_member,
            subscribed,
            merge,
            member_of_ring,
            current: None,
            delivered_messages: 0,
        })
    }

    pub fn process(&self) -> ProcessId {
        self.process
    }

    /// The groups this process delivers, in merge order.
    pub fn subscriptions(&self) -> &[GroupId] {
        &self.subscribed
    }

    /// The rings this process takes part in, in ring-id order.
    pub fn rings(&self) -> impl Iterator<Item = RingId> + '_ {
        self.members.iter().map(|m| m.ring)
    }

    /// The I/O backend of the rings' nodes.
    pub fn backend(&self) -> &'static str {
        self.members[0].node.backend()
    }

    /// The ring that orders `group`.
    pub fn ring_of(&self, group: GroupId) -> Option<RingId> {
        self.group_member.get(&group).map(|&i| self.members[i].ring)
    }

    /// Multicasts `payload` to `group`: its ring orders it, and every learner subscribing to the
    /// group delivers it in merged order. Returns its id in that ring.
    pub fn multicast(&mut self, group: GroupId, payload: Bytes) -> Result<ValueId, MulticastError> {
        let &i = self.group_member.get(&group).ok_or(MultiRingError::NoGroup { group })?;
        let m = &mut self.members[i];
        if !m.proposer {
            let (process, ring) = (self.process, m.ring);
            return Err(MultiRingError::NotAProposer { process, group, ring }.into());
        }
        let payload = if m.tags {
            let mut tagged = BytesMut::with_capacity(GROUP_TAG_BYTES + payload.len());
            tagged.put_u32_le(group);
            tagged.put_slice(&payload);
            tagged.freeze()
        } else {
            payload
        };
        m.node.propose(payload).map_err(|source| MulticastError::Backpressure { group, source })
    }

    /// Room in the proposal queue of `group`'s ring.
    pub fn multicast_slots(&self, group: GroupId) -> usize {
        self.group_member.get(&group).map_or(0, |&i| self.members[i].node.propose_slots())
    }

    /// The next instance in merged order, if the rings have decided it; skips are consumed on the
    /// way and never returned.
    pub fn try_deliver_batch(&mut self) -> Option<MergedBatch> {
        if let Some((i, instance, values)) = self.current.take()
            && values.len() > 0
        {
            let m = &self.members[i];
            let group = m.only_group;
            return Some(MergedBatch { ring: m.ring, instance, group, values: values.rest() });
        }
        self.discard_unmerged();
        let merge = self.merge.as_mut()?;
        let member_of_ring = &self.member_of_ring;
        let (ring, (instance, values)) =
            merge_next(merge, &mut self.members, |r| member_of_ring[&r])?;
        let m = &self.members[self.member_of_ring[&ring]];
        Some(MergedBatch { ring, instance, group: m.only_group, values })
    }

    /// The next message in merged order, if the rings have decided it.
    pub fn try_deliver(&mut self) -> Option<MulticastDelivery> {
        loop {
            if let Some((i, instance, values)) = self.current.as_mut() {
                let (i, instance) = (*i, *instance);
                for v in values.by_ref() {
                    let m = &mut self.members[i];
                    let (group, payload) = if m.tags {
                        match split_group_tag(&v.payload) {
                            Some((g, p)) if self.subscribed.contains(&g) => (g, p),
                            _ => {
                                m.dropped_values += 1;
                                continue;
                            }
                        }
                    } else {
                        (m.only_group.expect("an untagged ring has one group"), v.payload)
                    };
                    self.delivered_messages += 1;
                    return Some(MulticastDelivery {
                        group,
                        ring: m.ring,
                        instance,
                        id: v.id,
                        payload,
                    });
                }
                self.current = None;
            }
            let b = self.try_deliver_batch()?;
            let i = self.member_of_ring[&b.ring];
            self.current = Some((i, b.instance, b.values.into_iter()));
        }
    }

    /// Waits up to `timeout` for the next message in merged order.
    pub fn recv_timeout(&mut self, timeout: Duration) -> Option<MulticastDelivery> {
        self.wake_on_delivery(std::thread::current());
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(d) = self.try_deliver() {
                return Some(d);
            }
            let now = Instant::now();
            if now >= deadline {
                return None;
            }
            // Every ring's node unparks this thread when it delivers; the bound covers a consumer
            // that moved to another thread.
            std::thread::park_timeout((deadline - now).min(Duration::from_millis(1)));
        }
    }

    /// Has every ring's node unpark `thread` when it delivers (see [`Node::wake_on_delivery`]).
    pub fn wake_on_delivery(&self, thread: Thread) {
        for m in &self.members {
            m.node.wake_on_delivery(thread.clone());
        }
    }

    /// The delivery taps of `ring` (`MultiRingOptions::delivery_taps`), once.
    pub fn take_delivery_taps(&mut self, ring: RingId) -> Vec<DeliveryTap> {
        let m = self.members.iter_mut().find(|m| m.ring == ring);
        m.map_or_else(Vec::new, |m| m.node.take_delivery_taps())
    }

    /// The ring's node id of this process in `ring`.
    pub fn node_id(&self, ring: RingId) -> Option<NodeId> {
        self.members.iter().find(|m| m.ring == ring).map(|m| m.node_id)
    }

    /// Messages of shared rings' groups this process does not subscribe to, dropped so far.
    pub fn dropped_messages(&self) -> u64 {
        self.members.iter().map(|m| m.dropped_values).sum()
    }

    /// CPU time of each ring's node thread so far, in ring-id order.
    pub fn thread_cpu_times(&self) -> Vec<Option<Duration>> {
        self.members.iter().map(|m| m.node.thread_cpu_time()).collect()
    }

    /// Skip instances this process' nodes opened as coordinators so far, and the instances they
    /// stood for, summed over its rings.
    pub fn skip_counters(&self) -> (u64, u64) {
        self.members
            .iter()
            .map(|m| m.node.skip_counters())
            .fold((0, 0), |a, b| (a.0 + b.0, a.1 + b.1))
    }

    /// Decided instances waiting for the merge, per ring this process merges (in ring-id order):
    /// what the learner buffers (5.4.6).
    pub fn queued_instances(&self) -> Vec<(RingId, usize)> {
        let m = self.members.iter().filter(|m| m.merged);
        m.map(|m| (m.ring, m.node.queued_deliveries())).collect()
    }

    /// Rings in which this process is a node but merges nothing: their deliveries go.
    fn discard_unmerged(&mut self) {
        for m in self.members.iter_mut().filter(|m| !m.merged) {
            while m.node.try_recv_batch().is_some() {}
        }
    }

    /// Stops every ring's node.
    pub fn stop(self) -> MultiRingReport {
        let delivered_messages = self.delivered_messages;
        let rings = self.members.into_iter().map(|m| (m.ring, m.node.stop())).collect();
        MultiRingReport { rings, delivered_messages }
    }
}
