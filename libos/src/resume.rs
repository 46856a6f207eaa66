//! Resuming a full [`UserContext`] in user mode, without a system call.
//!
//! A thread the kernel interrupted (revocation, repossession, fault) has a
//! full context: every register, flags and the `fxsave` image. The kernel's
//! `resume(which)` restores one from the dispatch page; this routine does
//! the same from any memory, in ring 3, so the libOS can keep such
//! contexts in its own thread table.
//!
//! The routine lives in its own section between `libos_resume_start` and
//! `libos_resume_end`; [`range`] is what the upcall table registers as the
//! resume range. While the program counter is in that range the kernel
//! treats the environment as disabled even with the flag clear, which is
//! what makes the last steps safe: the flag is cleared, the pending
//! revocation bit is checked one final time, then the registers are loaded
//! and the routine jumps to the context.
//!
//! It does not use `iretq`: QEMU's TCG performs the stack reads of an
//! `iretq` executed in ring 3 as supervisor accesses, which SMAP refuses
//! (a page fault on the upcall stack). Instead rflags and rip are staged in
//! the two words just *below* the target's 128-byte red zone (memory the
//! System V ABI lets anything clobber at any time, like a signal frame),
//! then `popfq; ret 128` lands on the target with its stack pointer exact.
//! So a context needs [`STAGE`] bytes of mapped stack below its `rsp`.
//!
//! `fs_base` is not restored (ring 3 cannot write it without FSGSBASE);
//! threads keep their thread-local pointer elsewhere.

use core::arch::global_asm;
use core::mem::offset_of;

use abi::shared::{events, Dispatch, UserContext};

extern "C" {
    fn libos_resume(ctx: *const UserContext, dispatch: *const Dispatch) -> u64;
    static libos_resume_start: u8;
    static libos_resume_end: u8;
}

/// Flags a resumed context may carry: CF PF AF ZF SF TF IF DF OF AC ID.
const RFLAGS_KEEP: u32 = 0x24_0fd5;
/// The System V red zone below a stack pointer, which must not be touched.
pub const RED_ZONE: u64 = 128;
/// Where rflags and rip are staged: the two words just below the red zone.
pub const STAGE: u64 = RED_ZONE + 16;

global_asm!(
    ".pushsection .text.libos_resume, \"ax\"",
    ".global libos_resume_start",
    ".global libos_resume_end",
    ".global libos_resume",
    ".balign 16",
    "libos_resume_start:",
    "libos_resume:",
    // Stage rflags and rip just below the target's red zone.
    "mov rax, [rdi + {rsp}]",
    "sub rax, {stage}",
    "mov rcx, [rdi + {rflags}]",
    "and rcx, {keep}",
    "or rcx, 0x202",
    "mov [rax], rcx",
    "mov rcx, [rdi + {rip}]",
    "mov [rax + 8], rcx",
    // Leave the critical section; the range still counts as disabled.
    "mov dword ptr [rsi + {disabled}], 0",
    "test qword ptr [rsi + {events}], {pending}",
    "jnz 2f",
    "fxrstor64 [rdi + {fx}]",
    "mov rbx, [rdi + {rbx}]",
    "mov rcx, [rdi + {rcx}]",
    "mov rdx, [rdi + {rdx}]",
    "mov rsi, [rdi + {rsi}]",
    "mov rbp, [rdi + {rbp}]",
    "mov r8, [rdi + {r8}]",
    "mov r9, [rdi + {r9}]",
    "mov r10, [rdi + {r10}]",
    "mov r11, [rdi + {r11}]",
    "mov r12, [rdi + {r12}]",
    "mov r13, [rdi + {r13}]",
    "mov r14, [rdi + {r14}]",
    "mov r15, [rdi + {r15}]",
    "mov rsp, rax",
    "mov rax, [rdi + {rax}]",
    "mov rdi, [rdi + {rdi}]",
    "popfq",
    "ret {red_zone}",
    // A revocation was deferred while we were disabled: disabled again,
    // back to the caller (only rax and rcx were used), nothing consumed.
    "2:",
    "mov dword ptr [rsi + {disabled}], 1",
    "mov eax, 1",
    "ret",
    "libos_resume_end:",
    ".popsection",
    rax = const offset_of!(UserContext, rax),
    rbx = const offset_of!(UserContext, rbx),
    rcx = const offset_of!(UserContext, rcx),
    rdx = const offset_of!(UserContext, rdx),
    rsi = const offset_of!(UserContext, rsi),
    rdi = const offset_of!(UserContext, rdi),
    rbp = const offset_of!(UserContext, rbp),
    rsp = const offset_of!(UserContext, rsp),
    r8 = const offset_of!(UserContext, r8),
    r9 = const offset_of!(UserContext, r9),
    r10 = const offset_of!(UserContext, r10),
    r11 = const offset_of!(UserContext, r11),
    r12 = const offset_of!(UserContext, r12),
    r13 = const offset_of!(UserContext, r13),
    r14 = const offset_of!(UserContext, r14),
    r15 = const offset_of!(UserContext, r15),
    rip = const offset_of!(UserContext, rip),
    rflags = const offset_of!(UserContext, rflags),
    fx = const offset_of!(UserContext, fx),
    disabled = const offset_of!(Dispatch, disabled),
    events = const offset_of!(Dispatch, events),
    pending = const events::REVOCATION_PENDING,
    keep = const RFLAGS_KEEP,
    stage = const STAGE,
    red_zone = const RED_ZONE,
);

const _: () = assert!(events::REVOCATION_PENDING < 1 << 31);

/// The resume range to register in the upcall table: `(start, end)`.
pub fn range() -> (u64, u64) {
    // Only the labels' addresses are taken, which needs no `unsafe`.
    (
        &raw const libos_resume_start as u64,
        &raw const libos_resume_end as u64,
    )
}

/// Whether `rip` is inside the resume routine: a context caught there (by a
/// repossession) belongs to no thread yet; resume the thread it was
/// resuming from that thread's own saved context instead.
pub fn in_range(rip: u64) -> bool {
    let (start, end) = range();
    (start..end).contains(&rip)
}

/// A deferred revocation was found pending at the last moment: the context
/// was not resumed and the disabled flag is set again. Clear
/// `REVOCATION_PENDING` and give the slice up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pending;

/// Restores `ctx` exactly (registers, flags, `fxsave` image) and clears
/// `d.disabled` as the last step before the return to it. Returns only if
/// a revocation is pending (see [`Pending`]).
///
/// # Safety
/// Must be called with `d.disabled` set, with [`range`] registered as the
/// resume range; `ctx` must be a valid user context (an `fxsave` image
/// `fxrstor` accepts, a user `rip`, an `rsp` with [`STAGE`] writable bytes
/// below it that no live data uses) that nothing else resumes, and
/// everything the caller's stack frame owns is abandoned when it resumes.
pub unsafe fn resume(ctx: &UserContext, d: &Dispatch) -> Pending {
    // SAFETY: per this function's contract.
    let r = unsafe { libos_resume(ctx, d) };
    debug_assert_eq!(r, 1);
    Pending
}

#[cfg(test)]
mod tests;
