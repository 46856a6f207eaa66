//! Hostile (issue 14, hole 9): a parent kills its children while they
//! allocate and free slots on every core as fast as they can, racing the
//! kernel's teardown of their slots.
//!
//! Launched with its own boot-module index as its arguments, it is the
//! parent: on core 1 it spawns a copy of itself (a child, launched with
//! none), waits until it runs (core 0 donates it its turns) and kills it,
//! then waits until the child is reaped and looks at every core's slice
//! vector for a slot still owned by the dead child. A child's allocation
//! that reaches a core after the teardown freed that core's slots would
//! leave a slot owned by a dead environment for ever (nobody runs in it,
//! nobody can free it). Everywhere else it spins.
#![cfg_attr(target_os = "none", no_std, no_main)]

use core::sync::atomic::{AtomicU32, Ordering};

use libos::abi::syscall::{Error, Syscall, NO_ENV};
use libos::{report, sys, App, Epilogue};

/// The child alive now (`NO_ENV`: none).
static CHILD: AtomicU32 = AtomicU32::new(NO_ENV);
/// Most slots a child may hold (it frees each at once).
const CHILD_QUOTA: u64 = 4;

fn call(n: Syscall, a: u64, b: u64) -> Result<u64, Error> {
    // SAFETY: spawn and kill take plain integers the kernel validates.
    Error::decode(unsafe { sys::raw(n as u64, [a, b, 0, 0, 0, 0]) }.0)
}

/// The child: allocate and free a slot on each core in turn, for ever.
fn churn() -> ! {
    let cores = sys::sysinfo().cores as usize;
    loop {
        for k in 0..cores {
            if let Ok(slot) = sys::slice_alloc(k, None) {
                let _ = sys::slice_free(k, slot);
            }
        }
    }
}

/// Slots on any core still owned by `id`.
fn owned_by(id: u32) -> usize {
    let (cores, slots) = (sys::sysinfo().cores as usize, sys::sysinfo().slots as usize);
    (0..cores)
        .map(|k| {
            sys::core_slices(k).owners[..slots]
                .iter()
                .filter(|o| o.load(Ordering::Acquire) == id)
                .count()
        })
        .sum()
}

/// A little xorshift: how long each child lives varies.
fn next(seed: &mut u64) -> u64 {
    *seed ^= *seed << 13;
    *seed ^= *seed >> 7;
    *seed ^= *seed << 17;
    *seed
}

fn parent(program: u64) -> ! {
    let (mut cycles, mut leaked, mut seed) = (0u64, 0usize, 0x9e37_79b9_7f4a_7c15u64);
    loop {
        let Ok(child) = call(Syscall::Spawn, program, CHILD_QUOTA) else {
            continue;
        };
        let child = child as u32;
        CHILD.store(child, Ordering::Release);
        // Kill it once it has run (core 0 donates it its turns), while it
        // runs there if that is seen soon (the vCPUs of cores 0 and 1 do
        // not always run at once on a loaded host), at a varying point of
        // its loop.
        let given = &sys::account(child as usize & 0xff).donations_received;
        let running = &sys::core_slices(0).running_env;
        let mut waited = 0u64;
        while given.load(Ordering::Acquire) == 0 && waited < 100_000_000 {
            waited += 1;
            core::hint::spin_loop();
        }
        waited = 0;
        while running.load(Ordering::Acquire) != child && waited < 5_000_000 {
            waited += 1;
            core::hint::spin_loop();
        }
        let mut x = 0u64;
        for _ in 0..next(&mut seed) % 20_000 {
            x = core::hint::black_box(x.wrapping_add(1));
        }
        CHILD.store(NO_ENV, Ordering::Release);
        let _ = call(Syscall::Kill, u64::from(child), 0);
        // Reaped once its accounting entry is retired. No limit: until
        // then its slots may still be on their way back (a bounded wait
        // counted a teardown slowed by the host as a leak); the kernel ends
        // the run only with no child dying, so one never reaped keeps the
        // run going until the runner's limit, a finding.
        let account = sys::account(child as usize & 0xff);
        while account.env.load(Ordering::Acquire) == child {
            core::hint::spin_loop();
        }
        leaked += owned_by(child);
        cycles += 1;
        report!("\"kind\":\"slotrace\",\"cycles\":{cycles},\"leaked_slots\":{leaked}");
    }
}

fn worker(core: usize) -> ! {
    let program: Option<u64> = sys::args().trim().parse().ok();
    match (program, core) {
        (None, _) => churn(),
        (Some(p), 1) => parent(p),
        (Some(_), 0) => loop {
            let child = CHILD.load(Ordering::Acquire);
            if child != NO_ENV {
                let _ = sys::yield_to(Some(child), true);
            }
        },
        _ => loop {
            core::hint::spin_loop();
        },
    }
}

libos::program!(App {
    name: "slotrace",
    main: worker,
    epilogue: Epilogue::Cooperative,
    on_fault: None
});
