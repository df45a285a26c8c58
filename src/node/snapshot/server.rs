//! Serves a node's stored snapshot to learners that fell behind (see [`transfer`]
//! for the bytes).
//!
//! One thread, one connection at a time: state transfers are rare, and a snapshot is read from
//! disk through one buffer. The file is opened per request; a newer snapshot renamed over it
//! meanwhile leaves the transfer reading the one it opened. A peer that stalls is cut off after
//! [`PEER_TIMEOUT`], so it delays others at most that long.

use std::fs::File;
use std::io::{self, BufWriter, Read, Seek, SeekFrom, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::CHUNK_BYTES;
use super::file::Header;
use super::store::SnapshotStore;
use super::transfer::{self, Answer, REQUEST_BYTES, Request};

/// How long a peer may keep the server waiting for its next bytes.
pub const PEER_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a starting server waits for its address to be released (a restarted process may find
/// it still held by its previous incarnation for a moment, as the node's data port is).
const BIND_RETRY_FOR: Duration = Duration::from_secs(5);

/// A running snapshot server; stopped when dropped.
#[derive(Debug)]
pub struct SnapshotServer {
    address: SocketAddr,
    stop: Arc<AtomicBool>,
    served: Arc<AtomicU64>,
    thread: Option<JoinHandle<()>>,
}

impl SnapshotServer {
    /// Listens at `address` and serves `store`'s snapshot from a thread of its own.
    pub fn start(address: SocketAddr, store: Arc<SnapshotStore>) -> io::Result<SnapshotServer> {
        let give_up_at = Instant::now() + BIND_RETRY_FOR;
        let listener = loop {
            match TcpListener::bind(address) {
                Ok(l) => break l,
                Err(e) if e.kind() == io::ErrorKind::AddrInUse && Instant::now() < give_up_at => {
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(e) => return Err(e),
            }
        };
        let address = listener.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let served = Arc::new(AtomicU64::new(0));
        let (thread_stop, thread_served) = (Arc::clone(&stop), Arc::clone(&served));
        let thread =
            std::thread::Builder::new().name("ringsmr-snapshots".into()).spawn(move || {
                let mut buf = vec![0u8; CHUNK_BYTES];
                for conn in listener.incoming() {
                    if thread_stop.load(Ordering::Acquire) {
                        break;
                    }
                    let Ok(conn) = conn else { continue };
                    let peer = conn.peer_addr().map_or_else(|_| "?".into(), |a| a.to_string());
                    match serve(conn, &store, &mut buf) {
                        Ok(true) => {
                            thread_served.fetch_add(1, Ordering::Relaxed);
                        }
                        Ok(false) => {}
                        Err(e) => eprintln!("ringsmr: snapshot server: {peer}: {e}"),
                    }
                }
            })?;
        Ok(SnapshotServer { address, stop, served, thread: Some(thread) })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.address
    }

    /// Snapshots sent whole so far.
    pub fn served(&self) -> u64 {
        self.served.load(Ordering::Relaxed)
    }
}

impl Drop for SnapshotServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        // The thread waits in accept: a connection of our own wakes it to see the flag.
        let _ = TcpStream::connect_timeout(&self.address, Duration::from_secs(1));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Answers one request. Returns whether a snapshot was sent.
fn serve(conn: TcpStream, store: &SnapshotStore, buf: &mut [u8]) -> io::Result<bool> {
    conn.set_read_timeout(Some(PEER_TIMEOUT))?;
    conn.set_write_timeout(Some(PEER_TIMEOUT))?;
    let mut request = [0u8; REQUEST_BYTES];
    let mut input = &conn;
    match input.read_exact(&mut request) {
        // A connection that closes at once is the server's own wake-up, or a probe.
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(false),
        r => r?,
    }
    let Some(request) = Request::decode(&request) else {
        return Err(io::Error::new(io::ErrorKind::InvalidData, "not a snapshot request"));
    };
    let mut out = BufWriter::with_capacity(CHUNK_BYTES, &conn);
    if request.cluster_id != store.cluster_id() {
        out.write_all(&Answer::OtherCluster.encode())?;
        return out.flush().map(|()| false);
    }
    let path = store.path();
    let mut file = match File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            out.write_all(&Answer::NoneRecentEnough { next_instance: 0 }.encode())?;
            return out.flush().map(|()| false);
        }
        Err(e) => return Err(e),
    };
    let header =
        Header::read_from(&mut file, &path).map_err(|e| io::Error::other(e.to_string()))?;
    if header.next_instance < request.min_version {
        out.write_all(&Answer::NoneRecentEnough { next_instance: header.next_instance }.encode())?;
        return out.flush().map(|()| false);
    }
    let file_bytes = file.metadata()?.len();
    out.write_all(&Answer::Sending { next_instance: header.next_instance, file_bytes }.encode())?;
    file.seek(SeekFrom::Start(0))?;
    // `send_chunks` reads whole chunks: no second buffer in front of the file.
    transfer::send_chunks(&mut file, file_bytes, &mut out, buf)?;
    Ok(true)
}
