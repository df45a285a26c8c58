//! [`DecidedIds`]: the decisions an M-Ring Paxos coordinator's Phase 2A packet carries along with its
//! new proposal.
//!
//! Thesis 3.5.2: "Each packet sent by the coordinator is composed of two parts: one part stores the
//! ids of decided values, and the other stores new proposed values with their unique ids." A
//! decision multicast on its own costs every receiver a datagram and a wake-up for a few dozen
//! bytes; under load the coordinator multicasts a Phase 2A at about the rate it decides, so the
//! decisions of one step ride on the Phase 2A that step sends, and only those no Phase 2A was there
//! for go out alone (see `RingNode::flush`; the node runtime then packs those into as few datagrams
//! as it can). Decisions wait for nothing: they leave in the same step either way.
//!
//! The list is inline and bounded ([`DECIDED_IDS_PER_PACKET_MAX`]) so that a message holding it stays a
//! plain value: building, copying and decoding one allocates nothing.

use super::types::{Instance, Round, Vid};

/// Decisions one Phase 2A carries at most. A step rarely decides more instances than it opens;
/// what does not fit goes out as separate decisions.
pub const DECIDED_IDS_PER_PACKET_MAX: usize = 8;

/// Up to [`DECIDED_IDS_PER_PACKET_MAX`] decisions: instance `i` chose value id `vid`, as a
/// `Msg::Decision` without a value would say.
#[derive(Clone, Copy, Debug, Default)]
pub struct DecidedIds {
    len: u8,
    entries: [(Instance, Vid); DECIDED_IDS_PER_PACKET_MAX],
}

impl DecidedIds {
    /// No decisions.
    pub const NONE: DecidedIds = DecidedIds {
        len: 0,
        entries: [(0, Vid { rnd: Round::ZERO, seq: 0 }); DECIDED_IDS_PER_PACKET_MAX],
    };

    /// Adds one; false (and nothing added) when full.
    pub fn push(&mut self, instance: Instance, vid: Vid) -> bool {
        let Some(slot) = self.entries.get_mut(usize::from(self.len)) else { return false };
        *slot = (instance, vid);
        self.len += 1;
        true
    }

    pub fn len(&self) -> usize {
        usize::from(self.len)
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn is_full(&self) -> bool {
        self.len() == DECIDED_IDS_PER_PACKET_MAX
    }

    /// The decisions, in the order they were added.
    pub fn iter(&self) -> impl Iterator<Item = (Instance, Vid)> + '_ {
        self.entries.iter().take(self.len()).copied()
    }
}

/// Equal when they hold the same decisions in the same order (slots past `len` do not count).
impl PartialEq for DecidedIds {
    fn eq(&self, other: &DecidedIds) -> bool {
        self.iter().eq(other.iter())
    }
}

impl Eq for DecidedIds {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_decisions_in_order_up_to_its_bound() {
        let mut d = DecidedIds::NONE;
        assert!(d.is_empty());
        for i in 0..DECIDED_IDS_PER_PACKET_MAX as u64 {
            assert!(d.push(i, Vid { rnd: Round(7), seq: i + 100 }));
        }
        assert!(d.is_full());
        assert!(!d.push(99, Vid::default()), "a full list refuses");
        assert_eq!(d.len(), DECIDED_IDS_PER_PACKET_MAX);
        let got: Vec<_> = d.iter().collect();
        assert_eq!(got[0], (0, Vid { rnd: Round(7), seq: 100 }));
        assert_eq!(got.last().copied(), Some((7, Vid { rnd: Round(7), seq: 107 })));
        assert_eq!(DecidedIds::default(), DecidedIds::NONE);
    }
}
