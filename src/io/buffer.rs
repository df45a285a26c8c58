//! Preallocated byte buffers of one connection (thesis 3.5.2: "circular buffers" allocated once, so the
//! steady state never asks the allocator for packet memory).
//!
//! [`InBuf`] receives a byte stream and hands complete frames to the node; [`OutBuf`] collects encoded
//! frames while the previous ones are still being sent. Both have a fixed capacity chosen at start-up;
//! nothing here grows.
//!
//! The kernel may write into (io_uring receive) or read from (io_uring send) these buffers while an
//! operation is in flight, so the reactor never touches the region it lent out: `InBuf` lends only its
//! spare tail ([`InBuf::spare_mut`]), and `OutBuf` is double-buffered: frames go into `filling` while
//! `sending` is owned by the send in flight.

/// The receiving side: bytes `start..end` arrived and are not consumed yet; `end..capacity` is spare.
#[derive(Debug)]
pub struct InBuf {
    bytes: Box<[u8]>,
    start: usize,
    end: usize,
}

impl InBuf {
    pub fn with_capacity(capacity_bytes: usize) -> InBuf {
        InBuf { bytes: vec![0; capacity_bytes].into_boxed_slice(), start: 0, end: 0 }
    }

    /// Received bytes not consumed yet.
    pub fn filled(&self) -> &[u8] {
        &self.bytes[self.start..self.end]
    }

    /// Room to receive into. Moves unconsumed bytes to the front first, so the room is as large as it
    /// can be (a frame never wraps: the decoder sees it contiguous).
    pub fn spare_mut(&mut self) -> &mut [u8] {
        if self.start > 0 {
            self.bytes.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        &mut self.bytes[self.end..]
    }

    /// `n` bytes were written into the front of the last [`InBuf::spare_mut`].
    pub fn commit(&mut self, n: usize) {
        assert!(self.end + n <= self.bytes.len(), "InBuf: committed more than the spare room");
        self.end += n;
    }

    /// The first `n` filled bytes were handled.
    pub fn consume(&mut self, n: usize) {
        assert!(self.start + n <= self.end, "InBuf: consumed more than was filled");
        self.start += n;
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
    }

    pub fn is_full(&self) -> bool {
        self.start == 0 && self.end == self.bytes.len()
    }

    pub fn clear(&mut self) {
        self.start = 0;
        self.end = 0;
    }
}

/// The sending side, double-buffered: the node appends frames to `filling`; the reactor swaps it
/// with `sending` when the previous send completed and sends `sending[sent..]`.
#[derive(Debug)]
pub struct OutBuf {
    filling: Vec<u8>,
    sending: Vec<u8>,
    /// Bytes of `sending` the kernel took already.
    sent: usize,
    capacity_bytes: usize,
}

impl OutBuf {
    pub fn with_capacity(capacity_bytes: usize) -> OutBuf {
        OutBuf {
            filling: Vec::with_capacity(capacity_bytes),
            sending: Vec::with_capacity(capacity_bytes),
            sent: 0,
            capacity_bytes,
        }
    }

    /// Room left for new frames.
    pub fn free_bytes(&self) -> usize {
        self.capacity_bytes - self.filling.len()
    }

    /// Appends one frame written by `write` into a `Vec` whose capacity never grows: the caller must
    /// know the frame's length. Returns false (and writes nothing) when `len` bytes do not fit; the
    /// caller drops the message and counts it (Ring Paxos recovers lost messages, 3.3.4).
    pub fn push_with(&mut self, len: usize, write: impl FnOnce(&mut Vec<u8>)) -> bool {
        if len > self.free_bytes() {
            return false;
        }
        let before = self.filling.len();
        write(&mut self.filling);
        assert_eq!(self.filling.len() - before, len, "OutBuf: frame length differs from announced");
        debug_assert!(self.filling.capacity() == self.capacity_bytes, "OutBuf grew");
        true
    }

    /// Appends raw bytes; false when they do not fit.
    pub fn push(&mut self, bytes: &[u8]) -> bool {
        self.push_with(bytes.len(), |v| v.extend_from_slice(bytes))
    }

    /// The bytes to hand to the kernel next: the rest of `sending`, or — when that is done — the
    /// frames collected since (swapped in). Empty when there is nothing to send.
    pub fn next_to_send(&mut self) -> &[u8] {
        if self.sent == self.sending.len() {
            self.sending.clear();
            self.sent = 0;
            std::mem::swap(&mut self.filling, &mut self.sending);
        }
        &self.sending[self.sent..]
    }

    /// The kernel took `n` bytes of the last [`OutBuf::next_to_send`].
    pub fn advance(&mut self, n: usize) {
        assert!(self.sent + n <= self.sending.len(), "OutBuf: advanced past what was sent");
        self.sent += n;
    }

    /// Nothing waits to be sent.
    pub fn is_empty(&self) -> bool {
        self.sent == self.sending.len() && self.filling.is_empty()
    }

    /// Bytes waiting to be sent.
    pub fn pending_bytes(&self) -> usize {
        self.sending.len() - self.sent + self.filling.len()
    }

    pub fn clear(&mut self) {
        self.filling.clear();
        self.sending.clear();
        self.sent = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inbuf_compacts_unconsumed_bytes_to_the_front() {
        let mut b = InBuf::with_capacity(8);
        b.spare_mut()[..6].copy_from_slice(b"abcdef");
        b.commit(6);
        b.consume(4);
        assert_eq!(b.filled(), b"ef");
        assert_eq!(b.spare_mut().len(), 6, "compaction gives back the consumed room");
        assert_eq!(b.filled(), b"ef");
        b.spare_mut()[..6].copy_from_slice(b"ghijkl");
        b.commit(6);
        assert!(b.is_full());
        assert_eq!(b.filled(), b"efghijkl");
        b.consume(8);
        assert_eq!(b.spare_mut().len(), 8);
    }

    #[test]
    fn outbuf_refuses_what_does_not_fit_and_never_grows() {
        let mut o = OutBuf::with_capacity(10);
        assert!(o.push(b"0123456"));
        assert!(!o.push(b"7890"), "4 bytes do not fit in the 3 left");
        assert!(o.push(b"789"));
        assert_eq!(o.next_to_send(), b"0123456789");
        assert!(o.push(b"abc"), "filling is empty again once its frames moved to sending");
        o.advance(4);
        assert_eq!(o.next_to_send(), b"456789", "a partial send resumes where it stopped");
        o.advance(6);
        assert_eq!(o.next_to_send(), b"abc");
        o.advance(3);
        assert!(o.is_empty());
        assert_eq!(o.next_to_send(), b"");
    }
}
