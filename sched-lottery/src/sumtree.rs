//! The draw's search tree: ticket values by slot, with O(log n) updates and
//! O(log n) "which slot holds the r-th ticket" searches.
//!
//! A B-ary tree of prefix sums rather than a Fenwick tree, for the
//! search's sake: a Fenwick search at 10,000 slots walks 14 nodes scattered
//! over the array, each a dependent load and a branch that goes either
//! way, and that walk was most of a decision. Here each level is cut into
//! lines of `B` entries (one 64-byte cache line each) holding running sums,
//! so the search reads one line per level (5 at 10,000 slots) and picks
//! the child with a branch-free binary search of the line (3 compares for
//! 8 entries). Updates are rarer (a changed compensation, a recomputation)
//! and touch up to `B` entries per level.
//!
//! Values are u64 while the total fits (any sane set of tickets: it takes
//! some 2^44 base tickets to overflow), which halves the lines' size and
//! the work per entry; a total beyond that switches the tree to u128 until
//! it fits again (see [`Tree::set`]).
//!
//! The search is a function of the values alone (the slot holding the r-th
//! ticket in slot order), so it answers exactly as a Fenwick tree would.

use alloc::vec;
use alloc::vec::Vec;

use crate::rng::Rng;

/// Values of a tree: plain unsigned integers. Sums wrap (as they never do
/// for values the lottery can hold), so an update is one add of a delta.
pub trait Value: Copy + Default + Ord + core::fmt::Debug {
    fn plus(self, other: Self) -> Self;
    fn minus(self, other: Self) -> Self;
}

impl Value for u64 {
    fn plus(self, other: Self) -> Self {
        self.wrapping_add(other)
    }
    fn minus(self, other: Self) -> Self {
        self.wrapping_sub(other)
    }
}

impl Value for u128 {
    fn plus(self, other: Self) -> Self {
        self.wrapping_add(other)
    }
    fn minus(self, other: Self) -> Self {
        self.wrapping_sub(other)
    }
}

/// Where a search's ticket comes from, given the total: a ticket fixed
/// beforehand, or a draw. A trait rather than a closure so that the draw
/// is inlined always into the decision (a closure calling it was left out
/// of line once the pick around it grew).
pub trait Ticket<T> {
    fn ticket(self, total: T) -> T;
}

/// A ticket fixed beforehand.
pub struct Fixed<T>(pub T);

impl<T> Ticket<T> for Fixed<T> {
    #[inline(always)]
    fn ticket(self, _total: T) -> T {
        self.0
    }
}

impl Ticket<u64> for &mut Rng {
    #[inline(always)]
    fn ticket(self, total: u64) -> u64 {
        self.below_u64(total)
    }
}

impl Ticket<u128> for &mut Rng {
    #[inline(always)]
    fn ticket(self, total: u128) -> u128 {
        self.below(total)
    }
}

/// `B` running sums: entry `j` is the sum of children `0..=j` (entries past
/// the last child repeat the line's sum).
#[derive(Clone, Copy, Debug)]
#[repr(align(64))]
struct Line<T, const B: usize>([T; B]);

impl<T: Value, const B: usize> Line<T, B> {
    /// Checked when compiled: the search masks indices with `B - 1`.
    const POWER_OF_TWO: () = assert!(B.is_power_of_two() && B >= 2);

    fn zero() -> Self {
        let () = Self::POWER_OF_TWO;
        Line([T::default(); B])
    }

    fn sum(&self) -> T {
        self.0[B - 1]
    }

    /// Child `j`'s own value.
    fn child(&self, j: usize) -> T {
        let below = if j == 0 { T::default() } else { self.0[j - 1] };
        self.0[j].minus(below)
    }

    /// The child holding ticket `r` of this line (`r < sum`), and `r` made
    /// relative to that child: a binary search of the running sums for the
    /// first one above `r`, unrolled (B is a power of two) and without a
    /// branch (selects, and indices masked into the line so they need no
    /// bounds check).
    fn search(&self, r: T) -> (usize, T) {
        self.search_first(r, B)
    }

    /// [`Line::search`] of a line whose children are the first `n` (at
    /// most `B`): its steps over halves of at least `n` entries are left
    /// out, as the entries past the last child repeat the sum. The top
    /// line of a tree has few children (2 at 100 or 1,000 slots in lines
    /// of 8), and a full search would spend most of its steps on entries
    /// all equal to the total. Each step is kept (unrolled, its half a
    /// constant) behind a test of `n`, which a line below the top passes
    /// at no cost (`n` is then the constant `B`).
    #[inline(always)]
    fn search_first(&self, r: T, n: usize) -> (usize, T) {
        let mut j = 0;
        let mut below = T::default();
        let mut half = B / 2;
        while half > 0 {
            if n > half {
                let s = self.0[(j + half - 1) & (B - 1)];
                let le = s <= r;
                below = if le { s } else { below };
                j += if le { half } else { 0 };
            }
            half /= 2;
        }
        (j, r.minus(below))
    }
}

/// A tree of prefix sums over slots, each level in lines of `B`.
#[derive(Clone, Debug)]
pub struct SumTree<T, const B: usize> {
    /// `levels[0]` holds the slots' running sums; child `i` of `levels[k]`
    /// (entry `i % B` of line `i / B`) stands for line `i` of
    /// `levels[k - 1]`. The top level is one line.
    levels: Vec<Vec<Line<T, B>>>,
    /// Number of slots.
    len: usize,
    /// The number of children of the top line (see [`Line::search_first`]).
    top_children: usize,
}

impl<T: Value, const B: usize> Default for SumTree<T, B> {
    fn default() -> Self {
        SumTree {
            levels: vec![Vec::new()],
            len: 0,
            top_children: 0,
        }
    }
}

impl<T: Value, const B: usize> SumTree<T, B> {
    /// Appends a slot with value 0; returns its index.
    pub fn push(&mut self) -> usize {
        let i = self.len;
        self.len += 1;
        if !i.is_multiple_of(B) {
            if self.levels.len() == 1 {
                self.top_children = self.len;
            }
            return i; // its line exists (and counts it as 0)
        }
        // A new, zero line at level 0; the child standing for it one level
        // up may need a new line there, and so on. New lines are all zero,
        // so no sum changes, except that a top grown to two lines gets a
        // new top over them.
        self.levels[0].push(Line::zero());
        let mut k = 0;
        loop {
            let lines = self.levels[k].len();
            if k + 1 == self.levels.len() {
                if lines > 1 {
                    let mut top = Line::zero();
                    let mut acc = T::default();
                    for (j, e) in top.0.iter_mut().enumerate() {
                        if let Some(line) = self.levels[k].get(j) {
                            acc = acc.plus(line.sum());
                        }
                        *e = acc;
                    }
                    self.levels.push(vec![top]);
                }
                break;
            }
            if self.levels[k + 1].len() * B >= lines {
                break;
            }
            self.levels[k + 1].push(Line::zero());
            k += 1;
        }
        // The top line's children: the slots, or the lines below it.
        self.top_children = match self.levels.len() {
            1 => self.len,
            n => self.levels[n - 2].len(),
        };
        i
    }

    /// Number of slots.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Slot `i`'s value (0 if out of range).
    pub fn get(&self, i: usize) -> T {
        self.levels[0]
            .get(i / B)
            .map_or(T::default(), |line| line.child(i % B))
    }

    /// Sets slot `i` (ignored if out of range).
    pub fn set(&mut self, i: usize, value: T) {
        let old = self.get(i);
        self.add(i, value.minus(old));
    }

    /// Adds `delta` to slot `i`'s value (ignored if out of range): to the
    /// running sums from the slot's own on in its line, and likewise in
    /// the lines above. Each line is updated whole, without a branch
    /// (entries before the child's own add 0), which compiles to a few
    /// vector adds.
    pub fn add(&mut self, i: usize, delta: T) {
        if i >= self.len {
            return;
        }
        let mut node = i;
        for level in &mut self.levels {
            let Some(line) = level.get_mut(node / B) else {
                return;
            };
            let j = node % B;
            for (k, e) in line.0.iter_mut().enumerate() {
                *e = e.plus(if k >= j { delta } else { T::default() });
            }
            node /= B;
        }
    }

    /// The sum of all values.
    pub fn total(&self) -> T {
        self.levels
            .last()
            .and_then(|top| top.first())
            .map_or(T::default(), Line::sum)
    }

    /// The slot whose range of tickets holds ticket `r` (`r < total`).
    pub fn find(&self, r: T) -> usize {
        self.find_drawn(Fixed(r)).unwrap_or(0)
    }

    /// The slot whose range of tickets holds ticket `draw(total)` (which
    /// must be below `total`), `None` for a total of 0: a draw and its
    /// search, reading the top line once for both.
    #[inline(always)]
    pub fn find_drawn(&self, draw: impl Ticket<T>) -> Option<usize> {
        let (top, below) = self.levels.split_last()?;
        let line = top.first()?;
        let total = line.sum();
        if total == T::default() {
            return None;
        }
        let (mut node, mut r) = line.search_first(draw.ticket(total), self.top_children);
        for level in below.iter().rev() {
            let line = level.get(node)?;
            let (j, rest) = line.search(r);
            r = rest;
            node = node * B + j;
        }
        Some(node)
    }
}

/// The lottery's tree: u64 values in lines of 8 while the total fits, u128
/// in lines of 4 otherwise.
#[derive(Clone, Debug, Default)]
pub struct Tree {
    values: Width,
    /// Updates since the tree last changed width. Going back to u64 costs
    /// O(n log n), so a wide tree checks whether its total fits again only
    /// once n updates have passed: O(log n) per update, amortised, even
    /// for a total going back and forth across 2^64.
    since_convert: usize,
}

#[derive(Clone, Debug)]
enum Width {
    Narrow(SumTree<u64, 8>),
    Wide(SumTree<u128, 4>),
}

impl Default for Width {
    fn default() -> Self {
        Width::Narrow(SumTree::default())
    }
}

impl Tree {
    /// Appends a slot with value 0; returns its index.
    pub fn push(&mut self) -> usize {
        match &mut self.values {
            Width::Narrow(t) => t.push(),
            Width::Wide(t) => t.push(),
        }
    }

    /// Slot `i`'s value (0 if out of range).
    pub fn get(&self, i: usize) -> u128 {
        match &self.values {
            Width::Narrow(t) => u128::from(t.get(i)),
            Width::Wide(t) => t.get(i),
        }
    }

    /// Sets slot `i` (ignored if out of range), widening the tree if the
    /// total no longer fits in 64 bits (and narrowing it again once it has
    /// fitted for a while).
    pub fn set(&mut self, i: usize, value: u128) {
        match &mut self.values {
            Width::Narrow(t) => {
                let old = t.get(i);
                let fits = u64::try_from(value)
                    .ok()
                    .filter(|&v| t.total().minus(old).checked_add(v).is_some());
                if let Some(v) = fits {
                    return t.add(i, v.minus(old));
                }
                self.convert();
                if let Width::Wide(t) = &mut self.values {
                    t.set(i, value);
                }
            }
            Width::Wide(t) => {
                t.set(i, value);
                self.since_convert += 1;
                if self.since_convert >= t.len() && u64::try_from(t.total()).is_ok() {
                    self.convert();
                }
            }
        }
    }

    pub fn total(&self) -> u128 {
        match &self.values {
            Width::Narrow(t) => u128::from(t.total()),
            Width::Wide(t) => t.total(),
        }
    }

    /// The slot whose range of tickets holds ticket `r` (`r < total`).
    pub fn find(&self, r: u128) -> usize {
        match &self.values {
            // r < total, which fits.
            Width::Narrow(t) => t.find(u64::try_from(r).unwrap_or(u64::MAX)),
            Width::Wide(t) => t.find(r),
        }
    }

    /// A fair draw: the slot holding ticket `rng.below(total)`, `None` for
    /// a total of 0. What `find(rng.below(total()))` gives, with the width
    /// matched once and a narrow tree's draw in 64-bit arithmetic.
    #[inline(always)]
    pub fn draw(&self, rng: &mut Rng) -> Option<usize> {
        match &self.values {
            Width::Narrow(t) => t.find_drawn(rng),
            Width::Wide(t) => t.find_drawn(rng),
        }
    }

    /// Whether the values are u128 (the total did not fit in 64 bits).
    #[cfg(test)]
    pub fn is_wide(&self) -> bool {
        matches!(self.values, Width::Wide(_))
    }

    /// The same values in the other width (each fits: it is at most the
    /// total).
    fn convert(&mut self) {
        self.since_convert = 0;
        self.values = match &self.values {
            Width::Narrow(t) => {
                let mut w = SumTree::default();
                for i in 0..t.len() {
                    w.push();
                    w.set(i, u128::from(t.get(i)));
                }
                Width::Wide(w)
            }
            Width::Wide(t) => {
                let mut n = SumTree::default();
                for i in 0..t.len() {
                    n.push();
                    n.set(i, u64::try_from(t.get(i)).unwrap_or(u64::MAX));
                }
                Width::Narrow(n)
            }
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn check<T, const B: usize>(vals: &[T], updates: &[(usize, T)]) -> Result<(), TestCaseError>
    where
        T: Value + core::iter::Sum + Into<u128> + TryFrom<u128>,
    {
        let mut f: SumTree<T, B> = SumTree::default();
        let mut model = vals.to_vec();
        for (i, &v) in vals.iter().enumerate() {
            prop_assert_eq!(f.push(), i);
            f.set(i, v);
        }
        for &(i, v) in updates {
            if i < model.len() {
                model[i] = v;
            }
            f.set(i, v);
        }
        let total: u128 = model.iter().map(|&v| v.into()).sum();
        prop_assert_eq!(f.total().into(), total);
        for r in 0..total {
            let mut acc = 0u128;
            let want = model.iter().position(|&v| {
                acc += v.into();
                acc > r
            });
            let Ok(rt) = T::try_from(r) else {
                unreachable!()
            };
            let got = f.find(rt);
            prop_assert_eq!(Some(got), want);
            prop_assert_eq!(f.get(got), model[got]);
        }
        for (i, &v) in model.iter().enumerate() {
            prop_assert_eq!(f.get(i), v);
        }
        Ok(())
    }

    proptest! {
        #[test]
        fn find_matches_a_linear_scan(
            vals in proptest::collection::vec(0u64..20, 1..80),
            updates in proptest::collection::vec((0usize..80, 0u64..20), 0..20),
        ) {
            // Fan-outs 2 and 4 give several levels even for few slots.
            check::<u64, 2>(&vals, &updates)?;
            check::<u64, 4>(&vals, &updates)?;
            check::<u64, 8>(&vals, &updates)?;
            let wide: Vec<u128> = vals.iter().map(|&v| u128::from(v)).collect();
            let wide_updates: Vec<(usize, u128)> =
                updates.iter().map(|&(i, v)| (i, u128::from(v))).collect();
            check::<u128, 4>(&wide, &wide_updates)?;
        }

        /// The two widths answer alike, across widening and narrowing.
        #[test]
        fn widening_keeps_the_answers(
            vals in proptest::collection::vec(0u64..1000, 1..100),
            big in 0usize..100,
            draws in proptest::collection::vec(any::<u64>(), 1..20),
        ) {
            let mut t = Tree::default();
            for (i, &v) in vals.iter().enumerate() {
                t.push();
                t.set(i, u128::from(v));
            }
            let model: Vec<u128> = vals.iter().map(|&v| u128::from(v)).collect();
            let find = |t: &Tree, model: &[u128], r: u128| {
                let mut acc = 0u128;
                let want = model.iter().position(|&v| { acc += v; acc > r });
                (Some(t.find(r)), want)
            };
            let big = big % vals.len();
            let old = model[big];
            // Over 64 bits: wide.
            let huge = u128::from(u64::MAX) + 1;
            t.set(big, huge);
            prop_assert!(t.is_wide());
            let mut wide_model = model.clone();
            wide_model[big] = huge;
            let total: u128 = wide_model.iter().sum();
            prop_assert_eq!(t.total(), total);
            for &d in &draws {
                let r = (u128::from(d) << 1 | 1) % total;
                let (got, want) = find(&t, &wide_model, r);
                prop_assert_eq!(got, want);
            }
            // Back under: narrow again, once as many updates as slots have
            // passed since it widened.
            t.set(big, old);
            for _ in 1..vals.len() {
                prop_assert!(t.is_wide());
                t.set(big, old);
            }
            prop_assert!(!t.is_wide());
            let total: u128 = model.iter().sum();
            prop_assert_eq!(t.total(), total);
            for (i, &v) in model.iter().enumerate() {
                prop_assert_eq!(t.get(i), v);
            }
            for &d in &draws {
                if total > 0 {
                    let (got, want) = find(&t, &model, u128::from(d) % total);
                    prop_assert_eq!(got, want);
                }
            }
        }
    }

    #[test]
    fn grows_level_by_level() {
        let mut f: SumTree<u128, 2> = SumTree::default();
        let mut sum = 0;
        for i in 0..1000 {
            assert_eq!(f.push(), i);
            f.set(i, (i % 3) as u128);
            sum += (i % 3) as u128;
            assert_eq!(f.total(), sum);
        }
        assert_eq!(f.find(0), 1);
        assert_eq!(f.find(f.total() - 1), 998);
    }

    #[test]
    fn a_total_just_over_64_bits_widens() {
        let mut t = Tree::default();
        t.push();
        t.push();
        t.set(0, u128::from(u64::MAX));
        assert!(!t.is_wide());
        t.set(1, 1);
        assert!(t.is_wide());
        assert_eq!(t.total(), u128::from(u64::MAX) + 1);
        assert_eq!(t.find(u128::from(u64::MAX) - 1), 0);
        assert_eq!(t.find(u128::from(u64::MAX)), 1);
        t.set(1, 0);
        assert!(t.is_wide(), "one update of two slots: too soon to narrow");
        t.set(1, 0);
        assert!(!t.is_wide());
        assert_eq!(t.find(5), 0);
    }
}
