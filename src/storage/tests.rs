//! The log against real files: what is synced comes back, a torn tail is dropped, damage and
//! strangers are refused with the file named.

use std::fs;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use bytes::Bytes;

use super::*;
use crate::proto::{AcceptorState, Batch, Durable, Round, Value, ValueId, Vid};
use crate::temp_dir::TempDir;

const CLUSTER: u32 = 7;
const NODE: u16 = 1;

fn open(dir: &Path) -> Result<OpenedLog, StorageError> {
    AcceptorLog::open(dir, CLUSTER, NODE, SEGMENT_BYTES_MIN)
}

fn batch(instance: u64, payload_bytes: usize) -> Batch {
    Batch::new(
        (0..4)
            .map(|k| Value {
                id: ValueId { proposer: 0, incarnation: 1, seq: instance * 4 + k },
                payload: Bytes::from(vec![(instance + k) as u8; payload_bytes / 4]),
            })
            .collect(),
    )
}

fn vid(instance: u64) -> Vid {
    Vid { rnd: Round(0x1_0000), seq: instance }
}

/// Appends what an acceptor does for `instances` in round `rnd`: a vote for each.
fn vote(log: &mut AcceptorLog, rnd: Round, instances: std::ops::Range<u64>, payload_bytes: usize) {
    for i in instances {
        let v_val = batch(i, payload_bytes);
        log.append(&Durable::Vote { instance: i, v_rnd: rnd, v_vid: vid(i), v_val }).unwrap();
    }
}

/// Writes a log in `dir` holding votes in round `rnd` for `instances`, synced, and closes it.
fn written(dir: &Path, rnd: Round, instances: std::ops::Range<u64>, payload_bytes: usize) {
    let mut opened = open(dir).unwrap();
    vote(&mut opened.log, rnd, instances, payload_bytes);
    opened.log.sync().unwrap();
}

/// The acceptor state the same steps give in memory.
fn expected(
    rnd: Round,
    instances: std::ops::Range<u64>,
    payload_bytes: usize,
    trim: u64,
) -> AcceptorState {
    let mut s = AcceptorState::default();
    s.on_phase1a(rnd);
    for i in instances {
        s.on_phase2a(rnd, i, vid(i), &batch(i, payload_bytes));
    }
    s.trim(trim);
    s
}

#[test]
fn a_new_log_is_empty_and_what_is_synced_comes_back() {
    let dir = TempDir::new("storage");
    let mut opened = open(dir.path()).unwrap();
    assert_eq!(opened.state, AcceptorState::default());
    assert!(opened.warnings.is_empty());
    let rnd = Round(0x3_0002);
    opened.log.append(&Durable::Promise { rnd }).unwrap();
    vote(&mut opened.log, rnd, 0..50, 4096);
    opened.log.append(&Durable::Trimmed { below: 10 }).unwrap();
    assert!(!opened.log.is_synced());
    opened.log.sync().unwrap();
    assert!(opened.log.is_synced());
    drop(opened);

    let mut again = open(dir.path()).unwrap();
    assert_eq!(again.state, expected(rnd, 0..50, 4096, 10));
    // It goes on where it stopped, and that comes back too.
    vote(&mut again.log, rnd, 50..60, 4096);
    again.log.sync().unwrap();
    drop(again);
    assert_eq!(open(dir.path()).unwrap().state, expected(rnd, 0..60, 4096, 10));
}

#[test]
fn a_later_vote_for_an_instance_replaces_the_earlier_and_promises_only_rise() {
    let dir = TempDir::new("storage");
    let mut opened = open(dir.path()).unwrap();
    let (low, high) = (Round(0x1_0001), Round(0x2_0002));
    let first = batch(1, 64);
    let second = batch(2, 64);
    let log = &mut opened.log;
    log.append(&Durable::Vote { instance: 5, v_rnd: low, v_vid: vid(1), v_val: first }).unwrap();
    log.append(&Durable::Vote { instance: 5, v_rnd: high, v_vid: vid(2), v_val: second.clone() })
        .unwrap();
    log.append(&Durable::Promise { rnd: low }).unwrap(); // a stale promise lowers nothing
    log.sync().unwrap();
    drop(opened);
    let state = open(dir.path()).unwrap().state;
    assert_eq!(state.rnd, high);
    assert_eq!(state.slots.get(5).unwrap().vote, Some((high, vid(2), second)));
}

#[test]
fn segments_roll_over_and_trimmed_ones_are_removed() {
    let dir = TempDir::new("storage");
    let mut opened = open(dir.path()).unwrap();
    let rnd = Round(0x1_0001);
    // 32 KiB votes: 8 MiB segments hold about 255 of them.
    vote(&mut opened.log, rnd, 0..700, 32 * 1024);
    opened.log.sync().unwrap();
    assert_eq!(opened.log.segments(), 3);
    // Trimming below 600 leaves nothing to keep in the first two segments.
    opened.log.append(&Durable::Trimmed { below: 600 }).unwrap();
    opened.log.sync().unwrap();
    assert_eq!(opened.log.segments(), 1);
    let files = fs::read_dir(dir.path()).unwrap().count();
    assert_eq!(files, 1);
    drop(opened);
    assert_eq!(open(dir.path()).unwrap().state, expected(rnd, 0..700, 32 * 1024, 600));
}

/// The path of the last segment and where its records end.
fn last_segment(dir: &Path) -> PathBuf {
    let mut paths: Vec<PathBuf> = fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
    paths.sort();
    paths.pop().unwrap()
}

fn written_end(path: &Path) -> usize {
    let bytes = fs::read(path).unwrap();
    bytes.iter().rposition(|&b| b != 0).unwrap() + 1
}

#[test]
fn a_torn_tail_is_dropped_with_a_warning_and_the_log_goes_on() {
    let dir = TempDir::new("storage");
    let mut opened = open(dir.path()).unwrap();
    let rnd = Round(0x1_0001);
    vote(&mut opened.log, rnd, 0..20, 4096);
    opened.log.sync().unwrap();
    let path = last_segment(dir.path());
    let synced_end = written_end(&path);
    vote(&mut opened.log, rnd, 20..21, 4096);
    opened.log.write().unwrap();
    drop(opened);
    // The crash kept only the first half of the last record's bytes.
    let end = written_end(&path);
    let file = fs::OpenOptions::new().write(true).open(&path).unwrap();
    let half = (synced_end + end) / 2;
    file.write_all_at(&vec![0; end - half], half as u64).unwrap();

    let mut again = open(dir.path()).unwrap();
    assert_eq!(again.state, expected(rnd, 0..20, 4096, 0));
    assert_eq!(again.warnings.len(), 1, "{:?}", again.warnings);
    assert!(again.warnings[0].contains("torn tail"), "{}", again.warnings[0]);
    assert!(again.warnings[0].contains(&path.display().to_string()));
    // The torn bytes are gone: appending again gives a log that reads back whole.
    vote(&mut again.log, rnd, 20..25, 4096);
    again.log.sync().unwrap();
    drop(again);
    let third = open(dir.path()).unwrap();
    assert!(third.warnings.is_empty(), "{:?}", third.warnings);
    assert_eq!(third.state, expected(rnd, 0..25, 4096, 0));
}

#[test]
fn damage_before_the_end_is_refused_naming_the_file() {
    let dir = TempDir::new("storage");
    written(dir.path(), Round(0x1_0001), 0..20, 4096);
    let path = last_segment(dir.path());
    let file = fs::OpenOptions::new().read(true).write(true).open(&path).unwrap();
    let mut byte = [0u8; 1];
    // A byte inside the fifth vote's values.
    let v_val = batch(0, 4096);
    let record_bytes =
        record::stored_bytes(&Durable::Vote { instance: 0, v_rnd: Round(1), v_vid: vid(0), v_val });
    let at = (segment::SEGMENT_HEADER_BYTES + 4 * record_bytes + 200) as u64;
    file.read_exact_at(&mut byte, at).unwrap();
    file.write_all_at(&[byte[0] ^ 0x10], at).unwrap();
    let e = open(dir.path()).unwrap_err();
    assert!(matches!(e, StorageError::Corrupt { .. }), "{e}");
    let message = e.to_string();
    assert!(message.contains(&path.display().to_string()), "{message}");
    assert!(message.contains("Refusing to start"), "{message}");
    // Refusing changed nothing: the same start is refused again.
    assert!(matches!(open(dir.path()).unwrap_err(), StorageError::Corrupt { .. }));
}

#[test]
fn a_log_of_another_cluster_or_node_is_refused() {
    let dir = TempDir::new("storage");
    drop(open(dir.path()).unwrap());
    let e = AcceptorLog::open(dir.path(), CLUSTER + 1, NODE, SEGMENT_BYTES_MIN).unwrap_err();
    assert!(matches!(e, StorageError::OtherCluster { found: CLUSTER, .. }), "{e}");
    assert!(e.to_string().contains("segment-"), "{e}");
    let e = AcceptorLog::open(dir.path(), CLUSTER, NODE + 1, SEGMENT_BYTES_MIN).unwrap_err();
    assert!(matches!(e, StorageError::OtherNode { found: NODE, .. }), "{e}");
}

#[test]
fn strangers_and_gaps_are_refused() {
    let dir = TempDir::new("storage");
    fs::create_dir_all(dir.path()).unwrap();
    fs::write(segment::segment_path(dir.path(), 1), b"hello, not a log at all").unwrap();
    let e = open(dir.path()).unwrap_err();
    assert!(matches!(e, StorageError::NotALog { .. }), "{e}");

    let dir = TempDir::new("storage");
    written(dir.path(), Round(1), 0..600, 32 * 1024);
    fs::remove_file(segment::segment_path(dir.path(), 2)).unwrap();
    let e = open(dir.path()).unwrap_err();
    assert!(matches!(e, StorageError::MissingSegment { seq: 2, .. }), "{e}");
}

#[test]
fn a_disk_without_room_for_a_segment_is_refused_as_full() {
    let dir = TempDir::new("storage");
    // No file system here has an exbibyte free.
    let e = AcceptorLog::open(dir.path(), CLUSTER, NODE, 1 << 60).unwrap_err();
    assert!(matches!(e, StorageError::DiskFull { .. }), "{e}");
    assert!(e.to_string().contains("disk full"), "{e}");
}

#[test]
fn a_segment_whose_creation_a_crash_interrupted_is_removed() {
    let dir = TempDir::new("storage");
    written(dir.path(), Round(1), 0..3, 1024);
    // The next segment's file exists, preallocated, but its header never reached the disk.
    fs::write(segment::segment_path(dir.path(), 2), vec![0; 4096]).unwrap();
    let again = open(dir.path()).unwrap();
    assert_eq!(again.warnings.len(), 1, "{:?}", again.warnings);
    assert_eq!(again.state, expected(Round(1), 0..3, 1024, 0));
    assert!(!segment::segment_path(dir.path(), 2).exists());
}
