//! [`BatchArena`]: where a proposer writes its batches, batch after batch, without allocating.
//!
//! Thesis 3.5.2 has the proposer write each value once, straight into the packet it travels in, and
//! packets live in buffers allocated once. Here a batch is written into the free tail of a large
//! *chunk* and sealed as a [`Batch`] that shares the chunk's memory; the next batch starts right
//! after it. A chunk whose batches were all dropped (delivered, garbage-collected at this process'
//! acceptor, 3.3.7) is reused as it is; only while every chunk is still held does the arena take a
//! new one, so in steady state proposing allocates nothing. (A fresh allocation per batch was the
//! proposer's share of the allocator calls per delivered batch.)

use bytes::BytesMut;

use super::batch::{Batch, RunCheck, put_value};
use super::types::ValueId;

/// Chunks the arena keeps for reuse before it would rather let one go.
const RETIRED_CHUNKS_MAX: usize = 256;

/// Builds one batch at a time in reused chunks.
#[derive(Debug)]
pub struct BatchArena {
    /// `chunk[..]` is the batch being built; the chunk's spare capacity is room for more.
    chunk: BytesMut,
    /// Earlier chunks, some of whose batches may still be held elsewhere.
    retired: Vec<BytesMut>,
    chunk_bytes: usize,
    len: u32,
    check: RunCheck,
    chunks_allocated: u64,
}

impl BatchArena {
    /// An arena of `chunk_bytes` chunks; the first is allocated when the first batch starts.
    pub fn new(chunk_bytes: usize) -> BatchArena {
        BatchArena {
            chunk: BytesMut::new(),
            retired: Vec::with_capacity(RETIRED_CHUNKS_MAX),
            chunk_bytes,
            len: 0,
            check: RunCheck::default(),
            chunks_allocated: 0,
        }
    }

    /// Starts a batch of up to `bytes_max` bytes, so it fits without moving: in the current chunk if
    /// it has the room, else in the first chunk nothing holds any more, else in a new one (a value
    /// larger than a chunk gets a chunk of its own size).
    pub fn start(&mut self, bytes_max: usize) {
        debug_assert!(self.is_empty(), "a batch is started only when the last one was sealed");
        if self.chunk.capacity() >= bytes_max {
            return;
        }
        let chunk_bytes = self.chunk_bytes.max(bytes_max);
        if self.chunk.try_reclaim(chunk_bytes) {
            return;
        }
        let reusable = self.retired.iter_mut().position(|c| c.try_reclaim(chunk_bytes));
        let next = match reusable {
            Some(i) => self.retired.swap_remove(i),
            None => {
                self.chunks_allocated += 1;
                BytesMut::with_capacity(chunk_bytes)
            }
        };
        let old = std::mem::replace(&mut self.chunk, next);
        if old.capacity() > 0 && self.retired.len() < RETIRED_CHUNKS_MAX {
            self.retired.push(old);
        }
    }

    /// Appends one value to the batch being built.
    pub fn push(&mut self, id: ValueId, payload: &[u8]) {
        put_value(&mut self.chunk, id, payload);
        self.len += 1;
        self.check.push(id);
    }

    /// Encoded bytes of the batch being built.
    pub fn bytes(&self) -> usize {
        self.chunk.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Seals the batch being built (sharing the chunk, no copy); the next one starts after it.
    pub fn seal(&mut self) -> Batch {
        let region = self.chunk.split().freeze();
        let batch = Batch::from_checked_region(region, self.len, self.check.is_run());
        self.len = 0;
        self.check = RunCheck::default();
        batch
    }

    /// Chunks allocated so far: more than a few means batches are held long.
    pub fn chunks_allocated(&self) -> u64 {
        self.chunks_allocated
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::types::VALUE_OVERHEAD_BYTES;

    fn id(seq: u64) -> ValueId {
        ValueId { proposer: 1, incarnation: 2, seq }
    }

    #[test]
    fn batches_are_runs_that_share_a_chunk_until_it_is_full() {
        let mut a = BatchArena::new(4 * (VALUE_OVERHEAD_BYTES + 3));
        a.start(2 * (VALUE_OVERHEAD_BYTES + 3));
        a.push(id(0), b"abc");
        a.push(id(1), b"def");
        let first = a.seal();
        a.start(2 * (VALUE_OVERHEAD_BYTES + 3));
        a.push(id(2), b"ghi");
        let second = a.seal();
        assert_eq!(first.values().map(|v| v.payload).collect::<Vec<_>>(), [&b"abc"[..], b"def"]);
        assert_eq!(first.run_start(), Some(id(0)));
        assert_eq!(second.run_start(), Some(id(2)));
        assert_eq!(second.region().as_ptr(), first.region()[first.bytes()..].as_ptr(), "one chunk");
        assert_eq!(a.chunks_allocated(), 1);
    }

    #[test]
    fn a_chunk_is_reused_once_its_batches_are_dropped_and_not_before() {
        let value_bytes = VALUE_OVERHEAD_BYTES + 1;
        let mut a = BatchArena::new(2 * value_bytes);
        let seal_one = |a: &mut BatchArena, seq| {
            a.start(2 * value_bytes);
            a.push(id(seq), b"x");
            a.push(id(seq + 1), b"y");
            a.seal()
        };
        let held = seal_one(&mut a, 0);
        let dropped = seal_one(&mut a, 2);
        assert_eq!(a.chunks_allocated(), 2, "the first chunk is held");
        drop(dropped);
        let third = seal_one(&mut a, 4);
        assert_eq!(a.chunks_allocated(), 2, "the second chunk came back");
        assert_eq!(held.ids().map(|i| i.seq).collect::<Vec<_>>(), [0, 1], "never written over");
        assert_eq!(third.ids().map(|i| i.seq).collect::<Vec<_>>(), [4, 5]);
        let big = {
            a.start(3 * value_bytes);
            (0..3).for_each(|s| a.push(id(6 + s), b"z"));
            a.seal()
        };
        assert_eq!((big.len(), a.chunks_allocated()), (3, 3), "a chunk as large as the batch");
    }
}
