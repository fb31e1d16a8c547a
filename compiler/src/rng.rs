//! A small deterministic pseudo-random generator for reproducible inputs: the random points of
//! `einc gradcheck` and the random tensors of the tests. It is xorshift64* (Vigna, 2016): fast,
//! tiny and good enough for test data; not for anything needing statistical rigour or secrecy.

/// The xorshift64* generator. The same seed always gives the same sequence.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator for `seed`. The state of xorshift must not be 0, so seed 0 is replaced by a
    /// fixed odd constant; every other seed is used as it is.
    pub fn new(seed: u64) -> Rng {
        Rng(if seed == 0 {
            0x9E37_79B9_7F4A_7C15
        } else {
            seed
        })
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `[lo, hi)`, from 53 random bits.
    pub fn uniform(&mut self, lo: f64, hi: f64) -> f64 {
        let unit = (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        lo + (hi - lo) * unit
    }

    /// A number in `0..n` (0 when `n` is 0; the modulo bias is irrelevant for test data).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }
}

#[cfg(test)]
mod tests {
    use super::Rng;

    #[test]
    fn the_sequence_is_xorshift64_star() {
        // The first output for state 1, worked by hand from the three shifts and the multiply:
        // 1 ^ (1 >> 12) = 1; 1 ^ (1 << 25) = 0x2000001; x ^ (x >> 27) = 0x2000001;
        // 0x2000001 * 0x2545F4914F6CDD1D mod 2^64.
        let mut r = Rng::new(1);
        assert_eq!(
            r.next_u64(),
            0x2000001u64.wrapping_mul(0x2545_F491_4F6C_DD1D)
        );
        let mut zero = Rng::new(0);
        assert_ne!(zero.next_u64(), 0, "seed 0 must not get stuck at 0");
    }

    #[test]
    fn uniform_and_below_stay_in_range() {
        let mut r = Rng::new(42);
        for _ in 0..10_000 {
            let u = r.uniform(-2.0, 3.0);
            assert!((-2.0..3.0).contains(&u), "{u}");
            assert!(r.below(7) < 7);
        }
    }
}
