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
//! A word goes `IDLE -> WANT` (the asker), `WANT -> CLAIMED` (a combiner,
//! under the lock), `CLAIMED -> DECIDED(tid) | DECLINED` (the combiner),
//! and back to `IDLE` by the asker, which is the only one to leave
//! `DECIDED`/`DECLINED`, and which can withdraw only from `WANT`: a
//! claimed request is always answered, so a pick is never undone.

use core::sync::atomic::{AtomicU64, Ordering};

use crate::rt::MAX_WORKERS;

const IDLE: u64 = 0;
const WANT: u64 = 1;
const CLAIMED: u64 = 2;
const DECLINED: u64 = 3;
/// `DECIDED(tid)` is `DECIDED + tid`.
const DECIDED: u64 = 4;

/// What an asker finds in its word.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Answer {
    /// No answer yet (asked, or claimed and being decided).
    Waiting,
    /// The policy picked `tid` for this core: it is Running here.
    Decided(usize),
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
    /// goes back to `IDLE`).
    #[inline]
    pub fn poll(&self, core: usize) -> Answer {
        match self.words[core].load(Ordering::Acquire) {
            WANT | CLAIMED => Answer::Waiting,
            IDLE => Answer::Idle,
            w => {
                self.words[core].store(IDLE, Ordering::Relaxed);
                if w == DECLINED {
                    Answer::Declined
                } else {
                    Answer::Decided((w - DECIDED) as usize)
                }
            }
        }
    }

    /// The asker stops waiting: its request is withdrawn unless a
    /// combiner claimed it, in which case this waits for the answer
    /// (a claim is answered under the lock, without waiting for
    /// anything). Never `Waiting`.
    pub fn withdraw(&self, core: usize) -> Answer {
        loop {
            match self.words[core].compare_exchange(
                WANT,
                IDLE,
                Ordering::Acquire,
                Ordering::Acquire,
            ) {
                Ok(_) => return Answer::Idle,
                Err(CLAIMED) => core::hint::spin_loop(),
                Err(_) => return self.poll(core),
            }
        }
    }

    /// Whether any core may be waiting (one load per pending word: a
    /// decide with no asker pays only this).
    #[inline]
    pub fn any(&self) -> bool {
        self.pending.iter().any(|b| b.load(Ordering::Relaxed) != 0)
    }

    /// The combiner, under the runtime lock: claims every waiting core's
    /// request in core order and answers it with `pick(core)` (`None`:
    /// declined). `pick` runs with the request claimed, so its core can
    /// neither withdraw nor run anything meanwhile.
    pub fn serve(&self, mut pick: impl FnMut(usize) -> Option<usize>) {
        for (w, bits) in self.pending.iter().enumerate() {
            if bits.load(Ordering::Relaxed) == 0 {
                continue;
            }
            let mut set = bits.swap(0, Ordering::Acquire);
            while set != 0 {
                let core = w * 64 + set.trailing_zeros() as usize;
                set &= set - 1;
                // Withdrawn (a stale bit): nothing to answer.
                if self.words[core]
                    .compare_exchange(WANT, CLAIMED, Ordering::Acquire, Ordering::Relaxed)
                    .is_err()
                {
                    continue;
                }
                let answer = pick(core).map_or(DECLINED, |tid| DECIDED + tid as u64);
                self.words[core].store(answer, Ordering::Release);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_served_core_gets_its_own_pick_and_the_word_empties() {
        let r = Requests::new();
        r.ask(3);
        r.ask(70);
        assert_eq!(r.poll(3), Answer::Waiting);
        let mut asked = std::vec::Vec::new();
        r.serve(|core| {
            asked.push(core);
            (core == 3).then_some(17)
        });
        assert_eq!(asked, [3, 70], "each asker once, in core order");
        assert_eq!(r.poll(3), Answer::Decided(17));
        assert_eq!(r.poll(3), Answer::Idle, "an answer is taken once");
        assert_eq!(r.poll(70), Answer::Declined);
        assert!(!r.any());
    }

    #[test]
    fn a_withdrawn_request_is_not_served_and_a_served_one_cannot_be_withdrawn() {
        let r = Requests::new();
        r.ask(5);
        assert_eq!(r.withdraw(5), Answer::Idle);
        r.serve(|_| panic!("a withdrawn request was served"));
        r.ask(5);
        r.serve(|_| Some(0));
        assert_eq!(r.withdraw(5), Answer::Decided(0), "tid 0 is a decision");
        assert_eq!(r.poll(5), Answer::Idle);
    }

    #[test]
    fn a_claim_is_answered_before_a_withdrawal_returns() {
        let r = std::sync::Arc::new(Requests::new());
        r.ask(9);
        let (go, claimed) = std::sync::mpsc::channel();
        let combiner = {
            let r = r.clone();
            std::thread::spawn(move || {
                r.serve(|_| {
                    go.send(()).unwrap();
                    std::thread::sleep(std::time::Duration::from_millis(20));
                    Some(42)
                })
            })
        };
        claimed.recv().unwrap();
        assert_eq!(r.withdraw(9), Answer::Decided(42));
        combiner.join().unwrap();
    }
}
