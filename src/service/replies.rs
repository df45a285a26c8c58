//! The replies' way from the workers to the clients' connections (thesis 6.3.4 line 13: the
//! executing replica answers the client itself).
//!
//! Each worker gathers the replies of a delivered batch in a buffer, `client u64` then the reply's
//! encoding, over and over, and hands the buffer to the replica's front thread through a queue of
//! its own; the front thread gives emptied buffers back through another, so a warm replica
//! allocates nothing for replies. The front thread is woken once per handed buffer.

use std::sync::Arc;

use crate::smr::{ClientId, Reply, ReplySink};

/// Buffers a worker may have in flight to the front thread.
const BUFFERS: usize = 64;

/// The wake-up of the front thread.
pub trait Wake: Send + Sync {
    fn wake(&self);
}

impl Wake for mio::Waker {
    fn wake(&self) {
        // A failed wake-up only delays the replies to the front thread's next poll (1 ms).
        let _ = mio::Waker::wake(self);
    }
}

/// A worker's end.
pub struct ReplyQueue {
    filling: Vec<u8>,
    full: rtrb::Producer<Vec<u8>>,
    empty: rtrb::Consumer<Vec<u8>>,
    wake: Arc<dyn Wake>,
}

/// The front thread's end of one worker's replies.
pub struct ReplyDrain {
    full: rtrb::Consumer<Vec<u8>>,
    empty: rtrb::Producer<Vec<u8>>,
}

pub fn reply_queue(wake: Arc<dyn Wake>) -> (ReplyQueue, ReplyDrain) {
    let (full_tx, full_rx) = rtrb::RingBuffer::new(BUFFERS);
    let (empty_tx, empty_rx) = rtrb::RingBuffer::new(BUFFERS);
    let q = ReplyQueue { filling: Vec::with_capacity(4096), full: full_tx, empty: empty_rx, wake };
    (q, ReplyDrain { full: full_rx, empty: empty_tx })
}

impl ReplySink for ReplyQueue {
    fn reply(&mut self, client: ClientId, reply: Reply<'_>) {
        self.filling.extend_from_slice(&client.to_le_bytes());
        reply.encode(&mut self.filling);
    }

    fn flush(&mut self) {
        if self.filling.is_empty() {
            return;
        }
        let next = self.empty.pop().unwrap_or_else(|_| Vec::with_capacity(4096));
        let mut buf = std::mem::replace(&mut self.filling, next);
        loop {
            match self.full.push(buf) {
                Ok(()) => break,
                Err(rtrb::PushError::Full(back)) => {
                    // The front thread is behind: wait for it rather than drop replies (a client
                    // would only get them on retry).
                    if self.full.is_abandoned() {
                        return;
                    }
                    buf = back;
                    self.wake.wake();
                    std::thread::sleep(std::time::Duration::from_micros(50));
                }
            }
        }
        self.wake.wake();
    }
}

impl ReplyDrain {
    /// Calls `each(client, reply bytes)` for every reply handed over so far.
    pub fn drain(&mut self, mut each: impl FnMut(ClientId, &[u8])) {
        while let Ok(mut buf) = self.full.pop() {
            let mut at = 0;
            while at + 8 <= buf.len() {
                let client = u64::from_le_bytes(buf[at..at + 8].try_into().expect("8 bytes"));
                at += 8;
                let Ok(Some((_, n))) = Reply::decode(&buf[at..]) else {
                    unreachable!("workers write whole replies");
                };
                each(client, &buf[at..at + n]);
                at += n;
            }
            buf.clear();
            let _ = self.empty.push(buf);
        }
    }
}
