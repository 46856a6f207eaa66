//! Sleeps on a wakeup predicate ("clock >= deadline") in 20 ms periods and
//! reports how late each wakeup was; while asleep it must cost no slices,
//! so it also reports the CPU time its own accounting shows against the
//! time elapsed (`cpu_ns` / `elapsed_ns`, over every core it holds).
#![cfg_attr(target_os = "none", no_std, no_main)]

use core::sync::atomic::{AtomicU64, Ordering};

use libos::abi::shared::{MAX_CORES, MAX_ENVS};
use libos::predicate::Builder;
use libos::{report, sys, App, Epilogue};

const PERIOD_NS: u64 = 20_000_000;

static DEADLINE: AtomicU64 = AtomicU64::new(0);
static WAKEUPS: AtomicU64 = AtomicU64::new(0);
static MAX_LATE: AtomicU64 = AtomicU64::new(0);
static TOTAL_LATE: AtomicU64 = AtomicU64::new(0);
static STARTED: AtomicU64 = AtomicU64::new(0);

/// CPU time the kernel accounted to this environment so far, every core.
fn own_cpu_ns() -> u64 {
    let (me, _) = sys::self_info();
    let cores = (sys::sysinfo().cores as usize).min(MAX_CORES);
    (0..MAX_ENVS)
        .map(sys::account)
        .find(|a| a.env.load(Ordering::Acquire) == me)
        .map_or(0, |a| {
            a.cpu_ns[..cores]
                .iter()
                .map(|c| c.load(Ordering::Relaxed))
                .sum()
        })
}

fn worker(core: usize) -> ! {
    let _ = STARTED.compare_exchange(0, sys::now_ns(), Ordering::AcqRel, Ordering::Acquire);
    let _ = DEADLINE.compare_exchange(
        0,
        sys::now_ns() + PERIOD_NS,
        Ordering::AcqRel,
        Ordering::Acquire,
    );
    loop {
        let now = sys::now_ns();
        let deadline = DEADLINE.load(Ordering::Acquire);
        if now >= deadline {
            // One core per period counts the wakeup and sets the next deadline.
            if DEADLINE
                .compare_exchange(
                    deadline,
                    now + PERIOD_NS,
                    Ordering::AcqRel,
                    Ordering::Acquire,
                )
                .is_ok()
            {
                let late = now - deadline;
                let n = WAKEUPS.fetch_add(1, Ordering::AcqRel) + 1;
                MAX_LATE.fetch_max(late, Ordering::AcqRel);
                TOTAL_LATE.fetch_add(late, Ordering::AcqRel);
                if n.is_multiple_of(10) {
                    report!(
                        "\"kind\":\"sleeper\",\"core\":{core},\"wakeups\":{n},\"max_late_ns\":{},\"mean_late_ns\":{},\"cpu_ns\":{},\"elapsed_ns\":{}",
                        MAX_LATE.load(Ordering::Relaxed),
                        TOTAL_LATE.load(Ordering::Relaxed) / n,
                        own_cpu_ns(),
                        now - STARTED.load(Ordering::Relaxed)
                    );
                }
            }
            continue;
        }
        let Ok(program) = Builder::until_time(1, deadline) else {
            sys::exit(2)
        };
        if sys::predicate_install(program.as_bytes()).is_err() {
            sys::exit(3);
        }
        let _ = sys::sleep(true);
    }
}

libos::program!(App {
    name: "sleeper",
    main: worker,
    epilogue: Epilogue::Cooperative,
    on_fault: None
});
