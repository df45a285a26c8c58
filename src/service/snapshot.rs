//! A replica's snapshot: the checkpoint its workers took at a checkpoint request
//! (`smr::checkpoint`), as a file; where a replica keeps it; and how a restarted replica gets
//! the newest there is, its own or another replica's (thesis 3.3.7's state transfer, at the
//! level of the service).
//!
//! ```text
//! file  := magic "RSMRSVC1" | order u64 | lanes u32 | service | (table | table_all | position)*
//!          | crc32 u32 (CRC-32 of every byte before it)
//! part  := bytes u64 | bytes
//! ```
//!
//! `order` is the instance of g_all's ring that held the checkpoint request: every replica takes
//! its checkpoints at the same requests, so a larger `order` is a later snapshot, whichever
//! replica took it.
//!
//! **On disk** a snapshot replaces the last one atomically (written beside it, synced, renamed
//! over it, the directory synced), so a crash leaves the old one or the new one. **Between
//! replicas** each replica serves its file at its `snapshots` endpoint: a connection gets the
//! file's length (u64) and the file, and is closed. A restarting replica asks every other
//! replica and takes the newest of theirs and its own; the file's CRC catches what a transfer
//! broke.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::smr::byte_reader::{ByteReader, put_with_len};
use crate::smr::checkpoint::{Checkpoint, LanePart};

const MAGIC: &[u8; 8] = b"RSMRSVC1";
const FILE_NAME: &str = "replica.snapshot";
/// Files larger than this are refused on the wire (a peer speaking something else).
const WIRE_BYTES_MAX: u64 = 64 << 30;

/// See the module docs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplicaSnapshot {
    pub order: u64,
    pub checkpoint: Checkpoint,
}

impl ReplicaSnapshot {
    pub fn encode(&self) -> Vec<u8> {
        let c = &self.checkpoint;
        let parts: usize = c.lanes.iter().map(|l| l.table.len() + l.table_all.len()).sum();
        let mut out = Vec::with_capacity(64 + c.service.len() + parts);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&self.order.to_le_bytes());
        out.extend_from_slice(&(c.lanes.len() as u32).to_le_bytes());
        put_with_len(&mut out, &c.service);
        for l in &c.lanes {
            put_with_len(&mut out, &l.table);
            put_with_len(&mut out, &l.table_all);
            put_with_len(&mut out, &l.position);
        }
        let crc = crc32fast::hash(&out);
        out.extend_from_slice(&crc.to_le_bytes());
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<ReplicaSnapshot, &'static str> {
        let Some(body_len) = bytes.len().checked_sub(4) else { return Err("truncated") };
        let (body, crc) = bytes.split_at(body_len);
        if crc32fast::hash(body).to_le_bytes() != crc {
            return Err("its checksum does not match (a torn or broken file)");
        }
        let mut r = ByteReader::new(body);
        if r.take(MAGIC.len())? != MAGIC {
            return Err("not a replica snapshot");
        }
        let order = r.u64()?;
        let lanes = r.u32()?;
        let service = r.bytes_with_len()?.to_vec();
        let mut parts = Vec::new();
        for _ in 0..lanes {
            parts.push(LanePart {
                table: r.bytes_with_len()?.to_vec(),
                table_all: r.bytes_with_len()?.to_vec(),
                position: r.bytes_with_len()?.to_vec(),
            });
        }
        if !r.is_empty() {
            return Err("bytes after the last lane");
        }
        Ok(ReplicaSnapshot { order, checkpoint: Checkpoint { service, lanes: parts } })
    }
}

/// A replica's snapshot directory (one file).
#[derive(Clone, Debug)]
pub struct SnapshotDir {
    dir: PathBuf,
}

impl SnapshotDir {
    /// Creates `dir` if needed.
    pub fn open(dir: &Path) -> std::io::Result<SnapshotDir> {
        std::fs::create_dir_all(dir)?;
        Ok(SnapshotDir { dir: dir.to_path_buf() })
    }

    fn path(&self) -> PathBuf {
        self.dir.join(FILE_NAME)
    }

    /// Replaces the stored snapshot with `bytes` (an encoded [`ReplicaSnapshot`]), durably.
    pub fn store(&self, bytes: &[u8]) -> std::io::Result<()> {
        let tmp = self.dir.join(format!("{FILE_NAME}.new"));
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, self.path())?;
        std::fs::File::open(&self.dir)?.sync_all()
    }

    /// The stored file's bytes, if there is one.
    pub fn load_bytes(&self) -> std::io::Result<Option<Vec<u8>>> {
        match std::fs::read(self.path()) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// Serves the directory's snapshot at an endpoint until dropped.
pub struct SnapshotServer {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl SnapshotServer {
    pub fn start(address: SocketAddr, dir: SnapshotDir) -> std::io::Result<SnapshotServer> {
        let listener = TcpListener::bind(address)?;
        listener.set_nonblocking(true)?;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread =
            std::thread::Builder::new().name("replica-snapshots".into()).spawn(move || {
                while !flag.load(Ordering::Acquire) {
                    match listener.accept() {
                        Ok((conn, _)) => {
                            // One at a time: a restart is rare and a snapshot one file.
                            if let Err(e) = serve(conn, &dir) {
                                eprintln!("ringsmr: serving the replica's snapshot: {e}");
                            }
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(20)),
                    }
                }
            })?;
        Ok(SnapshotServer { stop, thread: Some(thread) })
    }
}

impl Drop for SnapshotServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve(mut conn: TcpStream, dir: &SnapshotDir) -> std::io::Result<()> {
    conn.set_nonblocking(false)?;
    conn.set_write_timeout(Some(Duration::from_secs(30)))?;
    let bytes = dir.load_bytes()?.unwrap_or_default();
    conn.write_all(&(bytes.len() as u64).to_le_bytes())?;
    conn.write_all(&bytes)
}

/// The snapshot the replica at `address` serves (`None`: it has none yet).
pub fn fetch(address: SocketAddr, timeout: Duration) -> Result<Option<ReplicaSnapshot>, String> {
    let mut conn = TcpStream::connect_timeout(&address, timeout).map_err(|e| e.to_string())?;
    conn.set_read_timeout(Some(timeout)).map_err(|e| e.to_string())?;
    let mut len = [0; 8];
    conn.read_exact(&mut len).map_err(|e| e.to_string())?;
    let len = u64::from_le_bytes(len);
    if len == 0 {
        return Ok(None);
    }
    if len > WIRE_BYTES_MAX {
        return Err(format!("a snapshot of {len} bytes: not a replica's snapshot endpoint"));
    }
    let mut bytes = vec![0; len as usize];
    conn.read_exact(&mut bytes).map_err(|e| e.to_string())?;
    ReplicaSnapshot::decode(&bytes).map(Some).map_err(|e| format!("the snapshot: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::temp_dir::TempDir;

    fn snapshot(order: u64) -> ReplicaSnapshot {
        let lane = |n: u8| LanePart { table: vec![n], table_all: vec![], position: vec![n; 3] };
        ReplicaSnapshot {
            order,
            checkpoint: Checkpoint { service: b"state".to_vec(), lanes: vec![lane(1), lane(2)] },
        }
    }

    #[test]
    fn a_snapshot_round_trips_and_a_broken_one_is_refused() {
        let s = snapshot(7);
        let bytes = s.encode();
        assert_eq!(ReplicaSnapshot::decode(&bytes), Ok(s));
        for at in [0, 9, bytes.len() / 2, bytes.len() - 1] {
            let mut broken = bytes.clone();
            broken[at] ^= 1;
            assert!(ReplicaSnapshot::decode(&broken).is_err(), "a flipped bit at {at}");
        }
        assert!(ReplicaSnapshot::decode(&bytes[..bytes.len() - 1]).is_err());
        assert!(ReplicaSnapshot::decode(&[]).is_err());
    }

    #[test]
    fn a_stored_snapshot_is_served_to_another_replica() {
        let dir = TempDir::new("replica-snapshot");
        let store = SnapshotDir::open(dir.path()).unwrap();
        assert_eq!(store.load_bytes().unwrap(), None);
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
        let server = SnapshotServer::start(port, store.clone()).unwrap();
        assert_eq!(fetch(port, Duration::from_secs(5)), Ok(None), "nothing stored yet");
        store.store(&snapshot(3).encode()).unwrap();
        store.store(&snapshot(4).encode()).unwrap();
        assert_eq!(fetch(port, Duration::from_secs(5)), Ok(Some(snapshot(4))));
        drop(server);
        assert!(fetch(port, Duration::from_millis(500)).is_err(), "no server any more");
    }
}
