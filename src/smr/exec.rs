//! The execution models of a replica (thesis 6.2, 6.5.2; optimistic P-SMR) and the threads that
//! run them.
//!
//! | model | ordering | delivery | execution |
//! | --- | --- | --- | --- |
//! | SMR | one group (total order) | one thread | that thread, every command |
//! | sP-SMR | one group (total order) | a scheduler thread, which hands each batch to the workers C-G names | MPL workers: own lane in parallel, g_all commands in synchronous mode |
//! | P-SMR | MPL groups + g_all | worker i merges g_i and g_all itself (no scheduler) | the same workers |
//! | opt-PSMR | as P-SMR | as P-SMR | as P-SMR, and optimistic commands run in their key's lane unless the service finds a conflict |
//!
//! The group layout of P-SMR is fixed: group 0 is g_all and group i + 1 is lane i's g_i
//! ([`ExecModel::groups`]); SMR and sP-SMR use group 0 alone.
//!
//! **sP-SMR's scheduler** sends each batch to the workers that have commands in it (all of them
//! when one is a g_all command), and each worker picks its own commands out of the batch by C-G
//! ([`Scope::Total`]). Commands thus cross the thread boundary a batch at a
//! time, yet the scheduler still delivers and maps every command, the central step whose cost
//! the thesis measures. A g_all command needs no waiting by the scheduler: the workers' queues
//! are in order, so they meet at it exactly as P-SMR's workers do.

use std::sync::Arc;
use std::thread::JoinHandle;

use super::cdep::{CommandToGroups, Destination};
use super::checkpoint::{Checkpointer, REPLICA_CLIENT};
use super::client_table::ClientTable;
use super::handoff::{HandoffReceiver, HandoffSender, handoff};
use super::request::RequestBatch;
use super::service::Service;
use super::worker::{Delivered, ReplySink, Scope, Shared, WorkSource, Worker, WorkerStats};

/// See the module docs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ExecModel {
    Smr,
    SpSmr,
    Psmr,
    OptPsmr,
}

/// The group every P-SMR worker delivers (g_all), and SMR's and sP-SMR's only group.
pub const GROUP_ALL: u32 = 0;

impl ExecModel {
    pub fn parse(s: &str) -> Option<ExecModel> {
        Some(match s {
            "smr" => ExecModel::Smr,
            "spsmr" => ExecModel::SpSmr,
            "psmr" => ExecModel::Psmr,
            "opt-psmr" => ExecModel::OptPsmr,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            ExecModel::Smr => "smr",
            ExecModel::SpSmr => "spsmr",
            ExecModel::Psmr => "psmr",
            ExecModel::OptPsmr => "opt-psmr",
        }
    }

    /// Worker threads for `workers` asked for: SMR has one.
    pub fn lanes(self, workers: usize) -> usize {
        match self {
            ExecModel::Smr => 1,
            _ => workers.max(1),
        }
    }

    /// Whether commands are ordered by atomic multicast in MPL + 1 groups (else one group).
    pub fn multicast(self) -> bool {
        matches!(self, ExecModel::Psmr | ExecModel::OptPsmr)
    }

    /// The groups the service's commands travel in.
    pub fn groups(self, lanes: usize) -> Vec<u32> {
        if self.multicast() { (0..=lanes as u32).collect() } else { vec![GROUP_ALL] }
    }

    /// The group of lane `lane`'s g_i (P-SMR).
    pub fn lane_group(lane: usize) -> u32 {
        lane as u32 + 1
    }

    /// The group a client sends a command with destination `d` to.
    pub fn group_of(self, d: Destination) -> u32 {
        match (self.multicast(), d) {
            (true, Destination::Lane(l)) => ExecModel::lane_group(l),
            _ => GROUP_ALL,
        }
    }

    /// How a batch delivered in `group` reaches the workers.
    pub fn scope_of(self, group: u32) -> Scope {
        match (self.multicast(), group) {
            (false, _) => Scope::Total,
            (true, GROUP_ALL) => Scope::All,
            (true, _) => Scope::Lane,
        }
    }
}

/// Where a replica's workers get their batches.
pub enum Inputs {
    /// One source per lane: P-SMR's merged g_i and g_all, or SMR's total order for its one lane.
    PerLane(Vec<Box<dyn WorkSource>>),
    /// sP-SMR: the total order, which the scheduler takes.
    Scheduled(Box<dyn WorkSource>),
}

/// Where an execution starts from, beside the state: fresh, or a checkpoint's client tables; and
/// who takes checkpoints.
#[derive(Default)]
pub struct ExecStart {
    /// Per lane: its table and g_all's (`None`: empty tables).
    pub tables: Option<Vec<(ClientTable, ClientTable)>>,
    pub checkpointer: Option<Arc<dyn Checkpointer>>,
}

/// What a replica's threads did, when stopped.
#[derive(Debug)]
pub struct ExecReport {
    /// Per lane.
    pub workers: Vec<WorkerStats>,
    /// Batches the sP-SMR scheduler handed on, counted once per worker it reached.
    pub scheduled_handoffs: u64,
    /// Per lane: its table, and (lane 0) g_all's.
    pub tables: Vec<(ClientTable, ClientTable)>,
}

/// A replica's execution threads. See the module docs.
pub struct Execution<S: Service> {
    shared: Arc<Shared<S>>,
    workers: Vec<JoinHandle<(WorkerStats, ClientTable, ClientTable)>>,
    scheduler: Option<JoinHandle<u64>>,
}

impl<S: Service> Execution<S> {
    /// Starts the model's threads over `state`: one worker per lane of `cg`, each replying into
    /// its sink, and sP-SMR's scheduler. `on_start(lane)` runs first on each worker thread (to
    /// pin it); the scheduler runs it with `lanes`.
    pub fn start<R: ReplySink + 'static>(
        model: ExecModel,
        state: S,
        cg: CommandToGroups,
        inputs: Inputs,
        sinks: Vec<R>,
        on_start: Arc<dyn Fn(usize) + Send + Sync>,
        from: ExecStart,
    ) -> Execution<S> {
        let lanes = cg.lanes();
        assert_eq!(sinks.len(), lanes, "one reply sink per lane");
        let mut shared = Shared::new(state, cg, model == ExecModel::OptPsmr);
        shared.checkpointer = from.checkpointer;
        let shared = Arc::new(shared);
        let mut tables = from.tables.unwrap_or_default().into_iter();
        let (sources, scheduler): (Vec<Box<dyn WorkSource>>, _) = match inputs {
            Inputs::PerLane(sources) => {
                assert_eq!(sources.len(), lanes, "one source per lane");
                (sources, None)
            }
            Inputs::Scheduled(mut source) => {
                let (txs, rxs): (Vec<_>, Vec<_>) = (0..lanes).map(|_| handoff(1024)).unzip();
                let cg = shared.cg.clone();
                let on_start = Arc::clone(&on_start);
                let scheduler = std::thread::Builder::new()
                    .name("smr-scheduler".into())
                    .spawn(move || {
                        on_start(lanes);
                        schedule::<S>(source.as_mut(), &cg, txs)
                    })
                    .expect("spawning the scheduler thread");
                let sources =
                    rxs.into_iter().map(|rx| Box::new(Queued { rx, last: None }) as _).collect();
                (sources, Some(scheduler))
            }
        };
        let workers = sources
            .into_iter()
            .zip(sinks)
            .enumerate()
            .map(|(lane, (mut source, sink))| {
                let shared = Arc::clone(&shared);
                let on_start = Arc::clone(&on_start);
                let tables = tables.next().unwrap_or_default();
                std::thread::Builder::new()
                    .name(format!("smr-worker-{lane}"))
                    .spawn(move || {
                        on_start(lane);
                        Worker::with_tables(lane, shared, sink, tables).run(source.as_mut())
                    })
                    .expect("spawning a worker thread")
            })
            .collect();
        Execution { shared, workers, scheduler }
    }

    /// What the workers share: the state, and per-lane counts of commands executed.
    pub fn shared(&self) -> &Arc<Shared<S>> {
        &self.shared
    }

    /// Waits for the threads to end (their sources must stop) and returns what they did.
    pub fn join(self) -> (ExecReport, Arc<Shared<S>>) {
        let scheduled_handoffs =
            self.scheduler.map_or(0, |s| s.join().expect("the scheduler thread panicked"));
        let mut workers = Vec::new();
        let mut tables = Vec::new();
        for w in self.workers {
            let (stats, table, table_all) = w.join().expect("a worker thread panicked");
            workers.push(stats);
            tables.push((table, table_all));
        }
        (ExecReport { workers, scheduled_handoffs, tables }, self.shared)
    }
}

/// A worker's source under sP-SMR: its queue from the scheduler.
struct Queued {
    rx: HandoffReceiver<Delivered>,
    /// The scheduler's position that came with the last batch, if it did.
    last: Option<Arc<[u8]>>,
}

impl WorkSource for Queued {
    fn next(&mut self) -> Option<Delivered> {
        let d = self.rx.recv()?;
        self.last.clone_from(&d.position);
        Some(d)
    }

    fn position(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.last.as_deref().unwrap_or_default());
    }
}

/// sP-SMR's scheduler: delivers the total order and hands each batch to the workers whose
/// commands it holds. Returns the hand-offs made.
fn schedule<S: Service>(
    source: &mut dyn WorkSource,
    cg: &CommandToGroups,
    mut lanes: Vec<HandoffSender<Delivered>>,
) -> u64 {
    let mut handoffs = 0;
    while let Some(d) = source.next() {
        let mut position = None;
        let mask = match RequestBatch::parse(&d.payload) {
            // Lane 0 counts it as dropped; nobody else needs to see it.
            Err(_) => 1,
            Ok(batch) if batch.client == REPLICA_CLIENT => {
                // The workers meet at it with the scheduler's position, which is here, now.
                let mut p = Vec::new();
                source.position(&mut p);
                position = Some(Arc::from(p));
                u64::MAX
            }
            Ok(batch) => {
                let mut mask = 0u64;
                for r in batch.iter() {
                    match super::worker::total_destination::<S>(cg, batch.client, r) {
                        Destination::Lane(l) => mask |= 1 << l,
                        Destination::All => {
                            mask = u64::MAX;
                            break;
                        }
                    }
                }
                mask
            }
        };
        for (lane, tx) in lanes.iter_mut().enumerate() {
            if mask & (1 << lane) != 0 {
                let item = Delivered {
                    scope: Scope::Total,
                    payload: d.payload.clone(),
                    position: position.clone(),
                };
                if tx.send(item).is_err() {
                    return handoffs; // a worker stopped: the replica is shutting down
                }
                handoffs += 1;
            }
        }
    }
    handoffs
}
