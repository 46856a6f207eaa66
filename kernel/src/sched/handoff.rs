//! The system calls that end or hand over the turn: `yield` (and directed
//! yield, a donation of the rest of the turn), `sleep`, `park`, `exit`,
//! `resume`.

use super::entry::{enter_prologue, frame_from_context, switch_address_space, Timer};
use super::revocation::owner_alive;
use super::turn::{claim_running, next_turn, release_running, runnable, stop_running};
use super::*;

/// What a caller giving up its turn asks for besides.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Then {
    /// Nothing: a yield.
    Yield,
    /// To sleep until its predicate holds.
    Sleep,
    /// Its slots on this core passed over until this instant.
    Park(u64),
}

/// The caller (running on this core) gives up the rest of its turn, or
/// donates it to `target`. Errors leave the caller running.
///
/// With `save`, the caller's syscall frame is saved (returning 0) in its
/// enabled save area once the yield is certain to happen; with
/// [`Then::Sleep`], the caller is marked asleep then too (never before a
/// donation that may still be refused: it would be left running, marked
/// asleep), and with [`Then::Park`] its slots here are parked then, under
/// this core's lock.
fn give_up_turn(
    caller: &Env,
    target: Option<u32>,
    save: Option<&TrapFrame>,
    then: Then,
) -> Result<core::convert::Infallible, Error> {
    let sleep = then == Then::Sleep;
    let park = |v: &mut slices::SliceVector| {
        if let Then::Park(until) = then {
            v.park(slices::EnvId(caller.id), until);
        }
    };
    let core = percpu::core_id();
    let save_caller = || {
        if let Some(frame) = save {
            let mut f = *frame;
            f.rax = 0;
            caller.dispatch(core).save(SaveArea::Enabled, &f);
        }
        if sleep {
            caller.asleep.store(true, Ordering::Release);
        }
    };
    let now = time::now_ns();
    let target = target.or_else(|| {
        let t = caller.dispatch(core).donate_to().load(Ordering::Acquire);
        (t != NO_ENV).then_some(t)
    });
    let mut c = core_state(core).lock();
    if c.turn.is_none() {
        return Err(Error::NotPermitted);
    }
    match target {
        None => {
            let mut t = c.end_turn(core).expect("turn checked");
            // Time used past the turn's end beyond the grace allowance (a
            // long system call that ran over, say) is paid back like a
            // repossession's overrun, by the turn's owner; a yield within
            // grace costs nothing.
            let alive = owner_alive(&t);
            t.clock.end_by_yield(now, &mut c.vector, alive, grace());
            park(&mut c.vector);
            drop(c);
            save_caller();
            stop_running(core, t, now);
            next_turn()
        }
        Some(id) => {
            if id == caller.id {
                return Err(Error::BadArgument);
            }
            let recipient = env::get(id).ok_or(Error::BadEnv)?;
            if recipient.upcalls.lock().prologue == 0 && recipient.entry == 0 {
                return Err(Error::NotPermitted);
            }
            let wake = runnable(&recipient).ok_or(Error::NotRunnable)?;
            if !claim_running(&recipient) {
                return Err(Error::BadEnv);
            }
            save_caller();
            let Core {
                vector,
                turn: Some(turn),
            } = &mut *c
            else {
                unreachable!("turn checked, lock held");
            };
            park(vector);
            caller
                .account()
                .donations_given
                .fetch_add(1, Ordering::Relaxed);
            recipient
                .account()
                .donations_received
                .fetch_add(1, Ordering::Relaxed);
            let donor = core::mem::replace(&mut turn.env, recipient.clone());
            RUNNING.set(core, &recipient);
            // The donor's fault area is named no longer: `release_running`
            // below may reap the donor and free its dispatch page before
            // the recipient's entry names its own (`set_user_exception_area`'s
            // contract: live until cleared or replaced).
            percpu::this().clear_user_exception_area();
            let ran_from = core::mem::replace(&mut turn.run_start, now);
            turn.awaiting_entry = true;
            // The recipient gets the rest of the donor's turn, deadline
            // and all: before the end, the rest of the slice; once the
            // donor has been told to yield, only what is left of its grace,
            // told at once (pending, as to a disabled context). A fresh
            // phase here would tell the recipient again with a grace from
            // now, and two environments donating to each other would keep
            // the core for ever (issue 14, hole 5). What the donor used
            // past its grace is charged now, like a late yield's.
            let alive = owner_alive(turn);
            let told = turn.clock.donate(now, vector, alive, grace());
            if told {
                recipient
                    .dispatch(core)
                    .events()
                    .fetch_or(events::REVOCATION_PENDING, Ordering::AcqRel);
            }
            let (end, grace_end) = (turn.clock.end(), turn.clock.grace_end());
            drop(c);
            crate::ledger::charge(
                core,
                ran_from,
                now,
                crate::ledger::Charge::Env(donor.account()),
            );
            // Straight to the recipient's tables (claimed above, so they
            // stay): `release_running` then has no reason to pass through
            // the kernel's, which cost a second CR3 write per donation.
            switch_address_space(recipient.pml4);
            release_running(&donor);
            let reason = match wake {
                Some(tag) => (UpcallReason::Woken, tag),
                None => (UpcallReason::Donated, u64::from(donor.id)),
            };
            drop(donor);
            // Before the end the timer stays as the donor's entry armed
            // it; once told, the recipient is entered as before (armed for
            // the end: at once, to go on with the grace it inherits).
            let timer = if told { Timer::Arm } else { Timer::Armed };
            enter_prologue(core, recipient, reason, end, grace_end, timer)
        }
    }
}

/// The caller (running on this core) gives up the rest of its turn, or
/// donates it to `target` (see [`give_up_turn`]). Errors leave the caller
/// running.
pub fn yield_turn(
    caller: &Env,
    target: Option<u32>,
    save: Option<&TrapFrame>,
) -> Result<core::convert::Infallible, Error> {
    give_up_turn(caller, target, save, Then::Yield)
}

/// `park`: the caller gives up its turn (or donates it to its
/// `donate_to`) and its slots on this core are passed over, uncharged,
/// until `until_ns` (checked by the caller: in the future, and bounded).
/// A refused donation leaves it running and unparked, with the error.
pub fn park(caller: &Env, until_ns: u64) -> Result<core::convert::Infallible, Error> {
    give_up_turn(caller, None, None, Then::Park(until_ns))
}

/// `sleep`: the caller sleeps until its predicate holds (its turn given
/// up, or donated to its `donate_to`). A refused donation leaves it
/// running and awake, with the error.
pub fn sleep(caller: &Env, save: Option<&TrapFrame>) -> Result<core::convert::Infallible, Error> {
    if caller.predicate.lock().is_none() {
        return Err(Error::BadArgument);
    }
    give_up_turn(caller, None, save, Then::Sleep)
}

/// `exit` or a kill of the running environment: leave it now.
pub fn leave_current() -> ! {
    let core = percpu::core_id();
    let t = core_state(core).lock().end_turn(core);
    if let Some(t) = t {
        stop_running(core, t, time::now_ns());
    }
    next_turn()
}

/// `resume(which)`: restore a save area of the caller's dispatch page for
/// this core, clearing the disabled flag as it returns.
pub fn resume(caller: &Env, which: SaveArea) -> Result<core::convert::Infallible, Error> {
    let core = percpu::core_id();
    let d = caller.dispatch(core);
    // One snapshot, checked and then used: the environment may rewrite the
    // area from another core while this runs (flip `rip` between a user
    // and a kernel address, say), and a second read of the page after the
    // checks would hand `iretq` a value nobody checked (a #GP in ring 0) or
    // `fxrstor` reserved MXCSR bits.
    let mut ctx = d.snapshot(which);
    if ctx.valid != 1 {
        return Err(Error::NotMapped);
    }
    let frame = frame_from_context(&ctx).ok_or(Error::BadAddress)?;
    d.mark_consumed(which);
    cpu::sanitise_fx(&mut ctx.fx);
    cpu::fxrstor(&ctx.fx);
    d.disabled().store(0, Ordering::Release);
    enter_user(&frame)
}
