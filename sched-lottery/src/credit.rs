//! Credits and compensation: what a thread is owed beyond its next draw.
//!
//! - A *credit* is a quantum won but not run (the draw landed on the thread
//!   while it ran on another core, or it came in with a debt at an import);
//!   a runnable thread with credit runs before any draw (`Lottery::owed`).
//!   A negative credit is a quantum run without a win (the idle-only
//!   draw), paid back by the next win.
//! - *Compensation*: a thread that used a fraction f of its quantum has its
//!   draw value multiplied by 1/f until it next wins.

use sched_api::{mul_div, RunEnd, ThreadState, VT_SCALE};

use crate::{Lottery, Slot};

/// Most quanta a thread can be owed as credit.
pub(crate) const MAX_CREDIT: i32 = 1 << 16;
/// Distinct weights whose gain an import's `credit_debts` keeps.
const GAINS_KEPT: usize = 8;
/// Largest compensation factor (a thread using 1/65536 of its quantum).
pub const MAX_COMPENSATION: u64 = 1 << 16;

/// The compensation factor `num / den` for a thread that ran `ran_ns` of a
/// quantum of `quantum_ns` and ended as `end`: 1/f for a fraction f used
/// before yielding or blocking, 1/1 otherwise. Not for a preemption before
/// the quantum's end: in the libOS that is mostly the thread that ran the
/// rest of a slot after another blocked, whose next turn is whole, and
/// compensating it took share from the blockers (1:1:1 tickets, one
/// blocking at 0.9 of each turn: its share 0.249 against 0.323 without;
/// `tests/slot_follower.rs`). A thread whose every turn is cut short
/// loses time by it instead (see `sched-registry`'s conformance suite).
pub(crate) fn compensation(quantum_ns: u64, ran_ns: u64, end: RunEnd) -> (u64, u64) {
    let partial = matches!(end, RunEnd::Yielded | RunEnd::Blocked) && ran_ns > 0;
    if !partial || ran_ns >= quantum_ns {
        (1, 1)
    } else if quantum_ns / ran_ns >= MAX_COMPENSATION {
        (MAX_COMPENSATION, 1)
    } else {
        (quantum_ns, ran_ns)
    }
}

impl Lottery {
    /// Sets the compensation of the thread in `slot`, re-entering its draw
    /// values only when it changed.
    #[inline]
    pub(crate) fn set_comp(&mut self, slot: Slot, comp: (u64, u64)) {
        let Some(t) = self.slots.get_mut(slot).and_then(Option::as_mut) else {
            return;
        };
        if t.comp != comp {
            t.comp = comp;
            self.revalue_target(slot);
        }
    }

    /// Turns the debts of imported runnable threads into credits. A thread
    /// owed `owed` ns at adjusted weight e gains on its ideal only
    /// 1 - P e / E per ns it runs (the ideal keeps growing meanwhile), so it
    /// is owed owed / (1 - P e / E) ns of running: that many whole quanta.
    /// Capped threads run whenever they are behind anyway.
    pub(crate) fn credit_debts(&mut self) {
        let q = self.quantum_ns as f64;
        let cores = self.ledger.cores() as f64;
        let global = self.ledger.now();
        let total = self.ledger.total_effective().as_f64();
        // The gain of each weight, for the first few weights met: it is
        // the same for every thread of that weight (an application has a
        // handful among its threads), and in the guest, without an FPU,
        // it is ~5 calls to software floating point.
        let mut gains = [(0u64, 0f64); GAINS_KEPT];
        let mut kept = 0;
        for slot in 0..self.slots.len() {
            let Some(t) = self.at(slot) else {
                continue;
            };
            let lag = t.vtime.saturating_sub(global);
            if t.state == ThreadState::Sleeping || t.capped || lag >= 0 {
                continue;
            }
            let w = t.weight.max(1);
            let e = self.ledger.effective(w);
            let owed_ns = mul_div(lag.unsigned_abs(), e.num, e.den.saturating_mul(VT_SCALE));
            let gain = match gains[..kept].iter().find(|&&(kw, _)| kw == w) {
                Some(&(_, gain)) => gain,
                None => {
                    let gain = 1.0 - cores * e.as_f64() / total;
                    if kept < GAINS_KEPT {
                        gains[kept] = (w, gain);
                        kept += 1;
                    }
                    gain
                }
            };
            if gain <= 0.0 {
                continue;
            }
            let quanta = owed_ns as f64 / q / gain;
            self.delist(slot);
            if let Some(t) = self.at_mut(slot) {
                t.credit = if quanta >= f64::from(MAX_CREDIT) {
                    MAX_CREDIT
                } else {
                    quanta as i32
                };
            }
            self.enlist(slot);
        }
    }
}
