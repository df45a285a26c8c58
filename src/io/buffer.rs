//! Byte buffers of one connection (thesis 3.5.2: packets live in buffers allocated once and are
//! received, stored and forwarded without being taken apart or copied again).
//!
//! [`InBuf`] receives a byte stream into *chunks* and hands complete frames out as [`Bytes`] that
//! share the chunk's memory: a batch decoded from a frame (`wire::decode_bytes`) is a slice of the
//! very buffer the kernel wrote it into, and it stays one while an acceptor keeps it, a learner
//! delivers it and a U-Ring process forwards it. A chunk is reused, without asking the allocator, as
//! soon as nothing taken from it is held any more; while something is (an acceptor keeps decided
//! batches until garbage collection, 3.3.7), the next chunk of a small pool takes over. The pool
//! grows only when every chunk is still held: in steady state, receiving allocates nothing.
//!
//! The sending side is [`OutBuf`](super::outbuf::OutBuf), in its own module.
//!
//! The kernel may write into (io_uring receive) or read from (io_uring send) these buffers while an
//! operation is in flight, so the reactor never touches the region it lent out: `InBuf` lends only its
//! spare tail ([`InBuf::spare_mut`]) and changes chunks only inside `spare_mut`, which the reactor
//! calls when no receive is in flight.

use std::mem::MaybeUninit;

use bytes::{Buf, Bytes, BytesMut};

use super::reactor::Limits;
use crate::chunks::ChunkPool;

/// Datagrams of the largest size a chunk of a datagram buffer holds.
const DATAGRAMS_PER_CHUNK: usize = 16;

/// The receiving side: `chunk[..]` holds the bytes received and not taken yet; the chunk's spare
/// capacity after them is where the next receive writes.
#[derive(Debug)]
pub struct InBuf {
    chunk: BytesMut,
    /// Earlier chunks, some of whose frames may still be held elsewhere.
    pool: ChunkPool,
}

impl InBuf {
    /// A buffer whose chunks hold `chunk_bytes` each (which bounds the largest frame).
    pub fn with_capacity(chunk_bytes: usize) -> InBuf {
        let mut pool = ChunkPool::new(chunk_bytes);
        InBuf { chunk: pool.take_free(chunk_bytes), pool }
    }

    /// The receive buffer of a connection: accepted connections (the ones peers send frames on)
    /// get the reserve of `limits` (see [`InBuf::reserve`]); our own outgoing ones receive nothing.
    pub fn for_stream(limits: &Limits, accepted: bool) -> InBuf {
        let mut b = InBuf::with_capacity(limits.inbox_bytes);
        if accepted {
            b.reserve(limits.inbox_reserve_bytes);
        }
        b
    }

    /// One of the `buffers` receive buffers of a UDP socket, for datagrams of up to
    /// `limits.datagram_bytes_max` (see [`InBuf::datagram_room`]), with its share of the reserve.
    pub fn for_datagrams(limits: &Limits, buffers: usize) -> InBuf {
        // `spare_mut` renews a chunk once less than a quarter is left, so a quarter must hold a
        // whole datagram.
        let mut b = InBuf::with_capacity(DATAGRAMS_PER_CHUNK * limits.datagram_bytes_max);
        b.reserve(limits.inbox_reserve_bytes.div_ceil(buffers.max(1)));
        b
    }

    /// Allocates chunks for `bytes` of frames up front (thesis 3.5.2 preallocates its buffers):
    /// frames the driver holds pin the chunks they arrived in, so with chunks for as much as it may
    /// hold the buffer does not grow once running. A chunk is renewed with up to a quarter of it
    /// unused, and the frames in flight come on top, hence the margin. (Only touched memory costs:
    /// the kernel maps a chunk's pages when they are first written.)
    pub fn reserve(&mut self, bytes: usize) {
        if bytes == 0 {
            return;
        }
        let chunk_bytes = self.pool.chunk_bytes();
        let usable_bytes = (chunk_bytes - chunk_bytes / 4).max(1);
        self.pool.reserve(bytes.div_ceil(usable_bytes) + 2);
    }

    /// Room for one whole datagram of up to `datagram_bytes_max` bytes (a receive of a buffer made
    /// by [`InBuf::for_datagrams`]; every datagram is taken out whole before the next receive).
    pub fn datagram_room(&mut self, datagram_bytes_max: usize) -> &mut [MaybeUninit<u8>] {
        let spare = self.spare_mut();
        assert!(spare.len() >= datagram_bytes_max, "InBuf: not made for datagrams this large");
        &mut spare[..datagram_bytes_max]
    }

    /// Received bytes not taken yet.
    pub fn filled(&self) -> &[u8] {
        &self.chunk
    }

    /// Room to receive into. When the current chunk's tail has grown short, the bytes not taken yet
    /// move to the front of a chunk that nothing holds any more (this one, a retired one, or — only
    /// when every chunk is still held — a new one), so the room is as large as it can be and a frame
    /// never wraps. Bytes not taken yet that fill more than half a chunk are the start of a frame
    /// larger than chunks are (a Phase 1B of a long log may be up to the wire's 4 MiB): they move
    /// into a chunk twice their size, allocated for them.
    /// The room is not initialized: chunks are allocated, not zeroed, so that reserving them costs
    /// no memory until the kernel writes into them.
    pub fn spare_mut(&mut self) -> &mut [MaybeUninit<u8>] {
        let chunk_bytes = self.pool.chunk_bytes();
        let spare_bytes = self.chunk.capacity() - self.chunk.len();
        if spare_bytes < chunk_bytes / 4 {
            self.renew((2 * self.chunk.len()).max(chunk_bytes));
        }
        self.chunk.spare_capacity_mut()
    }

    /// Moves the bytes not taken yet to the front of a chunk of at least `bytes` (more than
    /// twice as many as they are) that nothing else holds.
    fn renew(&mut self, bytes: usize) {
        // Every frame taken from this chunk is gone: reuse it in place.
        if self.chunk.try_reclaim(bytes - self.chunk.len()) {
            return;
        }
        let mut next = self.pool.take_free(bytes);
        next.extend_from_slice(&self.chunk);
        let old = std::mem::replace(&mut self.chunk, next);
        self.pool.retire(old);
    }

    /// `n` bytes were written into the front of the last [`InBuf::spare_mut`] (or
    /// [`InBuf::datagram_room`]); they are part of what was received from then on.
    pub fn commit(&mut self, n: usize) {
        let len = self.chunk.len();
        assert!(len + n <= self.chunk.capacity(), "InBuf: committed more than the spare room");
        // SAFETY: the bytes up to `len + n` lie within the capacity (checked above), and the
        // caller says the receive wrote the `n` after `len`.
        unsafe { self.chunk.set_len(len + n) };
    }

    /// Drops the first `n` filled bytes.
    pub fn consume(&mut self, n: usize) {
        assert!(n <= self.chunk.len(), "InBuf: consumed more than was filled");
        self.chunk.advance(n);
    }

    /// Takes the first `n` filled bytes (a whole frame) out, sharing the chunk's memory.
    pub fn take(&mut self, n: usize) -> Bytes {
        assert!(n <= self.chunk.len(), "InBuf: took more than was filled");
        self.chunk.split_to(n).freeze()
    }

    pub fn is_full(&self) -> bool {
        self.chunk.len() == self.pool.chunk_bytes()
    }

    pub fn clear(&mut self) {
        self.chunk.clear();
    }

    /// Chunks allocated so far, the first included: more than a few means frames are held long.
    pub fn chunks_allocated(&self) -> u64 {
        self.pool.allocated()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn receive(b: &mut InBuf, bytes: &[u8]) {
        for (room, &byte) in b.spare_mut().iter_mut().zip(bytes) {
            room.write(byte);
        }
        b.commit(bytes.len());
    }

    #[test]
    fn inbuf_hands_out_frames_that_share_its_chunk_and_reuses_the_chunk_once_they_are_gone() {
        let mut b = InBuf::with_capacity(16);
        receive(&mut b, b"abcdefghijklm");
        let frame = b.take(4);
        assert_eq!(&frame[..], b"abcd");
        assert_eq!(b.filled(), b"efghijklm");
        assert_eq!(frame.as_ptr().wrapping_add(4), b.filled().as_ptr(), "no copy");
        b.consume(8);
        assert_eq!(b.filled(), b"m");
        drop(frame);
        let spare = b.spare_mut().len();
        assert_eq!((spare, b.filled()), (15, &b"m"[..]), "the chunk came back, `m` at its front");
        assert_eq!(b.chunks_allocated(), 1);
    }

    #[test]
    fn inbuf_moves_on_to_a_free_chunk_while_frames_of_the_last_are_held() {
        let mut b = InBuf::with_capacity(16);
        receive(&mut b, b"0123456789abcde");
        let held = b.take(14);
        assert_eq!(b.spare_mut().len(), 15, "a new chunk, `e` carried to its front");
        assert_eq!((b.filled(), b.chunks_allocated()), (&b"e"[..], 2));
        receive(&mut b, b"fghijklmnopqrs");
        let second = b.take(15);
        assert_eq!(&second[..], b"efghijklmnopqrs");
        drop(held);
        assert_eq!(b.spare_mut().len(), 16, "the first chunk, free again, is reused");
        assert_eq!(b.chunks_allocated(), 2);
        receive(&mut b, &[b'x'; 16]);
        assert_eq!(&second[..], b"efghijklmnopqrs", "a held frame is never written over");
        assert!(b.is_full());
        assert_eq!(
            b.spare_mut().len(),
            16,
            "a frame larger than a chunk moves to one twice its size"
        );
        assert_eq!((b.filled(), b.chunks_allocated()), (&[b'x'; 16][..], 3));
        receive(&mut b, b"yz");
        assert_eq!(b.take(18).len(), 18, "and comes out whole");
    }
}
