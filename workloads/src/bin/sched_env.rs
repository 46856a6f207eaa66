//! A scheduler environment (Aegis's stride experiment, generalised): owns
//! slices on every core and donates each one by directed yield to a client
//! application chosen by a policy (`sched=`: any registered policy) over
//! the clients' tickets. Clients are the other environments, in spawn
//! order, holding tickets 3, 2, 1, 1, ...
#![cfg_attr(target_os = "none", no_std, no_main)]

use core::sync::atomic::{AtomicBool, Ordering};

use libos::abi::shared::MAX_ENVS;
use libos::abi::syscall::NO_ENV;
use libos::sched_api::{Policy, RunEnd};
use libos::{report, sys, threads, App, Epilogue};
use spin_lock::Lock;

/// Tickets of the clients, by spawn order.
const TICKETS: [u32; 4] = [3, 2, 1, 1];

mod spin_lock {
    //! The policy is shared by this environment's cores; its lock is only
    //! taken with the disabled flag set (inside `libos::rt::critical`).
    pub struct Lock<T>(
        core::cell::UnsafeCell<Option<T>>,
        core::sync::atomic::AtomicBool,
    );
    // SAFETY: access is serialised by the flag below.
    unsafe impl<T: Send> Sync for Lock<T> {}
    impl<T> Lock<T> {
        pub const fn new() -> Self {
            Lock(
                core::cell::UnsafeCell::new(None),
                core::sync::atomic::AtomicBool::new(false),
            )
        }
        pub fn with<R>(&self, f: impl FnOnce(&mut Option<T>) -> R) -> R {
            use core::sync::atomic::Ordering;
            while self
                .1
                .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
                .is_err()
            {
                core::hint::spin_loop();
            }
            // SAFETY: the flag gives exclusive access until released below.
            let r = f(unsafe { &mut *self.0.get() });
            self.1.store(false, Ordering::Release);
            r
        }
    }
}

static POLICY: Lock<alloc::boxed::Box<dyn Policy>> = Lock::new();
static READY: AtomicBool = AtomicBool::new(false);

extern crate alloc;

fn clients(me: u32) -> impl Iterator<Item = u32> {
    (0..MAX_ENVS)
        .map(|i| sys::account(i).env.load(Ordering::Acquire))
        .filter(move |&id| id != NO_ENV && id != me)
}

fn worker(core: usize) -> ! {
    let (me, _) = sys::self_info();
    if core == 0 {
        libos::rt::critical(core, || {
            POLICY.with(|p| {
                // One "core" for the policy: a client is a whole environment
                // that runs on every core donated to it at once, so no
                // client's tickets are infeasible (the one-core cap of
                // threads does not apply).
                let mut policy = threads::new_policy(threads::requested_policy(), 1)
                    .expect("a registered policy builds for one core");
                for (i, id) in clients(me).enumerate() {
                    let _ = policy.add(id, TICKETS.get(i).copied().unwrap_or(1));
                }
                *p = Some(policy);
            })
        });
        READY.store(true, Ordering::Release);
    }
    while !READY.load(Ordering::Acquire) {
        core::hint::spin_loop();
    }
    let slice = sys::sysinfo().slice_ns;
    let mut donations = 0u64;
    loop {
        // Pick and charge at once: the client is charged the slice it is
        // about to get and is runnable again right away, so other cores can
        // donate to it too (a client is an environment, which runs on every
        // core donated to it; the policy's "one core per thread" does not
        // apply). The policy sees one core: picks never wait on each other.
        let pick = libos::rt::critical(core, || {
            POLICY.with(|p| {
                let p = p.as_mut()?;
                let client = p.pick(0)?;
                let _ = p.charge(client, 0, slice, RunEnd::Preempted);
                Some(client)
            })
        });
        let Some(client) = pick else {
            let _ = sys::yield_to(None, true);
            continue;
        };
        // The rest of this slice goes to the client; we resume here at our
        // next slice.
        if sys::yield_to(Some(client), true) == Err(libos::abi::syscall::Error::BadEnv) {
            // Dead: stop scheduling it. (A client that cannot take a
            // donation just now keeps its place and loses this pick.)
            libos::rt::critical(core, || {
                POLICY.with(|p| p.as_mut().map(|p| p.remove(client)))
            });
        }
        donations += 1;
        if donations == 100 {
            report!("\"kind\":\"sched_env\",\"core\":{core},\"donations\":{donations},\"policy\":\"{}\"", threads::requested_policy().name());
        }
    }
}

libos::program!(App {
    name: "sched_env",
    main: worker,
    epilogue: Epilogue::Cooperative,
    on_fault: None
});
