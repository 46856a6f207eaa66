//! The derived values recomputed from the inputs alone, in O(n log n), as
//! the scheduler once did before any decision that followed a change. The
//! property tests (`tests::incremental`) check after every operation that
//! the values kept up to date as it goes are exactly these.

use alloc::vec::Vec;
use core::cmp::Reverse;

use sched_api::{mul_div, ThreadState};

use crate::derived::slot_value;
use crate::{CurrencyId, Lottery, Slot, BASE, FX};

impl Lottery {
    /// A copy with every derived value recomputed from scratch.
    pub(crate) fn rebuilt(&self) -> Lottery {
        let mut l = self.clone();
        l.recompute();
        l
    }

    fn recompute(&mut self) {
        // (slot, slot its tickets resolve to, that one is active)
        let targets: Vec<(Slot, Slot, bool)> = (0..self.slots.len())
            .filter_map(|x| {
                let t = self.resolve_slot(x)?;
                let active = self.at(t)?.state != ThreadState::Sleeping;
                Some((x, t, active))
            })
            .collect();
        // Active issue, leaves up: children have larger ids than parents.
        for c in self.currencies.values_mut() {
            c.issue = 0;
            c.value = 0;
        }
        for &(x, _, active) in &targets {
            let Some(th) = self.slots[x].as_ref().filter(|_| active) else {
                continue;
            };
            if let Some(c) = self.currencies.get_mut(&th.currency) {
                c.issue += u128::from(th.tickets);
            }
        }
        let ids: Vec<CurrencyId> = self.currencies.keys().copied().collect();
        for &c in ids.iter().rev() {
            let cur = &self.currencies[&c];
            if c != BASE && cur.issue > 0 {
                let (parent, funding) = (cur.parent, cur.funding);
                if let Some(p) = self.currencies.get_mut(&parent) {
                    p.issue += u128::from(funding);
                }
            }
        }
        // Values, root down.
        for &c in &ids {
            let cur = &self.currencies[&c];
            if c == BASE || cur.issue == 0 {
                continue;
            }
            let p = &self.currencies[&cur.parent];
            let value = if cur.parent == BASE {
                u128::from(cur.funding) * FX
            } else {
                mul_div(u128::from(cur.funding), p.value, p.issue)
            };
            if let Some(cur) = self.currencies.get_mut(&c) {
                cur.value = value;
            }
        }
        for c in self.currencies.values_mut() {
            c.settled_issue = c.issue;
        }
        // Own values and demands.
        let mut demand = alloc::vec![0u128; self.slots.len()];
        self.lent.fill(0);
        for &(x, t, active) in &targets {
            let own = match self.slots[x].as_ref().filter(|_| active) {
                Some(th) => {
                    let c = &self.currencies[&th.currency];
                    let own = if th.currency == BASE {
                        u128::from(th.tickets) * FX
                    } else {
                        mul_div(u128::from(th.tickets), c.value, c.issue)
                    };
                    u64::try_from(own.max(1)).unwrap_or(u64::MAX)
                }
                None => 0,
            };
            if let Some(th) = self.slots[x].as_mut() {
                th.own = own;
            }
            demand[t] += u128::from(own);
            if t != x {
                self.lent[t] += u128::from(own);
            }
        }
        // The cap on active demands.
        self.ledger.clear();
        for (slot, t) in self.slots.iter_mut().enumerate() {
            let Some(t) = t.as_mut() else {
                continue;
            };
            t.weight = if t.state == ThreadState::Sleeping {
                0
            } else {
                u64::try_from(demand[slot].max(1)).unwrap_or(u64::MAX)
            };
            if t.weight != 0 {
                self.ledger.insert(t.id, t.weight);
            }
        }
        self.capped.clear();
        for (slot, t) in self.slots.iter_mut().enumerate() {
            let Some(t) = t.as_mut() else {
                continue;
            };
            t.capped = t.weight != 0 && self.ledger.is_capped(t.weight);
            if t.capped {
                self.capped.push(slot);
            }
        }
        // Draw values and ready sets.
        for &(x, t, _) in &targets {
            let v = match (&self.slots[x], &self.slots[t]) {
                (Some(x), Some(t)) => slot_value(x.own, t),
                _ => 0,
            };
            self.tree.set(x, v);
        }
        for x in 0..self.slots.len() {
            if self.slots[x].is_none() {
                self.tree.set(x, 0);
            }
        }
        self.capped_ready.clear();
        self.owed.clear();
        for (slot, t) in self.slots.iter().enumerate() {
            let Some(t) = t.as_ref().filter(|t| t.state == ThreadState::Runnable) else {
                continue;
            };
            if t.capped {
                self.capped_ready.push((t.id, slot));
            } else if t.credit > 0 {
                self.owed.insert((Reverse(t.credit), t.id));
            }
        }
        self.capped_ready.sort_unstable();
    }

    /// Panics, saying what differs, unless every derived value equals a
    /// recomputation's, and unless every memo of a quantum's virtual time
    /// still valid equals a fresh conversion.
    pub(crate) fn assert_derived_fresh(&self, what: &str) {
        let r = self.rebuilt();
        for (id, c) in &self.currencies {
            let want = &r.currencies[id];
            assert_eq!(
                (c.issue, c.value),
                (want.issue, want.value),
                "{what}: currency {id}'s (issue, value)"
            );
        }
        assert_eq!(self.lent, r.lent, "{what}: values lent, by slot");
        for (slot, (t, want)) in self.slots.iter().zip(&r.slots).enumerate() {
            let (Some(t), Some(want)) = (t, want) else {
                assert!(t.is_none() && want.is_none());
                continue;
            };
            assert_eq!(
                (t.own, t.weight, t.capped),
                (want.own, want.weight, want.capped),
                "{what}: thread {}'s (own value, weight, capped) in slot {slot}",
                t.id
            );
            if t.quantum_vt_valid(self.epoch) {
                assert_eq!(
                    t.quantum_vt,
                    self.ledger.vt(self.quantum_ns, t.weight.max(1)),
                    "{what}: thread {}'s memo of a quantum's virtual time",
                    t.id
                );
            }
        }
        let largest: Vec<_> = self.ledger.largest().collect();
        let want: Vec<_> = r.ledger.largest().collect();
        assert_eq!(largest, want, "{what}: the ledger's weights");
        assert_eq!(self.ledger.cap(), r.ledger.cap(), "{what}: the cap");
        let mut capped = self.capped.clone();
        capped.sort_unstable();
        assert_eq!(capped, r.capped, "{what}: the capped threads' slots");
        for x in 0..self.slots.len() {
            assert_eq!(
                self.tree.get(x),
                r.tree.get(x),
                "{what}: draw value of slot {x} (thread {:?})",
                self.at(x).map(|t| t.id)
            );
        }
        assert_eq!(
            self.tree.total(),
            r.tree.total(),
            "{what}: the draw's total"
        );
        assert_eq!(self.capped_ready, r.capped_ready, "{what}: capped_ready");
        assert_eq!(self.owed, r.owed, "{what}: owed");
    }
}
