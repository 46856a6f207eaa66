//! xoshiro256** (Blackman & Vigna, 2018): small, fast and seedable, so a
//! lottery run can be repeated exactly. Not for cryptography.

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

    #[inline]
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

    /// Uniform in `0..bound` without modulo bias; 0 for a bound of 0.
    #[inline]
    pub fn below(&mut self, bound: u128) -> u128 {
        if let Ok(bound) = u64::try_from(bound) {
            return u128::from(self.below_u64(bound));
        }
        // Rejection sampling over the smallest power-of-two range.
        let bits = 128 - (bound - 1).leading_zeros();
        self.below_wide(bound, bits)
    }

    /// [`Rng::below`] for a bound that fits 64 bits (any sane set of
    /// tickets), drawing exactly what it draws: rejection sampling over
    /// the smallest power-of-two range, in 64-bit arithmetic. The high
    /// word of the 128-bit draw is drawn (to keep the sequence) and masked
    /// away.
    #[inline]
    pub fn below_u64(&mut self, bound: u64) -> u64 {
        if bound == 0 {
            return 0;
        }
        // `bits` of the 128-bit draw are 64 - leading zeros of bound - 1;
        // a bound of 1 keeps none (the shift by 64 is out of range).
        let mask = u64::MAX
            .checked_shr((bound - 1).leading_zeros())
            .unwrap_or(0);
        loop {
            let _high = self.next_u64();
            let v = self.next_u64() & mask;
            if v < bound {
                return v;
            }
        }
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

#[cfg(test)]
mod tests {
    use super::*;

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

    /// The 64-bit path draws exactly what the 128-bit one would.
    #[test]
    fn narrow_bounds_draw_as_wide_ones() {
        fn wide(rng: &mut Rng, bound: u128) -> u128 {
            let bits = 128 - (bound - 1).leading_zeros();
            let mask = if bits == 128 {
                u128::MAX
            } else {
                (1u128 << bits) - 1
            };
            loop {
                let v = ((u128::from(rng.next_u64()) << 64) | u128::from(rng.next_u64())) & mask;
                if v < bound {
                    return v;
                }
            }
        }
        let bounds = [
            1u128,
            2,
            3,
            7,
            8,
            9,
            1 << 20,
            (1 << 33) + 5,
            u128::from(u64::MAX) - 1,
            u128::from(u64::MAX),
            u128::from(u64::MAX) + 1,
            u128::from(u64::MAX) + 2,
            1 << 100,
        ];
        let (mut a, mut b) = (Rng::new(5), Rng::new(5));
        for _ in 0..200 {
            for &bound in &bounds {
                assert_eq!(a.below(bound), wide(&mut b, bound), "{bound}");
            }
        }
        assert_eq!(a.next_u64(), b.next_u64());
    }
}
