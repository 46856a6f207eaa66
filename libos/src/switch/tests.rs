//! The switch runs on the host exactly as in ring 3: coroutines on heap
//! stacks, checked for callee-saved registers, FPU control state and (with
//! [`FX`]) vector registers.

use super::*;

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

/// Both saved stack pointers of a main/coroutine pair, and what they saw.
#[derive(Default)]
struct Pair {
    main_sp: u64,
    co_sp: u64,
    co_flags: u64,
    rounds: u64,
    bad: u64,
}

impl Pair {
    fn enter_co(&mut self) {
        // SAFETY: `co_sp` was saved by the coroutine (or built by
        // init_frame) and nothing else runs it; `main_sp` lives in `self`.
        unsafe { switch(&mut self.main_sp, 0, self.co_sp, self.co_flags) }
    }
    fn enter_main(&mut self) {
        // SAFETY: as `enter_co`, the other way round.
        unsafe { switch(&mut self.co_sp, self.co_flags, self.main_sp, 0) }
    }
}

fn start(pair: &mut Pair, stack: &mut Stack, entry: extern "C" fn(usize) -> !, flags: u64) {
    pair.co_flags = flags;
    // SAFETY: the stack is ours, big enough and 16-aligned.
    pair.co_sp = unsafe { init_frame(stack.top(), entry, pair as *mut Pair as usize, flags) };
}

extern "C" fn counter(arg: usize) -> ! {
    // SAFETY: `arg` is the `Pair` the test keeps alive while we run.
    let pair = unsafe { &mut *(arg as *mut Pair) };
    // The entry is entered like an ordinary call: rsp % 16 == 8.
    let rsp: u64;
    // SAFETY: reads the stack pointer.
    unsafe { core::arch::asm!("mov {}, rsp", out(reg) rsp) };
    pair.bad += u64::from(!rsp.is_multiple_of(16));
    loop {
        pair.rounds += 1;
        pair.enter_main();
    }
}

#[test]
fn ping_pong_runs_both_sides_in_turn() {
    let mut stack = Stack::new();
    let mut pair = Pair::default();
    start(&mut pair, &mut stack, counter, 0);
    for i in 1..=1000 {
        pair.enter_co();
        assert_eq!(pair.rounds, i);
    }
    assert_eq!(pair.bad, 0);
}

extern "C" {
    /// Loads rbx, rbp, r12-r15 with `seed + 0..6`, switches, and returns
    /// non-zero if any differs when switched back to.
    fn libos_test_clobber(from_sp: *mut u64, to_sp: u64, flags: u64, seed: u64) -> u64;
}

core::arch::global_asm!(
    "libos_test_clobber:",
    "push rbx",
    "push rbp",
    "push r12",
    "push r13",
    "push r14",
    "push r15",
    "push rcx",
    "mov rbx, rcx",
    "lea rbp, [rcx + 1]",
    "lea r12, [rcx + 2]",
    "lea r13, [rcx + 3]",
    "lea r14, [rcx + 4]",
    "lea r15, [rcx + 5]",
    "call libos_switch",
    "pop rcx",
    "xor eax, eax",
    "xor rbx, rcx",
    "or rax, rbx",
    "lea rdx, [rcx + 1]",
    "xor rbp, rdx",
    "or rax, rbp",
    "lea rdx, [rcx + 2]",
    "xor r12, rdx",
    "or rax, r12",
    "lea rdx, [rcx + 3]",
    "xor r13, rdx",
    "or rax, r13",
    "lea rdx, [rcx + 4]",
    "xor r14, rdx",
    "or rax, r14",
    "lea rdx, [rcx + 5]",
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

extern "C" fn clobberer(arg: usize) -> ! {
    // SAFETY: as in `counter`.
    let pair = unsafe { &mut *(arg as *mut Pair) };
    loop {
        pair.rounds += 1;
        // SAFETY: as `Pair::run_main`.
        pair.bad |= unsafe { libos_test_clobber(&mut pair.co_sp, pair.main_sp, 0, 0xc0de_0000) };
    }
}

#[test]
fn callee_saved_registers_survive_on_both_sides() {
    let mut stack = Stack::new();
    let mut pair = Pair::default();
    start(&mut pair, &mut stack, clobberer, 0);
    let mut main_bad = 0;
    for _ in 0..100 {
        // SAFETY: as `Pair::run_co`.
        main_bad |=
            unsafe { libos_test_clobber(&mut pair.main_sp, pair.co_sp, 0, 0x5eed_0000_0000) };
    }
    assert_eq!(main_bad, 0, "main's registers changed across a switch");
    assert_eq!(
        pair.bad, 0,
        "the coroutine's registers changed across a switch"
    );
    assert_eq!(pair.rounds, 100);
}

fn mxcsr() -> u32 {
    let mut v = 0u32;
    // SAFETY: stores MXCSR to a local.
    unsafe { core::arch::asm!("stmxcsr [{}]", in(reg) &mut v) };
    v
}

fn set_mxcsr(v: u32) {
    // SAFETY: callers pass valid MXCSR values (reserved bits clear).
    unsafe { core::arch::asm!("ldmxcsr [{}]", in(reg) &v) };
}

fn fcw() -> u16 {
    let mut v = 0u16;
    // SAFETY: stores the x87 control word to a local.
    unsafe { core::arch::asm!("fnstcw [{}]", in(reg) &mut v) };
    v
}

fn set_fcw(v: u16) {
    // SAFETY: any control word is valid (exceptions stay masked here).
    unsafe { core::arch::asm!("fldcw [{}]", in(reg) &v) };
}

const CO_MXCSR: u32 = 0x7f80; // round toward zero
const CO_FCW: u16 = 0x0f7f; // round toward zero

extern "C" fn fpu_control(arg: usize) -> ! {
    // SAFETY: as in `counter`.
    let pair = unsafe { &mut *(arg as *mut Pair) };
    // A new thread starts with the reset state, whatever its creator had.
    pair.bad |= u64::from(mxcsr() != MXCSR_DEFAULT || fcw() != FCW_DEFAULT);
    set_mxcsr(CO_MXCSR);
    set_fcw(CO_FCW);
    loop {
        pair.rounds += 1;
        pair.enter_main();
        pair.bad |= u64::from(mxcsr() != CO_MXCSR) << 1 | u64::from(fcw() != CO_FCW) << 2;
    }
}

#[test]
fn each_thread_keeps_its_own_fpu_control_state() {
    let mut stack = Stack::new();
    let mut pair = Pair::default();
    start(&mut pair, &mut stack, fpu_control, 0);
    let (m, f) = (mxcsr(), fcw());
    set_mxcsr(0x1f80 | 0x2000); // round down
    for _ in 0..10 {
        pair.enter_co();
        assert_eq!(mxcsr(), 0x3f80);
        assert_eq!(fcw(), f);
    }
    set_mxcsr(m);
    assert_eq!(pair.bad, 0, "coroutine saw {:#x}", pair.bad);
}

fn xmm13() -> u64 {
    let v: u64;
    // SAFETY: reads a vector register.
    unsafe { core::arch::asm!("movq {}, xmm13", out(reg) v) };
    v
}

fn set_xmm13(v: u64) {
    // SAFETY: writes a vector register the surrounding code does not use.
    unsafe { core::arch::asm!("movq xmm13, {}", in(reg) v, out("xmm13") _) };
}

extern "C" fn vector_user(arg: usize) -> ! {
    // SAFETY: as in `counter`.
    let pair = unsafe { &mut *(arg as *mut Pair) };
    loop {
        let mine = 0xfeed_0000 + pair.rounds;
        set_xmm13(mine);
        pair.rounds += 1;
        pair.enter_main();
        pair.bad |= u64::from(xmm13() != mine);
    }
}

#[test]
fn fx_threads_keep_vector_registers() {
    let mut stack = Stack::new();
    let mut pair = Pair::default();
    start(&mut pair, &mut stack, vector_user, FX);
    assert_eq!(frame_bytes(FX), 64 + 512);
    for i in 0..50 {
        pair.enter_co();
        set_xmm13(i); // main scribbles over the coroutine's value
    }
    assert_eq!(pair.bad, 0);
    assert_eq!(pair.rounds, 50);
}
