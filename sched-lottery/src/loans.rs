//! Ticket transfers: a sleeping thread lends its tickets to the thread it
//! waits for, and a draw that lands on them picks the end of the chain of
//! loans (the paper's transfer tickets).

use alloc::vec::Vec;

use sched_api::{SchedError, ThreadId, ThreadState};

use crate::{Lottery, Slot};

impl Lottery {
    /// `from`, sleeping (blocked on `to`), lends `to` its tickets until
    /// [`Lottery::take_back`] or until `from` wakes. A new loan replaces an
    /// old one.
    pub fn transfer(&mut self, from: ThreadId, to: ThreadId) -> Result<(), SchedError> {
        let slot = self.slot_of(from).ok_or(SchedError::UnknownThread)?;
        match self.at(slot).map(|f| f.state) {
            Some(ThreadState::Sleeping) => {}
            Some(ThreadState::Running(_)) => return Err(SchedError::AlreadyRunning),
            _ => return Err(SchedError::NotSleeping),
        }
        if !self.threads.contains_key(&to) {
            return Err(SchedError::UnknownThread);
        }
        if to == from || self.chain(to).any(|x| x == from) {
            return Err(SchedError::TransferCycle);
        }
        // `from`'s tickets and those lent to it now resolve through `to`.
        self.rework_group(slot, |l| {
            l.unlink(slot);
            if let Some(f) = l.at_mut(slot) {
                f.lent_to = Some(to);
            }
            l.lenders.entry(to).or_default().insert(from);
        });
        Ok(())
    }

    /// `from` takes back the tickets it lent.
    pub fn take_back(&mut self, from: ThreadId) -> Result<(), SchedError> {
        let slot = self.slot_of(from).ok_or(SchedError::UnknownThread)?;
        if self.at(slot).is_none_or(|f| f.lent_to.is_none()) {
            return Err(SchedError::NotLending);
        }
        self.rework_group(slot, |l| l.unlink(slot));
        Ok(())
    }

    /// Ends the loan of the thread in `slot`, if any (the caller keeps the
    /// derived values).
    pub(crate) fn unlink(&mut self, slot: Slot) {
        let Some((from, to)) = self
            .at_mut(slot)
            .and_then(|f| Some((f.id, f.lent_to.take()?)))
        else {
            return;
        };
        if let Some(lenders) = self.lenders.get_mut(&to) {
            lenders.remove(&from);
            if lenders.is_empty() {
                self.lenders.remove(&to);
            }
        }
    }

    /// The threads `x`'s loans lead to, in order (not `x` itself).
    fn chain(&self, x: ThreadId) -> impl Iterator<Item = ThreadId> + '_ {
        let mut cur = x;
        (0..self.threads.len()).map_while(move |_| {
            cur = self.get(cur)?.lent_to?;
            Some(cur)
        })
    }

    /// Who a draw on `x`'s tickets picks: the end of its chain of loans.
    fn resolve(&self, x: ThreadId) -> ThreadId {
        self.chain(x).last().unwrap_or(x)
    }

    /// [`Lottery::resolve`] by slot; a thread lending nothing (the usual
    /// case) resolves to itself without a lookup.
    pub(crate) fn resolve_slot(&self, slot: Slot) -> Option<Slot> {
        match self.at(slot)?.lent_to {
            None => Some(slot),
            Some(_) => self.slot_of(self.resolve(self.at(slot)?.id)),
        }
    }

    /// The slot of every thread whose tickets resolve through the thread in
    /// `slot`: itself first, then its lenders, theirs, and so on. In a
    /// buffer reused from call to call; hand it back with
    /// [`Lottery::give_back`].
    pub(crate) fn group(&mut self, slot: Slot) -> Vec<Slot> {
        let mut out = core::mem::take(&mut self.pending.group);
        out.clear();
        out.push(slot);
        if self.lenders.is_empty() {
            return out;
        }
        let mut i = 0;
        while let Some(&x) = out.get(i) {
            let lenders = self.at(x).and_then(|t| self.lenders.get(&t.id));
            for &l in lenders.into_iter().flatten() {
                if let Some(s) = self.slot_of(l) {
                    out.push(s);
                }
            }
            i += 1;
        }
        out
    }

    /// Returns a buffer taken by [`Lottery::group`].
    pub(crate) fn give_back(&mut self, group: Vec<Slot>) {
        self.pending.group = group;
    }
}
