//! What one simulated run looks like: protocol, cluster size, f, storage mode, workload, phases.

use crate::proto::{Protocol, Tick, ValueChoice};

use super::rng::Rng;

#[derive(Debug, Clone, PartialEq)]
pub struct SimConfig {
    pub protocol: Protocol,
    pub seed: u64,
    pub nodes: u16,
    pub f: usize,
    /// Acceptors keep their state across crashes (Recoverable Ring Paxos) and any process may crash;
    /// otherwise at most f acceptors may crash and they come back without state.
    pub recoverable: bool,
    /// Recoverable runs: the driver performs what follows a record only once it is durable (`sync`
    /// storage). False writes behind (`async`), which loses sent votes when more than f acceptors
    /// crash; only tests turn it off, to see the simulator catch that.
    pub sync_before_acting: bool,
    /// How long a disk sync takes, at least and at most: from a fast SSD's flush to a slow disk's.
    pub disk_sync_us_min: Tick,
    pub disk_sync_us_max: Tick,
    /// Learners hand out a checkpoint after this many instances (0: never); the simulated
    /// application stores it with its state at once, and a restarted process starts its learner
    /// from the last one stored (`proto::learner_checkpoint`).
    pub checkpoint_interval_instances: u64,
    /// Faults happen during `0..fault_phase_us`; proposals are made during it too.
    pub fault_phase_us: Tick,
    /// After the fault phase, everything proposed by correct proposers must be delivered within this.
    pub heal_bound_us: Tick,
    /// Values each process proposes during the fault phase.
    pub values_per_proposer: u32,
    pub batch_bytes_max: usize,
    pub window_instances: u32,
    pub gc_retain_instances: u64,
    /// Small values make Phase 1 report acceptor logs in several pieces.
    pub phase1b_bytes_max: usize,
    pub value_choice: ValueChoice,
    /// The run is stopped and reported as a message storm when more events than this wait at once.
    /// Healthy runs keep a few hundred in flight; a bug that answers one message with several grows
    /// the queue exponentially and would otherwise exhaust memory.
    pub in_flight_events_max: usize,
    /// ... or when more messages than this were sent in all. Healthy runs send 10⁴–10⁵ (heartbeats
    /// included); a bug that keeps two processes answering each other sends without end.
    pub messages_max: u64,
    /// Multi-Ring Paxos (thesis 5.2.1): λ, the instances the ring's coordinator must open every
    /// `skip_interval_us` (Δ), making up with skip instances for those it did not; 0 (a ring of its
    /// own, every single-ring run) proposes no skips.
    pub skip_lambda_instances: u64,
    pub skip_interval_us: Tick,
}

impl SimConfig {
    /// The run of `seed` for `protocol` with `f`: the seed also picks the cluster size (2f+1 acceptors
    /// plus 0–2 learner/proposer-only processes), the storage mode, the workload and how small the
    /// batches, window, garbage-collection margin and Phase 1B pieces are, so the seeds cover
    /// batching, windows, trimming and piecewise Phase 1 as well as faults.
    pub fn for_seed(protocol: Protocol, f: usize, seed: u64) -> SimConfig {
        let mut rng = Rng::new(seed.wrapping_mul(0x2545_F491_4F6C_DD1D) ^ f as u64);
        let acceptors = 2 * f as u16 + 1;
        SimConfig {
            protocol,
            seed,
            nodes: acceptors + rng.range(0, 2) as u16,
            f,
            recoverable: rng.chance(0.5),
            sync_before_acting: true,
            disk_sync_us_min: 20,
            disk_sync_us_max: 2_000,
            fault_phase_us: 2_000_000,
            heal_bound_us: 20_000_000,
            values_per_proposer: rng.range(20, 80) as u32,
            batch_bytes_max: [256, 1024, 32 * 1024][rng.range(0, 2) as usize],
            window_instances: rng.range(2, 16) as u32,
            gc_retain_instances: [8, 64, 100_000][rng.range(0, 2) as usize],
            phase1b_bytes_max: [200, 1024 * 1024][rng.range(0, 1) as usize],
            value_choice: ValueChoice::HighestVRnd,
            in_flight_events_max: 200_000,
            messages_max: 5_000_000,
            // Drawn last, so the draws above stay what they were for every seed.
            checkpoint_interval_instances: [0, 3, 16][rng.range(0, 2) as usize],
            // Not drawn: a Multi-Ring run sets them on each ring (`sim::multiring`).
            skip_lambda_instances: 0,
            skip_interval_us: 1_000,
        }
    }

    /// The two runs of `seed`: in-memory Ring Paxos (at most f acceptors crash, and come back
    /// without their state) and Recoverable Ring Paxos with `sync` storage (any process crashes, in
    /// half the runs a majority of the acceptors at once), with the same workload and network.
    pub fn in_both_storage_modes(protocol: Protocol, f: usize, seed: u64) -> [SimConfig; 2] {
        let run = SimConfig::for_seed(protocol, f, seed);
        [SimConfig { recoverable: false, ..run.clone() }, SimConfig { recoverable: true, ..run }]
    }
}
