//! The node's side of an acceptor's stable storage (Recoverable Ring Paxos, thesis 3.3.5, 3.5.5):
//! opening the log at start-up, and writing what the core asks to persist before the node performs
//! anything that follows it (`proto::durable`).
//!
//! Group commit comes from the node's loop: the core's actions are drained once per iteration, after
//! every message that arrived since the last one was handled, and all the records among them go to
//! the log in one write and, in `sync` mode, one `fdatasync`, before any of the iteration's sends,
//! multicasts or deliveries. The more a busy node receives between two iterations, the more votes
//! share a sync; an idle one syncs as soon as its one vote is cast. Performing every action of the
//! iteration after the sync, not only those after the first record, keeps the rule simple and
//! costs nothing: the sends go out together at the end of the iteration anyway.
//!
//! `async` mode writes the records in the same place but syncs them only every
//! [`ASYNC_SYNC_INTERVAL_US`], and nothing waits for the disk (see [`StorageMode`]).

use std::path::Path;

use crate::proto::types::{NodeId, Tick};
use crate::proto::{Action, Boot, Durable};
use crate::storage::{AcceptorLog, SEGMENT_BYTES_DEFAULT, StorageError};

use super::config::{ASYNC_SYNC_INTERVAL_US, StorageMode};

/// An acceptor's open log and the mode it is written in.
#[derive(Debug)]
pub struct Durability {
    log: AcceptorLog,
    mode: StorageMode,
    /// When the log was last synced (`async`).
    synced_at: Tick,
}

impl Durability {
    /// Opens the log of acceptor `id` in `dir` and tells how the core starts from it: a `sync`
    /// acceptor with the state its log holds; an `async` one as a new acceptor if its log is new,
    /// and without its acceptor role if not (it may have forgotten votes it sent). Repairs that
    /// recovery made (a torn tail) are reported on stderr.
    pub fn open(
        dir: &Path,
        mode: StorageMode,
        cluster_id: u32,
        id: NodeId,
    ) -> Result<(Durability, Boot), StorageError> {
        let opened = AcceptorLog::open(dir, cluster_id, id, SEGMENT_BYTES_DEFAULT)?;
        for warning in &opened.warnings {
            eprintln!("ringsmr: node {id}: {warning}");
        }
        if opened.records > 0 {
            let s = &opened.state;
            eprintln!(
                "ringsmr: node {id}: acceptor log {}: {} records read back: promised {:?}, {} \
                 votes from instance {}",
                dir.display(),
                opened.records,
                s.rnd,
                s.slots.len(),
                s.trimmed_below
            );
        }
        let boot = match mode {
            StorageMode::Sync => Boot::Recovered(opened.state),
            StorageMode::Async | StorageMode::Memory if opened.records == 0 => Boot::Fresh,
            StorageMode::Async | StorageMode::Memory => {
                eprintln!(
                    "ringsmr: node {id}: restarted with `async` storage: its log may lack votes it \
                     sent, so it rejoins as proposer and learner only (use `sync` storage for \
                     acceptors that come back)"
                );
                Boot::Amnesiac
            }
        };
        Ok((Durability { log: opened.log, mode, synced_at: 0 }, boot))
    }

    /// Writes the records among `actions` (the core's actions of one iteration, not yet
    /// performed) and, in `sync` mode, makes them durable; an `async` log is synced when its
    /// interval has passed. An error means the node must stop: what it would send next could
    /// reveal a promise or vote the disk does not hold.
    pub fn persist(&mut self, actions: &[Action], now: Tick) -> Result<(), StorageError> {
        let mut gating = false;
        for action in actions {
            if let Action::Persist(record) = action {
                self.log.append(record)?;
                gating |= matches!(record, Durable::Promise { .. } | Durable::Vote { .. });
            }
        }
        match self.mode {
            // Only promises and votes must be on disk before the node acts: a trim point or a
            // decision lost in a crash costs nothing but a little more to keep or to ask for, so
            // those alone are written and ride on the next sync.
            StorageMode::Sync if gating => self.log.sync(),
            StorageMode::Sync => self.log.write(),
            StorageMode::Async | StorageMode::Memory => {
                self.log.write()?;
                if now.saturating_sub(self.synced_at) >= ASYNC_SYNC_INTERVAL_US {
                    self.synced_at = now;
                    self.log.sync()?;
                }
                Ok(())
            }
        }
    }
}
