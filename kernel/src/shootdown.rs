//! TLB-shootdown bookkeeping: per core, a generation of requests and a
//! generation of completed flushes.
//!
//! A sender takes a ticket (the target's request generation, incremented)
//! and waits until the target's completed generation reaches it. The
//! target, on its interrupt, reads the request generation first, then
//! flushes every non-global translation (whatever address space it runs),
//! then publishes that generation as done. Any number of senders shooting
//! down any address spaces at once are all answered by a flush that began
//! after their request: none overwrites another's (the single request word
//! this replaces kept only the last address space written, and the target
//! flushed only if it ran that one — issue 14, hole 7).

use core::sync::atomic::{AtomicU64, Ordering};

/// Requests and completions for `N` cores.
pub struct Generations<const N: usize> {
    requested: [AtomicU64; N],
    done: [AtomicU64; N],
}

/// A sender's claim on one target's flush.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ticket {
    pub core: usize,
    pub generation: u64,
}

impl<const N: usize> Default for Generations<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> Generations<N> {
    pub const fn new() -> Self {
        Generations {
            requested: [const { AtomicU64::new(0) }; N],
            done: [const { AtomicU64::new(0) }; N],
        }
    }

    /// Asks `core` for a flush; the caller then interrupts it.
    pub fn request(&self, core: usize) -> Ticket {
        let generation = self.requested[core].fetch_add(1, Ordering::AcqRel) + 1;
        Ticket { core, generation }
    }

    /// Whether the flush `ticket` asked for has been done.
    pub fn answered(&self, ticket: Ticket) -> bool {
        self.done[ticket.core].load(Ordering::Acquire) >= ticket.generation
    }

    /// On `core`: the generation a flush starting now covers, if any
    /// request is not yet answered. Read before flushing.
    pub fn pending(&self, core: usize) -> Option<u64> {
        let requested = self.requested[core].load(Ordering::Acquire);
        (requested > self.done[core].load(Ordering::Acquire)).then_some(requested)
    }

    /// On `core`, after the flush that `pending` returned `generation` for.
    pub fn complete(&self, core: usize, generation: u64) {
        self.done[core].fetch_max(generation, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicBool;
    use std::sync::Arc;

    #[test]
    fn two_senders_at_once_are_both_answered_by_one_flush() {
        let g = Generations::<4>::new();
        let a = g.request(1);
        let b = g.request(1);
        assert!(!g.answered(a) && !g.answered(b));
        let covered = g.pending(1).expect("requests pending");
        g.complete(1, covered);
        assert!(g.answered(a) && g.answered(b));
        assert_eq!(g.pending(1), None);
    }

    #[test]
    fn a_request_after_the_flush_began_waits_for_the_next() {
        let g = Generations::<2>::new();
        let a = g.request(1);
        let covered = g.pending(1).unwrap();
        // Arrives while the target flushes: not covered by this flush.
        let b = g.request(1);
        g.complete(1, covered);
        assert!(g.answered(a));
        assert!(!g.answered(b), "answered by a flush that began before it");
        let next = g.pending(1).unwrap();
        g.complete(1, next);
        assert!(g.answered(b));
    }

    #[test]
    fn completions_never_go_backwards() {
        let g = Generations::<2>::new();
        let a = g.request(0);
        let b = g.request(0);
        let late = g.pending(0).unwrap();
        g.complete(0, late);
        // A stale handler finishing with an older generation.
        g.complete(0, a.generation);
        assert!(g.answered(b));
    }

    /// Threads: senders with their own "address spaces" unmap a page (set
    /// a flag), request a flush of every target and wait; each target
    /// models its TLB as a copy of the flags it last loaded, refreshed by
    /// a flush. Once a sender's wait ends, no target may still hold the
    /// page it unmapped as mapped.
    #[test]
    fn no_sender_returns_while_a_target_keeps_a_stale_translation() {
        const CORES: usize = 4;
        const SENDERS: usize = 3;
        let g = Arc::new(Generations::<CORES>::new());
        // Per sender: the page is mapped (true) or unmapped (false), and
        // the round it is in.
        let mapped: Arc<Vec<AtomicBool>> =
            Arc::new((0..SENDERS).map(|_| AtomicBool::new(true)).collect());
        // Per target core, per sender: its cached translation.
        let tlb: Arc<Vec<Vec<AtomicBool>>> = Arc::new(
            (0..CORES)
                .map(|_| (0..SENDERS).map(|_| AtomicBool::new(true)).collect())
                .collect(),
        );
        let stop = Arc::new(AtomicBool::new(false));
        let targets: Vec<_> = (SENDERS..CORES)
            .map(|core| {
                let (g, mapped, tlb, stop) = (g.clone(), mapped.clone(), tlb.clone(), stop.clone());
                std::thread::spawn(move || {
                    while !stop.load(Ordering::Acquire) {
                        if let Some(generation) = g.pending(core) {
                            for (s, entry) in tlb[core].iter().enumerate() {
                                entry.store(mapped[s].load(Ordering::Acquire), Ordering::Release);
                            }
                            g.complete(core, generation);
                        }
                        std::thread::yield_now();
                    }
                })
            })
            .collect();
        let senders: Vec<_> = (0..SENDERS)
            .map(|s| {
                let (g, mapped, tlb) = (g.clone(), mapped.clone(), tlb.clone());
                std::thread::spawn(move || {
                    for _ in 0..2000 {
                        // Map: targets may load it (remap, then a flush).
                        mapped[s].store(true, Ordering::Release);
                        for core in SENDERS..CORES {
                            tlb[core][s].store(true, Ordering::Release);
                        }
                        mapped[s].store(false, Ordering::Release);
                        let tickets: Vec<_> = (SENDERS..CORES).map(|c| g.request(c)).collect();
                        for t in tickets {
                            while !g.answered(t) {
                                std::thread::yield_now();
                            }
                            assert!(
                                !tlb[t.core][s].load(Ordering::Acquire),
                                "core {} still maps sender {s}'s page",
                                t.core
                            );
                        }
                    }
                })
            })
            .collect();
        for s in senders {
            s.join().unwrap();
        }
        stop.store(true, Ordering::Release);
        for t in targets {
            t.join().unwrap();
        }
    }
}
