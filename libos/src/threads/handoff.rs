//! The lock-free hand-off between a core's thread stops and the policy.
//!
//! A thread that leaves a core — revoked in the epilogue, repossessed,
//! or switching out on its own while the runtime lock is busy or a
//! revocation pending — is not charged there and then: that would
//! take the application-wide runtime lock on the revocation path, and a
//! core repossessed while holding it would stall every other core's
//! epilogue until its own grace ended (issue 13). Instead the leaving core
//! publishes one word, [`Stop`], in its own slot, and whichever core next
//! holds the lock — this core's next prologue, or any core's dispatch —
//! charges it to the policy. Until then the policy still counts the thread
//! as running on that core, so it is neither lost nor run twice.
//!
//! Each core's slot holds at most one stop: a core publishes only after a
//! thread ran on it, and a thread only starts on a core after that core's
//! slot was drained (`threads::decide`, which `dispatch` and the voluntary
//! switch's fast path run, drains before it picks).

use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use sched_api::RunEnd;

use super::table::Table;
use crate::rt::MAX_WORKERS;

/// Bits of a stop word that hold the ns charged (2^44 ns: 4.9 hours).
const RAN_BITS: u32 = 44;
/// Bits that hold the thread id plus one (0: the slot is empty).
const TID_BITS: u32 = 18;
pub const RAN_MAX: u64 = (1 << RAN_BITS) - 1;
/// Most thread ids a stop word can name.
pub const MAX_TID: usize = (1 << TID_BITS) - 2;

/// Charges to `rt`'s policy, under the runtime lock, first `own` — the
/// stop the calling core `core` took for itself on a voluntary switch's
/// fast path, charged at its own instant — then every stop
/// published in `stops`. Returns the instant the dispatch goes on from
/// (its wake-ups are checked at it): `own`'s, or else `now()`, read once.
/// After a voluntary stop its instant serves as the dispatch's own: a
/// clock read less. `threads::decide` and the host tests of the protocol
/// call this same function. Always inlined (it is on every switch's path).
#[inline(always)]
pub(super) fn charge_all<R: Fn(u64) -> u64>(
    rt: &mut Table,
    stops: &Stops,
    core: usize,
    own: Option<Stop>,
    now: impl FnOnce() -> u64,
    read: &R,
) -> u64 {
    let now = match own {
        Some(stop) => {
            charge(rt, core, stop, stop.at_ns, read);
            stop.at_ns
        }
        None => now(),
    };
    stops.drain(|core, stop| charge(rt, core, stop, now, read));
    now
}

/// Charges `core`'s `stop` to the policy, checking wake-ups at `now`: a
/// sleep's deadline first, so that a thread whose deadline passed on its
/// way to sleep stays runnable.
#[inline(always)]
pub(super) fn charge<R: Fn(u64) -> u64>(
    rt: &mut Table,
    core: usize,
    stop: Stop,
    now: u64,
    read: &R,
) {
    if stop.wake_at_ns != 0 {
        rt.wake_at(stop.tid, stop.wake_at_ns);
    }
    if stop.unrun {
        rt.hand_back(core, stop.tid, stop.ran_ns, stop.at_ns, now, read);
    } else {
        rt.stop_ran_at(core, stop.tid, stop.ran_ns, stop.at_ns, now, stop.end, read);
    }
}

/// One thread's stop, to be charged: who, how it ended, how long it ran,
/// and when it left the core.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stop {
    pub tid: usize,
    pub end: RunEnd,
    /// CPU time to charge (ns), capped at 2^44 - 1.
    pub ran_ns: u64,
    /// When it left the core (global clock, ns): a thread still runnable
    /// waits for a core from then on. Kept beside the word, not in it.
    pub at_ns: u64,
    /// A blocked thread's deadline (global clock, ns; 0: none): it sleeps
    /// until then. Set when the stop is charged, under the lock, so going
    /// to sleep does not take the lock from the thread's own context.
    /// Kept beside the word, as the instant is.
    pub wake_at_ns: u64,
    /// Handed back before it was resumed (a preemption): it waits on from
    /// before its pick ([`Table::hand_back`]). Kept beside the word.
    pub unrun: bool,
}

impl Stop {
    fn pack(self) -> u64 {
        debug_assert!(self.tid <= MAX_TID);
        let end = match self.end {
            RunEnd::Preempted => 0,
            RunEnd::Yielded => 1,
            RunEnd::Blocked => 2,
            RunEnd::Exited => 3,
        };
        end << (RAN_BITS + TID_BITS) | (self.tid as u64 + 1) << RAN_BITS | self.ran_ns.min(RAN_MAX)
    }

    fn unpack(word: u64, at_ns: u64, wake_at_ns: u64, unrun: bool) -> Option<Stop> {
        let tid = (word >> RAN_BITS) & ((1 << TID_BITS) - 1);
        if tid == 0 {
            return None;
        }
        let end = match word >> (RAN_BITS + TID_BITS) {
            0 => RunEnd::Preempted,
            1 => RunEnd::Yielded,
            2 => RunEnd::Blocked,
            _ => RunEnd::Exited,
        };
        Some(Stop {
            tid: tid as usize - 1,
            end,
            ran_ns: word & RAN_MAX,
            at_ns,
            wake_at_ns,
            unrun,
        })
    }
}

/// Every core's pending stop: its word, and beside it the instant it was
/// made, the deadline it sleeps to and whether it ran (written before the
/// word, read after it). The taker reads them after it emptied the word, so a new publish could overwrite it
/// in between only if a thread ran on that core meanwhile; one starts
/// there only from a dispatch, under the runtime lock the draining core
/// holds, or from the core's own fallback `take`, which then got the word
/// instead. `pending` has a bit per core set after its word is: a drain,
/// which runs under the runtime lock, visits only those (a walk of every
/// core's word cost a 32-core application ~130 instructions a dispatch,
/// all of them under the lock).
pub struct Stops {
    words: [AtomicU64; MAX_WORKERS],
    instants: [AtomicU64; MAX_WORKERS],
    deadlines: [AtomicU64; MAX_WORKERS],
    unrun: [AtomicBool; MAX_WORKERS],
    pending: [AtomicU64; MAX_WORKERS.div_ceil(64)],
}

impl Default for Stops {
    fn default() -> Self {
        Self::new()
    }
}

impl Stops {
    pub const fn new() -> Stops {
        Stops {
            words: [const { AtomicU64::new(0) }; MAX_WORKERS],
            instants: [const { AtomicU64::new(0) }; MAX_WORKERS],
            deadlines: [const { AtomicU64::new(0) }; MAX_WORKERS],
            unrun: [const { AtomicBool::new(false) }; MAX_WORKERS],
            pending: [const { AtomicU64::new(0) }; MAX_WORKERS.div_ceil(64)],
        }
    }

    /// Publishes `stop` for `core` (after the thread's context is saved:
    /// the release orders that write before the word). False if the slot
    /// was not empty, which the invariant above rules out; the caller
    /// treats it as the bug it is.
    pub fn publish(&self, core: usize, stop: Stop) -> bool {
        if self.words[core].load(Ordering::Relaxed) != 0 {
            return false;
        }
        // Only this core publishes in its slot, so the instant and the
        // deadline are not overwritten under a pending word (checked just
        // above); the release below orders them before the word.
        self.instants[core].store(stop.at_ns, Ordering::Relaxed);
        self.deadlines[core].store(stop.wake_at_ns, Ordering::Relaxed);
        self.unrun[core].store(stop.unrun, Ordering::Relaxed);
        if self.words[core]
            .compare_exchange(0, stop.pack(), Ordering::Release, Ordering::Relaxed)
            .is_err()
        {
            return false;
        }
        // After the word: a drain that takes the bit finds the word. One
        // that ran between the two misses this stop as it would one
        // published after it; the next drain, or this core's own dispatch
        // (which drains after its publish), finds it.
        self.pending[core / 64].fetch_or(1 << (core % 64), Ordering::Release);
        true
    }

    /// Takes `core`'s pending stop, if any (its context write happens
    /// before this returns it).
    pub fn take(&self, core: usize) -> Option<Stop> {
        let word = self.words[core].swap(0, Ordering::Acquire);
        Stop::unpack(
            word,
            self.instants[core].load(Ordering::Relaxed),
            self.deadlines[core].load(Ordering::Relaxed),
            self.unrun[core].load(Ordering::Relaxed),
        )
    }

    /// Takes every core's pending stop, in core order, for `f`. Under the
    /// runtime lock (one drain at a time). Inlined: most dispatches find
    /// nothing, and then this is a load and a test per word (as a call it
    /// cost a yield ~20 instructions).
    #[inline]
    pub fn drain(&self, mut f: impl FnMut(usize, Stop)) {
        for (w, bits) in self.pending.iter().enumerate() {
            // A load first: most dispatches find no other core's stop, and
            // a swap would write the shared line every time.
            if bits.load(Ordering::Relaxed) != 0 {
                self.drain_word(w, &mut f);
            }
        }
    }

    /// [`Stops::drain`] of pending word `w`, which had a bit set.
    #[inline(never)]
    fn drain_word(&self, w: usize, f: &mut impl FnMut(usize, Stop)) {
        let mut set = self.pending[w].swap(0, Ordering::Acquire);
        while set != 0 {
            let core = w * 64 + set.trailing_zeros() as usize;
            set &= set - 1;
            // Empty if the core took its own stop back (a bit then
            // outlives its word).
            if let Some(stop) = self.take(core) {
                f(core, stop);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stop_survives_its_word() {
        for end in [
            RunEnd::Preempted,
            RunEnd::Yielded,
            RunEnd::Blocked,
            RunEnd::Exited,
        ] {
            for (tid, ran_ns) in [(0, 0), (1, 2_000_000), (MAX_TID, RAN_MAX), (127, 1)] {
                let s = Stop {
                    tid,
                    end,
                    ran_ns,
                    at_ns: 0,
                    wake_at_ns: 0,
                    unrun: false,
                };
                for unrun in [false, true] {
                    let s = Stop {
                        at_ns: 77,
                        wake_at_ns: 99,
                        unrun,
                        ..s
                    };
                    assert_eq!(Stop::unpack(s.pack(), 77, 99, unrun), Some(s));
                }
            }
        }
        assert_eq!(Stop::unpack(0, 0, 0, false), None);
    }

    #[test]
    fn an_overlong_charge_is_capped_not_wrapped_into_the_tid() {
        let s = Stop {
            tid: 5,
            end: RunEnd::Blocked,
            ran_ns: u64::MAX,
            at_ns: 0,
            wake_at_ns: 0,
            unrun: false,
        };
        let back = Stop::unpack(s.pack(), 0, 0, false).unwrap();
        assert_eq!(
            (back.tid, back.end, back.ran_ns),
            (5, RunEnd::Blocked, RAN_MAX)
        );
    }

    #[test]
    fn one_stop_per_core_and_drain_empties_every_slot() {
        let stops = Stops::new();
        let a = Stop {
            tid: 3,
            end: RunEnd::Preempted,
            ran_ns: 10,
            at_ns: 1234,
            wake_at_ns: 5678,
            unrun: true,
        };
        assert!(stops.publish(1, a));
        assert!(!stops.publish(1, a), "a second stop on one core is refused");
        assert!(stops.publish(
            MAX_WORKERS - 1,
            Stop {
                tid: 4,
                at_ns: 9,
                ..a
            }
        ));
        let mut seen = std::vec::Vec::new();
        stops.drain(|core, s| seen.push((core, s.tid)));
        assert_eq!(seen, [(1, 3), (MAX_WORKERS - 1, 4)]);
        assert_eq!(stops.take(1), None);
        assert!(stops.publish(1, a), "a drained slot takes a new stop");
        assert_eq!(stops.take(1), Some(a));
    }

    #[test]
    fn a_stop_its_core_took_back_is_not_drained_and_the_next_one_is() {
        let stops = Stops::new();
        let a = Stop {
            tid: 7,
            end: RunEnd::Preempted,
            ran_ns: 10,
            at_ns: 5,
            wake_at_ns: 0,
            unrun: false,
        };
        assert!(stops.publish(65, a));
        assert_eq!(stops.take(65), Some(a), "the core runs its thread on");
        let mut seen = std::vec::Vec::new();
        stops.drain(|core, s| seen.push((core, s.tid)));
        assert!(seen.is_empty(), "the stale bit finds an empty word");
        assert!(stops.publish(65, Stop { tid: 8, ..a }));
        assert!(stops.publish(5, Stop { tid: 10, ..a }));
        assert!(stops.publish(3, Stop { tid: 9, ..a }));
        stops.drain(|core, s| seen.push((core, s.tid)));
        assert_eq!(
            seen,
            [(3, 9), (5, 10), (65, 8)],
            "in core order, within and across words"
        );
        assert!(
            stops.pending.iter().all(|b| b.load(Ordering::Relaxed) == 0),
            "a drain clears the bits it visits"
        );
        stops.drain(|core, s| seen.push((core, s.tid)));
        assert_eq!(seen.len(), 3, "each stop once");
    }
}
