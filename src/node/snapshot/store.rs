//! A node's snapshot directory: the one snapshot it stored last, which it restarts from and serves
//! to learners that fell behind.
//!
//! A snapshot replaces the previous one atomically (written beside it, synced, renamed over it,
//! directory synced): a crash leaves the old one or the new one, never a mix. A snapshot fetched
//! from another learner takes the same way in. The store never goes back: a snapshot older than
//! the stored one is not written, so the version this node reports for garbage collection always
//! has a snapshot on disk behind it.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::proto::{Instance, LearnerCheckpoint};

use super::file::{self, Snapshot, SnapshotError, SnapshotWriter};

/// The stored snapshot's name in the directory.
const SNAPSHOT: &str = "snapshot";
/// Where a snapshot is written before it replaces the stored one.
const WRITING: &str = "snapshot.writing";
/// Where a snapshot fetched from another learner lands before it is checked.
const INCOMING: &str = "snapshot.incoming";

/// See the module docs.
#[derive(Debug)]
pub struct SnapshotStore {
    dir: PathBuf,
    cluster_id: u32,
    /// The stored snapshot's version (0: none). Held while a snapshot is written or adopted, so
    /// the application's store and a fetch never interleave.
    stored: Mutex<Instance>,
}

impl SnapshotStore {
    /// Opens (creating it if need be) the snapshot directory `dir` of a node of cluster
    /// `cluster_id`, and checks the snapshot stored there, if any. Leftovers of a write or a fetch
    /// a crash interrupted are removed.
    pub fn open(
        dir: &Path,
        cluster_id: u32,
    ) -> Result<(SnapshotStore, Option<Snapshot>), SnapshotError> {
        fs::create_dir_all(dir).map_err(SnapshotError::io(dir))?;
        for leftover in [WRITING, INCOMING] {
            match fs::remove_file(dir.join(leftover)) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => {
                    return Err(SnapshotError::io(&dir.join(leftover))(e));
                }
                _ => {}
            }
        }
        let path = dir.join(SNAPSHOT);
        let stored = match file::open_checked(&path, cluster_id) {
            Ok(s) => Some(s),
            Err(SnapshotError::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => {
                None
            }
            Err(e) => return Err(e),
        };
        let version = stored.as_ref().map_or(0, |s| s.checkpoint.next_instance);
        let store =
            SnapshotStore { dir: dir.to_path_buf(), cluster_id, stored: Mutex::new(version) };
        Ok((store, stored))
    }

    pub fn cluster_id(&self) -> u32 {
        self.cluster_id
    }

    /// The stored snapshot's file (it may not exist yet).
    pub fn path(&self) -> PathBuf {
        self.dir.join(SNAPSHOT)
    }

    /// Where [`fetch`](super::fetch) writes a snapshot before [`SnapshotStore::adopt_incoming`].
    pub fn incoming_path(&self) -> PathBuf {
        self.dir.join(INCOMING)
    }

    /// The stored snapshot's version (0: none).
    pub fn stored_version(&self) -> Instance {
        *self.lock()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Instance> {
        // A panic while the lock was held left at worst a `.writing` file behind: the version is
        // still the stored file's.
        self.stored.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Stores the snapshot of `cp` and the application's state, which `write_state` writes.
    /// Durable when this returns `Ok(true)`; `Ok(false)` (nothing written) when the stored
    /// snapshot is at `cp`'s version or newer.
    pub fn save(
        &self,
        cp: &LearnerCheckpoint,
        write_state: impl FnOnce(&mut dyn Write) -> io::Result<()>,
    ) -> Result<bool, SnapshotError> {
        let mut stored = self.lock();
        if cp.next_instance <= *stored {
            return Ok(false);
        }
        let writing = self.dir.join(WRITING);
        let mut w = SnapshotWriter::create(&writing, self.cluster_id, cp)?;
        write_state(&mut w).map_err(SnapshotError::Application)?;
        w.finish()?;
        self.replace_with(&writing)?;
        *stored = cp.next_instance;
        Ok(true)
    }

    /// Checks the fetched snapshot at [`SnapshotStore::incoming_path`] and makes it the stored one.
    /// Returns it, opened, or `None` (and drops it) when it is not newer than the stored one.
    pub fn adopt_incoming(&self) -> Result<Option<Snapshot>, SnapshotError> {
        let mut stored = self.lock();
        let incoming = self.incoming_path();
        let snapshot = file::open_checked(&incoming, self.cluster_id)?;
        if snapshot.checkpoint.next_instance <= *stored {
            let _ = fs::remove_file(&incoming);
            return Ok(None);
        }
        // The file stays open: what the snapshot reads is this file, whatever replaces it later.
        self.replace_with(&incoming)?;
        *stored = snapshot.checkpoint.next_instance;
        Ok(Some(snapshot))
    }

    /// Renames the durable file `from` over the stored snapshot, and makes the rename durable.
    fn replace_with(&self, from: &Path) -> Result<(), SnapshotError> {
        let path = self.path();
        fs::rename(from, &path).map_err(SnapshotError::io(&path))?;
        File::open(&self.dir).and_then(|d| d.sync_all()).map_err(SnapshotError::io(&self.dir))
    }
}
