//! [`ProposalStamps`]: when each of a proposer's values in flight was proposed, by sequence number.
//!
//! The benchmark measures latency from `propose` to the delivery of the value at its proposer
//! (DESIGN "Benchmarks"). Payloads once carried their proposal time, which cost the load thread
//! twice: writing a fresh payload per value made each one a counted slice of a shared chunk, whose
//! count the load thread and the node threads then bounced between their caches (a tenth of a 1 KB
//! U-Ring run's CPU samples went to that, writing the payloads and reading the stamps back); and by
//! the time a value came back around the ring its bytes had left this thread's cache, so reading
//! its stamp cost a miss per value. `Node::propose` returns the id a value will be delivered under,
//! so the stamps are kept here instead, keyed by sequence number, and payloads are static bytes
//! that cost nothing to hand over.
//!
//! The table is a ring indexed by sequence number, sized for twice the values a proposer keeps in
//! flight; a value delivered so late that a newer one needs its slot moves to a small map, so every
//! value of a run is timed, the slow ones too.

use std::collections::HashMap;

/// Stamps of the values in flight.
#[derive(Debug, Default)]
pub struct ProposalStamps {
    /// `(seq, stamp_ns)`; `seq` is [`EMPTY_SEQ`] in a slot that holds nothing (yet or any more).
    slots: Vec<(u64, u64)>,
    /// `slots.len() - 1`; the length is a power of two.
    mask: u64,
    /// Values still in flight whose slot a newer value took. Sized for every value in flight, so
    /// it never grows while a run goes on.
    displaced: HashMap<u64, u64>,
}

/// No value has this sequence number: a proposer would need 2^64 proposals to reach it.
const EMPTY_SEQ: u64 = u64::MAX;

impl ProposalStamps {
    /// Empties the table and makes room for `in_flight` values proposed and not delivered (the
    /// caller proposes no more than that). Call it before a run: it allocates.
    pub fn reset(&mut self, in_flight: usize) {
        let len = in_flight.saturating_mul(2).max(2).next_power_of_two();
        if self.slots.len() < len {
            self.slots = vec![(EMPTY_SEQ, 0); len];
            self.mask = len as u64 - 1;
        } else {
            self.slots.fill((EMPTY_SEQ, 0));
        }
        self.displaced.clear();
        self.displaced.reserve(in_flight);
    }

    /// Value `seq` was proposed at `stamp_ns`.
    pub fn insert(&mut self, seq: u64, stamp_ns: u64) {
        let Some(slot) = self.slots.get_mut((seq & self.mask) as usize) else { return };
        if slot.0 != EMPTY_SEQ {
            self.displaced.insert(slot.0, slot.1);
        }
        *slot = (seq, stamp_ns);
    }

    /// The stamp of value `seq`, which is forgotten (a value is delivered once); `None` for a value
    /// not proposed since the last [`reset`](Self::reset).
    pub fn take(&mut self, seq: u64) -> Option<u64> {
        match self.slots.get_mut((seq & self.mask) as usize) {
            Some(slot) if slot.0 == seq => {
                slot.0 = EMPTY_SEQ;
                Some(slot.1)
            }
            _ => self.displaced.remove(&seq),
        }
    }

    /// Stamps held (values proposed and not delivered).
    #[cfg(test)]
    fn len(&self) -> usize {
        self.slots.iter().filter(|s| s.0 != EMPTY_SEQ).count() + self.displaced.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_stamp_is_found_once_even_after_its_slot_was_taken() {
        let mut s = ProposalStamps::default();
        assert_eq!(s.take(0), None, "an empty table holds nothing");
        s.reset(3);
        // Room for twice the values in flight, rounded up to a power of two.
        assert_eq!(s.slots.len(), 8);
        for seq in 0..8 {
            s.insert(seq, 100 + seq);
        }
        assert_eq!(s.take(3), Some(103));
        assert_eq!(s.take(3), None, "taken already");
        assert_eq!(s.take(8), None, "never proposed");
        // Seq 9 takes seq 1's slot while seq 1 is still in flight.
        s.insert(9, 109);
        assert_eq!(s.len(), 8);
        assert_eq!(s.take(9), Some(109));
        assert_eq!(s.take(1), Some(101), "a late value is still timed");
        assert_eq!(s.len(), 6);
    }

    #[test]
    fn reset_forgets_the_last_run() {
        let mut s = ProposalStamps::default();
        s.reset(4);
        s.insert(5, 55);
        s.insert(13, 66);
        s.reset(2);
        assert_eq!((s.take(5), s.take(13), s.len()), (None, None, 0));
        s.reset(100);
        assert_eq!(s.slots.len(), 256);
        s.insert(300, 1);
        assert_eq!(s.take(300), Some(1));
    }
}
