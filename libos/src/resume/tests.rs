//! The routine runs in a Linux process exactly as in ring 3, so it is
//! tested here: every register, the flags and the FPU image must arrive
//! exactly, the red zone stay untouched, and a pending revocation stop it.

use std::alloc::{alloc_zeroed, dealloc, Layout};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use super::*;

/// The landing records every register here, in `UserContext` order
/// (rax..r15), then rip-less extras: rflags, mxcsr, xmm13.
static LANDED: [AtomicU64; 19] = [const { AtomicU64::new(0) }; 19];
/// The test's stack pointer while the resumed context runs.
static TEST_RSP: AtomicU64 = AtomicU64::new(0);
/// The statics above are shared by the tests in this file.
static SERIAL: Mutex<()> = Mutex::new(());

extern "C" {
    /// Calls `libos_resume(ctx, d)`; returns 0 once the context reached
    /// `libos_test_landing`, or what the routine returned (1, pending).
    fn libos_test_resume(ctx: *const UserContext, d: *const Dispatch) -> u64;
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
    "call libos_resume",
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
);

/// A zeroed dispatch page (every field is plain data or an atomic).
struct Page(*mut Dispatch);

impl Page {
    fn new() -> Self {
        // SAFETY: a non-zero-sized layout; all-zero is a valid `Dispatch`.
        Page(unsafe { alloc_zeroed(Layout::new::<Dispatch>()) }.cast())
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

/// A context that lands in `libos_test_landing` with distinctive values,
/// on a stack of its own, with xmm13 and MXCSR from its image.
fn context(stack: &mut [u128]) -> UserContext {
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
    // A stack pointer that is not 16-aligned, inside the context's own
    // stack: it must arrive as it was, its red zone untouched.
    ctx.rsp = stack.as_mut_ptr_range().end as u64 - 256 - 8;
    ctx.rip = libos_test_landing as *const () as u64;
    ctx.rflags = 0x202 | 1 | 1 << 7 | 1 << 14; // CF, SF, and NT (dropped)
    ctx.valid = 1;
    ctx
}

#[test]
fn resumes_every_register_exactly_and_clears_disabled() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let mut stack = vec![0u128; 1024];
    let ctx = context(&mut stack);
    let page = Page::new();
    page.get().disabled.store(1, Ordering::Relaxed);
    // SAFETY: a valid context on a stack of its own, which lands in the
    // helper and returns to us.
    let r = unsafe { libos_test_resume(&ctx, page.get()) };
    assert_eq!(r, 0, "resume returned instead of running the context");
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
    // The context's red zone and everything above it were not written:
    // only the two staging words below the red zone (and the landing's own
    // `pushfq`, just below its stack pointer) were.
    let base = stack.as_ptr() as u64;
    let word = |addr: u64| ((addr - base) / 16) as usize;
    stack[word(ctx.rsp - STAGE)] = 0;
    stack[word(ctx.rsp - STAGE + 8)] = 0;
    stack[word(ctx.rsp - 8)] = 0;
    assert!(stack.iter().all(|&w| w == 0));
}

#[test]
fn pending_revocation_stops_resume_with_disabled_set() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let mut stack = vec![0u128; 1024];
    let ctx = context(&mut stack);
    let page = Page::new();
    page.get().disabled.store(1, Ordering::Relaxed);
    page.get()
        .events
        .store(events::REVOCATION_PENDING, Ordering::Relaxed);
    LANDED[0].store(0, Ordering::Relaxed);
    let mut mxcsr = 0u32;
    // SAFETY: as above.
    let r = unsafe { libos_test_resume(&ctx, page.get()) };
    // SAFETY: stores MXCSR to a local.
    unsafe { core::arch::asm!("stmxcsr [{}]", in(reg) &mut mxcsr) };
    assert_eq!(r, 1);
    assert_eq!(LANDED[0].load(Ordering::Relaxed), 0, "the context ran");
    assert_eq!(page.get().disabled.load(Ordering::Relaxed), 1);
    assert_eq!(
        page.get().events.load(Ordering::Relaxed),
        events::REVOCATION_PENDING
    );
    assert_ne!(mxcsr, 0x7f80, "the caller's MXCSR was not restored");
}

#[test]
fn the_range_covers_the_routine() {
    let (start, end) = range();
    assert!(start < end && end - start < 512);
    assert!(in_range(libos_resume as *const () as u64));
    assert!(!in_range(libos_test_landing as *const () as u64));
}
