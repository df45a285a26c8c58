//! A running checksum of a delivered stream, sensitive to order: two learners that delivered the same
//! values in the same order have equal checksums (FNV-1a, 64 bit, over instance, value id and
//! payload of each delivery in turn).

use super::handle::Delivery;

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StreamChecksum {
    hash: u64,
    pub values: u64,
}

impl Default for StreamChecksum {
    fn default() -> StreamChecksum {
        StreamChecksum { hash: FNV_OFFSET, values: 0 }
    }
}

impl StreamChecksum {
    fn mix(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.hash = (self.hash ^ u64::from(b)).wrapping_mul(FNV_PRIME);
        }
    }

    pub fn add(&mut self, d: &Delivery) {
        self.mix(&d.instance.to_le_bytes());
        self.mix(&d.id.proposer.to_le_bytes());
        self.mix(&d.id.incarnation.to_le_bytes());
        self.mix(&d.id.seq.to_le_bytes());
        self.mix(&(d.payload.len() as u64).to_le_bytes());
        self.mix(&d.payload);
        self.values += 1;
    }

    pub fn value(&self) -> u64 {
        self.hash
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::types::ValueId;
    use bytes::Bytes;

    fn d(instance: u64, seq: u64) -> Delivery {
        Delivery {
            instance,
            id: ValueId { proposer: 1, incarnation: 0, seq },
            payload: Bytes::from_static(b"x"),
        }
    }

    #[test]
    fn order_matters() {
        let (mut a, mut b) = (StreamChecksum::default(), StreamChecksum::default());
        a.add(&d(0, 1));
        a.add(&d(0, 2));
        b.add(&d(0, 2));
        b.add(&d(0, 1));
        assert_ne!(a.value(), b.value());
        let mut c = StreamChecksum::default();
        c.add(&d(0, 1));
        c.add(&d(0, 2));
        assert_eq!(a, c);
    }
}
