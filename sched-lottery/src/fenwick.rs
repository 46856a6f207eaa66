//! A Fenwick (binary indexed) tree of ticket values: O(log n) updates and
//! O(log n) "which slot holds the r-th ticket" searches.

use alloc::vec::Vec;

#[derive(Clone, Debug, Default)]
pub struct Fenwick {
    tree: Vec<u128>,
    values: Vec<u128>,
}

impl Fenwick {
    /// Appends a slot with value 0; returns its index.
    pub fn push(&mut self) -> usize {
        let i = self.values.len();
        self.values.push(0);
        // The new node covers (node - lowbit(node), node]; all but itself
        // are earlier nodes, whose partial sums are already in the tree.
        let node = i + 1;
        let low = node & node.wrapping_neg();
        let mut sum = 0u128;
        let mut j = node - 1;
        while j > node - low {
            sum = sum.wrapping_add(self.tree[j - 1]);
            j -= j & j.wrapping_neg();
        }
        self.tree.push(sum);
        i
    }

    #[cfg(test)]
    pub fn get(&self, i: usize) -> u128 {
        self.values.get(i).copied().unwrap_or(0)
    }

    /// Sets slot `i` (ignored if out of range).
    pub fn set(&mut self, i: usize, value: u128) {
        let Some(old) = self.values.get_mut(i) else {
            return;
        };
        let delta_add = value;
        let delta_sub = *old;
        *old = value;
        let mut node = i + 1;
        while node <= self.tree.len() {
            self.tree[node - 1] = self.tree[node - 1]
                .wrapping_add(delta_add)
                .wrapping_sub(delta_sub);
            node += node & node.wrapping_neg();
        }
    }

    pub fn total(&self) -> u128 {
        let mut node = self.tree.len();
        let mut sum = 0u128;
        while node > 0 {
            sum = sum.wrapping_add(self.tree[node - 1]);
            node -= node & node.wrapping_neg();
        }
        sum
    }

    /// The slot whose range of tickets holds ticket `r` (`r < total`).
    pub fn find(&self, mut r: u128) -> usize {
        let n = self.tree.len();
        let mut pos = 0usize;
        let mut step = n.next_power_of_two();
        while step > 0 {
            let next = pos + step;
            if next <= n && self.tree[next - 1] <= r {
                r -= self.tree[next - 1];
                pos = next;
            }
            step >>= 1;
        }
        pos
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn find_matches_a_linear_scan(
            vals in proptest::collection::vec(0u128..20, 1..40),
            updates in proptest::collection::vec((0usize..40, 0u128..20), 0..20),
        ) {
            let mut f = Fenwick::default();
            let mut model = vals.clone();
            for (i, &v) in vals.iter().enumerate() {
                prop_assert_eq!(f.push(), i);
                f.set(i, v);
            }
            for (i, v) in updates {
                if i < model.len() {
                    model[i] = v;
                }
                f.set(i, v);
            }
            prop_assert_eq!(f.total(), model.iter().sum::<u128>());
            for r in 0..f.total() {
                let mut acc = 0;
                let want = model.iter().position(|&v| { acc += v; acc > r });
                prop_assert_eq!(Some(f.find(r)), want);
                prop_assert_eq!(f.get(f.find(r)), model[f.find(r)]);
            }
        }
    }
}
