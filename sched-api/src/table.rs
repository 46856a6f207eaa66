//! The thread table: records in a slab of stable slots, found by id through
//! a hash map.
//!
//! Why not a `BTreeMap<ThreadId, _>`: a decision looks a thread up by id,
//! and with thousands of threads each lookup walks several B-tree nodes
//! (cache misses). Here a lookup is one hash probe to a slot number, and
//! the queue keeps slot numbers, so a pick reaches its record directly.
//! Slots stay put while a thread lives (freed slots are reused), so slot
//! numbers held elsewhere never move; whoever holds one must check it still
//! names the record they mean (see the queue's sequence numbers).
//!
//! Nothing here allocates except when the map, the slab or the free list
//! grows, i.e. on `insert`, never on lookups.
//!
//! Shared by the stride, round-robin and EEVDF policies (with
//! [`crate::lazy`], their run queues' lazy deletion).

use alloc::vec::Vec;
use core::hash::{BuildHasherDefault, Hasher};

use crate::ThreadId;
use hashbrown::HashMap;

/// A slot number in the slab.
pub type Slot = u32;

/// Records by thread id, in stable slots.
#[derive(Clone, Debug)]
pub struct Table<T> {
    index: HashMap<ThreadId, Slot, BuildHasherDefault<IdHasher>>,
    slots: Vec<Option<(ThreadId, T)>>,
    /// Empty slots, reused last-freed first.
    free: Vec<Slot>,
}

impl<T> Default for Table<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> Table<T> {
    pub fn new() -> Self {
        Table {
            index: HashMap::with_hasher(BuildHasherDefault::default()),
            slots: Vec::new(),
            free: Vec::new(),
        }
    }

    /// Makes room for `additional` more records at once (an import knows
    /// how many it brings: the map and the slab grow once, not by
    /// doubling, each step a rehash or a copy).
    pub fn reserve(&mut self, additional: usize) {
        self.index.reserve(additional);
        self.slots.reserve(additional);
    }

    /// Number of records.
    pub fn len(&self) -> usize {
        self.index.len()
    }

    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    pub fn contains(&self, id: ThreadId) -> bool {
        self.index.contains_key(&id)
    }

    /// The slot holding `id`'s record.
    pub fn slot(&self, id: ThreadId) -> Option<Slot> {
        self.index.get(&id).copied()
    }

    pub fn get(&self, id: ThreadId) -> Option<&T> {
        self.at(self.slot(id)?).map(|(_, t)| t)
    }

    pub fn get_mut(&mut self, id: ThreadId) -> Option<&mut T> {
        self.find_mut(id).map(|(_, t)| t)
    }

    /// `id`'s slot and record.
    pub fn find_mut(&mut self, id: ThreadId) -> Option<(Slot, &mut T)> {
        let slot = self.slot(id)?;
        self.at_mut(slot).map(|(_, t)| (slot, t))
    }

    /// The id and record in `slot`, if it is in use.
    pub fn at(&self, slot: Slot) -> Option<(ThreadId, &T)> {
        match self.slots.get(slot as usize) {
            Some(Some((id, t))) => Some((*id, t)),
            _ => None,
        }
    }

    pub fn at_mut(&mut self, slot: Slot) -> Option<(ThreadId, &mut T)> {
        match self.slots.get_mut(slot as usize) {
            Some(Some((id, t))) => Some((*id, t)),
            _ => None,
        }
    }

    /// Adds `id`'s record and returns its slot; `Err(record)` if `id` is
    /// already there.
    pub fn insert(&mut self, id: ThreadId, record: T) -> Result<Slot, T> {
        // One probe of the map: the entry found vacant is filled below.
        let hashbrown::hash_map::Entry::Vacant(entry) = self.index.entry(id) else {
            return Err(record);
        };
        let slot = match self.free.pop() {
            Some(slot) => {
                self.slots[slot as usize] = Some((id, record));
                slot
            }
            None => {
                // At most one slot per distinct u32 id, so it fits a u32.
                let slot = self.slots.len() as Slot;
                self.slots.push(Some((id, record)));
                slot
            }
        };
        entry.insert(slot);
        Ok(slot)
    }

    /// Removes `id`'s record; its slot becomes free for a later insert.
    pub fn remove(&mut self, id: ThreadId) -> Option<T> {
        let slot = self.index.remove(&id)?;
        let (_, record) = self.slots[slot as usize].take()?;
        self.free.push(slot);
        Some(record)
    }

    /// Every record, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (ThreadId, &T)> + '_ {
        self.slots
            .iter()
            .filter_map(|s| s.as_ref().map(|(id, t)| (*id, t)))
    }
}

/// A hasher for thread ids (one `u32` each): one 64x64->128-bit multiply,
/// folded. The map needs well-mixed low bits (bucket) and high bits (tag);
/// a plain multiply leaves the low bits depending on the low bits of the id
/// only, so ids sharing them (say, a generation in the high bits) would
/// pile into one bucket; folding the high half in spreads them.
///
/// It is not keyed: ids come from the libOS itself, not from an adversary.
#[derive(Clone, Copy, Debug, Default)]
pub struct IdHasher(u64);

/// An odd constant with well-spread bits (the fractional part of the
/// golden ratio).
const MIX: u64 = 0x9e37_79b9_7f4a_7c15;

fn fold_mul(x: u64) -> u64 {
    let p = u128::from(x) * u128::from(MIX);
    (p as u64) ^ ((p >> 64) as u64)
}

impl Hasher for IdHasher {
    fn write(&mut self, bytes: &[u8]) {
        // Not used by `u32` keys; kept correct for any other input.
        for &b in bytes {
            self.0 = fold_mul(self.0 ^ u64::from(b));
        }
    }

    fn write_u32(&mut self, n: u32) {
        self.0 = fold_mul(self.0 ^ u64::from(n));
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// The thread (id and slot) running on each core, indexed by core id,
/// grown on demand (ids are below [`crate::MAX_CORES`]): a charge finds its
/// thread here without a lookup by id.
#[derive(Clone, Debug, Default)]
pub struct Running(Vec<Option<(ThreadId, Slot)>>);

impl Running {
    /// Who runs on `core`.
    pub fn on(&self, core: crate::CoreId) -> Option<(ThreadId, Slot)> {
        self.0.get(core).copied().flatten()
    }

    #[inline]
    pub fn set(&mut self, core: crate::CoreId, running: Option<(ThreadId, Slot)>) {
        if core >= self.0.len() {
            self.grow(core);
        }
        self.0[core] = running;
    }

    /// Makes room for `core` (once per core, the first time it is set):
    /// kept out of line so that `set`, called twice per decision, is a
    /// store and not a call with the resize loop's register saves.
    #[cold]
    #[inline(never)]
    fn grow(&mut self, core: crate::CoreId) {
        self.0.resize(core + 1, None);
    }

    /// `core`'s place, if it has one.
    #[inline]
    pub fn on_mut(&mut self, core: crate::CoreId) -> Option<&mut Option<(ThreadId, Slot)>> {
        self.0.get_mut(core)
    }

    /// `core`'s place, made on demand (cold, once per core): a pick reads
    /// it for `CoreBusy` and writes its thread there with one bounds check.
    #[inline]
    pub fn place(&mut self, core: crate::CoreId) -> &mut Option<(ThreadId, Slot)> {
        if core < self.0.len() {
            &mut self.0[core]
        } else {
            self.grow_to(core)
        }
    }

    /// [`Running::grow`], then `core`'s place.
    #[cold]
    #[inline(never)]
    fn grow_to(&mut self, core: crate::CoreId) -> &mut Option<(ThreadId, Slot)> {
        self.grow(core);
        &mut self.0[core]
    }

    /// Frees `core` if `id` runs there, returning `id`'s slot: a charge's
    /// check and its last store, with one bounds check. `None` leaves it
    /// as it was (see [`Running::charge_error`]).
    #[inline]
    pub fn take(&mut self, core: crate::CoreId, id: ThreadId) -> Option<Slot> {
        let on = self.0.get_mut(core)?;
        match *on {
            Some((running, slot)) if running == id => {
                *on = None;
                Some(slot)
            }
            _ => None,
        }
    }

    /// Why a charge of `id` found it not running where it said
    /// (`NotRunning` for a known thread, else `UnknownThread`): out of
    /// line, off the charge's path.
    #[cold]
    #[inline(never)]
    pub fn charge_error<T>(id: ThreadId, threads: &Table<T>) -> crate::SchedError {
        if threads.contains(id) {
            crate::SchedError::NotRunning
        } else {
            crate::SchedError::UnknownThread
        }
    }

    /// The slot of `id`, which a charge says ran on `core`: found without a
    /// lookup by id; for any other thread the lookup tells the error apart
    /// (`NotRunning` for a known thread, else `UnknownThread`).
    pub fn slot_to_charge<T>(
        &self,
        core: crate::CoreId,
        id: ThreadId,
        threads: &Table<T>,
    ) -> Result<Slot, crate::SchedError> {
        match self.on(core) {
            Some((running, slot)) if running == id => Ok(slot),
            _ if threads.contains(id) => Err(crate::SchedError::NotRunning),
            _ => Err(crate::SchedError::UnknownThread),
        }
    }

    /// The running threads' ids and slots, by core.
    pub fn all(&self) -> impl Iterator<Item = (ThreadId, Slot)> + '_ {
        self.0.iter().flatten().copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::collections::BTreeMap;
    use proptest::prelude::*;

    #[derive(Clone, Debug)]
    enum Op {
        Insert(u32, u64),
        Remove(u32),
        Set(u32, u64),
    }

    fn op() -> impl Strategy<Value = Op> {
        // Few distinct ids so inserts, removes and reuse collide often;
        // the high bits vary so hashing is exercised too.
        let id = (0u32..24).prop_map(|i| i.rotate_right(5));
        prop_oneof![
            (id.clone(), any::<u64>()).prop_map(|(i, v)| Op::Insert(i, v)),
            id.clone().prop_map(Op::Remove),
            (id, any::<u64>()).prop_map(|(i, v)| Op::Set(i, v)),
        ]
    }

    proptest! {
        /// The table behaves as a map, slots stay put while their record
        /// lives, and freed slots are reused before the slab grows.
        #[test]
        fn behaves_as_a_map(ops in proptest::collection::vec(op(), 1..200)) {
            let mut t: Table<u64> = Table::new();
            let mut model: BTreeMap<u32, (Slot, u64)> = BTreeMap::new();
            let mut peak = 0;
            for op in ops {
                match op {
                    Op::Insert(id, v) => match t.insert(id, v) {
                        Ok(slot) => {
                            prop_assert!(!model.contains_key(&id));
                            prop_assert!(model.values().all(|&(s, _)| s != slot));
                            model.insert(id, (slot, v));
                            // The slab grows only when no slot is free.
                            peak = peak.max(model.len());
                            prop_assert!((slot as usize) < peak);
                        }
                        Err(back) => {
                            prop_assert_eq!(back, v);
                            prop_assert!(model.contains_key(&id));
                        }
                    },
                    Op::Remove(id) => {
                        prop_assert_eq!(t.remove(id), model.remove(&id).map(|(_, v)| v));
                    }
                    Op::Set(id, v) => {
                        match (t.get_mut(id), model.get_mut(&id)) {
                            (Some(a), Some((_, b))) => { *a = v; *b = v; }
                            (None, None) => {}
                            _ => prop_assert!(false, "presence differs for {}", id),
                        }
                    }
                }
                prop_assert_eq!(t.len(), model.len());
                for (&id, &(slot, v)) in &model {
                    prop_assert_eq!(t.slot(id), Some(slot));
                    prop_assert_eq!(t.at(slot), Some((id, &v)));
                    prop_assert_eq!(t.get(id), Some(&v));
                }
                let mut all: Vec<(u32, u64)> = t.iter().map(|(id, &v)| (id, v)).collect();
                all.sort_unstable();
                let want: Vec<(u32, u64)> = model.iter().map(|(&id, &(_, v))| (id, v)).collect();
                prop_assert_eq!(all, want);
            }
        }
    }

    #[test]
    fn freed_slots_are_empty_and_reused() {
        let mut t = Table::new();
        let a = t.insert(7, 'a').unwrap();
        let b = t.insert(u32::MAX, 'b').unwrap();
        assert_eq!(t.insert(7, 'x'), Err('x'));
        assert_eq!(t.remove(7), Some('a'));
        assert_eq!(t.remove(7), None);
        assert_eq!(t.at(a), None);
        assert_eq!(t.at(99), None);
        assert_eq!(t.insert(0, 'c'), Ok(a));
        assert_eq!(t.at(b), Some((u32::MAX, &'b')));
        assert_eq!(t.len(), 2);
    }

    #[test]
    fn ids_differing_only_in_high_bits_spread() {
        // Ids that share their low 20 bits land in different buckets: the
        // hashes' low bits differ.
        let low: alloc::collections::BTreeSet<u64> = (0u32..64)
            .map(|i| {
                let mut h = IdHasher::default();
                h.write_u32(i << 20);
                h.finish() & 0xfff
            })
            .collect();
        assert!(low.len() > 56, "{} distinct buckets of 64", low.len());
    }
}
