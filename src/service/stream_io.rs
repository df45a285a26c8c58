//! Reading and writing a nonblocking TCP stream as far as it goes, for the front thread and the
//! client library alike.

use std::io::{ErrorKind, Read, Write};

/// Whether the peer is still there, and whether the socket has more to read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Link {
    /// Open; reading stopped at the limit, so more may wait.
    Open,
    /// Open, and everything it had was read: wait for its next readiness.
    Drained,
    Closed,
}

/// Bytes of the scratch buffer reads go through.
pub const SCRATCH_BYTES: usize = 64 * 1024;

/// Appends what `stream` has to `buf` until it would block or `buf` holds `limit_bytes`, reading
/// through `scratch` (kept by the caller: zeroing a buffer for every read cost the front thread
/// and the clients more than the reads did).
///
/// A read that fills less than `scratch` took everything the socket held: a TCP socket hands
/// over all it has up to the length asked. That counts as drained without another read to see
/// it would block, which halved the reads of the front thread and the clients (most of them
/// found nothing). It is safe with edge-triggered readiness: bytes that arrive after the read
/// raise a new edge.
pub fn read_available(
    stream: &mut impl Read,
    buf: &mut Vec<u8>,
    limit_bytes: usize,
    scratch: &mut [u8],
) -> Link {
    while buf.len() < limit_bytes {
        match stream.read(scratch) {
            Ok(0) => return Link::Closed,
            Ok(n) if n < scratch.len() => {
                buf.extend_from_slice(&scratch[..n]);
                return Link::Drained;
            }
            Ok(n) => buf.extend_from_slice(&scratch[..n]),
            Err(e) if e.kind() == ErrorKind::WouldBlock => return Link::Drained,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => return Link::Closed,
        }
    }
    Link::Open
}

/// Writes `out[*at..]` until it would block; `*at` moves past what was written.
pub fn write_available(stream: &mut impl Write, out: &[u8], at: &mut usize) -> Link {
    while *at < out.len() {
        match stream.write(&out[*at..]) {
            Ok(n) => *at += n,
            Err(e) if e.kind() == ErrorKind::WouldBlock => return Link::Open,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => return Link::Closed,
        }
    }
    Link::Open
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Hands out `chunks` one per read, then would block; counts the reads.
    struct Chunks {
        chunks: Vec<Vec<u8>>,
        reads: usize,
    }

    impl Read for Chunks {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            self.reads += 1;
            if self.chunks.is_empty() {
                return Err(ErrorKind::WouldBlock.into());
            }
            let c = self.chunks.remove(0);
            buf[..c.len()].copy_from_slice(&c);
            Ok(c.len())
        }
    }

    #[test]
    fn a_short_read_is_taken_as_drained_without_another_read() {
        let mut s = Chunks { chunks: vec![vec![7; 10], vec![8; 10]], reads: 0 };
        let (mut buf, mut scratch) = (Vec::new(), vec![0; 16]);
        assert_eq!(read_available(&mut s, &mut buf, usize::MAX, &mut scratch), Link::Drained);
        assert_eq!((s.reads, buf), (1, vec![7; 10]));
    }

    #[test]
    fn full_reads_go_on_until_the_socket_would_block_or_the_limit() {
        let mut s = Chunks { chunks: vec![vec![1; 16], vec![2; 16]], reads: 0 };
        let (mut buf, mut scratch) = (Vec::new(), vec![0; 16]);
        assert_eq!(read_available(&mut s, &mut buf, usize::MAX, &mut scratch), Link::Drained);
        assert_eq!((s.reads, buf.len()), (3, 32));
        let mut s = Chunks { chunks: vec![vec![1; 16], vec![2; 16]], reads: 0 };
        let mut buf = Vec::new();
        assert_eq!(read_available(&mut s, &mut buf, 16, &mut scratch), Link::Open);
        assert_eq!((s.reads, buf.len()), (1, 16));
    }
}
