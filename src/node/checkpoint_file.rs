//! The checkpoint of `ringsmr node`'s application: the checksum of the stream it delivered so far
//! and the learner checkpoint taken at the same point (`proto::learner_checkpoint`), in one file
//! that is replaced atomically (written beside it, synced, renamed over it, directory synced), so
//! that a crash leaves either the old checkpoint or the new one, never a mix.
//!
//! ```text
//! file := magic "RSMRCKP1" | stream hash u64 | stream values u64 | learner checkpoint | crc32 u32
//! ```
//!
//! A restarted node reads it back, starts its learner from it and goes on checksumming from the
//! stored checksum: its stream then ends as every other learner's does (`tests/recovery.rs`).

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::Path;

use crate::proto::LearnerCheckpoint;

use super::checksum::StreamChecksum;

const MAGIC: &[u8; 8] = b"RSMRCKP1";

/// A checkpoint file that could not be written or read, naming it.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointFileError {
    #[error("checkpoint {path}: {source}")]
    Io { path: String, source: io::Error },
    #[error(
        "checkpoint {path} is damaged ({what}): remove it to start this learner from the beginning \
         of the stream"
    )]
    Damaged { path: String, what: String },
}

/// Replaces the checkpoint at `path` with (`sum`, `cp`); durable when this returns.
pub fn save(
    path: &Path,
    sum: &StreamChecksum,
    cp: &LearnerCheckpoint,
) -> Result<(), CheckpointFileError> {
    let io_err = |source| CheckpointFileError::Io { path: path.display().to_string(), source };
    let mut bytes = Vec::with_capacity(64);
    bytes.extend_from_slice(MAGIC);
    bytes.extend_from_slice(&sum.value().to_le_bytes());
    bytes.extend_from_slice(&sum.values.to_le_bytes());
    cp.encode(&mut bytes);
    let crc = crc32fast::hash(&bytes);
    bytes.extend_from_slice(&crc.to_le_bytes());
    let tmp = path.with_extension("tmp");
    let mut f = File::create(&tmp).map_err(io_err)?;
    f.write_all(&bytes).and_then(|()| f.sync_all()).map_err(io_err)?;
    fs::rename(&tmp, path).map_err(io_err)?;
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    File::open(dir).and_then(|d| d.sync_all()).map_err(io_err)
}

/// The checkpoint at `path`; `None` when there is none yet.
pub fn load(
    path: &Path,
) -> Result<Option<(StreamChecksum, LearnerCheckpoint)>, CheckpointFileError> {
    let name = path.display().to_string();
    let bytes = match fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(CheckpointFileError::Io { path: name, source }),
    };
    let damaged =
        |what: &str| CheckpointFileError::Damaged { path: name.clone(), what: what.into() };
    if bytes.len() < MAGIC.len() + 16 + 4 || &bytes[..8] != MAGIC {
        return Err(damaged("not a ringsmr node checkpoint"));
    }
    let (body, crc) = bytes.split_at(bytes.len() - 4);
    if crc32fast::hash(body).to_le_bytes() != crc {
        return Err(damaged("checksum mismatch"));
    }
    let word = |at: usize| u64::from_le_bytes(body[at..at + 8].try_into().expect("8 bytes"));
    let sum = StreamChecksum::resumed(word(8), word(16));
    let cp = LearnerCheckpoint::decode(&body[24..]).map_err(|e| damaged(&e.to_string()))?;
    Ok(Some((sum, cp)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::ValueId;
    use crate::proto::learner_checkpoint::DeliveredSeqs;

    #[test]
    fn a_checkpoint_file_reads_back_and_damage_names_the_file() {
        let dir = std::env::temp_dir().join(format!("ringsmr-ckpt-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("learner.ckpt");
        assert!(load(&path).unwrap().is_none());
        let mut sum = StreamChecksum::default();
        sum.add_value(3, ValueId { proposer: 1, incarnation: 2, seq: 3 }, b"abc");
        let cp = LearnerCheckpoint {
            next_instance: 4,
            delivered: vec![DeliveredSeqs { proposer: 1, incarnation: 2, below: 4, above: vec![] }],
        };
        save(&path, &sum, &cp).unwrap();
        assert_eq!(load(&path).unwrap(), Some((sum, cp)));
        let mut bytes = fs::read(&path).unwrap();
        bytes[12] ^= 1;
        fs::write(&path, &bytes).unwrap();
        let e = load(&path).unwrap_err().to_string();
        assert!(e.contains("learner.ckpt") && e.contains("damaged"), "{e}");
        fs::remove_dir_all(&dir).unwrap();
    }
}
