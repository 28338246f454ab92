//! The random generator behind every exploration decision, specified here so that a logged seed
//! replays the same decision with any driftwatch build, or with any other tool that implements
//! these few lines (docs/exploration.md, "Seed and replay"):
//!
//! - the generator is xoshiro256++ (Blackman and Vigna), its state seeded from the 64-bit seed by
//!   four outputs of SplitMix64, as the authors' reference code recommends;
//! - a uniform number in [0, 1) is the top 53 bits of one output times 2^-53;
//! - a uniform integer below `n` is Lemire's multiply-and-reject method (unbiased): the high
//!   64 bits of `output × n`, drawing again while the low 64 bits fall below `2^64 mod n`.
//!
//! General-purpose generators (rand's `SmallRng`) do not promise the same stream across releases,
//! which would break replay silently.

/// xoshiro256++ with the sampling rules above.
#[derive(Debug, Clone)]
pub struct DecisionRng {
    state: [u64; 4],
}

impl DecisionRng {
    pub fn from_seed(seed: u64) -> Self {
        let mut splitmix = seed;
        let mut next = || {
            splitmix = splitmix.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = splitmix;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        };
        Self {
            state: [next(), next(), next(), next()],
        }
    }

    pub fn next_u64(&mut self) -> u64 {
        let s = &mut self.state;
        let result = s[0].wrapping_add(s[3]).rotate_left(23).wrapping_add(s[0]);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        result
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform in `0..n`; `n` must be above 0.
    pub fn below(&mut self, n: usize) -> usize {
        assert!(n > 0, "below(0)");
        let n = n as u64;
        let mut product = u128::from(self.next_u64()) * u128::from(n);
        if (product as u64) < n {
            let threshold = n.wrapping_neg() % n;
            while (product as u64) < threshold {
                product = u128::from(self.next_u64()) * u128::from(n);
            }
        }
        (product >> 64) as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Outputs of the authors' reference algorithms (SplitMix64 seeding xoshiro256++), computed
    /// independently; SplitMix64 from 0 starts 0xe220a8397b1dcdaf, 0x6e789e6aa1b965f4,
    /// 0x06c45d188009454f as published.
    #[test]
    fn the_stream_is_the_reference_algorithm() {
        for (seed, expected) in [
            (
                0u64,
                [
                    5987356902031041503u64,
                    7051070477665621255,
                    6633766593972829180,
                    211316841551650330,
                ],
            ),
            (
                42,
                [
                    15021278609987233951,
                    5881210131331364753,
                    18149643915985481100,
                    12933668939759105464,
                ],
            ),
            (
                0xDEAD_BEEF_CAFE_F00D,
                [
                    2707888645904291241,
                    4127604304539770197,
                    14649805712682739594,
                    17031626081241676267,
                ],
            ),
        ] {
            let mut rng = DecisionRng::from_seed(seed);
            let got: Vec<u64> = (0..4).map(|_| rng.next_u64()).collect();
            assert_eq!(got, expected, "seed {seed}");
        }
    }

    #[test]
    fn samples_stay_in_range_and_cover_it_evenly() {
        let mut rng = DecisionRng::from_seed(7);
        let mut counts = [0u32; 7];
        for _ in 0..70_000 {
            let unit = rng.unit();
            assert!((0.0..1.0).contains(&unit));
            counts[rng.below(7)] += 1;
        }
        // 10,000 expected per value; 5 standard deviations is about ±460.
        for count in counts {
            assert!((9_500..10_500).contains(&count), "{counts:?}");
        }
        assert_eq!(DecisionRng::from_seed(3).below(1), 0);
    }
}
