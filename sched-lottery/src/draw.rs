//! The decision: capped threads first, then threads owed a quantum, then
//! fair draws over the tree of ticket values (`sumtree`) until one lands on
//! an idle thread; and the ready sets those first two steps read.

use core::cmp::Reverse;

use sched_api::{CoreId, ThreadId, ThreadState};

use crate::credit::MAX_CREDIT;
use crate::{Lottery, Slot};

/// Where a pick that is not the usual one goes on (see
/// [`Lottery::pick_free`]).
pub(crate) enum Rest {
    /// From the start: a capped thread is ready, or a thread is owed, or
    /// the core has no entry yet.
    Choose,
    /// From its first draw, which landed on this slot.
    DrawOn(Slot),
}

impl Lottery {
    /// The thread to run on a free core: a capped thread not ahead of its
    /// core's worth, else the thread owed most, else a draw; a capped
    /// thread ahead of its core's worth still runs rather than leave the
    /// core idle. Its slot; it is not yet started.
    pub(crate) fn choose(&mut self) -> Option<Slot> {
        if self.capped_ready.is_empty() {
            // Nobody capped and ready (the usual with more threads than
            // cores): straight to the ready threads owed, then the draw.
        } else if let Some(slot) = self.capped_owed() {
            return Some(slot);
        }
        if !self.owed.is_empty() {
            return self.pay_owed();
        }
        self.draw().or_else(|| {
            let &(_, slot) = self.capped_ready.first()?;
            Some(slot)
        })
    }

    /// Chooses and starts the thread to run on the free core `core`; its
    /// id. The usual pick (the core's entry there, nobody capped and
    /// ready, nobody owed, the first draw landing on a runnable thread's
    /// own tickets, owing and owed nothing, without compensation: with
    /// more threads than cores, all but a few picks) is started here on
    /// the record the draw looked up; every other goes on in
    /// [`Lottery::pick_rest`], which makes the same draws.
    #[inline(always)] // into `try_pick` and `pick` alike
    pub(crate) fn pick_free(&mut self, core: CoreId) -> Option<ThreadId> {
        // The core's entry, looked up once: a core not run on yet has none
        // (`start` grows the table), and goes the general way.
        let Some(entry) = self.running.get_mut(core) else {
            return self.pick_rest(core, Rest::Choose);
        };
        if !self.capped_ready.is_empty() || !self.owed.is_empty() {
            return self.pick_rest(core, Rest::Choose);
        }
        // `choose` with both sets empty: the draw, and nobody to fall
        // back on (a draw changes neither set).
        let slot = self.tree.draw(&mut self.rng)?;
        match self.slots.get_mut(slot) {
            // A runnable thread's own tickets, owing and owed nothing (as
            // nobody is owed, a credit is never positive here), not
            // capped, without compensation: what `start` does then is
            // this.
            Some(Some(t))
                if t.state == ThreadState::Runnable
                    && t.lent_to.is_none()
                    && t.credit == 0
                    && !t.capped
                    && t.comp == (1, 1) =>
            {
                t.state = ThreadState::Running(core);
                *entry = Some(slot);
                Some(t.id)
            }
            // Otherwise as the draw loop goes on from this draw (whose
            // first step starts a runnable thread's own tickets owing no
            // win, and goes on drawing from any other).
            _ => self.pick_rest(core, Rest::DrawOn(slot)),
        }
    }

    /// A pick that is not the usual one, from where [`Lottery::pick_free`]
    /// left it. Out of line, with `choose` and `start` inlined here only.
    #[inline(never)]
    fn pick_rest(&mut self, core: CoreId, rest: Rest) -> Option<ThreadId> {
        let slot = match rest {
            Rest::Choose => self.choose()?,
            Rest::DrawOn(first) => self.draw_on(first)?,
        };
        self.start(slot, core)
    }

    /// The runnable thread owed most (one credit paid). Out of line: with
    /// one core nobody is owed but after an import, and inlined into the
    /// pick its removal from the set made every pick save and spill more.
    #[inline(never)]
    fn pay_owed(&mut self) -> Option<Slot> {
        let (_, id) = self.owed.pop_first()?;
        let slot = self.slot_of(id);
        if let Some(t) = slot.and_then(|s| self.at_mut(s)) {
            t.credit -= 1;
        }
        slot
    }

    /// One fair draw after another until one lands on an idle thread; see
    /// the crate docs. The winner's slot.
    fn draw(&mut self) -> Option<Slot> {
        let slot = self.tree.draw(&mut self.rng)?;
        self.draw_on(slot)
    }

    /// [`Lottery::draw`] once its first draw has landed on `first`: the
    /// same draws its loop always made. Out of line: the usual pick needs
    /// no more (see [`Lottery::pick_free`]).
    #[inline(never)]
    fn draw_on(&mut self, first: Slot) -> Option<Slot> {
        let attempts = 8 * self.ledger.cores() + 8;
        for attempt in 0..attempts {
            let slot = match attempt {
                0 => first,
                _ => self.tree.draw(&mut self.rng)?,
            };
            let Some(x) = self.at(slot) else {
                break;
            };
            // The usual: a runnable thread's own tickets, owing no win.
            if x.lent_to.is_none() && x.state == ThreadState::Runnable && x.credit >= 0 {
                return Some(slot);
            }
            let t = match x.lent_to {
                None => slot,
                Some(_) => self.resolve_slot(slot)?,
            };
            let th = self.at_mut(t)?;
            match th.state {
                ThreadState::Running(_) => {
                    // Won while busy: the quantum is owed. A win ends any
                    // compensation.
                    th.credit = (th.credit + 1).min(MAX_CREDIT);
                    self.set_comp(t, (1, 1));
                }
                ThreadState::Runnable if th.credit < 0 => th.credit += 1,
                ThreadState::Runnable => return Some(t),
                ThreadState::Sleeping => break,
            }
        }
        self.draw_idle()
    }

    /// One draw among the idle threads only, after too many draws landed on
    /// running ones (rare: see the crate docs). The values of every slot
    /// resolving to a running thread leave the tree for the draw and come
    /// back after: O((c + l) log n) for c running threads and l threads
    /// lending to them, where a scan of the idle threads would be O(n).
    /// The winner owes a fair win (a credit debited). Out of line: inlined
    /// into the pick, its loops made every pick save and spill more.
    #[inline(never)]
    pub(crate) fn draw_idle(&mut self) -> Option<Slot> {
        let mut hidden = core::mem::take(&mut self.pending.hidden);
        for core in 0..self.running.len() {
            let Some(r) = self.running[core] else {
                continue;
            };
            let group = self.group(r);
            for &x in &group {
                let v = self.tree.get(x);
                if v > 0 {
                    hidden.push((x, v));
                    self.tree.set(x, 0);
                }
            }
            self.give_back(group);
        }
        let total = self.tree.total();
        let winner = (total > 0).then(|| self.tree.find(self.rng.below(total)));
        for &(x, v) in hidden.iter().rev() {
            self.tree.set(x, v);
        }
        hidden.clear();
        self.pending.hidden = hidden;
        let slot = self.resolve_slot(winner?)?;
        let t = self
            .at_mut(slot)
            .filter(|t| t.state == ThreadState::Runnable)?;
        t.credit = (t.credit - 1).max(-MAX_CREDIT);
        Some(slot)
    }

    /// A runnable capped thread not ahead of its entitlement (one core's
    /// worth of the application's time, as virtual time) by more than a
    /// quantum. Capped threads used to run whenever a core was free, which
    /// is exactly one core only when the application has its P cores all
    /// the time; sharing its cores (a third of each, say), that gave capped
    /// threads nearly all its time and starved the rest for seconds.
    ///
    /// Inlined into `pick_rest` (its only caller, through `choose`), which
    /// is out of line already: the usual pick does not carry it.
    #[inline(always)]
    fn capped_owed(&mut self) -> Option<Slot> {
        let now = self.ledger.now();
        let (epoch, quantum_ns) = (self.epoch, self.quantum_ns);
        // One lookup of each record (the fields reached directly, so that
        // it is held while the ready set is read).
        for &(_, slot) in &self.capped_ready {
            let Some(t) = self.slots.get_mut(slot).and_then(Option::as_mut) else {
                continue;
            };
            let quantum = t.vt(&self.ledger, epoch, quantum_ns, quantum_ns);
            if t.vtime <= now.saturating_add(quantum) {
                return Some(slot);
            }
        }
        None
    }

    /// Puts the thread in `slot`, if runnable, in its ready set: capped
    /// threads in `capped_ready`, others in `owed` if they have credit.
    pub(crate) fn enlist(&mut self, slot: Slot) {
        let Some(t) = self.at(slot).filter(|t| t.state == ThreadState::Runnable) else {
            return;
        };
        let (id, capped, credit) = (t.id, t.capped, t.credit);
        self.enlist_as(id, slot, capped, credit);
    }

    /// [`Lottery::enlist`] for a runnable thread whose record the caller
    /// holds.
    #[inline]
    pub(crate) fn enlist_as(&mut self, id: ThreadId, slot: Slot, capped: bool, credit: i32) {
        if capped {
            self.ready_insert(id, slot);
        } else if credit > 0 {
            self.owed.insert((Reverse(credit), id));
        }
    }

    /// Takes the thread in `slot`, if runnable, out of its ready set (before
    /// it stops being runnable).
    pub(crate) fn delist(&mut self, slot: Slot) {
        let Some(t) = self.at(slot).filter(|t| t.state == ThreadState::Runnable) else {
            return;
        };
        let (id, credit) = (t.id, t.credit);
        if t.capped {
            self.ready_remove(id);
        } else if credit > 0 {
            self.owed.remove(&(Reverse(credit), id));
        }
    }

    /// Adds a thread to `capped_ready` (if not there).
    pub(crate) fn ready_insert(&mut self, id: ThreadId, slot: Slot) {
        // After the last (one capped thread, say): no search, no move.
        if self.capped_ready.last().is_none_or(|&(last, _)| last < id) {
            return self.capped_ready.push((id, slot));
        }
        self.ready_insert_inside(id, slot);
    }

    /// [`Lottery::ready_insert`] before the last: a search and a move. Out
    /// of line, so that the push at the end (a capped thread's every
    /// charge, with one thread per core) saves no registers for it.
    #[inline(never)]
    fn ready_insert_inside(&mut self, id: ThreadId, slot: Slot) {
        if let Err(i) = self.capped_ready.binary_search_by_key(&id, |&(id, _)| id) {
            self.capped_ready.insert(i, (id, slot));
        }
    }

    /// Takes a thread out of `capped_ready` (if there).
    pub(crate) fn ready_remove(&mut self, id: ThreadId) {
        // The last (one capped thread, say): no search.
        if self
            .capped_ready
            .last()
            .is_some_and(|&(last, _)| last == id)
        {
            self.capped_ready.pop();
            return;
        }
        if let Ok(i) = self.capped_ready.binary_search_by_key(&id, |&(id, _)| id) {
            self.capped_ready.remove(i);
        }
    }

    /// Marks the thread in `slot` running on `core`; its id. One lookup of
    /// its record serves the whole start (each lookup of a slot is a
    /// bounds check and a test of the slot's occupancy).
    pub(crate) fn start(&mut self, slot: Slot, core: CoreId) -> Option<ThreadId> {
        let t = self.slots.get_mut(slot)?.as_mut()?;
        // Only a runnable thread with credit is in `owed` (under its
        // current credit), and only a capped one in `capped_ready`: most
        // starts need neither lookup.
        if t.credit > 0 {
            self.owed.remove(&(Reverse(t.credit), t.id));
        }
        t.state = ThreadState::Running(core);
        let (id, capped) = (t.id, t.capped);
        // A win ends any compensation (the usual: there is none).
        let comp_ended = t.comp != (1, 1);
        t.comp = (1, 1);
        if capped {
            self.ready_remove(id);
        }
        match self.running.get_mut(core) {
            Some(r) => *r = Some(slot),
            None => self.set_running(core, Some(slot)), // grows the table
        }
        if comp_ended {
            self.revalue_target(slot);
        }
        Some(id)
    }
}
