//! A bounded single-producer single-consumer queue whose ends wait for each other: the scheduler
//! of sP-SMR hands batches to its workers through one per worker (thesis 6.5.2: "the scheduler
//! thread shares with each worker thread a queue").
//!
//! The queue itself is lock-free (`rtrb`); a side that finds it empty (or full) parks, after
//! saying so in a flag the other side reads after each push (pop), so a wake-up costs a system
//! call only when someone actually waits. Parking is bounded (1 ms): a wake-up lost between the
//! flag and the park costs at most that, never a hang.

use std::sync::Arc;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::Thread;
use std::time::Duration;

const PARK_BOUND: Duration = Duration::from_millis(1);

#[derive(Debug, Default)]
struct Ends {
    receiver: OnceLock<Thread>,
    sender: OnceLock<Thread>,
    receiver_waits: AtomicBool,
    sender_waits: AtomicBool,
    closed: AtomicBool,
}

/// The producing end; dropping it closes the queue (the receiver gets what is left, then `None`).
pub struct HandoffSender<T> {
    queue: rtrb::Producer<T>,
    ends: Arc<Ends>,
}

/// The consuming end; dropping it closes the queue (sends fail from then on).
pub struct HandoffReceiver<T> {
    queue: rtrb::Consumer<T>,
    ends: Arc<Ends>,
}

/// The receiver is gone.
#[derive(Debug, PartialEq, Eq)]
pub struct Closed<T>(pub T);

pub fn handoff<T>(capacity: usize) -> (HandoffSender<T>, HandoffReceiver<T>) {
    let (tx, rx) = rtrb::RingBuffer::new(capacity);
    let ends = Arc::new(Ends::default());
    (HandoffSender { queue: tx, ends: Arc::clone(&ends) }, HandoffReceiver { queue: rx, ends })
}

fn wake(waits: &AtomicBool, thread: &OnceLock<Thread>) {
    if waits.load(Ordering::SeqCst)
        && let Some(t) = thread.get()
    {
        t.unpark();
    }
}

impl<T> HandoffSender<T> {
    /// Queues `item`, waiting while the queue is full.
    pub fn send(&mut self, mut item: T) -> Result<(), Closed<T>> {
        loop {
            if self.ends.closed.load(Ordering::Acquire) {
                return Err(Closed(item));
            }
            match self.queue.push(item) {
                Ok(()) => {
                    wake(&self.ends.receiver_waits, &self.ends.receiver);
                    return Ok(());
                }
                Err(rtrb::PushError::Full(back)) => item = back,
            }
            let _ = self.ends.sender.set(std::thread::current());
            self.ends.sender_waits.store(true, Ordering::SeqCst);
            if self.queue.slots() == 0 {
                std::thread::park_timeout(PARK_BOUND);
            }
            self.ends.sender_waits.store(false, Ordering::SeqCst);
        }
    }
}

impl<T> Drop for HandoffSender<T> {
    fn drop(&mut self) {
        self.ends.closed.store(true, Ordering::Release);
        if let Some(t) = self.ends.receiver.get() {
            t.unpark();
        }
    }
}

impl<T> HandoffReceiver<T> {
    /// The next item, waiting for one; `None` once the sender is gone and the queue empty.
    pub fn recv(&mut self) -> Option<T> {
        loop {
            if let Ok(item) = self.queue.pop() {
                wake(&self.ends.sender_waits, &self.ends.sender);
                return Some(item);
            }
            if self.ends.closed.load(Ordering::Acquire) {
                // Whatever was pushed before the close is visible now.
                return self.queue.pop().ok();
            }
            let _ = self.ends.receiver.set(std::thread::current());
            self.ends.receiver_waits.store(true, Ordering::SeqCst);
            if self.queue.is_empty() && !self.ends.closed.load(Ordering::Acquire) {
                std::thread::park_timeout(PARK_BOUND);
            }
            self.ends.receiver_waits.store(false, Ordering::SeqCst);
        }
    }
}

impl<T> Drop for HandoffReceiver<T> {
    fn drop(&mut self) {
        self.ends.closed.store(true, Ordering::Release);
        if let Some(t) = self.ends.sender.get() {
            t.unpark();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn everything_sent_arrives_in_order_through_a_small_queue() {
        let (mut tx, mut rx) = handoff::<u64>(4);
        let sender = std::thread::spawn(move || {
            for i in 0..100_000 {
                tx.send(i).unwrap();
            }
        });
        let mut next = 0;
        while let Some(i) = rx.recv() {
            assert_eq!(i, next);
            next += 1;
        }
        sender.join().unwrap();
        assert_eq!(next, 100_000);
    }

    #[test]
    fn a_gone_receiver_fails_the_sender() {
        let (mut tx, rx) = handoff::<u8>(1);
        tx.send(1).unwrap();
        drop(rx);
        assert_eq!(tx.send(2), Err(Closed(2)));
    }
}
