//! How the kernel schedules the engine's threads (thesis 3.5.9: at high throughput the CPU, not the
//! network, is what runs out).
//!
//! A reactor thread sleeps in the kernel whenever it has drained its sockets and wakes on the next
//! segment or datagram. Under Linux's default policy a thread that wakes preempts the one running on
//! its core at once. That is right for an interactive program, and wrong for a pipeline whose stages
//! share cores, as the processes of `ringsmr local` (three nodes, the load generator, two cores) and
//! any host running more stages than it has cores do: every 8 KB datagram or 32 KB batch handed from
//! one stage to the next would interrupt the stage that produces them, so each stage runs in steps of
//! one message, and the busiest one, the coordinator, spends its time being switched out.
//! `SCHED_BATCH` keeps the fair share of CPU and only drops that wake-up preemption: a woken stage
//! waits until the running one blocks or its slice ends, then finds many messages queued and handles
//! them in one step. Measured on a 2-core host (`bench/RESULTS.md`, sixth session), `ringsmr local`
//! with 1 KB values, epoll, `batch` against `normal` on one build: M-Ring Paxos +60%, U-Ring Paxos
//! +1% (noise); 64-byte values on U-Ring Paxos +22%. The raw transports gain as much (the multicast
//! baseline +74%), so efficiencies do not rise with it: only the absolute figures do.
//!
//! The policy is per thread and inherited by threads created afterwards. The `ringsmr` commands set
//! it for the whole process at start (`RINGSMR_SCHED`, default `batch`), so nodes, the load
//! generator and the raw-transport baseline all run under the same one; an embedding application
//! chooses per node (`NodeOptions::scheduling`).

use std::io;

/// A Linux scheduling policy for an engine thread, both at normal (nice) priority.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scheduling {
    /// `SCHED_BATCH`: no preemption on wake-up (throughput; see the module docs).
    Batch,
    /// `SCHED_OTHER`: Linux's default (a woken thread preempts at once: lower latency when cores are
    /// shared).
    Normal,
}

/// `RINGSMR_SCHED` holds something else than a policy name.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "RINGSMR_SCHED={0:?} is not a scheduling policy: use `batch` or `normal` (or leave it unset)"
)]
pub struct BadSchedulingName(pub String);

impl Scheduling {
    /// Reads `RINGSMR_SCHED` (`batch`, `normal`; unset means [`Scheduling::Batch`]).
    pub fn from_env() -> Result<Scheduling, BadSchedulingName> {
        match std::env::var("RINGSMR_SCHED") {
            Err(_) => Ok(Scheduling::Batch),
            Ok(v) => Scheduling::parse(&v).ok_or(BadSchedulingName(v)),
        }
    }

    fn parse(name: &str) -> Option<Scheduling> {
        match name {
            "" | "batch" => Some(Scheduling::Batch),
            "normal" | "other" => Some(Scheduling::Normal),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Scheduling::Batch => "batch",
            Scheduling::Normal => "normal",
        }
    }

    /// Puts the calling thread (and the threads it creates from now on) under this policy.
    pub fn apply_to_current_thread(self) -> io::Result<()> {
        let policy = match self {
            Scheduling::Batch => libc::SCHED_BATCH,
            Scheduling::Normal => libc::SCHED_OTHER,
        };
        let param = libc::sched_param { sched_priority: 0 };
        // SAFETY: `param` is a valid sched_param for the duration of the call; pid 0 names the
        // calling thread (Linux schedules threads, not processes).
        if unsafe { libc::sched_setscheduler(0, policy, &param) } == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }

    /// The policy of the calling thread, if it is one of these two.
    pub fn of_current_thread() -> Option<Scheduling> {
        // SAFETY: no arguments beyond the pid; 0 names the calling thread.
        match unsafe { libc::sched_getscheduler(0) } {
            libc::SCHED_BATCH => Some(Scheduling::Batch),
            libc::SCHED_OTHER => Some(Scheduling::Normal),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_and_others_are_refused() {
        assert_eq!(Scheduling::parse("batch"), Some(Scheduling::Batch));
        assert_eq!(Scheduling::parse(""), Some(Scheduling::Batch));
        assert_eq!(Scheduling::parse("normal"), Some(Scheduling::Normal));
        assert_eq!(Scheduling::parse("fifo"), None);
        let e = BadSchedulingName("fifo".into()).to_string();
        assert!(e.contains("RINGSMR_SCHED") && e.contains("batch"), "{e}");
    }

    #[test]
    fn a_thread_takes_the_policy_and_its_children_inherit_it() {
        let seen = std::thread::spawn(|| {
            Scheduling::Batch.apply_to_current_thread().unwrap();
            let mine = Scheduling::of_current_thread();
            let child = std::thread::spawn(Scheduling::of_current_thread).join().unwrap();
            Scheduling::Normal.apply_to_current_thread().unwrap();
            (mine, child, Scheduling::of_current_thread())
        })
        .join()
        .unwrap();
        assert_eq!(
            seen,
            (Some(Scheduling::Batch), Some(Scheduling::Batch), Some(Scheduling::Normal))
        );
    }
}
