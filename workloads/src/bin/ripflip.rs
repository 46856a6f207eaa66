//! Hostile: rewrites a save area while the kernel resumes from it (issue
//! 14, hole 10). On every core, in turn:
//!
//! - it writes a good context into its own core's fault save area (a user
//!   `rip`, `landing`, and its own landing stack) and asks the kernel to
//!   `resume(Fault)` it;
//! - meanwhile, for a while before each of its own resumes, it flips the
//!   saved `rip` of every other core's fault area between `landing` and a
//!   non-canonical address, as fast as it can.
//!
//! So the kernel on one core reads an area that another core rewrites.
//! It must check the `rip` it resumes on the one copy it resumes from: each
//! resume either lands at `landing` or is refused (`BadAddress`). A kernel
//! that read the area again after its check would, now and then, hand
//! `iretq` the non-canonical `rip`: on hardware a #GP in ring 0; under TCG
//! (whose `iretq` does not check it) a #GP at the first fetch in ring 3,
//! and this program, with no exception handler, is killed. The fault
//! areas are the libOS's only when a fault is reflected, and this program
//! takes none.
#![cfg_attr(target_os = "none", no_std, no_main)]

use core::ptr::addr_of_mut;

use libos::abi::shared::{va, Dispatch, UserContext};
use libos::abi::syscall::{Error, SaveArea};
use libos::{report, sys, App, Epilogue};

/// Cores this program plays on (the others spin).
const CORES: usize = 16;
/// Flips of the other cores' areas between two of its own resumes.
const FLIPS: usize = 64;
/// Resumes between two reports.
const REPORT_EVERY: u64 = 1024;
/// Not canonical: a kernel that resumed it would fault at `iretq`.
const BAD_RIP: u64 = 0x8000_0000_0000_0000;

#[repr(C, align(16))]
struct Stack([u8; 4096]);
static mut LANDING_STACKS: [Stack; CORES] = [const { Stack([0; 4096]) }; CORES];

/// Per core: resumes that landed, and that were refused.
static mut LANDED: [u64; CORES] = [0; CORES];
static mut REFUSED: [u64; CORES] = [0; CORES];

fn fault_area(core: usize) -> *mut UserContext {
    let page = (va::DISPATCH + core as u64 * 0x1000) as *mut Dispatch;
    // SAFETY: a projection inside this environment's dispatch page for
    // `core` (mapped for every online core); no reference is made.
    unsafe { addr_of_mut!((*page).fault) }
}

/// Where a resume that the kernel let through lands, on `core`'s landing
/// stack (the context's `rdi`).
extern "C" fn landing(core: usize) -> ! {
    // SAFETY: only this core's counter, only on this core.
    unsafe { LANDED[core] += 1 };
    cycle(core)
}

/// One round: flip the others' areas, then resume from its own.
fn cycle(core: usize) -> ! {
    let cores = sys::sysinfo().cores as usize;
    loop {
        // SAFETY: only this core's counters, only on this core.
        let (landed, refused) = unsafe { (LANDED[core], REFUSED[core]) };
        let tried = landed + refused;
        if tried > 0 && tried % REPORT_EVERY == 0 {
            report!("\"kind\":\"ripflip\",\"landed\":{landed},\"refused\":{refused}");
        }
        for i in 0..FLIPS {
            let rip = if i % 2 == 0 {
                BAD_RIP
            } else {
                landing as *const () as u64
            };
            for other in (0..cores.min(CORES)).filter(|&c| c != core) {
                // SAFETY: the `rip` word of `other`'s fault area, written
                // volatile: the kernel may be reading it on `other` now,
                // which is the point.
                unsafe { addr_of_mut!((*fault_area(other)).rip).write_volatile(rip) };
            }
        }
        let mut ctx = UserContext::ZERO;
        ctx.rip = landing as *const () as u64;
        // SAFETY: only the address of this core's landing stack is taken.
        ctx.rsp = unsafe { (&raw mut LANDING_STACKS[core].0).cast::<u8>().add(4096 - 8) } as u64;
        ctx.rdi = core as u64;
        ctx.rflags = 0x202;
        // The FPU's initial state: x87 control word and MXCSR defaults.
        ctx.fx[0..2].copy_from_slice(&0x037fu16.to_le_bytes());
        ctx.fx[24..28].copy_from_slice(&0x1f80u32.to_le_bytes());
        ctx.valid = 1;
        // SAFETY: this core's own fault area; the others may flip its rip.
        unsafe { fault_area(core).write_volatile(ctx) };
        let refused = sys::resume(SaveArea::Fault);
        if refused != Err(Error::BadAddress) {
            report!("\"kind\":\"ripflip_unexpected\",\"result\":\"{refused:?}\"");
            sys::exit(1);
        }
        // SAFETY: only this core's counter, only on this core.
        unsafe { REFUSED[core] += 1 };
    }
}

fn worker(core: usize) -> ! {
    if core >= CORES {
        loop {
            core::hint::spin_loop();
        }
    }
    cycle(core)
}

libos::program!(App {
    name: "ripflip",
    main: worker,
    epilogue: Epilogue::Cooperative,
    on_fault: None
});
