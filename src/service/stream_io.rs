//! Reading and writing a nonblocking TCP stream as far as it goes, for the front thread and the
//! client library alike.

use std::io::{ErrorKind, Read, Write};

/// Whether the peer is still there.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Link {
    Open,
    Closed,
}

/// Appends what `stream` has to `buf` until it would block or `buf` holds `limit_bytes`.
pub fn read_available(stream: &mut impl Read, buf: &mut Vec<u8>, limit_bytes: usize) -> Link {
    let mut chunk = [0u8; 16 * 1024];
    while buf.len() < limit_bytes {
        match stream.read(&mut chunk) {
            Ok(0) => return Link::Closed,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == ErrorKind::WouldBlock => return Link::Open,
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
