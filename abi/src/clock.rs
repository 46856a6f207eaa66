//! The one TSC-to-nanoseconds conversion the kernel and every libOS share.
//!
//! A reading costs a multiply and a shift with a fixed-point scale computed
//! once, instead of a 128-bit division (a `__udivti3` call: tens of cycles
//! on hardware, far more under TCG) on every clock read — and clock reads
//! sit on the hot paths (each slice switch; each user-level thread switch
//! reads the clock twice). Both sides use the same scale, so a deadline a
//! libOS computes and the kernel's clock agree to the nanosecond.

/// Fraction bits of the scale.
pub const SHIFT: u32 = 48;
/// The slowest TSC the scale is made for (1 MHz): at most 1,000 ns per
/// tick, so the scale fits 64 bits.
pub const MIN_KHZ: u64 = 1_000;

/// Nanoseconds per TSC tick as a 16.48 fixed-point number, for a TSC of
/// `khz` kHz (clamped to [`MIN_KHZ`]); relative error below 1e-12 for a
/// TSC up to 100 GHz.
pub const fn ns_per_tick(khz: u64) -> u64 {
    let khz = if khz < MIN_KHZ { MIN_KHZ } else { khz };
    ((1_000_000u128 << SHIFT) / khz as u128) as u64
}

/// `ticks` TSC ticks in nanoseconds at `scale` (from [`ns_per_tick`]).
pub const fn ticks_to_ns(ticks: u64, scale: u64) -> u64 {
    let ns = (ticks as u128 * scale as u128) >> SHIFT;
    if ns > u64::MAX as u128 {
        u64::MAX
    } else {
        ns as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agrees_with_the_exact_division_to_a_part_per_billion() {
        for khz in [
            1_000, 1_193, 999_999, 2_100_000, 2_899_999, 3_000_000, 5_400_321,
        ] {
            let scale = ns_per_tick(khz);
            for ticks in [
                0u64,
                1,
                7,
                1_000,
                123_456_789,
                86_400 * 6_000_000_000,
                u64::MAX >> 20,
            ] {
                let exact = (u128::from(ticks) * 1_000_000 / u128::from(khz)) as u64;
                let got = ticks_to_ns(ticks, scale);
                assert!(got <= exact, "never ahead: {khz} kHz, {ticks} ticks");
                assert!(
                    exact - got <= 1 + exact / 1_000_000_000,
                    "{khz} kHz, {ticks} ticks: {got} vs {exact}"
                );
            }
        }
    }

    #[test]
    fn saturates_instead_of_wrapping() {
        assert_eq!(ticks_to_ns(u64::MAX, ns_per_tick(1)), u64::MAX);
        assert_eq!(ns_per_tick(0), ns_per_tick(MIN_KHZ));
    }
}
