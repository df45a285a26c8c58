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

use std::sync::{Condvar, Mutex};

/// A worker stopped while others waited for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Aborted;

#[derive(Debug, Default)]
struct State {
    /// Lanes other than the executor that arrived in this round.
    arrived: usize,
    round: u64,
    aborted: bool,
}

/// See the module docs.
#[derive(Debug)]
pub struct Rendezvous {
    lanes: usize,
    state: Mutex<State>,
    changed: Condvar,
}

impl Rendezvous {
    pub fn new(lanes: usize) -> Rendezvous {
        Rendezvous { lanes, state: Mutex::new(State::default()), changed: Condvar::new() }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A worker that panicked poisons nothing we rely on: the state is plain counters.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A worker other than the executor: signal it, and wait for its signal (lines 25–26).
    pub fn arrive_and_wait(&self) -> Result<(), Aborted> {
        let mut s = self.lock();
        if s.aborted {
            return Err(Aborted);
        }
        s.arrived += 1;
        let round = s.round;
        if s.arrived + 1 == self.lanes {
            self.changed.notify_all();
        }
        while s.round == round && !s.aborted {
            s = self.changed.wait(s).unwrap_or_else(|p| p.into_inner());
        }
        if s.round == round { Err(Aborted) } else { Ok(()) }
    }

    /// The executor: wait for every other worker's signal (lines 18–19).
    pub fn wait_for_others(&self) -> Result<(), Aborted> {
        let mut s = self.lock();
        while s.arrived + 1 < self.lanes && !s.aborted {
            s = self.changed.wait(s).unwrap_or_else(|p| p.into_inner());
        }
        if s.aborted { Err(Aborted) } else { Ok(()) }
    }

    /// The executor, done: let the others go on (lines 22–23).
    pub fn release(&self) {
        let mut s = self.lock();
        s.arrived = 0;
        s.round += 1;
        self.changed.notify_all();
    }

    /// A worker stops: nobody waits for it any more.
    pub fn abort(&self) {
        self.lock().aborted = true;
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
                                r.wait_for_others().unwrap();
                                assert_eq!(inside.load(Ordering::SeqCst), 0, "others parked");
                                executed.fetch_add(1, Ordering::SeqCst);
                                r.release();
                            } else {
                                r.arrive_and_wait().unwrap();
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
            let waiting = s.spawn(|| r.wait_for_others());
            let arrived = s.spawn(|| r.arrive_and_wait());
            r.abort();
            assert_eq!(waiting.join().unwrap(), Err(Aborted));
            assert_eq!(arrived.join().unwrap(), Err(Aborted));
        });
        assert_eq!(r.arrive_and_wait(), Err(Aborted));
    }
}
