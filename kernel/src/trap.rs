//! What each vector does once the entry stub has saved the registers.

use core::ptr::NonNull;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use abi::shared::UserContext;

use crate::arch::interrupts::{vector, TrapFrame, UserException};
use crate::arch::{apic, percpu, serial};

/// Set once some core panicked: NMIs then stop the receiving core.
pub static PANICKING: AtomicBool = AtomicBool::new(false);
/// Per-core tick period in ns (0 = the tick is off).
pub static TICK_NS: AtomicU64 = AtomicU64::new(0);
/// Kernel-mode breakpoints taken (the fault test counts them).
pub static BREAKPOINTS: AtomicU64 = AtomicU64::new(0);

/// Handles one interrupt or exception, with interrupts disabled.
pub fn handle(frame: &mut TrapFrame) {
    let v = frame.vector as u8;
    match v {
        vector::TIMER => {
            let cpu = percpu::this();
            cpu.ticks.fetch_add(1, Ordering::Relaxed);
            if cpu.core() == 0 {
                serial::poll_input();
            }
            // EOI first: the scheduler may switch context and not return.
            apic::eoi();
            if crate::sched::active(cpu.core()) {
                crate::sched::on_timer(frame);
            } else {
                let period = TICK_NS.load(Ordering::Relaxed);
                if period != 0 {
                    rearm_tick(cpu, period);
                }
            }
        }
        vector::IPI_KICK | vector::IPI_CALL => {
            percpu::this().ipis.fetch_add(1, Ordering::Relaxed);
            crate::arch::smp::take_ping();
            crate::arch::smp::take_shootdown();
            apic::eoi();
            crate::sched::on_kick(frame);
        }
        vector::NMI => {
            percpu::this().nmis.fetch_add(1, Ordering::Relaxed);
            if PANICKING.load(Ordering::Acquire) {
                crate::exit::halt_forever();
            }
        }
        vector::SPURIOUS => {}
        vector::APIC_ERROR => {
            log::warn!("local APIC error interrupt");
            apic::eoi();
        }
        0..=31 => exception(frame),
        _ => {
            log::warn!("unexpected interrupt vector {v:#x}");
            apic::eoi();
        }
    }
}

/// Arms the next periodic tick against the absolute schedule, so handler
/// latency does not accumulate into drift. Missed ticks are skipped, keeping
/// the phase.
fn rearm_tick(cpu: &percpu::PerCpu, period: u64) {
    let now = crate::arch::time::now_ns();
    let mut next = cpu.next_tick_ns.load(Ordering::Relaxed) + period;
    if next <= now {
        next = now + period - (now - next) % period;
    }
    cpu.next_tick_ns.store(next, Ordering::Relaxed);
    apic::arm_timer_ns(next - now);
}

/// Starts this core's periodic tick with the current `TICK_NS`.
pub fn start_tick() {
    let period = TICK_NS.load(Ordering::Relaxed);
    let cpu = percpu::this();
    cpu.next_tick_ns
        .store(crate::arch::time::now_ns() + period, Ordering::Relaxed);
    apic::arm_timer_ns(period);
}

/// An exception from ring 3 whose general registers the entry saved at
/// `area` (the running environment's fault area): reflected to the
/// environment (`sched::reflect_exception`).
pub fn user_exception(frame: &mut UserException, area: NonNull<UserContext>) {
    // SAFETY: reading CR2 has no side effects.
    let cr2 = unsafe { x86::controlregs::cr2() };
    crate::sched::reflect_exception(running_env(), frame, area, cr2 as u64);
}

/// The environment whose user mode this trap was taken from (or whose
/// `iretq` faulted), borrowed until the reflection ends or leaves it.
fn running_env<'a>() -> &'a crate::env::Env {
    // SAFETY: entered from the running environment's user mode on this
    // core (or its entry's `iretq`); the borrow ends with the reflection,
    // which returns to that environment or, killing it, leaves its turn
    // only after its last use (`sched::RUNNING`'s contract).
    unsafe { crate::sched::RUNNING.here() }.expect("a user fault with no environment running here")
}

fn exception(frame: &mut TrapFrame) {
    let cpu = percpu::this();
    if frame.vector == u64::from(vector::BREAKPOINT) && !frame.is_user() {
        // A kernel int3 is a trap: note it and continue after it.
        BREAKPOINTS.fetch_add(1, Ordering::Relaxed);
        return;
    }
    if let Some(user) = crate::arch::interrupts::faulted_user_return(frame) {
        return_to_user_faulted(&user);
    }
    if frame.is_user() && is_unprivileged_syscall(frame) {
        return complete_syscall(frame);
    }
    if frame.is_user() {
        // SAFETY: reading CR2 has no side effects.
        let cr2 = unsafe { x86::controlregs::cr2() };
        return crate::sched::on_user_fault(running_env(), frame, cr2 as u64);
    }
    // An expected fault at a guarded kernel access resumes at its fixup.
    let fixup = cpu.fault_fixup.swap(0, Ordering::Relaxed);
    if fixup != 0 && !frame.is_user() {
        cpu.last_fixed_vector.store(frame.vector, Ordering::Relaxed);
        frame.rip = fixup;
        return;
    }
    // SAFETY: reading CR2 has no side effects.
    let cr2 = unsafe { x86::controlregs::cr2() };
    panic!(
        "unhandled exception {} (vector {}) error {:#x} at rip {:#x} cr2 {:#x} rsp {:#x} ({} mode)",
        crate::arch::interrupts::exception_name(frame.vector),
        frame.vector,
        frame.error_code,
        frame.rip,
        cr2,
        frame.rsp,
        if frame.is_user() { "user" } else { "kernel" }
    );
}

/// Returns to ring 3 whose `iretq` faulted in ring 0.
pub static RETURN_FAULTS: AtomicU64 = AtomicU64::new(0);

/// An `iretq` to ring 3 faulted (in ring 0, on the frame it was given):
/// the environment it was entering takes the fault, as if it had faulted
/// at the `rip` it was being returned to (an exception upcall, or death
/// without a handler); the kernel goes on (issue 14, hole 3). Today every
/// such frame is made with user selectors and a checked `rip`; this is
/// the net under them (Linux's `bad_iret` does the same).
fn return_to_user_faulted(user: &TrapFrame) -> ! {
    RETURN_FAULTS.fetch_add(1, Ordering::Relaxed);
    log::warn!(
        "return to ring 3 faulted: {} error {:#x} returning to rip {:#x} cs {:#x} ss {:#x} rsp {:#x}",
        crate::arch::interrupts::exception_name(user.vector),
        user.error_code,
        user.rip,
        user.cs,
        user.ss,
        user.rsp
    );
    let cr2 = if user.vector == u64::from(vector::PAGE_FAULT) {
        // SAFETY: reading CR2 has no side effects.
        unsafe { x86::controlregs::cr2() as u64 }
    } else {
        0
    };
    let mut frame = *user;
    crate::sched::on_user_fault(running_env(), &mut frame, cr2);
    crate::arch::interrupts::enter_user(&frame)
}

/// Syscalls completed after the hypervisor left ring 3 at LSTAR.
pub static SYSCALL_FIXUPS: AtomicU64 = AtomicU64::new(0);

/// Nested KVM on the development machines sometimes performs a guest
/// `syscall` without the privilege change: RIP becomes LSTAR and RCX/R11
/// are set, but CPL stays 3, so the fetch of the entry faults (user,
/// instruction fetch, present). Such a fault at exactly the syscall entry
/// means "syscall" (a user jump there carries the same rights), so the
/// kernel completes the call as the instruction would have — but only when
/// RCX is a user address, as after a real `syscall`. A user `jmp` there
/// sets RCX at will: a non-canonical one made the return `iretq` fault in
/// ring 0 after `swapgs`, on the user's GS (issue 14, hole 3). Such a jump
/// stays the user fault it is (exception upcall, or death).
fn is_unprivileged_syscall(frame: &TrapFrame) -> bool {
    const FETCH_BY_USER_PRESENT: u64 = 0x15;
    frame.vector == u64::from(vector::PAGE_FAULT)
        && frame.rip == crate::arch::interrupts::syscall_entry_address()
        && frame.error_code & FETCH_BY_USER_PRESENT == FETCH_BY_USER_PRESENT
        && frame.rcx < crate::aspace::USER_END
}

fn complete_syscall(frame: &mut TrapFrame) {
    if SYSCALL_FIXUPS.fetch_add(1, Ordering::Relaxed) == 0 {
        log::warn!("the hypervisor delivers syscall without entering ring 0; completing syscalls from the fault (slower)");
    }
    // What `syscall` saved: the return address in RCX, the flags in R11
    // (user-controlled: keep only the arithmetic flags, DF and TF; IF on).
    frame.rip = frame.rcx;
    frame.rflags = (frame.r11 & 0x0000_0dd5) | 0x202;
    crate::syscall::handle(frame);
}
