//! The proposals a U-Ring Paxos process has seen travel the ring, kept until the instance that orders
//! them names them (thesis 3.5.4).
//!
//! In U-Ring Paxos a proposal goes once around the ring, from its proposer to the proposer's
//! predecessor; the coordinator, which it passes, orders it by its [`ProposalId`], and Phase 2A and the
//! decision carry that id only (see [`super::msg::Carried`]). Every value thus crosses n−1 links, as
//! in the raw TCP ring it is measured against, instead of travelling the ring to the coordinator and
//! then again with Phase 2A and the decision.
//!
//! The store is bounded in bytes and in proposals, and a proposal nobody named within
//! `expire_after_us` is forgotten: its proposer resends it by then (`proposal_retry_us`). Forgetting
//! one is always safe: an acceptor that cannot find a proposal does not vote, the coordinator resends
//! Phase 2A with the value, and a learner that cannot find it treats the instance as a gap (3.3.4).
//!
//! The table starts with room for [`ENTRIES_RESERVED`] proposals rather than for its bound, and
//! grows (once, to a new peak, never shrinking) only past them. It was allocated for the bound (every
//! proposer's whole pending allowance, one value per proposal: 196,608 entries, about 19 MB for three
//! nodes) while fewer than 64 proposals were held at once in a 1 KB U-Ring run at full speed; every
//! insert, lookup and removal then missed the cache, 4.4% of all CPU samples, which a table that
//! fits the cache halves.

// Keyed by ids a peer chose: foldhash is seeded per process (so crafted ids cannot aim at one
// bucket) and, unlike SipHash, cheap enough for one lookup per proposal on every process.
use foldhash::{HashMap, HashMapExt};

use super::types::{Batch, ProposalId, Tick};

/// Proposals the table has room for from the start: a few times the most held at once at full
/// speed, in about 150 KB.
pub const ENTRIES_RESERVED: usize = 1024;

#[derive(Debug)]
struct Stored {
    batch: Batch,
    stored_at: Tick,
}

#[derive(Debug)]
pub struct ProposalStore {
    entries: HashMap<ProposalId, Stored>,
    bytes: usize,
    bytes_max: usize,
    entries_max: usize,
}

impl ProposalStore {
    /// A store for `bytes_max` bytes in up to `entries_max` proposals.
    pub fn new(bytes_max: usize, entries_max: usize) -> ProposalStore {
        ProposalStore {
            entries: HashMap::with_capacity(entries_max.min(ENTRIES_RESERVED)),
            bytes: 0,
            bytes_max,
            entries_max,
        }
    }

    /// Keeps `batch` under its proposal id; false (and nothing kept) when it is empty or the store is
    /// full. A proposal seen again (its proposer resent it) is kept once, with the later time.
    pub fn insert(&mut self, batch: &Batch, now: Tick) -> bool {
        let Some(id) = batch.proposal_id() else { return false };
        if let Some(s) = self.entries.get_mut(&id) {
            s.stored_at = now;
            return true;
        }
        if self.bytes + batch.bytes() > self.bytes_max || self.entries.len() >= self.entries_max {
            return false;
        }
        self.bytes += batch.bytes();
        self.entries.insert(id, Stored { batch: batch.clone(), stored_at: now });
        true
    }

    /// Removes and returns the proposal `id`.
    pub fn take(&mut self, id: &ProposalId) -> Option<Batch> {
        let s = self.entries.remove(id)?;
        self.bytes -= s.batch.bytes();
        Some(s.batch)
    }

    /// Forgets proposals stored before `now - expire_after_us`; returns how many.
    pub fn expire(&mut self, now: Tick, expire_after_us: Tick) -> usize {
        let before = self.entries.len();
        let bytes = &mut self.bytes;
        self.entries.retain(|_, s| {
            let keep = s.stored_at + expire_after_us > now;
            if !keep {
                *bytes -= s.batch.bytes();
            }
            keep
        });
        before - self.entries.len()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::types::{Value, ValueId};
    use bytes::Bytes;

    fn batch(proposer: u16, first_seq: u64, count: u64) -> Batch {
        Batch::new(
            (first_seq..first_seq + count)
                .map(|seq| Value {
                    id: ValueId { proposer, incarnation: 1, seq },
                    payload: Bytes::from(vec![7u8; 100]),
                })
                .collect(),
        )
    }

    #[test]
    fn a_proposal_is_found_by_its_id_once() {
        let mut s = ProposalStore::new(1 << 20, 16);
        let b = batch(2, 10, 3);
        assert!(s.insert(&b, 0));
        assert!(s.insert(&b, 5), "a resent proposal is kept once");
        assert_eq!(s.len(), 1);
        let id = b.proposal_id().unwrap();
        assert_eq!(s.take(&id), Some(b));
        assert_eq!(s.take(&id), None);
        assert_eq!(s.bytes(), 0);
    }

    #[test]
    fn batches_that_differ_in_length_or_proposer_are_different_proposals() {
        let mut s = ProposalStore::new(1 << 20, 16);
        let (a, b, c) = (batch(1, 0, 2), batch(1, 0, 3), batch(2, 0, 2));
        for x in [&a, &b, &c] {
            assert!(s.insert(x, 0));
        }
        assert_eq!(s.len(), 3);
        assert_eq!(s.take(&b.proposal_id().unwrap()), Some(b));
    }

    #[test]
    fn the_store_is_bounded_and_forgets_what_nobody_named() {
        let one = batch(1, 0, 1).bytes();
        let mut s = ProposalStore::new(2 * one, 16);
        assert!(s.insert(&batch(1, 0, 1), 0));
        assert!(s.insert(&batch(1, 1, 1), 10));
        assert!(!s.insert(&batch(1, 2, 1), 10), "full");
        assert!(!s.insert(&Batch::empty(), 10), "a no-op is no proposal");
        assert_eq!(s.expire(100, 95), 1, "only the one stored at 0 is older than 95 us");
        assert_eq!((s.len(), s.bytes()), (1, one));
        assert!(s.insert(&batch(1, 2, 1), 100));
        let mut few = ProposalStore::new(1 << 20, 2);
        assert!(few.insert(&batch(1, 0, 1), 0) && few.insert(&batch(1, 1, 1), 0));
        assert!(!few.insert(&batch(1, 2, 1), 0), "bounded in proposals too");
    }

    #[test]
    fn the_table_grows_past_what_it_reserved_up_to_the_bound() {
        let max = ENTRIES_RESERVED + 10;
        let mut s = ProposalStore::new(usize::MAX, max);
        for seq in 0..max as u64 {
            assert!(s.insert(&batch(1, seq, 1), 0), "proposal {seq} of {max}");
        }
        assert!(!s.insert(&batch(1, max as u64, 1), 0), "bounded");
        assert_eq!(s.len(), max);
    }
}
