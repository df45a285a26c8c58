//! The store under every execution model, with real threads and MPL 1 to 8, against sequential
//! execution of the same order (the correctness side of the "MPL up to 8"), and
//! opt-PSMR's refusals: deterministic, and once re-multicast to g_all, the same end state as
//! sequential execution.

use std::collections::HashSet;

use bytes::Bytes;

use super::btree::{BPlusTree, NodeCapacities};
use super::command::{self, KvOp};
use super::store::{KvStore, preload_value};
use super::workload::key_space;
use crate::smr::exec::{ExecModel, GROUP_ALL};
use crate::smr::request::{BatchWriter, RequestBatch, Status};
use crate::smr::testkit::{self, Recorded, Rng};
use crate::smr::{CommandToGroups, KeyPartition, Service};

const KEYS: u64 = 3_000;

/// A store of small nodes (8 keys a leaf, 4 children a node), so inserts and deletes split and
/// merge nodes often, and opt-PSMR meets conflicts.
fn small_store() -> KvStore {
    let caps = NodeCapacities { leaf_keys: 8, internal_children: 4 };
    let tree = BPlusTree::bulk_load_with_capacities(
        (0..KEYS).map(|i| (2 * i, preload_value(2 * i))),
        caps,
    );
    KvStore::from_tree(tree)
}

/// Reads and updates of preloaded keys, inserts and deletes of odd keys; `dependent_percent` of
/// the latter.
fn commands(seed: u64, n: usize, clients: u64, dependent_percent: u64) -> Vec<(u64, Vec<u8>)> {
    let mut rng = Rng::new(seed);
    (0..n)
        .map(|_| {
            let even = 2 * rng.below(KEYS);
            let odd = 2 * rng.below(KEYS) + 1;
            let op = match (rng.below(100) < dependent_percent, rng.below(2)) {
                (true, 0) => KvOp::Insert(odd, rng.next_u64()),
                (true, _) => KvOp::Delete(odd),
                (false, 0) => KvOp::Read(even),
                (false, _) => KvOp::Update(even, rng.next_u64()),
            };
            let mut c = Vec::new();
            command::encode(op, 0, &mut c);
            (rng.below(clients), c)
        })
        .collect()
}

fn cg(lanes: usize) -> CommandToGroups {
    CommandToGroups::derive(&KvStore::dependencies(), KeyPartition::new(key_space(KEYS), lanes))
        .unwrap()
}

#[test]
fn every_conservative_model_matches_sequential_execution() {
    for (seed, dependent) in [(1, 0), (2, 5), (3, 30), (4, 100)] {
        let cmds = commands(seed, 4_000, 6, dependent);
        for model in [ExecModel::Smr, ExecModel::SpSmr, ExecModel::Psmr] {
            for workers in [1, 2, 3, 5, 8] {
                let lanes = model.lanes(workers);
                let script = testkit::script::<KvStore>(model, &cg(lanes), &cmds, 9);
                let (want, want_state, _) =
                    testkit::run(ExecModel::Smr, 1, key_space(KEYS), small_store(), &script);
                let (got, state, _) =
                    testkit::run(model, lanes, key_space(KEYS), small_store(), &script);
                let what = format!(
                    "seed {seed}, {}% dependent, {} with {lanes} lanes",
                    dependent,
                    model.name()
                );
                assert_eq!(got.len(), cmds.len(), "{what}");
                let diff = testkit::first_difference(&got, &want);
                assert!(diff.is_none(), "{what}: replies differ at {diff:?}");
                assert_eq!(state.read().checksum(), want_state.read().checksum(), "{what}: state");
                state.read().tree().check_invariants();
            }
        }
    }
}

/// Drops the commands of `refused` from every batch of `script`.
fn without(script: &[(u32, Bytes)], refused: &HashSet<(u64, u64)>) -> Vec<(u32, Bytes)> {
    let mut out = Vec::new();
    for (group, payload) in script {
        let b = RequestBatch::parse(payload).unwrap();
        let mut w = BatchWriter::new(1 << 16);
        w.begin(b.client, b.acked_below);
        for r in b.iter().filter(|r| !refused.contains(&(b.client, r.seq))) {
            w.push(r.seq, r.command);
        }
        if w.count() > 0 {
            out.push((*group, Bytes::copy_from_slice(w.bytes())));
        }
    }
    out
}

/// What the clients of refused commands multicast again, conservatively: one batch each, in
/// g_all, in the order of the refusals' (client, seq).
fn resent(script: &[(u32, Bytes)], refused: &HashSet<(u64, u64)>) -> Vec<(u32, Bytes)> {
    let mut out = Vec::new();
    for (_, payload) in script {
        let b = RequestBatch::parse(payload).unwrap();
        for r in b.iter().filter(|r| refused.contains(&(b.client, r.seq))) {
            let mut w = BatchWriter::new(1 << 16);
            w.begin(b.client, b.acked_below);
            w.push(r.seq, r.command);
            out.push((GROUP_ALL, Bytes::copy_from_slice(w.bytes())));
        }
    }
    out
}

fn refusals(replies: &[Recorded]) -> HashSet<(u64, u64)> {
    replies.iter().filter(|r| r.2 == Status::Conflict).map(|r| (r.0, r.1)).collect()
}

#[test]
fn opt_psmr_refuses_deterministically_and_ends_as_sequential_execution() {
    for (seed, dependent) in [(5, 20), (6, 60), (7, 100)] {
        // Clients of few commands each: their window never moves past a refused command, which
        // they send again only at the end of the script.
        let cmds = commands(seed, 4_000, 200, dependent);
        for lanes in [1, 2, 4, 8] {
            let what = format!("seed {seed}, {dependent}% dependent, opt-psmr with {lanes} lanes");
            let script = testkit::script::<KvStore>(ExecModel::OptPsmr, &cg(lanes), &cmds, 9);
            let (first, _, report) =
                testkit::run(ExecModel::OptPsmr, lanes, key_space(KEYS), small_store(), &script);
            let refused = refusals(&first);
            // The refusals depend on the order alone: a second run, with other timing, agrees.
            let (again, _, _) =
                testkit::run(ExecModel::OptPsmr, lanes, key_space(KEYS), small_store(), &script);
            assert_eq!(refusals(&again), refused, "{what}: the same refusals");
            let optimistic: u64 = report.workers.iter().map(|w| w.executed - w.synchronous).sum();
            let inserts_deletes = cmds
                .iter()
                .filter(|(_, c)| matches!(c[0], command::INSERT | command::DELETE))
                .count();
            assert!(optimistic > 0 && inserts_deletes > 0, "{what}");
            if lanes > 1 {
                assert!(!refused.is_empty(), "{what}: small nodes must meet conflicts");
            }
            // The clients send the refused commands again, to g_all.
            let mut full = script.clone();
            full.extend(resent(&script, &refused));
            let (got, state, _) =
                testkit::run(ExecModel::OptPsmr, lanes, key_space(KEYS), small_store(), &full);
            let mut reference = without(&script, &refused);
            reference.extend(resent(&script, &refused));
            let (want, want_state, _) =
                testkit::run(ExecModel::Smr, 1, key_space(KEYS), small_store(), &reference);
            let answered: Vec<_> = got.into_iter().filter(|r| r.2 != Status::Conflict).collect();
            let diff = testkit::first_difference(&answered, &want);
            assert!(diff.is_none(), "{what}: replies differ at {diff:?}");
            assert_eq!(state.read().checksum(), want_state.read().checksum(), "{what}: state");
            state.read().tree().check_invariants();
        }
    }
}
