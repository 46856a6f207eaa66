//! Hostile to itself: writes garbage into its own shared pages (flags,
//! events, donation target, every save area) and asks the kernel to resume
//! those areas. The kernel must refuse what is not a user context and make
//! safe what it loads (an invalid MXCSR would fault the kernel's fxrstor).
#![cfg_attr(target_os = "none", no_std, no_main)]

use core::sync::atomic::Ordering;

use libos::abi::shared::UserContext;
use libos::abi::syscall::{Error, SaveArea};
use libos::{report, sys, App, Epilogue};

#[repr(C, align(16))]
struct Stack([u8; 4096]);
static mut LANDING_STACK: Stack = Stack([0; 4096]);

fn garbage(seed: &mut u64) -> u64 {
    *seed ^= *seed << 13;
    *seed ^= *seed >> 7;
    *seed ^= *seed << 17;
    *seed
}

extern "C" fn landing() -> ! {
    report!("\"kind\":\"scribble\",\"landed\":true");
    loop {
        core::hint::spin_loop();
    }
}

fn worker(core: usize) -> ! {
    if core != 0 {
        loop {
            core::hint::spin_loop();
        }
    }
    let mut seed = 0x2545_f491_4f6c_dd1d;
    let d = sys::dispatch(core);
    // Garbage everywhere the environment may write.
    d.events.store(garbage(&mut seed), Ordering::Relaxed);
    d.donate_to
        .store(garbage(&mut seed) as u32, Ordering::Relaxed);
    for area in [&mut d.enabled, &mut d.preempted, &mut d.fault] {
        let mut ctx = UserContext::ZERO;
        for b in ctx.fx.iter_mut() {
            *b = garbage(&mut seed) as u8;
        }
        ctx.rip = 0xffff_ffff_8000_0000 | garbage(&mut seed);
        ctx.rsp = garbage(&mut seed);
        ctx.valid = 1;
        *area = ctx;
    }
    let kernel_rip = sys::resume(SaveArea::Enabled);
    let rip_ok = kernel_rip == Err(Error::BadAddress);
    d.donate_to.store(u32::MAX, Ordering::Relaxed);
    report!("\"kind\":\"scribble\",\"kernel_rip_refused\":{rip_ok}");
    // A user rip and stack, but a garbage FPU image (reserved MXCSR bits set).
    let mut ctx = d.fault;
    ctx.rip = landing as *const () as u64;
    // SAFETY: only the address of the landing stack is taken.
    ctx.rsp = unsafe { (&raw mut LANDING_STACK.0).cast::<u8>().add(4096 - 8) } as u64;
    ctx.fx[24..28].copy_from_slice(&0xffff_ffffu32.to_le_bytes());
    ctx.valid = 1;
    d.fault = ctx;
    let _ = sys::resume(SaveArea::Fault);
    report!("\"kind\":\"scribble\",\"landed\":false");
    sys::exit(1)
}

libos::program!(App {
    name: "scribble",
    main: worker,
    epilogue: Epilogue::Cooperative,
    on_fault: None
});
