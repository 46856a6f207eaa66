//! Loads distinctive values into xmm0-15 and MXCSR, then checks across many
//! revocations and repossessions that they never change.
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
    ok && mxcsr & 0xffbf == 0x7f80
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
