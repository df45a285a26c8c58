//! [`ChunkPool`]: large byte chunks that come back for reuse once nothing holds their memory.
//!
//! Thesis 3.5.2 keeps packets in buffers allocated once, and receives, stores and forwards them
//! without copying. Here packets are [`Bytes`](bytes::Bytes) slices of a chunk: received frames
//! (`io::buffer::InBuf`) and the batches a process writes itself (`proto::batch_arena`). A chunk is
//! reused, without asking the allocator, as soon as every slice of it was dropped; while some are
//! held (an acceptor keeps decided batches until garbage collection, 3.3.7), another chunk of the
//! pool serves. Reserving chunks for what a process may hold at once means the pool never grows
//! while it runs.
//!
//! Both `io` and `proto` use it, so it sits below both, depending on nothing of the crate.

use bytes::BytesMut;

/// Bytes of the chunks packets are received and written into (receive buffers, batch arenas). A
/// chunk comes back for reuse only once every packet in it was dropped, so the smaller the chunks,
/// the less memory a process cycles through and the warmer the memory the next packet lands in:
/// 2 MiB instead of 8 MiB delivered 20% more on U-Ring (`bench/RESULTS.md`, eighth session). A
/// packet larger than a chunk gets a chunk of its own.
pub const CHUNK_BYTES: usize = 2 * 1024 * 1024;

/// Chunks a pool keeps for reuse before it would rather let one go: enough for a node's whole
/// reserve in the smallest chunks (128 MiB of 1 MiB datagram chunks, see `io::buffer`, with room for
/// a reserve four times that). Looking for
/// a free one scans them, once per chunk filled.
const RETIRED_CHUNKS_MAX: usize = 1024;

/// Chunks of `chunk_bytes`, held elsewhere or free, kept for reuse.
#[derive(Debug)]
pub struct ChunkPool {
    /// Emptied chunks, some of whose slices may still be held elsewhere.
    retired: Vec<BytesMut>,
    chunk_bytes: usize,
    allocated: u64,
}

impl ChunkPool {
    pub fn new(chunk_bytes: usize) -> ChunkPool {
        ChunkPool { retired: Vec::with_capacity(RETIRED_CHUNKS_MAX), chunk_bytes, allocated: 0 }
    }

    pub fn chunk_bytes(&self) -> usize {
        self.chunk_bytes
    }

    /// Allocates chunks up front until the pool keeps `chunks` of them. (Only touched memory costs:
    /// the kernel maps a chunk's pages when they are first written.)
    pub fn reserve(&mut self, chunks: usize) {
        while self.retired.len() < chunks.min(RETIRED_CHUNKS_MAX) {
            let chunk = self.allocate(self.chunk_bytes);
            self.retired.push(chunk);
        }
    }

    /// An empty chunk of at least `bytes` (and at least `chunk_bytes`) that nothing else holds: a
    /// kept one whose slices are all gone, else a new one. The most recently kept free one comes
    /// first: its memory is the likeliest to be mapped already and still in cache, where the
    /// reserve's untouched chunks would cost a page fault per page and a cache miss per line.
    pub fn take_free(&mut self, bytes: usize) -> BytesMut {
        let bytes = bytes.max(self.chunk_bytes);
        match self.retired.iter_mut().rposition(|c| c.try_reclaim(bytes)) {
            Some(i) => self.retired.swap_remove(i),
            None => self.allocate(bytes),
        }
    }

    /// Keeps `chunk` (emptied) for reuse once nothing holds its slices any more.
    pub fn retire(&mut self, mut chunk: BytesMut) {
        chunk.clear();
        if chunk.capacity() > 0 && self.retired.len() < RETIRED_CHUNKS_MAX {
            self.retired.push(chunk);
        }
    }

    /// Chunks allocated so far: more than were reserved means slices were held longer than
    /// planned for.
    pub fn allocated(&self) -> u64 {
        self.allocated
    }

    fn allocate(&mut self, bytes: usize) -> BytesMut {
        self.allocated += 1;
        let mut chunk = BytesMut::with_capacity(bytes);
        // The first slice taken out of a chunk makes its memory shared, which allocates the count
        // of its handles: do it now rather than while running.
        drop(chunk.split_to(0));
        chunk
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chunk_comes_back_only_once_its_slices_are_dropped() {
        let mut pool = ChunkPool::new(64);
        pool.reserve(1);
        assert_eq!(pool.allocated(), 1);
        let mut chunk = pool.take_free(10);
        assert_eq!(pool.allocated(), 1, "the reserved chunk");
        chunk.extend_from_slice(b"held");
        let held = chunk.split().freeze();
        pool.retire(chunk);
        let other = pool.take_free(64);
        assert_eq!(pool.allocated(), 2, "the kept chunk is still held");
        pool.retire(other);
        drop(held);
        let again = pool.take_free(64);
        assert_eq!((again.capacity(), pool.allocated()), (64, 2), "both came back whole");
        assert_eq!(pool.take_free(100).capacity(), 100, "a larger request gets a larger chunk");
    }
}
