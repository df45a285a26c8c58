//! Snapshots against real files and a real loopback transfer: what is stored comes back, damage
//! and strangers are refused with the file named, an older snapshot never replaces a newer one,
//! and a fetched snapshot arrives whole and becomes the learner's own.

use std::fs;
use std::io::Read;
use std::net::SocketAddr;
use std::sync::Arc;

use super::fetch::fetch_from;
use super::server::SnapshotServer;
use super::*;
use crate::proto::LearnerCheckpoint;
use crate::proto::learner_checkpoint::DeliveredSeqs;
use crate::temp_dir::TempDir;

const CLUSTER: u32 = 3;

fn checkpoint(next_instance: u64) -> LearnerCheckpoint {
    LearnerCheckpoint {
        next_instance,
        delivered: vec![DeliveredSeqs { proposer: 1, incarnation: 2, below: 40, above: vec![42] }],
        skipped_extra: 5,
    }
}

/// An application state of `len` bytes that differs at every offset and per version.
fn state(version: u64, len: usize) -> Vec<u8> {
    (0..len).map(|i| (i as u64 * 31 + version) as u8).collect()
}

fn save(store: &SnapshotStore, version: u64, len: usize) -> bool {
    let bytes = state(version, len);
    store.save(&checkpoint(version), |w| w.write_all(&bytes)).unwrap()
}

#[test]
fn a_stored_snapshot_reads_back_and_an_older_one_never_replaces_it() {
    let dir = TempDir::new("snapshot");
    let (store, stored) = SnapshotStore::open(dir.path(), CLUSTER).unwrap();
    assert!(stored.is_none());
    assert!(save(&store, 10, 3 * CHUNK_BYTES + 5));
    assert!(!save(&store, 10, 7), "the same version again writes nothing");
    assert!(!save(&store, 9, 7), "an older version writes nothing");
    assert_eq!(store.stored_version(), 10);
    let (again, stored) = SnapshotStore::open(dir.path(), CLUSTER).unwrap();
    let s = stored.expect("the snapshot is there");
    assert_eq!(s.checkpoint, checkpoint(10));
    assert_eq!(s.state.len(), 3 * CHUNK_BYTES as u64 + 5);
    assert_eq!(s.state.read_all().unwrap(), state(10, 3 * CHUNK_BYTES + 5));
    assert_eq!(again.stored_version(), 10);
    let files: Vec<_> = fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(files, ["snapshot"], "nothing left beside it");
}

#[test]
fn damage_and_a_stranger_s_snapshot_are_refused_naming_the_file() {
    let dir = TempDir::new("snapshot");
    let (store, _) = SnapshotStore::open(dir.path(), CLUSTER).unwrap();
    assert!(save(&store, 5, 1000));
    let path = store.path();
    let e = SnapshotStore::open(dir.path(), CLUSTER + 1).unwrap_err().to_string();
    assert!(e.contains("belongs to cluster 3") && e.contains("snapshot"), "{e}");
    let good = fs::read(&path).unwrap();
    // A flipped bit anywhere (header, checkpoint, state, trailer) and a cut anywhere are caught.
    for at in [0, 12, 20, 30, 500, good.len() - 10, good.len() - 1] {
        let mut bad = good.clone();
        bad[at] ^= 0x04;
        fs::write(&path, &bad).unwrap();
        let e = SnapshotStore::open(dir.path(), CLUSTER).unwrap_err().to_string();
        assert!(e.contains(&path.display().to_string()), "byte {at}: {e}");
    }
    for len in [0, 10, 24, 100, good.len() - 1] {
        fs::write(&path, &good[..len]).unwrap();
        let e = SnapshotStore::open(dir.path(), CLUSTER).unwrap_err().to_string();
        assert!(e.contains("damaged"), "cut at {len}: {e}");
    }
}

fn served(dir: &TempDir, version: u64, len: usize) -> (Arc<SnapshotStore>, SnapshotServer) {
    let (store, _) = SnapshotStore::open(dir.path(), CLUSTER).unwrap();
    if version > 0 {
        assert!(save(&store, version, len));
    }
    let store = Arc::new(store);
    let any_port: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let server = SnapshotServer::start(any_port, Arc::clone(&store)).unwrap();
    (store, server)
}

#[test]
fn a_fetched_snapshot_arrives_whole_and_becomes_the_learner_s_own() {
    let (donor_dir, learner_dir) = (TempDir::new("donor"), TempDir::new("learner"));
    let len = 5 * CHUNK_BYTES + 123;
    let (_donor, server) = served(&donor_dir, 700, len);
    let (learner, _) = SnapshotStore::open(learner_dir.path(), CLUSTER).unwrap();
    assert!(save(&learner, 100, 10));
    let mut buf = vec![0u8; CHUNK_BYTES];
    let got = fetch_from(&learner, 2, server.local_addr(), 650, &mut buf).unwrap();
    assert_eq!(got.checkpoint, checkpoint(700));
    assert_eq!(got.state.read_all().unwrap(), state(700, len));
    assert_eq!(learner.stored_version(), 700);
    assert_eq!(server.served(), 1);
    // The learner's own snapshot now is the fetched one, and it serves it in turn.
    let (_, stored) = SnapshotStore::open(learner_dir.path(), CLUSTER).unwrap();
    let mut again = Vec::new();
    stored.unwrap().state.read_to_end(&mut again).unwrap();
    assert_eq!(again, state(700, len));
}

#[test]
fn a_donor_without_a_recent_enough_snapshot_says_so() {
    let (donor_dir, empty_dir, learner_dir) =
        (TempDir::new("donor"), TempDir::new("empty"), TempDir::new("learner"));
    let (_donor, server) = served(&donor_dir, 300, 64);
    let (_empty, no_snapshot) = served(&empty_dir, 0, 0);
    let (learner, _) = SnapshotStore::open(learner_dir.path(), CLUSTER).unwrap();
    let mut buf = vec![0u8; CHUNK_BYTES];
    let e = fetch_from(&learner, 2, server.local_addr(), 301, &mut buf).unwrap_err().to_string();
    assert!(e.contains("no snapshot at or above instance 301 (its newest: 300)"), "{e}");
    let e = fetch_from(&learner, 2, no_snapshot.local_addr(), 1, &mut buf).unwrap_err().to_string();
    assert!(e.contains("its newest: 0"), "{e}");
    let (other, _) = SnapshotStore::open(&learner_dir.path().join("other"), CLUSTER + 1).unwrap();
    let e = fetch_from(&other, 2, server.local_addr(), 1, &mut buf).unwrap_err().to_string();
    assert!(e.contains("another cluster"), "{e}");
    assert_eq!(learner.stored_version(), 0, "nothing was adopted");
}
