//! Full user contexts ([`UserContext`]), saved and resumed in user mode.
//!
//! One representation serves every way a thread stops: the kernel fills a
//! context at a revocation, repossession or fault; [`leave`] fills one at a
//! call boundary (a voluntary switch) and moves to another stack. [`resume`] restores
//! either kind exactly, from any memory, without a system call, so the
//! libOS keeps its threads' contexts in its own table.
//!
//! [`leave`] records the callee-saved registers, the stack pointer and the
//! return address; of the FPU, only the control state (MXCSR, x87 control
//! word, an empty x87 stack) unless the thread is flagged as using SSE, in
//! which case the whole `fxsave` image. Vector registers are caller-saved
//! at a call, so nothing else is live there.
//!
//! [`resume`] lives in its own section between `libos_resume_start` and
//! `libos_resume_end`; [`range`] is what the upcall table registers as the
//! resume range. While the program counter is in that range the kernel
//! treats the environment as disabled even with the flag clear. The routine
//! loads every register, then, as its very last steps, clears the disabled
//! flag, checks `REVOCATION_PENDING` once more, and jumps to the context.
//! A revocation deferred before the flag was cleared is seen by that check
//! (the context is then not entered: the flag is set again and the
//! caller's `on_pending` handler runs); one arriving after it finds the
//! program counter in the range and is retried by the kernel once the
//! context runs.
//!
//! It does not use `iretq`: QEMU's TCG performs the stack reads of an
//! `iretq` executed in ring 3 as supervisor accesses, which SMAP refuses
//! (a page fault on the upcall stack). Instead the last words are staged
//! just *below* the target's 128-byte red zone (memory the System V ABI
//! lets anything clobber at any time, like a signal frame), and
//! `popfq; ret 128` lands on the target with its stack pointer exact. So a
//! context needs [`STAGE`] bytes of mapped stack below its `rsp`.
//!
//! `fs_base` is not restored (ring 3 cannot write it without FSGSBASE);
//! threads keep their thread-local pointer elsewhere.

use core::arch::global_asm;
use core::mem::offset_of;

use abi::shared::{events, Dispatch, UserContext};

/// Runs when [`resume`] finds a revocation pending at the last moment: the
/// context was not entered and is intact, the disabled flag is set again.
/// It must clear `REVOCATION_PENDING` and give the slice up.
pub type OnPending = extern "C" fn(d: &Dispatch) -> !;

/// Where [`leave`] continues: `f(a0, a1)` on the new stack; never returns.
pub type Continue = extern "C" fn(a0: usize, a1: usize) -> !;

extern "C" {
    fn libos_context_leave(
        ctx: *mut UserContext,
        full: u64,
        stack: u64,
        f: Continue,
        a0: usize,
        a1: usize,
    );
    fn libos_resume(ctx: *const UserContext, d: *const Dispatch, on: OnPending, stack: u64) -> !;
    static libos_resume_start: u8;
    static libos_resume_end: u8;
}

/// Flags a resumed context may carry: CF PF AF ZF SF TF IF DF OF AC ID.
const RFLAGS_KEEP: u32 = 0x24_0fd5;
/// The System V red zone below a stack pointer, which must not be touched.
pub const RED_ZONE: u64 = 128;
/// Bytes below the red zone [`resume`] writes to: the dispatch page, the
/// pending handler and its stack, then rax, rflags, rip.
pub const STAGE: u64 = RED_ZONE + 48;

global_asm!(
    ".pushsection .text.libos_context, \"ax\"",
    ".global libos_context_leave",
    "libos_context_leave:",
    "mov [rdi + {rbx}], rbx",
    "mov [rdi + {rbp}], rbp",
    "mov [rdi + {r12}], r12",
    "mov [rdi + {r13}], r13",
    "mov [rdi + {r14}], r14",
    "mov [rdi + {r15}], r15",
    "lea rax, [rsp + 8]",
    "mov [rdi + {rsp}], rax",
    "mov rax, [rsp]",
    "mov [rdi + {rip}], rax",
    "mov qword ptr [rdi + {rax}], 1",
    "mov qword ptr [rdi + {rflags}], 0x202",
    "mov qword ptr [rdi + {valid}], 1",
    "test rsi, rsi",
    "jz 2f",
    "fxsave64 [rdi + {fx}]",
    "jmp 3f",
    // Control state only: FCW, FSW = 0, abridged FTW = 0 (empty), MXCSR.
    "2:",
    "fnstcw [rdi + {fx}]",
    "mov word ptr [rdi + {fx} + 2], 0",
    "mov byte ptr [rdi + {fx} + 4], 0",
    "stmxcsr [rdi + {fx} + 24]",
    // Continue on the new stack: f(a0, a1).
    "3:",
    "mov rsp, rdx",
    "xor ebp, ebp",
    "mov rdi, r8",
    "mov rsi, r9",
    "call rcx",
    "ud2",
    ".popsection",
    ".pushsection .text.libos_resume, \"ax\"",
    ".global libos_resume_start",
    ".global libos_resume_end",
    ".global libos_resume",
    ".balign 16",
    "libos_resume_start:",
    "libos_resume:",
    // rdi = context, rsi = dispatch page, rdx = on_pending, rcx = its
    // stack. Stage below the target's red zone, from rax = S upwards:
    // dispatch, on_pending, its stack, the target's rax, rflags, rip.
    "mov rax, [rdi + {rsp}]",
    "sub rax, {stage}",
    "mov [rax], rsi",
    "mov [rax + 8], rdx",
    "mov [rax + 16], rcx",
    "mov rcx, [rdi + {rax}]",
    "mov [rax + 24], rcx",
    "mov rcx, [rdi + {rflags}]",
    "and rcx, {keep}",
    "or rcx, 0x202",
    "mov [rax + 32], rcx",
    "mov rcx, [rdi + {rip}]",
    "mov [rax + 40], rcx",
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
    "mov rdi, [rdi + {rdi}]",
    "pop rax",
    "mov dword ptr [rax + {disabled}], 0",
    "test qword ptr [rax + {events}], {pending}",
    "jnz 2f",
    "add rsp, 16",
    "pop rax",
    "popfq",
    "ret {red_zone}",
    // Pending: disabled again, on_pending(dispatch) on its own stack.
    "2:",
    "mov dword ptr [rax + {disabled}], 1",
    "mov rdi, rax",
    "pop rax",
    "pop rsp",
    "call rax",
    "ud2",
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
    valid = const offset_of!(UserContext, valid),
    fx = const offset_of!(UserContext, fx),
    disabled = const offset_of!(Dispatch, disabled),
    events = const offset_of!(Dispatch, events),
    pending = const events::REVOCATION_PENDING,
    keep = const RFLAGS_KEEP,
    stage = const STAGE,
    red_zone = const RED_ZONE,
);

const _: () = assert!(events::REVOCATION_PENDING < 1 << 31);

/// Saves the calling thread into `ctx` as of this call (the whole FPU
/// image with `full`, else its control state), then continues with
/// `f(a0, a1)` on `stack_top`. Returns when `ctx` is resumed.
///
/// Saving and leaving are one step, so the caller's frame runs no code
/// between the save and the resume (no `setjmp` hazard: to the compiler
/// this is an ordinary call that returns once).
///
/// # Safety
/// `ctx` must stay valid and unused by anyone else until it is resumed;
/// `stack_top` must be a 16-byte aligned stack free for `f`; the caller's
/// stack must not be used by anyone else until `ctx` is resumed.
pub unsafe fn leave(
    ctx: *mut UserContext,
    full: bool,
    stack_top: u64,
    f: Continue,
    a0: usize,
    a1: usize,
) {
    // SAFETY: per this function's contract; the routine writes only `ctx`
    // and, once resumed, returns with the callee-saved registers as saved.
    unsafe { libos_context_leave(ctx, u64::from(full), stack_top, f, a0, a1) }
}

/// The resume range to register in the upcall table: `(start, end)`.
pub fn range() -> (u64, u64) {
    // Only the labels' addresses are taken, which needs no `unsafe`.
    (
        &raw const libos_resume_start as u64,
        &raw const libos_resume_end as u64,
    )
}

/// Whether `rip` is inside the resume routine.
pub fn in_range(rip: u64) -> bool {
    let (start, end) = range();
    (start..end).contains(&rip)
}

/// Restores `ctx` exactly (registers, flags, FPU image) and clears
/// `d.disabled` as the last step before entering it. If a revocation is
/// pending at that moment, calls `on_pending(d)` on `stack_top` instead
/// (with the disabled flag set and `ctx` untouched).
///
/// # Safety
/// Must be called with `d.disabled` set and [`range`] registered as the
/// resume range; `ctx` must be a valid user context (an FPU image
/// `fxrstor` accepts, a user `rip`, an `rsp` with [`STAGE`] bytes below it
/// that are writable and not in use) that nothing else resumes meanwhile;
/// `stack_top` must be a 16-byte aligned stack free for `on_pending`.
/// Whatever the caller's stack frames own is abandoned.
#[inline]
pub unsafe fn resume(ctx: &UserContext, d: &Dispatch, on_pending: OnPending, stack_top: u64) -> ! {
    // SAFETY: per this function's contract.
    unsafe { libos_resume(ctx, d, on_pending, stack_top) }
}

#[cfg(test)]
mod tests;
