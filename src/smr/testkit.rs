//! Test support: runs a service's request batches through every execution model, with real
//! threads, and compares what each replica did with sequential execution of the same order.
//!
//! A *script* is a sequence of (group, batch) in one order of delivery. P-SMR's workers each get
//! the items of their own group and g_all, in script order (what Multi-Ring Paxos' merge gives
//! them); SMR and sP-SMR get every item. The reference is sequential SMR over the script. Since
//! C-G puts dependent commands in a common group, every model must produce the reference's
//! replies and final state, whatever the threads' timing.

use std::sync::{Arc, Mutex};

use bytes::Bytes;

use super::cdep::{CommandToGroups, Destination, KeyPartition};
use super::exec::{ExecModel, ExecReport, ExecStart, Execution, GROUP_ALL, Inputs};
use super::request::{BatchWriter, ClientId, Reply, Status};
use super::service::Service;
use super::worker::{Delivered, ReplySink, WorkSource};

/// A reply as a client would record it.
pub type Recorded = (ClientId, u64, Status, Vec<u8>);

/// Replies gathered by every lane of a replica.
#[derive(Clone, Default)]
pub struct Collect(pub Arc<Mutex<Vec<Recorded>>>);

impl ReplySink for Collect {
    fn reply(&mut self, client: ClientId, r: Reply<'_>) {
        self.0.lock().unwrap().push((client, r.seq, r.status, r.body.to_vec()));
    }
}

/// A fixed list of batches, each with its index in the script: its position is the index of the
/// batch it handed out last (what a checkpoint records).
pub struct Script {
    items: std::vec::IntoIter<(u64, Delivered)>,
    last: u64,
}

impl WorkSource for Script {
    fn next(&mut self) -> Option<Delivered> {
        let (index, d) = self.items.next()?;
        self.last = index;
        Some(d)
    }

    fn position(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.last.to_le_bytes());
    }
}

/// A batch being filled: its client, its group, and its (sequence number, command) pairs.
type OpenBatch = (ClientId, u32, Vec<(u64, Vec<u8>)>);

/// Builds a script: each client's commands go, in batches of up to `per_batch`, to the group the
/// model's C-G gives them (`optimistic`: opt-PSMR's first destination).
pub fn script<S: Service>(
    model: ExecModel,
    cg: &CommandToGroups,
    commands: &[(ClientId, Vec<u8>)],
    per_batch: usize,
) -> Vec<(u32, Bytes)> {
    let mut seqs = std::collections::HashMap::new();
    let mut out = Vec::new();
    let mut open: Vec<OpenBatch> = Vec::new();
    let flush = |out: &mut Vec<(u32, Bytes)>, (client, group, reqs): OpenBatch| {
        let mut w = BatchWriter::new(1 << 16);
        // What a client would have acknowledged: replies below its older outstanding commands
        // (within the window of the replicas' tables).
        w.begin(client, reqs[0].0.saturating_sub(32));
        for (seq, c) in &reqs {
            w.push(*seq, c);
        }
        out.push((group, Bytes::copy_from_slice(w.bytes())));
    };
    for (client, command) in commands {
        let seq = seqs.entry(*client).or_insert(0u64);
        let sig = S::signature(command).expect("scripts hold good commands");
        let d = if model == ExecModel::OptPsmr {
            cg.optimistic_destination(sig, *seq as usize)
        } else {
            cg.destination(sig, *seq as usize)
        };
        let group = model.group_of(d.unwrap_or(Destination::All));
        match open.iter().position(|(c, g, _)| c == client && *g == group) {
            Some(i) if open[i].2.len() < per_batch => open[i].2.push((*seq, command.clone())),
            found => {
                if let Some(i) = found {
                    flush(&mut out, open.remove(i));
                }
                open.push((*client, group, vec![(*seq, command.clone())]));
            }
        }
        *seq += 1;
        if open.len() > 4 {
            flush(&mut out, open.remove(0));
        }
    }
    for o in open {
        flush(&mut out, o);
    }
    out
}

/// Where two reply lists first differ, for a failure message that fits on a screen.
pub fn first_difference(
    a: &[Recorded],
    b: &[Recorded],
) -> Option<(usize, Option<Recorded>, Option<Recorded>)> {
    let n = a.len().max(b.len());
    (0..n).find(|&i| a.get(i) != b.get(i)).map(|i| (i, a.get(i).cloned(), b.get(i).cloned()))
}

/// Runs `script` under `model` with `lanes` workers from a fresh `state()`; returns the sorted
/// replies, the final state and the report.
pub fn run<S: Service>(
    model: ExecModel,
    lanes: usize,
    key_space: u64,
    state: S,
    script: &[(u32, Bytes)],
) -> (Vec<Recorded>, Arc<super::worker::Shared<S>>, ExecReport) {
    run_from(model, lanes, key_space, state, script, 0, ExecStart::default())
}

/// [`run`] from the script's batch `from` on (a replica restored from a checkpoint taken there),
/// with `start`'s tables and checkpointer.
pub fn run_from<S: Service>(
    model: ExecModel,
    lanes: usize,
    key_space: u64,
    state: S,
    script: &[(u32, Bytes)],
    from: usize,
    start: ExecStart,
) -> (Vec<Recorded>, Arc<super::worker::Shared<S>>, ExecReport) {
    let cg = CommandToGroups::derive(&S::dependencies(), KeyPartition::new(key_space, lanes))
        .expect("the service's C-Dep derives");
    let delivered = |group: u32, payload: &Bytes| Delivered {
        scope: model.scope_of(group),
        payload: payload.clone(),
        position: None,
    };
    let indexed: Vec<(u64, &(u32, Bytes))> =
        script.iter().enumerate().skip(from).map(|(i, item)| (i as u64, item)).collect();
    let inputs = if model.multicast() {
        let per_lane = (0..lanes)
            .map(|lane| {
                let mine = ExecModel::lane_group(lane);
                let items: Vec<_> = indexed
                    .iter()
                    .filter(|(_, (g, _))| *g == mine || *g == GROUP_ALL)
                    .map(|(i, (g, p))| (*i, delivered(*g, p)))
                    .collect();
                Box::new(Script { items: items.into_iter(), last: 0 }) as Box<dyn WorkSource>
            })
            .collect();
        Inputs::PerLane(per_lane)
    } else {
        let items: Vec<_> = indexed.iter().map(|(i, (g, p))| (*i, delivered(*g, p))).collect();
        let source = Box::new(Script { items: items.into_iter(), last: 0 });
        if model == ExecModel::SpSmr {
            Inputs::Scheduled(source)
        } else {
            Inputs::PerLane(vec![source])
        }
    };
    let collect = Collect::default();
    let sinks = vec![collect.clone(); lanes];
    let exec = Execution::start(model, state, cg, inputs, sinks, Arc::new(|_| {}), start);
    let (report, shared) = exec.join();
    let mut replies = std::mem::take(&mut *collect.0.lock().unwrap());
    replies.sort();
    (replies, shared, report)
}

/// The tests' workload generator.
pub use super::splitmix::SplitMix64 as Rng;
