//! A Fenwick (binary indexed) tree of ticket values: O(log n) updates and
//! O(log n) "which index holds the r-th ticket" searches.

use alloc::vec::Vec;

pub struct Fenwick {
    tree: Vec<u64>,
    values: Vec<u64>,
}

impl Fenwick {
    pub fn new() -> Self {
        Fenwick {
            tree: Vec::new(),
            values: Vec::new(),
        }
    }

    /// Appends an index with value 0; returns it.
    pub fn push(&mut self) -> usize {
        let i = self.values.len();
        self.values.push(0);
        self.tree.push(0);
        // Rebuild the new node's partial sum from the children it covers.
        let node = i + 1;
        let low = node & node.wrapping_neg();
        let mut sum = 0;
        let mut j = node - 1;
        while j > node - low {
            sum += self.tree[j - 1];
            j -= j & j.wrapping_neg();
        }
        self.tree[i] = sum;
        i
    }

    pub fn set(&mut self, i: usize, value: u64) {
        let old = self.values[i];
        self.values[i] = value;
        let mut node = i + 1;
        while node <= self.tree.len() {
            self.tree[node - 1] = self.tree[node - 1].wrapping_add(value).wrapping_sub(old);
            node += node & node.wrapping_neg();
        }
    }

    pub fn total(&self) -> u64 {
        let mut node = self.tree.len();
        let mut sum = 0u64;
        while node > 0 {
            sum = sum.wrapping_add(self.tree[node - 1]);
            node -= node & node.wrapping_neg();
        }
        sum
    }

    /// The index whose range of tickets contains ticket `r` (< total).
    pub fn find(&self, mut r: u64) -> usize {
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

    #[test]
    fn find_matches_a_linear_scan() {
        let mut f = Fenwick::new();
        let vals = [3u64, 0, 5, 1, 0, 7, 2, 9, 4];
        for (i, &v) in vals.iter().enumerate() {
            assert_eq!(f.push(), i);
            f.set(i, v);
        }
        assert_eq!(f.total(), vals.iter().sum::<u64>());
        for r in 0..f.total() {
            let mut acc = 0;
            let want = vals.iter().position(|&v| {
                acc += v;
                acc > r
            });
            assert_eq!(Some(f.find(r)), want, "ticket {r}");
        }
        f.set(7, 0);
        assert_eq!(f.total(), vals.iter().sum::<u64>() - 9);
    }
}
