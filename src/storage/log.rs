//! [`AcceptorLog`]: an acceptor's stable storage as a segmented append-only log (thesis 3.3.5,
//! 3.5.5).
//!
//! Records are staged in memory as the acceptor promises and votes ([`AcceptorLog::append`]), go to
//! the file in one write per group ([`AcceptorLog::write`]) and become durable with one
//! `fdatasync` per group ([`AcceptorLog::sync`]): group commit, so the cost of a sync is shared by
//! every vote of the batch of instances the node handled since the last one, not paid per value.
//! The caller decides when: the node syncs before it sends the votes a group holds (`sync` mode),
//! or writes behind and syncs on a timer (`async`).
//!
//! When a record does not fit the current segment, that segment is synced and a new one begins
//! with the acceptor's promise and trim point, so each segment but the last is complete and no
//! later segment depends on an earlier one for its promise. Segments whose every vote lies below
//! the trim point are then removed (after the sync that made the trim point durable).

use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::path::{Path, PathBuf};

use crate::proto::{AcceptorState, Durable, Instance, NodeId, Round};

use super::error::StorageError;
use super::record;
use super::recovery::{self, RecoveredSegment};
use super::segment::{self, SEGMENT_HEADER_BYTES, SegmentHeader};

/// The default size of a segment.
pub const SEGMENT_BYTES_DEFAULT: u64 = 64 << 20;
/// The smallest segment the log accepts: room for the largest vote (a batch of up to 4 MiB, the
/// largest frame the node takes) with its header and the records that open a segment.
pub const SEGMENT_BYTES_MIN: u64 = 8 << 20;

/// An acceptor's log, open for appending. See the module docs.
#[derive(Debug)]
pub struct AcceptorLog {
    dir: PathBuf,
    cluster_id: u32,
    node: NodeId,
    /// The size new segments are created with.
    segment_bytes: u64,
    /// The segment being appended to, its path, sequence number and size.
    file: File,
    path: PathBuf,
    seq: u64,
    file_bytes: u64,
    /// Where the first staged byte goes in `file`.
    write_at: u64,
    /// Records appended and not yet written, encoded.
    staged: Vec<u8>,
    /// The lsn of the next record appended.
    next_lsn: u64,
    /// Whether bytes were written to `file` since its last sync.
    unsynced: bool,
    /// The highest instance voted in the current segment.
    max_instance: Option<Instance>,
    /// Complete segments, oldest first, with the highest instance voted in each.
    older: VecDeque<RecoveredSegment>,
    /// The highest promise and the trim point appended: what a new segment begins with.
    rnd: Round,
    trimmed_below: Instance,
}

/// A log opened at start-up, with what it held.
#[derive(Debug)]
pub struct OpenedLog {
    pub log: AcceptorLog,
    /// The acceptor state the log holds: `AcceptorState::default()` for a new log.
    pub state: AcceptorState,
    /// What recovery repaired, for the node to report.
    pub warnings: Vec<String>,
    /// Records read back: 0 for a new log.
    pub records: u64,
}

impl AcceptorLog {
    /// Opens (creating if need be) the log of node `node` of cluster `cluster_id` in `dir`, reads it
    /// back and checks that there is room for its next segment. `segment_bytes` is raised to
    /// [`SEGMENT_BYTES_MIN`] if below.
    pub fn open(
        dir: &Path,
        cluster_id: u32,
        node: NodeId,
        segment_bytes: u64,
    ) -> Result<OpenedLog, StorageError> {
        let segment_bytes = segment_bytes.max(SEGMENT_BYTES_MIN);
        fs::create_dir_all(dir).map_err(|e| StorageError::io("create", dir, e, 0))?;
        let mut rec = recovery::recover(dir, cluster_id, node)?;
        if free_bytes(dir)? < segment_bytes {
            return Err(StorageError::io(
                "find room for the next segment in",
                dir,
                std::io::Error::from_raw_os_error(libc::ENOSPC),
                segment_bytes,
            ));
        }
        let (file, path, seq, write_at, max_instance) = match rec.segments.pop() {
            Some(last) => {
                let file = OpenOptions::new()
                    .read(true)
                    .write(true)
                    .open(&last.path)
                    .map_err(|e| StorageError::io("open", &last.path, e, 0))?;
                (file, last.path, last.seq, rec.write_at, last.max_instance)
            }
            None => {
                let header = SegmentHeader { cluster_id, node, seq: 1, first_lsn: rec.next_lsn };
                let (file, path) = segment::create(dir, header, segment_bytes)?;
                (file, path, 1, SEGMENT_HEADER_BYTES as u64, None)
            }
        };
        let file_bytes = file.metadata().map_err(|e| StorageError::io("stat", &path, e, 0))?.len();
        let log = AcceptorLog {
            dir: dir.to_path_buf(),
            cluster_id,
            node,
            segment_bytes,
            file,
            path,
            seq,
            file_bytes,
            write_at,
            staged: Vec::with_capacity(STAGED_BYTES_RESERVED),
            next_lsn: rec.next_lsn,
            unsynced: false,
            max_instance,
            older: rec.segments.into(),
            rnd: rec.state.rnd,
            trimmed_below: rec.state.trimmed_below,
        };
        Ok(OpenedLog { log, state: rec.state, warnings: rec.warnings, records: rec.records })
    }

    /// Stages `record`: it is in the log once [`AcceptorLog::write`] has run, durable once
    /// [`AcceptorLog::sync`] has. Starts a new segment first when the record does not fit the
    /// current one (which writes and syncs what is staged).
    pub fn append(&mut self, record: &Durable) -> Result<(), StorageError> {
        let need = record::stored_bytes(record) as u64;
        if self.write_at + self.staged.len() as u64 + need > self.file_bytes {
            self.next_segment(need)?;
        }
        match record {
            Durable::Promise { rnd } => self.rnd = self.rnd.max(*rnd),
            Durable::Trimmed { below } => self.trimmed_below = self.trimmed_below.max(*below),
            Durable::Decided { .. } => {}
            Durable::Vote { instance, v_rnd, .. } => {
                self.rnd = self.rnd.max(*v_rnd);
                self.max_instance = self.max_instance.max(Some(*instance));
            }
        }
        record::encode(record, self.next_lsn, &mut self.staged);
        self.next_lsn += 1;
        Ok(())
    }

    /// Writes what is staged to the segment (the page cache): one `pwrite`.
    pub fn write(&mut self) -> Result<(), StorageError> {
        if self.staged.is_empty() {
            return Ok(());
        }
        segment::write_all_at(&self.file, &self.staged, self.write_at)
            .map_err(|e| StorageError::io("write", &self.path, e, self.staged.len() as u64))?;
        self.write_at += self.staged.len() as u64;
        self.staged.clear();
        self.unsynced = true;
        Ok(())
    }

    /// Writes what is staged and makes everything appended so far durable (one `fdatasync`), then
    /// removes the segments that garbage collection has left with no vote to keep.
    pub fn sync(&mut self) -> Result<(), StorageError> {
        self.write()?;
        if self.unsynced {
            self.file.sync_data().map_err(|e| StorageError::io("sync", &self.path, e, 0))?;
            self.unsynced = false;
        }
        self.remove_trimmed_segments()
    }

    /// Bytes appended and not yet written.
    pub fn staged_bytes(&self) -> usize {
        self.staged.len()
    }

    /// Whether everything appended so far is durable.
    pub fn is_synced(&self) -> bool {
        self.staged.is_empty() && !self.unsynced
    }

    /// Segments in the log, the current one included.
    pub fn segments(&self) -> usize {
        self.older.len() + 1
    }

    /// The directory the log lives in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Closes the current segment (written and synced) and begins the next with the promise and
    /// the trim point, so that it stands on its own. `need` is the record that did not fit.
    fn next_segment(&mut self, need: u64) -> Result<(), StorageError> {
        let opening =
            [Durable::Promise { rnd: self.rnd }, Durable::Trimmed { below: self.trimmed_below }];
        let opening_bytes: u64 = opening.iter().map(|r| record::stored_bytes(r) as u64).sum();
        if SEGMENT_HEADER_BYTES as u64 + opening_bytes + need > self.segment_bytes {
            return Err(StorageError::io(
                "fit a record into a segment of",
                &self.dir,
                std::io::Error::other(format!(
                    "a record of {need} bytes is larger than a segment of {} bytes can hold",
                    self.segment_bytes
                )),
                0,
            ));
        }
        self.sync()?;
        let header = SegmentHeader {
            cluster_id: self.cluster_id,
            node: self.node,
            seq: self.seq + 1,
            first_lsn: self.next_lsn,
        };
        let (file, path) = segment::create(&self.dir, header, self.segment_bytes)?;
        let closed = RecoveredSegment {
            seq: self.seq,
            path: std::mem::replace(&mut self.path, path),
            max_instance: self.max_instance.take(),
        };
        self.older.push_back(closed);
        self.file = file;
        self.seq += 1;
        self.file_bytes = self.segment_bytes;
        self.write_at = SEGMENT_HEADER_BYTES as u64;
        for r in &opening {
            record::encode(r, self.next_lsn, &mut self.staged);
            self.next_lsn += 1;
        }
        Ok(())
    }

    /// Removes the oldest complete segments while every vote in them is below the durable trim
    /// point. Only oldest first: recovery needs the segments it finds to be consecutive.
    fn remove_trimmed_segments(&mut self) -> Result<(), StorageError> {
        let mut removed = false;
        while let Some(oldest) = self.older.front() {
            if oldest.max_instance.is_some_and(|i| i >= self.trimmed_below) {
                break;
            }
            fs::remove_file(&oldest.path)
                .map_err(|e| StorageError::io("remove", &oldest.path, e, 0))?;
            self.older.pop_front();
            removed = true;
        }
        if removed {
            segment::sync_dir(&self.dir)?;
        }
        Ok(())
    }
}

/// Bytes the staging buffer holds without growing: a group of 32 votes of 32 KiB batches.
const STAGED_BYTES_RESERVED: usize = 1 << 20;

fn free_bytes(dir: &Path) -> Result<u64, StorageError> {
    let st = nix::sys::statvfs::statvfs(dir)
        .map_err(|e| StorageError::io("measure the free space of", dir, e.into(), 0))?;
    Ok(st.blocks_available() as u64 * st.fragment_size() as u64)
}
