//! The routines run in a Linux process exactly as in ring 3, so they are
//! tested here: a resumed context gets every register, the flags and the
//! FPU image exactly, its red zone untouched; a pending revocation stops
//! it; a thread that left through `leave` comes back intact.

use std::alloc::{alloc_zeroed, dealloc, Layout};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use super::*;

/// The landing records every register here, in `UserContext` order
/// (rax..r15), then rflags, mxcsr, xmm13.
static LANDED: [AtomicU64; 19] = [const { AtomicU64::new(0) }; 19];
/// The test's stack pointer while a resumed context runs.
static TEST_RSP: AtomicU64 = AtomicU64::new(0);
/// The argument the pending handler got.
static PENDING_ARG: AtomicU64 = AtomicU64::new(0);
/// The statics above are shared by the tests in this file.
static SERIAL: Mutex<()> = Mutex::new(());

extern "C" {
    /// Calls `libos_resume(ctx, d, libos_test_on_pending, stack)`; returns 0
    /// once the context reached `libos_test_landing`, 1 if the pending
    /// handler ran instead.
    fn libos_test_resume(ctx: *const UserContext, d: *const Dispatch, stack: u64) -> u64;
    fn libos_test_landing();
}

core::arch::global_asm!(
    "libos_test_resume:",
    "push rbx",
    "push rbp",
    "push r12",
    "push r13",
    "push r14",
    "push r15",
    "sub rsp, 8",
    "stmxcsr [rsp]",
    "fnstcw [rsp + 4]",
    "mov [rip + {sp}], rsp",
    "mov rcx, rdx",
    "lea rdx, [rip + libos_test_on_pending]",
    "call libos_resume",
    "ud2",
    "libos_test_on_pending:",
    "mov [rip + {arg}], rdi",
    "mov rsp, [rip + {sp}]",
    "mov eax, 1",
    "jmp 3f",
    "libos_test_landing:",
    "mov [rip + {out} + 0], rax",
    "mov [rip + {out} + 8], rbx",
    "mov [rip + {out} + 16], rcx",
    "mov [rip + {out} + 24], rdx",
    "mov [rip + {out} + 32], rsi",
    "mov [rip + {out} + 40], rdi",
    "mov [rip + {out} + 48], rbp",
    "mov [rip + {out} + 56], rsp",
    "mov [rip + {out} + 64], r8",
    "mov [rip + {out} + 72], r9",
    "mov [rip + {out} + 80], r10",
    "mov [rip + {out} + 88], r11",
    "mov [rip + {out} + 96], r12",
    "mov [rip + {out} + 104], r13",
    "mov [rip + {out} + 112], r14",
    "mov [rip + {out} + 120], r15",
    "pushfq",
    "pop rax",
    "mov [rip + {out} + 128], rax",
    "stmxcsr [rip + {out} + 136]",
    "movq rax, xmm13",
    "mov [rip + {out} + 144], rax",
    "mov rsp, [rip + {sp}]",
    "xor eax, eax",
    "3:",
    "ldmxcsr [rsp]",
    "fldcw [rsp + 4]",
    "add rsp, 8",
    "pop r15",
    "pop r14",
    "pop r13",
    "pop r12",
    "pop rbp",
    "pop rbx",
    "ret",
    sp = sym TEST_RSP,
    out = sym LANDED,
    arg = sym PENDING_ARG,
);

/// A zeroed dispatch page (every field is plain data or an atomic).
struct Page(*mut Dispatch);

impl Page {
    fn new() -> Self {
        // SAFETY: a non-zero-sized layout; all-zero is a valid `Dispatch`.
        let page = Page(unsafe { alloc_zeroed(Layout::new::<Dispatch>()) }.cast());
        page.get().disabled.store(1, Ordering::Relaxed);
        page
    }
    fn get(&self) -> &Dispatch {
        // SAFETY: allocated and initialised in `new`, freed in `drop`.
        unsafe { &*self.0 }
    }
}

impl Drop for Page {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with this layout.
        unsafe { dealloc(self.0.cast(), Layout::new::<Dispatch>()) }
    }
}

/// A 64 KiB stack, 16-byte aligned.
struct Stack(Vec<u128>);

impl Stack {
    fn new() -> Self {
        Stack(vec![0; 4096])
    }
    fn top(&mut self) -> u64 {
        self.0.as_mut_ptr_range().end as u64
    }
}

/// A context that lands in `libos_test_landing` with distinctive values,
/// on a stack of its own, with xmm13 and MXCSR from its image.
fn context(stack: &mut Stack) -> UserContext {
    let mut ctx = UserContext::ZERO;
    // SAFETY: fxsave64 stores 512 bytes to a 16-aligned buffer we own.
    unsafe { core::arch::asm!("fxsave64 [{}]", in(reg) ctx.fx.as_mut_ptr()) };
    ctx.fx[24..28].copy_from_slice(&0x7f80u32.to_le_bytes()); // MXCSR
    ctx.fx[160 + 13 * 16..168 + 13 * 16].copy_from_slice(&0xabcd_ef01_2345_6789u64.to_le_bytes());
    let regs = [
        &mut ctx.rax,
        &mut ctx.rbx,
        &mut ctx.rcx,
        &mut ctx.rdx,
        &mut ctx.rsi,
        &mut ctx.rdi,
        &mut ctx.rbp,
        &mut ctx.rsp,
        &mut ctx.r8,
        &mut ctx.r9,
        &mut ctx.r10,
        &mut ctx.r11,
        &mut ctx.r12,
        &mut ctx.r13,
        &mut ctx.r14,
        &mut ctx.r15,
    ];
    for (i, r) in regs.into_iter().enumerate() {
        *r = 0x1111_0000_0000_0000u64.wrapping_mul(i as u64 + 1) + i as u64;
    }
    // A stack pointer that is not 16-aligned: it must arrive as it was.
    ctx.rsp = stack.top() - 256 - 8;
    ctx.rip = libos_test_landing as *const () as u64;
    ctx.rflags = 0x202 | 1 | 1 << 7 | 1 << 14; // CF, SF, and NT (dropped)
    ctx.valid = 1;
    ctx
}

#[test]
fn resumes_every_register_exactly_and_clears_disabled() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let (mut stack, mut handler_stack) = (Stack::new(), Stack::new());
    let ctx = context(&mut stack);
    let page = Page::new();
    // SAFETY: a valid context on a stack of its own, which lands in the
    // helper and returns to us.
    let r = unsafe { libos_test_resume(&ctx, page.get(), handler_stack.top()) };
    assert_eq!(r, 0, "the pending handler ran instead of the context");
    let expect = [
        ctx.rax, ctx.rbx, ctx.rcx, ctx.rdx, ctx.rsi, ctx.rdi, ctx.rbp, ctx.rsp, ctx.r8, ctx.r9,
        ctx.r10, ctx.r11, ctx.r12, ctx.r13, ctx.r14, ctx.r15,
    ];
    for (i, want) in expect.into_iter().enumerate() {
        assert_eq!(LANDED[i].load(Ordering::Relaxed), want, "register {i}");
    }
    let rflags = LANDED[16].load(Ordering::Relaxed);
    assert_eq!(
        rflags & 0x4fd5,
        0x281,
        "CF and SF restored, NT dropped: {rflags:#x}"
    );
    assert_eq!(LANDED[17].load(Ordering::Relaxed) as u32, 0x7f80);
    assert_eq!(LANDED[18].load(Ordering::Relaxed), 0xabcd_ef01_2345_6789);
    assert_eq!(page.get().disabled.load(Ordering::Relaxed), 0);
    // The red zone and everything above it were not written: only the
    // staging words below the red zone (and the landing's own `pushfq`,
    // just below its stack pointer) were.
    let base = stack.0.as_ptr() as u64;
    let word = |addr: u64| ((addr - base) / 16) as usize;
    for addr in (ctx.rsp - STAGE..ctx.rsp - RED_ZONE).step_by(8) {
        stack.0[word(addr)] = 0;
    }
    stack.0[word(ctx.rsp - 8)] = 0;
    assert!(stack.0.iter().all(|&w| w == 0));
}

#[test]
fn pending_revocation_runs_the_handler_instead() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let (mut stack, mut handler_stack) = (Stack::new(), Stack::new());
    let ctx = context(&mut stack);
    let page = Page::new();
    page.get()
        .events
        .store(events::REVOCATION_PENDING, Ordering::Relaxed);
    LANDED[0].store(0, Ordering::Relaxed);
    // SAFETY: as above.
    let r = unsafe { libos_test_resume(&ctx, page.get(), handler_stack.top()) };
    assert_eq!(r, 1);
    assert_eq!(PENDING_ARG.load(Ordering::Relaxed), page.0 as u64);
    assert_eq!(LANDED[0].load(Ordering::Relaxed), 0, "the context ran");
    assert_eq!(page.get().disabled.load(Ordering::Relaxed), 1);
    assert_eq!(
        page.get().events.load(Ordering::Relaxed),
        events::REVOCATION_PENDING
    );
}

#[test]
fn the_range_covers_the_routine_only() {
    let (start, end) = range();
    assert!(start < end && end - start < 512);
    assert!(in_range(libos_resume as *const () as u64));
    assert!(!in_range(libos_context_leave as *const () as u64));
    assert!(!in_range(libos_test_landing as *const () as u64));
}

// ---- leave, then resume ----------------------------------------------------

/// What the continuation needs: the saved thread and where to resume it.
struct Trip {
    ctx: UserContext,
    page: Page,
    resume_stack: Stack,
    /// The thread's stack pointer as the continuation saw it.
    seen_rsp: u64,
}

/// Runs on the other stack: scribbles over the FPU control state and xmm13
/// (the thread must get its own back), then resumes the thread.
extern "C" fn come_back(trip: usize, _: usize) -> ! {
    // SAFETY: `trip` is the `Trip` the test keeps alive throughout.
    let trip = unsafe { &mut *(trip as *mut Trip) };
    trip.seen_rsp = trip.ctx.rsp;
    set_mxcsr(0x1f80);
    // SAFETY: writes a vector register nothing here uses.
    unsafe { core::arch::asm!("movq xmm13, {}", in(reg) 0u64, out("xmm13") _) };
    trip.page.get().disabled.store(1, Ordering::Relaxed);
    let top = trip.resume_stack.top();
    // SAFETY: the context was saved by `leave` on the test's stack, which
    // is still live below the call; nothing else resumes it.
    unsafe { resume(&trip.ctx, trip.page.get(), never_pending, top) }
}

extern "C" fn never_pending(_: &Dispatch) -> ! {
    std::process::abort()
}

fn mxcsr() -> u32 {
    let mut v = 0u32;
    // SAFETY: stores MXCSR to a local.
    unsafe { core::arch::asm!("stmxcsr [{}]", in(reg) &mut v) };
    v
}

fn set_mxcsr(v: u32) {
    // SAFETY: callers pass valid MXCSR values.
    unsafe { core::arch::asm!("ldmxcsr [{}]", in(reg) &v) };
}

extern "C" {
    /// Loads rbx, rbp, r12-r15 with `seed + 0..6`, calls
    /// `libos_context_leave(ctx, full, stack, f, a0, 0)` and returns
    /// non-zero if any differs once resumed.
    fn libos_test_leave(
        ctx: *mut UserContext,
        full: u64,
        stack: u64,
        f: Continue,
        a0: usize,
        seed: u64,
    ) -> u64;
}

core::arch::global_asm!(
    "libos_test_leave:",
    "push rbx",
    "push rbp",
    "push r12",
    "push r13",
    "push r14",
    "push r15",
    "mov rbx, r9",
    "lea rbp, [r9 + 1]",
    "lea r12, [r9 + 2]",
    "lea r13, [r9 + 3]",
    "lea r14, [r9 + 4]",
    "lea r15, [r9 + 5]",
    "push r9",
    "xor r9d, r9d",
    "call libos_context_leave",
    "pop r9",
    "xor eax, eax",
    "xor rbx, r9",
    "or rax, rbx",
    "lea rdx, [r9 + 1]",
    "xor rbp, rdx",
    "or rax, rbp",
    "lea rdx, [r9 + 2]",
    "xor r12, rdx",
    "or rax, r12",
    "lea rdx, [r9 + 3]",
    "xor r13, rdx",
    "or rax, r13",
    "lea rdx, [r9 + 4]",
    "xor r14, rdx",
    "or rax, r14",
    "lea rdx, [r9 + 5]",
    "xor r15, rdx",
    "or rax, r15",
    "pop r15",
    "pop r14",
    "pop r13",
    "pop r12",
    "pop rbp",
    "pop rbx",
    "ret",
);

fn round_trip(full: bool) {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let mut trip = Box::new(Trip {
        ctx: UserContext::ZERO,
        page: Page::new(),
        resume_stack: Stack::new(),
        seen_rsp: 0,
    });
    let mut other = Stack::new();
    let saved_mxcsr = mxcsr();
    set_mxcsr(0x3f80); // round down: the thread's own control state
                       // SAFETY: writes a vector register the surrounding code does not use.
    unsafe { core::arch::asm!("movq xmm13, {}", in(reg) 0x5555u64, out("xmm13") _) };
    let ctx = &raw mut trip.ctx;
    let arg = &raw mut *trip as usize;
    // SAFETY: the continuation resumes `ctx` while this frame is live.
    let bad =
        unsafe { libos_test_leave(ctx, u64::from(full), other.top(), come_back, arg, 0x7000) };
    let xmm13: u64;
    // SAFETY: reads a vector register.
    unsafe { core::arch::asm!("movq {}, xmm13", out(reg) xmm13) };
    let mine = mxcsr();
    set_mxcsr(saved_mxcsr);
    assert_eq!(bad, 0, "callee-saved registers changed across leave/resume");
    assert_eq!(mine, 0x3f80, "the thread's MXCSR was not restored");
    assert_eq!(trip.page.get().disabled.load(Ordering::Relaxed), 0);
    assert!(trip.seen_rsp != 0 && trip.ctx.valid == 1);
    if full {
        assert_eq!(xmm13, 0x5555, "a full save keeps the vector registers");
    }
}

#[test]
fn leave_then_resume_keeps_callee_saved_and_fpu_control() {
    round_trip(false);
}

#[test]
fn leave_with_full_fpu_keeps_vector_registers() {
    round_trip(true);
}
