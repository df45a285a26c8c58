//! Thread placement and accounting: pinning a reactor thread to one core (thread-per-core: the core's
//! caches keep its sockets, buffers and protocol state) and reading a thread's CPU time for the
//! benchmark's "CPU per node" column (thesis 3.5.9 reports CPU per process the same way).

use std::time::Duration;

use nix::sched::{CpuSet, sched_getaffinity, sched_setaffinity};
use nix::time::{ClockId, clock_gettime};
use nix::unistd::Pid;

/// The cores this process may run on, in order.
pub fn allowed_cores() -> Vec<usize> {
    match sched_getaffinity(Pid::from_raw(0)) {
        Ok(set) => (0..CpuSet::count()).filter(|&c| set.is_set(c).unwrap_or(false)).collect(),
        Err(_) => (0..std::thread::available_parallelism().map_or(1, |n| n.get())).collect(),
    }
}

/// Pins the calling thread to `core`. Failure (a core outside the cgroup's set) is reported, not
/// fatal: the thread then runs wherever the scheduler puts it.
pub fn pin_current_thread(core: usize) -> Result<(), nix::Error> {
    let mut set = CpuSet::new();
    set.set(core)?;
    sched_setaffinity(Pid::from_raw(0), &set)
}

/// CPU time the calling thread has used.
pub fn thread_cpu_time() -> Duration {
    clock_gettime(ClockId::CLOCK_THREAD_CPUTIME_ID).map_or(Duration::ZERO, Duration::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thread_cpu_time_grows_with_work() {
        let before = thread_cpu_time();
        let mut x = 0u64;
        while thread_cpu_time() < before + Duration::from_millis(5) {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
        }
        std::hint::black_box(x);
        assert!(thread_cpu_time() >= before + Duration::from_millis(5));
    }

    #[test]
    fn the_current_core_set_is_not_empty_and_pinning_to_one_of_it_works() {
        let cores = allowed_cores();
        assert!(!cores.is_empty());
        let handle = std::thread::spawn(move || pin_current_thread(cores[0]));
        assert_eq!(handle.join().unwrap(), Ok(()));
    }
}
