//! The fault schedule of one simulated run, drawn from its seed: lossy, duplicating, reordering links;
//! multicast that loses packets per receiver; partitions; crashes and restarts.
//!
//! What may crash depends on the storage mode (thesis 3.3.5). In-memory Ring Paxos assumes a majority
//! of acceptors never fails, so at most f acceptors are crash-prone in such a run (they come back
//! without their state and no longer serve as acceptors). A recoverable run keeps acceptor state on
//! stable storage, so any process may crash and come back with it.

use crate::proto::{NodeId, Tick};

use super::rng::Rng;

/// Per-message faults of the network while the fault phase lasts.
#[derive(Debug, Clone, PartialEq)]
pub struct NetworkFaults {
    pub drop_p: f64,
    pub duplicate_p: f64,
    /// Loss of one receiver's copy of a multicast.
    pub multicast_drop_p: f64,
    /// Every message takes `delay_min_us..=delay_max_us`; different delays reorder messages.
    pub delay_min_us: Tick,
    pub delay_max_us: Tick,
}

impl NetworkFaults {
    /// The network of the heal phase: no loss, no duplicates, short delays.
    pub fn healed() -> NetworkFaults {
        NetworkFaults {
            drop_p: 0.0,
            duplicate_p: 0.0,
            multicast_drop_p: 0.0,
            delay_min_us: 50,
            delay_max_us: 300,
        }
    }
}

/// Processes in `side` cannot exchange messages with the others between `start_us` and `end_us`.
#[derive(Debug, Clone, PartialEq)]
pub struct Partition {
    pub start_us: Tick,
    pub end_us: Tick,
    pub side: Vec<NodeId>,
}

impl Partition {
    pub fn separates(&self, now: Tick, a: NodeId, b: NodeId) -> bool {
        now >= self.start_us
            && now < self.end_us
            && (self.side.contains(&a) != self.side.contains(&b))
    }
}

/// `node` crashes at `at_us` and restarts at `restart_at_us`.
#[derive(Debug, Clone, PartialEq)]
pub struct Crash {
    pub node: NodeId,
    pub at_us: Tick,
    pub restart_at_us: Tick,
}

#[derive(Debug, Clone, PartialEq)]
pub struct FaultPlan {
    pub network: NetworkFaults,
    pub partitions: Vec<Partition>,
    pub crashes: Vec<Crash>,
}

/// Whether `node` is already down at some time in `at_us..=restart_at_us`.
fn overlaps(crashes: &[Crash], node: NodeId, at_us: Tick, restart_at_us: Tick) -> bool {
    crashes.iter().any(|c| c.node == node && at_us <= c.restart_at_us && c.at_us <= restart_at_us)
}

impl FaultPlan {
    /// The most acceptors among `acceptors` down at the same time.
    pub fn acceptors_down_at_once_max(&self, acceptors: &[NodeId]) -> usize {
        self.crashes
            .iter()
            .map(|c| {
                self.crashes
                    .iter()
                    .filter(|d| acceptors.contains(&d.node))
                    .filter(|d| d.at_us <= c.at_us && c.at_us < d.restart_at_us)
                    .count()
            })
            .max()
            .unwrap_or(0)
    }

    /// Draws a plan for `nodes` processes whose acceptors are `acceptors`, over `fault_phase_us`.
    pub fn generate(
        rng: &mut Rng,
        nodes: u16,
        acceptors: &[NodeId],
        f: usize,
        recoverable: bool,
        fault_phase_us: Tick,
    ) -> FaultPlan {
        let network = NetworkFaults {
            drop_p: rng.float(0.0, 0.08),
            duplicate_p: rng.float(0.0, 0.04),
            multicast_drop_p: rng.float(0.0, 0.08),
            delay_min_us: rng.range(20, 200),
            delay_max_us: rng.range(300, 3_000),
        };

        let mut partitions = Vec::new();
        for _ in 0..rng.range(0, 3) {
            let start_us = rng.range(0, fault_phase_us * 3 / 4);
            let end_us = (start_us + rng.range(20_000, 400_000)).min(fault_phase_us);
            let side_len = rng.range(1, u64::from(nodes / 2).max(1)) as usize;
            let mut side = Vec::with_capacity(side_len);
            while side.len() < side_len {
                let n = rng.range(0, u64::from(nodes) - 1) as NodeId;
                if !side.contains(&n) {
                    side.push(n);
                }
            }
            partitions.push(Partition { start_us, end_us, side });
        }

        // Which processes may crash in this run.
        let mut crash_prone: Vec<NodeId> = (0..nodes).filter(|n| !acceptors.contains(n)).collect();
        if recoverable {
            crash_prone.extend_from_slice(acceptors);
        } else {
            let mut candidates = acceptors.to_vec();
            for _ in 0..rng.range(0, f as u64) {
                let i = rng.range(0, candidates.len() as u64 - 1) as usize;
                crash_prone.push(candidates.swap_remove(i));
            }
        }
        let mut crashes: Vec<Crash> = Vec::new();
        if !crash_prone.is_empty() {
            for _ in 0..rng.range(0, 4) {
                let node = crash_prone[rng.range(0, crash_prone.len() as u64 - 1) as usize];
                let at_us = rng.range(0, fault_phase_us * 3 / 4);
                let restart_at_us = (at_us + rng.range(10_000, 500_000)).min(fault_phase_us);
                if !overlaps(&crashes, node, at_us, restart_at_us) {
                    crashes.push(Crash { node, at_us, restart_at_us });
                }
            }
        }
        // Recoverable Ring Paxos must stay safe when more than f acceptors fail (3.3.5): in half of
        // the recoverable runs a majority of the acceptors, or all of them, crash within a moment of
        // each other (a power loss) and come back with what their disks kept. Drawn from a stream
        // of its own so the plans above stay what they were for every seed.
        let mut outage = rng.fork();
        if recoverable && outage.chance(0.5) {
            let down = outage.range(f as u64 + 1, acceptors.len() as u64) as usize;
            let at_us = outage.range(0, fault_phase_us * 3 / 4);
            let mut candidates = acceptors.to_vec();
            for _ in 0..down {
                let i = outage.range(0, candidates.len() as u64 - 1) as usize;
                let node = candidates.swap_remove(i);
                let at_us = at_us + outage.range(0, 2_000);
                let restart_at_us = (at_us + outage.range(10_000, 300_000)).min(fault_phase_us);
                if !overlaps(&crashes, node, at_us, restart_at_us) {
                    crashes.push(Crash { node, at_us, restart_at_us });
                }
            }
        }
        FaultPlan { network, partitions, crashes }
    }
}
