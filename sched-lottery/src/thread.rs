//! A thread's record, and the table of them by draw slot: threads join and
//! leave here.

use sched_api::{check_core, CoreId, Ledger, ThreadId, ThreadState};

use crate::{CurrencyId, Lottery};

/// A thread's draw slot: its index in the draw's tree and in
/// `Lottery::slots`.
pub(crate) type Slot = usize;

/// A thread. Laid out by hand (`repr(C)`, aligned to a cache line) in two
/// cache lines: a draw lands on a thread nowhere near the last one, and at
/// 10,000 threads the cost of a decision grows with the size of this
/// record (in a benchmark, 256-byte records cost about a fifth more than
/// 192-byte ones). The first line holds all a pick reads and most of what
/// the charge then writes; the second the rest of a charge's data and the
/// derived values a block or a wake reads. What only loans use lives
/// outside (`Lottery::lent`, `Lottery::lenders`).
#[derive(Clone, Debug)]
#[repr(C, align(64))]
pub(crate) struct Thread {
    // -- First line: what a pick reads.
    pub state: ThreadState,
    /// Compensation factor `num / den` (1/1 when none).
    pub comp: (u64, u64),
    /// Virtual time while active; the lag it left with while sleeping.
    pub vtime: i128,
    pub id: ThreadId,
    /// Quanta won but not yet run (negative: run but not yet won).
    pub credit: i32,
    pub lent_to: Option<ThreadId>,
    // -- Second line: the rest.
    /// The virtual time of a full quantum at its weight, valid while
    /// [`Thread::quantum_vt_valid`] says so. Charging a full quantum is the
    /// usual case, and the ledger's conversion costs a 128-bit division.
    pub quantum_vt: i128,
    pub service_ns: u64,
    /// What `quantum_vt` was computed for (0: nothing yet; see
    /// [`Thread::quantum_vt_valid`]).
    pub quantum_vt_key: u64,
    /// Derived: its weight in the ledger while active (its demand: the
    /// base value of all tickets resolving to it, its own and those lent to
    /// it, as a u64, at least 1); 0 while it sleeps.
    pub weight: u64,
    /// Derived: the base value of its own tickets, 0 while they are
    /// inactive (the thread they resolve to sleeps). A u64 is enough: it is
    /// at most its currency's value, at most 2^32 base tickets of `FX`.
    pub own: u64,
    pub tickets: u32,
    pub currency: CurrencyId,
    /// Derived: entitled to more than one core, so capped at one.
    pub capped: bool,
}

impl Thread {
    /// What a memo of a quantum's virtual time computed now, in ledger
    /// epoch `epoch`, depends on. An uncapped thread's effective weight is
    /// its own, so the memo holds while its weight stays what it was
    /// computed at (a thread that blocks and wakes with the same demand
    /// keeps it); a capped one's is shared by every active weight, so the
    /// memo holds only in the epoch it was computed in. (Capping or
    /// uncapping a thread clears its memo: the two kinds of key never
    /// meet.)
    pub fn quantum_vt_key_now(&self, epoch: u64) -> u64 {
        if self.capped {
            epoch
        } else {
            self.weight
        }
    }

    /// Whether `quantum_vt` holds in ledger epoch `epoch`.
    pub fn quantum_vt_valid(&self, epoch: u64) -> bool {
        self.quantum_vt_key != 0 && self.quantum_vt_key == self.quantum_vt_key_now(epoch)
    }

    /// The virtual time of `ran_ns` of service at its current weight (and
    /// cap) in ledger epoch `epoch`, from the memo for a full quantum of
    /// `quantum_ns` (refreshed if stale). A method of the record, not of
    /// the scheduler, so that a charge can use it while it holds the
    /// record.
    #[inline]
    pub fn vt(&mut self, ledger: &Ledger, epoch: u64, quantum_ns: u64, ran_ns: u64) -> i128 {
        if ran_ns == quantum_ns && self.quantum_vt_valid(epoch) {
            return self.quantum_vt; // the usual: a full quantum, weight unchanged
        }
        self.vt_anew(ledger, epoch, quantum_ns, ran_ns)
    }

    /// [`Thread::vt`] when the memo does not serve. Out of line, so that
    /// the usual path inlines small.
    #[inline(never)]
    fn vt_anew(&mut self, ledger: &Ledger, epoch: u64, quantum_ns: u64, ran_ns: u64) -> i128 {
        let vt = ledger.vt(ran_ns, self.weight.max(1));
        if ran_ns == quantum_ns {
            self.quantum_vt = vt;
            self.quantum_vt_key = self.quantum_vt_key_now(epoch);
        }
        vt
    }
}

impl Lottery {
    pub(crate) fn slot_of(&self, id: ThreadId) -> Option<Slot> {
        self.threads.get(&id).copied()
    }

    pub(crate) fn at(&self, slot: Slot) -> Option<&Thread> {
        self.slots.get(slot)?.as_ref()
    }

    pub(crate) fn at_mut(&mut self, slot: Slot) -> Option<&mut Thread> {
        self.slots.get_mut(slot)?.as_mut()
    }

    pub(crate) fn get(&self, id: ThreadId) -> Option<&Thread> {
        self.at(self.slot_of(id)?)
    }

    pub(crate) fn get_mut(&mut self, id: ThreadId) -> Option<&mut Thread> {
        let slot = self.slot_of(id)?;
        self.at_mut(slot)
    }

    /// The slot running on `core`, if any.
    pub(crate) fn running_on(&self, core: CoreId) -> Option<Slot> {
        self.running.get(core).copied().flatten()
    }

    /// Sets core `core`'s entry, growing the table for a valid core (and
    /// only for one: so every core with an entry is valid, which
    /// [`Policy::pick`](sched_api::Policy::pick) relies on).
    pub(crate) fn set_running(&mut self, core: CoreId, slot: Option<Slot>) {
        if core >= self.running.len() {
            if slot.is_none() || check_core(core).is_err() {
                return;
            }
            self.running.resize(core + 1, None);
        }
        self.running[core] = slot;
    }

    /// Makes room for `additional` more threads at once (an import).
    pub(crate) fn reserve(&mut self, additional: usize) {
        self.threads.reserve(additional);
        self.slots.reserve(additional);
        self.lent.reserve(additional);
        self.pending.targets.reserve(additional);
    }

    /// Adds a thread (its id new, its currency existing and already listing
    /// it) and brings the derived values up to date but for the final
    /// [`Lottery::settle`], which the caller owes: an import places every
    /// thread and settles once.
    pub(crate) fn place_thread(
        &mut self,
        id: ThreadId,
        tickets: u32,
        currency: CurrencyId,
        state: ThreadState,
        service_ns: u64,
        vtime: i128,
    ) {
        let slot = self.free_slots.pop().unwrap_or_else(|| {
            self.slots.push(None);
            self.lent.push(0);
            self.tree.push()
        });
        self.slots[slot] = Some(Thread {
            id,
            tickets,
            currency,
            state,
            service_ns,
            vtime,
            comp: (1, 1),
            credit: 0,
            lent_to: None,
            capped: false,
            weight: 0,
            own: 0,
            quantum_vt: 0,
            quantum_vt_key: 0,
        });
        self.threads.insert(id, slot);
        if let ThreadState::Running(core) = state {
            self.set_running(core, Some(slot));
        }
        self.enlist(slot);
        self.attach(slot);
    }

    /// Removes a thread, ending its loans (as lender and as borrower), and
    /// brings the derived values up to date.
    pub(crate) fn remove_thread(&mut self, id: ThreadId) -> Option<Thread> {
        let slot = self.slot_of(id)?;
        // Its tickets and its lenders' go out of everything derived; the
        // lenders, left sleeping without a loan, do not come back in.
        let group = self.group(slot);
        for &x in &group {
            self.detach(x);
        }
        self.delist(slot);
        self.unlink(slot);
        for l in self.lenders.remove(&id).unwrap_or_default() {
            if let Some(l) = self.get_mut(l) {
                l.lent_to = None;
            }
        }
        self.set_weight_in_ledger(slot, 0);
        self.capped.retain(|&s| s != slot);
        self.threads.remove(&id);
        let t = self.slots.get_mut(slot)?.take()?;
        if let Some(c) = self.currencies.get_mut(&t.currency) {
            c.threads.remove(&id);
        }
        self.free_slots.push(slot);
        if let ThreadState::Running(core) = t.state {
            self.set_running(core, None);
        }
        for &x in &group[1..] {
            self.attach(x);
        }
        self.give_back(group);
        self.settle();
        Some(t)
    }
}
