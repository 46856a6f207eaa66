//! A scheduler environment (Aegis's stride experiment, generalised): owns
//! slices on every core it holds and donates each one by directed yield to
//! a client application chosen by a policy over the clients' tickets. Its
//! arguments (`workloads::sched_env`) name the policy and the clients by
//! environment name (a scenario's `[scheduler_env]`); without them the
//! clients are the other environments, in spawn order, holding tickets
//! 3, 2, 1, 1, … under the kernel's `sched=`. Each client is charged what
//! it used of each donation, from the kernel's account of its CPU time on
//! that core (`workloads::sched_env::Bill`).
#![cfg_attr(target_os = "none", no_std, no_main)]

extern crate alloc;

use alloc::boxed::Box;
use alloc::string::String;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};

use libos::abi::shared::{MAX_CORES, MAX_ENVS};
use libos::abi::syscall::NO_ENV;
use libos::sched_api::{Policy, RunEnd};
use libos::{report, sys, threads, App, Epilogue};
use spin_lock::Lock;
use workloads::sched_env::{Bill, Spec, DEFAULT_TICKETS};

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

/// The policy, each client's bill, and the clients the policy has asleep
/// with since when (`None`: awake), both indexed by the client's env slot.
struct State {
    policy: Box<dyn Policy>,
    bills: [Bill; MAX_ENVS],
    asleep: [Option<(u32, u64)>; MAX_ENVS],
}

/// A client that could not take a donation (asleep on its predicate, or
/// not started yet) is put to sleep in the policy, so the next pick is
/// another client's, and woken again after this long to be tried again.
fn retry_after(slice: u64) -> u64 {
    slice / 4
}

static STATE: Lock<State> = Lock::new();
static READY: AtomicBool = AtomicBool::new(false);
/// Per core: the client the last donation went to (`NO_ENV`: none) and its
/// CPU time on this core when it began.
static DONATED_TO: [AtomicU32; MAX_CORES] = [const { AtomicU32::new(NO_ENV) }; MAX_CORES];
static CPU_BEFORE: [AtomicU64; MAX_CORES] = [const { AtomicU64::new(0) }; MAX_CORES];
/// How long core 0 waits for named clients to appear before scheduling
/// those it found (a scenario starts its applications one after another).
const FIND_CLIENTS_NS: u64 = 1_000_000_000;

fn slot_of(id: u32) -> usize {
    (id & 0xff) as usize % MAX_ENVS
}

/// The clients as `(env id, tickets)`: named ones by their accounts' names,
/// else every other environment in spawn order with the default tickets.
fn clients(me: u32, spec: &Spec) -> Vec<(u32, u32)> {
    if spec.clients.is_empty() {
        return (0..MAX_ENVS)
            .map(|i| sys::account(i).env.load(Ordering::Acquire))
            .filter(|&id| id != NO_ENV && id != me)
            .enumerate()
            .map(|(k, id)| (id, DEFAULT_TICKETS.get(k).copied().unwrap_or(1)))
            .collect();
    }
    let give_up = sys::now_ns() + FIND_CLIENTS_NS;
    loop {
        let found: Vec<(u32, u32)> = spec
            .clients
            .iter()
            .filter_map(|(name, tickets)| {
                (0..MAX_ENVS)
                    .find_map(|i| sys::account(i).named(name))
                    .map(|id| (id, *tickets))
            })
            .collect();
        if found.len() == spec.clients.len() || sys::now_ns() >= give_up {
            for (name, _) in &spec.clients {
                if !(0..MAX_ENVS).any(|i| sys::account(i).named(name).is_some()) {
                    libos::log!("sched_env: no environment named {name}: not scheduled");
                }
            }
            return found;
        }
        let _ = sys::yield_to(None, true);
    }
}

/// The client's CPU time on `core` so far, from the kernel's account.
fn cpu_on(client: u32, core: usize) -> u64 {
    let a = sys::account(slot_of(client));
    if a.env.load(Ordering::Acquire) != client {
        return 0;
    }
    a.cpu_ns[core].load(Ordering::Relaxed)
}

fn worker(core: usize) -> ! {
    let (me, _) = sys::self_info();
    let slice = sys::sysinfo().slice_ns;
    if core == 0 {
        let spec = Spec::parse(sys::args()).unwrap_or_else(|e| {
            libos::log!("sched_env: bad arguments: {e}");
            sys::exit(2)
        });
        let kind = match &spec.policy {
            Some(name) => threads::policy_named(name).unwrap_or_else(|| {
                libos::log!("sched_env: no policy {name}");
                sys::exit(2)
            }),
            None => threads::requested_policy(),
        };
        let found = clients(me, &spec);
        libos::rt::critical(core, || {
            STATE.with(|s| {
                // One "core" for the policy: a client is a whole environment
                // that runs on every core donated to it at once, so no
                // client's tickets are infeasible (the one-core cap of
                // threads does not apply).
                let mut policy =
                    threads::new_policy(kind, 1).expect("a registered policy builds for one core");
                for &(id, tickets) in &found {
                    let _ = policy.add(id, tickets);
                }
                *s = Some(State {
                    policy,
                    bills: [Bill::default(); MAX_ENVS],
                    asleep: [None; MAX_ENVS],
                });
            })
        });
        let mut names = String::new();
        for (k, (name, t)) in spec.clients.iter().enumerate() {
            names.push_str(if k == 0 { "" } else { "," });
            names.push_str(&alloc::format!("[\"{name}\",{t}]"));
        }
        report!(
            "\"kind\":\"sched_env_start\",\"policy\":\"{}\",\"clients\":{},\"named\":[{names}]",
            kind.name(),
            found.len()
        );
        READY.store(true, Ordering::Release);
    }
    while !READY.load(Ordering::Acquire) {
        core::hint::spin_loop();
    }
    let mut donations = 0u64;
    loop {
        // The donation this core made last is over (we run again): settle
        // what its client used of it.
        let last = DONATED_TO[core].swap(NO_ENV, Ordering::Relaxed);
        let used = (last != NO_ENV)
            .then(|| cpu_on(last, core).saturating_sub(CPU_BEFORE[core].load(Ordering::Relaxed)));
        // Settle, pick and charge at once: the client is charged the slice
        // it is about to get (less its credit) and is runnable again right
        // away, so other cores can donate to it too (a client is an
        // environment, which runs on every core donated to it; the policy's
        // "one core per thread" does not apply). The policy sees one core:
        // picks never wait on each other.
        let pick = libos::rt::critical(core, || {
            STATE.with(|s| {
                let s = s.as_mut()?;
                let now = sys::now_ns();
                for entry in &mut s.asleep {
                    if let Some((id, since)) = *entry {
                        if now.saturating_sub(since) >= retry_after(slice) {
                            *entry = None;
                            let _ = s.policy.wake(id);
                        }
                    }
                }
                if let Some(used) = used {
                    let extra = s.bills[slot_of(last)].settle(slice, used);
                    if extra > 0 {
                        let _ = s.policy.charge(last, 0, extra, RunEnd::Preempted);
                    }
                }
                let client = s.policy.pick(0)?;
                let now = s.bills[slot_of(client)].charge_for_pick(slice);
                let _ = s.policy.charge(client, 0, now, RunEnd::Preempted);
                Some(client)
            })
        });
        let Some(client) = pick else {
            let _ = sys::yield_to(None, true);
            continue;
        };
        // The rest of this slice goes to the client; we resume here at our
        // next slice.
        CPU_BEFORE[core].store(cpu_on(client, core), Ordering::Relaxed);
        DONATED_TO[core].store(client, Ordering::Relaxed);
        match sys::yield_to(Some(client), true) {
            // Dead: stop scheduling it.
            Err(libos::abi::syscall::Error::BadEnv) => {
                DONATED_TO[core].store(NO_ENV, Ordering::Relaxed);
                libos::rt::critical(core, || {
                    STATE.with(|s| s.as_mut().map(|s| s.policy.remove(client)))
                });
            }
            // It cannot take a donation now: asleep in the policy until
            // tried again (its bill is credited at the next settling, as it
            // used nothing of this one).
            Err(_) => libos::rt::critical(core, || {
                STATE.with(|s| {
                    if let Some(s) = s.as_mut() {
                        if s.policy.sleep(client).is_ok() {
                            s.asleep[slot_of(client)] = Some((client, sys::now_ns()));
                        }
                    }
                })
            }),
            Ok(_) => {}
        }
        donations += 1;
        if donations == 100 {
            report!(
                "\"kind\":\"sched_env\",\"core\":{core},\"donations\":{donations},\"policy\":\"{}\"",
                threads::requested_policy().name()
            );
        }
    }
}

libos::program!(App {
    name: "sched_env",
    main: worker,
    epilogue: Epilogue::Cooperative,
    on_fault: None
});
