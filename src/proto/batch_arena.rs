//! [`BatchArena`]: where a proposer writes its batches, batch after batch, without allocating.
//!
//! Thesis 3.5.2 has the proposer write each value once, straight into the packet it travels in, and
//! packets live in buffers allocated once. Here a batch is written into the free tail of a large
//! *chunk* and sealed as a [`Batch`] that shares the chunk's memory; the next batch starts right
//! after it. A chunk whose batches were all dropped (delivered, garbage-collected at this process'
//! acceptor, 3.3.7) is reused as it is; only while every chunk is still held does the arena take a
//! new one, so in steady state proposing allocates nothing. (A fresh allocation per batch was the
//! proposer's share of the allocator calls per delivered batch.)

use bytes::{BufMut, BytesMut};

use super::batch::{Batch, RunCheck, put_value};
use super::types::ValueId;
use crate::chunks::ChunkPool;

/// Builds one batch at a time in reused chunks.
#[derive(Debug)]
pub struct BatchArena {
    /// `chunk[..]` is the batch being built; the chunk's spare capacity is room for more.
    chunk: BytesMut,
    /// Earlier chunks, some of whose batches may still be held elsewhere.
    pool: ChunkPool,
    len: u32,
    check: RunCheck,
}

impl BatchArena {
    /// An arena of `chunk_bytes` chunks; the first is allocated when the first batch starts.
    pub fn new(chunk_bytes: usize) -> BatchArena {
        BatchArena {
            chunk: BytesMut::new(),
            pool: ChunkPool::new(chunk_bytes),
            len: 0,
            check: RunCheck::default(),
        }
    }

    /// Allocates chunks for `bytes` of batches up front (thesis 3.5.2 preallocates its buffers): the
    /// batches a process keeps until garbage collection pin the chunks they were written in, so
    /// chunks for what it keeps mean the arena never has to grow once running. (Only touched
    /// memory costs: the kernel maps a chunk's pages when they are first written.)
    pub fn reserve(&mut self, bytes: usize) {
        if bytes == 0 {
            return;
        }
        // The batches being built and sent come on top of those held.
        self.pool.reserve(bytes.div_ceil(self.pool.chunk_bytes().max(1)) + 2);
    }

    /// Starts a batch of up to `bytes_max` bytes, so it fits without moving: in the current chunk if
    /// it has the room, else in the first chunk nothing holds any more, else in a new one (a value
    /// larger than a chunk gets a chunk of its own size).
    pub fn start(&mut self, bytes_max: usize) {
        debug_assert!(self.is_empty(), "a batch is started only when the last one was sealed");
        if self.chunk.capacity() >= bytes_max {
            return;
        }
        let chunk_bytes = self.pool.chunk_bytes().max(bytes_max);
        if self.chunk.try_reclaim(chunk_bytes) {
            return;
        }
        let next = self.pool.take_free(chunk_bytes);
        let old = std::mem::replace(&mut self.chunk, next);
        self.pool.retire(old);
    }

    /// Appends one value to the batch being built.
    pub fn push(&mut self, id: ValueId, payload: &[u8]) {
        put_value(&mut self.chunk, id, payload);
        self.len += 1;
        self.check.push(id);
    }

    /// Appends the values of `batch` whole (one copy of its region).
    pub fn append(&mut self, batch: &Batch) {
        if batch.is_empty() {
            return;
        }
        self.chunk.put_slice(batch.region());
        let count = u32::try_from(batch.len()).unwrap_or(u32::MAX);
        self.len += count;
        self.check.push_run(batch.run_start(), count);
    }

    /// The batches joined into one, in order: a lone batch is shared as it is, several are copied
    /// into the arena one after the other.
    pub fn concat(&mut self, batches: &[Batch]) -> Batch {
        if let [only] = batches {
            return only.clone();
        }
        self.start(batches.iter().map(Batch::bytes).sum());
        for batch in batches {
            self.append(batch);
        }
        self.seal()
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
        let batch = Batch::from_checked_region(region, self.len, self.check.is_run(), None);
        self.len = 0;
        self.check = RunCheck::default();
        batch
    }

    /// Chunks allocated so far: more than a few means batches are held long.
    pub fn chunks_allocated(&self) -> u64 {
        self.pool.allocated()
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
    fn concat_joins_in_order_keeps_runs_known_and_shares_a_lone_batch() {
        let mut a = BatchArena::new(1 << 12);
        let batch = |a: &mut BatchArena, seqs: &[u64]| {
            a.start(1 << 10);
            seqs.iter().for_each(|&s| a.push(id(s), b"v"));
            a.seal()
        };
        let (head, tail) = (batch(&mut a, &[3, 4]), batch(&mut a, &[5]));
        let joined = a.concat(&[head.clone(), Batch::empty(), tail.clone()]);
        assert_eq!(joined.ids().map(|i| i.seq).collect::<Vec<_>>(), [3, 4, 5]);
        assert_eq!(joined.run_start(), Some(id(3)));
        assert_eq!(a.concat(&[tail.clone(), head.clone()]).run_start(), None, "out of order");
        let other = Batch::new(vec![crate::proto::types::Value {
            id: ValueId { proposer: 9, ..id(5) },
            payload: bytes::Bytes::from_static(b"w"),
        }]);
        assert_eq!(a.concat(&[head.clone(), other]).run_start(), None, "two proposers");
        assert_eq!(a.concat(std::slice::from_ref(&head)).region().as_ptr(), head.region().as_ptr());
    }

    #[test]
    fn a_reserve_is_used_before_anything_is_allocated_again() {
        let mut a = BatchArena::new(64);
        a.reserve(64);
        assert_eq!(a.chunks_allocated(), 3, "one chunk held, and two for the batches in flight");
        let held: Vec<Batch> = (0..3)
            .map(|s| {
                a.start(64);
                a.push(id(s), &[0; 40]);
                a.seal()
            })
            .collect();
        assert_eq!((held.len(), a.chunks_allocated()), (3, 3), "each batch took a reserved chunk");
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
