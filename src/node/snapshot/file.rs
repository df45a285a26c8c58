//! One snapshot on disk: the learner checkpoint and the application's state after it, checksummed
//! as a whole.
//!
//! ```text
//! file    := header | learner checkpoint | application state | trailer
//! header  := magic "RSMRSNP1" | cluster_id u32 | checkpoint_bytes u32 | next_instance u64
//! trailer := state_bytes u64 | crc32 u32           (CRC-32 of every byte before it)
//! ```
//!
//! The application's state is streamed in and out through [`CHUNK_BYTES`]
//! buffers, so its size costs no memory; the state's length goes in the trailer because it is
//! known only at the end. A file is checked whole (one read pass) before anything in it is used:
//! a snapshot is rare, and a damaged one installed would corrupt the application for good.

use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::proto::{Instance, LearnerCheckpoint};

use super::CHUNK_BYTES;

pub const MAGIC: &[u8; 8] = b"RSMRSNP1";
pub const HEADER_BYTES: u64 = 24;
pub const TRAILER_BYTES: u64 = 12;

/// A snapshot that could not be written, read, fetched or served, naming the file or the peer.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("snapshot {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error(
        "snapshot {path} is damaged ({what}): remove it; this learner then starts from the \
         beginning of the stream, or from a snapshot another learner gives it"
    )]
    Damaged { path: PathBuf, what: String },
    #[error(
        "snapshot {path} belongs to cluster {found}, not {expected}: point this node at its own \
         data directory"
    )]
    OtherCluster { path: PathBuf, found: u32, expected: u32 },
    #[error("state transfer from {peer}: {what}")]
    Transfer { peer: String, what: String },
    #[error("the application's state: {0}")]
    Application(io::Error),
}

impl SnapshotError {
    pub(crate) fn io(path: &Path) -> impl FnOnce(io::Error) -> SnapshotError + '_ {
        move |source| SnapshotError::Io { path: path.to_path_buf(), source }
    }

    fn damaged(path: &Path, what: impl Into<String>) -> SnapshotError {
        SnapshotError::Damaged { path: path.to_path_buf(), what: what.into() }
    }
}

/// The fixed-size start of a snapshot file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    pub cluster_id: u32,
    pub checkpoint_bytes: u32,
    /// The learner checkpoint's version: the snapshot reflects every instance below it.
    pub next_instance: Instance,
}

impl Header {
    pub fn encode(&self) -> [u8; HEADER_BYTES as usize] {
        let mut b = [0u8; HEADER_BYTES as usize];
        b[..8].copy_from_slice(MAGIC);
        b[8..12].copy_from_slice(&self.cluster_id.to_le_bytes());
        b[12..16].copy_from_slice(&self.checkpoint_bytes.to_le_bytes());
        b[16..24].copy_from_slice(&self.next_instance.to_le_bytes());
        b
    }

    /// `None` when the bytes are not a snapshot's header.
    pub fn decode(b: &[u8; HEADER_BYTES as usize]) -> Option<Header> {
        if &b[..8] != MAGIC {
            return None;
        }
        let word = |at: usize| u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"));
        Some(Header {
            cluster_id: word(8),
            checkpoint_bytes: word(12),
            next_instance: u64::from_le_bytes(b[16..24].try_into().expect("8 bytes")),
        })
    }

    /// Reads the header at the start of `file` (and leaves the file there).
    pub fn read_from(file: &mut File, path: &Path) -> Result<Header, SnapshotError> {
        let mut b = [0u8; HEADER_BYTES as usize];
        file.seek(SeekFrom::Start(0)).map_err(SnapshotError::io(path))?;
        match file.read_exact(&mut b) {
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                return Err(SnapshotError::damaged(path, "shorter than a header"));
            }
            r => r.map_err(SnapshotError::io(path))?,
        }
        Header::decode(&b).ok_or_else(|| SnapshotError::damaged(path, "not a ringsmr snapshot"))
    }
}

/// Writes a snapshot file at `path` (created or truncated): the header and checkpoint at once,
/// then the application's state as it is written to this, then the trailer at
/// [`SnapshotWriter::finish`].
pub struct SnapshotWriter {
    path: PathBuf,
    out: BufWriter<File>,
    crc: crc32fast::Hasher,
    state_bytes: u64,
}

impl SnapshotWriter {
    pub fn create(
        path: &Path,
        cluster_id: u32,
        cp: &LearnerCheckpoint,
    ) -> Result<SnapshotWriter, SnapshotError> {
        let file = File::create(path).map_err(SnapshotError::io(path))?;
        let mut w = SnapshotWriter {
            path: path.to_path_buf(),
            out: BufWriter::with_capacity(CHUNK_BYTES, file),
            crc: crc32fast::Hasher::new(),
            state_bytes: 0,
        };
        let mut checkpoint = Vec::new();
        cp.encode(&mut checkpoint);
        let header = Header {
            cluster_id,
            checkpoint_bytes: u32::try_from(checkpoint.len())
                .map_err(|_| SnapshotError::damaged(path, "learner checkpoint over 4 GiB"))?,
            next_instance: cp.next_instance,
        };
        w.put(&header.encode())?;
        w.put(&checkpoint)?;
        Ok(w)
    }

    fn put(&mut self, bytes: &[u8]) -> Result<(), SnapshotError> {
        self.crc.update(bytes);
        self.out.write_all(bytes).map_err(SnapshotError::io(&self.path))
    }

    /// Writes the trailer and makes the file durable.
    pub fn finish(mut self) -> Result<(), SnapshotError> {
        let state_bytes = self.state_bytes.to_le_bytes();
        self.crc.update(&state_bytes);
        let crc = self.crc.clone().finalize();
        let path = self.path.clone();
        self.out.write_all(&state_bytes).map_err(SnapshotError::io(&path))?;
        self.out.write_all(&crc.to_le_bytes()).map_err(SnapshotError::io(&path))?;
        let file = self
            .out
            .into_inner()
            .map_err(|e| SnapshotError::Io { path: path.clone(), source: e.into_error() })?;
        file.sync_all().map_err(SnapshotError::io(&path))
    }
}

impl Write for SnapshotWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.out.write(buf)?;
        self.crc.update(&buf[..n]);
        self.state_bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

/// The application's state in a checked snapshot file: read it to the end to restore the state.
#[derive(Debug)]
pub struct SnapshotState {
    reader: io::Take<BufReader<File>>,
    bytes: u64,
}

impl SnapshotState {
    /// Bytes of the application's state.
    pub fn len(&self) -> u64 {
        self.bytes
    }

    pub fn is_empty(&self) -> bool {
        self.bytes == 0
    }

    /// Reads the whole state into memory, for applications whose state is small.
    pub fn read_all(mut self) -> io::Result<Vec<u8>> {
        let mut v = Vec::with_capacity(usize::try_from(self.bytes).unwrap_or(0));
        self.reader.read_to_end(&mut v)?;
        Ok(v)
    }
}

impl Read for SnapshotState {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.reader.read(buf)
    }
}

/// A snapshot file, checked whole.
#[derive(Debug)]
pub struct Snapshot {
    pub checkpoint: LearnerCheckpoint,
    pub state: SnapshotState,
}

/// Opens the snapshot at `path` and checks all of it: the magic, the cluster, the lengths and the
/// checksum. The state it returns reads from the file opened here, so replacing the file later
/// (a newer snapshot renamed over it) does not change what it reads.
pub fn open_checked(path: &Path, cluster_id: u32) -> Result<Snapshot, SnapshotError> {
    let mut file = File::open(path).map_err(SnapshotError::io(path))?;
    let header = Header::read_from(&mut file, path)?;
    if header.cluster_id != cluster_id {
        return Err(SnapshotError::OtherCluster {
            path: path.to_path_buf(),
            found: header.cluster_id,
            expected: cluster_id,
        });
    }
    let len = file.metadata().map_err(SnapshotError::io(path))?.len();
    let fixed = HEADER_BYTES + u64::from(header.checkpoint_bytes) + TRAILER_BYTES;
    if len < fixed {
        return Err(SnapshotError::damaged(path, "shorter than its header says"));
    }
    // One pass over everything before the checksum.
    file.seek(SeekFrom::Start(0)).map_err(SnapshotError::io(path))?;
    let mut crc = crc32fast::Hasher::new();
    let mut buf = vec![0u8; CHUNK_BYTES];
    let mut left = len - 4;
    let mut trailer = [0u8; TRAILER_BYTES as usize];
    while left > 0 {
        let n = usize::try_from(left).unwrap_or(usize::MAX).min(buf.len());
        file.read_exact(&mut buf[..n]).map_err(SnapshotError::io(path))?;
        crc.update(&buf[..n]);
        left -= n as u64;
    }
    file.read_exact(&mut trailer[8..]).map_err(SnapshotError::io(path))?;
    if crc.finalize().to_le_bytes() != trailer[8..] {
        return Err(SnapshotError::damaged(path, "checksum mismatch"));
    }
    file.seek(SeekFrom::Start(len - TRAILER_BYTES)).map_err(SnapshotError::io(path))?;
    file.read_exact(&mut trailer[..8]).map_err(SnapshotError::io(path))?;
    let state_bytes = u64::from_le_bytes(trailer[..8].try_into().expect("8 bytes"));
    if fixed.checked_add(state_bytes) != Some(len) {
        return Err(SnapshotError::damaged(path, "lengths do not add up"));
    }
    file.seek(SeekFrom::Start(HEADER_BYTES)).map_err(SnapshotError::io(path))?;
    let mut checkpoint = vec![0u8; header.checkpoint_bytes as usize];
    file.read_exact(&mut checkpoint).map_err(SnapshotError::io(path))?;
    let checkpoint = LearnerCheckpoint::decode(&checkpoint)
        .map_err(|e| SnapshotError::damaged(path, e.to_string()))?;
    if checkpoint.next_instance != header.next_instance {
        return Err(SnapshotError::damaged(path, "header and checkpoint disagree"));
    }
    let reader = BufReader::with_capacity(CHUNK_BYTES, file).take(state_bytes);
    Ok(Snapshot { checkpoint, state: SnapshotState { reader, bytes: state_bytes } })
}
