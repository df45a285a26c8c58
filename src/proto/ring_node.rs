//! [`RingNode`]: one process of one ring, all its roles behind one sans-IO interface.
//!
//! The node routes each input to its roles (proposer, coordinator, acceptor, learner), which live in
//! their own files, and collects what they want done as [`Action`]s. It implements the message flow of
//! both variants (thesis 3.3.2, 3.3.3):
//!
//! ```text
//! M-Ring Paxos (f = 2; a1, a2, c form the ring, c coordinates; L are learners):
//!   proposer --Proposal--> c
//!   c ==Phase2A(c_rnd, i, c_vid, c_val)==> multicast to a1 a2 c L..   (c votes on its own copy)
//!   a1 --Phase2B--> a2 --Phase2B--> c          (each passes it on only if it voted for c_vid)
//!   c ==Phase2A(.., decided: [(i, c_vid)])==>  (the decision rides on the next Phase 2A, else goes
//!   c ==Decision(i, c_vid)==> multicast          alone; learners match c_vid with the 2A value)
//!
//! U-Ring Paxos (f = 2; ring c a1 a2 p q):
//!   p --Proposal--> q --> c --> a1 --> a2      (once around the ring, ending before p; all keep it)
//!   c --Phase2A/2B(proposal id)--> a1 --> a2   (each acceptor votes, then forwards; a2 decides)
//!   a2 --Decision(proposal id)--> p --> q --Decision(value id)--> c --> a1   (ends before a2)
//! ```
//!
//! In U-Ring Paxos a value crosses each link once, as in the thesis' implementation (3.5.4): the
//! proposal goes on past the coordinator and every process keeps it (`proposal_store`), and Phase 2A
//! and the decision name it by its proposal id. Links deliver in order, so an acceptor holds a
//! proposal before the Phase 2A that names it — unless a link dropped it or the ring changed; then it
//! does not vote, and the coordinator's resent Phase 2A carries the value (see [`Carried`]).
//!
//! Messages a process sends to itself (the coordinator is an acceptor and a learner too) never leave
//! the node: they go through a local queue drained before the input returns, so every role sees the
//! same messages whether its peers are local or remote.

use std::collections::VecDeque;

use super::acceptor::{AcceptorState, Slot, Verdict};
use super::action::Action;
use super::batch_arena::BatchArena;
use super::config::{ConfigError, NodeConfig, Protocol};
use super::coordinator::{Coordinator, Proposal2A};
use super::decided_ids::DecidedIds;
use super::durable::Durable;
use super::failure_detector::FailureDetector;
use super::flow_control::FlowWindow;
use super::instance_map::InstanceMap;
use super::learner::{Learner, LearnerRequest};
use super::learner_checkpoint::LearnerCheckpoint;
use super::msg::{Carried, Msg};
use super::proposal_store::ProposalStore;
use super::proposer::{Backpressure, Proposer};
use super::ring_layout::{is_laid_out, lay_out};
use super::skip::SkipClock;
use super::types::{Batch, Instance, NodeId, RING_MEMBERS_MAX, Ring, Round, Tick, ValueId, Vid};

/// How a process (re)starts.
#[derive(Debug)]
pub enum Boot {
    /// First start of the cluster: empty acceptor state is the true state.
    Fresh,
    /// Restart with the acceptor state read back from stable storage (Recoverable Ring Paxos).
    Recovered(AcceptorState),
    /// Restart without the acceptor state (in-memory Ring Paxos). Serving as an acceptor again could
    /// break agreement — the promises and votes it forgot may be the ones that made a quorum — so the
    /// process runs as proposer and learner only (3.3.5: "assuming that a majority of acceptors never
    /// fails").
    Amnesiac,
}

/// Things a node dropped or refused, for metrics and tests. Every message that is ignored is counted
/// under one of these.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Counters {
    /// Phase 1A/2A refused because the acceptor promised a higher round.
    pub refused_stale_round: u64,
    /// Messages dropped as malformed: well-formed bytes, but content no correct process sends (a ring
    /// its round's coordinator could not have laid out, a round no acceptor owns, an instance number
    /// that is the wire's "everything").
    pub malformed_dropped: u64,
    /// Messages that reached a process with no part in them (wrong role, not on the ring).
    pub ignored_misrouted: u64,
    /// M-Ring Phase 2B that arrived before (or without) the acceptor's own vote.
    pub phase2b_without_vote: u64,
    /// Proposals dropped: no coordinator known, or the coordinator's queue was full.
    pub proposals_dropped: u64,
    /// Rounds this process could not start because a message carried the last round there is.
    pub rounds_exhausted: u64,
    /// Rounds this process started as coordinator.
    pub rounds_started: u64,
    /// Phase 1B pieces that added nothing (stale, duplicated, or not continuing the acceptor's report).
    pub phase1b_ignored: u64,
    /// Phase 2A messages sent again after a timeout.
    pub phase2_retransmissions: u64,
    /// Retransmission requests this acceptor answered.
    pub retransmissions_answered: u64,
    /// Instances delivered (decided batches handed over in order, no-ops included).
    pub instances_delivered: u64,
    /// Flow-control notices this process sent as a learner.
    pub flow_notices_sent: u64,
    /// U-Ring proposals passing by that this process could not keep: its proposal store was full.
    pub proposals_not_kept: u64,
    /// U-Ring proposals kept but never named by a Phase 2A or decision in time, then forgotten.
    pub proposals_expired: u64,
    /// U-Ring Phase 2As not voted for because they named a proposal this process does not hold
    /// (the coordinator resends them with the value).
    pub phase2a_value_missing: u64,
    /// Snapshots installed by state transfer (3.3.7), see [`RingNode::install_snapshot`].
    pub snapshots_installed: u64,
    /// Skip instances this process opened as coordinator (Multi-Ring Paxos, `skip`).
    pub skip_instances_opened: u64,
    /// Logical positions the skip instances this process delivered took up beyond one each.
    pub positions_skipped: u64,
}

/// Hops a proposal may travel before it is dropped: enough to go around the largest ring twice, small
/// enough that two processes with different views of the coordinator cannot bounce it forever.
const PROPOSAL_TTL_HOPS: u8 = 2 * RING_MEMBERS_MAX as u8;

/// A U-Ring process keeps a proposal that passed by for this many `proposal_retry_us`; the
/// coordinator names it in Phase 2A only within the first of them.
const PROPOSAL_KEPT_RETRIES: u64 = 2;

/// Actions (and messages to itself) the core buffers between two drains without growing.
pub const ACTIONS_CAPACITY: usize = 16 * 1024;

/// The most memory an acceptor reserves for its slots up front (see [`acceptor_slots_reserved`]).
const ACCEPTOR_SLOTS_RESERVE_BYTES_MAX: usize = 512 * 1024;

/// Slots an acceptor reserves when it starts: as many instances as it can hold at once, from what
/// garbage collection keeps for a learner that lags (3.3.7) through the learners' backlog that flow
/// control allows (3.3.6) to the coordinator's window. Without it the map grows to each new peak
/// while running, which a learner slowed by a busy host reaches long after start-up. The slots are
/// a ring buffer that the instances move around, so the reserve is capped: the whole reserve is
/// memory the acceptor cycles through. With the node's defaults (32 KiB batches) it is about 3,100
/// slots, under the cap.
fn acceptor_slots_reserved(cfg: &NodeConfig) -> usize {
    let span = cfg.gc_retain_instances
        + u64::from(cfg.flow_backlog_instances_max)
        + u64::from(cfg.window_instances);
    let cap = ACCEPTOR_SLOTS_RESERVE_BYTES_MAX / std::mem::size_of::<Option<Slot>>().max(1);
    usize::try_from(span).unwrap_or(usize::MAX).min(cap)
}

/// Bytes of a chunk of the coordinator's arena (see [`BatchArena`]).
const COORDINATOR_ARENA_CHUNK_BYTES: usize = crate::chunks::CHUNK_BYTES;

/// One process of a Ring Paxos cluster, as a pure state machine.
///
/// # Driving contract
///
/// Inputs (each takes the current time; the core never reads a clock):
/// - [`RingNode::on_message`] for every message received from another process,
/// - [`RingNode::on_tick`] when the time of the last [`Action::SetTimer`] has come,
/// - [`RingNode::propose`] for application values.
///
/// Output: after each input (or a group of inputs) call [`RingNode::drain_actions`] and perform the
/// actions in order. Values proposed between two drains are sent together: draining is when the node
/// batches. The caller reuses the `Vec` it passes, so the steady state does not allocate for it.
#[derive(Debug)]
pub struct RingNode {
    cfg: NodeConfig,
    now: Tick,
    /// `Some` while this process serves as an acceptor.
    acceptor: Option<AcceptorState>,
    /// `Some` while this process believes it coordinates.
    coordinator: Option<Coordinator>,
    learner: Learner,
    proposer: Option<Proposer>,
    fd: FailureDetector,
    /// The ring of the highest round seen, for routing proposals along a U-Ring.
    ring_hint: Option<(Round, Ring)>,
    /// U-Ring proposals that passed by, until an instance names them.
    proposals: ProposalStore,
    /// The highest round seen anywhere; a new round starts above it.
    max_rnd_seen: Round,
    /// Messages to this process itself, handled before an input returns.
    local: VecDeque<Msg>,
    out: Vec<Action>,
    /// Scratch space for the coordinator's Phase 1A requests, reused.
    phase1_requests: Vec<(NodeId, Instance)>,
    /// Scratch space for the acceptors a learner may ask, rebuilt every tick without allocating.
    learner_acceptors: Vec<NodeId>,
    /// Scratch space for every process' version, ranked every tick for garbage collection.
    gc_versions: Vec<Instance>,
    /// Scratch space for the decisions one retransmission answers with (at most
    /// `retransmit_instances_max`): a learner that falls behind under load asks again and again, and
    /// answering must not allocate each time.
    retransmit_decisions: Vec<(Instance, Vid, Batch)>,
    next_heartbeat_at: Tick,
    next_retry_scan_at: Tick,
    last_flow_notice_at: Option<Tick>,
    /// Where the coordinator joins queued proposals into one instance's value; it outlives rounds.
    coordinator_arena: BatchArena,
    /// M-Ring: decisions of this step, waiting to ride on its next Phase 2A (see [`DecidedIds`]).
    decided_pending: DecidedIds,
    /// M-Ring: Phase 2Bs that reached this acceptor before the Phase 2A it votes on (see
    /// `on_phase2b`), passed on once it votes.
    phase2b_early: InstanceMap<(Round, Vid, Ring)>,
    /// Instances the application can take now (see [`RingNode::set_delivery_room`]).
    delivery_room: u64,
    /// With checkpoints: the learner's next instance at the last [`Action::Checkpoint`], and the
    /// version the application last said it stored (see [`RingNode::set_stable_version`]).
    checkpointed_at: Instance,
    stable_version: Instance,
    counters: Counters,
}

impl RingNode {
    pub fn new(cfg: NodeConfig, now: Tick, boot: Boot) -> Result<RingNode, ConfigError> {
        cfg.validate()?;
        let is_acceptor = cfg.cluster.is_acceptor(cfg.id);
        let mut acceptor = match boot {
            Boot::Fresh if is_acceptor => Some(AcceptorState::default()),
            Boot::Recovered(state) if is_acceptor => Some(state),
            _ => None,
        };
        if let Some(a) = acceptor.as_mut() {
            a.slots.reserve(acceptor_slots_reserved(&cfg));
        }
        let proposer = cfg.proposer.then(|| {
            let mut p = Proposer::new(
                cfg.id,
                cfg.incarnation,
                cfg.batch_bytes_max,
                cfg.proposer_pending_values_max,
                cfg.proposer_pending_bytes_max,
            );
            p.reserve_arena(cfg.arena_reserve_bytes);
            p
        });
        let proposals_max = cfg.proposals_in_flight_max();
        let mut coordinator_arena = BatchArena::new(COORDINATOR_ARENA_CHUNK_BYTES);
        if is_acceptor {
            coordinator_arena.reserve(cfg.arena_reserve_bytes);
        }
        let mut fd = FailureDetector::new(&cfg.cluster, cfg.suspect_timeout_us, now);
        fd.set_own(cfg.id, now, acceptor.is_some(), 0, 0);
        let max_rnd_seen = acceptor.as_ref().map_or(Round::ZERO, |a| a.rnd);
        let mut node = RingNode {
            learner: Learner::new(usize::from(cfg.id), now),
            fd,
            acceptor,
            coordinator: None,
            proposer,
            ring_hint: None,
            // Every proposer may have its whole pending allowance on the ring at once.
            proposals: ProposalStore::new(
                usize::from(cfg.cluster.nodes).saturating_mul(cfg.proposer_pending_bytes_max),
                if cfg.protocol == Protocol::URing { proposals_max } else { 0 },
            ),
            max_rnd_seen,
            local: VecDeque::with_capacity(ACTIONS_CAPACITY),
            out: Vec::with_capacity(ACTIONS_CAPACITY),
            phase1_requests: Vec::new(),
            // Sized once: the lists they hold never grow longer.
            learner_acceptors: Vec::with_capacity(cfg.cluster.acceptors.len()),
            gc_versions: Vec::with_capacity(usize::from(cfg.cluster.nodes)),
            // The default answer size is 64; a larger configured one grows this once, to its peak.
            retransmit_decisions: Vec::with_capacity(
                usize::try_from(cfg.retransmit_instances_max).unwrap_or(usize::MAX).min(1024),
            ),
            next_heartbeat_at: now,
            next_retry_scan_at: now,
            last_flow_notice_at: None,
            coordinator_arena,
            decided_pending: DecidedIds::NONE,
            phase2b_early: InstanceMap::new(),
            delivery_room: u64::MAX,
            checkpointed_at: 0,
            stable_version: 0,
            counters: Counters::default(),
            now,
            cfg,
        };
        node.out.push(Action::SetTimer { at: now });
        Ok(node)
    }

    pub fn id(&self) -> NodeId {
        self.cfg.id
    }

    pub fn config(&self) -> &NodeConfig {
        &self.cfg
    }

    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// The acceptor state, for stable storage (and the simulator's recoverable restarts).
    pub fn acceptor_state(&self) -> Option<&AcceptorState> {
        self.acceptor.as_ref()
    }

    /// The round this process coordinates, once its Phase 1 completed.
    pub fn coordinating(&self) -> Option<Round> {
        self.coordinator.as_ref().filter(|c| !c.in_phase1()).map(|c| c.c_rnd)
    }

    /// Whether this process runs a coordinator, in Phase 1 or after it: only then does it send Phase
    /// 2A (Phase 1 may already re-propose what it found) and, in M-Ring Paxos, multicast.
    pub fn has_coordinator(&self) -> bool {
        self.coordinator.is_some()
    }

    /// Instances open at this process' coordinator and values queued there (0, 0 when not coordinating).
    pub fn coordinator_load(&self) -> (usize, usize) {
        self.coordinator.as_ref().map_or((0, 0), |c| (c.open_instances(), c.queued_values()))
    }

    /// Every instance below this one is delivered.
    pub fn delivered_below(&self) -> Instance {
        self.learner.next_instance()
    }

    /// Starts the learner from `cp`, the checkpoint an earlier incarnation of this process emitted
    /// and its application stored with its state (`learner_checkpoint`). Only right after
    /// [`RingNode::new`], before any input.
    pub fn resume_learner(&mut self, cp: &LearnerCheckpoint) {
        self.learner.resume(cp);
        self.checkpointed_at = cp.next_instance;
        self.stable_version = cp.next_instance;
    }

    /// Installs `cp`, taken by a learner that is ahead, at this running process (state transfer,
    /// 3.3.7): the learner goes on from `cp.next_instance`, its proposer stops waiting for the
    /// values `cp` says were delivered, and decided instances from there on are delivered at once.
    /// The driver puts the application's state from the same snapshot in front of those deliveries.
    /// Returns false, changing nothing, when `cp` is not ahead of this learner.
    pub fn install_snapshot(&mut self, now: Tick, cp: &LearnerCheckpoint) -> bool {
        self.now = self.now.max(now);
        if !self.learner.install(self.now, cp) {
            return false;
        }
        if let Some(p) = self.proposer.as_mut() {
            p.on_installed(&cp.delivered);
        }
        self.checkpointed_at = cp.next_instance;
        self.stable_version = self.stable_version.max(cp.next_instance);
        self.counters.snapshots_installed += 1;
        self.deliver_ready();
        self.pump();
        true
    }

    /// Processes whose reported version is at least `min_version`, highest first: the learners a
    /// learner that needs state transfer may ask for a snapshot. Versions are the stored ones when
    /// learners checkpoint (`checkpoint_interval_instances`), and only a process that stored one
    /// has a snapshot to give.
    pub fn snapshot_donors(&self, min_version: Instance) -> Vec<NodeId> {
        let me = self.cfg.id;
        let mut donors: Vec<(Instance, NodeId)> = self
            .fd
            .applied_versions()
            .filter(|&(n, v)| n != me && v >= min_version && v > 0 && self.fd.alive(n, self.now))
            .map(|(n, v)| (v, n))
            .collect();
        donors.sort_unstable_by(|a, b| b.cmp(a));
        donors.into_iter().map(|(_, n)| n).collect()
    }

    /// The application stored its state and the checkpoint at `next_instance` (with
    /// `checkpoint_interval_instances`): the version this process reports for garbage collection.
    pub fn set_stable_version(&mut self, next_instance: Instance) {
        self.stable_version = self.stable_version.max(next_instance);
    }

    /// The version this process reports (3.3.7): what its application applied for good.
    fn version(&self) -> Instance {
        if self.cfg.checkpoint_interval_instances > 0 || self.cfg.application_versions {
            self.stable_version
        } else {
            self.learner.next_instance()
        }
    }

    /// The learner needs state transfer (every acceptor trimmed what it misses) and has not
    /// installed a snapshot since.
    pub fn needs_state_transfer(&self) -> bool {
        self.learner.is_stalled()
    }

    /// Values this process proposed that it has not seen delivered yet.
    pub fn pending_values(&self) -> usize {
        self.proposer.as_ref().map_or(0, Proposer::pending_values)
    }

    // ---------------------------------------------------------------------------------------------
    // Inputs
    // ---------------------------------------------------------------------------------------------

    /// A message from process `from`.
    pub fn on_message(&mut self, now: Tick, from: NodeId, msg: Msg) {
        self.now = self.now.max(now);
        if from == self.cfg.id || from >= self.cfg.cluster.nodes {
            self.counters.ignored_misrouted += 1;
            return;
        }
        if !self.is_well_formed(&msg) {
            self.counters.malformed_dropped += 1;
            return;
        }
        self.fd.heard_from(from, self.now);
        self.handle(from, msg);
        self.pump();
    }

    /// An application value. It is sent (batched with the others proposed before the next
    /// [`RingNode::drain_actions`]) to the coordinator and resent until this process delivers it.
    pub fn propose(&mut self, now: Tick, payload: &[u8]) -> Result<ValueId, Backpressure> {
        self.now = self.now.max(now);
        match self.proposer.as_mut() {
            Some(p) => p.propose(payload),
            None => Err(Backpressure { pending_values: 0, pending_bytes: 0 }),
        }
    }

    /// Time passed: heartbeats, failure suspicion, coordinator duties, retransmissions, gaps, garbage
    /// collection.
    pub fn on_tick(&mut self, now: Tick) {
        self.now = self.now.max(now);
        let now = self.now;
        if now >= self.next_heartbeat_at {
            self.next_heartbeat_at = now + self.cfg.heartbeat_interval_us;
            self.send_heartbeats();
        }
        let delivered = self.learner.next_instance();
        let version = self.version();
        self.fd.set_own(self.cfg.id, now, self.acceptor.is_some(), delivered, version);
        self.learner.saw_decided_below(self.fd.decided_below_max());

        self.coordinator_tick();
        self.learner_tick();
        self.garbage_collect();
        if now >= self.next_retry_scan_at {
            self.next_retry_scan_at =
                now + (self.cfg.proposal_retry_us / 4).max(self.cfg.tick_interval_us);
            self.resend_overdue_proposals();
            // By then their proposers have sent them again.
            let expired =
                self.proposals.expire(now, PROPOSAL_KEPT_RETRIES * self.cfg.proposal_retry_us);
            self.counters.proposals_expired += expired as u64;
        }
        self.out.push(Action::SetTimer { at: now + self.cfg.tick_interval_us });
        self.pump();
    }

    /// Moves every pending action into `out`, after sending what was proposed since the last drain and
    /// opening every instance the window allows.
    /// How many more [`Action::Deliver`]s the application can take (the free slots of its delivery
    /// queue); unlimited until first called. Decided instances beyond the room wait in the learner,
    /// where they count as backlog for flow control (3.3.6), so an application that falls behind
    /// slows the coordinator down instead of stopping its own process, which must go on voting,
    /// forwarding and sending heartbeats. A larger room delivers what was waiting.
    pub fn set_delivery_room(&mut self, now: Tick, instances: usize) {
        self.now = self.now.max(now);
        self.delivery_room = instances as u64;
        self.deliver_ready();
    }

    /// How many more instances the application can take before the next
    /// [`RingNode::set_delivery_room`]; 0 means decided instances may be waiting for room.
    pub fn delivery_room(&self) -> u64 {
        self.delivery_room
    }

    pub fn drain_actions(&mut self, out: &mut Vec<Action>) {
        self.flush();
        out.append(&mut self.out);
    }

    // ---------------------------------------------------------------------------------------------
    // Routing
    // ---------------------------------------------------------------------------------------------

    fn handle(&mut self, from: NodeId, msg: Msg) {
        match msg {
            Msg::Proposal { values, via_rnd, ttl } => self.on_proposal(values, via_rnd, ttl),
            Msg::Phase1A { c_rnd, from: from_instance, ring } => {
                self.on_phase1a(from, c_rnd, from_instance, ring)
            }
            Msg::Phase1B { rnd, from: piece_from, trimmed_below, votes_below, votes } => {
                let Some(c) = self.coordinator.as_mut().filter(|c| c.c_rnd == rnd) else {
                    return;
                };
                if !c.on_phase1b(from, piece_from, trimmed_below, votes_below, votes) {
                    self.counters.phase1b_ignored += 1;
                    return;
                }
                // What the piece made proposable is opened at the next drain, under the window; the
                // acceptor is asked for its next piece if the window is about to reach its end.
                self.send_phase1_requests();
            }
            Msg::Nack { rnd } => {
                self.note_round(rnd, None);
                if self.coordinator.as_ref().is_some_and(|c| c.c_rnd < rnd) {
                    // Our round is dead at some acceptor; if we still lead, start a higher one.
                    self.start_round();
                }
            }
            Msg::Phase2A { c_rnd, instance, c_vid, c_val, ring, decided } => {
                // Decisions of earlier instances first, as if their own messages had come before.
                for (instance, c_vid) in decided.iter() {
                    self.learn_decision(instance, c_vid, None);
                }
                self.on_phase2a(c_rnd, instance, c_vid, c_val, ring)
            }
            Msg::Phase2B { c_rnd, instance, c_vid, ring } => {
                self.on_phase2b(c_rnd, instance, c_vid, ring)
            }
            Msg::Decision { instance, c_vid, c_val, ring } => {
                let val = match &c_val {
                    Some(Carried::Value(batch)) => Some(batch.clone()),
                    Some(Carried::Proposal(id)) => self.proposals.take(id),
                    None => None,
                };
                let val = self.learn_decision(instance, c_vid, val);
                if let (Protocol::URing, Some((rnd, ring))) = (self.cfg.protocol, ring) {
                    self.note_round(rnd, Some(ring));
                    // Pass on the form it came in: a proposal id that this process could not
                    // resolve may still be resolved by the next.
                    let c_val = c_val.or(val.map(Carried::Value));
                    self.forward_decision(rnd, ring, instance, c_vid, c_val);
                }
            }
            Msg::Retransmit { from: first, to } => self.on_retransmit(from, first, to),
            Msg::Trimmed { trimmed_below } => self.learner.on_trimmed(from, trimmed_below),
            Msg::Heartbeat { acceptor_ready, decided_below, applied_below } => {
                self.fd.on_heartbeat(from, acceptor_ready, decided_below, applied_below);
                self.learner.saw_decided_below(decided_below);
            }
            Msg::FlowNotice { learner, backlog_instances } => {
                if let Some(c) = self.coordinator.as_mut() {
                    let pause_above = self.cfg.flow_backlog_instances_max.saturating_mul(2);
                    c.window.on_notice(self.now, backlog_instances, pause_above);
                } else if from == learner && self.acceptor.is_some() {
                    // 3.3.6: the acceptor passes the notice on to the coordinator (one hop only, so a
                    // stale view of who coordinates cannot make it circle).
                    if let Some(leader) = self.fd.leader(&self.cfg.cluster, self.now) {
                        self.send(leader, Msg::FlowNotice { learner, backlog_instances });
                    }
                }
            }
        }
    }

    /// What the codec cannot check because it needs the cluster: every ring a message carries has the
    /// shape its round's coordinator would give it (see [`is_laid_out`]), a refusal names a round some
    /// acceptor owns, and instances are real ones.
    fn is_well_formed(&self, msg: &Msg) -> bool {
        let fits = |rnd: &Round, ring: &Ring| {
            is_laid_out(self.cfg.protocol, &self.cfg.cluster, *rnd, ring)
        };
        // `Instance::MAX` means "everything" on the wire (votes_below, to); it is never an instance.
        let real = |instance: &Instance| *instance < Instance::MAX;
        match msg {
            Msg::Phase1A { c_rnd, ring, .. } => fits(c_rnd, ring),
            // Only an M-Ring coordinator puts decisions in its Phase 2A.
            Msg::Phase2A { c_rnd, ring, instance, decided, .. } => {
                fits(c_rnd, ring)
                    && real(instance)
                    && decided.iter().all(|(i, _)| real(&i))
                    && (self.cfg.protocol == Protocol::MRing || decided.is_empty())
            }
            Msg::Phase2B { c_rnd, ring, instance, .. } => fits(c_rnd, ring) && real(instance),
            Msg::Decision { instance, ring, .. } => {
                real(instance) && ring.as_ref().is_none_or(|(rnd, ring)| fits(rnd, ring))
            }
            // Only acceptors coordinate, so only they own rounds.
            Msg::Nack { rnd } => self.cfg.cluster.is_acceptor(rnd.owner()),
            // Proposals come from processes of the cluster: none may pass for a skip (`skip`). A
            // proposer's own batch is one run, checked by its first id.
            Msg::Proposal { values, .. } => {
                let ours = |id: ValueId| id.proposer < self.cfg.cluster.nodes;
                values.run_start().map_or_else(|| values.ids().all(ours), ours)
            }
            _ => true,
        }
    }

    fn send(&mut self, to: NodeId, msg: Msg) {
        if to == self.cfg.id {
            self.local.push_back(msg);
        } else {
            self.out.push(Action::Send { to, msg });
        }
    }

    /// ip-multicast to everyone else, and handle our own copy.
    fn multicast(&mut self, msg: Msg) {
        self.local.push_back(msg.clone());
        self.out.push(Action::Multicast { msg });
    }

    fn pump(&mut self) {
        while let Some(msg) = self.local.pop_front() {
            self.handle(self.cfg.id, msg);
        }
    }

    fn note_round(&mut self, rnd: Round, ring: Option<Ring>) {
        self.max_rnd_seen = self.max_rnd_seen.max(rnd);
        if let Some(ring) = ring
            && self.ring_hint.is_none_or(|(r, _)| r < rnd)
        {
            self.ring_hint = Some((rnd, ring));
        }
    }

    // ---------------------------------------------------------------------------------------------
    // Proposer side
    // ---------------------------------------------------------------------------------------------

    fn flush(&mut self) {
        while let Some(values) = self.proposer.as_mut().and_then(|p| p.take_unsent(self.now)) {
            self.send_own_proposal(values);
        }
        self.pump();
        self.open_instances();
        self.pump();
        // Decisions no Phase 2A of this step carried go out alone, now: none waits for a later one.
        while !self.decided_pending.is_empty() {
            self.multicast_pending_decisions();
            self.pump();
        }
    }

    /// M-Ring: multicasts each decision waiting in `decided_pending` on its own.
    fn multicast_pending_decisions(&mut self) {
        let pending = std::mem::take(&mut self.decided_pending);
        for (instance, c_vid) in pending.iter() {
            self.multicast(Msg::Decision { instance, c_vid, c_val: None, ring: None });
        }
    }

    fn resend_overdue_proposals(&mut self) {
        let Some(p) = self.proposer.as_mut() else { return };
        let mut overdue = Vec::new();
        p.take_overdue(self.now, self.cfg.proposal_retry_us, &mut overdue);
        for values in overdue {
            self.send_own_proposal(values);
        }
    }

    /// The ring a U-Ring proposal of this process travels: the ring of the highest round seen, if
    /// this process is on it and its coordinator is the one this process believes leads.
    fn dissemination_ring(&self) -> Option<(Round, Ring)> {
        if self.cfg.protocol != Protocol::URing {
            return None;
        }
        let leader = self.fd.leader(&self.cfg.cluster, self.now)?;
        let (rnd, ring) = self.ring_hint?;
        (ring.first() == leader && ring.len() > 1 && ring.contains(self.cfg.id))
            .then_some((rnd, ring))
    }

    /// A proposal of this process, new or resent. In U-Ring Paxos it sets off around the ring (Alg. 3
    /// Task 1, going on past the coordinator: module docs); otherwise, or when this process is not
    /// on the ring it knows, it goes to the coordinator.
    fn send_own_proposal(&mut self, values: Batch) {
        let Some((rnd, ring)) = self.dissemination_ring() else {
            self.route_proposal(values, None, PROPOSAL_TTL_HOPS);
            return;
        };
        self.keep_proposal(&values);
        self.coordinate_passing_proposal(&values, rnd);
        if let Some(next) = ring.successor(self.cfg.id) {
            self.send(next, Msg::Proposal { values, via_rnd: rnd, ttl: PROPOSAL_TTL_HOPS });
        }
    }

    /// A proposal travelling the ring of round `rnd` passes this process: queue it if this process
    /// coordinates. Only a proposal on this coordinator's own ring goes on to every acceptor ahead of
    /// Phase 2A, so only such a one is named rather than carried — and only while the acceptors
    /// surely keep it (half their [`ProposalStore`] expiry).
    fn coordinate_passing_proposal(&mut self, values: &Batch, rnd: Round) {
        let Some(c) = self.coordinator.as_mut() else { return };
        let name_until = (c.c_rnd == rnd).then_some(self.now + self.cfg.proposal_retry_us);
        let dropped = c.enqueue(values.clone(), name_until, self.cfg.coordinator_queue_bytes_max);
        self.counters.proposals_dropped += dropped as u64;
    }

    fn keep_proposal(&mut self, values: &Batch) {
        if !self.proposals.insert(values, self.now) {
            self.counters.proposals_not_kept += 1;
        }
    }

    /// The next hop of a proposal towards the coordinator, with the round of the ring it then travels
    /// (`Round::ZERO`: straight to the coordinator). In U-Ring Paxos a proposal goes along the ring
    /// (Alg. 3 Task 1) while every process it passes sees the same ring as the one it came along
    /// (`via_rnd`; `None` for this process' own proposals): forwarded along one ring it ends at that
    /// ring's first member. Where views differ, and always in M-Ring Paxos, it goes straight to the
    /// coordinator and stays direct, so no two processes can pass it back and forth.
    fn next_hop_to_coordinator(&self, via_rnd: Option<Round>) -> Option<(NodeId, Round)> {
        let leader = self.fd.leader(&self.cfg.cluster, self.now)?;
        if self.cfg.protocol == Protocol::URing
            && leader != self.cfg.id
            && let Some((rnd, ring)) = self.ring_hint
            && via_rnd.is_none_or(|via| via == rnd)
            && ring.first() == leader
            && let Some(next) = ring.successor(self.cfg.id)
        {
            return Some((next, rnd));
        }
        Some((leader, Round::ZERO))
    }

    fn route_proposal(&mut self, values: Batch, via_rnd: Option<Round>, ttl: u8) {
        match self.next_hop_to_coordinator(via_rnd) {
            Some((to, via_rnd)) if to != self.cfg.id || self.coordinator.is_some() => {
                self.send(to, Msg::Proposal { values, via_rnd, ttl })
            }
            // No coordinator known, or this process leads without coordinating yet: the proposer
            // sends the values again after `proposal_retry_us`.
            _ => self.counters.proposals_dropped += values.len() as u64,
        }
    }

    fn on_proposal(&mut self, values: Batch, via_rnd: Round, ttl: u8) {
        let on_its_ring = self.cfg.protocol == Protocol::URing
            && via_rnd != Round::ZERO
            && self
                .ring_hint
                .is_some_and(|(rnd, ring)| rnd == via_rnd && ring.contains(self.cfg.id));
        if let (true, Some((_, ring))) = (on_its_ring, self.ring_hint) {
            // Travelling the ring we know: keep it, order it if we coordinate that ring, and pass it
            // on unless the next process is the one it started from.
            self.keep_proposal(&values);
            self.coordinate_passing_proposal(&values, via_rnd);
            let proposer = values.proposal_id().map(|id| id.first.proposer);
            match ring.successor(self.cfg.id) {
                Some(next) if Some(next) != proposer && ttl > 0 => {
                    self.send(next, Msg::Proposal { values, via_rnd, ttl: ttl - 1 })
                }
                Some(next) if Some(next) != proposer => {
                    self.counters.proposals_dropped += values.len() as u64
                }
                _ => {}
            }
            return;
        }
        if let Some(c) = self.coordinator.as_mut() {
            let dropped = c.enqueue(values, None, self.cfg.coordinator_queue_bytes_max);
            self.counters.proposals_dropped += dropped as u64;
        } else if ttl > 0 {
            self.route_proposal(values, Some(via_rnd), ttl - 1);
        } else {
            self.counters.proposals_dropped += values.len() as u64;
        }
    }

    // ---------------------------------------------------------------------------------------------
    // Coordinator side
    // ---------------------------------------------------------------------------------------------

    fn coordinator_tick(&mut self) {
        let now = self.now;
        let leads =
            self.acceptor.is_some() && self.fd.leader(&self.cfg.cluster, now) == Some(self.cfg.id);
        if !leads {
            // Someone preferred is alive: step down. Queued values are lost here; their proposers
            // resend them to the new coordinator.
            self.coordinator = None;
            return;
        }
        let Some(c) = self.coordinator.as_ref() else {
            self.start_round();
            return;
        };
        if !self.ring_is_healthy(&c.ring) {
            self.start_round();
            return;
        }
        let Some(c) = self.coordinator.as_mut() else { return };
        c.window.on_tick(now);
        c.skip_tick(now);
        self.send_phase1_requests();
        let retry_us = self.cfg.phase_retry_us;
        let Some(c) = self.coordinator.as_mut() else { return };
        let mut overdue = Vec::new();
        let retries = c.overdue(now, retry_us, &mut overdue);
        if retries > self.cfg.phase2_retries_before_new_round {
            // Retransmission alone does not get this round through (a lost promise, a one-way link):
            // a new round with a fresh ring does.
            self.start_round();
            return;
        }
        self.counters.phase2_retransmissions += overdue.len() as u64;
        for p in overdue {
            self.send_phase2a(p);
        }
    }

    /// A ring stays while every member is alive (acceptors also serving) and, in U-Ring Paxos, while
    /// no process that came back has been waiting long enough to be taken in.
    fn ring_is_healthy(&self, ring: &Ring) -> bool {
        let now = self.now;
        let me = self.cfg.id;
        let members_ok = ring.members().iter().enumerate().all(|(pos, &n)| {
            n == me
                || (self.fd.alive(n, now)
                    && (pos > self.cfg.cluster.f || self.fd.acceptor_ready(n)))
        });
        if !members_ok {
            return false;
        }
        if self.cfg.protocol == Protocol::URing {
            let delay = self.cfg.ring_rejoin_delay_us;
            let waiting = (0..self.cfg.cluster.nodes)
                .any(|n| !ring.contains(n) && self.fd.alive_for(n, now, delay));
            return !waiting;
        }
        true
    }

    /// Becomes coordinator of a new round: lays out a ring from the processes not suspected, and runs
    /// Phase 1 for every instance from the first one this process has not delivered.
    fn start_round(&mut self) {
        let now = self.now;
        let me = self.cfg.id;
        let leads = self.acceptor.is_some() && self.fd.leader(&self.cfg.cluster, now) == Some(me);
        if !leads {
            self.coordinator = None;
            return;
        }
        let fd = &self.fd;
        let ring = lay_out(
            self.cfg.protocol,
            &self.cfg.cluster,
            me,
            |a| fd.alive(a, now) && fd.acceptor_ready(a),
            |n| n == me || fd.alive(n, now),
        );
        let Some(ring) = ring else {
            // Not enough acceptors to form a quorum; try again at the next tick.
            self.coordinator = None;
            return;
        };
        let above =
            self.max_rnd_seen.max(self.coordinator.as_ref().map_or(Round::ZERO, |c| c.c_rnd));
        let Some(c_rnd) = Round::next_owned(above, me) else {
            // Some message carried the last round there is: no higher one can be started.
            self.coordinator = None;
            self.counters.rounds_exhausted += 1;
            return;
        };
        self.max_rnd_seen = c_rnd;
        let from = self.learner.next_instance();
        let window = FlowWindow::new(
            self.cfg.window_instances,
            self.cfg.window_instances_min,
            self.cfg.phase_retry_us,
            now,
        );
        let phase1 = (&self.cfg.cluster, self.cfg.value_choice);
        let mut c = Coordinator::new(c_rnd, ring, from, phase1, now, window);
        c.bound_queue(self.cfg.proposals_in_flight_max());
        if self.cfg.skip_lambda_instances > 0 {
            // From the logical position of the first instance it did not deliver (`skip`).
            let (lambda, interval_us) = (self.cfg.skip_lambda_instances, self.cfg.skip_interval_us);
            let offset_us = self.cfg.skip_clock_offset_us;
            let logical = self.learner.logical_next_instance();
            c.set_skip_clock(SkipClock::new(lambda, interval_us, offset_us, logical));
        }
        if let Some(old) = self.coordinator.take() {
            c.inherit(old);
        }
        self.coordinator = Some(c);
        self.counters.rounds_started += 1;
        self.note_round(c_rnd, Some(ring));
        self.send_to_acceptors(Msg::Phase1A { c_rnd, from, ring });
    }

    /// Phase 1A to the acceptors whose promise is overdue or whose next piece of votes is needed.
    fn send_phase1_requests(&mut self) {
        let Some(c) = self.coordinator.as_mut() else { return };
        let (c_rnd, ring) = (c.c_rnd, c.ring);
        let mut requests = std::mem::take(&mut self.phase1_requests);
        c.phase1_requests(self.now, self.cfg.phase_retry_us, &mut requests);
        for (acceptor, from) in requests.drain(..) {
            self.send(acceptor, Msg::Phase1A { c_rnd, from, ring });
        }
        self.phase1_requests = requests;
    }

    fn send_to_acceptors(&mut self, msg: Msg) {
        for i in 0..self.cfg.cluster.acceptors.len() {
            let a = self.cfg.cluster.acceptors[i];
            self.send(a, msg.clone());
        }
    }

    fn open_instances(&mut self) {
        loop {
            let (batch_bytes_max, window_bytes) = (self.cfg.batch_bytes_max, self.cfg.window_bytes);
            let Some(c) = self.coordinator.as_mut() else { return };
            let arena = &mut self.coordinator_arena;
            let Some(p) = c.next_proposal(self.now, batch_bytes_max, window_bytes, arena) else {
                return;
            };
            if p.c_val.skip_target().is_some() {
                self.counters.skip_instances_opened += 1;
            }
            self.send_phase2a(p);
            self.pump();
        }
    }

    /// Phase 2A (Alg. 2/3 Task 3): multicast in M-Ring Paxos; in U-Ring Paxos our own acceptor votes
    /// first and passes it on.
    fn send_phase2a(&mut self, p: Proposal2A) {
        let Some(c) = self.coordinator.as_ref() else { return };
        let decided = match self.cfg.protocol {
            Protocol::MRing => std::mem::take(&mut self.decided_pending),
            Protocol::URing => DecidedIds::NONE,
        };
        let msg = Msg::Phase2A {
            c_rnd: c.c_rnd,
            instance: p.instance,
            c_vid: p.c_vid,
            c_val: p.carried(),
            ring: c.ring,
            decided,
        };
        match self.cfg.protocol {
            Protocol::MRing => self.multicast(msg),
            Protocol::URing => self.local.push_back(msg),
        }
    }

    // ---------------------------------------------------------------------------------------------
    // Acceptor side
    // ---------------------------------------------------------------------------------------------

    fn on_phase1a(&mut self, from: NodeId, c_rnd: Round, from_instance: Instance, ring: Ring) {
        self.note_round(c_rnd, Some(ring));
        let Some(a) = self.acceptor.as_mut() else {
            self.counters.ignored_misrouted += 1;
            return;
        };
        let promised_before = a.rnd;
        match a.on_phase1a(c_rnd) {
            Verdict::Accepted => {
                if self.cfg.stable_storage && c_rnd > promised_before {
                    self.out.push(Action::Persist(Durable::Promise { rnd: c_rnd }));
                }
                let (votes, votes_below) =
                    a.votes_from(from_instance.max(a.trimmed_below), self.cfg.phase1b_bytes_max);
                let msg = Msg::Phase1B {
                    rnd: c_rnd,
                    from: from_instance,
                    trimmed_below: a.trimmed_below,
                    votes_below,
                    votes,
                };
                self.send(from, msg);
            }
            Verdict::Refused { rnd } => {
                self.counters.refused_stale_round += 1;
                self.send(from, Msg::Nack { rnd });
            }
            Verdict::Trimmed => {}
        }
    }

    fn on_phase2a(
        &mut self,
        c_rnd: Round,
        instance: Instance,
        c_vid: Vid,
        c_val: Carried,
        ring: Ring,
    ) {
        self.note_round(c_rnd, Some(ring));
        let me = self.cfg.id;
        let f = self.cfg.cluster.f;
        let position = ring.position(me);
        if self.cfg.protocol == Protocol::URing && position.is_none_or(|p| p > f) {
            // Only the coordinator and the f acceptors after it see a U-Ring Phase 2A/2B.
            self.counters.ignored_misrouted += 1;
            return;
        }
        let val = match &c_val {
            Carried::Value(batch) => Some(batch.clone()),
            // The proposal went ahead of this message; a duplicate of the message finds it where
            // the first copy left it.
            Carried::Proposal(id) => self
                .proposals
                .take(id)
                .or_else(|| self.coordinator.as_ref().and_then(|c| c.open_value(instance, c_vid)))
                .or_else(|| self.learner.proposed_value(instance, c_vid))
                .or_else(|| self.acceptor.as_ref().and_then(|a| a.value_of(instance, c_vid))),
        };
        let Some(val) = val else {
            // Voting for a value this acceptor could not report in Phase 1B would be unsafe; the
            // coordinator resends Phase 2A with the value.
            self.counters.phase2a_value_missing += 1;
            return;
        };
        if self.learner.on_proposed(c_rnd, instance, c_vid, &val) {
            self.deliver_ready();
        }
        let Some(a) = self.acceptor.as_mut() else {
            if self.cfg.protocol == Protocol::URing {
                self.counters.ignored_misrouted += 1;
            }
            return;
        };
        // A repeated Phase 2A (its first Phase 2B was lost) finds the vote already recorded.
        let recorded = a.voted(c_rnd, instance, c_vid);
        match a.on_phase2a(c_rnd, instance, c_vid, &val) {
            Verdict::Accepted if self.cfg.stable_storage && !recorded => {
                let vote =
                    Durable::Vote { instance, v_rnd: c_rnd, v_vid: c_vid, v_val: val.clone() };
                self.out.push(Action::Persist(vote));
            }
            Verdict::Accepted => {}
            Verdict::Refused { rnd } => {
                self.counters.refused_stale_round += 1;
                self.send(c_rnd.owner(), Msg::Nack { rnd });
                return;
            }
            Verdict::Trimmed => return,
        }
        match (self.cfg.protocol, position) {
            // M-Ring: the first acceptor of the ring starts Phase 2B (Alg. 2 Task 4).
            (Protocol::MRing, Some(0)) => {
                if let Some(next) = ring.successor(me) {
                    self.send(next, Msg::Phase2B { c_rnd, instance, c_vid, ring });
                }
            }
            // ... the others pass on a Phase 2B that came before this vote.
            (Protocol::MRing, _) => {
                if let Some((rnd, vid, early_ring)) = self.phase2b_early.remove(instance)
                    && (rnd, vid) == (c_rnd, c_vid)
                {
                    self.on_phase2b(rnd, instance, vid, early_ring);
                }
            }
            // U-Ring: the last acceptor decides (Alg. 3 Task 4) ...
            (Protocol::URing, Some(p)) if p == f => {
                self.learn_decision(instance, c_vid, Some(val));
                self.forward_decision(c_rnd, ring, instance, c_vid, Some(c_val));
            }
            // ... the others pass Phase 2A/2B on.
            (Protocol::URing, _) => {
                if let Some(next) = ring.successor(me) {
                    let decided = DecidedIds::NONE;
                    self.send(next, Msg::Phase2A { c_rnd, instance, c_vid, c_val, ring, decided });
                }
            }
        }
    }

    /// M-Ring Phase 2B (Alg. 2 Task 5): pass it on only if we voted for `c_vid` in `c_rnd`; the
    /// coordinator, last on the ring, decides and multicasts the decision.
    fn on_phase2b(&mut self, c_rnd: Round, instance: Instance, c_vid: Vid, ring: Ring) {
        self.note_round(c_rnd, Some(ring));
        let me = self.cfg.id;
        let voted = self.acceptor.as_ref().is_some_and(|a| a.voted(c_rnd, instance, c_vid));
        if self.cfg.protocol != Protocol::MRing || !ring.contains(me) {
            self.counters.ignored_misrouted += 1;
            return;
        }
        if !voted {
            // The Phase 2B of the acceptor before us on the ring came over TCP ahead of the
            // coordinator's multicast Phase 2A, which is usual with two or more acceptors before
            // the coordinator (f >= 2): the vote follows in a moment. Dropping the Phase 2B would
            // stall the instance until the coordinator's retry (`phase_retry_us`); it waits here
            // instead, one per instance, and only within the window of open instances.
            self.counters.phase2b_without_vote += 1;
            let window_end =
                self.learner.next_instance() + 4 * u64::from(self.cfg.window_instances);
            if self.acceptor.is_some() && instance < window_end {
                self.phase2b_early.insert(instance, (c_rnd, c_vid, ring));
            }
            return;
        }
        if ring.last() == me {
            // Decided: the decision leaves with this step's next Phase 2A, or alone at its end.
            if self.decided_pending.is_full() {
                self.multicast_pending_decisions();
            }
            self.decided_pending.push(instance, c_vid);
        } else if let Some(next) = ring.successor(me) {
            self.send(next, Msg::Phase2B { c_rnd, instance, c_vid, ring });
        }
    }

    /// 3.3.4: a learner asks for instances `first..to`.
    fn on_retransmit(&mut self, learner: NodeId, first: Instance, to: Instance) {
        let Some(a) = self.acceptor.as_ref() else {
            self.counters.ignored_misrouted += 1;
            return;
        };
        let trimmed_below = a.trimmed_below;
        let lacks_first = a.decision(first).is_none();
        let to = to.min(first.saturating_add(self.cfg.retransmit_instances_max));
        let mut decisions = std::mem::take(&mut self.retransmit_decisions);
        decisions.clear();
        decisions.extend((first..to).filter_map(|i| a.decision(i).map(|(vid, val)| (i, vid, val))));
        if first < trimmed_below || lacks_first {
            // Either way the learner cannot get `first` here; it tells the two apart by comparing
            // `trimmed_below` with `first`.
            self.send(learner, Msg::Trimmed { trimmed_below });
            if first < trimmed_below {
                decisions.clear();
                self.retransmit_decisions = decisions;
                return;
            }
        }
        self.counters.retransmissions_answered += 1;
        for (instance, c_vid, val) in decisions.drain(..) {
            let c_val = Some(Carried::Value(val));
            self.send(learner, Msg::Decision { instance, c_vid, c_val, ring: None });
        }
        self.retransmit_decisions = decisions;
    }

    /// 3.3.7: trim below the version f+1 processes have reached, but keep what the slowest process
    /// still needs, up to a retention margin below that version: `gc_retain_instances` instances
    /// and `gc_retain_bytes` bytes of values, whichever is less.
    ///
    /// The thesis may discard as soon as f+1 learners applied a decision, and brings the others up
    /// to date from a learner. Keeping the margin lets a lagging learner catch up from the
    /// acceptors instead; keeping no more than the slowest process needs when every process keeps
    /// up keeps the memory batches cycle through small, and so warm in the caches: trimming at the
    /// slowest version instead of always a full margin below the quorum's delivered 17% more on
    /// U-Ring (`bench/RESULTS.md`, eighth session). A process never heard from counts as version
    /// 0, so until every process reported, the margin alone decides.
    fn garbage_collect(&mut self) {
        // Early Phase 2Bs of instances decided meanwhile (their Phase 2A never came here).
        self.phase2b_early.remove_below(self.learner.next_instance());
        let Some(a) = self.acceptor.as_mut() else { return };
        let versions = &mut self.gc_versions;
        versions.clear();
        versions.extend(self.fd.applied_versions().map(|(_, v)| v));
        let slowest = versions.iter().copied().min().unwrap_or(0);
        // The (f+1)-th highest version, ranked in place.
        let f = self.cfg.cluster.f;
        if f >= versions.len() {
            return;
        }
        let (_, &mut reached_by_quorum, _) = versions.select_nth_unstable_by(f, |x, y| y.cmp(x));
        // `slowest` is at most the quorum's version: no process loses what it has not applied.
        let below = reached_by_quorum.saturating_sub(self.cfg.gc_retain_instances).max(slowest);
        let trimmed_before = a.trimmed_below;
        a.trim(below);
        // Then by memory: what is kept for laggards may not exceed `gc_retain_bytes` either.
        let below = a.trim_to_bytes(self.cfg.gc_retain_bytes, reached_by_quorum);
        if self.cfg.stable_storage && below > trimmed_before {
            self.out.push(Action::Persist(Durable::Trimmed { below }));
        }
    }

    // ---------------------------------------------------------------------------------------------
    // Learner side
    // ---------------------------------------------------------------------------------------------

    /// Records a decision everywhere it matters on this process and delivers what is ready. Returns the
    /// decided value if this process holds it.
    fn learn_decision(
        &mut self,
        instance: Instance,
        c_vid: Vid,
        c_val: Option<Batch>,
    ) -> Option<Batch> {
        let val = c_val
            .or_else(|| self.learner.proposed_value(instance, c_vid))
            .or_else(|| self.acceptor.as_ref().and_then(|a| a.value_of(instance, c_vid)));
        if let (Some(a), Some(v)) = (self.acceptor.as_mut(), val.as_ref()) {
            // The first time the value this acceptor voted for is known decided, the log says so
            // too (see `Durable::Decided`).
            let first_of_own_vote = matches!(
                a.slots.get(instance),
                Some(Slot { vote: Some((_, vid, _)), decided: None }) if *vid == c_vid
            );
            a.on_decision(instance, c_vid, v);
            if self.cfg.stable_storage && first_of_own_vote {
                self.out.push(Action::Persist(Durable::Decided { instance, vid: c_vid }));
            }
        }
        if let Some(c) = self.coordinator.as_mut() {
            c.on_decided(instance);
        }
        self.learner.on_decision(instance, c_vid, val.clone());
        self.deliver_ready();
        val
    }

    /// U-Ring decision forwarding (Alg. 3 Task 5): the value (or the proposal id that names it) travels
    /// with the decision to the processes after the last acceptor, which have not seen Phase 2A; the
    /// value id alone goes on to the coordinator and the acceptors, which voted for it; forwarding
    /// ends at the predecessor of the last acceptor.
    fn forward_decision(
        &mut self,
        rnd: Round,
        ring: Ring,
        instance: Instance,
        c_vid: Vid,
        val: Option<Carried>,
    ) {
        let me = self.cfg.id;
        let f = self.cfg.cluster.f;
        let Some(last_acceptor) = ring.members().get(f).copied() else { return };
        if ring.predecessor(last_acceptor) == Some(me) || !ring.contains(me) {
            return;
        }
        let Some(next) = ring.successor(me) else { return };
        let needs_value = ring.position(next).is_some_and(|p| p > f);
        let c_val = if needs_value { val } else { None };
        self.send(next, Msg::Decision { instance, c_vid, c_val, ring: Some((rnd, ring)) });
    }

    fn deliver_ready(&mut self) {
        let deliver_to_app = self.cfg.learner;
        let out = &mut self.out;
        let proposer = &mut self.proposer;
        let me = self.cfg.id;
        let interval = self.cfg.checkpoint_interval_instances;
        // With checkpoints, one slot of the application's room stays free for the next one.
        let reserved = u64::from(interval > 0);
        let room =
            if deliver_to_app { self.delivery_room.saturating_sub(reserved) } else { u64::MAX };
        let delivered = self.learner.deliver_ready(self.now, room, |instance, values| {
            if let Some(p) = proposer.as_mut() {
                match values.run_start() {
                    Some(first) => p.on_delivered_run(first, values.len() as u32),
                    None => values
                        .ids()
                        .filter(|id| id.proposer == me)
                        .for_each(|id| p.on_delivered(id)),
                }
            }
            if deliver_to_app {
                out.push(Action::Deliver { instance, values });
            }
        });
        self.counters.instances_delivered += delivered;
        self.counters.positions_skipped =
            self.learner.logical_next_instance() - self.learner.next_instance();
        if deliver_to_app {
            self.delivery_room -= delivered;
        }
        let next = self.learner.next_instance();
        let due = interval > 0 && next >= self.checkpointed_at.saturating_add(interval);
        if deliver_to_app && due && self.delivery_room > 0 {
            self.checkpointed_at = next;
            self.delivery_room -= 1;
            self.out.push(Action::Checkpoint(Box::new(self.learner.checkpoint())));
        }
    }

    fn learner_tick(&mut self) {
        // Ask acceptors that are alive and serving (an acceptor that restarted without its state
        // answers nobody); if none seems to be, ask them all in turn.
        let (now, me) = (self.now, self.cfg.id);
        // The scratch list is taken out of `self` for the tick (so sending can borrow `self`) and put
        // back at the end: neither step allocates.
        let mut acceptors = std::mem::take(&mut self.learner_acceptors);
        acceptors.clear();
        let others = self.cfg.cluster.acceptors.iter().copied().filter(|&a| a != me);
        acceptors
            .extend(others.clone().filter(|&a| self.fd.alive(a, now) && self.fd.acceptor_ready(a)));
        if acceptors.is_empty() {
            acceptors.extend(others);
        }
        let request = self.learner.on_tick(
            self.now,
            self.cfg.gap_timeout_us,
            self.cfg.retransmit_instances_max,
            &acceptors,
        );
        match request {
            Some(LearnerRequest::Retransmit { from, to, preferential }) => {
                let target = acceptors[preferential % acceptors.len()];
                self.send(target, Msg::Retransmit { from, to });
            }
            Some(LearnerRequest::NeedsStateTransfer { next_instance, trimmed_below }) => {
                self.out.push(Action::NeedsStateTransfer { next_instance, trimmed_below });
            }
            None => {}
        }
        // Flow control (3.3.6): a learner holding too many decisions it cannot deliver yet tells an
        // acceptor, at most once per heartbeat interval.
        let backlog = self.learner.backlog_instances();
        let quiet =
            self.last_flow_notice_at.is_none_or(|t| self.now >= t + self.cfg.heartbeat_interval_us);
        if backlog > self.cfg.flow_backlog_instances_max as usize && quiet {
            self.last_flow_notice_at = Some(self.now);
            self.counters.flow_notices_sent += 1;
            let target = acceptors[usize::from(self.cfg.id) % acceptors.len()];
            let backlog_instances = u32::try_from(backlog).unwrap_or(u32::MAX);
            self.send(target, Msg::FlowNotice { learner: self.cfg.id, backlog_instances });
        }
        self.learner_acceptors = acceptors;
    }

    fn send_heartbeats(&mut self) {
        let msg = Msg::Heartbeat {
            acceptor_ready: self.acceptor.is_some(),
            decided_below: self.learner.next_instance(),
            applied_below: self.version(),
        };
        for n in 0..self.cfg.cluster.nodes {
            if n != self.cfg.id {
                self.out.push(Action::Send { to: n, msg: msg.clone() });
            }
        }
    }
}
