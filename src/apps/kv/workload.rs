//! The store's benchmark workloads (thesis 6.5.3–6.5.7): which commands clients issue, and on
//! which keys.
//!
//! Keys: the store is preloaded with `keys` keys, the even numbers `0, 2, ..., 2·keys − 2`, so
//! the key space is `2·keys` and the workers' key ranges split it evenly. Reads and updates name
//! preloaded (even) keys; inserts and deletes name odd keys, which come and go, so every insert
//! and delete changes the tree (about half the odd keys are present once inserts and deletes have
//! run a while) and the tree's size stays near where it started.
//!
//! Key choice is uniform or Zipfian (exponent 1 by default, as in 6.5.7). Zipf ranks are spread
//! over the key space by a fixed permutation, so the hottest keys do not all fall in one worker's
//! range; what remains uneven is the skew itself.

use super::command::KvOp;
pub use crate::smr::splitmix::SplitMix64;

/// Which commands.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Mix {
    /// Reads only: independent commands (Fig. 6.3).
    Read,
    /// Updates only (independent unless on one key).
    Update,
    /// Half reads, half updates (Fig. 6.7's skewed workload).
    ReadUpdate,
    /// Inserts and deletes only: dependent commands (Fig. 6.4).
    Insert,
    /// This percentage of inserts and deletes, the rest reads (Fig. 6.5).
    Mixed { dependent_percent: f64 },
    /// This percentage of inserts and deletes, the rest half reads, half updates: every command
    /// of the store (the fault tests' workload).
    All { dependent_percent: f64 },
}

impl Mix {
    /// `read`, `update`, `read-update`, `insert`, `mixed:<percent dependent>` or
    /// `all:<percent dependent>`.
    pub fn parse(s: &str) -> Result<Mix, String> {
        Ok(match s {
            "read" => Mix::Read,
            "update" => Mix::Update,
            "read-update" => Mix::ReadUpdate,
            "insert" => Mix::Insert,
            _ => {
                let (all, p) = match (s.strip_prefix("mixed:"), s.strip_prefix("all:")) {
                    (Some(p), _) => (false, p),
                    (_, Some(p)) => (true, p),
                    _ => {
                        return Err(format!(
                            "workload `{s}`: expected read, update, read-update, insert, \
                             mixed:<percent> or all:<percent>"
                        ));
                    }
                };
                let dependent_percent: f64 =
                    p.parse().map_err(|_| format!("workload `{s}`: `{p}` is not a percentage"))?;
                if !(0.0..=100.0).contains(&dependent_percent) {
                    return Err(format!("workload `{s}`: the percentage must be within 0..=100"));
                }
                if all { Mix::All { dependent_percent } } else { Mix::Mixed { dependent_percent } }
            }
        })
    }
}

/// How keys are chosen.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum KeyDist {
    Uniform,
    Zipf { exponent: f64 },
}

impl KeyDist {
    /// `uniform`, `zipf` (exponent 1) or `zipf:<exponent>`.
    pub fn parse(s: &str) -> Result<KeyDist, String> {
        match s {
            "uniform" => Ok(KeyDist::Uniform),
            "zipf" => Ok(KeyDist::Zipf { exponent: 1.0 }),
            _ => match s.strip_prefix("zipf:").map(str::parse::<f64>) {
                Some(Ok(exponent)) if exponent > 0.0 => Ok(KeyDist::Zipf { exponent }),
                _ => Err(format!("keys `{s}`: expected uniform, zipf or zipf:<exponent > 0>")),
            },
        }
    }
}

/// The key space a store preloaded with `keys` keys spans (module docs).
pub fn key_space(keys: u64) -> u64 {
    keys.max(1) * 2
}

/// Zipf-distributed ranks in `1..=n` by rejection-inversion (Hörmann and Derflinger, 1996):
/// constant time and memory per sample, whatever n.
#[derive(Clone, Debug)]
pub struct Zipf {
    n: f64,
    exponent: f64,
    h_x1: f64,
    h_n: f64,
    s: f64,
}

impl Zipf {
    pub fn new(n: u64, exponent: f64) -> Zipf {
        assert!(n >= 1 && exponent > 0.0, "Zipf over at least one rank, exponent > 0");
        let mut z = Zipf { n: n as f64, exponent, h_x1: 0.0, h_n: 0.0, s: 0.0 };
        z.h_x1 = z.h_integral(1.5) - 1.0;
        z.h_n = z.h_integral(z.n + 0.5);
        z.s = 2.0 - z.h_integral_inverse(z.h_integral(2.5) - z.h(2.0));
        z
    }

    /// x^-exponent.
    fn h(&self, x: f64) -> f64 {
        (-self.exponent * x.ln()).exp()
    }

    /// The integral of `h` from 1 to x (up to a constant).
    fn h_integral(&self, x: f64) -> f64 {
        let log_x = x.ln();
        let t = (1.0 - self.exponent) * log_x;
        // (e^t − 1) / t · log x, which tends to log x as the exponent tends to 1.
        if t.abs() < 1e-8 { log_x * (1.0 + t / 2.0) } else { t.exp_m1() / t * log_x }
    }

    fn h_integral_inverse(&self, x: f64) -> f64 {
        let t = (x * (1.0 - self.exponent)).max(-1.0);
        // e^(log(1 + t) / t · x), which tends to e^x as t tends to 0.
        if t.abs() < 1e-8 { (x * (1.0 - t / 2.0)).exp() } else { (t.ln_1p() / t * x).exp() }
    }

    pub fn sample(&self, rng: &mut SplitMix64) -> u64 {
        loop {
            let u = self.h_n + rng.unit() * (self.h_x1 - self.h_n);
            let x = self.h_integral_inverse(u);
            let k = x.round().clamp(1.0, self.n);
            if k - x <= self.s || u >= self.h_integral(k + 0.5) - self.h(k) {
                return k as u64;
            }
        }
    }
}

/// A client's stream of commands for a workload.
#[derive(Clone, Debug)]
pub struct OpStream {
    mix: Mix,
    keys: u64,
    zipf: Option<Zipf>,
    /// A multiplier coprime with `keys`: rank r goes to index r · spread mod keys.
    spread: u64,
    rng: SplitMix64,
    inserted: bool,
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 { a } else { gcd(b, a % b) }
}

impl OpStream {
    pub fn new(mix: Mix, dist: KeyDist, keys: u64, seed: u64) -> OpStream {
        let keys = keys.max(1);
        let zipf = match dist {
            KeyDist::Uniform => None,
            KeyDist::Zipf { exponent } => Some(Zipf::new(keys, exponent)),
        };
        let mut spread = (0x9E37_79B9 % keys.max(2)) | 1;
        while gcd(spread, keys) != 1 {
            spread += 1;
        }
        OpStream { mix, keys, zipf, spread, rng: SplitMix64::new(seed), inserted: false }
    }

    /// An index in `0..keys` by the key distribution.
    fn index(&mut self) -> u64 {
        match &self.zipf {
            None => self.rng.below(self.keys),
            Some(z) => {
                let rank = z.sample(&mut self.rng) - 1;
                ((u128::from(rank) * u128::from(self.spread)) % u128::from(self.keys)) as u64
            }
        }
    }

    fn dependent(&mut self) -> KvOp {
        // Inserts and deletes alternate, so odd keys come and go at the same rate.
        self.inserted = !self.inserted;
        let key = 2 * self.index() + 1;
        if self.inserted { KvOp::Insert(key, self.rng.next_u64()) } else { KvOp::Delete(key) }
    }

    pub fn next_op(&mut self) -> KvOp {
        match self.mix {
            Mix::Read => KvOp::Read(2 * self.index()),
            Mix::Update => KvOp::Update(2 * self.index(), self.rng.next_u64()),
            Mix::ReadUpdate => {
                let key = 2 * self.index();
                if self.rng.below(2) == 0 {
                    KvOp::Read(key)
                } else {
                    KvOp::Update(key, self.rng.next_u64())
                }
            }
            Mix::Insert => self.dependent(),
            Mix::Mixed { dependent_percent } => {
                if self.rng.unit() * 100.0 < dependent_percent {
                    self.dependent()
                } else {
                    KvOp::Read(2 * self.index())
                }
            }
            Mix::All { dependent_percent } => {
                if self.rng.unit() * 100.0 < dependent_percent {
                    self.dependent()
                } else {
                    let key = 2 * self.index();
                    if self.rng.below(2) == 0 {
                        KvOp::Read(key)
                    } else {
                        KvOp::Update(key, self.rng.next_u64())
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workloads_parse_and_refuse_naming_the_input() {
        assert_eq!(Mix::parse("mixed:12.5"), Ok(Mix::Mixed { dependent_percent: 12.5 }));
        assert_eq!(Mix::parse("read"), Ok(Mix::Read));
        assert!(Mix::parse("mixed:150").unwrap_err().contains("0..=100"));
        assert!(Mix::parse("scan").unwrap_err().contains("`scan`"));
        assert_eq!(Mix::parse("all:5"), Ok(Mix::All { dependent_percent: 5.0 }));
        assert_eq!(KeyDist::parse("zipf"), Ok(KeyDist::Zipf { exponent: 1.0 }));
        assert!(KeyDist::parse("zipf:-1").is_err());
    }

    /// Rank frequencies follow 1/r: with exponent 1 over 1,000 ranks, rank 1 is drawn with
    /// probability 1/H(1000) ≈ 0.1336 and rank 2 half as often.
    #[test]
    fn zipf_ranks_follow_the_law() {
        let z = Zipf::new(1000, 1.0);
        let mut rng = SplitMix64::new(3);
        let mut counts = vec![0u64; 1001];
        let n = 400_000;
        for _ in 0..n {
            counts[z.sample(&mut rng) as usize] += 1;
        }
        let p1 = counts[1] as f64 / n as f64;
        assert!((p1 - 0.1336).abs() < 0.005, "rank 1 drawn {p1}");
        let ratio = counts[1] as f64 / counts[2] as f64;
        assert!((ratio - 2.0).abs() < 0.1, "rank 1 / rank 2 = {ratio}");
        assert_eq!(counts[0], 0);
        let z = Zipf::new(10, 1.5);
        assert!((0..10_000).all(|_| (1..=10).contains(&z.sample(&mut rng))));
    }

    #[test]
    fn streams_name_the_keys_their_commands_need() {
        let keys = 1000;
        let mut s =
            OpStream::new(Mix::Mixed { dependent_percent: 20.0 }, KeyDist::Uniform, keys, 1);
        let (mut reads, mut dependent) = (0, 0);
        for _ in 0..10_000 {
            match s.next_op() {
                KvOp::Read(k) => {
                    assert!(k % 2 == 0 && k < key_space(keys));
                    reads += 1;
                }
                KvOp::Insert(k, _) | KvOp::Delete(k) => {
                    assert!(k % 2 == 1 && k < key_space(keys));
                    dependent += 1;
                }
                KvOp::Update(..) => panic!("no updates in this mix"),
            }
        }
        assert!((1_800..2_200).contains(&dependent), "{dependent} dependent of 10,000");
        assert_eq!(reads + dependent, 10_000);
        // Zipf keys spread over the space rather than bunching at its start.
        let mut z = OpStream::new(Mix::Read, KeyDist::Zipf { exponent: 1.0 }, keys, 2);
        let low = (0..10_000).filter(|_| matches!(z.next_op(), KvOp::Read(k) if k < keys)).count();
        assert!((3_000..7_000).contains(&low), "{low} of 10,000 in the lower half");
    }
}
