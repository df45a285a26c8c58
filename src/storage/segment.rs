//! One file of an acceptor's log: a header that says whose log it is, then records (`record`).
//!
//! ```text
//! header := magic "RSMRLOG1" | format u32 | cluster_id u32 | node u16 | 0 u16 | seq u64
//!         | first_lsn u64 | 0 (20 bytes) | crc32 u32                     (64 bytes, little-endian)
//! ```
//!
//! Segments are named `segment-<seq>.log`, `seq` counting from 1, and each is preallocated to its
//! full size when created (`fallocate`) so that appending never grows the file: a write then never
//! fails for lack of space half-way through a segment, and `fdatasync` has no file size to update
//! (thesis 3.5.5 writes in units of 32 KB; the group commit of `log` writes whole batches of votes).

use std::fs::{File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};

use crate::proto::NodeId;

use super::error::StorageError;

/// Bytes of a segment's header; records start here.
pub const SEGMENT_HEADER_BYTES: usize = 64;
const MAGIC: &[u8; 8] = b"RSMRLOG1";
/// The record format this build writes and reads.
pub const FORMAT: u32 = 1;

/// Whose log a segment belongs to and where it stands in it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SegmentHeader {
    pub cluster_id: u32,
    pub node: NodeId,
    /// Position among the log's segments, from 1.
    pub seq: u64,
    /// The lsn of the segment's first record.
    pub first_lsn: u64,
}

/// Why a file is not a segment this build can read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BadHeader {
    /// Not a ringsmr acceptor log at all (or its header is damaged).
    NotALog,
    /// Written by a format this build does not know.
    Format(u32),
}

impl SegmentHeader {
    pub fn encode(&self) -> [u8; SEGMENT_HEADER_BYTES] {
        let mut h = [0; SEGMENT_HEADER_BYTES];
        h[0..8].copy_from_slice(MAGIC);
        h[8..12].copy_from_slice(&FORMAT.to_le_bytes());
        h[12..16].copy_from_slice(&self.cluster_id.to_le_bytes());
        h[16..18].copy_from_slice(&self.node.to_le_bytes());
        h[20..28].copy_from_slice(&self.seq.to_le_bytes());
        h[28..36].copy_from_slice(&self.first_lsn.to_le_bytes());
        let crc = crc32fast::hash(&h[..SEGMENT_HEADER_BYTES - 4]);
        h[SEGMENT_HEADER_BYTES - 4..].copy_from_slice(&crc.to_le_bytes());
        h
    }

    pub fn decode(buf: &[u8]) -> Result<SegmentHeader, BadHeader> {
        let h = buf.get(..SEGMENT_HEADER_BYTES).ok_or(BadHeader::NotALog)?;
        let u32_at = |at: usize| u32::from_le_bytes(h[at..at + 4].try_into().expect("4 bytes"));
        let u64_at = |at: usize| u64::from_le_bytes(h[at..at + 8].try_into().expect("8 bytes"));
        if &h[0..8] != MAGIC || crc32fast::hash(&h[..SEGMENT_HEADER_BYTES - 4]) != u32_at(60) {
            return Err(BadHeader::NotALog);
        }
        if u32_at(8) != FORMAT {
            return Err(BadHeader::Format(u32_at(8)));
        }
        Ok(SegmentHeader {
            cluster_id: u32_at(12),
            node: u16::from_le_bytes([h[16], h[17]]),
            seq: u64_at(20),
            first_lsn: u64_at(28),
        })
    }
}

/// The path of segment `seq` in `dir`.
pub fn segment_path(dir: &Path, seq: u64) -> PathBuf {
    dir.join(format!("segment-{seq:010}.log"))
}

/// The sequence number in a segment's file name, `None` for any other file.
pub fn segment_seq(file_name: &str) -> Option<u64> {
    file_name.strip_prefix("segment-")?.strip_suffix(".log")?.parse().ok()
}

/// Creates segment `header.seq` in `dir`, `segment_bytes` long, with its header written and
/// synced, and the directory entry synced too, so that the segment survives a crash once this
/// returns. Refuses to overwrite an existing file.
pub fn create(
    dir: &Path,
    header: SegmentHeader,
    segment_bytes: u64,
) -> Result<(File, PathBuf), StorageError> {
    let path = segment_path(dir, header.seq);
    let io_err = |op: &'static str, path: &Path| {
        let path = path.to_path_buf();
        move |source: io::Error| StorageError::io(op, &path, source, segment_bytes)
    };
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&path)
        .map_err(io_err("create", &path))?;
    let preallocated =
        nix::fcntl::fallocate(&file, nix::fcntl::FallocateFlags::empty(), 0, segment_bytes as i64);
    if let Err(errno) = preallocated {
        // Leave no half-made segment behind: the next start would take it for the log's end.
        let _ = std::fs::remove_file(&path);
        return Err(io_err("preallocate", &path)(io::Error::from(errno)));
    }
    write_all_at(&file, &header.encode(), 0).map_err(io_err("write the header of", &path))?;
    file.sync_all().map_err(io_err("sync", &path))?;
    sync_dir(dir)?;
    Ok((file, path))
}

/// Makes the directory's entries (a segment created or removed) durable.
pub fn sync_dir(dir: &Path) -> Result<(), StorageError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| StorageError::io("sync the directory", dir, e, 0))
}

/// `pwrite` until all of `buf` is written at `offset`.
pub fn write_all_at(file: &File, buf: &[u8], offset: u64) -> io::Result<()> {
    use std::os::unix::fs::FileExt;
    file.write_all_at(buf, offset)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_header_reads_back_and_damage_is_seen() {
        let h = SegmentHeader { cluster_id: 7, node: 2, seq: 12, first_lsn: 9000 };
        let bytes = h.encode();
        assert_eq!(SegmentHeader::decode(&bytes), Ok(h));
        for at in 0..SEGMENT_HEADER_BYTES {
            let mut damaged = bytes;
            damaged[at] ^= 1;
            assert!(SegmentHeader::decode(&damaged).is_err(), "flip at {at} went unnoticed");
        }
        assert_eq!(SegmentHeader::decode(&bytes[..10]), Err(BadHeader::NotALog));
    }

    #[test]
    fn segment_names_sort_by_sequence_and_parse_back() {
        let dir = Path::new("/d");
        let a = segment_path(dir, 9);
        let b = segment_path(dir, 10);
        assert!(a < b);
        let name = b.file_name().unwrap().to_str().unwrap();
        assert_eq!(segment_seq(name), Some(10));
        assert_eq!(segment_seq("segment-x.log"), None);
        assert_eq!(segment_seq("notes.txt"), None);
    }
}
