//! Hostile pair (issue 14, hole 5): two environments of this program hand
//! a turn back and forth by directed yield and never yield it up.
//!
//! The one that holds slots (`A`) donates to the one that holds none (`B`),
//! which donates back to whoever donated to it. Every upcall, revocation
//! included, lands in [`launder`]: it clears the disabled flag and the
//! pending-revocation bit (so it is never a cooperative libOS's resume
//! path that yields), runs a little and donates. Were a donation to start
//! the recipient afresh once the turn is over, the kernel would tell the
//! recipient of the revocation again with a fresh grace period from then,
//! and the pair would keep the core for ever, never repossessed, never
//! charged; the slot's other owners on the core would get nothing. A
//! recipient must inherit the donor's deadline instead: the pair is taken
//! at the turn's grace end like any other overrunning environment.
#![cfg_attr(target_os = "none", no_std, no_main)]

use core::sync::atomic::Ordering;

use libos::abi::shared::{events, MAX_ENVS};
use libos::abi::syscall::NO_ENV;
use libos::sys;

/// Work between donations: short against any grace period, so the pair
/// is never caught by it between two hops.
const WORK_ITERATIONS: u64 = 20_000;

/// The other environment of the pair: `A`'s is the environment holding no
/// slot at all (`B`), `B`'s the one that has donated (`A`).
fn partner(me: u32) -> Option<u32> {
    let mine = sys::account(me as usize & 0xff)
        .slots_held
        .load(Ordering::Acquire);
    (0..MAX_ENVS).map(sys::account).find_map(|a| {
        let id = a.env.load(Ordering::Acquire);
        let wanted = if mine > 0 {
            a.slots_held.load(Ordering::Acquire) == 0
        } else {
            a.donations_given.load(Ordering::Acquire) > 0
        };
        (id != NO_ENV && id != me && wanted).then_some(id)
    })
}

/// Every upcall: never yield the turn up, donate it to the partner.
fn launder(core: usize) -> ! {
    let (me, _) = sys::self_info();
    let d = sys::dispatch(core);
    loop {
        // Told to yield or not: carry on. A revocation that comes while
        // enabled enters here again at the top of the upcall stack.
        d.events
            .fetch_and(!events::REVOCATION_PENDING, Ordering::AcqRel);
        d.disabled.store(0, Ordering::Release);
        let mut x = 0u64;
        for _ in 0..WORK_ITERATIONS {
            x = core::hint::black_box(x.wrapping_add(1));
        }
        if let Some(p) = partner(me) {
            // Enters the partner at its prologue (never returns) unless
            // refused; an upcall later starts here afresh.
            let _ = sys::yield_to(Some(p), false);
        }
    }
}

#[cfg(target_os = "none")]
#[no_mangle]
pub extern "C" fn _start(_reason: u64, _arg: u64, _dispatch: u64, core: u64) -> ! {
    libos::rt::register_once(_start as *const () as u64, false);
    launder(core as usize)
}

#[cfg(target_os = "none")]
#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    libos::rt::panicked(info)
}

#[cfg(not(target_os = "none"))]
fn main() {
    let _ = launder as fn(usize) -> !;
    println!("`launder` runs inside the exokernel: build it for x86_64-unknown-none");
}
