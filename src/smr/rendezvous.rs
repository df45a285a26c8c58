//! The synchronisation of P-SMR's synchronous mode (thesis 6.3.4, Algorithm 1 lines 15–26): the
//! workers a multi-group command concerns signal the lowest of them, which waits for all their
//! signals, executes the command, and signals them to go on.
//!
//! Here every such command concerns every worker (it is multicast to g_all), so the rendezvous is
//! a barrier of all lanes with one designated executor. A worker that stops (the replica shuts
//! down) aborts it, so no other worker waits for it forever.
//!
//! It is taken once per run of consecutive g_all commands, not per command: a batch of dependent
//! commands delivered together costs one rendezvous.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex};

/// A worker stopped while others waited for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Aborted;

/// How long a waiter spins (pause instructions, some 10 µs) before it sleeps on the condition
/// variable. A rendezvous is usually met within microseconds, by a worker busy on another core;
/// sleeping at once made every meeting cost two futex wake-ups, each a trip through the
/// scheduler, and on a busy 2-core machine sP-SMR with 10% dependent commands ran at a third of
/// SMR's throughput (`bench/RESULTS.md`, thirteenth session). Yielding instead of spinning was
/// worse than sleeping: the core goes to a ring or client thread for a whole time slice. And a
/// worker that waits while the executor runs a long run of commands sleeps at once
/// ([`Rendezvous::arrive_and_wait`]), and the executor that follows such a run does not spin for
/// the sleepers ([`Rendezvous::wait_for_others`]): spinning there only took the CPU from those
/// threads (100% dependent commands ran 12-20% slower).
const SPINS: u32 = 256;

/// See the module docs.
#[derive(Debug)]
pub struct Rendezvous {
    lanes: usize,
    /// Lanes other than the executor that arrived in this round.
    arrived: AtomicUsize,
    round: AtomicU64,
    aborted: AtomicBool,
    /// Waiters asleep on `changed` (a notifier takes the lock only when there are some).
    sleepers: AtomicUsize,
    lock: Mutex<()>,
    changed: Condvar,
}

impl Rendezvous {
    pub fn new(lanes: usize) -> Rendezvous {
        Rendezvous {
            lanes,
            arrived: AtomicUsize::new(0),
            round: AtomicU64::new(0),
            aborted: AtomicBool::new(false),
            sleepers: AtomicUsize::new(0),
            lock: Mutex::new(()),
            changed: Condvar::new(),
        }
    }

    /// Returns once `done()` holds: spins, yields, then sleeps until a [`Self::notify`].
    ///
    /// No wake-up is lost: a sleeper counts itself (SeqCst) before its last check, under the
    /// lock; a notifier changes the state (SeqCst) before it reads the count, and takes the lock
    /// to notify. Either the notifier sees the sleeper and wakes it, or the sleeper's last check
    /// sees the change.
    fn wait_until(&self, spins: u32, done: impl Fn() -> bool) {
        for _ in 0..spins {
            if done() {
                return;
            }
            std::hint::spin_loop();
        }
        let mut guard = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        self.sleepers.fetch_add(1, Ordering::SeqCst);
        while !done() {
            guard = self.changed.wait(guard).unwrap_or_else(|p| p.into_inner());
        }
        self.sleepers.fetch_sub(1, Ordering::SeqCst);
    }

    /// Wakes the sleepers after a change of state (made with SeqCst).
    fn notify(&self) {
        if self.sleepers.load(Ordering::SeqCst) > 0 {
            let _guard = self.lock.lock().unwrap_or_else(|p| p.into_inner());
            self.changed.notify_all();
        }
    }

    /// A worker other than the executor: signal it, and wait for its signal (lines 25–26).
    /// `long`: the executor has many commands to run, so the wait is no short one.
    pub fn arrive_and_wait(&self, long: bool) -> Result<(), Aborted> {
        if self.aborted.load(Ordering::SeqCst) {
            return Err(Aborted);
        }
        let round = self.round.load(Ordering::SeqCst);
        if self.arrived.fetch_add(1, Ordering::SeqCst) + 2 == self.lanes {
            self.notify(); // the executor may be asleep waiting for the last one
        }
        let released = || self.round.load(Ordering::SeqCst) != round;
        let spins = if long { 0 } else { SPINS };
        self.wait_until(spins, || released() || self.aborted.load(Ordering::SeqCst));
        if released() { Ok(()) } else { Err(Aborted) }
    }

    /// The executor: wait for every other worker's signal (lines 18–19). `spin`: they are likely
    /// awake (the last run was short, so they spun instead of sleeping through it).
    pub fn wait_for_others(&self, spin: bool) -> Result<(), Aborted> {
        let all = || self.arrived.load(Ordering::SeqCst) + 1 >= self.lanes;
        let spins = if spin { SPINS } else { 0 };
        self.wait_until(spins, || all() || self.aborted.load(Ordering::SeqCst));
        if self.aborted.load(Ordering::SeqCst) { Err(Aborted) } else { Ok(()) }
    }

    /// The executor, done: let the others go on (lines 22–23). The count is reset before the
    /// round moves on, and nobody arrives for the next round before seeing it move.
    pub fn release(&self) {
        self.arrived.store(0, Ordering::SeqCst);
        self.round.fetch_add(1, Ordering::SeqCst);
        self.notify();
    }

    /// A worker stops: nobody waits for it any more.
    pub fn abort(&self) {
        self.aborted.store(true, Ordering::SeqCst);
        // Unconditionally: an abort is rare, and a waiter may be between its count and its wait.
        let _guard = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        self.changed.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};

    /// In every round the executor runs only after every other lane arrived, and no lane goes on
    /// before it finished: the others see the executor's count of rounds complete.
    #[test]
    fn the_executor_runs_alone_between_arrival_and_release() {
        for lanes in [1, 2, 3, 8] {
            let r = Rendezvous::new(lanes);
            let executed = AtomicU64::new(0);
            let inside = AtomicU64::new(0);
            std::thread::scope(|s| {
                for lane in 0..lanes {
                    let (r, executed, inside) = (&r, &executed, &inside);
                    s.spawn(move || {
                        for round in 0..300u64 {
                            if lane == 0 {
                                r.wait_for_others(round % 3 == 0).unwrap();
                                assert_eq!(inside.load(Ordering::SeqCst), 0, "others parked");
                                executed.fetch_add(1, Ordering::SeqCst);
                                r.release();
                            } else {
                                r.arrive_and_wait(round % 2 == 0).unwrap();
                                assert_eq!(executed.load(Ordering::SeqCst), round + 1);
                                // Work between rounds, which the executor must never overlap.
                                inside.fetch_add(1, Ordering::SeqCst);
                                inside.fetch_sub(1, Ordering::SeqCst);
                            }
                        }
                    });
                }
            });
            assert_eq!(executed.load(Ordering::SeqCst), 300);
        }
    }

    #[test]
    fn a_stopped_worker_releases_the_others() {
        let r = Rendezvous::new(3);
        std::thread::scope(|s| {
            let waiting = s.spawn(|| r.wait_for_others(true));
            let arrived = s.spawn(|| r.arrive_and_wait(false));
            r.abort();
            assert_eq!(waiting.join().unwrap(), Err(Aborted));
            assert_eq!(arrived.join().unwrap(), Err(Aborted));
        });
        assert_eq!(r.arrive_and_wait(true), Err(Aborted));
    }
}
