//! Reading an acceptor's log back at start-up: the promise and votes it holds (thesis 3.3.5), with
//! every segment checked, a write that a crash cut short dropped, and real damage refused.
//!
//! Telling the two apart: the log is written front to back, and `log` syncs a segment before it
//! starts the next one, so whatever a crash leaves half-written is at the end of the last segment.
//! A record that fails its checksum there, with nothing readable after it, is such a torn tail: it
//! was never synced, so no vote in it was ever sent (in `sync` mode), and recovery zeroes it with a
//! warning. A bad record anywhere else, or one followed by a good record of a later lsn, means
//! bytes that were once written whole went bad: the votes in them may have been sent, and starting
//! without them could break agreement, so recovery refuses and says what to do.
//!
//! (After a power loss the kernel may have written an unsynced tail's pages out of order, so a good
//! record can follow a torn one; recovery then refuses too. That errs on the safe side.)

use std::fs;
use std::path::{Path, PathBuf};

use crate::proto::{AcceptorState, Durable, Instance, NodeId};

use super::error::StorageError;
use super::record::{BadRecord, Decoded, RECORD_ALIGN_BYTES, decode};
use super::segment::{self, BadHeader, SEGMENT_HEADER_BYTES, SegmentHeader};

/// What the log held.
#[derive(Debug, Default)]
pub struct Recovery {
    /// The acceptor's state as its records left it.
    pub state: AcceptorState,
    /// The lsn the next record gets.
    pub next_lsn: u64,
    /// Every segment, oldest first, with the highest instance voted in it (`None`: no vote).
    pub segments: Vec<RecoveredSegment>,
    /// Where the next record goes in the last segment.
    pub write_at: u64,
    /// Records read back (0: a new log).
    pub records: u64,
    /// What recovery repaired (a torn tail), for the node's log.
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecoveredSegment {
    pub seq: u64,
    pub path: PathBuf,
    pub max_instance: Option<Instance>,
}

/// Reads every segment in `dir` (which exists) as node `node` of cluster `cluster_id`.
pub fn recover(dir: &Path, cluster_id: u32, node: NodeId) -> Result<Recovery, StorageError> {
    let mut seqs = Vec::new();
    let entries = fs::read_dir(dir).map_err(|e| StorageError::io("read", dir, e, 0))?;
    for entry in entries {
        let entry = entry.map_err(|e| StorageError::io("read", dir, e, 0))?;
        if let Some(seq) = entry.file_name().to_str().and_then(segment::segment_seq) {
            seqs.push(seq);
        }
    }
    seqs.sort_unstable();
    if let Some(pair) = seqs.windows(2).find(|w| w[1] != w[0] + 1) {
        return Err(StorageError::MissingSegment { dir: dir.to_path_buf(), seq: pair[0] + 1 });
    }
    let mut r = Recovery { next_lsn: 1, ..Recovery::default() };
    for (i, &seq) in seqs.iter().enumerate() {
        let last = i + 1 == seqs.len();
        let path = segment::segment_path(dir, seq);
        let bytes = fs::read(&path).map_err(|e| StorageError::io("read", &path, e, 0))?;
        let header = match SegmentHeader::decode(&bytes) {
            Ok(h) => h,
            // A crash while the last segment was being created leaves it without its header (it is
            // synced before any record goes in): nothing was ever written there.
            Err(BadHeader::NotALog)
                if last && is_zero(&bytes[..bytes.len().min(SEGMENT_HEADER_BYTES)]) =>
            {
                fs::remove_file(&path).map_err(|e| StorageError::io("remove", &path, e, 0))?;
                segment::sync_dir(dir)?;
                r.warnings.push(format!(
                    "{}: removed a log segment whose creation a crash interrupted",
                    path.display()
                ));
                break;
            }
            Err(BadHeader::NotALog) => return Err(StorageError::NotALog { path }),
            Err(BadHeader::Format(format)) => {
                return Err(StorageError::UnknownFormat { path, format });
            }
        };
        if header.cluster_id != cluster_id {
            return Err(StorageError::OtherCluster {
                path,
                found: header.cluster_id,
                expected: cluster_id,
            });
        }
        if header.node != node {
            return Err(StorageError::OtherNode { path, found: header.node, expected: node });
        }
        let corrupt = |offset_bytes: usize, what: String| StorageError::Corrupt {
            path: path.clone(),
            offset_bytes: offset_bytes as u64,
            what,
        };
        if header.seq != seq || (i > 0 && header.first_lsn != r.next_lsn) {
            return Err(corrupt(0, "the header does not continue the segment before".into()));
        }
        r.next_lsn = header.first_lsn;
        let mut max_instance = None;
        let mut at = SEGMENT_HEADER_BYTES;
        loop {
            let bad = match decode(&bytes[at..]) {
                Decoded::End => break,
                Decoded::Record { lsn, .. } if lsn != r.next_lsn => {
                    format!("record numbered {lsn} where {} was due", r.next_lsn)
                }
                Decoded::Record { record, stored_bytes, .. } => {
                    if let Durable::Vote { instance, .. } = &record {
                        max_instance = max_instance.max(Some(*instance));
                    }
                    r.state.replay(record);
                    r.records += 1;
                    r.next_lsn += 1;
                    at += stored_bytes;
                    continue;
                }
                Decoded::Bad(BadRecord::Truncated) => "a record cut short".into(),
                Decoded::Bad(BadRecord::Checksum) => "a checksum mismatch".into(),
                Decoded::Bad(BadRecord::Body) => "a record this build does not write".into(),
            };
            if !last {
                return Err(corrupt(at, bad));
            }
            let dirty_end = bytes.iter().rposition(|&b| b != 0).map_or(at, |p| p + 1);
            if let Some(later) = good_record_after(&bytes[..dirty_end], at, r.next_lsn) {
                return Err(corrupt(at, format!("{bad}; a good record follows at byte {later}")));
            }
            let zeros = vec![0; dirty_end - at];
            let file = fs::OpenOptions::new()
                .write(true)
                .open(&path)
                .map_err(|e| StorageError::io("open", &path, e, 0))?;
            segment::write_all_at(&file, &zeros, at as u64)
                .and_then(|()| file.sync_data())
                .map_err(|e| StorageError::io("truncate the torn tail of", &path, e, 0))?;
            r.warnings.push(format!(
                "{}: dropped a torn tail of {} bytes at byte {at} ({bad}): a write a crash \
                 interrupted before it was synced",
                path.display(),
                dirty_end - at
            ));
            break;
        }
        r.write_at = at as u64;
        r.segments.push(RecoveredSegment { seq, path, max_instance });
    }
    Ok(r)
}

/// The offset of the first good record at or after `from + align` whose lsn is at least `lsn`.
fn good_record_after(bytes: &[u8], from: usize, lsn: u64) -> Option<usize> {
    (from + RECORD_ALIGN_BYTES..bytes.len())
        .step_by(RECORD_ALIGN_BYTES)
        .find(|&at| matches!(decode(&bytes[at..]), Decoded::Record { lsn: l, .. } if l >= lsn))
}

fn is_zero(bytes: &[u8]) -> bool {
    bytes.iter().all(|&x| x == 0)
}
