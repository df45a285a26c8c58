//! One process' stable storage in a simulated run (Recoverable Ring Paxos, thesis 3.3.5).
//!
//! The simulated disk behaves as the node's log does (`storage`): records a core asks to persist
//! are written at once but become durable only when a sync completes, some virtual time later;
//! one sync covers every record written before it began (group commit); and everything the core
//! emitted after a record waits until that record is durable (the `proto::durable` contract). A
//! crash loses what no completed sync covered, except that a sync in flight may have reached the
//! disk in part: a prefix of its records survives, as the torn tail the log's recovery drops
//! leaves the records before it. A restart replays the durable records into the acceptor state.

use std::collections::VecDeque;

use crate::proto::{AcceptorState, Action, Durable};

/// See the module docs.
#[derive(Debug, Default)]
pub struct Disk {
    durable: Vec<Durable>,
    /// Records not yet durable, each with the sync (epoch) that covers it.
    unsynced: VecDeque<(u64, Durable)>,
    /// Actions emitted after a record that is not yet durable, in order, with the epoch they wait for.
    held: VecDeque<(u64, Action)>,
    /// The epoch records written now belong to; the next sync to begin covers it.
    open_epoch: u64,
    /// The epoch of the sync in flight.
    syncing: Option<u64>,
    /// Perform actions without waiting for the records before them (`async` storage).
    write_behind: bool,
}

impl Disk {
    /// A disk whose driver waits for records to be durable before acting on them (`sync`), or not.
    pub fn new(sync_before_acting: bool) -> Disk {
        Disk { write_behind: !sync_before_acting, ..Disk::default() }
    }

    /// Takes one action a core emitted, in order: a record is written; any other action comes back
    /// to be performed now, or is held until every record before it is durable.
    pub fn admit(&mut self, action: Action) -> Option<Action> {
        if let Action::Persist(record) = action {
            self.unsynced.push_back((self.open_epoch, record));
            return None;
        }
        match self.unsynced.back() {
            Some(&(epoch, _)) if !self.write_behind => {
                self.held.push_back((epoch, action));
                None
            }
            _ => Some(action),
        }
    }

    /// Begins a sync when records wait for one and none is in flight; returns its epoch, for
    /// [`Disk::sync_done`] when it completes.
    pub fn start_sync(&mut self) -> Option<u64> {
        let waiting = self.unsynced.back().is_some_and(|&(e, _)| e == self.open_epoch);
        if self.syncing.is_some() || !waiting {
            return None;
        }
        let epoch = self.open_epoch;
        self.syncing = Some(epoch);
        self.open_epoch += 1;
        Some(epoch)
    }

    /// The sync of `epoch` completed: its records are durable, and the actions that waited only
    /// for them go to `released`, in order.
    pub fn sync_done(&mut self, epoch: u64, released: &mut Vec<Action>) {
        if self.syncing != Some(epoch) {
            return; // a sync from before a crash
        }
        self.syncing = None;
        while self.unsynced.front().is_some_and(|&(e, _)| e <= epoch) {
            let (_, record) = self.unsynced.pop_front().expect("checked");
            self.durable.push(record);
        }
        while self.held.front().is_some_and(|&(e, _)| e <= epoch) {
            released.push(self.held.pop_front().expect("checked").1);
        }
    }

    /// The application installed a snapshot (state transfer, thesis 3.3.7): the deliveries and
    /// checkpoints the core emitted before it and still held here are of instances the snapshot
    /// already holds, and the call for state transfer was answered, so none of them may reach the
    /// application now. Everything else held (messages, timers) still goes out once durable.
    pub fn drop_superseded_by_snapshot(&mut self) {
        self.held.retain(|(_, action)| {
            !matches!(
                action,
                Action::Deliver { .. } | Action::Checkpoint(_) | Action::NeedsStateTransfer { .. }
            )
        });
    }

    /// The process crashed: held actions are never performed; records no completed sync covered
    /// are lost, but for the first `torn_keep(n)` of the `n` that a sync in flight covered.
    pub fn crash(&mut self, torn_keep: impl FnOnce(usize) -> usize) {
        if let Some(epoch) = self.syncing.take() {
            let in_flight = self.unsynced.iter().take_while(|&&(e, _)| e <= epoch).count();
            let kept = torn_keep(in_flight).min(in_flight);
            self.durable.extend(self.unsynced.drain(..kept).map(|(_, r)| r));
        }
        self.unsynced.clear();
        self.held.clear();
    }

    /// The acceptor state a restart reads back.
    pub fn recover(&self) -> AcceptorState {
        let mut state = AcceptorState::default();
        for record in &self.durable {
            state.replay(record.clone());
        }
        state
    }

    /// Records durable so far.
    pub fn durable_records(&self) -> usize {
        self.durable.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::{Msg, Round};

    fn send(rnd: u64) -> Action {
        Action::Send { to: 1, msg: Msg::Nack { rnd: Round(rnd) } }
    }

    fn promise(rnd: u64) -> Action {
        Action::Persist(Durable::Promise { rnd: Round(rnd) })
    }

    #[test]
    fn actions_after_a_record_wait_for_its_sync_and_those_before_do_not() {
        let mut d = Disk::default();
        assert_eq!(d.admit(send(1)), Some(send(1)));
        assert_eq!(d.admit(promise(5)), None);
        assert_eq!(d.admit(send(2)), None);
        let first = d.start_sync().unwrap();
        assert_eq!(d.start_sync(), None, "one sync at a time");
        // Written while the first sync is in flight: the next sync covers it.
        assert_eq!(d.admit(promise(6)), None);
        assert_eq!(d.admit(send(3)), None);
        let mut released = Vec::new();
        d.sync_done(first, &mut released);
        assert_eq!(released, vec![send(2)]);
        assert_eq!(d.recover().rnd, Round(5));
        let second = d.start_sync().unwrap();
        released.clear();
        d.sync_done(second, &mut released);
        assert_eq!(released, vec![send(3)]);
        assert_eq!(d.recover().rnd, Round(6));
        assert_eq!(d.admit(send(4)), Some(send(4)), "nothing waits any more");
    }

    #[test]
    fn an_installed_snapshot_drops_only_what_it_supersedes() {
        let mut d = Disk::default();
        d.admit(promise(1));
        let deliver = Action::Deliver { instance: 3, values: crate::proto::Batch::new(Vec::new()) };
        let checkpoint = Action::Checkpoint(Box::default());
        let call = Action::NeedsStateTransfer { next_instance: 3, trimmed_below: 9 };
        for action in [send(1), deliver, checkpoint, call, send(2)] {
            assert_eq!(d.admit(action), None);
        }
        d.drop_superseded_by_snapshot();
        let mut released = Vec::new();
        let epoch = d.start_sync().unwrap();
        d.sync_done(epoch, &mut released);
        assert_eq!(released, vec![send(1), send(2)]);
    }

    #[test]
    fn a_crash_keeps_what_was_synced_and_a_prefix_of_the_sync_in_flight() {
        let mut d = Disk::default();
        d.admit(promise(1));
        let e = d.start_sync().unwrap();
        d.sync_done(e, &mut Vec::new());
        for r in 2..6 {
            d.admit(promise(r));
        }
        d.start_sync().unwrap();
        d.admit(promise(9)); // not covered by the sync in flight
        d.admit(send(1));
        d.crash(|n| {
            assert_eq!(n, 4);
            2
        });
        assert_eq!(d.durable_records(), 3);
        assert_eq!(d.recover().rnd, Round(3));
        // Nothing of the last incarnation is held or pending.
        assert_eq!(d.start_sync(), None);
        assert_eq!(d.admit(send(2)), Some(send(2)));
    }
}
