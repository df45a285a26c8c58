//! [`OutBuf`]: the sending side of one connection, double-buffered and vectored.
//!
//! The node appends frames to the `filling` half while the kernel owns the `sending` half (an
//! io_uring send may be in flight over it); the reactor swaps the halves when a send completed all
//! of `sending`. A half is a fixed-capacity byte buffer for what is written (headers, fields, small
//! batches) plus a list of *shared* regions: batch values that already sit in memory as [`Bytes`]
//! (a received frame's chunk, a proposer's batch), which a frame names instead of copying. One
//! `sendmsg` hands the kernel the written bytes and the shared regions in order, as an iovec list.
//!
//! Thesis 3.5.2 forwards packets without copying them again; before this, every forwarded U-Ring
//! proposal was copied into the outbox at each hop (4% of all CPU samples of a 1 KB run) only to be
//! copied again by the kernel. A region smaller than [`SHARED_BYTES_MIN`] is still copied: an iovec
//! and a reference count cost more than copying a few hundred bytes.
//!
//! Nothing grows after start-up: the written bytes and the shared list have fixed capacities, and a
//! region that finds the list full is copied instead. The capacity in bytes bounds written and shared
//! bytes together. A shared region keeps the whole chunk it lives in from being reused, so regions
//! are shared only while little waits to be sent ([`SHARED_PENDING_BYTES_MAX`]): behind a slow peer
//! the outbox copies, as it always did, and the chunks come back.

use bytes::Bytes;

/// Smallest region sent from where it is rather than copied.
pub const SHARED_BYTES_MIN: usize = 4096;
/// Sharing stops while more than this waits to be sent (module docs).
pub const SHARED_PENDING_BYTES_MAX: usize = 1 << 20;
/// Most shared regions one half holds.
const SHARED_PER_HALF_MAX: usize = 1024;
/// Most iovecs one send hands the kernel (what is left goes with the next).
const IOVECS_PER_SEND_MAX: usize = 64;

/// One half: written bytes, with shared regions between them.
#[derive(Debug)]
struct Half {
    written: Vec<u8>,
    /// `(at, region)`: `region` goes after `written[..at]` (and after the regions listed before it).
    shared: Vec<(usize, Bytes)>,
    shared_bytes: usize,
}

impl Half {
    fn with_capacity(capacity_bytes: usize, shared_max: usize) -> Half {
        Half {
            written: Vec::with_capacity(capacity_bytes),
            shared: Vec::with_capacity(shared_max),
            shared_bytes: 0,
        }
    }

    fn len(&self) -> usize {
        self.written.len() + self.shared_bytes
    }

    fn clear(&mut self) {
        self.written.clear();
        self.shared.clear();
        self.shared_bytes = 0;
    }

    /// The pieces of the half in order: written bytes and shared regions, empty ones left out.
    fn pieces(&self) -> impl Iterator<Item = &[u8]> {
        let froms = std::iter::once(0).chain(self.shared.iter().map(|(at, _)| *at));
        let last_at = self.shared.last().map_or(0, |(at, _)| *at);
        self.shared
            .iter()
            .zip(froms)
            .flat_map(|((at, region), from)| [&self.written[from..*at], &region[..]])
            .chain(std::iter::once(&self.written[last_at..]))
            .filter(|piece| !piece.is_empty())
    }
}

/// The sending side of a connection (module docs).
#[derive(Debug)]
pub struct OutBuf {
    filling: Half,
    sending: Half,
    /// Bytes of `sending` the kernel took already.
    sent: usize,
    capacity_bytes: usize,
    /// What [`OutBuf::prepare_send`] prepared: read by the kernel during a send (an io_uring one
    /// after the call returned), so kept here, where neither moves until the next call.
    iovecs: Vec<libc::iovec>,
    msghdr: Box<libc::msghdr>,
}

// SAFETY: the raw pointers in `iovecs` and `msghdr` point into the OutBuf's own heap memory (the
// iovec list, `sending`'s written bytes, the shared `Bytes` it holds). Moving the OutBuf to another
// thread moves none of that memory, and the kernel reads it only during a send issued by the thread
// that owns the OutBuf then.
unsafe impl Send for OutBuf {}

impl OutBuf {
    pub fn with_capacity(capacity_bytes: usize) -> OutBuf {
        let shared_max = (capacity_bytes / SHARED_BYTES_MIN).min(SHARED_PER_HALF_MAX);
        OutBuf::with_limits(capacity_bytes, shared_max)
    }

    /// An outbox for one datagram at a time, which must go in one send: with at most
    /// `IOVECS_PER_SEND_MAX` pieces, written and shared, whatever it holds.
    pub fn for_datagrams(capacity_bytes: usize) -> OutBuf {
        // Written bytes before, between and after the shared regions: one piece more than them.
        OutBuf::with_limits(capacity_bytes, IOVECS_PER_SEND_MAX / 2 - 1)
    }

    fn with_limits(capacity_bytes: usize, shared_max: usize) -> OutBuf {
        OutBuf {
            filling: Half::with_capacity(capacity_bytes, shared_max),
            sending: Half::with_capacity(capacity_bytes, shared_max),
            sent: 0,
            capacity_bytes,
            iovecs: Vec::with_capacity(IOVECS_PER_SEND_MAX),
            // SAFETY: msghdr is plain data; all zeros is an empty message with no address.
            msghdr: Box::new(unsafe { std::mem::zeroed() }),
        }
    }

    /// Room left for new frames.
    pub fn free_bytes(&self) -> usize {
        self.capacity_bytes - self.filling.len()
    }

    /// Appends one frame of `len` bytes written by `write`, which gets the buffer to write into and
    /// `share`: `share(region, at)` asks to send `region` from where it is, right after the buffer's
    /// first `at` bytes (its length at the time), and says whether it will (else the writer copies
    /// it). Returns false (and writes nothing) when `len` bytes do not fit; the caller drops the
    /// message and counts it (Ring Paxos recovers lost messages, 3.3.4).
    pub fn push_frame(
        &mut self,
        len: usize,
        write: impl FnOnce(&mut Vec<u8>, &mut dyn FnMut(&Bytes, usize) -> bool),
    ) -> bool {
        if len > self.free_bytes() {
            return false;
        }
        let before = self.filling.len();
        let may_share = self.pending_bytes() <= SHARED_PENDING_BYTES_MAX;
        let Half { written, shared, shared_bytes } = &mut self.filling;
        let mut share = |region: &Bytes, at: usize| {
            if !may_share || region.len() < SHARED_BYTES_MIN || shared.len() == shared.capacity() {
                return false;
            }
            shared.push((at, region.clone()));
            *shared_bytes += region.len();
            true
        };
        write(written, &mut share);
        assert_eq!(self.filling.len() - before, len, "OutBuf: frame length differs from announced");
        debug_assert!(self.filling.written.capacity() == self.capacity_bytes, "OutBuf grew");
        true
    }

    /// Appends one frame written by `write` (nothing shared): see [`OutBuf::push_frame`].
    pub fn push_with(&mut self, len: usize, write: impl FnOnce(&mut Vec<u8>)) -> bool {
        self.push_frame(len, |v, _| write(v))
    }

    /// Appends raw bytes; false when they do not fit.
    pub fn push(&mut self, bytes: &[u8]) -> bool {
        self.push_with(bytes.len(), |v| v.extend_from_slice(bytes))
    }

    /// The iovecs of what to hand the kernel next, at most `IOVECS_PER_SEND_MAX` of them: the
    /// rest of `sending`, or — when that is done — the frames collected since (swapped in). Empty
    /// when there is nothing to send. They stay valid until the next call that takes `&mut self`.
    pub fn iovecs_to_send(&mut self) -> &[libc::iovec] {
        if self.sent == self.sending.len() {
            self.sending.clear();
            self.sent = 0;
            std::mem::swap(&mut self.filling, &mut self.sending);
        }
        self.iovecs.clear();
        let mut skip = self.sent;
        for piece in self.sending.pieces() {
            if skip >= piece.len() {
                skip -= piece.len();
                continue;
            }
            let piece = &piece[skip..];
            skip = 0;
            self.iovecs.push(libc::iovec {
                iov_base: piece.as_ptr().cast_mut().cast(),
                iov_len: piece.len(),
            });
            if self.iovecs.len() == IOVECS_PER_SEND_MAX {
                break;
            }
        }
        &self.iovecs
    }

    /// The message for `sendmsg(2)` (or io_uring's SENDMSG) of what to send next, `None` when there
    /// is nothing: the iovecs of [`OutBuf::iovecs_to_send`], and no address. It and the memory it
    /// points to stay valid and unchanged until the next call that takes `&mut self`.
    pub fn prepare_send(&mut self) -> Option<&libc::msghdr> {
        let iovecs_len = self.iovecs_to_send().len();
        if iovecs_len == 0 {
            return None;
        }
        self.msghdr.msg_iov = self.iovecs.as_mut_ptr();
        self.msghdr.msg_iovlen = iovecs_len as _;
        Some(&self.msghdr)
    }

    /// The kernel took `n` bytes of the last [`OutBuf::prepare_send`].
    pub fn advance(&mut self, n: usize) {
        assert!(self.sent + n <= self.sending.len(), "OutBuf: advanced past what was sent");
        self.sent += n;
    }

    /// Nothing waits to be sent.
    pub fn is_empty(&self) -> bool {
        self.sent == self.sending.len() && self.filling.len() == 0
    }

    /// Bytes waiting to be sent.
    pub fn pending_bytes(&self) -> usize {
        self.sending.len() - self.sent + self.filling.len()
    }

    pub fn clear(&mut self) {
        self.filling.clear();
        self.sending.clear();
        self.sent = 0;
        self.iovecs.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the prepared iovecs point at, joined.
    fn to_send(o: &mut OutBuf) -> Vec<u8> {
        let iovecs = o.iovecs_to_send();
        let mut bytes = Vec::new();
        for iov in iovecs {
            // SAFETY: the iovecs point into `o`, which nothing changes before they are read.
            let piece =
                unsafe { std::slice::from_raw_parts(iov.iov_base.cast::<u8>(), iov.iov_len) };
            bytes.extend_from_slice(piece);
        }
        bytes
    }

    #[test]
    fn outbuf_refuses_what_does_not_fit_and_never_grows() {
        let mut o = OutBuf::with_capacity(10);
        assert!(o.push(b"0123456"));
        assert!(!o.push(b"7890"), "4 bytes do not fit in the 3 left");
        assert!(o.push(b"789"));
        assert_eq!(to_send(&mut o), b"0123456789");
        assert!(o.push(b"abc"), "filling is empty again once its frames moved to sending");
        o.advance(4);
        assert_eq!(to_send(&mut o), b"456789", "a partial send resumes where it stopped");
        o.advance(6);
        assert_eq!(to_send(&mut o), b"abc");
        o.advance(3);
        assert!(o.is_empty());
        assert_eq!(to_send(&mut o), b"");
    }

    #[test]
    fn large_regions_are_sent_from_where_they_are_and_small_ones_copied() {
        let big = Bytes::from(vec![b'R'; SHARED_BYTES_MIN]);
        let small = Bytes::from_static(b"tiny");
        let mut o = OutBuf::with_capacity(4 * SHARED_BYTES_MIN);
        let mut shared = Vec::new();
        let frame_len = 3 + big.len() + 1 + small.len() + 1;
        assert!(o.push_frame(frame_len, |v, share| {
            v.extend_from_slice(b"hd1");
            for region in [&big, &small] {
                let sent_in_place = share(region, v.len());
                shared.push(sent_in_place);
                if !sent_in_place {
                    v.extend_from_slice(region);
                }
                v.extend_from_slice(b"|");
            }
        }));
        assert_eq!(shared, [true, false]);
        assert_eq!(o.free_bytes(), 4 * SHARED_BYTES_MIN - frame_len, "shared bytes count too");
        let iovecs = o.iovecs_to_send();
        assert_eq!(iovecs.len(), 3, "written, shared, written");
        assert_eq!(iovecs[1].iov_base.cast_const(), big.as_ptr().cast(), "not copied");
        let expected = [&b"hd1"[..], &big, b"|tiny|"].concat();
        assert_eq!(to_send(&mut o), expected);
        // A send that stops inside the shared region resumes inside it.
        o.advance(3 + 100);
        assert_eq!(to_send(&mut o), expected[103..]);
        o.advance(expected.len() - 103);
        assert!(o.is_empty());
        assert_eq!(to_send(&mut o), b"");
    }

    #[test]
    fn behind_a_slow_peer_regions_are_copied_so_their_chunks_come_back() {
        let region = Bytes::from(vec![5u8; SHARED_BYTES_MIN]);
        let mut o = OutBuf::with_capacity(4 * SHARED_PENDING_BYTES_MAX);
        let mut shared = 0;
        while o.pending_bytes() < 2 * SHARED_PENDING_BYTES_MAX {
            assert!(o.push_frame(SHARED_BYTES_MIN, |v, share| {
                if share(&region, v.len()) {
                    shared += 1;
                } else {
                    v.extend_from_slice(&region);
                }
            }));
        }
        // Shared until the pending bytes passed the limit, copied from then on.
        assert_eq!(shared, SHARED_PENDING_BYTES_MAX / SHARED_BYTES_MIN + 1);
    }

    #[test]
    fn a_send_takes_at_most_its_share_of_iovecs_and_the_next_goes_on() {
        let region = Bytes::from(vec![7u8; SHARED_BYTES_MIN]);
        let frames = IOVECS_PER_SEND_MAX; // two iovecs each: a header byte and the region
        let mut o = OutBuf::with_capacity(frames * (SHARED_BYTES_MIN + 1));
        for i in 0..frames {
            assert!(o.push_frame(1 + SHARED_BYTES_MIN, |v, share| {
                v.push(i as u8);
                assert!(share(&region, v.len()));
            }));
        }
        let first: usize = o.iovecs_to_send().iter().map(|iov| iov.iov_len).sum();
        assert_eq!(o.iovecs_to_send().len(), IOVECS_PER_SEND_MAX);
        o.advance(first);
        let rest: usize = o.iovecs_to_send().iter().map(|iov| iov.iov_len).sum();
        assert_eq!(first + rest, frames * (SHARED_BYTES_MIN + 1));
        o.advance(rest);
        assert!(o.is_empty());
    }
}
