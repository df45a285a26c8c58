//! The thread that stores a replica's checkpoints (`snapshot`) and then tells the rings what the
//! stored one covers, so garbage collection keeps what a restart from it needs and no more.
//!
//! Lane 0 hands each checkpoint over and goes on; the writer keeps only the newest of those
//! waiting (an older one would be replaced at once), writes it durably, and only then reports,
//! per ring, the lowest instance any source of the snapshot needs again.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::multiring::RingId;
use crate::node::StableVersions;
use crate::smr::checkpoint::{Checkpoint, Checkpointer};

use super::snapshot::{ReplicaSnapshot, SnapshotDir};
use super::source::SourcePosition;

/// See the module docs.
pub(crate) struct SnapshotWriter {
    tx: Sender<Checkpoint>,
    stop: Arc<AtomicBool>,
    thread: JoinHandle<()>,
}

/// Lane 0's way to the writer.
#[derive(Debug)]
pub(crate) struct ToWriter(Mutex<Sender<Checkpoint>>);

impl Checkpointer for ToWriter {
    fn checkpoint(&self, checkpoint: Checkpoint) {
        // The writer ends only once the workers did.
        let _ = self.0.lock().unwrap_or_else(|p| p.into_inner()).send(checkpoint);
    }
}

impl SnapshotWriter {
    pub fn start(dir: SnapshotDir, stable: Vec<(RingId, StableVersions)>) -> SnapshotWriter {
        let (tx, rx) = channel();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("replica-checkpoints".into())
            .spawn(move || write_loop(&rx, &dir, &stable, &flag))
            .expect("spawning the checkpoint writer");
        SnapshotWriter { tx, stop, thread }
    }

    pub fn checkpointer(&self) -> ToWriter {
        ToWriter(Mutex::new(self.tx.clone()))
    }

    /// Stores what is waiting, then ends.
    pub fn stop(self) {
        self.stop.store(true, Ordering::Release);
        self.thread.join().expect("the checkpoint writer panicked");
    }
}

fn write_loop(
    rx: &Receiver<Checkpoint>,
    dir: &SnapshotDir,
    stable: &[(RingId, StableVersions)],
    stop: &AtomicBool,
) {
    loop {
        let mut c = match rx.recv_timeout(Duration::from_millis(50)) {
            Ok(c) => c,
            Err(RecvTimeoutError::Timeout) if !stop.load(Ordering::Acquire) => continue,
            Err(_) => return,
        };
        while let Ok(newer) = rx.try_recv() {
            c = newer;
        }
        let positions: Vec<SourcePosition> =
            c.lanes.iter().filter_map(|l| SourcePosition::decode(&l.position).ok()).collect();
        let order = positions.first().and_then(|p| p.current.as_ref()).map_or(0, |b| b.instance);
        let bytes = ReplicaSnapshot { order, checkpoint: c }.encode();
        if let Err(e) = dir.store(&bytes) {
            eprintln!("ringsmr: replica: storing a checkpoint failed (the last one stays): {e}");
            continue;
        }
        for (ring, versions) in stable {
            let needed = positions
                .iter()
                .flat_map(|p| p.needed_from())
                .filter(|(r, _)| r == ring)
                .map(|(_, i)| i)
                .min();
            if let Some(i) = needed {
                versions.report(i);
            }
        }
    }
}
