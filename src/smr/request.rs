//! What clients send and what replicas answer.
//!
//! **Request batch** (the payload of one multicast message; clients batch and pipeline): one
//! client's commands to one group, each with its sequence number, and the lowest sequence number
//! the client still waits for (`acked_below`), from which replicas forget older replies
//! ([`ClientTable`](super::ClientTable)).
//!
//! ```text
//! magic u8 = 0xC5 | version u8 = 1 | client u64 | acked_below u64 | count u16
//! count x ( seq u64 | len u16 | command [len] )
//! ```
//!
//! **Reply** (from the replica that executed a command straight to its client, 6.3.4 line 13):
//!
//! ```text
//! seq u64 | status u8 | len u16 | body [len]
//! ```
//!
//! Integers are little-endian. A batch is checked whole before any command of it runs: every
//! replica decodes the same bytes, so all of them drop (and count) the same malformed batches.

use thiserror::Error;

pub type ClientId = u64;

const MAGIC: u8 = 0xC5;
const VERSION: u8 = 1;
/// Bytes before the first request of a batch.
pub const BATCH_HEADER_BYTES: usize = 1 + 1 + 8 + 8 + 2;
/// Bytes before a request's command.
pub const REQUEST_HEADER_BYTES: usize = 8 + 2;
/// Bytes before a reply's body.
pub const REPLY_HEADER_BYTES: usize = 8 + 1 + 2;
/// The largest command or reply body.
pub const BODY_BYTES_MAX: usize = u16::MAX as usize;

/// A request batch the replicas cannot use.
#[derive(Clone, Copy, Debug, Error, PartialEq, Eq)]
pub enum MalformedRequest {
    #[error("request batch of {0} bytes is shorter than its header")]
    Short(usize),
    #[error("request batch starts with {0:#x}, not the service magic")]
    Magic(u8),
    #[error("request batch version {0} is not understood")]
    Version(u8),
    #[error("request {index} of the batch runs past its end")]
    Truncated { index: usize },
    #[error("request batch has {0} bytes after its last request")]
    Trailing(usize),
}

/// One command of a batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Request<'a> {
    pub seq: u64,
    pub command: &'a [u8],
}

/// A checked request batch.
#[derive(Clone, Copy, Debug)]
pub struct RequestBatch<'a> {
    pub client: ClientId,
    pub acked_below: u64,
    count: u16,
    body: &'a [u8],
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes(b[at..at + 2].try_into().expect("2 bytes"))
}

/// The client a batch says it is from, if it is long enough to say (the front checks it against
/// the connection's client before multicasting).
pub fn batch_client(bytes: &[u8]) -> Option<ClientId> {
    Some(u64::from_le_bytes(bytes.get(2..10)?.try_into().ok()?))
}

impl<'a> RequestBatch<'a> {
    /// Checks the whole batch.
    pub fn parse(bytes: &'a [u8]) -> Result<RequestBatch<'a>, MalformedRequest> {
        if bytes.len() < BATCH_HEADER_BYTES {
            return Err(MalformedRequest::Short(bytes.len()));
        }
        if bytes[0] != MAGIC {
            return Err(MalformedRequest::Magic(bytes[0]));
        }
        if bytes[1] != VERSION {
            return Err(MalformedRequest::Version(bytes[1]));
        }
        let count = u16_at(bytes, 18);
        let body = &bytes[BATCH_HEADER_BYTES..];
        let mut at = 0;
        for index in 0..usize::from(count) {
            if body.len() - at < REQUEST_HEADER_BYTES {
                return Err(MalformedRequest::Truncated { index });
            }
            let len = usize::from(u16_at(body, at + 8));
            at += REQUEST_HEADER_BYTES;
            if body.len() - at < len {
                return Err(MalformedRequest::Truncated { index });
            }
            at += len;
        }
        if at != body.len() {
            return Err(MalformedRequest::Trailing(body.len() - at));
        }
        Ok(RequestBatch { client: u64_at(bytes, 2), acked_below: u64_at(bytes, 10), count, body })
    }

    pub fn len(&self) -> usize {
        usize::from(self.count)
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    pub fn iter(&self) -> Requests<'a> {
        Requests { body: self.body, at: 0, left: self.count }
    }
}

/// The requests of a batch, in order.
#[derive(Clone, Debug)]
pub struct Requests<'a> {
    body: &'a [u8],
    at: usize,
    left: u16,
}

impl<'a> Iterator for Requests<'a> {
    type Item = Request<'a>;

    fn next(&mut self) -> Option<Request<'a>> {
        // The batch was checked whole by `parse`: the indexing stays within it.
        self.left = self.left.checked_sub(1)?;
        let seq = u64_at(self.body, self.at);
        let len = usize::from(u16_at(self.body, self.at + 8));
        self.at += REQUEST_HEADER_BYTES;
        let command = &self.body[self.at..self.at + len];
        self.at += len;
        Some(Request { seq, command })
    }
}

/// Builds request batches into a buffer the caller reuses.
#[derive(Debug)]
pub struct BatchWriter {
    buf: Vec<u8>,
    bytes_max: usize,
}

impl BatchWriter {
    /// Batches of at most `bytes_max` bytes (a batch always takes one request, whatever its size).
    pub fn new(bytes_max: usize) -> BatchWriter {
        BatchWriter { buf: Vec::with_capacity(bytes_max), bytes_max }
    }

    /// Starts a batch, dropping whatever the previous one held.
    pub fn begin(&mut self, client: ClientId, acked_below: u64) {
        self.buf.clear();
        self.buf.extend_from_slice(&[MAGIC, VERSION]);
        self.buf.extend_from_slice(&client.to_le_bytes());
        self.buf.extend_from_slice(&acked_below.to_le_bytes());
        self.buf.extend_from_slice(&0u16.to_le_bytes());
    }

    pub fn count(&self) -> usize {
        usize::from(u16_at(&self.buf, 18))
    }

    /// Whether a command of `command_bytes` still fits.
    pub fn fits(&self, command_bytes: usize) -> bool {
        let count = self.count();
        count < usize::from(u16::MAX)
            && (count == 0
                || self.buf.len() + REQUEST_HEADER_BYTES + command_bytes <= self.bytes_max)
    }

    /// Appends a request; the caller checked [`Self::fits`]. Panics on a command longer than
    /// [`BODY_BYTES_MAX`] (the client library refuses those first).
    pub fn push(&mut self, seq: u64, command: &[u8]) {
        let len = u16::try_from(command.len()).expect("command of at most 65,535 bytes");
        self.buf.extend_from_slice(&seq.to_le_bytes());
        self.buf.extend_from_slice(&len.to_le_bytes());
        self.buf.extend_from_slice(command);
        let count = u16_at(&self.buf, 18) + 1;
        self.buf[18..20].copy_from_slice(&count.to_le_bytes());
    }

    /// The batch so far.
    pub fn bytes(&self) -> &[u8] {
        &self.buf
    }
}

/// What became of a command.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum Status {
    /// Executed; the body is the service's reply.
    Executed = 0,
    /// opt-PSMR: not executed, since it would touch state another worker shares; multicast it
    /// again to its conservative destination.
    Conflict = 1,
    /// Delivered in a group C-G does not send it to; not executed.
    WrongGroup = 2,
    /// The service cannot decode the command; not executed.
    BadCommand = 3,
    /// Sequence number beyond the client's window; not executed.
    OutsideWindow = 4,
}

impl Status {
    pub fn from_u8(b: u8) -> Option<Status> {
        Some(match b {
            0 => Status::Executed,
            1 => Status::Conflict,
            2 => Status::WrongGroup,
            3 => Status::BadCommand,
            4 => Status::OutsideWindow,
            _ => return None,
        })
    }
}

/// One reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reply<'a> {
    pub seq: u64,
    pub status: Status,
    pub body: &'a [u8],
}

/// Bytes that are not a reply.
#[derive(Clone, Copy, Debug, Error, PartialEq, Eq)]
#[error("reply with unknown status {0}")]
pub struct MalformedReply(pub u8);

impl<'a> Reply<'a> {
    /// Appends the reply's encoding to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let len = u16::try_from(self.body.len()).expect("reply body of at most 65,535 bytes");
        out.extend_from_slice(&self.seq.to_le_bytes());
        out.push(self.status as u8);
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(self.body);
    }

    /// The first reply in `bytes` and the bytes it took, or `Ok(None)` if `bytes` holds only part
    /// of one.
    pub fn decode(bytes: &'a [u8]) -> Result<Option<(Reply<'a>, usize)>, MalformedReply> {
        if bytes.len() < REPLY_HEADER_BYTES {
            return Ok(None);
        }
        let status = Status::from_u8(bytes[8]).ok_or(MalformedReply(bytes[8]))?;
        let len = usize::from(u16_at(bytes, 9));
        let Some(body) = bytes.get(REPLY_HEADER_BYTES..REPLY_HEADER_BYTES + len) else {
            return Ok(None);
        };
        Ok(Some((Reply { seq: u64_at(bytes, 0), status, body }, REPLY_HEADER_BYTES + len)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn batches_round_trip_and_respect_their_bound() {
        let mut w = BatchWriter::new(64);
        w.begin(7, 3);
        assert!(w.fits(1000), "an empty batch takes any one request");
        w.push(3, b"abc");
        w.push(4, b"");
        assert!(w.fits(64 - w.bytes().len() - REQUEST_HEADER_BYTES));
        assert!(!w.fits(64 - w.bytes().len() - REQUEST_HEADER_BYTES + 1));
        let b = RequestBatch::parse(w.bytes()).unwrap();
        assert_eq!((b.client, b.acked_below, b.len()), (7, 3, 2));
        let got: Vec<_> = b.iter().collect();
        assert_eq!(got, [Request { seq: 3, command: b"abc" }, Request { seq: 4, command: b"" }]);
    }

    #[test]
    fn malformed_batches_are_refused_whole() {
        let mut w = BatchWriter::new(1024);
        w.begin(1, 0);
        w.push(0, b"hello");
        let good = w.bytes().to_vec();
        assert_eq!(RequestBatch::parse(&good[..5]).unwrap_err(), MalformedRequest::Short(5));
        let mut bad = good.clone();
        bad[0] = 0;
        assert_eq!(RequestBatch::parse(&bad).unwrap_err(), MalformedRequest::Magic(0));
        bad = good.clone();
        bad[1] = 9;
        assert_eq!(RequestBatch::parse(&bad).unwrap_err(), MalformedRequest::Version(9));
        let cut = &good[..good.len() - 1];
        assert_eq!(RequestBatch::parse(cut).unwrap_err(), MalformedRequest::Truncated { index: 0 });
        bad = good.clone();
        bad.push(0);
        assert_eq!(RequestBatch::parse(&bad).unwrap_err(), MalformedRequest::Trailing(1));
    }

    #[test]
    fn replies_decode_in_pieces() {
        let mut out = Vec::new();
        Reply { seq: 9, status: Status::Conflict, body: b"xy" }.encode(&mut out);
        Reply { seq: 10, status: Status::Executed, body: b"" }.encode(&mut out);
        for cut in 0..REPLY_HEADER_BYTES + 2 {
            assert_eq!(Reply::decode(&out[..cut]).unwrap(), None, "{cut} bytes hold no reply");
        }
        let (r, n) = Reply::decode(&out).unwrap().unwrap();
        assert_eq!((r.seq, r.status, r.body, n), (9, Status::Conflict, &b"xy"[..], 13));
        let (r, _) = Reply::decode(&out[n..]).unwrap().unwrap();
        assert_eq!((r.seq, r.status), (10, Status::Executed));
        out[8] = 77;
        assert_eq!(Reply::decode(&out).unwrap_err(), MalformedReply(77));
    }

    proptest! {
        /// Whatever the bytes, parsing never panics, and what parses iterates within bounds.
        #[test]
        fn parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            if let Ok(b) = RequestBatch::parse(&bytes) {
                prop_assert_eq!(b.iter().count(), b.len());
            }
            let _ = Reply::decode(&bytes);
        }
    }
}
