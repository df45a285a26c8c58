//! A learner that every acceptor turned away fetches a snapshot from a learner that is ahead
//! (thesis 3.3.7), on a thread of its own so the node thread goes on voting, forwarding and
//! sending heartbeats meanwhile.
//!
//! The donors are asked one after the other, highest reported version first, until one sends a
//! snapshot at or above the version asked for. The snapshot is written to the store's incoming
//! file as it arrives (one 64 KiB buffer whatever its size), synced, checked whole, and only then
//! made this learner's stored snapshot ([`SnapshotStore::adopt_incoming`]).

use std::fs::File;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, TryRecvError, channel};
use std::time::Duration;

use crate::proto::{Instance, NodeId};

use super::CHUNK_BYTES;
use super::file::{Snapshot, SnapshotError};
use super::server::PEER_TIMEOUT;
use super::store::SnapshotStore;
use super::transfer::{self, ANSWER_BYTES, Answer, Request};

/// How long connecting to a donor may take before the next one is asked.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// A fetch running on its own thread.
#[derive(Debug)]
pub struct Fetch {
    done: Receiver<Result<Snapshot, String>>,
}

/// What [`Fetch::poll`] found.
#[derive(Debug)]
pub enum FetchPoll {
    Running,
    /// The snapshot, already this learner's stored one.
    Done(Snapshot),
    /// Every donor failed; the text says how, donor by donor.
    Failed(String),
}

impl Fetch {
    /// Starts asking `donors` (id and snapshot endpoint, in order) for a snapshot at `min_version`
    /// or newer, on behalf of node `me`.
    pub fn start(
        store: Arc<SnapshotStore>,
        me: NodeId,
        donors: Vec<(NodeId, SocketAddr)>,
        min_version: Instance,
    ) -> io::Result<Fetch> {
        let (tx, done) = channel();
        std::thread::Builder::new().name("ringsmr-fetch".into()).spawn(move || {
            let _ = tx.send(fetch_from_any(&store, me, &donors, min_version));
        })?;
        Ok(Fetch { done })
    }

    /// Whether the fetch ended, and how; never blocks.
    pub fn poll(&self) -> FetchPoll {
        match self.done.try_recv() {
            Ok(Ok(s)) => FetchPoll::Done(s),
            Ok(Err(e)) => FetchPoll::Failed(e),
            Err(TryRecvError::Empty) => FetchPoll::Running,
            Err(TryRecvError::Disconnected) => FetchPoll::Failed("the fetch thread died".into()),
        }
    }
}

fn fetch_from_any(
    store: &SnapshotStore,
    me: NodeId,
    donors: &[(NodeId, SocketAddr)],
    min_version: Instance,
) -> Result<Snapshot, String> {
    if donors.is_empty() {
        return Err(format!(
            "no live learner reports a version at or above instance {min_version}; learners must \
             store snapshots (checkpoints on) for state transfer to bring this one back"
        ));
    }
    let mut why = Vec::with_capacity(donors.len());
    let mut buf = vec![0u8; CHUNK_BYTES];
    for &(id, address) in donors {
        match fetch_from(store, me, address, min_version, &mut buf) {
            Ok(s) => return Ok(s),
            Err(e) => why.push(format!("node {id}: {e}")),
        }
    }
    Err(why.join("; "))
}

/// Fetches a snapshot at `min_version` or newer from the server at `address`.
pub fn fetch_from(
    store: &SnapshotStore,
    me: NodeId,
    address: SocketAddr,
    min_version: Instance,
    buf: &mut [u8],
) -> Result<Snapshot, SnapshotError> {
    let peer = address.to_string();
    let transfer = |what: String| SnapshotError::Transfer { peer: peer.clone(), what };
    let net = |e: io::Error| transfer(e.to_string());
    let conn = TcpStream::connect_timeout(&address, CONNECT_TIMEOUT).map_err(net)?;
    conn.set_read_timeout(Some(PEER_TIMEOUT)).map_err(net)?;
    conn.set_write_timeout(Some(PEER_TIMEOUT)).map_err(net)?;
    let request = Request { cluster_id: store.cluster_id(), from: me, min_version };
    (&conn).write_all(&request.encode()).map_err(net)?;
    let mut answer = [0u8; ANSWER_BYTES];
    (&conn).read_exact(&mut answer).map_err(net)?;
    let (next_instance, file_bytes) = match Answer::decode(&answer) {
        Some(Answer::Sending { next_instance, file_bytes }) => (next_instance, file_bytes),
        Some(Answer::NoneRecentEnough { next_instance }) => {
            return Err(transfer(format!(
                "has no snapshot at or above instance {min_version} (its newest: {next_instance})"
            )));
        }
        Some(Answer::OtherCluster) => {
            return Err(transfer("serves another cluster; check the cluster file".into()));
        }
        None => return Err(transfer("answered something that is not a snapshot answer".into())),
    };
    if next_instance < min_version {
        return Err(transfer(format!(
            "sent a snapshot at instance {next_instance}, older than the {min_version} asked for"
        )));
    }
    let incoming = store.incoming_path();
    let mut file = File::create(&incoming).map_err(SnapshotError::io(&incoming))?;
    transfer::receive_chunks(&mut &conn, file_bytes, &mut file, buf).map_err(net)?;
    file.sync_all().map_err(SnapshotError::io(&incoming))?;
    drop(file);
    match store.adopt_incoming()? {
        Some(s) if s.checkpoint.next_instance >= min_version => Ok(s),
        Some(s) => Err(transfer(format!(
            "announced instance {next_instance} but the file holds {}",
            s.checkpoint.next_instance
        ))),
        None => Err(transfer(format!(
            "its snapshot at {next_instance} is not newer than this learner's own"
        ))),
    }
}
