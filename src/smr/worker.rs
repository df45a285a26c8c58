//! A worker thread of a replica: the server proxy's side of Algorithm 1 (thesis 6.3.4), shared
//! by every execution model.
//!
//! A worker takes delivered request batches from its [`WorkSource`] and handles each command by
//! where the batch reached it ([`Scope`]):
//!
//! - [`Scope::Lane`]: delivered in the worker's own group g_i (P-SMR, opt-PSMR). Every command
//!   must belong there by C-G; it runs in *parallel mode*, concurrently with the other workers
//!   ([`Service::execute_shared`], or [`Service::execute_optimistic`] for opt-PSMR's optimistic
//!   commands).
//! - [`Scope::All`]: delivered in g_all, which every worker delivers. The workers meet
//!   ([`Rendezvous`]) and the lowest lane executes the batch's commands in *synchronous mode*
//!   ([`Service::execute_exclusive`]) while the others wait.
//! - [`Scope::Total`]: delivered in the total order (SMR, sP-SMR): every worker sees the batch
//!   and C-G decides each command, executing its own lane's in parallel mode, skipping other
//!   lanes', and meeting the others for each run of consecutive g_all commands.
//!
//! **The state's lock.** The state sits in a `RwLock`: in parallel mode a worker holds a read
//! guard, taken once and kept across batches, so parallel mode costs no lock operation per
//! command or batch; it lets the guard go only to meet the others, and the executor takes the
//! write guard only once every other worker arrived, so it never waits on the lock.
//!
//! Exactly-once: each lane keeps the [`ClientTable`] of the commands it executes, and lane 0
//! also g_all's (it executes every g_all command).
//!
//! Checkpoint requests ([`checkpoint`](super::checkpoint)) go through synchronous mode like any
//! g_all command; lane 0 takes the checkpoint instead of executing anything.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use bytes::Bytes;

use super::cdep::{ClassMapping, CommandToGroups, Destination};
use super::checkpoint::{Checkpoint, Checkpointer, LanePart, Parts, REPLICA_CLIENT};
use super::client_table::{Admission, ClientTable};
use super::rendezvous::{Aborted, Rendezvous};
use super::request::{ClientId, Reply, Request, RequestBatch, Status};
use super::service::Service;

/// How a batch reached a worker (module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    Lane,
    All,
    Total,
}

/// A delivered request batch.
#[derive(Clone, Debug)]
pub struct Delivered {
    pub scope: Scope,
    pub payload: Bytes,
    /// sP-SMR: the scheduler's source's position, when the batch holds a checkpoint request
    /// (the workers' own sources are only queues).
    pub position: Option<Arc<[u8]>>,
}

/// Where a worker's batches come from: its merged groups (P-SMR), the scheduler (sP-SMR), the
/// total order (SMR), or a test. `None`: stop.
pub trait WorkSource: Send {
    fn next(&mut self) -> Option<Delivered>;
    /// Appends where the source stands, from the batch it handed out last on (see
    /// [`checkpoint`](super::checkpoint)); a source that cannot be resumed writes nothing.
    fn position(&self, _out: &mut Vec<u8>) {}
}

/// Where a worker's replies go: straight to the clients (6.3.4 line 13).
pub trait ReplySink: Send {
    fn reply(&mut self, client: ClientId, reply: Reply<'_>);
    /// A batch is done: a good moment to send what was gathered.
    fn flush(&mut self) {}
}

/// A counter alone on its cache line, so workers counting side by side do not slow each other.
#[derive(Debug, Default)]
#[repr(align(64))]
pub struct LaneCounter(pub AtomicU64);

/// What every worker of a replica shares.
#[derive(Debug)]
pub struct Shared<S> {
    pub state: RwLock<S>,
    pub rendezvous: Rendezvous,
    pub cg: CommandToGroups,
    /// opt-PSMR: lanes accept optimistic commands keyed to them.
    pub optimistic: bool,
    /// Commands each lane executed (synchronous ones count for lane 0), for per-thread
    /// throughput while the replica runs.
    pub executed: Vec<LaneCounter>,
    /// Takes checkpoints (`None`: checkpoint requests are ignored).
    pub checkpointer: Option<Arc<dyn Checkpointer>>,
    parts: Parts,
}

impl<S: Service> Shared<S> {
    pub fn new(state: S, cg: CommandToGroups, optimistic: bool) -> Shared<S> {
        let lanes = cg.lanes();
        Shared {
            state: RwLock::new(state),
            rendezvous: Rendezvous::new(lanes),
            cg,
            optimistic,
            executed: (0..lanes).map(|_| LaneCounter::default()).collect(),
            checkpointer: None,
            parts: Parts::new(lanes),
        }
    }

    /// The state, for a caller outside the workers (they must be stopped or waiting).
    pub fn read(&self) -> RwLockReadGuard<'_, S> {
        self.state.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, S> {
        self.state.write().unwrap_or_else(|p| p.into_inner())
    }
}

/// What a worker did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WorkerStats {
    /// Commands executed (a duplicate is not).
    pub executed: u64,
    /// Of those, in synchronous mode (by lane 0).
    pub synchronous: u64,
    /// Rendezvous taken part in.
    pub rendezvous: u64,
    /// Copies of decided commands answered from the client table.
    pub duplicates: u64,
    /// opt-PSMR commands refused for conflict.
    pub conflicts: u64,
    /// Commands refused as not belonging to the group they came in, undecodable or outside their
    /// client's window.
    pub refused: u64,
    /// Batches dropped as malformed.
    pub malformed_batches: u64,
}

/// See the module docs.
pub struct Worker<S: Service, R: ReplySink> {
    lane: usize,
    shared: Arc<Shared<S>>,
    table: ClientTable,
    /// g_all's table: lane 0 only.
    table_all: ClientTable,
    sink: R,
    reply: Vec<u8>,
    stats: WorkerStats,
    /// Lane 0: the last synchronous run was long, so the others slept through it.
    last_run_long: bool,
}

/// The state as a worker holds it at the moment.
enum Access<'a, S> {
    None,
    Shared(RwLockReadGuard<'a, S>),
}

impl<S: Service, R: ReplySink> Worker<S, R> {
    pub fn new(lane: usize, shared: Arc<Shared<S>>, sink: R) -> Worker<S, R> {
        Worker::with_tables(lane, shared, sink, (ClientTable::new(), ClientTable::new()))
    }

    /// A worker whose lane table and g_all table start as `tables` (restored from a checkpoint).
    pub fn with_tables(
        lane: usize,
        shared: Arc<Shared<S>>,
        sink: R,
        (table, table_all): (ClientTable, ClientTable),
    ) -> Worker<S, R> {
        assert!(lane < shared.cg.lanes(), "lane {lane} of {} lanes", shared.cg.lanes());
        Worker {
            lane,
            shared,
            table,
            table_all,
            sink,
            reply: Vec::with_capacity(256),
            stats: WorkerStats::default(),
            last_run_long: false,
        }
    }

    /// Handles what `source` delivers until it stops or another worker stopped; then tells the
    /// others nobody should wait for this one.
    pub fn run(mut self, source: &mut dyn WorkSource) -> (WorkerStats, ClientTable, ClientTable) {
        let shared = Arc::clone(&self.shared);
        let mut access = Access::None;
        while let Some(d) = source.next() {
            let position = Position { source: &*source, scheduler: d.position.as_deref() };
            if self.handle(&shared, &mut access, d.scope, &d.payload, position).is_err() {
                break;
            }
            self.sink.flush();
            shared.executed[self.lane].0.store(self.stats.executed, Ordering::Relaxed);
        }
        drop(access);
        shared.rendezvous.abort();
        self.sink.flush();
        shared.executed[self.lane].0.store(self.stats.executed, Ordering::Relaxed);
        (self.stats, self.table, self.table_all)
    }

    fn handle<'s>(
        &mut self,
        shared: &'s Shared<S>,
        access: &mut Access<'s, S>,
        scope: Scope,
        payload: &[u8],
        position: Position<'_>,
    ) -> Result<(), Aborted> {
        let Ok(batch) = RequestBatch::parse(payload) else {
            // Every worker and replica decodes the same bytes, so all drop the batch.
            self.stats.malformed_batches += 1;
            return Ok(());
        };
        match scope {
            // Checkpoint requests come in g_all only (a lane's group is no place to meet).
            Scope::Lane if batch.client == REPLICA_CLIENT => {
                self.stats.refused += batch.iter().count() as u64;
                Ok(())
            }
            Scope::Lane => {
                for r in batch.iter() {
                    self.parallel(shared, access, &batch, r);
                }
                Ok(())
            }
            Scope::All => {
                let mut all = batch.iter();
                self.synchronous(shared, access, &batch, &mut all, usize::MAX, position)
            }
            Scope::Total => {
                let mut rest = batch.iter().peekable();
                while let Some(&r) = rest.peek() {
                    match total_destination::<S>(&shared.cg, batch.client, r) {
                        Destination::Lane(l) => {
                            rest.next();
                            if l == self.lane {
                                self.parallel(shared, access, &batch, r);
                            }
                        }
                        Destination::All => {
                            let run = rest.clone().take_while(|&r| {
                                total_destination::<S>(&shared.cg, batch.client, r)
                                    == Destination::All
                            });
                            let n = run.count();
                            self.synchronous(shared, access, &batch, &mut rest, n, position)?;
                        }
                    }
                }
                Ok(())
            }
        }
    }

    /// One command in parallel mode (lines 10–13).
    fn parallel<'s>(
        &mut self,
        shared: &'s Shared<S>,
        access: &mut Access<'s, S>,
        batch: &RequestBatch<'_>,
        r: Request<'_>,
    ) {
        if answered_from_table(&mut self.table, batch, r, &mut self.stats, &mut self.sink) {
            return;
        }
        if matches!(access, Access::None) {
            *access = Access::Shared(shared.state.read().unwrap_or_else(|p| p.into_inner()));
        }
        let Access::Shared(state) = access else { unreachable!("taken above") };
        self.reply.clear();
        let status = match S::signature(r.command) {
            Err(_) => Status::BadCommand,
            Ok(sig) if !shared.cg.belongs_to_lane(sig, self.lane, shared.optimistic) => {
                Status::WrongGroup
            }
            Ok(sig) if shared.cg.mapping(sig.class) == Some(ClassMapping::All) => {
                // Only an optimistic command is let through to a lane (`belongs_to_lane`).
                let range = shared.cg.partition().range_of(self.lane);
                match state.execute_optimistic(r.command, range, &mut self.reply) {
                    Ok(()) => Status::Executed,
                    Err(_) => {
                        self.reply.clear();
                        Status::Conflict
                    }
                }
            }
            Ok(_) => {
                state.execute_shared(r.command, &mut self.reply);
                Status::Executed
            }
        };
        self.finish(false, batch.client, r.seq, status);
    }

    /// The next `n` commands of `requests` in synchronous mode (lines 15–26): the lowest lane
    /// executes them once every other lane has arrived; the others wait until it is done.
    fn synchronous<'s, 'b>(
        &mut self,
        shared: &'s Shared<S>,
        access: &mut Access<'s, S>,
        batch: &RequestBatch<'b>,
        requests: &mut dyn Iterator<Item = Request<'b>>,
        n: usize,
        position: Position<'_>,
    ) -> Result<(), Aborted> {
        *access = Access::None;
        self.stats.rendezvous += 1;
        let checkpoint = batch.client == REPLICA_CLIENT && shared.checkpointer.is_some();
        if self.lane != 0 {
            let run = requests.take(n).count();
            if checkpoint {
                shared.parts.put(self.lane, self.part(position));
            }
            return shared.rendezvous.arrive_and_wait(run > LONG_RUN);
        }
        shared.rendezvous.wait_for_others(!self.last_run_long)?;
        let mut run = 0;
        {
            let mut state = shared.write();
            for r in requests.take(n) {
                run += 1;
                if batch.client == REPLICA_CLIENT {
                    // One checkpoint per batch of requests (the others' parts are for one),
                    // however many it holds: the same at every replica.
                    if let Some(c) = shared.checkpointer.as_ref().filter(|_| run == 1) {
                        let mut lanes = vec![self.part(position)];
                        lanes.extend((1..shared.cg.lanes()).map(|l| shared.parts.take(l)));
                        let mut service = Vec::new();
                        state.snapshot(&mut service);
                        c.checkpoint(Checkpoint { service, lanes });
                    }
                    continue;
                }
                let table = &mut self.table_all;
                if answered_from_table(table, batch, r, &mut self.stats, &mut self.sink) {
                    continue;
                }
                self.reply.clear();
                let status = match S::signature(r.command) {
                    Err(_) => Status::BadCommand,
                    Ok(_) => {
                        state.execute_exclusive(r.command, &mut self.reply);
                        Status::Executed
                    }
                };
                self.finish(true, batch.client, r.seq, status);
            }
        }
        shared.rendezvous.release();
        self.last_run_long = run > LONG_RUN;
        Ok(())
    }

    /// This lane's part of a checkpoint.
    fn part(&self, position: Position<'_>) -> LanePart {
        let mut part = LanePart::default();
        self.table.encode(&mut part.table);
        self.table_all.encode(&mut part.table_all);
        match position.scheduler {
            Some(p) => part.position.extend_from_slice(p),
            None => position.source.position(&mut part.position),
        }
        part
    }

    /// Records a decided command in its table, counts it and replies.
    fn finish(&mut self, synchronous: bool, client: ClientId, seq: u64, status: Status) {
        let table = if synchronous { &mut self.table_all } else { &mut self.table };
        table.record(client, seq, status, &self.reply);
        match status {
            Status::Executed => {
                self.stats.executed += 1;
                self.stats.synchronous += u64::from(synchronous);
            }
            Status::Conflict => self.stats.conflicts += 1,
            _ => self.stats.refused += 1,
        }
        self.sink.reply(client, Reply { seq, status, body: &self.reply });
    }
}

/// Commands in a synchronous run beyond which the others sleep while lane 0 executes them
/// (`Rendezvous::arrive_and_wait`).
const LONG_RUN: usize = 4;

/// Where the batch being handled stands in the order, for a checkpoint.
#[derive(Clone, Copy)]
struct Position<'a> {
    source: &'a dyn WorkSource,
    /// sP-SMR: the scheduler's, which came with the batch.
    scheduler: Option<&'a [u8]>,
}

/// In the total order, where a command of `client` goes: by C-G; a checkpoint request to every
/// lane; an undecodable one is lane 0's to refuse. A free class (a store's reads when nothing
/// updates) is spread by sequence number, which every replica sees alike.
pub fn total_destination<S: Service>(
    cg: &CommandToGroups,
    client: ClientId,
    r: Request<'_>,
) -> Destination {
    if client == REPLICA_CLIENT {
        return Destination::All;
    }
    match S::signature(r.command) {
        Ok(sig) => cg.destination(sig, r.seq as usize).unwrap_or(Destination::Lane(0)),
        Err(_) => Destination::Lane(0),
    }
}

/// Consults `table` for `r`: false to execute it; true if it was answered here instead (a
/// duplicate), dropped (stale) or refused (outside the window).
fn answered_from_table(
    table: &mut ClientTable,
    batch: &RequestBatch<'_>,
    r: Request<'_>,
    stats: &mut WorkerStats,
    sink: &mut impl ReplySink,
) -> bool {
    let client = batch.client;
    match table.admit(client, batch.acked_below, r.seq) {
        Admission::Execute => false,
        Admission::Duplicate(status, body) => {
            stats.duplicates += 1;
            sink.reply(client, Reply { seq: r.seq, status, body });
            true
        }
        Admission::Stale => true,
        Admission::OutsideWindow => {
            stats.refused += 1;
            sink.reply(client, Reply { seq: r.seq, status: Status::OutsideWindow, body: &[] });
            true
        }
    }
}
