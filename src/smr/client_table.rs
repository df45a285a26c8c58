//! Exactly-once execution: the replicas' per-client table of sequence numbers and last replies.
//!
//! A client may have up to [`WINDOW_MAX`] commands outstanding and retries a command whose reply
//! is late, possibly through another replica, so a command can be delivered more than once and
//! its copies out of order with the client's other commands. Each replica therefore keeps, per
//! client, which sequence numbers of the window it has decided and the reply of each: a copy
//! already decided is not executed again, and its reply is sent again. Every request carries
//! `acked_below`, the lowest sequence number the client still waits for; what is below it the
//! client has, so the table forgets it (and ignores late copies of it).
//!
//! A table changes only when a delivered request is handled, in delivery order, so every replica
//! holds the same table at the same point of the order (it is part of the replicated state, and
//! of snapshots). Under P-SMR each worker keeps the table of the commands it executes (its lane's,
//! and the lowest lane also g_all's): a command always reaches the same lane, so no table is
//! shared between threads.

use std::collections::HashMap;

use thiserror::Error;

use super::byte_reader::ByteReader;
use super::request::{ClientId, Status};

/// The most commands a client may have outstanding.
pub const WINDOW_MAX: u64 = 64;
const SLOTS: usize = WINDOW_MAX as usize;

/// What to do with a delivered request.
#[derive(Debug, PartialEq, Eq)]
pub enum Admission<'a> {
    /// Not decided before: execute it, then [`ClientTable::record`] the outcome.
    Execute,
    /// Decided before: send this reply again.
    Duplicate(Status, &'a [u8]),
    /// Below what the client acknowledged: it has the reply; drop the copy.
    Stale,
    /// Past the client's window: refuse it.
    OutsideWindow,
}

#[derive(Clone, Debug, Default)]
struct Slot {
    status: Option<Status>,
    body: Vec<u8>,
}

#[derive(Clone, Debug)]
struct Entry {
    acked_below: u64,
    /// Bit i: `acked_below + i` is decided.
    decided: u64,
    /// Indexed by sequence number modulo the window.
    slots: Vec<Slot>,
}

impl Entry {
    fn new() -> Entry {
        Entry { acked_below: 0, decided: 0, slots: vec![Slot::default(); SLOTS] }
    }

    fn acknowledge(&mut self, acked_below: u64) {
        if acked_below <= self.acked_below {
            return;
        }
        let shift = acked_below - self.acked_below;
        self.decided = if shift >= WINDOW_MAX { 0 } else { self.decided >> shift };
        self.acked_below = acked_below;
    }
}

/// A snapshot of a table that cannot be read.
#[derive(Debug, Error, PartialEq, Eq)]
#[error("client table snapshot: {0}")]
pub struct TableSnapshotError(&'static str);

/// See the module docs.
#[derive(Clone, Debug, Default)]
pub struct ClientTable {
    clients: HashMap<ClientId, Entry, foldhash::fast::FixedState>,
}

impl ClientTable {
    pub fn new() -> ClientTable {
        ClientTable::default()
    }

    /// Clients seen.
    pub fn clients(&self) -> usize {
        self.clients.len()
    }

    /// Decides what to do with request `seq` of `client`, carrying `acked_below`.
    pub fn admit(&mut self, client: ClientId, acked_below: u64, seq: u64) -> Admission<'_> {
        let e = self.clients.entry(client).or_insert_with(Entry::new);
        e.acknowledge(acked_below);
        if seq < e.acked_below {
            return Admission::Stale;
        }
        let offset = seq - e.acked_below;
        if offset >= WINDOW_MAX {
            return Admission::OutsideWindow;
        }
        if e.decided & (1 << offset) != 0 {
            let slot = &e.slots[(seq % WINDOW_MAX) as usize];
            let status = slot.status.expect("a decided request has its outcome");
            return Admission::Duplicate(status, &slot.body);
        }
        Admission::Execute
    }

    /// Records the outcome of a request [`Self::admit`] said to execute. Reuses the slot's buffer:
    /// a warm table allocates nothing.
    pub fn record(&mut self, client: ClientId, seq: u64, status: Status, body: &[u8]) {
        let e = self.clients.get_mut(&client).expect("admitted before recorded");
        let offset = seq - e.acked_below;
        assert!(
            offset < WINDOW_MAX,
            "recorded request {seq} lies in the window it was admitted in"
        );
        e.decided |= 1 << offset;
        let slot = &mut e.slots[(seq % WINDOW_MAX) as usize];
        slot.status = Some(status);
        slot.body.clear();
        slot.body.extend_from_slice(body);
    }

    /// Appends the table to `out`: clients in id order, each with its window and the replies in it.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let mut ids: Vec<_> = self.clients.keys().copied().collect();
        ids.sort_unstable();
        out.extend_from_slice(&(ids.len() as u64).to_le_bytes());
        for id in ids {
            let e = &self.clients[&id];
            out.extend_from_slice(&id.to_le_bytes());
            out.extend_from_slice(&e.acked_below.to_le_bytes());
            out.extend_from_slice(&e.decided.to_le_bytes());
            for offset in 0..WINDOW_MAX {
                if e.decided & (1 << offset) == 0 {
                    continue;
                }
                let slot = &e.slots[((e.acked_below + offset) % WINDOW_MAX) as usize];
                out.push(slot.status.expect("decided") as u8);
                out.extend_from_slice(&(slot.body.len() as u32).to_le_bytes());
                out.extend_from_slice(&slot.body);
            }
        }
    }

    /// Reads what [`Self::encode`] wrote, returning the table and the bytes it took.
    pub fn decode(bytes: &[u8]) -> Result<(ClientTable, usize), TableSnapshotError> {
        let mut r = TableReader(ByteReader::new(bytes));
        let n = r.u64()?;
        let mut table = ClientTable::new();
        for _ in 0..n {
            let id = r.u64()?;
            let mut e = Entry::new();
            e.acked_below = r.u64()?;
            e.decided = r.u64()?;
            for offset in 0..WINDOW_MAX {
                if e.decided & (1 << offset) == 0 {
                    continue;
                }
                let status =
                    Status::from_u8(r.u8()?).ok_or(TableSnapshotError("unknown status"))?;
                let len = r.u32()? as usize;
                let slot = &mut e.slots[((e.acked_below + offset) % WINDOW_MAX) as usize];
                slot.status = Some(status);
                slot.body = r.take(len)?.to_vec();
            }
            if table.clients.insert(id, e).is_some() {
                return Err(TableSnapshotError("a client appears twice"));
            }
        }
        Ok((table, r.0.consumed()))
    }

    /// Order-independent digest of the table, for replicas to compare.
    pub fn digest(&self) -> u64 {
        let mut out = Vec::new();
        self.encode(&mut out);
        out.chunks(8).fold(0x9E37_79B9_7F4A_7C15u64, |h, c| {
            let mut w = [0u8; 8];
            w[..c.len()].copy_from_slice(c);
            (h ^ u64::from_le_bytes(w)).wrapping_mul(0x1000_0000_01B3).rotate_left(29)
        })
    }
}

/// [`ByteReader`] with this module's error.
struct TableReader<'a>(ByteReader<'a>);

impl<'a> TableReader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], TableSnapshotError> {
        self.0.take(n).map_err(TableSnapshotError)
    }
    fn u8(&mut self) -> Result<u8, TableSnapshotError> {
        self.0.u8().map_err(TableSnapshotError)
    }
    fn u32(&mut self) -> Result<u32, TableSnapshotError> {
        self.0.u32().map_err(TableSnapshotError)
    }
    fn u64(&mut self) -> Result<u64, TableSnapshotError> {
        self.0.u64().map_err(TableSnapshotError)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_retried_command_runs_once_and_gets_its_reply_again() {
        let mut t = ClientTable::new();
        assert_eq!(t.admit(1, 0, 0), Admission::Execute);
        t.record(1, 0, Status::Executed, b"r0");
        assert_eq!(t.admit(1, 0, 1), Admission::Execute);
        t.record(1, 1, Status::Conflict, b"");
        assert_eq!(t.admit(1, 0, 0), Admission::Duplicate(Status::Executed, b"r0"));
        assert_eq!(t.admit(1, 0, 1), Admission::Duplicate(Status::Conflict, b""));
        // Another client's numbers are its own.
        assert_eq!(t.admit(2, 0, 0), Admission::Execute);
    }

    #[test]
    fn out_of_order_copies_within_the_window_are_each_decided_once() {
        let mut t = ClientTable::new();
        for seq in [5, 3, 63, 0] {
            assert_eq!(t.admit(9, 0, seq), Admission::Execute);
            t.record(9, seq, Status::Executed, &seq.to_le_bytes());
        }
        assert_eq!(t.admit(9, 0, 64), Admission::OutsideWindow);
        assert_eq!(t.admit(9, 0, 4), Admission::Execute, "4 was never decided");
        let three = 3u64.to_le_bytes();
        assert_eq!(t.admit(9, 0, 3), Admission::Duplicate(Status::Executed, &three[..]));
    }

    #[test]
    fn acknowledged_requests_are_forgotten_and_late_copies_dropped() {
        let mut t = ClientTable::new();
        for seq in 0..10 {
            assert_eq!(t.admit(4, 0, seq), Admission::Execute);
            t.record(4, seq, Status::Executed, b"x");
        }
        // The client has every reply below 8.
        assert_eq!(t.admit(4, 8, 3), Admission::Stale);
        let x = &b"x"[..];
        assert_eq!(t.admit(4, 8, 9), Admission::Duplicate(Status::Executed, x));
        // The window is now 8..72.
        assert_eq!(t.admit(4, 8, 71), Admission::Execute);
        assert_eq!(t.admit(4, 8, 72), Admission::OutsideWindow);
        // An older acknowledgement never moves the window back.
        assert_eq!(t.admit(4, 2, 5), Admission::Stale);
        // A jump past the whole window forgets everything.
        assert_eq!(t.admit(4, 1000, 1000), Admission::Execute);
    }

    #[test]
    fn snapshots_round_trip_and_refuse_damage() {
        let mut t = ClientTable::new();
        for (c, seq, body) in [(1u64, 0u64, &b"a"[..]), (1, 2, b"bc"), (7, 40, b"")] {
            t.admit(c, 0, seq);
            t.record(c, seq, Status::Executed, body);
        }
        let mut out = Vec::new();
        t.encode(&mut out);
        let (mut back, used) = ClientTable::decode(&out).unwrap();
        assert_eq!(used, out.len());
        assert_eq!(back.digest(), t.digest());
        assert_eq!(back.admit(1, 0, 2), Admission::Duplicate(Status::Executed, b"bc"));
        assert!(ClientTable::decode(&out[..out.len() - 1]).is_err());
        let mut other = t.clone();
        other.admit(1, 0, 3);
        other.record(1, 3, Status::Executed, b"");
        assert_ne!(other.digest(), t.digest());
    }
}
