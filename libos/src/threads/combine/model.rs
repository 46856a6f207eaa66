//! A model of the prologues on host threads, one per core, around the
//! real [`Requests`]: a policy (a queue of runnable threads and, per
//! core, the thread it believes runs there) under a lock, stops published
//! per core, combiners serving askers, askers giving up, and cores the
//! "kernel" takes away for a while, all at random moments. It fails if a
//! decision is lost (a thread neither runnable, nor running, nor in a
//! stop), made twice (a thread resumed on two cores at once), or handed
//! to a core that does not hold it in the policy.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::vec::Vec;

use super::{Answer, Reply, Requests};

const NONE: usize = usize::MAX;
const CORES: usize = 6;
const THREADS: usize = 4;
const ROUNDS: usize = 3_000;

struct Policy {
    runnable: VecDeque<usize>,
    /// The thread the policy believes runs on each core.
    running: [usize; CORES],
}

struct World {
    rt: Mutex<Policy>,
    requests: Requests,
    /// A core's stopped thread, published for whoever decides next.
    stops: [AtomicUsize; CORES],
    /// The core each thread really runs on.
    on: [AtomicUsize; THREADS],
    /// Whether the core runs this environment now (the kernel's
    /// `running_env`).
    present: [AtomicBool; CORES],
    served: AtomicU64,
    undone: AtomicU64,
}

/// xorshift: the model's randomness, seeded per core.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }

    /// Now and then a pause long enough for other cores to act.
    fn pause(&mut self) {
        match self.below(64) {
            0 => std::thread::sleep(std::time::Duration::from_micros(self.below(200))),
            1..=8 => std::thread::yield_now(),
            _ => core::hint::spin_loop(),
        }
    }
}

impl World {
    /// Under the lock: charges `k`'s stop and picks for `k`, as
    /// `Table::stop_ran_at` and `Table::start_at` do.
    fn pick_for(&self, p: &mut Policy, k: usize, rng: &mut Rng) -> Option<usize> {
        let stopped = self.stops[k].swap(NONE, Ordering::AcqRel);
        if stopped != NONE {
            assert_eq!(p.running[k], stopped, "core {k}'s stop is its thread");
            p.running[k] = NONE;
            p.runnable.push_back(stopped);
        }
        if p.running[k] != NONE {
            return None;
        }
        // A slow pick now and then (a combiner repossessed mid-pick).
        if rng.below(8) == 0 {
            std::thread::sleep(std::time::Duration::from_micros(50));
        }
        let tid = p.runnable.pop_front()?;
        p.running[k] = tid;
        Some(tid)
    }

    /// Under the lock: serves the askers, then picks for `core`.
    fn decide(&self, p: &mut Policy, core: usize, rng: &mut Rng) -> Option<usize> {
        let p = core::cell::RefCell::new(p);
        self.requests.serve(
            |k| self.present[k].load(Ordering::Acquire),
            |k| {
                self.served.fetch_add(1, Ordering::Relaxed);
                let mut p = p.borrow_mut();
                match self.pick_for(&mut p, k, rng) {
                    Some(tid) => Reply::Run(tid),
                    // Threads run elsewhere: park (the model's park is a
                    // round without a thread), as `serve_waiters` answers.
                    None if p.running.iter().any(|&t| t != NONE) => Reply::Park(0),
                    None => Reply::Decline,
                }
            },
            |k, reply| {
                let Reply::Run(tid) = reply else {
                    // A park counted nowhere: nothing to give back.
                    return;
                };
                self.undone.fetch_add(1, Ordering::Relaxed);
                let mut p = p.borrow_mut();
                assert_eq!(p.running[k], tid);
                p.running[k] = NONE;
                p.runnable.push_front(tid);
            },
        );
        let mine = self.pick_for(&mut p.borrow_mut(), core, rng);
        mine
    }

    /// `core` runs `tid`: the policy must have it there, and nobody else
    /// may be running it.
    fn resume(&self, core: usize, tid: usize) {
        assert_eq!(self.rt.lock().unwrap().running[core], tid, "core {core}");
        assert_eq!(
            self.on[tid].compare_exchange(NONE, core, Ordering::AcqRel, Ordering::Acquire),
            Ok(NONE),
            "thread {tid} resumed on core {core} while running elsewhere"
        );
    }

    /// One prologue of `core` (`threads::dispatch`); the thread it runs.
    fn dispatch(&self, core: usize, rng: &mut Rng) -> Option<usize> {
        if let Ok(mut p) = self.rt.try_lock() {
            return self.decide(&mut p, core, rng);
        }
        self.requests.ask(core);
        for _ in 0..50 {
            if rng.below(100) == 0 {
                // Repossessed while waiting: the core is given away a while.
                self.present[core].store(false, Ordering::Release);
                rng.pause();
                rng.pause();
                self.present[core].store(true, Ordering::Release);
            }
            match self.requests.poll(core) {
                Answer::Decided(tid) => return Some(tid),
                Answer::Park(_) => return None,
                Answer::Declined | Answer::Idle => {
                    return self.decide(&mut self.rt.lock().unwrap(), core, rng)
                }
                Answer::Waiting => {}
            }
            if let Ok(mut p) = self.rt.try_lock() {
                if let Answer::Decided(tid) = self.requests.withdraw(core) {
                    return Some(tid);
                }
                return self.decide(&mut p, core, rng);
            }
            rng.pause();
        }
        if let Answer::Decided(tid) = self.requests.withdraw(core) {
            return Some(tid);
        }
        // Gave up (`run_on`): the stop nobody has charged yet runs on.
        let stopped = self.stops[core].swap(NONE, Ordering::AcqRel);
        (stopped != NONE).then_some(stopped)
    }

    fn run_core(&self, core: usize) {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ ((core as u64 + 1) * 0x1234_5679));
        let mut current = NONE;
        for _ in 0..ROUNDS {
            if current != NONE {
                self.on[current].store(NONE, Ordering::Release);
                self.stops[core].store(current, Ordering::Release);
            }
            current = self.dispatch(core, &mut rng).unwrap_or(NONE);
            if current != NONE {
                self.resume(core, current);
                rng.pause();
            }
        }
        if current != NONE {
            self.on[current].store(NONE, Ordering::Release);
            self.stops[core].store(current, Ordering::Release);
        }
    }
}

#[test]
fn combining_neither_loses_nor_doubles_a_decision() {
    let world = World {
        rt: Mutex::new(Policy {
            runnable: (0..THREADS).collect(),
            running: [NONE; CORES],
        }),
        requests: Requests::new(),
        stops: [const { AtomicUsize::new(NONE) }; CORES],
        on: [const { AtomicUsize::new(NONE) }; THREADS],
        present: [const { AtomicBool::new(true) }; CORES],
        served: AtomicU64::new(0),
        undone: AtomicU64::new(0),
    };
    std::thread::scope(|s| {
        for core in 0..CORES {
            let w = &world;
            s.spawn(move || w.run_core(core));
        }
    });
    // Quiet: every request answered and taken or withdrawn, every stop
    // charged back, and each thread runnable exactly once.
    let mut p = world.rt.lock().unwrap();
    for core in 0..CORES {
        assert_eq!(
            world.requests.poll(core),
            Answer::Idle,
            "core {core}'s word"
        );
        let stopped = world.stops[core].swap(NONE, Ordering::AcqRel);
        if stopped != NONE {
            assert_eq!(p.running[core], stopped);
            p.running[core] = NONE;
            p.runnable.push_back(stopped);
        }
        assert_eq!(
            p.running[core], NONE,
            "core {core} holds a thread nobody runs"
        );
    }
    let mut all: Vec<usize> = p.runnable.iter().copied().collect();
    all.sort_unstable();
    assert_eq!(all, (0..THREADS).collect::<Vec<_>>(), "each thread once");
    let (served, undone) = (world.served.into_inner(), world.undone.into_inner());
    std::eprintln!("{served} picks made for waiting cores, {undone} undone");
    assert!(
        served > 100,
        "the model combined too rarely to test it: {served}"
    );
}
