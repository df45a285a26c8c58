//! The configuration of one Ring Paxos process: who is in the cluster, which roles this process plays,
//! and every bound and timeout of the protocol (TigerBeetle's "put a limit on everything": each queue
//! and window below has a bound checked by [`NodeConfig::validate`]).

use thiserror::Error;

use super::types::{NodeId, RING_MEMBERS_MAX, Tick};

/// Which Ring Paxos variant the core runs (thesis 3.3.2 and 3.3.3).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Protocol {
    /// Unicast-based Ring Paxos: every process on one ring of (TCP) links.
    URing,
    /// Multicast-based Ring Paxos: values and decisions by ip-multicast, votes along a ring of f+1
    /// acceptors ending at the coordinator.
    MRing,
}

/// The membership shared by every process of one cluster.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct ClusterConfig {
    /// Every process, proposers, acceptors and learners alike. Ids are dense: `0..nodes`.
    pub nodes: u16,
    /// The acceptors, in coordinator preference order: the first acceptor that is alive coordinates.
    /// Exactly 2f+1 of them.
    pub acceptors: Vec<NodeId>,
    /// The number of acceptor failures tolerated.
    pub f: usize,
}

impl ClusterConfig {
    /// The size of an m-quorum: ⌈(|N_a| + 1) / 2⌉ = f + 1 (thesis 3.2).
    pub fn quorum(&self) -> usize {
        self.f + 1
    }

    pub fn is_acceptor(&self, node: NodeId) -> bool {
        self.acceptors.contains(&node)
    }
}

/// Which value a new coordinator re-proposes in an instance where Phase 1 found votes.
///
/// Only [`ValueChoice::HighestVRnd`] is Paxos; the other variant exists so a test can plant the bug
/// and prove the simulator's agreement checker catches it.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum ValueChoice {
    /// Alg. 1–3 Task 3: "let c-val be the only v-val in V", V being the votes of the largest v-rnd.
    HighestVRnd,
    /// The planted bug: take the vote of the *lowest* v-rnd.
    #[cfg(test)]
    PlantedBugLowestVRnd,
}

/// Everything one process needs to run the protocol core.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct NodeConfig {
    pub id: NodeId,
    pub protocol: Protocol,
    pub cluster: ClusterConfig,
    /// Whether this process proposes values (a proposer is also a learner: it must see its values
    /// delivered to stop retrying them).
    pub proposer: bool,
    /// Whether this process hands delivered values to the application.
    pub learner: bool,
    /// Changes at every restart of the process; part of every value id it proposes.
    pub incarnation: u32,
    /// Recoverable Ring Paxos (3.3.5): the acceptor emits [`Action::Persist`](super::Action) for
    /// every promise, vote and trim, and its driver makes each durable before it performs what
    /// follows. Off: in-memory Ring Paxos, which assumes a majority of acceptors never fails.
    pub stable_storage: bool,
    /// Emit [`Action::Checkpoint`](super::Action) after delivering at least this many instances
    /// since the last one (0: never). With it, the version this process reports for garbage
    /// collection is the one its application last said was stored ([`RingNode::set_stable_version`](super::RingNode::set_stable_version)),
    /// not what it delivered: acceptors keep what a restarted learner needs to go on from its
    /// checkpoint (3.3.7).
    pub checkpoint_interval_instances: u64,
    /// The application keeps snapshots of its own and says which version it stored
    /// ([`RingNode::set_stable_version`](super::RingNode::set_stable_version)) without the core's
    /// checkpoints: the version reported for garbage collection is that one, as with checkpoints.
    pub application_versions: bool,

    /// Upper bound of one consensus instance's batch (thesis 3.5.6: 8–32 KB packets).
    pub batch_bytes_max: usize,
    /// Pipelining: at most this many instances open at the coordinator at once.
    pub window_instances: u32,
    /// ... and at most this many bytes of values in them.
    pub window_bytes: usize,
    /// The smallest window flow control may shrink to (3.3.6).
    pub window_instances_min: u32,
    /// Bytes of values a proposer holds that are not yet delivered; `propose` refuses beyond it.
    pub proposer_pending_bytes_max: usize,
    /// Values a proposer holds that are not yet delivered; `propose` refuses beyond it.
    pub proposer_pending_values_max: usize,
    /// Bytes of proposals the coordinator queues before it drops new ones (their proposers retry).
    pub coordinator_queue_bytes_max: usize,
    /// A learner whose backlog (decided but not yet applied) exceeds this notifies the coordinator.
    pub flow_backlog_instances_max: u32,
    /// Acceptors keep this many decided instances below the garbage-collection point, so learners that
    /// lag a little can still catch up from them (3.3.7).
    pub gc_retain_instances: u64,
    /// ... and at most this many bytes of values in all (u64::MAX: the instance count alone
    /// decides). Instances are as large as the load makes them: a bound in instances alone is
    /// minutes of history under a light load and a fraction of a second under a heavy load of small
    /// values, while what a lagging learner may need from memory is a matter of bytes.
    pub gc_retain_bytes: u64,
    /// Bytes of batches written by this process (its proposer's, its coordinator's) that its own
    /// acceptor and learner may hold at once, chiefly the decided ones kept for garbage collection;
    /// the arenas those batches are written in allocate this much up front so they need not grow
    /// while running (thesis 3.5.2). 0 allocates as needed.
    pub arena_reserve_bytes: usize,
    /// At most this many instances in one retransmission request or answer.
    pub retransmit_instances_max: u64,
    /// Bytes of votes' values one Phase 1B carries; a larger log is reported in pieces (a message
    /// must stay well below the wire's 4 MiB frame bound: one vote may exceed this by a batch).
    pub phase1b_bytes_max: usize,

    /// How often the core wants `on_tick`.
    pub tick_interval_us: Tick,
    /// How often a process sends its heartbeat. A heartbeat carries the process' version, which
    /// garbage collection waits for (3.3.7): the older the versions an acceptor knows, the more
    /// decided batches it keeps, and the colder the memory the next batch is written into. 2 ms
    /// instead of 10 ms delivered 28% more on U-Ring with the slowest-version trim
    /// (`bench/RESULTS.md`, eighth session), for 500 small messages a second per peer.
    pub heartbeat_interval_us: Tick,
    /// A process not heard from for this long is suspected to have crashed (3.3.5).
    pub suspect_timeout_us: Tick,
    /// The coordinator resends Phase 1A / Phase 2A after this long without an answer (3.3.4).
    pub phase_retry_us: Tick,
    /// After this many Phase 2 retries of the same instance the coordinator starts a new round.
    pub phase2_retries_before_new_round: u32,
    /// A proposer resends a value not delivered after this long.
    pub proposal_retry_us: Tick,
    /// A learner that made no progress for this long while it knows of later instances asks its
    /// preferential acceptor for the missing ones (3.3.4).
    pub gap_timeout_us: Tick,
    /// U-Ring: a process that came back must be alive this long before the coordinator lays out a new
    /// ring to take it back (avoids flapping rings).
    pub ring_rejoin_delay_us: Tick,

    /// How a new coordinator picks values from Phase 1B votes (always `HighestVRnd` outside tests).
    pub value_choice: ValueChoice,

    /// Multi-Ring Paxos (thesis 5.2.1): λ, the instances this ring is expected to decide every
    /// `skip_interval_us`; as coordinator, this process makes up for the ones it did not open with
    /// skip instances (`skip`). 0: a ring of its own, no skips.
    pub skip_lambda_instances: u64,
    /// Δ: how often the coordinator compares its rate with λ.
    pub skip_interval_us: Tick,
    /// Added to `now` to read the clock every ring's coordinator shares (`skip`): 0 in the
    /// simulator, where all rings share virtual time; on real hosts the wall clock at the node's
    /// start, so that coordinators on different hosts agree to within their clocks' skew.
    pub skip_clock_offset_us: Tick,
}

/// A configuration the core refuses, naming the field and the reason.
#[derive(Debug, Error, PartialEq, Eq)]
#[error("invalid configuration: `{field}` {reason}")]
pub struct ConfigError {
    pub field: &'static str,
    pub reason: String,
}

fn refuse(field: &'static str, reason: impl Into<String>) -> Result<(), ConfigError> {
    Err(ConfigError { field, reason: reason.into() })
}

impl NodeConfig {
    /// A configuration with the defaults the thesis' experiments used (32 KB batches, a window of a few
    /// dozen instances) for process `id` of `cluster`.
    pub fn new(id: NodeId, protocol: Protocol, cluster: ClusterConfig) -> NodeConfig {
        NodeConfig {
            id,
            protocol,
            cluster,
            proposer: true,
            learner: true,
            incarnation: 0,
            stable_storage: false,
            checkpoint_interval_instances: 0,
            application_versions: false,
            batch_bytes_max: 32 * 1024,
            window_instances: 32,
            window_bytes: 32 * 32 * 1024,
            window_instances_min: 2,
            proposer_pending_bytes_max: 4 * 1024 * 1024,
            proposer_pending_values_max: 65_536,
            coordinator_queue_bytes_max: 8 * 1024 * 1024,
            flow_backlog_instances_max: 1024,
            gc_retain_instances: 100_000,
            gc_retain_bytes: u64::MAX,
            arena_reserve_bytes: 0,
            retransmit_instances_max: 64,
            phase1b_bytes_max: 1024 * 1024,
            tick_interval_us: 1_000,
            heartbeat_interval_us: 2_000,
            suspect_timeout_us: 100_000,
            phase_retry_us: 50_000,
            phase2_retries_before_new_round: 4,
            proposal_retry_us: 200_000,
            gap_timeout_us: 20_000,
            ring_rejoin_delay_us: 200_000,
            value_choice: ValueChoice::HighestVRnd,
            skip_lambda_instances: 0,
            skip_interval_us: 1_000,
            skip_clock_offset_us: 0,
        }
    }

    /// Checks every bound; the error names the offending field.
    /// Proposals that can be in flight at once, cluster-wide: at most one per pending value of each
    /// proposer (a proposal holds at least one). Bounds the proposal store and the coordinator's
    /// queue, which are allocated for that many up front.
    pub fn proposals_in_flight_max(&self) -> usize {
        usize::from(self.cluster.nodes).saturating_mul(self.proposer_pending_values_max)
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        let c = &self.cluster;
        if c.nodes == 0 {
            return refuse("cluster.nodes", "must be at least 1");
        }
        if self.id >= c.nodes {
            return refuse(
                "id",
                format!("{} is not a node of a {}-node cluster", self.id, c.nodes),
            );
        }
        if c.f == 0 {
            return refuse("cluster.f", "must be at least 1 (f = 0 tolerates no failure)");
        }
        if c.acceptors.len() != 2 * c.f + 1 {
            return refuse(
                "cluster.acceptors",
                format!("must list 2f+1 = {} acceptors, lists {}", 2 * c.f + 1, c.acceptors.len()),
            );
        }
        for (i, a) in c.acceptors.iter().enumerate() {
            if *a >= c.nodes {
                return refuse(
                    "cluster.acceptors",
                    format!("names node {a}, which does not exist"),
                );
            }
            if c.acceptors[..i].contains(a) {
                return refuse("cluster.acceptors", format!("names node {a} twice"));
            }
        }
        if self.protocol == Protocol::URing && usize::from(c.nodes) > RING_MEMBERS_MAX {
            return refuse(
                "cluster.nodes",
                format!(
                    "U-Ring Paxos places every process on the ring; at most {RING_MEMBERS_MAX}"
                ),
            );
        }
        if self.proposer && !self.learner {
            return refuse(
                "learner",
                "a proposer must also be a learner to know its values were delivered",
            );
        }
        if self.batch_bytes_max < 64 || self.batch_bytes_max > 1024 * 1024 {
            return refuse("batch_bytes_max", "must be within 64 B ..= 1 MiB");
        }
        if self.window_instances == 0 {
            return refuse("window_instances", "must be at least 1");
        }
        if self.window_instances_min == 0 || self.window_instances_min > self.window_instances {
            return refuse("window_instances_min", "must be within 1 ..= window_instances");
        }
        if self.window_bytes < self.batch_bytes_max {
            return refuse("window_bytes", "must hold at least one batch (>= batch_bytes_max)");
        }
        if self.proposer_pending_bytes_max < self.batch_bytes_max {
            return refuse("proposer_pending_bytes_max", "must hold at least one batch");
        }
        if self.proposer_pending_values_max == 0 {
            return refuse("proposer_pending_values_max", "must be at least 1");
        }
        if self.coordinator_queue_bytes_max < self.batch_bytes_max {
            return refuse("coordinator_queue_bytes_max", "must hold at least one batch");
        }
        if self.phase1b_bytes_max == 0 || self.phase1b_bytes_max + self.batch_bytes_max > 2 << 20 {
            return refuse(
                "phase1b_bytes_max",
                "must be positive and, with batch_bytes_max, at most 2 MiB (a frame holds 4 MiB)",
            );
        }
        if self.retransmit_instances_max == 0 {
            return refuse("retransmit_instances_max", "must be at least 1");
        }
        if self.tick_interval_us == 0 {
            return refuse("tick_interval_us", "must be positive");
        }
        if self.heartbeat_interval_us < self.tick_interval_us {
            return refuse("heartbeat_interval_us", "must be at least tick_interval_us");
        }
        if self.suspect_timeout_us <= 2 * self.heartbeat_interval_us {
            return refuse("suspect_timeout_us", "must exceed two heartbeat intervals");
        }
        for (field, value) in [
            ("phase_retry_us", self.phase_retry_us),
            ("proposal_retry_us", self.proposal_retry_us),
            ("gap_timeout_us", self.gap_timeout_us),
        ] {
            if value < self.tick_interval_us {
                return refuse(field, "must be at least tick_interval_us");
            }
        }
        if self.skip_lambda_instances > 0 && !(1..=60_000_000).contains(&self.skip_interval_us) {
            return refuse("skip_interval_us", "must be between 1 us and 60 s");
        }
        // Logical positions grow by λ per Δ of the shared clock: at 10^9 a second they stay below
        // 2^64 for five centuries from the shared clock's epoch.
        if self.skip_lambda_instances.saturating_mul(1_000_000) / self.skip_interval_us.max(1)
            > 1_000_000_000
        {
            return refuse("skip_lambda_instances", "more than 10^9 instances a second");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cluster(f: usize) -> ClusterConfig {
        ClusterConfig { nodes: 5, acceptors: (0..(2 * f as u16 + 1)).collect(), f }
    }

    #[test]
    fn defaults_are_valid() {
        NodeConfig::new(0, Protocol::URing, cluster(1)).validate().unwrap();
        NodeConfig::new(4, Protocol::MRing, cluster(2)).validate().unwrap();
    }

    #[test]
    fn errors_name_the_field() {
        let mut c = NodeConfig::new(0, Protocol::URing, cluster(1));
        c.cluster.acceptors.pop();
        assert_eq!(c.validate().unwrap_err().field, "cluster.acceptors");
        let mut c = NodeConfig::new(0, Protocol::URing, cluster(1));
        c.window_bytes = 10;
        assert_eq!(c.validate().unwrap_err().field, "window_bytes");
        let mut c = NodeConfig::new(9, Protocol::URing, cluster(1));
        c.id = 9;
        let e = c.validate().unwrap_err();
        assert_eq!(e.field, "id");
        assert!(e.to_string().contains("`id`"), "{e}");
    }
}
