//! The floor under a policy's decision: the bare data-structure operation
//! a decision of its family amounts to, at the same number of threads, with
//! nothing else — no records, no accounting, no checks. `just bench` times
//! each beside the policies it is the floor of and reports the ratio, so a
//! decision's cost reads as "this much above what its data structure alone
//! costs here, today" rather than as a bare figure from a noisy host.
//!
//! - [`Floor::Heap`] (stride, EEVDF): pop the smallest `(key, id)` from the
//!   standard library's `BinaryHeap` and push it back with its key advanced
//!   by the thread's stride — a virtual time moving as stride's pass does
//!   (`STRIDE1 / weight` per quantum, weights 1 to 10 as in
//!   [`crate::new_policy`]). Both policies run the runnable thread with the
//!   smallest virtual time (EEVDF: deadline) next and put it back further
//!   on; a priority queue's pop and push is the least such a decision
//!   does. The key is 64 bits, the width Linux's `vruntime` has: the
//!   policies' 128-bit virtual times are their choice, and part of what
//!   they pay.
//! - [`Floor::Ring`] (round robin): `VecDeque` pop at the front, push at the
//!   back.
//! - [`Floor::SumTree`] (lottery): draw a number below the total tickets
//!   and find whose tickets it falls in, by a descent of a Fenwick tree
//!   over the `n` weights. A lottery decision cannot do less than one draw
//!   and one search of the prefix sums; the weights change (compensation
//!   tickets, sleep and wake, transfers), so the sums must be updatable,
//!   which rules out O(1) samplers for fixed weights (alias tables), and a
//!   Fenwick tree is the textbook updatable prefix-sum structure (the
//!   1995 lottery paper's "tree of partial ticket sums"). Steady state
//!   changes no weight, so the floor updates none. The draw is one
//!   xorshift64* step reduced by a multiply (a slight bias, which the
//!   policy does not allow itself: its draw, Lemire's, is the same
//!   multiply plus a compare of the low word, and a rare rejection; that
//!   and its generator, xoshiro256**, are part of what it pays).
//!
//! [`Through`] is each floor again, as a `dyn Policy` whose `pick` does the
//! floor's whole step and whose `charge` does nothing, timed through the
//! bench's own [`crate::decision`]: the floor plus what every policy's
//! figure includes and its floor's does not (the loop and the trait's two
//! dynamic calls). A policy within 1.5x of its floor must fit all of its
//! own work in the room that column leaves.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::hint::black_box;

use sched_api::{CoreId, Policy, PolicyKind, RunEnd, SchedError, Snapshot, ThreadId, ThreadRecord};

/// One data structure's bare operation; see the module docs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Floor {
    Heap,
    Ring,
    SumTree,
}

impl Floor {
    /// Every floor, in the order the bench runs them.
    pub const ALL: [Floor; 3] = [Floor::Heap, Floor::Ring, Floor::SumTree];

    /// The floor's name in the benchmark id `floor/<name>/<n>`.
    pub fn name(self) -> &'static str {
        match self {
            Floor::Heap => "heap",
            Floor::Ring => "ring",
            Floor::SumTree => "sumtree",
        }
    }

    /// What the floor times, for reports.
    pub fn describe(self) -> &'static str {
        match self {
            Floor::Heap => "BinaryHeap pop+push",
            Floor::Ring => "VecDeque pop+push",
            Floor::SumTree => "draw + Fenwick descent",
        }
    }

    /// The floor of the policy `kind`: a judgement about its algorithm, so
    /// by name. A policy registered later has none until someone says what
    /// its decision amounts to (and its ratio is then left out).
    pub fn of(kind: PolicyKind) -> Option<Floor> {
        match kind.name() {
            "stride" | "eevdf" => Some(Floor::Heap),
            "rr" => Some(Floor::Ring),
            "lottery" => Some(Floor::SumTree),
            _ => None,
        }
    }

    /// The structure holding `n` threads, ready to time.
    pub fn build(self, n: u32) -> FloorState {
        match self {
            Floor::Heap => FloorState::Heap(HeapFloor::new(n)),
            Floor::Ring => FloorState::Ring(RingFloor::new(n)),
            Floor::SumTree => FloorState::SumTree(SumTreeFloor::new(n)),
        }
    }

    /// The structure holding `n` threads as a policy ([`Through`]), to time
    /// through [`crate::decision`] as the policies are.
    pub fn through(self, n: u32) -> Box<dyn Policy> {
        match self.build(n) {
            FloorState::Heap(h) => Box::new(Through(h)),
            FloorState::Ring(r) => Box::new(Through(r)),
            FloorState::SumTree(s) => Box::new(Through(s)),
        }
    }
}

/// A floor's bare operation: the thread it chose, `u32::MAX` for none.
pub trait Step {
    fn step(&mut self) -> u32;
}

impl Step for HeapFloor {
    #[inline]
    fn step(&mut self) -> u32 {
        HeapFloor::step(self)
    }
}

impl Step for RingFloor {
    #[inline]
    fn step(&mut self) -> u32 {
        RingFloor::step(self)
    }
}

impl Step for SumTreeFloor {
    #[inline]
    fn step(&mut self) -> u32 {
        SumTreeFloor::step(self)
    }
}

/// A floor as a policy, and nothing more: `pick` is the floor's step,
/// `charge` and every other call do nothing (no states, no records, no
/// checks, so it keeps none of [`Policy`]'s rules). Timed through the
/// bench's loop it is what a decision costs there at the least.
#[derive(Clone, Debug)]
pub struct Through<S>(pub S);

impl<S: Step + Send> Policy for Through<S> {
    fn kind(&self) -> PolicyKind {
        PolicyKind::new("floor")
    }
    fn add(&mut self, _id: ThreadId, _weight: u32) -> Result<(), SchedError> {
        Err(SchedError::Unsupported)
    }
    fn remove(&mut self, _id: ThreadId) -> Result<ThreadRecord, SchedError> {
        Err(SchedError::UnknownThread)
    }
    fn try_pick(&mut self, core: CoreId) -> Result<Option<ThreadId>, SchedError> {
        Ok(self.pick(core))
    }
    #[inline]
    fn pick(&mut self, _core: CoreId) -> Option<ThreadId> {
        Some(self.0.step()).filter(|&id| id != u32::MAX)
    }
    #[inline]
    fn charge(&mut self, _: ThreadId, _: CoreId, _: u64, _: RunEnd) -> Result<(), SchedError> {
        Ok(())
    }
    fn sleep(&mut self, _id: ThreadId) -> Result<(), SchedError> {
        Err(SchedError::Unsupported)
    }
    fn wake(&mut self, _id: ThreadId) -> Result<(), SchedError> {
        Err(SchedError::Unsupported)
    }
    fn set_weight(&mut self, _id: ThreadId, _weight: u32) -> Result<(), SchedError> {
        Err(SchedError::Unsupported)
    }
    fn set_cores(&mut self, _cores: usize) -> Result<(), SchedError> {
        Err(SchedError::Unsupported)
    }
    fn cores(&self) -> usize {
        1
    }
    fn quantum_ns(&self) -> u64 {
        crate::QUANTUM_NS
    }
    fn export(&self) -> Snapshot {
        Snapshot {
            global_vtime: 0,
            threads: Vec::new(),
        }
    }
    fn import(&mut self, _snapshot: Snapshot) -> Result<(), SchedError> {
        Err(SchedError::Unsupported)
    }
    fn record(&self, _id: ThreadId) -> Option<ThreadRecord> {
        None
    }
    fn len(&self) -> usize {
        0
    }
}

/// A floor's structure, holding `n` threads.
#[derive(Clone, Debug)]
pub enum FloorState {
    Heap(HeapFloor),
    Ring(RingFloor),
    SumTree(SumTreeFloor),
}

impl FloorState {
    /// One bare operation; the thread it chose (through `black_box`, so the
    /// optimiser can drop none of the work).
    #[inline]
    pub fn step(&mut self) -> u32 {
        black_box(match self {
            FloorState::Heap(h) => h.step(),
            FloorState::Ring(r) => r.step(),
            FloorState::SumTree(s) => s.step(),
        })
    }
}

/// A virtual time's unit per quantum: divisible by every weight 1 to 10,
/// so strides are exact, and small enough that keys never wrap however
/// long criterion runs (2^64 / 2520 quanta).
const STRIDE1: u64 = 2520;

fn weight(id: u32) -> u64 {
    1 + u64::from(id % 10)
}

/// `BinaryHeap<Reverse<(key, id)>>`, keys advancing by `STRIDE1 / weight`.
#[derive(Clone, Debug)]
pub struct HeapFloor {
    heap: BinaryHeap<Reverse<(u64, u32)>>,
    stride: Vec<u64>,
}

impl HeapFloor {
    pub fn new(n: u32) -> Self {
        HeapFloor {
            heap: (0..n).map(|id| Reverse((0, id))).collect(),
            stride: (0..n).map(|id| STRIDE1 / weight(id)).collect(),
        }
    }

    #[inline]
    pub fn step(&mut self) -> u32 {
        let Some(Reverse((key, id))) = self.heap.pop() else {
            return u32::MAX;
        };
        let stride = self.stride[id as usize];
        self.heap.push(Reverse((key + stride, id)));
        id
    }
}

/// `VecDeque<id>`: the head goes to the back.
#[derive(Clone, Debug)]
pub struct RingFloor {
    ring: VecDeque<u32>,
}

impl RingFloor {
    pub fn new(n: u32) -> Self {
        RingFloor {
            ring: (0..n).collect(),
        }
    }

    #[inline]
    pub fn step(&mut self) -> u32 {
        let Some(id) = self.ring.pop_front() else {
            return u32::MAX;
        };
        self.ring.push_back(id);
        id
    }
}

/// A Fenwick tree over the weights (1-based, its size a power of two so
/// the descent needs no bounds test), their total, and the generator.
#[derive(Clone, Debug)]
pub struct SumTreeFloor {
    tree: Vec<u64>,
    total: u64,
    rng: u64,
}

impl SumTreeFloor {
    pub fn new(n: u32) -> Self {
        let size = (n as usize).next_power_of_two();
        let mut tree = vec![0u64; size + 1];
        for i in 1..=size {
            if i <= n as usize {
                tree[i] += weight(i as u32 - 1);
            }
            let parent = i + (i & i.wrapping_neg());
            if parent <= size {
                tree[parent] += tree[i];
            }
        }
        SumTreeFloor {
            tree,
            total: (0..n).map(weight).sum(),
            rng: 0x9e37_79b9_7f4a_7c15,
        }
    }

    /// The thread whose tickets hold the `r`-th ticket (`r < total`): the
    /// largest prefix of weights summing to at most `r` ends just before it.
    #[inline]
    pub fn find(&self, mut r: u64) -> u32 {
        let mut pos = 0;
        let mut step = self.tree.len() - 1;
        while step > 0 {
            let next = pos + step;
            if self.tree[next] <= r {
                pos = next;
                r -= self.tree[next];
            }
            step >>= 1;
        }
        pos as u32
    }

    #[inline]
    pub fn step(&mut self) -> u32 {
        if self.total == 0 {
            return u32::MAX;
        }
        // xorshift64* (Vigna 2016).
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        let x = self.rng.wrapping_mul(0x2545_f491_4f6c_dd1d);
        let r = ((u128::from(x) * u128::from(self.total)) >> 64) as u64;
        self.find(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_four_policies_have_their_floors_and_a_new_one_none_until_given() {
        // By name, not over the registry: a policy registered later is
        // benched without a ratio until someone says what its decision
        // amounts to, and its registration alone must not fail this crate.
        let floors = [
            ("stride", Floor::Heap),
            ("eevdf", Floor::Heap),
            ("rr", Floor::Ring),
            ("lottery", Floor::SumTree),
        ];
        for (name, floor) in floors {
            assert_eq!(Floor::of(PolicyKind::new(name)), Some(floor), "{name}");
        }
        assert_eq!(Floor::of(PolicyKind::new("cfs")), None);
    }

    #[test]
    fn the_heap_serves_the_smallest_key_and_advances_it_by_the_stride() {
        let mut h = HeapFloor::new(10);
        let mut served = [0u64; 10];
        for _ in 0..55 * 100 {
            served[h.step() as usize] += 1;
        }
        // Served in proportion to the weights 1..=10 (55 in all), each
        // within one quantum of its share.
        for (id, &s) in served.iter().enumerate() {
            let share = 100 * weight(id as u32);
            assert!(s.abs_diff(share) <= 1, "thread {id}: {s} for {share}");
        }
    }

    #[test]
    fn the_ring_serves_in_turn() {
        let mut r = RingFloor::new(3);
        let order: Vec<u32> = (0..7).map(|_| r.step()).collect();
        assert_eq!(order, [0, 1, 2, 0, 1, 2, 0]);
    }

    #[test]
    fn the_descent_finds_whose_tickets_hold_a_number() {
        for n in [1u32, 2, 3, 10, 100, 1000] {
            let t = SumTreeFloor::new(n);
            let mut start = 0;
            for id in 0..n {
                let w = weight(id);
                for r in [start, start + w - 1] {
                    assert_eq!(t.find(r), id, "n {n}, ticket {r}");
                }
                start += w;
            }
            assert_eq!(start, t.total);
        }
    }

    #[test]
    fn draws_follow_the_weights() {
        let mut t = SumTreeFloor::new(10);
        let mut won = [0u64; 10];
        let draws = 550_000;
        for _ in 0..draws {
            won[t.step() as usize] += 1;
        }
        for (id, &w) in won.iter().enumerate() {
            let expected = draws as f64 * weight(id as u32) as f64 / 55.0;
            assert!(
                (w as f64 - expected).abs() < 0.02 * expected,
                "thread {id}: {w} wins for {expected}"
            );
        }
    }

    #[test]
    fn through_the_trait_a_floor_picks_as_it_steps() {
        for f in Floor::ALL {
            let (mut bare, mut through) = (f.build(100), f.through(100));
            for _ in 0..500 {
                assert_eq!(through.pick(0), Some(bare.step()), "{}", f.name());
            }
            assert_eq!(f.through(0).pick(0), None, "{}: empty", f.name());
        }
    }

    #[test]
    fn no_floor_of_an_empty_structure_panics() {
        for f in Floor::ALL {
            assert_eq!(f.build(0).step(), u32::MAX, "{}", f.name());
        }
    }
}
