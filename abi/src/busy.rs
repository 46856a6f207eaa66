//! Busy work whose cost in instructions is known exactly: the loop the
//! kernel's `corespeed` test counts a core's speed with and the one a
//! `serve` application spends each request's demand in. One loop for
//! both, so the speed the kernel measures is the speed of the work the
//! applications do.

/// Instructions one iteration of [`countdown`] executes.
pub const INSTRUCTIONS_PER_ITERATION: u64 = 2;

/// Counts `n` down to zero in one register: `n` iterations of exactly
/// [`INSTRUCTIONS_PER_ITERATION`] instructions (`dec`, `jnz`) that no
/// optimiser can remove, fold or unroll. Written in asm rather than as a
/// Rust loop so the count is fixed by the source, not the compiler: in a
/// deterministic run (every core held to a stated number of instructions
/// per second) a demand of speed × time instructions is then exactly
/// that many iterations. Does nothing for `n == 0`.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
#[allow(unsafe_code)]
pub fn countdown(n: u64) {
    if n == 0 {
        return;
    }
    // SAFETY: a countdown in one register: no memory, no stack, flags
    // only (not preserved, which `options` does not claim), and the loop
    // ends when the register reaches zero (n > 0 here).
    unsafe {
        core::arch::asm!(
            "2:",
            "dec {n}",
            "jnz 2b",
            n = inout(reg) n => _,
            options(nomem, nostack),
        );
    }
}

#[cfg(all(test, target_arch = "x86_64"))]
mod tests {
    use super::*;

    #[test]
    fn counts_down_and_returns() {
        countdown(0);
        countdown(1);
        countdown(100_000);
    }
}
