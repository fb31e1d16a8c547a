//! A stream of decisions read from bytes: the one source of randomness of the program
//! generator, so that the same bytes always give the same program.
//!
//! libFuzzer hands the structure-aware fuzz target its bytes directly; the differential tests
//! draw the bytes from [`Rng`]. Shrinking a failing case is then generic: delete or lower
//! bytes and generate again (Hypothesis' approach). Every decision is made so that a zero
//! byte, and the end of the stream, choose the simplest option, so shorter and smaller byte
//! strings give smaller programs.

use crate::rng::Rng;

/// Decisions drawn from a byte string; past its end every decision is 0.
#[derive(Clone, Debug)]
pub struct Choices<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Choices<'a> {
    /// Decisions read from `bytes`.
    pub fn new(bytes: &'a [u8]) -> Choices<'a> {
        Choices { bytes, pos: 0 }
    }

    /// A number in `0..n` (0 when `n <= 1`, without consuming a byte). Uses one byte for
    /// `n <= 256`, two otherwise.
    pub fn below(&mut self, n: usize) -> usize {
        if n <= 1 {
            return 0;
        }
        let mut v = self.byte();
        if n > 256 {
            v = v << 8 | self.byte();
        }
        v % n
    }

    /// True with probability `percent`/100; false when the bytes are exhausted or zero.
    pub fn chance(&mut self, percent: usize) -> bool {
        self.below(100) + percent.min(100) >= 100
    }

    /// One of `items` (the first when the bytes are exhausted). `items` must not be empty.
    pub fn pick<'b, T>(&mut self, items: &'b [T]) -> &'b T {
        &items[self.below(items.len())]
    }

    /// How many bytes have been read.
    pub fn used(&self) -> usize {
        self.pos.min(self.bytes.len())
    }

    fn byte(&mut self) -> usize {
        let b = self.bytes.get(self.pos).copied().unwrap_or(0);
        self.pos += 1;
        usize::from(b)
    }
}

/// `len` random bytes from `rng`: the decisions of one random case.
pub fn random_bytes(rng: &mut Rng, len: usize) -> Vec<u8> {
    (0..len).map(|_| rng.next_u64() as u8).collect()
}

/// The smallest byte string found that still `fails`: deletes and zeroes chunks of bytes,
/// then lowers single bytes (to 0, to half, by one), until nothing helps or `budget` tries
/// are spent.
/// `fails(bytes)` is true for the input.
pub fn shrink_bytes(
    bytes: &[u8],
    budget: &mut usize,
    fails: &mut dyn FnMut(&[u8]) -> bool,
) -> Vec<u8> {
    let mut best = bytes.to_vec();
    let mut attempt = |candidate: Vec<u8>, best: &mut Vec<u8>, budget: &mut usize| -> bool {
        if *budget == 0 {
            return false;
        }
        *budget -= 1;
        if fails(&candidate) {
            *best = candidate;
            true
        } else {
            false
        }
    };
    loop {
        let before = best.clone();
        for chunk in [256, 64, 16, 4, 1] {
            let mut i = 0;
            while i < best.len() && *budget > 0 {
                let mut c = best.clone();
                c.drain(i..(i + chunk).min(best.len()));
                if !attempt(c, &mut best, budget) {
                    i += chunk;
                }
            }
            // Zeroing keeps later decisions where they are, so it simplifies where deleting
            // would shuffle everything after the chunk.
            let mut i = 0;
            while i < best.len() && *budget > 0 {
                let end = (i + chunk).min(best.len());
                if best[i..end].iter().any(|&b| b != 0) {
                    let mut c = best.clone();
                    c[i..end].iter_mut().for_each(|b| *b = 0);
                    attempt(c, &mut best, budget);
                }
                i += chunk;
            }
        }
        for i in 0..best.len() {
            for lower in [0, best[i] / 2, best[i].saturating_sub(1)] {
                if lower < best[i] {
                    let mut c = best.clone();
                    c[i] = lower;
                    if attempt(c, &mut best, budget) {
                        break;
                    }
                }
            }
        }
        if best == before || *budget == 0 {
            return best;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{shrink_bytes, Choices};

    #[test]
    fn exhausted_and_zero_bytes_choose_the_simplest_option() {
        let mut c = Choices::new(&[]);
        assert_eq!(c.below(10), 0);
        assert!(!c.chance(99));
        let mut c = Choices::new(&[0, 0]);
        assert!(!c.chance(99));
        assert_eq!(c.below(7), 0);
        assert!(c.chance(100), "certain events happen even past the end");
    }

    #[test]
    fn bytes_map_to_ranges() {
        let mut c = Choices::new(&[13, 99, 1, 2]);
        assert_eq!(c.below(10), 3);
        assert!(c.chance(1), "99 + 1 >= 100");
        // Two bytes, big-endian: (1 << 8 | 2) = 258, below 1000.
        assert_eq!(c.below(1000), 258);
        assert_eq!(c.used(), 4);
        assert_eq!(c.below(1), 0, "a one-way choice reads nothing");
        assert_eq!(c.used(), 4);
    }

    #[test]
    fn shrinking_finds_the_smallest_failing_bytes() {
        // "Fails" when the bytes hold a value of at least 10 somewhere after position 2.
        let fails = |b: &[u8]| b.iter().skip(2).any(|&x| x >= 10);
        let mut budget = 10_000;
        let small = shrink_bytes(&[7, 200, 3, 50, 9, 0, 12], &mut budget, &mut |b| fails(b));
        assert_eq!(small, vec![0, 0, 10]);
    }
}
