//! The bytes of one state transfer, on a TCP connection of its own to the donor's `snapshot`
//! endpoint.
//!
//! ```text
//! request := magic "RSMRSTQ1" | cluster_id u32 | from u16 | min_version u64
//! answer  := magic "RSMRSTA1" | status u8 | next_instance u64 | file_bytes u64
//! chunk   := bytes u32 | crc32 u32 | bytes        (until file_bytes have come; status SENDING only)
//! ```
//!
//! The learner asks for a snapshot at `min_version` or newer (the acceptors' trim point); the
//! donor answers with its stored snapshot file, byte for byte, in chunks of at most
//! [`CHUNK_BYTES`]. Each chunk's CRC lets the receiver stop at the first damaged one instead of
//! after the whole file; the file's own checksum is checked again before it is used.

use std::io::{self, Read, Write};

use crate::proto::{Instance, NodeId};

use super::CHUNK_BYTES;

const REQUEST_MAGIC: &[u8; 8] = b"RSMRSTQ1";
const ANSWER_MAGIC: &[u8; 8] = b"RSMRSTA1";
pub const REQUEST_BYTES: usize = 22;
pub const ANSWER_BYTES: usize = 25;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Request {
    pub cluster_id: u32,
    pub from: NodeId,
    pub min_version: Instance,
}

impl Request {
    pub fn encode(&self) -> [u8; REQUEST_BYTES] {
        let mut b = [0u8; REQUEST_BYTES];
        b[..8].copy_from_slice(REQUEST_MAGIC);
        b[8..12].copy_from_slice(&self.cluster_id.to_le_bytes());
        b[12..14].copy_from_slice(&self.from.to_le_bytes());
        b[14..22].copy_from_slice(&self.min_version.to_le_bytes());
        b
    }

    pub fn decode(b: &[u8; REQUEST_BYTES]) -> Option<Request> {
        (&b[..8] == REQUEST_MAGIC).then(|| Request {
            cluster_id: u32::from_le_bytes(b[8..12].try_into().expect("4 bytes")),
            from: u16::from_le_bytes(b[12..14].try_into().expect("2 bytes")),
            min_version: u64::from_le_bytes(b[14..22].try_into().expect("8 bytes")),
        })
    }
}

/// What the donor says before any chunk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Answer {
    /// The snapshot at `next_instance` follows: `file_bytes` bytes in chunks.
    Sending { next_instance: Instance, file_bytes: u64 },
    /// The donor has no snapshot at the version asked for (its newest is at `next_instance`, 0
    /// for none).
    NoneRecentEnough { next_instance: Instance },
    /// The request came from another cluster.
    OtherCluster,
}

impl Answer {
    pub fn encode(&self) -> [u8; ANSWER_BYTES] {
        let (status, next_instance, file_bytes) = match *self {
            Answer::Sending { next_instance, file_bytes } => (0u8, next_instance, file_bytes),
            Answer::NoneRecentEnough { next_instance } => (1, next_instance, 0),
            Answer::OtherCluster => (2, 0, 0),
        };
        let mut b = [0u8; ANSWER_BYTES];
        b[..8].copy_from_slice(ANSWER_MAGIC);
        b[8] = status;
        b[9..17].copy_from_slice(&next_instance.to_le_bytes());
        b[17..25].copy_from_slice(&file_bytes.to_le_bytes());
        b
    }

    pub fn decode(b: &[u8; ANSWER_BYTES]) -> Option<Answer> {
        if &b[..8] != ANSWER_MAGIC {
            return None;
        }
        let next_instance = u64::from_le_bytes(b[9..17].try_into().expect("8 bytes"));
        let file_bytes = u64::from_le_bytes(b[17..25].try_into().expect("8 bytes"));
        match b[8] {
            0 => Some(Answer::Sending { next_instance, file_bytes }),
            1 => Some(Answer::NoneRecentEnough { next_instance }),
            2 => Some(Answer::OtherCluster),
            _ => None,
        }
    }
}

/// Sends `file_bytes` bytes of `from` as chunks, through `buf`.
pub fn send_chunks(
    from: &mut impl Read,
    file_bytes: u64,
    to: &mut impl Write,
    buf: &mut [u8],
) -> io::Result<()> {
    let mut left = file_bytes;
    while left > 0 {
        let n = usize::try_from(left).unwrap_or(usize::MAX).min(buf.len()).min(CHUNK_BYTES);
        from.read_exact(&mut buf[..n])?;
        to.write_all(&(n as u32).to_le_bytes())?;
        to.write_all(&crc32fast::hash(&buf[..n]).to_le_bytes())?;
        to.write_all(&buf[..n])?;
        left -= n as u64;
    }
    to.flush()
}

/// Receives `file_bytes` bytes in chunks from `from` and writes them to `to`, through `buf` (at
/// least [`CHUNK_BYTES`]). A chunk that is too long, or whose CRC does not match, is an error of
/// kind `InvalidData`.
pub fn receive_chunks(
    from: &mut impl Read,
    file_bytes: u64,
    to: &mut impl Write,
    buf: &mut [u8],
) -> io::Result<()> {
    let bad = |what: &str| io::Error::new(io::ErrorKind::InvalidData, what.to_string());
    let mut left = file_bytes;
    let mut head = [0u8; 8];
    while left > 0 {
        from.read_exact(&mut head)?;
        let n = u32::from_le_bytes(head[..4].try_into().expect("4 bytes")) as usize;
        if n == 0 || n > CHUNK_BYTES.min(buf.len()) || n as u64 > left {
            return Err(bad("a chunk of impossible length"));
        }
        from.read_exact(&mut buf[..n])?;
        if crc32fast::hash(&buf[..n]).to_le_bytes() != head[4..] {
            return Err(bad("a chunk's checksum does not match"));
        }
        to.write_all(&buf[..n])?;
        left -= n as u64;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_and_answers_read_back() {
        let r = Request { cluster_id: 9, from: 2, min_version: 1 << 40 };
        assert_eq!(Request::decode(&r.encode()), Some(r));
        for a in [
            Answer::Sending { next_instance: 5, file_bytes: 1 << 33 },
            Answer::NoneRecentEnough { next_instance: 3 },
            Answer::OtherCluster,
        ] {
            assert_eq!(Answer::decode(&a.encode()), Some(a));
        }
        let mut b = r.encode();
        b[0] ^= 1;
        assert_eq!(Request::decode(&b), None);
        let mut b = Answer::OtherCluster.encode();
        b[8] = 7;
        assert_eq!(Answer::decode(&b), None);
    }

    #[test]
    fn chunks_carry_the_bytes_and_a_flipped_bit_is_caught() {
        let data: Vec<u8> = (0..3 * CHUNK_BYTES + 17).map(|i| (i * 7) as u8).collect();
        let mut wire = Vec::new();
        let mut buf = vec![0u8; CHUNK_BYTES];
        send_chunks(&mut &data[..], data.len() as u64, &mut wire, &mut buf).unwrap();
        assert_eq!(wire.len(), data.len() + 4 * 8, "four chunks");
        let mut out = Vec::new();
        receive_chunks(&mut &wire[..], data.len() as u64, &mut out, &mut buf).unwrap();
        assert_eq!(out, data);
        wire[CHUNK_BYTES + 20] ^= 0x10;
        let e = receive_chunks(&mut &wire[..], data.len() as u64, &mut Vec::new(), &mut buf)
            .unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
        let e = receive_chunks(&mut &wire[..8], data.len() as u64, &mut Vec::new(), &mut buf)
            .unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof, "a connection cut short");
    }
}
