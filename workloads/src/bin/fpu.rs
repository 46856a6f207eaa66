//! Loads distinctive values into xmm0-15, MXCSR, the x87 control word and
//! two x87 registers, then checks across many revocations and
//! repossessions that they never change.
#![cfg_attr(target_os = "none", no_std, no_main)]

use core::sync::atomic::Ordering;

use libos::{report, rt, App, Epilogue};

fn pattern(core: usize, i: u64) -> u64 {
    0x0123_4567_89ab_cdef_u64.rotate_left(i as u32 * 4) ^ (core as u64) << 56 ^ i
}

macro_rules! each_xmm {
    ($m:ident) => {
        $m!(0);
        $m!(1);
        $m!(2);
        $m!(3);
        $m!(4);
        $m!(5);
        $m!(6);
        $m!(7);
        $m!(8);
        $m!(9);
        $m!(10);
        $m!(11);
        $m!(12);
        $m!(13);
        $m!(14);
        $m!(15);
    };
}

fn load(core: usize) {
    macro_rules! set {
        ($i:literal) => {
            // SAFETY: writes one SSE register, which compiled code never uses
            // on this soft-float target.
            unsafe { core::arch::asm!(concat!("movq xmm", $i, ", {}"), in(reg) pattern(core, $i)) };
        };
    }
    each_xmm!(set);
    let mxcsr: u32 = 0x1f80 | 0x6000; // all masked, round toward zero
                                      // SAFETY: a valid MXCSR value.
    unsafe { core::arch::asm!("ldmxcsr [{}]", in(reg) &mxcsr) };
    // x87: round toward zero, and two values on its stack (st0 = 1, st1 = pi).
    // SAFETY: x87 state, which compiled code never uses on this target.
    unsafe {
        core::arch::asm!(
            "fninit",
            "fldcw [{cw}]",
            "fldpi",
            "fld1",
            cw = in(reg) &X87_CW,
        )
    };
}

/// x87 control word: every exception masked, 64-bit precision, round
/// toward zero.
const X87_CW: u16 = 0x0f7f;
/// 1.0 and pi (rounded toward zero) as stored by `fst qword`.
const ONE: u64 = 0x3ff0_0000_0000_0000;
const PI: u64 = 0x4009_21fb_5444_2d18;

fn x87_intact() -> bool {
    let (mut cw, mut st0, mut st1) = (0u16, 0u64, 0u64);
    // SAFETY: stores the control word and st0/st1 (without popping) to
    // locals; the stack is left as it was.
    unsafe {
        core::arch::asm!(
            "fnstcw [{cw}]",
            "fst qword ptr [{a}]",
            "fxch st(1)",
            "fst qword ptr [{b}]",
            "fxch st(1)",
            cw = in(reg) &mut cw,
            a = in(reg) &mut st0,
            b = in(reg) &mut st1,
        )
    };
    cw == X87_CW && st0 == ONE && st1 == PI
}

fn check(core: usize) -> bool {
    let mut ok = true;
    macro_rules! get {
        ($i:literal) => {
            let v: u64;
            // SAFETY: reads one SSE register.
            unsafe { core::arch::asm!(concat!("movq {}, xmm", $i), out(reg) v) };
            ok &= v == pattern(core, $i);
        };
    }
    each_xmm!(get);
    let mut mxcsr = 0u32;
    // SAFETY: stores MXCSR to a local.
    unsafe { core::arch::asm!("stmxcsr [{}]", in(reg) &mut mxcsr) };
    ok && mxcsr & 0xffbf == 0x7f80 && x87_intact()
}

fn worker(core: usize) -> ! {
    load(core);
    let mut checks = 0u64;
    let mut ok = true;
    let mut reported = false;
    loop {
        ok &= check(core);
        checks += 1;
        let s = rt::stats(core);
        if !reported && s.prologues.load(Ordering::Relaxed) >= 30 {
            reported = true;
            report!(
                "\"kind\":\"fpu\",\"core\":{core},\"ok\":{ok},\"checks\":{checks},\"prologues\":{},\"repossessed\":{}",
                s.prologues.load(Ordering::Relaxed),
                s.repossessed.load(Ordering::Relaxed)
            );
        }
    }
}

// Ignoring revocation makes every turn go through both save paths: the
// enabled area (revocation, then resumed by the epilogue) and the preempted
// area (repossession, then resumed at the next prologue).
libos::program!(App {
    name: "fpu",
    main: worker,
    epilogue: Epilogue::Ignore,
    on_fault: None
});
