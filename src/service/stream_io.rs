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
pub fn read_available(
    stream: &mut impl Read,
    buf: &mut Vec<u8>,
    limit_bytes: usize,
    scratch: &mut [u8],
) -> Link {
    while buf.len() < limit_bytes {
        match stream.read(scratch) {
            Ok(0) => return Link::Closed,
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
