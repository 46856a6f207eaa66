//! Helpers shared by the programs in `src/bin/`.
#![cfg_attr(not(test), no_std)]

use core::sync::atomic::{AtomicU64, Ordering};

/// A register-heavy step whose result is also kept in memory, so a context
/// restored wrongly (any register) shows up as a mismatch.
#[inline(never)]
pub fn checked_step(state: &mut [u64; 4], shadow: &[AtomicU64; 4]) -> bool {
    let mut ok = true;
    for (i, s) in state.iter_mut().enumerate() {
        ok &= *s == shadow[i].load(Ordering::Relaxed);
        *s = s
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407 + i as u64);
        shadow[i].store(*s, Ordering::Relaxed);
    }
    ok
}
