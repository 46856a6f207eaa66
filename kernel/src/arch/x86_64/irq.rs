//! This core's interrupt flag and halting: the `cli`, `sti` and `hlt` the
//! kernel needs, written once. Each is safe to call: masking or unmasking
//! interrupts on this core, or halting it until the next one, cannot break
//! memory safety (it can deadlock code that expects the other state, which
//! is each caller's concern, as with any lock).

/// Masks interrupts on this core.
#[inline(always)]
pub fn disable() {
    // SAFETY: clearing IF affects only this core's interrupt delivery.
    unsafe { core::arch::asm!("cli", options(nomem, nostack)) };
}

/// Unmasks interrupts on this core.
#[inline(always)]
pub fn enable() {
    // SAFETY: setting IF affects only this core's interrupt delivery; the
    // IDT and every handler are installed before any core enables them.
    unsafe { core::arch::asm!("sti", options(nomem, nostack)) };
}

/// Unmasks interrupts and halts until one arrives, which runs before this
/// returns (with interrupts left enabled). `sti` takes effect after the
/// next instruction, so an interrupt that is pending, or arrives, after a
/// caller's check made with interrupts masked still wakes the `hlt`.
#[inline(always)]
pub fn enable_and_halt() {
    // SAFETY: as `enable`; `hlt` only waits.
    unsafe { core::arch::asm!("sti; hlt", options(nomem, nostack)) };
}

/// As [`enable_and_halt`], masking interrupts again once one has run.
#[inline(always)]
pub fn enable_halt_disable() {
    // SAFETY: as `enable_and_halt`, then as `disable`.
    unsafe { core::arch::asm!("sti; hlt; cli", options(nomem, nostack)) };
}

/// Halts until the next interrupt, leaving the interrupt flag as it is.
#[inline(always)]
pub fn halt() {
    // SAFETY: `hlt` only waits.
    unsafe { core::arch::asm!("hlt", options(nomem, nostack)) };
}

/// Masks interrupts and halts this core for good.
pub fn halt_forever() -> ! {
    loop {
        // SAFETY: stopping this core is the intent.
        unsafe { core::arch::asm!("cli; hlt", options(nomem, nostack)) };
    }
}

/// Runs `f` with interrupts masked, restoring the previous state.
pub fn without_interrupts<R>(f: impl FnOnce() -> R) -> R {
    let flags: u64;
    // SAFETY: reading RFLAGS and clearing IF affects only this core.
    unsafe {
        core::arch::asm!("pushfq; pop {}; cli", out(reg) flags, options(nomem));
    }
    let r = f();
    if flags & (1 << 9) != 0 {
        enable();
    }
    r
}
