//! What can go wrong with an acceptor's log, each with the file it concerns and what to do about it
//! (DESIGN "Errors": environment failures name the cause and the fix).

use std::io;
use std::path::{Path, PathBuf};

use crate::proto::NodeId;

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error(
        "disk full: cannot {op} {path} ({needed_mib} MiB for the acceptor log); free space on that \
         file system, or point the node's `data_dir` at one with room"
    )]
    DiskFull { op: &'static str, path: PathBuf, needed_mib: u64 },
    #[error("cannot {op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(
        "{path} belongs to cluster {found}, not to cluster {expected}: give this node a `data_dir` \
         of its own, or remove that directory if the other cluster is gone"
    )]
    OtherCluster { path: PathBuf, found: u32, expected: u32 },
    #[error(
        "{path} is node {found}'s acceptor log, not node {expected}'s: give each node a `data_dir` \
         of its own"
    )]
    OtherNode { path: PathBuf, found: NodeId, expected: NodeId },
    #[error(
        "{path} is not a ringsmr acceptor log (or its header is damaged): move it out of the data \
         directory"
    )]
    NotALog { path: PathBuf },
    #[error("{path} was written in log format {format}, which this build does not read")]
    UnknownFormat { path: PathBuf, format: u32 },
    #[error(
        "{path} is damaged at byte {offset_bytes} ({what}) with records after it: not a write a \
         crash cut short, so votes this acceptor may have sent would be lost. Refusing to start. \
         Restore the directory from a backup, or remove it so that this node rejoins without its \
         votes (safe only while a majority of the acceptors kept theirs)"
    )]
    Corrupt { path: PathBuf, offset_bytes: u64, what: String },
    #[error(
        "{dir} lacks log segment {seq} between the ones it holds: refusing to start without it \
         (restore it, or remove the directory as for a damaged log)"
    )]
    MissingSegment { dir: PathBuf, seq: u64 },
}

impl StorageError {
    /// The error of `op` on `path`; ENOSPC and EDQUOT become [`StorageError::DiskFull`], naming the
    /// `needed_bytes` the operation wanted.
    pub fn io(op: &'static str, path: &Path, source: io::Error, needed_bytes: u64) -> StorageError {
        let full = matches!(source.raw_os_error(), Some(libc::ENOSPC) | Some(libc::EDQUOT));
        if full {
            StorageError::DiskFull {
                op,
                path: path.to_path_buf(),
                needed_mib: needed_bytes.div_ceil(1 << 20),
            }
        } else {
            StorageError::Io { op, path: path.to_path_buf(), source }
        }
    }
}
