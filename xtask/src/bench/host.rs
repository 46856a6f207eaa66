//! The Linux counterparts of the platform's primitives, measured on this
//! host in the same `just bench` run, and the policies' decision cost on
//! the host. Each figure: iterations timed together, several repetitions.

use std::path::Path;
use std::time::Instant;

use policy_bench::floor::Floor;
use sched_api::PolicyKind;

use super::Stat;

/// Repetitions of every measurement.
pub const REPS: usize = 5;

/// ns per iteration of `f` over `iters`, `REPS` times.
pub fn ns_per(iters: u64, mut f: impl FnMut()) -> Vec<f64> {
    (0..REPS)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..iters {
                f();
            }
            t.elapsed().as_nanos() as f64 / iters as f64
        })
        .collect()
}

pub fn getpid() -> Vec<f64> {
    // SAFETY: getpid has no arguments and no side effects.
    ns_per(1_000_000, || unsafe {
        libc::syscall(libc::SYS_getpid);
    })
}

pub fn sched_yield() -> Vec<f64> {
    // SAFETY: sched_yield has no arguments.
    ns_per(1_000_000, || unsafe {
        libc::sched_yield();
    })
}

extern "C" fn on_trap(_: libc::c_int) {}

/// `int3` → SIGTRAP handler → back: Linux's exception round trip.
pub fn signal_round_trip() -> Vec<f64> {
    // SAFETY: installs a handler that does nothing for SIGTRAP (which this
    // process raises itself below) and restores the default afterwards.
    unsafe {
        let mut act: libc::sigaction = std::mem::zeroed();
        act.sa_sigaction = on_trap as *const () as usize;
        libc::sigemptyset(&mut act.sa_mask);
        libc::sigaction(libc::SIGTRAP, &act, std::ptr::null_mut());
    }
    // SAFETY: int3 raises SIGTRAP, handled above; execution continues after it.
    let r = ns_per(100_000, || unsafe { std::arch::asm!("int3") });
    // SAFETY: restores the default disposition.
    unsafe {
        libc::signal(libc::SIGTRAP, libc::SIG_DFL);
    }
    r
}

fn pin_to_cpu0() {
    // SAFETY: a zeroed cpu_set_t is a valid empty set; pinning this process.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(0, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
}

/// Two processes pinned to one CPU passing a byte back and forth through
/// pipes: ns per round trip.
pub fn pipe_ping_pong() -> Vec<f64> {
    let mut a = [0i32; 2];
    let mut b = [0i32; 2];
    // SAFETY: plain pipe/fork/read/write on descriptors this function owns;
    // the child only loops on them and exits with _exit.
    unsafe {
        libc::pipe(a.as_mut_ptr());
        libc::pipe(b.as_mut_ptr());
        let pid = libc::fork();
        if pid == 0 {
            // Only the ends this side uses: EOF on `a` must reach it.
            libc::close(a[1]);
            libc::close(b[0]);
            pin_to_cpu0();
            let mut byte = 0u8;
            while libc::read(a[0], (&mut byte as *mut u8).cast(), 1) == 1 {
                libc::write(b[1], (&byte as *const u8).cast(), 1);
            }
            libc::_exit(0);
        }
        libc::close(a[0]);
        libc::close(b[1]);
        let mut old: libc::cpu_set_t = std::mem::zeroed();
        libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut old);
        pin_to_cpu0();
        let mut byte = 1u8;
        let r = ns_per(50_000, || {
            libc::write(a[1], (&byte as *const u8).cast(), 1);
            libc::read(b[0], (&mut byte as *mut u8).cast(), 1);
        });
        libc::close(a[1]);
        libc::waitpid(pid, std::ptr::null_mut(), 0);
        libc::close(b[0]);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &old);
        r
    }
}

static mut MAIN: std::mem::MaybeUninit<libc::ucontext_t> = std::mem::MaybeUninit::uninit();
static mut OTHER: std::mem::MaybeUninit<libc::ucontext_t> = std::mem::MaybeUninit::uninit();

extern "C" fn bounce() {
    loop {
        // SAFETY: both contexts were initialised before the first switch here.
        unsafe { libc::swapcontext((&raw mut OTHER).cast(), (&raw const MAIN).cast()) };
    }
}

/// glibc `swapcontext` between two user contexts: ns per switch.
pub fn swapcontext() -> Vec<f64> {
    let mut stack = vec![0u8; 64 * 1024];
    // SAFETY: OTHER gets its own stack (kept alive until the end of this
    // function) and never returns; each switch saves into the context not
    // being resumed.
    unsafe {
        libc::getcontext((&raw mut OTHER).cast());
        let other = &mut *(&raw mut OTHER).cast::<libc::ucontext_t>();
        other.uc_stack.ss_sp = stack.as_mut_ptr().cast();
        other.uc_stack.ss_size = stack.len();
        other.uc_link = std::ptr::null_mut();
        libc::makecontext(other, bounce, 0);
        let r = ns_per(200_000, || {
            libc::swapcontext((&raw mut MAIN).cast(), (&raw const OTHER).cast());
        });
        drop(stack);
        // Two switches per iteration.
        r.into_iter().map(|x| x / 2.0).collect()
    }
}

/// Criterion's figures for one benchmark: median and its 95% confidence
/// interval, in ns.
fn criterion_estimate(dir: &Path) -> Option<Stat> {
    let text = std::fs::read_to_string(dir.join("new/estimates.json")).ok()?;
    let v: serde_json::Value = serde_json::from_str(&text).ok()?;
    let m = &v["median"];
    Some(Stat {
        median: m["point_estimate"].as_f64()?,
        min: m["confidence_interval"]["lower_bound"].as_f64()?,
        max: m["confidence_interval"]["upper_bound"].as_f64()?,
    })
}

/// One policy's decision cost on the host at one thread count: the steady
/// state, under churn (a block and a wake per decision) where
/// `policy_bench::CHURN_THREADS` has the count, and its floor (the bare
/// data-structure operation, `policy_bench::floor`) where it has one, with
/// that floor timed again through the trait and the policies' loop
/// (`floor::Through`).
#[derive(Clone, Debug)]
pub struct PolicyCost {
    pub kind: PolicyKind,
    pub threads: u32,
    pub steady: Stat,
    pub churn: Option<Stat>,
    pub floor: Option<(Floor, Stat)>,
    pub floor_through_trait: Option<Stat>,
}

/// Runs the criterion benchmark `policy-bench/benches/decision.rs` for `threads` (all
/// policies and floors, every group) and returns each (policy, threads) figure: criterion's
/// median with its 95% confidence interval as min–max. `smoke` shortens
/// warm-up and measurement to a fraction of a second each.
pub fn policy_decisions(threads: &[u32], smoke: bool) -> Result<Vec<PolicyCost>, String> {
    let counts: Vec<String> = threads.iter().map(u32::to_string).collect();
    let filter = format!(
        "^(decision|churn|floor|trait)/[a-z]+/({})$",
        counts.join("|")
    );
    // The smoke also bootstraps the intervals from 10,000 resamples instead
    // of criterion's 100,000: analysing each benchmark took about as long
    // as measuring it, and the bounds move by far less than this host's
    // noise. That keeps the smoke as fast with the floors as it was without.
    let (warm_up, measure, resamples) = if smoke {
        ("0.2", "0.5", "10000")
    } else {
        ("1", "3", "100000")
    };
    let status = crate::build::inner_cargo(&[
        "bench",
        "--quiet",
        "-p",
        "policy-bench",
        "--bench",
        "decision",
        "--",
        "--noplot",
        "--warm-up-time",
        warm_up,
        "--measurement-time",
        measure,
        "--nresamples",
        resamples,
        &filter,
    ])
    .status()
    .map_err(|e| format!("cannot run cargo bench: {e}"))?;
    if !status.success() {
        return Err(format!("cargo bench -p policy-bench: {status}"));
    }
    let root = crate::build::workspace_root().join("target/criterion");
    let estimate = |group: &str, name: &str, n: u32| {
        let dir = root.join(group).join(name).join(n.to_string());
        criterion_estimate(&dir)
            .ok_or_else(|| format!("no criterion estimate in {}", dir.display()))
    };
    let mut out = Vec::new();
    for kind in policy_bench::kinds() {
        for &n in threads {
            let churn = if policy_bench::CHURN_THREADS.contains(&n) {
                Some(estimate("churn", kind.name(), n)?)
            } else {
                None
            };
            let (floor, floor_through_trait) = match Floor::of(kind) {
                Some(f) => (
                    Some((f, estimate("floor", f.name(), n)?)),
                    Some(estimate("trait", f.name(), n)?),
                ),
                None => (None, None),
            };
            out.push(PolicyCost {
                kind,
                threads: n,
                steady: estimate("decision", kind.name(), n)?,
                churn,
                floor,
                floor_through_trait,
            });
        }
    }
    Ok(out)
}

/// Memory for a predicate evaluated on the host: every word reads 0, the
/// clock is 0 (so deadlines and changed words are all false and the whole
/// program runs, as in the guest benchmark).
struct ZeroMemory;

impl predicate::EvalEnv for ZeroMemory {
    fn read_u64(&self, _addr: u64) -> Option<u64> {
        Some(0)
    }
    fn clock_ns(&self) -> u64 {
        0
    }
    fn counter(&self, _index: u32) -> Option<u64> {
        Some(0)
    }
}

struct AnyAddress;

impl predicate::AddressCheck for AnyAddress {
    fn allowed(&self, _addr: u64, _len: u64) -> bool {
        true
    }
}

/// The guest benchmark's predicate shape: a deadline and `words` watched
/// words, any of which wakes.
pub fn watch_predicate(words: usize) -> predicate::Program {
    use predicate::{Builder, Cond};
    let mut conds = vec![Cond::ClockAtLeast(u64::MAX)];
    conds.extend((0..words as u64).map(|i| Cond::WordChanged {
        addr: 0x1000 + 8 * i,
        old: 0,
    }));
    Builder::any_of(words as u64, &conds).expect("a valid predicate")
}

/// Verifying and evaluating that predicate on the host: (verify ns, evaluate ns).
pub fn predicate_costs(words: usize) -> (Vec<f64>, Vec<f64>) {
    let p = watch_predicate(words);
    let limits = predicate::Limits::DEFAULT;
    let verify = ns_per(100_000, || {
        std::hint::black_box(predicate::verify(p.as_bytes(), &limits, &AnyAddress).is_ok());
    });
    let verified = predicate::verify(p.as_bytes(), &limits, &AnyAddress).expect("valid");
    let eval = ns_per(1_000_000, || {
        std::hint::black_box(verified.eval(&ZeroMemory).is_ok());
    });
    (verify, eval)
}
