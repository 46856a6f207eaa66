//! User-level context switch between threads at a call boundary.
//!
//! A voluntary switch (yield, block, exit) is an ordinary function call, so
//! only what the System V ABI makes callee-saved has to survive it: `rbx`,
//! `rbp`, `r12`–`r15`, the stack pointer, and the control bits of MXCSR
//! and the x87 control word. [`switch`] pushes those on the running
//! thread's stack, stores the stack pointer, loads the next thread's and
//! pops its frame — no system call, no 672-byte copy.
//!
//! A thread flagged as using SSE ([`FX`]) also gets a full 512-byte
//! `fxsave` image in its frame, for code that keeps vector state live
//! across a switch in inline assembly. The flag is part of the frame's
//! layout, so both sides of a switch pass how *their own* frame is built.
//!
//! Frame on the thread's stack, from the saved stack pointer upwards:
//! `[fxsave image (FX only)] [mxcsr:u32, fcw:u16, pad] r15 r14 r13 r12 rbx rbp ret`.

use core::arch::global_asm;

/// Frame flag: this thread's frame carries a full `fxsave` image.
pub const FX: u64 = 1;

/// MXCSR at reset: every exception masked, round to nearest.
pub const MXCSR_DEFAULT: u32 = 0x1f80;
/// x87 control word at reset (`fninit`).
pub const FCW_DEFAULT: u16 = 0x037f;

/// Bytes [`init_frame`] needs below a stack's top.
pub const fn frame_bytes(flags: u64) -> usize {
    8 * 8 + if flags & FX != 0 { 512 } else { 0 }
}

extern "C" {
    fn libos_switch(from_sp: *mut u64, to_sp: u64, flags: u64);
    fn libos_thread_trampoline();
}

// rdi = where to store the old stack pointer, rsi = the new one,
// rdx = bit 0: save an fxsave image for the old thread; bit 1: the new
// thread's frame holds one.
global_asm!(
    ".pushsection .text.libos_switch, \"ax\"",
    ".global libos_switch",
    "libos_switch:",
    "push rbp",
    "push rbx",
    "push r12",
    "push r13",
    "push r14",
    "push r15",
    "sub rsp, 8",
    "stmxcsr [rsp]",
    "fnstcw [rsp + 4]",
    "test edx, 1",
    "jz 2f",
    "sub rsp, 512",
    "fxsave64 [rsp]",
    "2:",
    "mov [rdi], rsp",
    "mov rsp, rsi",
    "test edx, 2",
    "jz 3f",
    "fxrstor64 [rsp]",
    "add rsp, 512",
    "3:",
    "ldmxcsr [rsp]",
    "fldcw [rsp + 4]",
    "add rsp, 8",
    "pop r15",
    "pop r14",
    "pop r13",
    "pop r12",
    "pop rbx",
    "pop rbp",
    "ret",
    // First run of a thread: r12 = argument, r13 = entry. The entry is
    // called with a 16-byte aligned stack and must not return.
    ".global libos_thread_trampoline",
    "libos_thread_trampoline:",
    "mov rdi, r12",
    "xor ebp, ebp",
    "call r13",
    "ud2",
    ".popsection",
);

/// Builds the first frame of a thread on a fresh stack whose top is
/// `top` (16-byte aligned): the first switch to the returned stack pointer
/// calls `entry(arg)` with default FPU control state. Pass the same
/// `flags` when switching to it.
///
/// # Safety
/// `top - frame_bytes(flags) .. top` must be writable memory owned by the
/// new thread's stack, and `top` 16-byte aligned.
pub unsafe fn init_frame(
    top: u64,
    entry: extern "C" fn(usize) -> !,
    arg: usize,
    flags: u64,
) -> u64 {
    debug_assert!(top.is_multiple_of(16));
    // The return address sits at top - 8: after `ret` the stack is
    // 16-aligned, and the trampoline's `call` leaves the entry at the usual
    // `rsp % 16 == 8`. Words from the frame's bottom: FPU control, r15,
    // r14, r13 (entry), r12 (argument), rbx, rbp, return address.
    let words: [u64; 8] = [
        u64::from(MXCSR_DEFAULT) | u64::from(FCW_DEFAULT) << 32,
        0,
        0,
        entry as *const () as u64,
        arg as u64,
        0,
        0,
        libos_thread_trampoline as *const () as u64,
    ];
    let frame = top - 64;
    // SAFETY: the caller gives us `frame_bytes(flags)` bytes below `top`.
    unsafe {
        core::ptr::copy_nonoverlapping(words.as_ptr(), frame as *mut u64, 8);
    }
    if flags & FX == 0 {
        return frame;
    }
    let fx = frame - 512;
    let mut image = [0u8; 512];
    image[0..2].copy_from_slice(&FCW_DEFAULT.to_le_bytes());
    image[24..28].copy_from_slice(&MXCSR_DEFAULT.to_le_bytes());
    // MXCSR_MASK, ignored by fxrstor.
    image[28..32].copy_from_slice(&0xffffu32.to_le_bytes());
    // SAFETY: as above; `fx` is 16-aligned since `top` is.
    unsafe {
        core::ptr::copy_nonoverlapping(image.as_ptr(), fx as *mut u8, 512);
    }
    fx
}

/// Saves the calling thread (its frame flagged `from_flags`) and runs the
/// thread whose saved stack pointer is `to_sp` (frame flagged `to_flags`).
/// Returns when something switches back to `*from_sp`.
///
/// # Safety
/// `to_sp` must be a stack pointer saved by `switch` (or made by
/// [`init_frame`]) that nothing else runs or resumes meanwhile, built with
/// `to_flags`; `from_sp` must stay valid until the caller is switched back
/// to, and the caller's stack must not be used by anyone else meanwhile.
pub unsafe fn switch(from_sp: *mut u64, from_flags: u64, to_sp: u64, to_flags: u64) {
    let flags = (from_flags & FX) | (to_flags & FX) << 1;
    // SAFETY: per this function's contract; `libos_switch` preserves every
    // callee-saved register and returns like a normal call once resumed.
    unsafe { libos_switch(from_sp, to_sp, flags) }
}

#[cfg(test)]
mod tests;
