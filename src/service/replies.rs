//! The replies' way from the workers to the clients' connections (thesis 6.3.4 line 13: the
//! executing replica answers the client itself).
//!
//! Each worker gathers the replies of a delivered batch in a buffer, `client u64` then the reply's
//! encoding, over and over, and hands the buffer to the replica's front thread through a queue of
//! its own; the front thread gives emptied buffers back through another, so a warm replica
//! allocates nothing for replies. A handed buffer wakes the front thread only if it waits in its
//! poll ([`FrontWaker`]); a busy one finds the buffer on its next turn.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering, fence};

use crate::smr::{ClientId, Reply, ReplySink};

/// Buffers a worker may have in flight to the front thread.
const BUFFERS: usize = 64;

/// The wake-up of the front thread.
pub trait Wake: Send + Sync {
    fn wake(&self);
}

/// The front thread's wake-up, sent only while the front thread waits in its poll (or is about
/// to): a busy front thread drains the queues on its next turn anyway, and a wake-up per handed
/// buffer cost a system call per buffer and an interrupted poll.
///
/// The two sides meet as in Dekker's protocol: the worker pushes its buffer, then looks at
/// `waiting`; the front thread raises `waiting`, then looks at the queues before it sleeps. With
/// a full fence on each side between the two steps, at least one of them sees the other's
/// first step, so a buffer is never left waiting through a whole poll timeout.
pub struct FrontWaker {
    waker: mio::Waker,
    waiting: AtomicBool,
}

impl FrontWaker {
    pub fn new(waker: mio::Waker) -> FrontWaker {
        FrontWaker { waker, waiting: AtomicBool::new(false) }
    }

    /// The front thread is about to wait; true if a drain has replies already, when it should
    /// not wait at all.
    pub fn begin_wait(&self, drains: &[ReplyDrain]) -> bool {
        self.waiting.store(true, Ordering::Relaxed);
        fence(Ordering::SeqCst);
        drains.iter().any(|d| !d.full.is_empty())
    }

    /// The front thread's wait is over.
    pub fn end_wait(&self) {
        self.waiting.store(false, Ordering::Relaxed);
    }
}

impl Wake for FrontWaker {
    fn wake(&self) {
        fence(Ordering::SeqCst);
        if self.waiting.load(Ordering::Relaxed) {
            // A failed wake-up only delays the replies to the end of the front thread's poll.
            let _ = self.waker.wake();
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::smr::{ReplySink, Status};
    use mio::{Events, Poll, Token};
    use std::time::Duration;

    fn woken(poll: &mut Poll) -> bool {
        let mut events = Events::with_capacity(4);
        poll.poll(&mut events, Some(Duration::ZERO)).expect("poll");
        !events.is_empty()
    }

    #[test]
    fn the_front_is_woken_only_while_it_waits_and_sees_replies_handed_before_its_wait() {
        let mut poll = Poll::new().expect("poll");
        let waker =
            Arc::new(FrontWaker::new(mio::Waker::new(poll.registry(), Token(0)).expect("waker")));
        let (mut q, mut drain) = reply_queue(waker.clone());
        let reply = crate::smr::Reply { seq: 1, status: Status::Executed, body: b"x" };

        // Busy front: the buffer is handed over without a wake-up, and the front sees it
        // before it would wait.
        q.reply(5, reply);
        q.flush();
        assert!(!woken(&mut poll));
        assert!(waker.begin_wait(std::slice::from_ref(&drain)));
        waker.end_wait();
        let mut got = Vec::new();
        drain.drain(|client, _| got.push(client));
        assert_eq!(got, [5]);

        // Waiting front: woken.
        assert!(!waker.begin_wait(std::slice::from_ref(&drain)));
        q.reply(6, reply);
        q.flush();
        waker.end_wait();
        assert!(woken(&mut poll));
    }
}
