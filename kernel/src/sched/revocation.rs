//! Revocation and repossession: at a turn's end the timer tells the
//! environment to yield (its epilogue upcall, or a pending flag while it is
//! disabled); past the grace period the core is taken by force, the
//! context saved, the overrun charged to the turn's owner.

use super::entry::{arm_for, arm_in_steps, upcall, upcall_frame, Timer};
use super::turn::{next_turn, stop_running};
use super::*;
use abi::shared::{
    Repossession, RepossessionCause, REPOSSESSION_KEPT_DISABLED, REPOSSESSION_LOST_SLOT,
};
use kernel::record_line::RepossessionRecord;

/// A resume-range retry: how soon to look again.
const RESUME_RETRY_NS: u64 = 5_000;

/// The timer fired on a scheduling core. Returns if the interrupted
/// context continues.
pub fn on_timer(frame: &mut TrapFrame) {
    let core = percpu::core_id();
    if !active(core) || !frame.is_user() {
        return; // idle loop or boot code: it checks the time itself
    }
    park_if_stopping(core);
    let now = time::now_ns();
    if core == 0 {
        monitor(now, false);
    }
    let mut c = core_state(core).lock();
    let Some(turn) = c.turn.as_mut() else { return };
    if !turn.env.alive() {
        let t = c.end_turn(core).expect("turn checked");
        drop(c);
        stop_running(core, t, now);
        next_turn();
    }
    // What the machine is told of the context matters only when the turn
    // ends now (running or resuming, past its end) or its grace does:
    // reading the resume range takes a lock, so not on the interleave
    // steps between (a grace is stepped too, `arm_in_steps`).
    let phase = turn.clock.phase();
    let seen = if turn.clock.sees_at(now) {
        slices::Seen {
            disabled: turn.env.dispatch(core).disabled().load(Ordering::Acquire) != 0,
            in_resume_range: turn.env.in_resume_range(frame.rip),
            untouched_since_told: phase == slices::Phase::Revoking
                && context_mark(frame) == turn.grace_mark,
            steal_clock_ns: crate::arch::steal::stolen_ns(core),
        }
    } else {
        slices::Seen::default()
    };
    match turn.clock.tick(now, seen, grace()) {
        Tick::Continue { until } => arm_in_steps(now, until),
        // Restoring a context (a few instructions): revoked once it is in,
        // taken if it is still there at its grace's end (a range covering a
        // loop would keep the core for ever: the resume_hog experiment).
        Tick::RetryResume { grace_end } => {
            // The page shows the turn's times as they are (a fault
            // reflected meanwhile does not write them again).
            turn.env
                .dispatch(core)
                .grace_end_ns()
                .store(grace_end, Ordering::Relaxed);
            // (5 µs: shorter than any interleave step already.)
            arm_for(now, grace_end.min(now + RESUME_RETRY_NS));
        }
        Tick::Defer { grace_end } => {
            let d = turn.env.dispatch(core);
            d.grace_end_ns().store(grace_end, Ordering::Relaxed);
            d.events()
                .fetch_or(events::REVOCATION_PENDING, Ordering::AcqRel);
            arm_in_steps(now, grace_end);
            // As for a revocation told by an upcall: charged up to the
            // deadline, and again from its return to the interrupted code.
            let ran_from = turn.run_start;
            let end = turn.clock.end().max(ran_from);
            turn.run_start = time::now_ns().max(end);
            d.run_started_ns().store(turn.run_start, Ordering::Relaxed);
            crate::ledger::charge(
                core,
                ran_from,
                end,
                crate::ledger::Charge::Env(turn.env.account()),
            );
        }
        // Not one instruction ran since it was told, or the host took its
        // vCPU for part of the grace: its vCPU was off the host CPU, so the
        // grace is given again.
        Tick::Renewed { grace_end } => {
            turn.env
                .account()
                .grace_renewals
                .fetch_add(1, Ordering::Relaxed);
            turn.env
                .dispatch(core)
                .grace_end_ns()
                .store(grace_end, Ordering::Relaxed);
            arm_in_steps(now, grace_end);
        }
        Tick::Repossess => {
            let cause = match turn.clock.phase() {
                slices::Phase::Deferred => RepossessionCause::Disabled,
                slices::Phase::Resuming => RepossessionCause::ResumeRange,
                _ => RepossessionCause::Grace,
            };
            drop(c);
            repossess(core, frame, now, cause)
        }
        Tick::Revoke { grace_end } => {
            let entry = turn.env.upcalls.lock().epilogue;
            turn.grace_mark = epilogue_mark(core, entry);
            let env = turn.env.clone();
            let end = turn.clock.end();
            let deadline_clock = clock_at_deadline(&env, core, turn);
            // Charged up to its deadline now; from there until its epilogue
            // is entered the core is the kernel's (see `entering`).
            let ran_from = turn.run_start;
            turn.run_start = end.max(ran_from);
            turn.awaiting_entry = true;
            let ran_to = turn.run_start;
            drop(c);
            crate::ledger::charge(
                core,
                ran_from,
                ran_to,
                crate::ledger::Charge::Env(env.account()),
            );
            let d = env.dispatch(core);
            d.save(SaveArea::Enabled, frame);
            d.deadline_clock_ns()
                .store(deadline_clock, Ordering::Relaxed);
            if entry == 0 {
                // No epilogue: nothing to tell; take the core at once.
                drop(env);
                repossess(core, frame, now, RepossessionCause::NoEpilogue)
            }
            crate::latency::revocation(time::now_ns().saturating_sub(end));
            upcall(
                core,
                env,
                entry,
                UpcallReason::Revoke,
                0,
                end,
                grace_end,
                Timer::Arm,
            );
        }
    }
}

/// `env`'s CPU clock on `core` at `turn`'s deadline (its account moves
/// only when a turn ends, so it holds the time before this turn).
fn clock_at_deadline(env: &Env, core: usize, turn: &Turn) -> u64 {
    env.account().cpu_ns[core].load(Ordering::Relaxed)
        + turn.clock.end().saturating_sub(turn.run_start)
}

/// Whether `turn`'s owner is alive to be charged (a dead owner's slots and
/// debts are gone). Inlined (a wrapper of `env::is_live`): left to the
/// compiler it was a call of its own on every yield and donation.
#[inline(always)]
pub(super) fn owner_alive(turn: &Turn) -> bool {
    turn.clock.owner().is_some_and(|o| env::is_live(o.0))
}

/// Per core: the epilogue entry whose upcall frame was marked last, and
/// that mark ([`epilogue_mark`]).
static EPILOGUE_ENTRY: [AtomicU64; MAX_CORES] = [const { AtomicU64::new(0) }; MAX_CORES];
static EPILOGUE_MARK: [AtomicU64; MAX_CORES] = [const { AtomicU64::new(0) }; MAX_CORES];

/// [`context_mark`] of the epilogue upcall's entry frame for `entry` on
/// `core`: a function of the two alone, so kept from the last revocation
/// on this core (an environment's epilogue entry rarely changes; building
/// the frame and hashing it again took ~80 instructions a turn). Only
/// `core` itself reads and writes its pair.
fn epilogue_mark(core: usize, entry: u64) -> u64 {
    if entry != 0 && EPILOGUE_ENTRY[core].load(Ordering::Relaxed) == entry {
        return EPILOGUE_MARK[core].load(Ordering::Relaxed);
    }
    let mark = context_mark(&upcall_frame(core, entry, UpcallReason::Revoke, 0));
    EPILOGUE_MARK[core].store(mark, Ordering::Relaxed);
    EPILOGUE_ENTRY[core].store(entry, Ordering::Relaxed);
    mark
}

/// Per core: the most a turn ran past its end without being charged for
/// it, beyond the renewed grace it was given (see [`note_uncharged_overrun`]).
static UNCHARGED_MAX: [AtomicU64; MAX_CORES] = [const { AtomicU64::new(0) }; MAX_CORES];

pub(super) fn note_uncharged_overrun(core: usize, turn: &Turn, now: u64) {
    UNCHARGED_MAX[core].fetch_max(turn.clock.uncharged(now), Ordering::Relaxed);
}

/// The most any turn, ended or in progress, has run past its end without
/// its owner being charged (less renewed grace), over every core. Bounded
/// by the grace period (plus a revocation's lateness) unless a turn was
/// kept past its grace uncharged. Takes every core's lock: never call it
/// holding one.
pub fn uncharged_overrun_max_ns() -> u64 {
    let now = time::now_ns();
    CORES
        .get()
        .iter()
        .enumerate()
        .map(|(core, state)| {
            let live = state
                .lock()
                .turn
                .as_ref()
                .map_or(0, |t| t.clock.uncharged(now));
            live.max(UNCHARGED_MAX[core].load(Ordering::Relaxed))
        })
        .max()
        .unwrap_or(0)
}

/// Takes the core back by force: full context into the preempted save
/// area, the repossession recorded, charged and published in the core's
/// repossession vector, and on to the next turn.
pub(super) fn repossess(core: usize, frame: &TrapFrame, now: u64, cause: RepossessionCause) -> ! {
    let mut c = core_state(core).lock();
    let mut turn = c.end_turn(core).expect("repossess with a turn");
    crate::latency::repossessed(core, turn.clock.grace_end());
    // The turn's owner pays (even if a donation recipient ran, and even if
    // it gave the slot up meanwhile: then whoever holds it now is not
    // touched); what a donation past the end charged already is not
    // charged again. The vector returns the owner's quota unit itself if
    // it loses the slot.
    let slot = turn.clock.slot();
    let logged_before = c.vector.repossessions_logged();
    let (overrun, lost_slot, logged) = {
        let owner = turn.clock.owner().and_then(|o| env::get(o.0));
        let taken = turn
            .clock
            .repossess(now, &mut c.vector, owner.as_ref().map(|o| &o.slot_quota));
        // The vector logs a repossession it charged to a live owner.
        let logged = (c.vector.repossessions_logged() > logged_before)
            .then(|| c.vector.repossessions().last().copied())
            .flatten();
        if taken.lost_slot {
            exported::core_slices_of(core).owners[slot].store(NO_ENV, Ordering::Release);
            if let Some(owner) = &owner {
                owner.account().slots_held.fetch_sub(1, Ordering::Release);
                owner
                    .account()
                    .slots_revoked
                    .fetch_add(1, Ordering::Relaxed);
            }
        }
        (taken.overrun_ns, taken.lost_slot, logged)
    };
    let env = &turn.env;
    drop(c);
    let d = env.dispatch(core);
    let flag = d.disabled().load(Ordering::Acquire);
    let was_disabled = flag != 0 || env.in_resume_range(frame.rip);
    if was_disabled {
        // It holds its own locks or runs on its upcall stack: an upcall now
        // could deadlock or clobber that stack, so it is resumed directly,
        // from the kernel's copy (the preempted area may hold the context
        // the interrupted upcall has yet to resume).
        let ctx = dispatch_page::context_of(frame);
        env.keep_disabled_context(core, env::DisabledContext { ctx, flag });
    } else {
        d.save(SaveArea::Preempted, frame);
        d.deadline_clock_ns()
            .store(clock_at_deadline(env, core, &turn), Ordering::Relaxed);
        env.set_repossessed(core);
    }
    // This core is the ring's one writer (in its timer interrupt).
    let flags = if lost_slot { REPOSSESSION_LOST_SLOT } else { 0 }
        | if was_disabled {
            REPOSSESSION_KEPT_DISABLED
        } else {
            0
        };
    exported::core_slices_of(core)
        .repossessions
        .publish(&Repossession {
            time_ns: now,
            overrun_ns: overrun,
            charged_ns: logged.map_or(0, |l| l.overrun_ns),
            renewed_ns: turn.clock.renewed_ns(),
            grace_end_ns: turn.clock.grace_end(),
            slot: slot as u32,
            owner: logged.map_or(NO_ENV, |l| l.env.0),
            ran: env.id,
            cause: cause as u32,
            flags,
            ..Repossession::EMPTY
        });
    d.events().fetch_or(events::REPOSSESSED, Ordering::AcqRel);
    d.repossessions().fetch_add(1, Ordering::Relaxed);
    d.last_repossession_ns().store(now, Ordering::Relaxed);
    d.last_overrun_ns().store(overrun, Ordering::Relaxed);
    env.account().repossessions.fetch_add(1, Ordering::Relaxed);
    // Written without `core::fmt` (`record_line`): through `format_args!`
    // this record was over half the time from the grace's end to the next
    // environment's entry.
    let record = RepossessionRecord {
        env: env.id,
        core,
        slot,
        t_ns: now,
        overrun_ns: overrun,
        slot_revoked: lost_slot,
        cause,
        kept_disabled: was_disabled,
        rip: frame.rip,
    };
    record::emit_line(record.line());
    stop_running(core, turn, now);
    next_turn()
}
