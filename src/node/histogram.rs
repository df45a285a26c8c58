//! A latency histogram with fixed buckets allocated once: exact below 1024 µs, then 64 buckets per
//! power of two (under 1.6% error), up to about 2^40 µs. Recording never allocates.
//!
//! Histograms of several nodes merge bucket by bucket ([`Histogram::merge`]); a node process sends
//! its histogram to `ringsmr bench` as its non-empty buckets (serde, [`SparseHistogram`]), which a
//! receiver checks before it trusts them.

use serde::{Deserialize, Serialize};

const LINEAR: u64 = 1024;
const SUB_BUCKETS: u64 = 64;
const OCTAVES: u64 = 31;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "SparseHistogram", into = "SparseHistogram")]
pub struct Histogram {
    counts: Vec<u64>,
    total: u64,
    max: u64,
}

impl Default for Histogram {
    fn default() -> Histogram {
        Histogram { counts: vec![0; (LINEAR + OCTAVES * SUB_BUCKETS) as usize], total: 0, max: 0 }
    }
}

fn bucket(v: u64) -> usize {
    if v < LINEAR {
        return v as usize;
    }
    let octave = 63 - u64::from(v.leading_zeros()); // >= 10
    let sub = (v >> (octave - 6)) & (SUB_BUCKETS - 1);
    let i = LINEAR + (octave - 10).min(OCTAVES - 1) * SUB_BUCKETS + sub;
    i as usize
}

/// The smallest value of bucket `i`.
fn bucket_floor(i: usize) -> u64 {
    let i = i as u64;
    if i < LINEAR {
        return i;
    }
    let octave = (i - LINEAR) / SUB_BUCKETS + 10;
    let sub = (i - LINEAR) % SUB_BUCKETS;
    (1 << octave) | (sub << (octave - 6))
}

impl Histogram {
    pub fn record(&mut self, value_us: u64) {
        self.counts[bucket(value_us)] += 1;
        self.total += 1;
        self.max = self.max.max(value_us);
    }

    pub fn count(&self) -> u64 {
        self.total
    }

    pub fn max(&self) -> u64 {
        self.max
    }

    /// Adds every sample of `other`.
    pub fn merge(&mut self, other: &Histogram) {
        for (mine, theirs) in self.counts.iter_mut().zip(&other.counts) {
            *mine += theirs;
        }
        self.total += other.total;
        self.max = self.max.max(other.max);
    }

    /// The value below which a fraction `q` of the samples fall (bucket floor); 0 when empty.
    pub fn quantile(&self, q: f64) -> u64 {
        if self.total == 0 {
            return 0;
        }
        let rank = ((q * self.total as f64).ceil() as u64).clamp(1, self.total);
        let mut seen = 0;
        for (i, c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return bucket_floor(i).min(self.max);
            }
        }
        self.max
    }
}

/// A histogram as its non-empty buckets: `[bucket index, count]` pairs and the largest sample.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SparseHistogram {
    pub max: u64,
    pub buckets: Vec<(u32, u64)>,
}

impl From<Histogram> for SparseHistogram {
    fn from(h: Histogram) -> SparseHistogram {
        let buckets = h
            .counts
            .iter()
            .enumerate()
            .filter(|&(_, &c)| c > 0)
            .map(|(i, &c)| (i as u32, c))
            .collect();
        SparseHistogram { max: h.max, buckets }
    }
}

impl TryFrom<SparseHistogram> for Histogram {
    type Error = String;

    /// Refuses buckets out of range and totals that overflow: the buckets come from another process.
    fn try_from(s: SparseHistogram) -> Result<Histogram, String> {
        let mut h = Histogram::default();
        for (i, c) in s.buckets {
            let slot = h
                .counts
                .get_mut(i as usize)
                .ok_or_else(|| format!("histogram bucket {i} out of range"))?;
            *slot = slot.checked_add(c).ok_or("histogram bucket count overflows")?;
            h.total = h.total.checked_add(c).ok_or("histogram total overflows")?;
        }
        h.max = s.max;
        Ok(h)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_are_within_two_percent() {
        let mut h = Histogram::default();
        for v in 1..=100_000u64 {
            h.record(v);
        }
        for (q, want) in [(0.5, 50_000.0), (0.99, 99_000.0), (0.999, 99_900.0)] {
            let got = h.quantile(q) as f64;
            assert!((got - want).abs() / want < 0.02, "q{q}: {got} vs {want}");
        }
        assert_eq!(h.quantile(0.0001), 10);
        assert_eq!(h.max(), 100_000);
        for v in [0, 1, 1023, 1024, 1025, 5000, 1 << 20, u64::MAX / 4] {
            assert!(bucket_floor(bucket(v)) <= v, "{v}");
        }
    }

    #[test]
    fn merged_and_serialised_histograms_keep_their_samples() {
        let (mut a, mut b) = (Histogram::default(), Histogram::default());
        for v in [3, 3, 2000, 70_000] {
            a.record(v);
        }
        b.record(5);
        let json = serde_json::to_string(&a).unwrap();
        assert!(json.len() < 100, "only non-empty buckets travel: {json}");
        let back: Histogram = serde_json::from_str(&json).unwrap();
        assert_eq!(back, a);
        a.merge(&b);
        assert_eq!((a.count(), a.max(), a.quantile(0.2)), (5, 70_000, 3));
        for bad in [r#"{"max":1,"buckets":[[99999,1]]}"#, r#"{"max":1,"buckets":[[1,1]],"x":1}"#] {
            assert!(serde_json::from_str::<Histogram>(bad).is_err(), "{bad}");
        }
        let overflow = format!(r#"{{"max":1,"buckets":[[1,{m}],[2,{m}]]}}"#, m = u64::MAX);
        assert!(serde_json::from_str::<Histogram>(&overflow).is_err());
    }
}
