//! Ring-3 fuzzer: seeded, reproducible random system calls biased to edge
//! values and valid-looking ids, on every core it holds slots on, and
//! between them stateful operations whose every answer the ABI — or the
//! CPU, by the tables the kernel builds — fixes:
//!
//! - `frames`: a frame mapped at two addresses, written through one and
//!   read through the other, refused while mapped, freed once unmapped;
//! - `children`: children spawned, run, killed and gone (every slot back,
//!   no call answering to them); donation cycles with a child that hands
//!   every turn straight back, kept to the turn's deadline (hole 5);
//! - `traps`: segment registers loaded with every GDT selector and random
//!   ones, FS pointed back at the next entry (hole 4), far jumps and calls
//!   to every selector (the 32-bit code one not enterable: hole 2),
//!   `int n` for every vector, `sysenter`, privileged instructions.
//!
//! It counts every answer that differs as a violation of its operation
//! (reported with the first one's operation, source line and what came;
//! the suite wants none). The kernel must never fault, and the environments
//! beside it must keep their share.
#![cfg_attr(target_os = "none", no_std, no_main)]

mod calls;
mod children;
mod frames;
mod tally;
mod traps;

use core::sync::atomic::{AtomicU64, Ordering};

use libos::{sys, App, Epilogue};

use calls::Rng;

static APP: App = App {
    name: "fuzz",
    main: worker,
    epilogue: Epilogue::Cooperative,
    on_fault: Some(traps::on_fault),
};

/// Starts of the worker, on any core: a random `yield` that saves no
/// context ends the turn with nothing to resume, and the next prologue
/// starts the worker afresh — with a new seed, or it would replay the
/// same calls from the top every time.
static STARTS: AtomicU64 = AtomicU64::new(0);

fn worker(core: usize) -> ! {
    let (me, _) = sys::self_info();
    let start = STARTS.fetch_add(1, Ordering::Relaxed);
    let mut rng =
        Rng((0x9e37_79b9_7f4a_7c15 ^ (u64::from(me) << 8) ^ core as u64 ^ start << 16) | 1);
    if start == 0 {
        children::probe(core);
    }
    loop {
        // One operation now and then, per 8192 iterations: frames 128,
        // spawn/kill 4, a cycle 2 (a spawn costs the kernel ~8 ms of this
        // program's time under TCG: it zeroes the child's image, 10 MiB for
        // a libOS program), segment loads 64, FS 4 (each gives up the
        // turn), far jumps and calls 32 each, `int 0x80` 16, `int n` 32,
        // `sysenter` 16, privileged 32 (a fault and its upcall cost tens
        // of µs); a random call every time.
        match rng.below(8192) {
            0..128 => frames::frame_sequence(core, &mut rng),
            128..132 => children::spawn_kill(core, &mut rng),
            132..134 => children::donation_cycle(core),
            134..198 => traps::segment_load(core, &mut rng),
            198..202 => traps::fs_reload(core, &mut rng),
            202..234 => traps::far_jump(core, &mut rng),
            234..266 => traps::far_call(core, &mut rng),
            266..282 => traps::int80(core, &mut rng),
            282..314 => traps::int_n(core, &mut rng),
            314..330 => traps::sysenter(core, &mut rng),
            330..362 => traps::privileged(core, &mut rng),
            _ => {}
        }
        calls::random_call(&mut rng);
        tally::maybe_report();
    }
}

/// Every upcall: noted (the donation cycles read who entered this core's
/// context last), then a child spends it donating back; the root handles
/// it as any program does.
#[cfg(target_os = "none")]
#[no_mangle]
pub extern "C" fn _start(reason: u64, arg: u64, _dispatch: u64, core: u64) -> ! {
    children::note_upcall(core as usize, reason, arg);
    let entry = _start as *const () as u64;
    if children::is_child() {
        libos::rt::register_once(entry, false);
        children::partner(core as usize, reason, arg)
    }
    libos::rt::upcall(&APP, entry, reason, arg, core)
}

#[cfg(target_os = "none")]
#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    libos::rt::panicked(info)
}

#[cfg(not(target_os = "none"))]
fn main() {
    let _ = &APP;
    let _ = children::note_upcall as fn(usize, u64, u64);
    let _ = children::is_child as fn() -> bool;
    let _ = children::partner as fn(usize, u64, u64) -> !;
    println!("`fuzz` runs inside the exokernel: build it for x86_64-unknown-none");
}
