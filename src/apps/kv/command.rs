//! The store's commands and replies as bytes (thesis 6.5.2: `insert(k, v)`, `delete(k)`,
//! `read(k)`, `update(k, v)`, each with its error code).
//!
//! ```text
//! command: class u8 | key u64 | value u64 | padding
//! reply:   code u8 (0 ok, 1 value, 2 exists, 3 not found, 4 checksum)
//!          | value u64 (with codes 1 and 4 only)
//! ```
//!
//! `checksum` is not one of the thesis' commands: it reads the whole state's checksum at its
//! place in the order (key and value ignored), so replicas can be compared while clients run. It
//! depends on every command, so under P-SMR every worker stands still at its barrier while it
//! runs, and every replica computes it over the same state.
//!
//! Little-endian. The value of `read` and `delete` is ignored (0 by convention); bytes after the
//! first 17 are padding the store ignores, so benchmarks can set the command size (the issue's
//! 64-byte commands) without another format.

use crate::smr::BadCommand;
pub use crate::smr::linearizability::{KvOp, KvReply};

pub const INSERT: u8 = 1;
pub const DELETE: u8 = 2;
pub const READ: u8 = 3;
pub const UPDATE: u8 = 4;
pub const CHECKSUM: u8 = 5;

const REPLY_CHECKSUM: u8 = 4;

/// Bytes of a command without padding.
pub const COMMAND_BYTES: usize = 17;

/// Appends `op`, padded with zeros to `bytes` (at least [`COMMAND_BYTES`]).
pub fn encode(op: KvOp, bytes: usize, out: &mut Vec<u8>) {
    let (class, key, value) = match op {
        KvOp::Insert(k, v) => (INSERT, k, v),
        KvOp::Delete(k) => (DELETE, k, 0),
        KvOp::Read(k) => (READ, k, 0),
        KvOp::Update(k, v) => (UPDATE, k, v),
    };
    let start = out.len();
    out.push(class);
    out.extend_from_slice(&key.to_le_bytes());
    out.extend_from_slice(&value.to_le_bytes());
    out.resize(start + bytes.max(COMMAND_BYTES), 0);
}

pub fn decode(command: &[u8]) -> Result<KvOp, BadCommand> {
    if command.len() < COMMAND_BYTES {
        return Err(BadCommand);
    }
    let key = u64::from_le_bytes(command[1..9].try_into().expect("8 bytes"));
    let value = u64::from_le_bytes(command[9..17].try_into().expect("8 bytes"));
    Ok(match command[0] {
        INSERT => KvOp::Insert(key, value),
        DELETE => KvOp::Delete(key),
        READ => KvOp::Read(key),
        UPDATE => KvOp::Update(key, value),
        _ => return Err(BadCommand),
    })
}

/// Appends a `checksum` command, padded to `bytes`.
pub fn encode_checksum(bytes: usize, out: &mut Vec<u8>) {
    let start = out.len();
    out.push(CHECKSUM);
    out.resize(start + bytes.max(COMMAND_BYTES), 0);
}

/// Whether `command` is a well-formed `checksum` command.
pub fn is_checksum(command: &[u8]) -> bool {
    command.len() >= COMMAND_BYTES && command[0] == CHECKSUM
}

pub fn encode_checksum_reply(checksum: u64, out: &mut Vec<u8>) {
    out.push(REPLY_CHECKSUM);
    out.extend_from_slice(&checksum.to_le_bytes());
}

/// The checksum a `checksum` command's reply carries.
pub fn decode_checksum_reply(body: &[u8]) -> Option<u64> {
    match (body.first()?, body.len()) {
        (&REPLY_CHECKSUM, 9) => Some(u64::from_le_bytes(body[1..9].try_into().ok()?)),
        _ => None,
    }
}

pub fn encode_reply(r: KvReply, out: &mut Vec<u8>) {
    match r {
        KvReply::Ok => out.push(0),
        KvReply::Value(v) => {
            out.push(1);
            out.extend_from_slice(&v.to_le_bytes());
        }
        KvReply::Exists => out.push(2),
        KvReply::NotFound => out.push(3),
    }
}

pub fn decode_reply(body: &[u8]) -> Option<KvReply> {
    match (body.first()?, body.len()) {
        (0, 1) => Some(KvReply::Ok),
        (1, 9) => Some(KvReply::Value(u64::from_le_bytes(body[1..9].try_into().ok()?))),
        (2, 1) => Some(KvReply::Exists),
        (3, 1) => Some(KvReply::NotFound),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_and_replies_round_trip() {
        for op in [KvOp::Insert(1, 2), KvOp::Delete(3), KvOp::Read(u64::MAX), KvOp::Update(0, 9)] {
            for bytes in [0, COMMAND_BYTES, 64] {
                let mut out = Vec::new();
                encode(op, bytes, &mut out);
                assert_eq!(out.len(), bytes.max(COMMAND_BYTES));
                assert_eq!(decode(&out), Ok(op));
            }
        }
        for r in [KvReply::Ok, KvReply::Value(7), KvReply::Exists, KvReply::NotFound] {
            let mut out = Vec::new();
            encode_reply(r, &mut out);
            assert_eq!(decode_reply(&out), Some(r));
        }
        assert_eq!(decode(&[READ; 16]), Err(BadCommand));
        assert_eq!(decode(&[9; 17]), Err(BadCommand));
        assert_eq!(decode_reply(&[1, 2]), None);
        let mut c = Vec::new();
        encode_checksum(64, &mut c);
        assert!(is_checksum(&c) && c.len() == 64);
        assert_eq!(decode(&c), Err(BadCommand), "not one of the store's data commands");
        let mut r = Vec::new();
        encode_checksum_reply(0xDEAD_BEEF, &mut r);
        assert_eq!((decode_checksum_reply(&r), decode_reply(&r)), (Some(0xDEAD_BEEF), None));
    }
}
