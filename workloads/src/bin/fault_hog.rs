//! Hostile: counts, with a breakpoint (an `int3` its handler resumes past)
//! every ~0.5 ms, ignores revocation (resumes itself from its epilogue)
//! and never yields. Each fault is reflected to its exception upcall
//! inside its turn, so a reflection that moved the turn's timer (armed it
//! for later) would keep the core past its grace: the kernel must
//! repossess it at the end of every grace period, as it does `hog`. (Mostly
//! enabled: a revocation that finds it in its handler, disabled, is
//! pending, and the libOS's resume hands the turn back — the cooperative
//! path, which a loop of breakpoints alone would take at every turn.)
#![cfg_attr(target_os = "none", no_std, no_main)]

use libos::abi::shared::FaultInfo;
use libos::{App, Epilogue, FaultAction};

fn on_fault(_core: usize, info: &FaultInfo) -> FaultAction {
    if info.vector == 3 {
        // #BP is a trap: the saved rip is already past the int3.
        FaultAction::Resume { skip: 0 }
    } else {
        FaultAction::Exit
    }
}

/// Loop iterations between breakpoints (~60,000 instructions, ~0.5 ms of
/// a deterministic run's core).
const COUNT_BETWEEN_FAULTS: u64 = 20_000;

fn worker(_core: usize) -> ! {
    let mut x = 0u64;
    loop {
        for _ in 0..COUNT_BETWEEN_FAULTS {
            x = core::hint::black_box(x.wrapping_add(1));
        }
        // SAFETY: traps to the kernel, which reflects it to `on_fault`;
        // the handler resumes right after it.
        unsafe { core::arch::asm!("int3") };
    }
}

libos::program!(App {
    name: "fault_hog",
    main: worker,
    epilogue: Epilogue::Ignore,
    on_fault: Some(on_fault)
});
