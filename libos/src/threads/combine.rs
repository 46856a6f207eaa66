//! Flat combining of the prologues' decisions (issue 13).
//!
//! At a slot boundary many cores enter their prologue at once and each
//! needs the runtime lock only to have the policy pick its next thread.
//! Taken in turn, the lock passed from core to core, and under
//! deterministic QEMU (one vCPU at a time) a core waited for it for as
//! long as every core before it took to be scheduled: time charged to
//! the application that no thread got (96 threads on 64 cores: 91% to
//! the threads). Instead a prologue asks here, in its own word, and
//! whichever core holds the lock in `threads::decide` picks for every
//! core that asked, under the lock and with that core's id, as the core
//! itself would have; the asker runs its answer without the lock.
//!
//! A word goes `IDLE -> WANT` (the asker), `WANT -> DECIDED(tid) |
//! DECLINED` (a combiner, under the lock, after it has picked) and back to
//! `IDLE` by the asker, which takes an answer or withdraws an open
//! request with one compare-and-swap. Nobody waits on anybody: a combiner
//! that finds the request withdrawn while it picked undoes its pick (the
//! thread back to the policy, uncharged), and an asker never waits for a
//! combiner that may have been repossessed mid-pick. A combiner serves
//! only a core that runs this environment now: a request left by a core
//! the kernel has since given to someone else waits for that core's next
//! turn, rather than a thread being picked that nobody would run.
//!
//! A core the policy has nothing for is answered `PARK(until)` when
//! threads run elsewhere: it parks to the instant the lock's holder
//! worked out for it, as its own `decide` would have, without taking the
//! lock (from a thread's own hold something always runs, the holder, so
//! such a core is told to park there, even when that thread is about to
//! sleep; it comes back within the park). Declined, it took the lock to
//! find that out itself, and with
//! sleepers on 64 cores (`scale-wakeups`, det) its bounded wait for the
//! lock behind every other declined core ran past its grace on a fifth of
//! the application's turns: repossessed, spinning in `decide_locked`.
//!
//! An asker that withdraws and asks again before a slow combiner's
//! answer lands gets that answer for its new request: the pick was made
//! for its core, after its stop was charged, and nothing ran there since
//! (only the lock's holder picks, and the combiner held it throughout).

use core::sync::atomic::{AtomicU64, Ordering};

use crate::rt::MAX_WORKERS;

const IDLE: u64 = 0;
const WANT: u64 = 1;
const DECLINED: u64 = 2;
/// `DECIDED(tid)` is `DECIDED + tid`.
const DECIDED: u64 = 3;
/// `PARK(until)` is `PARK | until` (global clock, ns: below 2^63).
const PARK: u64 = 1 << 63;

/// A combiner's reply for one waiting core.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reply {
    /// The policy picked this thread for the core: it is Running there.
    Run(usize),
    /// Nothing for the core while threads run elsewhere: it parks until
    /// then (as its own decide would have).
    Park(u64),
    /// Nothing the combiner can answer: the core decides itself.
    Decline,
}

impl Reply {
    fn word(self) -> u64 {
        match self {
            Reply::Run(tid) => DECIDED + tid as u64,
            Reply::Park(until) => PARK | until.min(PARK - 1),
            Reply::Decline => DECLINED,
        }
    }
}

/// What an asker finds in its word.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Answer {
    /// No answer yet.
    Waiting,
    /// The policy picked `tid` for this core: it is Running here.
    Decided(usize),
    /// Nothing to run here while threads run elsewhere: park until then.
    Park(u64),
    /// The combiner did not pick (nothing to run here): decide yourself.
    Declined,
    /// Not asked (withdrawn).
    Idle,
}

/// Every core's request word, and a bit per core set after its word
/// becomes `WANT`, so that a combiner visits only askers (as
/// `handoff::Stops` does for stops).
pub struct Requests {
    words: [AtomicU64; MAX_WORKERS],
    pending: [AtomicU64; MAX_WORKERS.div_ceil(64)],
}

impl Default for Requests {
    fn default() -> Self {
        Self::new()
    }
}

impl Requests {
    pub const fn new() -> Requests {
        Requests {
            words: [const { AtomicU64::new(IDLE) }; MAX_WORKERS],
            pending: [const { AtomicU64::new(0) }; MAX_WORKERS.div_ceil(64)],
        }
    }

    /// `core` asks for a decision. Its stop, if any, was published before
    /// (the release orders it before the word: the combiner that claims
    /// the word finds the stop).
    pub fn ask(&self, core: usize) {
        self.words[core].store(WANT, Ordering::Release);
        self.pending[core / 64].fetch_or(1 << (core % 64), Ordering::Release);
    }

    /// The asker's look at its word; a final answer is taken (the word
    /// goes back to `IDLE`: only the asker leaves an answer).
    #[inline]
    pub fn poll(&self, core: usize) -> Answer {
        match self.words[core].load(Ordering::Acquire) {
            WANT => Answer::Waiting,
            IDLE => Answer::Idle,
            w => {
                self.words[core].store(IDLE, Ordering::Relaxed);
                if w & PARK != 0 {
                    Answer::Park(w & !PARK)
                } else if w == DECLINED {
                    Answer::Declined
                } else {
                    Answer::Decided((w - DECIDED) as usize)
                }
            }
        }
    }

    /// The asker stops waiting: its open request is withdrawn, or the
    /// answer that came first is taken. Never waits; never `Waiting`.
    pub fn withdraw(&self, core: usize) -> Answer {
        match self.words[core].compare_exchange(WANT, IDLE, Ordering::Acquire, Ordering::Acquire) {
            Ok(_) => Answer::Idle,
            Err(_) => self.poll(core),
        }
    }

    /// Whether any core may be waiting (one load per pending word: a
    /// decide with no asker pays only this).
    #[inline]
    pub fn any(&self) -> bool {
        self.pending.iter().any(|b| b.load(Ordering::Relaxed) != 0)
    }

    /// The combiner, under the runtime lock: answers every waiting core
    /// that `serves(core)` with `reply(core)`, in core order, and hands a
    /// reply whose request was withdrawn meanwhile (a pick, a park) to
    /// `undo(core, reply)`. A core not served keeps its request open, for
    /// a later combiner.
    pub fn serve(
        &self,
        serves: impl Fn(usize) -> bool,
        mut reply: impl FnMut(usize) -> Reply,
        mut undo: impl FnMut(usize, Reply),
    ) {
        for (w, bits) in self.pending.iter().enumerate() {
            if bits.load(Ordering::Relaxed) == 0 {
                continue;
            }
            let mut set = bits.swap(0, Ordering::Acquire);
            let mut kept = 0;
            while set != 0 {
                let bit = set & set.wrapping_neg();
                set &= set - 1;
                let core = w * 64 + bit.trailing_zeros() as usize;
                // Withdrawn (a stale bit): nothing to answer.
                if self.words[core].load(Ordering::Acquire) != WANT {
                    continue;
                }
                if !serves(core) {
                    kept |= bit;
                    continue;
                }
                let r = reply(core);
                let answered = self.words[core]
                    .compare_exchange(WANT, r.word(), Ordering::Release, Ordering::Relaxed)
                    .is_ok();
                if !answered && r != Reply::Decline {
                    undo(core, r);
                }
            }
            if kept != 0 {
                bits.fetch_or(kept, Ordering::Release);
            }
        }
    }
}

#[cfg(test)]
mod model;

#[cfg(test)]
mod tests {
    use super::*;

    fn all(_: usize) -> bool {
        true
    }

    fn no_undo(core: usize, r: Reply) {
        panic!("core {core}'s reply {r:?} undone");
    }

    fn run_or_decline(tid: Option<usize>) -> Reply {
        tid.map_or(Reply::Decline, Reply::Run)
    }

    #[test]
    fn a_served_core_gets_its_own_pick_and_the_word_empties() {
        let r = Requests::new();
        r.ask(3);
        r.ask(70);
        assert_eq!(r.poll(3), Answer::Waiting);
        let mut asked = std::vec::Vec::new();
        r.serve(
            all,
            |core| {
                asked.push(core);
                run_or_decline((core == 3).then_some(17))
            },
            no_undo,
        );
        assert_eq!(asked, [3, 70], "each asker once, in core order");
        assert_eq!(r.poll(3), Answer::Decided(17));
        assert_eq!(r.poll(3), Answer::Idle, "an answer is taken once");
        assert_eq!(r.poll(70), Answer::Declined);
        assert!(!r.any());
    }

    #[test]
    fn a_withdrawn_request_is_not_served_and_an_answer_beats_a_withdrawal() {
        let r = Requests::new();
        r.ask(5);
        assert_eq!(r.withdraw(5), Answer::Idle);
        r.serve(all, |_| panic!("a withdrawn request was served"), no_undo);
        r.ask(5);
        r.serve(all, |_| Reply::Run(0), no_undo);
        assert_eq!(r.withdraw(5), Answer::Decided(0), "tid 0 is a decision");
        assert_eq!(r.poll(5), Answer::Idle);
    }

    /// The asker gives up while the combiner picks (the combiner may be
    /// repossessed there): the withdrawal returns at once and the pick is
    /// undone, not left running on a core that does not know of it.
    #[test]
    fn a_withdrawal_during_a_pick_returns_at_once_and_the_pick_is_undone() {
        let r = Requests::new();
        r.ask(9);
        let mut undone = None;
        r.serve(
            all,
            |core| {
                assert_eq!(r.withdraw(core), Answer::Idle, "never waits for the pick");
                Reply::Run(42)
            },
            |core, r| undone = Some((core, r)),
        );
        assert_eq!(undone, Some((9, Reply::Run(42))));
        assert_eq!(r.poll(9), Answer::Idle);
    }

    /// A core the kernel no longer runs this environment on is not given a
    /// thread; its request stays open for a later combiner.
    #[test]
    fn a_core_not_running_here_keeps_its_request_for_later() {
        let r = Requests::new();
        r.ask(2);
        r.ask(4);
        let mut picked = std::vec::Vec::new();
        r.serve(
            |core| core != 4,
            |core| {
                picked.push(core);
                Reply::Run(core)
            },
            no_undo,
        );
        assert_eq!(picked, [2]);
        assert_eq!(r.poll(4), Answer::Waiting);
        assert!(r.any(), "core 4 is still pending");
        r.serve(all, |core| Reply::Run(core + 10), no_undo);
        assert_eq!(r.poll(4), Answer::Decided(14));
        assert!(!r.any());
    }

    /// A core with nothing to run while threads run elsewhere is told to
    /// park, and until when, without taking the lock; a park whose request
    /// was withdrawn meanwhile goes back to `undo` (the combiner had
    /// counted the core as parked to that instant).
    #[test]
    fn an_idle_core_is_told_to_park_and_a_withdrawn_park_is_undone() {
        let r = Requests::new();
        r.ask(1);
        r.ask(6);
        let until = 5_000_000_123;
        r.serve(
            all,
            |core| {
                if core == 6 {
                    assert_eq!(r.withdraw(core), Answer::Idle);
                }
                Reply::Park(until + core as u64)
            },
            |core, reply| {
                assert_eq!((core, reply), (6, Reply::Park(until + 6)));
            },
        );
        assert_eq!(r.poll(1), Answer::Park(until + 1));
        assert_eq!(r.poll(1), Answer::Idle);
        assert_eq!(r.poll(6), Answer::Idle);
        r.ask(2);
        r.serve(all, |_| Reply::Park(u64::MAX), no_undo);
        assert_eq!(
            r.withdraw(2),
            Answer::Park(PARK - 1),
            "a far instant is capped, not read as a thread"
        );
    }
}
