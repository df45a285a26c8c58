//! One deterministic simulated run: the real [`RingNode`] cores of every process on virtual time, over
//! the faulty network of [`super::network`], with the crashes and partitions of a [`FaultPlan`].
//!
//! ```text
//!   fault phase (0 .. fault_phase_us)         heal phase (.. + heal_bound_us)
//!   proposals, loss, duplicates, reordering,  everyone restarted, no loss; every value of a
//!   partitions, crashes and restarts          correct proposer must reach every correct learner
//! ```
//!
//! Every message is encoded by `wire` when sent and decoded when it arrives, so the codec is exercised
//! by every run. Everything random comes from the seed: `RINGSMR_SEED=<n>` replays a run exactly.
//!
//! State transfer (thesis 3.3.7): a learner that every acceptor turned away, because they trimmed
//! what it misses, is brought up to date by a learner with a sufficiently recent version. The
//! simulated application fetches, after a transfer delay, the checkpoint a donor named by the core
//! stored with its state, installs both, and keeps them as its own; a learner no donor can serve yet
//! asks again later. Only stored checkpoints are snapshots: a donor's live learner may be ahead of
//! what its application applied (deliveries wait behind unsynced records), so it has no consistent
//! state to give. The deliveries before an install stay in the history as a finished log, and the
//! learner goes on in a new log that starts with the donor's state, so both are checked.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::panic::{self, AssertUnwindSafe};

use bytes::Bytes;

use crate::proto::{
    Action, Boot, ClusterConfig, Instance, LearnerCheckpoint, NodeConfig, NodeId, RingNode, Tick,
    ValueId,
};
use crate::wire;

use super::config::SimConfig;
use super::disk::Disk;
use super::faults::{FaultPlan, NetworkFaults};
use super::invariants::{self, History, LearnerLog, Violation};
use super::network;
use super::rng::Rng;

/// How long fetching a snapshot from a donor takes, at least and at most: a round trip and the copy
/// of a checkpoint with the application's state, from a small state on a LAN to a larger one.
const STATE_TRANSFER_US_MIN: Tick = 300;
const STATE_TRANSFER_US_MAX: Tick = 3_000;
/// How long a learner that found no donor waits before asking again (no learner may have stored a
/// recent enough checkpoint yet, or none that has is up; with checkpoints off none ever will).
const STATE_TRANSFER_RETRY_US: Tick = 5_000;

/// What a run did and what the checkers found.
#[derive(Debug)]
pub struct SimReport {
    pub config: SimConfig,
    pub plan: FaultPlan,
    pub violations: Vec<Violation>,
    /// Virtual time when the run ended.
    pub end_us: Tick,
    pub messages_sent: u64,
    pub messages_lost: u64,
    pub values_proposed: usize,
    pub values_must_deliver: usize,
    /// The most instances any learner delivered.
    pub instances_delivered_max: u64,
    pub rounds_started: u64,
    pub learners_needing_state_transfer: usize,
    /// Phase 1B messages that held only a piece of the acceptor's log (Phase 1 in pieces).
    pub phase1b_pieces_sent: u64,
    /// Restarts whose learner went on from a stored checkpoint.
    pub learners_resumed: u64,
    /// Snapshots a learner needing state transfer installed from a donor (3.3.7).
    pub snapshots_installed: u64,
    /// The state of every process at the end, for diagnosing a failed seed.
    pub processes: Vec<ProcessSummary>,
}

/// One process at the end of a run.
#[derive(Debug)]
pub struct ProcessSummary {
    pub node: NodeId,
    pub incarnation: u32,
    pub up: bool,
    pub delivered_below: u64,
    pub pending_values: usize,
    pub coordinating: Option<crate::proto::Round>,
    /// Open instances and queued values at this process' coordinator.
    pub coordinator_load: (usize, usize),
    pub counters: crate::proto::Counters,
}

impl SimReport {
    pub fn passed(&self) -> bool {
        self.violations.is_empty()
    }

    /// A one-line summary naming the seed, and how to replay it.
    pub fn summary(&self) -> String {
        let c = &self.config;
        format!(
            "seed {} {:?} n={} f={} {}: {} — {} instances, {} values ({} required), {} rounds, {} msgs ({} lost), end {} ms",
            c.seed,
            c.protocol,
            c.nodes,
            c.f,
            if c.recoverable { "recoverable" } else { "in-memory" },
            if self.passed() {
                "ok".to_string()
            } else {
                format!("{} VIOLATIONS", self.violations.len())
            },
            self.instances_delivered_max,
            self.values_proposed,
            self.values_must_deliver,
            self.rounds_started,
            self.messages_sent,
            self.messages_lost,
            self.end_us / 1_000,
        )
    }
}

/// What one [`Simulation::step`] did.
enum Step {
    Handled,
    /// No event is due yet.
    Idle,
    /// The run was stopped (a message storm).
    Stopped,
}

#[derive(Debug)]
enum Event {
    Message {
        to: NodeId,
        from: NodeId,
        frame: Bytes,
    },
    Timer {
        node: NodeId,
        generation: u64,
    },
    Propose {
        node: NodeId,
    },
    /// The sync of `epoch` on `node`'s disk completes.
    SyncDone {
        node: NodeId,
        epoch: u64,
    },
    /// `node`'s application has fetched a donor's snapshot, if one had a recent enough one
    /// (state transfer, 3.3.7); only for the incarnation that asked.
    StateTransfer {
        node: NodeId,
        incarnation: u32,
    },
    Crash {
        node: NodeId,
    },
    Restart {
        node: NodeId,
    },
    Heal,
}

/// What a simulated application applied: the deliveries of its learner, in order.
type Applied = Vec<(Instance, ValueId, Bytes)>;

struct SimNode {
    core: Option<RingNode>,
    incarnation: u32,
    timer_generation: u64,
    /// Index of this incarnation's log in the history.
    log: usize,
    /// The process' stable storage (used in recoverable runs); it outlives incarnations.
    disk: Disk,
    /// The last learner checkpoint its application stored, with what the application had applied
    /// then (the deliveries of its log up to that point); it outlives incarnations.
    checkpoint: Option<(LearnerCheckpoint, Applied)>,
    /// Values this incarnation proposed.
    proposed: Vec<ValueId>,
    rounds_started_before: u64,
    /// The learner asked for state transfer and has not installed a snapshot yet: the trim point a
    /// snapshot must reach. A [`Event::StateTransfer`] is scheduled while this is set.
    state_transfer_wanted: Option<Instance>,
}

/// The simulation of one seed.
pub struct Simulation {
    cfg: SimConfig,
    plan: FaultPlan,
    cluster: ClusterConfig,
    now: Tick,
    queue: BinaryHeap<Reverse<(Tick, u64, usize)>>,
    events: HashMap<usize, Event>,
    next_event: usize,
    nodes: Vec<SimNode>,
    network: NetworkFaults,
    healed: bool,
    net_rng: Rng,
    work_rng: Rng,
    /// Disk latencies and how much of a sync in flight a crash leaves.
    disk_rng: Rng,
    /// How long state transfers take.
    transfer_rng: Rng,
    history: History,
    actions: Vec<Action>,
    /// Actions a completed sync released (reused).
    released: Vec<Action>,
    arrivals: Vec<Tick>,
    frame: Vec<u8>,
    messages_sent: u64,
    messages_lost: u64,
    /// Messages sent, per wire kind byte.
    messages_by_kind: [u64; 256],
    /// Phase 1B messages sent with `votes_below` short of the whole log.
    phase1b_pieces_sent: u64,
    learners_resumed: u64,
    snapshots_installed: u64,
    /// The run hit `in_flight_events_max` or `messages_max`.
    storm: bool,
    proposals_left: u64,
}

impl Simulation {
    pub fn new(cfg: SimConfig) -> Simulation {
        let mut rng = Rng::new(cfg.seed);
        let acceptors: Vec<NodeId> = (0..(2 * cfg.f as NodeId + 1)).collect();
        let plan = FaultPlan::generate(
            &mut rng.fork(),
            cfg.nodes,
            &acceptors,
            cfg.f,
            cfg.recoverable,
            cfg.fault_phase_us,
        );
        let cluster = ClusterConfig { nodes: cfg.nodes, acceptors, f: cfg.f };
        Simulation {
            network: plan.network.clone(),
            plan,
            cluster,
            now: 0,
            queue: BinaryHeap::new(),
            events: HashMap::new(),
            next_event: 0,
            nodes: Vec::new(),
            healed: false,
            net_rng: rng.fork(),
            work_rng: rng.fork(),
            disk_rng: rng.fork(),
            // Forked last, so the streams above stay what they were for every seed.
            transfer_rng: rng.fork(),
            history: History {
                skip_instances: cfg.skip_lambda_instances > 0,
                ..History::default()
            },
            actions: Vec::new(),
            released: Vec::new(),
            arrivals: Vec::new(),
            frame: Vec::new(),
            messages_sent: 0,
            messages_lost: 0,
            messages_by_kind: [0; 256],
            phase1b_pieces_sent: 0,
            learners_resumed: 0,
            snapshots_installed: 0,
            storm: false,
            proposals_left: 0,
            cfg,
        }
    }

    fn node_config(&self, id: NodeId, incarnation: u32) -> NodeConfig {
        let mut c = NodeConfig::new(id, self.cfg.protocol, self.cluster.clone());
        c.incarnation = incarnation;
        c.batch_bytes_max = self.cfg.batch_bytes_max;
        c.window_instances = self.cfg.window_instances;
        c.window_instances_min = 1;
        c.window_bytes = c.window_bytes.max(c.batch_bytes_max);
        c.proposer_pending_bytes_max = c.proposer_pending_bytes_max.max(c.batch_bytes_max);
        // Room for every value of the run, so a proposer never pushes back; the tables bounded by it
        // (allocated up front, see `RingNode::new`) stay as small as the run.
        c.proposer_pending_values_max = (self.cfg.values_per_proposer as usize).max(1);
        c.gc_retain_instances = self.cfg.gc_retain_instances;
        c.phase1b_bytes_max = self.cfg.phase1b_bytes_max;
        c.value_choice = self.cfg.value_choice;
        c.stable_storage = self.cfg.recoverable;
        c.checkpoint_interval_instances = self.cfg.checkpoint_interval_instances;
        c.skip_lambda_instances = self.cfg.skip_lambda_instances;
        c.skip_interval_us = self.cfg.skip_interval_us;
        c
    }

    fn schedule(&mut self, at: Tick, event: Event) {
        let id = self.next_event;
        self.next_event += 1;
        self.events.insert(id, event);
        self.queue.push(Reverse((at, id as u64, id)));
    }

    fn boot(&mut self, id: NodeId, boot: Boot) {
        let i = usize::from(id);
        let incarnation = self.nodes.get(i).map_or(0, |n| n.incarnation + 1);
        let cfg = self.node_config(id, incarnation);
        let mut core = RingNode::new(cfg, self.now, boot)
            .unwrap_or_else(|e| panic!("simulator built a bad config: {e}"));
        let checkpoint = self.nodes.get_mut(i).and_then(|n| n.checkpoint.take());
        // A learner with a stored checkpoint goes on from it, and its application from the state
        // stored with it: the new incarnation's log begins with what the old one had applied.
        let applied = match &checkpoint {
            Some((cp, applied)) => {
                core.resume_learner(cp);
                self.learners_resumed += 1;
                applied.clone()
            }
            None => Vec::new(),
        };
        let log = self.history.logs.len();
        self.history.logs.push(LearnerLog {
            node: id,
            incarnation,
            delivered: applied,
            alive_at_end: false,
            needs_state_transfer: false,
        });
        let node = SimNode {
            core: Some(core),
            incarnation,
            timer_generation: 0,
            log,
            disk: match self.nodes.get_mut(i) {
                Some(n) => std::mem::take(&mut n.disk),
                None => Disk::new(self.cfg.sync_before_acting),
            },
            checkpoint,
            proposed: Vec::new(),
            rounds_started_before: self.nodes.get(i).map_or(0, |n| n.rounds_started_before),
            state_transfer_wanted: None,
        };
        if i < self.nodes.len() {
            self.nodes[i] = node;
        } else {
            self.nodes.push(node);
        }
        self.drain(id);
    }

    /// Runs the whole scenario and checks every invariant: [`Simulation::start`], events until the
    /// deadline or until [`Simulation::settled`] (looked at every 50 ms of the heal phase), then
    /// [`Simulation::finish`].
    pub fn run(mut self) -> SimReport {
        self.start();
        let deadline = self.deadline_us();
        let mut next_quiet_check = self.cfg.fault_phase_us;
        while let Step::Handled = self.step(deadline) {
            if self.healed && self.now >= next_quiet_check {
                next_quiet_check = self.now + 50_000;
                if self.settled() {
                    break;
                }
            }
        }
        self.finish()
    }

    /// Boots every process and schedules the workload, the crashes and the heal. The first call of
    /// a driver that runs several simulations side by side (`sim::multiring`: start, then
    /// [`Simulation::step_until`] and [`Simulation::settled`] in turns, then
    /// [`Simulation::finish`]); [`Simulation::run`] does all of it for one.
    pub fn start(&mut self) {
        for id in 0..self.cfg.nodes {
            self.boot(id, Boot::Fresh);
        }
        for id in 0..self.cfg.nodes {
            for _ in 0..self.cfg.values_per_proposer {
                let at = self.work_rng.range(0, self.cfg.fault_phase_us * 4 / 5);
                self.schedule(at, Event::Propose { node: id });
                self.proposals_left += 1;
            }
        }
        for c in self.plan.crashes.clone() {
            self.schedule(c.at_us, Event::Crash { node: c.node });
            self.schedule(c.restart_at_us, Event::Restart { node: c.node });
        }
        self.schedule(self.cfg.fault_phase_us, Event::Heal);
    }

    /// When the run gives up waiting for liveness: the heal bound after the fault phase.
    pub fn deadline_us(&self) -> Tick {
        self.cfg.fault_phase_us + self.cfg.heal_bound_us
    }

    /// Handles every event due by `until`, in order. False once the run was stopped as a message
    /// storm (it handles nothing more; [`Simulation::finish`] reports it).
    pub fn step_until(&mut self, until: Tick) -> bool {
        loop {
            match self.step(until) {
                Step::Handled => {}
                Step::Idle => return true,
                Step::Stopped => return false,
            }
        }
    }

    /// Handles the next event if it is due by `until`.
    fn step(&mut self, until: Tick) -> Step {
        if self.storm {
            return Step::Stopped;
        }
        match self.queue.peek() {
            Some(Reverse((at, _, _))) if *at <= until => {}
            _ => return Step::Idle,
        }
        let Some(Reverse((at, _, id))) = self.queue.pop() else { return Step::Idle };
        if self.queue.len() > self.cfg.in_flight_events_max
            || self.messages_sent > self.cfg.messages_max
        {
            self.storm = true;
            return Step::Stopped;
        }
        self.now = at;
        if let Some(event) = self.events.remove(&id) {
            self.handle(event);
        }
        Step::Handled
    }

    /// Whether the heal phase began: faults stopped and every process was restarted.
    pub fn healed(&self) -> bool {
        self.healed
    }

    /// Each process' learner as it stands: the log it delivers into now (its last incarnation's,
    /// after any snapshot it installed) and whether the process is up; in process order. What
    /// [`Simulation::finish`] will mark alive at the end, readable while the run goes on.
    pub fn current_logs(&self) -> impl Iterator<Item = (&LearnerLog, bool)> + '_ {
        self.nodes.iter().map(|n| (&self.history.logs[n.log], n.core.is_some()))
    }

    /// The values the processes that are up proposed: what liveness requires should the run end now.
    pub fn required_values(&self) -> impl Iterator<Item = ValueId> + '_ {
        self.nodes.iter().filter(|n| n.core.is_some()).flat_map(|n| n.proposed.iter().copied())
    }

    /// Every proposal was made, and every learner that is up (and not waiting for a state transfer
    /// no donor can serve) delivered every value the processes that are up proposed: the liveness
    /// checker will pass. A learner a donor can serve is waited for: it installs the snapshot within
    /// a transfer delay and must then catch up like any other.
    pub fn settled(&self) -> bool {
        if self.proposals_left > 0 {
            return false;
        }
        let required: Vec<ValueId> = self
            .nodes
            .iter()
            .filter(|n| n.core.is_some())
            .flat_map(|n| n.proposed.iter().copied())
            .collect();
        self.nodes
            .iter()
            .enumerate()
            .filter(|&(i, n)| {
                n.core.as_ref().is_some_and(|c| !c.needs_state_transfer())
                    || self.snapshot_for(i as NodeId).is_some()
            })
            .all(|(_, n)| {
                let delivered: std::collections::HashSet<ValueId> =
                    self.history.logs[n.log].delivered.iter().map(|(_, v, _)| *v).collect();
                required.iter().all(|v| delivered.contains(v))
            })
    }

    fn handle(&mut self, event: Event) {
        match event {
            Event::Message { to, from, frame } => {
                if self.nodes[usize::from(to)].core.is_none() || self.partitioned(from, to) {
                    self.messages_lost += 1;
                    return;
                }
                let msg = match wire::decode_bytes(&frame) {
                    Ok((msg, used)) if used == frame.len() => msg,
                    other => panic!("the codec failed to round-trip a frame it encoded: {other:?}"),
                };
                if let Some(core) = self.nodes[usize::from(to)].core.as_mut() {
                    core.on_message(self.now, from, msg);
                }
                self.drain(to);
            }
            Event::Timer { node, generation } => {
                let n = &mut self.nodes[usize::from(node)];
                if n.timer_generation != generation {
                    return;
                }
                if let Some(core) = n.core.as_mut() {
                    core.on_tick(self.now);
                    self.drain(node);
                }
            }
            Event::Propose { node } => {
                let len = self.work_rng.range(1, 64) as usize;
                let payload: Bytes =
                    (0..len).map(|_| self.work_rng.next_u64() as u8).collect::<Vec<u8>>().into();
                let n = &mut self.nodes[usize::from(node)];
                let Some(core) = n.core.as_mut() else {
                    // A crashed process proposes nothing.
                    self.proposals_left -= 1;
                    return;
                };
                match core.propose(self.now, &payload) {
                    Ok(id) => {
                        self.proposals_left -= 1;
                        n.proposed.push(id);
                        self.history.proposed.insert(id, payload);
                        self.drain(node);
                    }
                    Err(_) => self.schedule(self.now + 10_000, Event::Propose { node }),
                }
            }
            Event::SyncDone { node, epoch } => {
                let mut released = std::mem::take(&mut self.released);
                self.nodes[usize::from(node)].disk.sync_done(epoch, &mut released);
                for action in released.drain(..) {
                    self.perform(node, action);
                }
                self.released = released;
                self.start_sync(node);
            }
            Event::StateTransfer { node, incarnation } => self.transfer_state(node, incarnation),
            Event::Crash { node } => self.crash(node),
            Event::Restart { node } => self.restart(node),
            Event::Heal => {
                self.healed = true;
                self.network = NetworkFaults::healed();
                for id in 0..self.cfg.nodes {
                    self.restart(id);
                }
            }
        }
    }

    /// The snapshot learner `id` would install now: the stored checkpoint of the first donor its
    /// core names (highest reported version first) that is up here and whose checkpoint reaches
    /// the trim point and is ahead of the learner. `None` if `id` is not waiting for state transfer
    /// or no donor can serve it yet.
    fn snapshot_for(&self, id: NodeId) -> Option<&(LearnerCheckpoint, Applied)> {
        let n = &self.nodes[usize::from(id)];
        let core = n.core.as_ref()?;
        let trimmed_below = n.state_transfer_wanted?;
        if !core.needs_state_transfer() {
            return None;
        }
        core.snapshot_donors(trimmed_below).into_iter().find_map(|donor| {
            let d = &self.nodes[usize::from(donor)];
            d.core.as_ref()?;
            d.checkpoint.as_ref().filter(|(cp, _)| {
                cp.next_instance >= trimmed_below && cp.next_instance > core.delivered_below()
            })
        })
    }

    /// The state transfer learner `id` asked for (3.3.7): its application installs a donor's
    /// snapshot, or asks again later when no donor has one.
    fn transfer_state(&mut self, id: NodeId, incarnation: u32) {
        let i = usize::from(id);
        let n = &mut self.nodes[i];
        if n.incarnation != incarnation || n.state_transfer_wanted.is_none() {
            return; // asked by an incarnation that crashed since
        }
        if !n.core.as_ref().is_some_and(RingNode::needs_state_transfer) {
            n.state_transfer_wanted = None; // down, or got going without a snapshot
            return;
        }
        let Some((cp, applied)) = self.snapshot_for(id).cloned() else {
            let at = self.now + STATE_TRANSFER_RETRY_US;
            self.schedule(at, Event::StateTransfer { node: id, incarnation });
            return;
        };
        let n = &mut self.nodes[i];
        let installed = n.core.as_mut().is_some_and(|c| c.install_snapshot(self.now, &cp));
        assert!(installed, "a snapshot ahead of a stalled learner was refused");
        n.state_transfer_wanted = None;
        // What the core emitted before the install and the disk still holds is below the snapshot.
        n.disk.drop_superseded_by_snapshot();
        // The deliveries so far stay checked in the log they were made in; the application now
        // holds the donor's state, and a new log goes on from it.
        n.log = self.history.logs.len();
        self.history.logs.push(LearnerLog {
            node: id,
            incarnation,
            delivered: applied.clone(),
            alive_at_end: false,
            needs_state_transfer: false,
        });
        // A real process keeps the fetched snapshot as its own: a restart goes on from it.
        n.checkpoint = Some((cp, applied));
        self.snapshots_installed += 1;
        self.drain(id);
    }

    fn partitioned(&self, a: NodeId, b: NodeId) -> bool {
        !self.healed && self.plan.partitions.iter().any(|p| p.separates(self.now, a, b))
    }

    fn crash(&mut self, id: NodeId) {
        let n = &mut self.nodes[usize::from(id)];
        if let Some(core) = n.core.take() {
            n.rounds_started_before += core.counters().rounds_started;
            let rng = &mut self.disk_rng;
            n.disk.crash(|in_flight| rng.range(0, in_flight as u64) as usize);
        }
    }

    fn restart(&mut self, id: NodeId) {
        let n = &mut self.nodes[usize::from(id)];
        if n.core.is_some() {
            return;
        }
        let boot = if !self.cluster.is_acceptor(id) {
            Boot::Fresh
        } else if self.cfg.recoverable {
            Boot::Recovered(n.disk.recover())
        } else {
            Boot::Amnesiac
        };
        self.boot(id, boot);
    }

    /// Performs every action node `id` has pending, but for those that wait for a record to be
    /// durable (`disk`), which a later sync releases.
    fn drain(&mut self, id: NodeId) {
        let mut actions = std::mem::take(&mut self.actions);
        let i = usize::from(id);
        let Some(core) = self.nodes[i].core.as_mut() else { return };
        core.drain_actions(&mut actions);
        for action in actions.drain(..) {
            if let Some(action) = self.nodes[i].disk.admit(action) {
                self.perform(id, action);
            }
        }
        self.actions = actions;
        self.start_sync(id);
    }

    /// Starts a sync of `id`'s disk if records wait for one; it completes after a disk's latency.
    fn start_sync(&mut self, id: NodeId) {
        if let Some(epoch) = self.nodes[usize::from(id)].disk.start_sync() {
            let latency_us =
                self.disk_rng.range(self.cfg.disk_sync_us_min, self.cfg.disk_sync_us_max);
            self.schedule(self.now + latency_us, Event::SyncDone { node: id, epoch });
        }
    }

    fn perform(&mut self, id: NodeId, action: Action) {
        let i = usize::from(id);
        match action {
            Action::Send { to, msg } => self.transmit(id, &[to], &msg, false),
            Action::Multicast { msg } => {
                let receivers: Vec<NodeId> = (0..self.cfg.nodes).filter(|&n| n != id).collect();
                self.transmit(id, &receivers, &msg, true);
            }
            Action::Deliver { instance, values } => {
                let log = &mut self.history.logs[self.nodes[i].log];
                log.delivered.extend(values.into_iter().map(|v| (instance, v.id, v.payload)));
            }
            Action::SetTimer { at } => {
                let n = &mut self.nodes[i];
                n.timer_generation += 1;
                let generation = n.timer_generation;
                self.schedule(at.max(self.now), Event::Timer { node: id, generation });
            }
            Action::NeedsStateTransfer { trimmed_below, .. } => {
                let n = &mut self.nodes[i];
                self.history.logs[n.log].needs_state_transfer = true;
                // One transfer in progress per learner: a later call only raises what it must reach.
                let scheduled = n.state_transfer_wanted.is_some();
                n.state_transfer_wanted =
                    Some(n.state_transfer_wanted.map_or(trimmed_below, |t| t.max(trimmed_below)));
                if !scheduled {
                    let delay =
                        self.transfer_rng.range(STATE_TRANSFER_US_MIN, STATE_TRANSFER_US_MAX);
                    let incarnation = n.incarnation;
                    self.schedule(self.now + delay, Event::StateTransfer { node: id, incarnation });
                }
            }
            Action::Persist(_) => unreachable!("the disk takes every record"),
            // The application stores the checkpoint with its state (the log so far) and says so.
            Action::Checkpoint(cp) => {
                let n = &mut self.nodes[i];
                let applied = self.history.logs[n.log].delivered.clone();
                let next_instance = cp.next_instance;
                n.checkpoint = Some((*cp, applied));
                if let Some(core) = n.core.as_mut() {
                    core.set_stable_version(next_instance);
                }
            }
        }
    }

    fn transmit(&mut self, from: NodeId, to: &[NodeId], msg: &crate::proto::Msg, multicast: bool) {
        self.frame.clear();
        wire::encode(msg, &mut self.frame);
        let frame = Bytes::copy_from_slice(&self.frame);
        self.messages_by_kind[usize::from(wire::Kind::of(msg).byte())] += to.len() as u64;
        if let crate::proto::Msg::Phase1B { votes_below, .. } = msg
            && *votes_below != crate::proto::Instance::MAX
        {
            self.phase1b_pieces_sent += 1;
        }
        for &dest in to {
            self.messages_sent += 1;
            let mut arrivals = std::mem::take(&mut self.arrivals);
            network::fate(&mut self.net_rng, &self.network, self.now, multicast, &mut arrivals);
            if arrivals.is_empty() {
                self.messages_lost += 1;
            }
            for &at in &arrivals {
                self.schedule(at, Event::Message { to: dest, from, frame: frame.clone() });
            }
            self.arrivals = arrivals;
        }
    }

    /// Marks who is alive at the end, checks every invariant and reports.
    pub fn finish(self) -> SimReport {
        self.finish_with_history().0
    }

    /// [`Simulation::finish`], and what every learner delivered, for checkers of their own (the
    /// merge of several rings, `sim::multiring`).
    pub fn finish_with_history(mut self) -> (SimReport, History) {
        for n in &self.nodes {
            if n.core.is_some() {
                self.history.logs[n.log].alive_at_end = true;
                self.history.must_deliver.extend_from_slice(&n.proposed);
            }
        }
        let mut violations = invariants::check_all(&self.history);
        if self.storm {
            let (kind, count) = (0..=u8::MAX)
                .filter_map(|b| {
                    Some((wire::Kind::from_byte(b)?, self.messages_by_kind[usize::from(b)]))
                })
                .max_by_key(|&(_, count)| count)
                .unwrap_or((wire::Kind::Heartbeat, 0));
            violations.push(Violation::MessageStorm {
                at_us: self.now,
                messages_sent: self.messages_sent,
                in_flight: self.queue.len(),
                busiest: kind,
                busiest_sent: count,
            });
        }
        let rounds_started = self
            .nodes
            .iter()
            .map(|n| {
                n.rounds_started_before + n.core.as_ref().map_or(0, |c| c.counters().rounds_started)
            })
            .sum();
        let processes = self
            .nodes
            .iter()
            .enumerate()
            .map(|(i, n)| ProcessSummary {
                node: i as NodeId,
                incarnation: n.incarnation,
                up: n.core.is_some(),
                delivered_below: n.core.as_ref().map_or(0, |c| c.delivered_below()),
                pending_values: n.core.as_ref().map_or(0, |c| c.pending_values()),
                coordinating: n.core.as_ref().and_then(|c| c.coordinating()),
                coordinator_load: n.core.as_ref().map_or((0, 0), |c| c.coordinator_load()),
                counters: n.core.as_ref().map(|c| c.counters().clone()).unwrap_or_default(),
            })
            .collect();
        let report = SimReport {
            processes,
            violations,
            end_us: self.now,
            messages_sent: self.messages_sent,
            messages_lost: self.messages_lost,
            values_proposed: self.history.proposed.len(),
            values_must_deliver: self.history.must_deliver.len(),
            instances_delivered_max: self
                .nodes
                .iter()
                .filter_map(|n| n.core.as_ref())
                .map(|c| c.delivered_below())
                .max()
                .unwrap_or(0),
            rounds_started,
            phase1b_pieces_sent: self.phase1b_pieces_sent,
            learners_resumed: self.learners_resumed,
            snapshots_installed: self.snapshots_installed,
            learners_needing_state_transfer: self
                .history
                .logs
                .iter()
                .filter(|l| l.needs_state_transfer)
                .count(),
            plan: self.plan,
            config: self.cfg,
        };
        (report, self.history)
    }
}

/// Runs one seed. A panic inside the run (a protocol core's `assert!` firing, say) is caught and
/// reported as [`Violation::Panicked`] of this seed, so the seed is named and can be replayed, and the
/// seeds after it still run.
pub fn run(cfg: SimConfig) -> SimReport {
    let sim = Simulation::new(cfg.clone());
    let plan = sim.plan.clone();
    match panic::catch_unwind(AssertUnwindSafe(|| sim.run())) {
        Ok(report) => report,
        Err(payload) => {
            let message = panic_message(payload.as_ref());
            SimReport {
                config: cfg,
                plan,
                violations: vec![Violation::Panicked { message }],
                end_us: 0,
                messages_sent: 0,
                messages_lost: 0,
                values_proposed: 0,
                values_must_deliver: 0,
                instances_delivered_max: 0,
                rounds_started: 0,
                learners_needing_state_transfer: 0,
                phase1b_pieces_sent: 0,
                learners_resumed: 0,
                snapshots_installed: 0,
                processes: Vec::new(),
            }
        }
    }
}

/// The message a caught panic carried, for a seed's report (the single-ring and Multi-Ring runs
/// both turn a panicking core into a violation).
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".to_string())
}
