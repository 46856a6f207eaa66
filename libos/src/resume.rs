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
//! what makes the last steps safe: the flag is cleared, then the pending
//! revocation bit is checked one final time, then the remaining register
//! and `iretq` follow. The `iretq` frame is built on the stack the routine
//! is called on (the upcall stack, or the per-core scheduler stack), never
//! on the target stack, whose 128-byte red zone may be live.
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

global_asm!(
    ".pushsection .text.libos_resume, \"ax\"",
    ".global libos_resume_start",
    ".global libos_resume_end",
    ".global libos_resume",
    ".balign 16",
    "libos_resume_start:",
    "libos_resume:",
    // The caller's callee-saved state, for the pending path.
    "push rbx",
    "push rbp",
    "push r12",
    "push r13",
    "push r14",
    "push r15",
    "sub rsp, 8",
    "stmxcsr [rsp]",
    "fnstcw [rsp + 4]",
    // iretq frame: ss, rsp, rflags, cs, rip; then the target's rax and
    // the dispatch page, popped last.
    "mov eax, ss",
    "push rax",
    "push qword ptr [rdi + {rsp}]",
    "push qword ptr [rdi + {rflags}]",
    "and qword ptr [rsp], {keep}",
    "or qword ptr [rsp], 0x202",
    "mov eax, cs",
    "push rax",
    "push qword ptr [rdi + {rip}]",
    "push qword ptr [rdi + {rax}]",
    "push rsi",
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
    "mov rdi, [rdi + {rdi}]",
    "pop rax",
    "mov dword ptr [rax + {disabled}], 0",
    "test qword ptr [rax + {events}], {pending}",
    "jnz 2f",
    "pop rax",
    "iretq",
    // A revocation was deferred while we were disabled: disabled again,
    // back to the caller (its registers restored), nothing consumed.
    "2:",
    "mov dword ptr [rax + {disabled}], 1",
    "add rsp, 48",
    "ldmxcsr [rsp]",
    "fldcw [rsp + 4]",
    "add rsp, 8",
    "pop r15",
    "pop r14",
    "pop r13",
    "pop r12",
    "pop rbp",
    "pop rbx",
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
/// Must be called with `d.disabled` set, on a stack other than the one
/// `ctx` runs on, with [`range`] registered as the resume range; `ctx`
/// must be a valid user context (an `fxsave` image `fxrstor` accepts, a
/// user `rip` and `rsp`) that nothing else resumes, and everything the
/// caller's stack frame owns is abandoned when it resumes.
pub unsafe fn resume(ctx: &UserContext, d: &Dispatch) -> Pending {
    // SAFETY: per this function's contract.
    let r = unsafe { libos_resume(ctx, d) };
    debug_assert_eq!(r, 1);
    Pending
}

#[cfg(test)]
mod tests;
