//! Wakeup predicates: installed verified, evaluated against the sleeper's
//! own memory (through its page tables), the global clock and counters.

use core::sync::atomic::Ordering;

use abi::syscall::Error;

use crate::arch::time;
use crate::aspace::AddressSpace;
use crate::env::Env;
use crate::exported;

/// Reads for the evaluator: the environment's own user memory only.
struct EnvMemory<'a> {
    aspace: &'a AddressSpace,
    now: u64,
    env: &'a Env,
}

impl predicate::EvalEnv for EnvMemory<'_> {
    fn read_u64(&self, addr: u64) -> Option<u64> {
        self.aspace.read_u64(addr)
    }

    fn clock_ns(&self) -> u64 {
        self.now
    }

    fn counter(&self, index: u32) -> Option<u64> {
        let a = self.env.account();
        Some(match index {
            0 => a.donations_received.load(Ordering::Relaxed),
            1 => a.repossessions.load(Ordering::Relaxed),
            2 => a.wakeups.load(Ordering::Relaxed),
            3 => exported::sysinfo().envs_created.load(Ordering::Relaxed),
            _ => return None,
        })
    }
}

/// Counters a predicate may name (see `EnvMemory::counter`).
pub const COUNTERS: u32 = 4;

/// Addresses a predicate may read: the caller's own user mappings.
struct OwnMappings<'a>(&'a AddressSpace);

impl predicate::AddressCheck for OwnMappings<'_> {
    fn allowed(&self, addr: u64, len: u64) -> bool {
        self.0.readable(addr, len)
    }
}

/// Verifies and installs `bytes` as `env`'s predicate. On rejection returns
/// the verifier's error packed as `(kind << 32) | position`.
pub fn install(env: &Env, bytes: &[u8]) -> Result<(), (Error, u64)> {
    let limits = predicate::Limits {
        counters: COUNTERS,
        ..predicate::Limits::DEFAULT
    };
    let verified = env
        .with_aspace(|a| predicate::verify(bytes, &limits, &OwnMappings(a)))
        .map_err(|e| {
            (
                Error::PredicateRejected,
                (u64::from(e.kind.code()) << 32) | e.at as u64,
            )
        })?;
    *env.predicate.lock() = Some(verified);
    Ok(())
}

/// Predicate evaluations, instructions executed and TSC ticks spent, over
/// all cores: reported at the end of a run (the cost is bounded by the
/// verifier; this is what it actually was).
pub static EVALS: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);
pub static EVAL_STEPS: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);
pub static EVAL_TICKS: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);
/// The same per program length (instructions): evaluations and ticks, so
/// `just bench` can show the cost against the size the verifier bounds.
static BY_LENGTH: [[core::sync::atomic::AtomicU64; 2]; predicate::MAX_INSNS + 1] =
    [const { [const { core::sync::atomic::AtomicU64::new(0) }; 2] }; predicate::MAX_INSNS + 1];

/// `(instructions, evaluations, mean ns)` for every length evaluated so far.
pub fn by_length() -> impl Iterator<Item = (usize, u64, u64)> {
    BY_LENGTH
        .iter()
        .enumerate()
        .filter_map(|(len, [evals, ticks])| {
            let n = evals.load(Ordering::Relaxed);
            (n > 0).then(|| (len, n, time::tsc_to_ns(ticks.load(Ordering::Relaxed)) / n))
        })
}

/// When `env`'s predicate, false now, may next turn true because time
/// passed (`predicate::Verified::next_clock_edge`): a hint for an idle
/// core's timer, so a timed sleeper is woken at its deadline rather than
/// at the next slice boundary.
pub fn next_clock_edge(env: &Env, now_ns: u64) -> Option<u64> {
    env.predicate.lock().as_ref()?.next_clock_edge(now_ns)
}

/// Evaluates `env`'s predicate; `Some(tag)` when it holds. A predicate
/// whose memory has gone away counts as true (the sleeper wakes and learns
/// from its own state), never as a kernel error.
pub fn evaluate(env: &Env) -> Option<u64> {
    let guard = env.predicate.lock();
    let p = guard.as_ref()?;
    let now = time::now_ns();
    let t0 = time::rdtsc();
    let result = env.with_aspace(|a| {
        p.eval(&EnvMemory {
            aspace: a,
            now,
            env,
        })
    });
    let ticks = time::rdtsc().saturating_sub(t0);
    EVAL_TICKS.fetch_add(ticks, Ordering::Relaxed);
    EVALS.fetch_add(1, Ordering::Relaxed);
    let [evals, spent] = &BY_LENGTH[p.len().min(predicate::MAX_INSNS)];
    evals.fetch_add(1, Ordering::Relaxed);
    spent.fetch_add(ticks, Ordering::Relaxed);
    if let Ok(o) = &result {
        EVAL_STEPS.fetch_add(o.steps as u64, Ordering::Relaxed);
    }
    match result {
        Ok(outcome) if outcome.value => Some(p.tag()),
        Ok(_) => None,
        Err(_) => Some(p.tag()),
    }
}
