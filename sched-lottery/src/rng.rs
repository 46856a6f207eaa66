//! xoshiro256** (Blackman & Vigna, 2018): small, fast and seedable, so a
//! lottery run can be repeated exactly. Not for cryptography. Draws below
//! a bound by Lemire's nearly divisionless method (Lemire 2019, "Fast
//! random integer generation in an interval"): see [`Rng::below_u64`].

#[derive(Clone, Debug)]
pub struct Rng([u64; 4]);

impl Rng {
    /// Seeds the state with splitmix64, as the authors recommend (any seed,
    /// 0 included, gives a valid non-zero state).
    pub fn new(seed: u64) -> Self {
        let mut x = seed;
        let mut next = || {
            x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = x;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        };
        Rng([next(), next(), next(), next()])
    }

    #[inline(always)]
    pub fn next_u64(&mut self) -> u64 {
        let s = &mut self.0;
        let result = s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        result
    }

    /// Uniform in `0..bound`, exactly (no modulo bias); 0 for a bound of 0.
    /// A bound that fits 64 bits (any sane set of tickets) draws as
    /// [`Rng::below_u64`]; a wider one by rejection sampling, out of line.
    #[inline]
    pub fn below(&mut self, bound: u128) -> u128 {
        if let Ok(bound) = u64::try_from(bound) {
            return u128::from(self.below_u64(bound));
        }
        // Rejection sampling over the smallest power-of-two range.
        let bits = 128 - (bound - 1).leading_zeros();
        self.below_wide(bound, bits)
    }

    /// Uniform in `0..bound`, exactly; 0 for a bound of 0 (after one draw).
    ///
    /// Lemire's method: one 64-bit draw `x` per attempt, and the high word
    /// of the 128-bit product `x * bound` is the result. Rejected, and
    /// drawn again, only when the low word is below the threshold
    /// `t = 2^64 mod bound` (`bound.wrapping_neg() % bound`), which is only
    /// computed when the low word is below `bound` (as `t < bound`, a low
    /// word at or above `bound` is at or above `t`): the division is taken
    /// with probability below `bound / 2^64`, and so is a rejection.
    ///
    /// Why it is exactly uniform: as `x` runs over `0..2^64`, `x * bound`
    /// runs over the multiples of `bound` in `0..bound * 2^64`. The result
    /// is `v` for those in `[v * 2^64, (v + 1) * 2^64)`, and the low word
    /// is the multiple's offset in that range; accepting offsets at or
    /// above `t` keeps the multiples in `[v * 2^64 + t, (v + 1) * 2^64)`, a
    /// range `2^64 - t = floor(2^64 / bound) * bound` long, which holds
    /// exactly `floor(2^64 / bound)` multiples of `bound` whatever `v` is.
    /// So every result in `0..bound` is accepted from the same number of
    /// draws (the host test `lemire_is_exact_in_eight_bits` counts them
    /// for every bound in a model of 8-bit words, by the same code).
    /// Inlined always: it is the decision's draw, and a call to it costs
    /// more than its fast path.
    #[inline(always)]
    pub fn below_u64(&mut self, bound: u64) -> u64 {
        lemire(bound, self)
    }

    /// [`Rng::below`] for a bound above 2^64 (`bits` wide): out of line,
    /// so that the usual draw inlines small.
    #[inline(never)]
    fn below_wide(&mut self, bound: u128, bits: u32) -> u128 {
        let mask = if bits == 128 {
            u128::MAX
        } else {
            (1u128 << bits) - 1
        };
        loop {
            let v = ((u128::from(self.next_u64()) << 64) | u128::from(self.next_u64())) & mask;
            if v < bound {
                return v;
            }
        }
    }
}

/// What [`lemire`] draws from: the generator, or the tests' sequences.
/// A trait rather than a closure, so that the generator's step is inlined
/// always into the decision (a closure was left out of line).
trait Words<W> {
    fn next_word(&mut self) -> W;
}

impl Words<u64> for Rng {
    #[inline(always)]
    fn next_word(&mut self) -> u64 {
        self.next_u64()
    }
}

/// A word [`lemire`] draws in: u64 for the lottery, and u8 in the tests'
/// model, where every input can be counted.
trait Word: Copy + Ord + core::ops::Rem<Output = Self> {
    /// The double-width product `self * other`: (high word, low word).
    fn mul_wide(self, other: Self) -> (Self, Self);
    fn wrapping_neg(self) -> Self;
}

impl Word for u64 {
    #[inline(always)]
    fn mul_wide(self, other: u64) -> (u64, u64) {
        let m = u128::from(self) * u128::from(other);
        ((m >> 64) as u64, m as u64)
    }

    #[inline(always)]
    fn wrapping_neg(self) -> u64 {
        u64::wrapping_neg(self)
    }
}

/// Lemire's nearly divisionless draw below `bound` from the words `words`
/// gives (see [`Rng::below_u64`]).
#[inline(always)]
fn lemire<W: Word>(bound: W, words: &mut impl Words<W>) -> W {
    let (high, low) = words.next_word().mul_wide(bound);
    if low < bound {
        return lemire_slow(bound, high, low, words);
    }
    high
}

/// [`lemire`] with a low word below `bound`: the threshold's division, and
/// the rejections (each with probability below `bound / 2^64`).
#[cold]
#[inline(never)]
fn lemire_slow<W: Word>(bound: W, mut high: W, mut low: W, words: &mut impl Words<W>) -> W {
    let threshold = bound.wrapping_neg() % bound;
    while low < threshold {
        (high, low) = words.next_word().mul_wide(bound);
    }
    high
}

#[cfg(test)]
mod tests {
    use super::*;

    impl Word for u8 {
        fn mul_wide(self, other: u8) -> (u8, u8) {
            let m = u16::from(self) * u16::from(other);
            ((m >> 8) as u8, m as u8)
        }

        fn wrapping_neg(self) -> u8 {
            u8::wrapping_neg(self)
        }
    }

    /// [`lemire`] from the draws `first`, then `then` as often as asked:
    /// its result, and the number of draws it took.
    fn lemire_from<W: Word>(bound: W, first: W, then: W) -> (W, u32) {
        /// `first`, then `then` ever after; counting the draws.
        struct Seq<W> {
            first: W,
            then: W,
            calls: u32,
        }
        impl<W: Copy> Words<W> for Seq<W> {
            fn next_word(&mut self) -> W {
                self.calls += 1;
                if self.calls == 1 {
                    self.first
                } else {
                    self.then
                }
            }
        }
        let mut seq = Seq {
            first,
            then,
            calls: 0,
        };
        let v = lemire(bound, &mut seq);
        (v, seq.calls)
    }

    #[test]
    fn repeatable_and_uniform_enough() {
        let mut a = Rng::new(0);
        let mut b = Rng::new(0);
        assert_eq!(a.next_u64(), b.next_u64());
        let mut counts = [0u32; 6];
        for _ in 0..60_000 {
            counts[a.below(6) as usize] += 1;
        }
        for c in counts {
            assert!((9_500..10_500).contains(&c), "{counts:?}");
        }
        assert_eq!(a.below(1), 0);
        assert_eq!(a.below(0), 0);
        assert!(a.below(u128::MAX) < u128::MAX);
    }

    /// The same code in 8-bit words, every first draw of every bound:
    /// exactly the first draws whose product's low word is below
    /// `256 mod bound` (computed here in 16 bits) are rejected, for a
    /// second draw; and every result in `0..bound` is accepted from
    /// exactly `floor(256 / bound)` first draws, so uniform.
    #[test]
    fn lemire_is_exact_in_eight_bits() {
        for bound in 1..=u8::MAX {
            let threshold = 256 % u16::from(bound);
            let low = |x: u8| u16::from(x) * u16::from(bound) % 256;
            // A second draw that is accepted, to end a rejection with.
            let second = (0..=u8::MAX).find(|&y| low(y) >= threshold).unwrap();
            let mut accepted = vec![0u32; usize::from(bound)];
            let mut rejected = 0;
            for x in 0..=u8::MAX {
                let (v, calls) = lemire_from(bound, x, second);
                assert!(v < bound, "{v} for bound {bound}");
                let want = (u16::from(x) * u16::from(bound)) >> 8;
                if low(x) < threshold {
                    assert_eq!(calls, 2, "bound {bound}: {x} accepted");
                    rejected += 1;
                } else {
                    assert_eq!(calls, 1, "bound {bound}: {x} rejected");
                    assert_eq!(u16::from(v), want, "bound {bound}, draw {x}");
                    accepted[usize::from(v)] += 1;
                }
            }
            assert_eq!(rejected, threshold, "bound {bound}");
            let each = 256 / u32::from(bound);
            assert!(
                accepted.iter().all(|&c| c == each),
                "bound {bound}: {accepted:?}"
            );
        }
    }

    /// The 64-bit draw itself, at the threshold: for odd bounds (whose
    /// products reach every low word), the draw whose low word is
    /// `2^64 mod bound - 1` is rejected and the one whose low word is
    /// `2^64 mod bound` accepted, with the product's high word.
    #[test]
    fn lemire_rejects_exactly_below_the_threshold() {
        // The inverse of an odd `b` modulo 2^64 (Newton's iteration).
        fn inverse(b: u64) -> u64 {
            let mut y = b;
            for _ in 0..6 {
                y = y.wrapping_mul(2u64.wrapping_sub(b.wrapping_mul(y)));
            }
            assert_eq!(b.wrapping_mul(y), 1);
            y
        }
        let bounds = [
            3u64,
            5,
            7,
            1001,
            (1 << 33) + 5,
            (1 << 63) + 1,
            (1 << 63) + 12_345,
            u64::MAX - 2,
            u64::MAX,
        ];
        for bound in bounds {
            let threshold = ((1u128 << 64) % u128::from(bound)) as u64;
            assert!(threshold > 0, "{bound}");
            let inv = inverse(bound);
            let at = |low: u64| low.wrapping_mul(inv);
            for (low, rejected) in [(threshold - 1, true), (threshold, false), (0, true)] {
                let x = at(low);
                // After a rejection, the draw with low word `threshold`.
                let (v, calls) = lemire_from(bound, x, at(threshold));
                assert_eq!(calls, if rejected { 2 } else { 1 }, "{bound} {low}");
                let taken = if rejected { at(threshold) } else { x };
                let want = ((u128::from(taken) * u128::from(bound)) >> 64) as u64;
                assert_eq!(v, want, "{bound} {low}");
                assert!(v < bound);
            }
        }
    }

    /// Always below the bound, at the edges of the bounds and of the
    /// draws; a bound of 1 always 0 (and never rejects), of 0 gives 0.
    #[test]
    fn below_u64_is_below_the_bound() {
        let edges = [
            0,
            1,
            2,
            3,
            1 << 32,
            (1 << 63) - 1,
            1 << 63,
            u64::MAX - 1,
            u64::MAX,
        ];
        let bounds = [
            1u64,
            2,
            3,
            10,
            1 << 32,
            (1 << 63) + 1,
            u64::MAX - 1,
            u64::MAX,
        ];
        for bound in bounds {
            for &x in &edges {
                let (v, calls) = lemire_from(bound, x, u64::MAX);
                assert!(v < bound, "{v} for bound {bound}, draw {x}");
                if bound == 1 {
                    assert_eq!((v, calls), (0, 1));
                }
            }
        }
        let mut rng = Rng::new(3);
        assert_eq!(rng.below_u64(0), 0);
        for _ in 0..10_000 {
            for bound in bounds {
                assert!(rng.below_u64(bound) < bound);
            }
        }
        // u64::MAX: only a draw of 0 (low word 0, threshold 1) rejects.
        let mut hits = [0u32; 4];
        for _ in 0..40_000 {
            hits[(rng.below_u64(u64::MAX) >> 62) as usize] += 1;
        }
        for h in hits {
            assert!((9_500..10_500).contains(&h), "{hits:?}");
        }
    }

    /// Wide bounds: below them, and spread over their range.
    #[test]
    fn wide_bounds_stay_below() {
        let mut rng = Rng::new(9);
        for bound in [
            u128::from(u64::MAX) + 1,
            u128::from(u64::MAX) + 2,
            3 << 64,
            1 << 100,
            u128::MAX,
        ] {
            let mut top_half = 0;
            for _ in 0..2_000 {
                let v = rng.below(bound);
                assert!(v < bound);
                top_half += u32::from(v >= bound / 2);
            }
            assert!((850..1_150).contains(&top_half), "{bound}: {top_half}");
        }
    }
}
