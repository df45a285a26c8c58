//! A replica that fell behind what the rings keep comes back from a newer snapshot.
//!
//! The acceptors keep decided instances for the slowest process, but only up to a bound (thesis
//! 3.3.7; here `retain_instances` and 64 MiB of values): a replica paused, cut off or too slow
//! for longer than that finds, when it asks for what it missed, that no acceptor keeps it any
//! more. Ring Paxos' own learners would fetch a learner snapshot then (state transfer). A replica
//! keeps snapshots of its own instead ([`snapshot`](super::snapshot)), which hold the service's
//! state, the client tables and every worker's place in every ring, so it comes back the way a
//! restarted replica does: it stops, takes the newest snapshot among its own and the other
//! replicas', and starts again from it. The acceptors never trim past what a quorum of replicas
//! stored, so the newest snapshot of the others needs only what the rings keep when it is fetched;
//! should the others store newer ones and the acceptors trim past it before the replica is up
//! again (a race the tests, with 500 instances kept and checkpoints every 200 ms, do meet), the
//! replica finds itself behind once more and comes back from a newer one still.
//!
//! Why a restart rather than installing the snapshot in place: everything a snapshot restores
//! (the state, the tables, each worker's merge) is built at start exactly as after a crash, code
//! every restart exercises; in place, every worker would have to drop its merge mid-stream at a
//! common point. The cost is small next to the fault that led here: the clients' connections to
//! this replica break and reconnect (the other replicas answer meanwhile), and the process'
//! acceptors come back from their logs, as after any restart.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::multiring::{MultiRingFile, ProcessId};
use crate::smr::Service;

use super::replica::{Replica, ReplicaError, ReplicaReport, ReplicaSpec, ReplicaStart};
use super::snapshot::{ReplicaSnapshot, SnapshotDir, fetch};

/// How long to wait for the other replicas' next checkpoint when none is newer than the one
/// this replica came back from already.
const NEWER_SNAPSHOT_POLL: Duration = Duration::from_millis(100);

/// The newest snapshot of this replica's own (in `own`) and the other replicas' (`others`, each
/// asked once), and whose it is; `None` when nobody has one. `say_why` prints why a snapshot could
/// not be had (not when asking over and over).
pub fn newest_snapshot(
    process: ProcessId,
    own: Option<&SnapshotDir>,
    others: &[(ProcessId, SocketAddr)],
    say_why: bool,
) -> Option<(ReplicaSnapshot, String)> {
    let mut found: Vec<(ReplicaSnapshot, String)> = Vec::new();
    match own.map(SnapshotDir::load_bytes) {
        Some(Ok(Some(b))) => match ReplicaSnapshot::decode(&b) {
            Ok(s) => found.push((s, "its own".into())),
            Err(e) => eprintln!("ringsmr: replica {process}: its stored snapshot is unusable: {e}"),
        },
        Some(Err(e)) => eprintln!("ringsmr: replica {process}: reading its snapshot: {e}"),
        Some(Ok(None)) | None => {}
    }
    for &(other, at) in others {
        match fetch(at, Duration::from_secs(2)) {
            Ok(Some(s)) => found.push((s, format!("replica {other}'s"))),
            Ok(None) => {}
            // Down, or not up yet (every replica starting at once asks the others).
            Err(e) if say_why => {
                eprintln!(
                    "ringsmr: replica {process}: no snapshot from replica {other} ({at}): {e}"
                )
            }
            Err(_) => {}
        }
    }
    found.into_iter().max_by_key(|(s, _)| s.order)
}

/// A replica that starts from the newest snapshot there is and comes back from a newer one when
/// it falls behind what the rings keep (module docs).
pub struct RejoiningReplica<S: Service> {
    /// `None` only after coming back failed.
    replica: Option<Replica<S>>,
    file: MultiRingFile,
    process: ProcessId,
    spec: ReplicaSpec,
    others: Vec<(ProcessId, SocketAddr)>,
    /// The order of the snapshot it started from last (0: a fresh state).
    started_at_order: u64,
    rejoins: u64,
}

impl<S: Service> RejoiningReplica<S> {
    /// Starts process `process` as a replica from the newest snapshot of its own and `others'`
    /// (where the other replicas serve theirs), or from `fresh()` when there is none. Returns it
    /// and the snapshot it started from, in words (`None`: a fresh state).
    pub fn start(
        file: &MultiRingFile,
        process: ProcessId,
        spec: ReplicaSpec,
        others: Vec<(ProcessId, SocketAddr)>,
        fresh: impl FnOnce() -> S,
    ) -> Result<(RejoiningReplica<S>, Option<String>), ReplicaError> {
        let newest = match &spec.snapshots {
            Some(s) => newest_snapshot(process, Some(&s.dir), &others, true),
            None => None,
        };
        let (start, order, from) = match newest {
            Some((snapshot, whose)) => {
                let order = snapshot.order;
                let from = format!("the snapshot at order {order} ({whose})");
                (ReplicaStart::Snapshot(snapshot), order, Some(from))
            }
            None => (ReplicaStart::Fresh(fresh()), 0, None),
        };
        let replica = Replica::start(file, process, &spec, start)?;
        let r = RejoiningReplica {
            replica: Some(replica),
            file: file.clone(),
            process,
            spec,
            others,
            started_at_order: order,
            rejoins: 0,
        };
        Ok((r, from))
    }

    /// The running replica; `None` once coming back from a snapshot failed ([`Self::tend`]'s
    /// error said why).
    pub fn replica(&self) -> Option<&Replica<S>> {
        self.replica.as_ref()
    }

    /// Times it came back from a newer snapshot.
    pub fn rejoins(&self) -> u64 {
        self.rejoins
    }

    /// To be called every few milliseconds: when the replica fell behind what the rings keep,
    /// stops it and starts it again from another replica's snapshot newer than any it had,
    /// waiting for the others' next checkpoint if none is newer yet (or until `stop` is set).
    /// Returns what it came back from, in words, when it did.
    pub fn tend(&mut self, stop: &AtomicBool) -> Result<Option<String>, ReplicaError> {
        let Some((ring, trimmed_below)) = self.replica.as_ref().and_then(Replica::behind) else {
            return Ok(None);
        };
        let Some(snapshots) = &self.spec.snapshots else {
            // Nothing to come back from: the node said so; the replica stays behind.
            return Ok(None);
        };
        eprintln!(
            "ringsmr: replica {}: ring {ring}'s acceptors no longer keep what it needs (they \
             trimmed below instance {trimmed_below}): coming back from a newer snapshot",
            self.process
        );
        // Its own snapshots cannot help: it took them before it fell behind. Another replica's
        // must be newer than the newest of them (and than the one it started from).
        let own_order = match snapshots.dir.load_bytes() {
            Ok(Some(b)) => ReplicaSnapshot::decode(&b).map_or(0, |s| s.order),
            _ => 0,
        };
        let floor = own_order.max(self.started_at_order);
        let mut first = true;
        let newer = loop {
            if stop.load(Ordering::Acquire) {
                return Ok(None);
            }
            match newest_snapshot(self.process, None, &self.others, first) {
                Some((s, whose)) if s.order > floor => break (s, whose),
                _ => std::thread::sleep(NEWER_SNAPSHOT_POLL),
            }
            first = false;
        };
        let (snapshot, whose) = newer;
        let order = snapshot.order;
        // Stopped before it starts again: the new replica takes the same ports.
        if let Some(r) = self.replica.take() {
            r.stop();
        }
        let start = ReplicaStart::Snapshot(snapshot);
        self.replica = Some(Replica::start(&self.file, self.process, &self.spec, start)?);
        self.started_at_order = order;
        self.rejoins += 1;
        Ok(Some(format!("the snapshot at order {order} ({whose})")))
    }

    /// Stops the replica; `None` if it was gone already.
    pub fn stop(self) -> Option<ReplicaReport<S>> {
        self.replica.map(Replica::stop)
    }
}
