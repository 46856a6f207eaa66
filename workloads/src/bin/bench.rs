//! Benchmarks of the kernel's primitives from ring 3, on core 0 (run with
//! one core, beside `bench_peer`): null system call and its floor,
//! exception → upcall → resume, directed-yield ping-pong between two
//! environments, wakeup predicates of growing size (install from here,
//! evaluation timed by the kernel while this program sleeps on them). The
//! platform's overhead on a CPU-bound loop is `overhead`'s.
#![cfg_attr(target_os = "none", no_std, no_main)]

extern crate alloc;

use core::sync::atomic::{AtomicU64, Ordering};

use libos::abi::shared::{FaultInfo, MAX_ENVS};
use libos::abi::syscall::NO_ENV;
use libos::predicate::{Builder, Cond};
use libos::{sys, App, Epilogue, FaultAction};
use workloads::bench::{cycles_per, report};

static BREAKPOINTS: AtomicU64 = AtomicU64::new(0);

fn on_fault(_core: usize, info: &FaultInfo) -> FaultAction {
    if info.vector == 3 {
        BREAKPOINTS.fetch_add(1, Ordering::Relaxed);
        // #BP is a trap: the saved rip is already past the int3.
        return FaultAction::Resume { skip: 0 };
    }
    FaultAction::Exit
}

fn peer(me: u32) -> Option<u32> {
    (0..MAX_ENVS)
        .map(|i| sys::account(i).env.load(Ordering::Acquire))
        .find(|&id| id != NO_ENV && id != me)
}

/// Words the predicates watch (never changed: every condition stays false,
/// so the kernel evaluates each whole program).
static WATCHED: [AtomicU64; 15] = [const { AtomicU64::new(0) }; 15];

/// For predicates of 1 to 15 watched words behind a deadline: the cost of
/// installing one (verification included), then a sleep on it until the
/// deadline, during which the kernel evaluates it at every decision on
/// this core (`predicate_eval_by_length` in the run's end record).
fn predicates() {
    for words in [0usize, 1, 3, 7, 14] {
        let program = |deadline: u64| {
            let mut conds = [Cond::ClockAtLeast(deadline); 15];
            for (c, w) in conds[1..].iter_mut().zip(&WATCHED).take(words) {
                *c = Cond::WordChanged {
                    addr: w.as_ptr() as u64,
                    old: 0,
                };
            }
            Builder::any_of(words as u64, &conds[..=words]).expect("a valid predicate")
        };
        let p = program(u64::MAX);
        let (install, n) = cycles_per(100, 50, || {
            let _ = sys::predicate_install(p.as_bytes());
        });
        report(
            "predicate_install",
            n,
            &install,
            &alloc::format!(
                ",\"insns\":{},\"bytes\":{}",
                p.insn_count(),
                p.as_bytes().len()
            ),
        );
        let deadline = sys::now_ns() + 50_000_000;
        if sys::predicate_install(program(deadline).as_bytes()).is_ok() {
            let _ = sys::sleep(true);
        }
    }
    let _ = sys::predicate_clear();
}

fn worker(core: usize) -> ! {
    if core != 0 {
        loop {
            let _ = sys::yield_to(None, true);
        }
    }
    let (me, _) = sys::self_info();
    let (null, n) = cycles_per(1000, 100, || {
        let _ = sys::null();
    });
    report("null_syscall", n, &null, "");
    let (floor, n) = cycles_per(1000, 100, sys::floor);
    report("syscall_floor", n, &floor, "");
    let (upcall, n) = cycles_per(100, 100, || {
        // SAFETY: int3 traps to the kernel, which reflects it to this
        // program's exception upcall; the handler resumes right after it.
        unsafe { core::arch::asm!("int3") };
    });
    report(
        "exception_upcall",
        n,
        &upcall,
        &alloc::format!(",\"breakpoints\":{}", BREAKPOINTS.load(Ordering::Relaxed)),
    );
    match peer(me) {
        Some(p) => {
            let mut failed = 0u64;
            let (pingpong, n) = cycles_per(50, 200, || {
                // Donate the rest of the slice to the peer, which donates
                // straight back: one round trip, two address-space switches.
                // Each side saves its own context (the libOS's saving
                // yield), so the kernel copies none.
                if libos::rt::yield_saving(core, Some(p)).is_err() {
                    failed += 1;
                }
            });
            report(
                "yield_pingpong",
                n,
                &pingpong,
                &alloc::format!(",\"failed\":{failed}"),
            );
        }
        None => {
            libos::log!("no peer environment: yield ping-pong not measured");
        }
    }
    predicates();
    libos::report!("\"kind\":\"bench_done\"");
    loop {
        let _ = sys::yield_to(None, true);
    }
}

libos::program!(App {
    name: "bench",
    main: worker,
    epilogue: Epilogue::Cooperative,
    on_fault: Some(on_fault)
});
