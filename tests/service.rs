//! The replicated key-value store end to end, in one process over loopback: three replicas, each
//! with its rings, front and workers, and clients through the client library. For every execution
//! model the clients' recorded history must be linearizable and the replicas must end with the
//! same state.

use std::time::Duration;

use ringsmr::apps::kv::store::preloaded_value;
use ringsmr::apps::kv::workload::{KeyDist, Mix};
use ringsmr::service::kv_load::KvLoadSpec;
use ringsmr::service::kv_local::{KvLocalSpec, run_local_kv};
use ringsmr::smr::ExecModel;
use ringsmr::smr::linearizability;

fn run(model: ExecModel, workers: usize) {
    let spec = KvLocalSpec {
        load: KvLoadSpec {
            mix: Mix::All { dependent_percent: 20.0 },
            keys: KeyDist::Zipf { exponent: 1.0 },
            preload_keys: 2_000,
            clients: 3,
            window: 20,
            warmup: Duration::from_millis(200),
            record_history: true,
            ..KvLoadSpec::default()
        },
        duration: Duration::from_millis(1500),
        replicas: 3,
        pin: false,
        ..KvLocalSpec::new(model, workers)
    };
    let report = run_local_kv(&spec).unwrap_or_else(|e| panic!("{}: {e}", model.name()));
    let what = format!("{} with {workers} workers", model.name());
    assert!(report.load.completed > 1_000, "{what}: {} commands answered", report.load.completed);
    let answered = report.history.iter().filter(|o| o.returned.is_some()).count();
    assert!(answered > 1_000, "{what}: {answered} operations in the history");
    assert!(
        report.checksums.windows(2).all(|w| w[0] == w[1]),
        "{what}: replicas differ: {:x?}",
        report.checksums
    );
    // The store starts with the even keys below 2 * preload_keys.
    let preloaded = |k: u64| preloaded_value(spec.load.preload_keys, k);
    if let Err(e) = linearizability::check_from(&report.history, preloaded) {
        panic!("{what}: not linearizable on key {}: {:?}", e.key, e.operations);
    }
    if model == ExecModel::OptPsmr {
        assert!(report.load.conflicts > 0, "{what}: no command met a conflict");
    }
}

#[test]
fn smr_three_replicas_linearizable() {
    run(ExecModel::Smr, 1);
}

#[test]
fn spsmr_three_replicas_linearizable() {
    run(ExecModel::SpSmr, 2);
}

#[test]
fn psmr_three_replicas_linearizable() {
    run(ExecModel::Psmr, 2);
}

#[test]
fn opt_psmr_three_replicas_linearizable() {
    run(ExecModel::OptPsmr, 2);
}
