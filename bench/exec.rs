//! Execution alone: one replica's workers under SMR and under P-SMR, fed request batches from
//! memory, with no clients, front thread or rings. It measures what parallel execution itself
//! gives on this machine (thesis 6.5, Fig. 6.3's read-only commands), apart from the rest of a
//! command's path; `ringsmr local --service kv` measures the whole path, where on a 2-core host
//! the clients, the front thread and the rings share the cores with the workers.
//!
//! The batches are those clients would send: 64 clients, 20 commands a batch, each command in
//! the group C-G gives it (P-SMR: its key's lane). Every run builds the tree afresh.
//!
//! `cargo bench --bench exec -- [KEYS] [COMMANDS] [ROUNDS] [WORKERS]`
//! (defaults: 10000000 keys, 4000000 commands, 3 rounds, 2 workers). Prints Kcps per run and the
//! median ratio of P-SMR to SMR over rounds (each round runs SMR, then P-SMR).

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use ringsmr::apps::kv::command;
use ringsmr::apps::kv::store::KvStore;
use ringsmr::apps::kv::workload::{KeyDist, Mix, OpStream, key_space};
use ringsmr::smr::request::BatchWriter;
use ringsmr::smr::{
    CommandToGroups, Delivered, Destination, ExecModel, ExecStart, Execution, Inputs, KeyPartition,
    Reply, ReplySink, Service, WorkSource,
};

const CLIENTS: u64 = 64;
const PER_BATCH: usize = 20;

/// Hands out a fixed list of batches, then stops.
struct FromMemory(std::vec::IntoIter<Delivered>);

impl WorkSource for FromMemory {
    fn next(&mut self) -> Option<Delivered> {
        self.0.next()
    }
}

/// Counts replies and drops them.
#[derive(Default)]
struct Count(u64);

impl ReplySink for Count {
    fn reply(&mut self, _: u64, _: Reply<'_>) {
        self.0 += 1;
    }
}

/// The batches of `commands` read-only commands on uniform keys, per lane of `model`.
fn batches(
    model: ExecModel,
    cg: &CommandToGroups,
    keys: u64,
    commands: u64,
) -> Vec<Vec<Delivered>> {
    let lanes = cg.lanes();
    let mut ops = OpStream::new(Mix::Read, KeyDist::Uniform, keys, 7);
    // Per (client, group): the commands gathered for its next batch.
    let groups = model.groups(lanes).len();
    let mut open: Vec<Vec<(u64, Vec<u8>)>> = vec![Vec::new(); CLIENTS as usize * groups];
    let mut per_lane: Vec<Vec<Delivered>> = vec![Vec::new(); lanes];
    let mut emit = |client: u64, group: u32, reqs: &mut Vec<(u64, Vec<u8>)>| {
        let mut w = BatchWriter::new(1 << 16);
        w.begin(client, reqs[0].0);
        for (seq, c) in reqs.iter() {
            w.push(*seq, c);
        }
        reqs.clear();
        let d = Delivered {
            scope: model.scope_of(group),
            payload: Bytes::copy_from_slice(w.bytes()),
            position: None,
        };
        // Reads only: every batch goes to one lane (SMR: its only one).
        let lane = if model.multicast() { (group - 1) as usize } else { 0 };
        per_lane[lane].push(d);
    };
    for i in 0..commands {
        let client = i % CLIENTS;
        let seq = i / CLIENTS;
        let mut c = Vec::new();
        command::encode(ops.next_op(), command::COMMAND_BYTES, &mut c);
        let sig = KvStore::signature(&c).expect("a good command");
        let group = model.group_of(cg.destination(sig, seq as usize).unwrap_or(Destination::All));
        let slot = client as usize * groups + group as usize;
        open[slot].push((seq, c));
        if open[slot].len() == PER_BATCH {
            emit(client, group, &mut open[slot]);
        }
    }
    for (slot, reqs) in open.iter_mut().enumerate() {
        if !reqs.is_empty() {
            emit((slot / groups) as u64, (slot % groups) as u32, reqs);
        }
    }
    per_lane
}

/// Runs `batches` under `model`; returns commands executed a second.
fn run(model: ExecModel, cg: &CommandToGroups, keys: u64, batches: &[Vec<Delivered>]) -> f64 {
    let lanes = cg.lanes();
    let state = KvStore::preloaded(keys);
    let sources: Vec<Box<dyn WorkSource>> = batches
        .iter()
        .map(|b| Box::new(FromMemory(b.clone().into_iter())) as Box<dyn WorkSource>)
        .collect();
    let sinks: Vec<Count> = (0..lanes).map(|_| Count::default()).collect();
    // Workers pinned to the cores, lane by lane, as replicas run them.
    let cores = ringsmr::io::pin::allowed_cores();
    let on_start = Arc::new(move |lane: usize| {
        let _ = ringsmr::io::pin::pin_current_thread(cores[lane % cores.len()]);
    });
    let t0 = Instant::now();
    let exec = Execution::start(
        model,
        state,
        cg.clone(),
        Inputs::PerLane(sources),
        sinks,
        on_start,
        ExecStart::default(),
    );
    let (report, _) = exec.join();
    let secs = t0.elapsed().as_secs_f64();
    let executed: u64 = report.workers.iter().map(|w| w.executed).sum();
    executed as f64 / secs / 1e3
}

fn main() {
    // `cargo bench` passes `--bench`; the numbers are ours.
    let args: Vec<u64> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    let keys = args.first().copied().unwrap_or(10_000_000);
    let commands = args.get(1).copied().unwrap_or(4_000_000);
    let rounds = args.get(2).copied().unwrap_or(3);
    let workers = args.get(3).copied().unwrap_or(2) as usize;
    // C-G as the replicas derive it, for one lane (SMR) and for `workers` (P-SMR).
    let cg = |lanes| {
        CommandToGroups::derive(&KvStore::dependencies(), KeyPartition::new(key_space(keys), lanes))
            .expect("the store's C-Dep derives")
    };
    let (cg_smr, cg_psmr) = (cg(1), cg(workers));
    let smr = batches(ExecModel::Smr, &cg_smr, keys, commands);
    let psmr = batches(ExecModel::Psmr, &cg_psmr, keys, commands);
    let mut ratios = Vec::new();
    for round in 1..=rounds {
        let s = run(ExecModel::Smr, &cg_smr, keys, &smr);
        let p = run(ExecModel::Psmr, &cg_psmr, keys, &psmr);
        println!(
            "round {round}: {keys} keys, {commands} reads: SMR {s:.1} Kcps, P-SMR ({workers} \
             workers) {p:.1} Kcps, ratio {:.2}",
            p / s
        );
        ratios.push(p / s);
    }
    ratios.sort_by(f64::total_cmp);
    println!("median P-SMR / SMR: {:.2}", ratios[ratios.len() / 2]);
}
