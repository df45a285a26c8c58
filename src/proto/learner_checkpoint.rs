//! A learner's own state at an instance boundary: what, beside the application's state, a learner
//! needs to resume after a restart from where it had applied the stream (thesis 3.3.7: a learner's
//! version, "the largest instance for which it has applied the corresponding decision").
//!
//! That is the version itself and which value ids were delivered, per proposer incarnation: a
//! proposer resends a value it has not seen delivered, so a value can be decided twice, once before
//! the version and once after, and a learner that forgot the first would deliver it again
//! (`dedup`). With `NodeConfig::checkpoint_interval_instances` the core emits one of these every so
//! many instances, right after the deliveries it follows ([`Action::Checkpoint`](super::Action)):
//! the application stores it with its own state taken at the same point, and a restarted process
//! hands it back to [`RingNode::resume_learner`](super::RingNode::resume_learner).
//!
//! ```text
//! checkpoint := next_instance u64 | incarnations u32 | incarnation* | skipped_extra u64
//! incarnation := proposer u16 | incarnation u32 | below u64 | above u32 | seq u64 * above
//! ```
//!
//! `skipped_extra` (Multi-Ring Paxos: the logical positions the skip instances delivered took up
//! beyond one each, `proto::skip`) came later: a checkpoint that ends before it was written without it, and reads
//! as 0.

use super::types::{Instance, NodeId};

/// Which values of one proposer incarnation were delivered: every seq below `below`, and `above`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeliveredSeqs {
    pub proposer: NodeId,
    pub incarnation: u32,
    pub below: u64,
    pub above: Vec<u64>,
}

/// See the module docs.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct LearnerCheckpoint {
    /// Every instance below this one was delivered, and nothing above it.
    pub next_instance: Instance,
    /// Sorted by proposer and incarnation.
    pub delivered: Vec<DeliveredSeqs>,
    /// The logical position of `next_instance` less `next_instance` (see the module docs).
    pub skipped_extra: u64,
}

/// Bytes that do not hold a checkpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("not a learner checkpoint: {0}")]
pub struct BadCheckpoint(&'static str);

impl LearnerCheckpoint {
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.next_instance.to_le_bytes());
        out.extend_from_slice(&(self.delivered.len() as u32).to_le_bytes());
        for d in &self.delivered {
            out.extend_from_slice(&d.proposer.to_le_bytes());
            out.extend_from_slice(&d.incarnation.to_le_bytes());
            out.extend_from_slice(&d.below.to_le_bytes());
            out.extend_from_slice(&(d.above.len() as u32).to_le_bytes());
            for seq in &d.above {
                out.extend_from_slice(&seq.to_le_bytes());
            }
        }
        out.extend_from_slice(&self.skipped_extra.to_le_bytes());
    }

    pub fn decode(buf: &[u8]) -> Result<LearnerCheckpoint, BadCheckpoint> {
        let mut r = Reader(buf);
        let next_instance = r.u64()?;
        let n = r.u32()?;
        // Every entry takes at least 18 bytes: a count beyond what is left is damage, and must not
        // make us reserve memory for it.
        if n as usize > r.0.len() / 18 {
            return Err(BadCheckpoint("more proposer incarnations than bytes"));
        }
        let mut delivered = Vec::with_capacity(n as usize);
        for _ in 0..n {
            let proposer = u16::from_le_bytes(r.take(2)?.try_into().expect("2 bytes"));
            let incarnation = r.u32()?;
            let below = r.u64()?;
            let k = r.u32()? as usize;
            if k > r.0.len() / 8 {
                return Err(BadCheckpoint("more delivered seqs than bytes"));
            }
            let above = (0..k).map(|_| r.u64()).collect::<Result<Vec<_>, _>>()?;
            delivered.push(DeliveredSeqs { proposer, incarnation, below, above });
        }
        let skipped_extra = if r.0.is_empty() { 0 } else { r.u64()? };
        if !r.0.is_empty() {
            return Err(BadCheckpoint("bytes after the last entry"));
        }
        Ok(LearnerCheckpoint { next_instance, delivered, skipped_extra })
    }
}

struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], BadCheckpoint> {
        if self.0.len() < n {
            return Err(BadCheckpoint("cut short"));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn u32(&mut self) -> Result<u32, BadCheckpoint> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().expect("4 bytes")))
    }

    fn u64(&mut self) -> Result<u64, BadCheckpoint> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().expect("8 bytes")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_checkpoint_reads_back_and_damage_is_refused() {
        let cp = LearnerCheckpoint {
            next_instance: 1234,
            delivered: vec![
                DeliveredSeqs { proposer: 0, incarnation: 7, below: 99, above: vec![101, 105] },
                DeliveredSeqs { proposer: 2, incarnation: 1, below: 0, above: vec![] },
            ],
            skipped_extra: 77,
        };
        let mut bytes = Vec::new();
        cp.encode(&mut bytes);
        assert_eq!(LearnerCheckpoint::decode(&bytes), Ok(cp.clone()));
        let without_skips = bytes.len() - 8;
        for len in (0..bytes.len()).filter(|&len| len != without_skips) {
            assert!(LearnerCheckpoint::decode(&bytes[..len]).is_err(), "cut at {len}");
        }
        // Written before skip instances existed: it reads, with nothing skipped.
        let old = LearnerCheckpoint { skipped_extra: 0, ..cp };
        assert_eq!(LearnerCheckpoint::decode(&bytes[..without_skips]), Ok(old));
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(LearnerCheckpoint::decode(&longer).is_err());
        // A count that claims more entries than the bytes could hold reserves nothing.
        let mut huge = 5u64.to_le_bytes().to_vec();
        huge.extend_from_slice(&u32::MAX.to_le_bytes());
        assert!(LearnerCheckpoint::decode(&huge).is_err());
    }
}
