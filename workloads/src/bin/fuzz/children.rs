//! Children: spawned (some run), killed, and checked gone; and donation
//! cycles with a child that hands every turn straight back.
//!
//! The partner of a cycle is a copy of this program: a `fuzz` environment
//! that starts with no slot of its own is a child, and every upcall it
//! gets — its start, a donation, a revocation — it spends donating the
//! turn back to its donor (or to the owner of the slot whose turn it is),
//! never yielding it up: the laundering pair of issue 14's hole 5. The
//! kernel must keep such a pair to the turn's deadline and grace: a
//! recipient inherits its donor's deadline, so the root sees its own
//! slice and grace end unchanged at every hop, is entered by a donation
//! within the turn no later than its grace end, and then loses the turn.
//!
//! Which boot module is this program is not told to it: at its start the
//! root spawns every program once and, told its own slice is over (its
//! revocation held pending in a critical section), donates the rest of
//! the turn to each until one hands it straight back although told too
//! (`bench_peer` hands turns back, but yields when told): that one — a
//! copy of this program, or `launder` — is the cycles' partner.

use core::sync::atomic::{AtomicU32, AtomicU64, AtomicU8, Ordering};

use libos::abi::shared::{events, UpcallReason, MAX_CORES};
use libos::abi::syscall::{Error, Syscall, NO_ENV};
use libos::{report, sys};

use crate::calls::Rng;
use crate::tally::{self, expect, ran, violation, Op};

/// Boot modules: 0 until counted.
static PROGRAMS: AtomicU64 = AtomicU64::new(0);
/// The cycles' partner program, or `NONE`.
static PARTNER: AtomicU64 = AtomicU64::new(NONE);
const NONE: u64 = u64::MAX;
/// Most programs probed.
const MAX_PROGRAMS: u64 = 256;
/// Most hops of one cycle: it ends with its turn long before.
const MAX_HOPS: u64 = 10_000;
/// Work between a partner's entry and its donation (iterations).
const PARTNER_WORK: u64 = 2_000;

/// This program's role, decided at its first upcall.
static ROLE: AtomicU8 = AtomicU8::new(0);
const ROOT: u8 = 1;
const CHILD: u8 = 2;

/// Per core: the last upcall's reason and argument, and upcalls so far.
static LAST_REASON: [AtomicU64; MAX_CORES] = [const { AtomicU64::new(u64::MAX) }; MAX_CORES];
static LAST_ARG: [AtomicU64; MAX_CORES] = [const { AtomicU64::new(0) }; MAX_CORES];
static UPCALLS: [AtomicU64; MAX_CORES] = [const { AtomicU64::new(0) }; MAX_CORES];
/// Per core: the last environment that donated a turn to this one with
/// its revocation pending (told, and donating anyway).
static TOLD_DONOR: [AtomicU32; MAX_CORES] = [const { AtomicU32::new(NO_ENV) }; MAX_CORES];
/// How long past its slice end the probe waits to be told (ns): a tick.
const TOLD_WITHIN_NS: u64 = 1_000_000;

/// Per core: the child a sequence is checking (`NO_ENV`: none); and how
/// many cores are between a `spawn` and recording its child.
static RESERVED: [AtomicU32; MAX_CORES] = [const { AtomicU32::new(NO_ENV) }; MAX_CORES];
static SPAWNING: AtomicU64 = AtomicU64::new(0);

/// Every upcall passes here first (see `_start`).
pub fn note_upcall(core: usize, reason: u64, arg: u64) {
    let core = core.min(MAX_CORES - 1);
    LAST_REASON[core].store(reason, Ordering::Relaxed);
    LAST_ARG[core].store(arg, Ordering::Relaxed);
    UPCALLS[core].fetch_add(1, Ordering::Relaxed);
    let told = sys::dispatch(core).events.load(Ordering::Acquire) & events::REVOCATION_PENDING;
    if reason == UpcallReason::Donated as u64 && told != 0 {
        TOLD_DONOR[core].store(arg as u32, Ordering::Relaxed);
    }
}

/// Whether child `id`, given the rest of a turn already over (see the
/// module's docs), hands it straight back.
fn hands_back_when_told(core: usize, id: u32) -> bool {
    let d = sys::dispatch(core);
    // A critical section: the revocation stays pending, the turn ours
    // until its grace ends (long after this donation).
    d.disabled.store(1, Ordering::Release);
    let end = d.slice_end_ns.load(Ordering::Acquire);
    while d.events.load(Ordering::Acquire) & events::REVOCATION_PENDING == 0
        && sys::now_ns() < end + TOLD_WITHIN_NS
    {
        core::hint::spin_loop();
    }
    d.events
        .fetch_and(!events::REVOCATION_PENDING, Ordering::AcqRel);
    TOLD_DONOR[core].store(NO_ENV, Ordering::Relaxed);
    // Resumed (enabled again) at a later entry.
    let taken = donate(core, id).is_ok();
    d.disabled.store(0, Ordering::Release);
    taken && TOLD_DONOR[core].load(Ordering::Relaxed) == id
}

fn last_upcall(core: usize) -> (u64, u64) {
    (
        LAST_REASON[core].load(Ordering::Relaxed),
        LAST_ARG[core].load(Ordering::Relaxed),
    )
}

/// Whether this environment is a cycle partner: it held no slot when it
/// first ran (the experiment grants the root its slots before it starts;
/// a child has none).
pub fn is_child() -> bool {
    match ROLE.load(Ordering::Acquire) {
        ROOT => false,
        CHILD => true,
        _ => {
            let (me, _) = sys::self_info();
            let held = sys::account(me as usize & 0xff)
                .slots_held
                .load(Ordering::Acquire);
            let role = if held > 0 { ROOT } else { CHILD };
            let _ = ROLE.compare_exchange(0, role, Ordering::AcqRel, Ordering::Acquire);
            ROLE.load(Ordering::Acquire) == CHILD
        }
    }
}

/// A cycle partner's every upcall: carry on through any revocation and
/// donate the turn back, to the donor or else the turn's slot owner.
pub fn partner(core: usize, reason: u64, arg: u64) -> ! {
    let d = sys::dispatch(core);
    let to = if reason == UpcallReason::Donated as u64 {
        arg as u32
    } else {
        let slices = sys::core_slices(core);
        let slot = slices.current_slot.load(Ordering::Acquire) as usize;
        slices.owners[slot % slices.owners.len()].load(Ordering::Acquire)
    };
    loop {
        d.events
            .fetch_and(!events::REVOCATION_PENDING, Ordering::AcqRel);
        d.disabled.store(0, Ordering::Release);
        let mut x = 0u64;
        for _ in 0..PARTNER_WORK {
            x = core::hint::black_box(x.wrapping_add(1));
        }
        let _ = sys::yield_to(Some(to), false);
        // Refused (the donor runs elsewhere now, or is gone): give up.
        let _ = sys::yield_to(None, false);
    }
}

/// Whether a random call's first argument could name a child a sequence
/// is checking (or one being spawned, not yet recorded).
pub fn in_sequence(arg0: u64) -> bool {
    SPAWNING.load(Ordering::SeqCst) > 0
        || u32::try_from(arg0)
            .is_ok_and(|id| RESERVED.iter().any(|r| r.load(Ordering::SeqCst) == id))
}

/// Whether `spawn(index, ..)` could load a program (all could, until
/// they are counted).
pub fn may_name_a_program(index: u64) -> bool {
    let programs = PROGRAMS.load(Ordering::Relaxed);
    programs == 0 || index < programs
}

/// `spawn(index, quota)` with the child recorded for this core's sequence.
fn spawn_reserved(core: usize, index: u64, quota: u64) -> Result<u32, Error> {
    SPAWNING.fetch_add(1, Ordering::SeqCst);
    // SAFETY: spawn takes plain integers the kernel validates.
    let (rax, _) = unsafe { sys::raw(Syscall::Spawn as u64, [index, quota, 0, 0, 0, 0]) };
    let r = Error::decode(rax).map(|id| id as u32);
    if let Ok(id) = r {
        RESERVED[core].store(id, Ordering::SeqCst);
    }
    SPAWNING.fetch_sub(1, Ordering::SeqCst);
    r
}

fn release(core: usize) {
    RESERVED[core].store(NO_ENV, Ordering::SeqCst);
}

fn account_of(id: u32) -> &'static libos::abi::shared::EnvAccount {
    sys::account(id as usize & 0xff)
}

/// Donates this turn to `id`, saving this context: whether it was taken
/// (then this returns at a later entry), else the error.
fn donate(core: usize, id: u32) -> Result<(), Error> {
    LAST_REASON[core].store(u64::MAX, Ordering::Relaxed);
    sys::yield_to(Some(id), true).map(|_| ())
}

/// Whether this context was resumed by exactly one upcall since `before`
/// (`UPCALLS`), a donation from `id`: not by a later turn's prologue
/// after others, nor by the kernel resuming a context it kept from a
/// repossession while disabled (no upcall at all; then the last one noted
/// is an older turn's).
fn handed_back_by(core: usize, id: u32, before: u64) -> bool {
    UPCALLS[core].load(Ordering::Relaxed) == before + 1
        && last_upcall(core) == (UpcallReason::Donated as u64, u64::from(id))
}

/// Counts programs and finds the cycles' partner (see the module's docs).
/// Run once, by the root, on one core.
pub fn probe(core: usize) {
    let programs = count_programs(core);
    let mut partner = NONE;
    for index in 0..programs {
        let Ok(id) = spawn_reserved(core, index, 0) else {
            continue;
        };
        let hands_back = hands_back_when_told(core, id);
        let _ = sys::kill(id);
        release(core);
        if hands_back {
            partner = index;
            break;
        }
    }
    PROGRAMS.store(programs, Ordering::Release);
    PARTNER.store(partner, Ordering::Release);
    report!(
        "\"kind\":\"fuzz_probe\",\"programs\":{programs},\"partner\":{}",
        partner as i64
    );
}

/// The first program index `spawn` refuses (`BadArgument`), by bisection:
/// a refused index costs nothing, a loaded program milliseconds.
fn count_programs(core: usize) -> u64 {
    let (mut loads, mut refused) = (0, MAX_PROGRAMS);
    while loads < refused {
        let mid = (loads + refused) / 2;
        match spawn_reserved(core, mid, 0) {
            Err(Error::BadArgument) => refused = mid,
            Ok(id) => {
                let _ = sys::kill(id);
                release(core);
                loads = mid + 1;
            }
            // A program there, not loadable now (memory, table).
            Err(_) => loads = mid + 1,
        }
    }
    loads
}

/// After a kill: nothing answers to `id` any more, and no core's slice
/// vector names it (its slots are freed before `kill` returns, on every
/// core, whatever it was doing: issue 14, hole 9).
fn check_gone(op: Op, id: u32) {
    expect(op, sys::kill(id), Err(Error::BadEnv));
    expect(op, sys::yield_to(Some(id), true), Err(Error::BadEnv));
    let info = sys::sysinfo();
    for c in 0..info.cores as usize {
        let owners = &sys::core_slices(c).owners;
        for (slot, owner) in owners.iter().take(info.slots as usize).enumerate() {
            if owner.load(Ordering::Acquire) == id {
                violation(op, slot as u64);
            }
        }
    }
}

/// A child spawned (a program index past the last, or a quota past
/// `u32`, refused), run half the time, killed, and gone.
pub fn spawn_kill(core: usize, rng: &mut Rng) {
    const OP: Op = Op::SpawnKill;
    let programs = PROGRAMS.load(Ordering::Acquire);
    if programs == 0 {
        return;
    }
    let index = rng.below(programs + 2);
    let quota = match rng.below(4) {
        0 => 0,
        1 => 1 + rng.below(4),
        2 => u64::from(u32::MAX),
        _ => (1 << 32) + rng.below(1 << 20),
    };
    let refused = index >= programs || quota > u64::from(u32::MAX);
    let id = match spawn_reserved(core, index, quota) {
        Err(Error::BadArgument) if refused => {
            ran(OP);
            return;
        }
        Ok(id) if refused => {
            violation(OP, 0);
            let _ = sys::kill(id);
            release(core);
            return;
        }
        // The environment table or memory is full: an answer the ABI allows.
        Err(Error::Exhausted) if !refused => return,
        Err(e) => {
            violation(OP, e as u64);
            return;
        }
        Ok(id) => id,
    };
    if account_of(id).env.load(Ordering::Acquire) != id {
        violation(OP, u64::from(id));
    }
    let run = rng.below(2) == 0;
    if run {
        // A fresh child is runnable; it runs nowhere unless another
        // program donated to it (a `donor` child of a sequence elsewhere
        // donates to every environment), which its account shows.
        match donate(core, id) {
            Ok(()) => {
                tally::CHILDREN_RUN.fetch_add(1, Ordering::Relaxed);
            }
            Err(Error::BadEnv) if account_of(id).donations_received.load(Ordering::Acquire) > 0 => {
            }
            Err(e) => violation(OP, e as u64),
        }
    }
    match sys::kill(id) {
        Ok(_) => {}
        // Once run, it may have ended itself.
        Err(Error::BadEnv) if run => {}
        Err(e) => violation(OP, e as u64),
    }
    check_gone(OP, id);
    release(core);
    ran(OP);
}

/// Donations back and forth with a partner child until the turn ends
/// (see the module's docs); the partner killed and gone after.
pub fn donation_cycle(core: usize) {
    const OP: Op = Op::Cycle;
    let partner = PARTNER.load(Ordering::Acquire);
    if partner == NONE {
        return;
    }
    let id = match spawn_reserved(core, partner, 0) {
        Ok(id) => id,
        Err(Error::Exhausted) => return,
        Err(e) => {
            violation(OP, e as u64);
            return;
        }
    };
    let (me, _) = sys::self_info();
    let slices = sys::core_slices(core);
    let d = sys::dispatch(core);
    let turn = slices.turn_started_ns.load(Ordering::Acquire);
    let end = d.slice_end_ns.load(Ordering::Acquire);
    let grace_end = d.grace_end_ns.load(Ordering::Acquire);
    // Grace given again (a vCPU the host descheduled: see the kernel's
    // `sched`) moves the turn's end legitimately: no deadline is checked
    // across one.
    let renewals = || {
        account_of(me).grace_renewals.load(Ordering::Acquire)
            + account_of(id).grace_renewals.load(Ordering::Acquire)
    };
    let renewals_before = renewals();
    let (mut donations, mut hops) = (0u64, 0u64);
    while hops < MAX_HOPS {
        let upcalls = UPCALLS[core].load(Ordering::Relaxed);
        match donate(core, id) {
            Ok(()) => donations += 1,
            // Another program donated to it and it runs elsewhere.
            Err(Error::BadEnv)
                if account_of(id).donations_received.load(Ordering::Acquire) > donations =>
            {
                break
            }
            Err(e) => {
                violation(OP, e as u64);
                break;
            }
        }
        if !handed_back_by(core, id, upcalls)
            || slices.turn_started_ns.load(Ordering::Acquire) != turn
        {
            // The turn ended (resumed at a later one).
            tally::CYCLES_CUT.fetch_add(1, Ordering::Relaxed);
            break;
        }
        hops += 1;
        tally::CYCLE_HOPS.fetch_add(1, Ordering::Relaxed);
        if renewals() == renewals_before {
            // Handed back the rest of this turn, deadline and all, and
            // entered by the donation before the turn's grace end.
            let (now_end, now_grace_end) = (
                d.slice_end_ns.load(Ordering::Acquire),
                d.grace_end_ns.load(Ordering::Acquire),
            );
            let run_started = d.run_started_ns.load(Ordering::Acquire);
            let moved = (now_end, now_grace_end) != (end, grace_end);
            let late = run_started > grace_end;
            if moved {
                violation(OP, 1);
            }
            if late {
                violation(OP, 2);
            }
            if moved || late {
                // What was seen, for the report (rare: a few in 90,000 hops).
                let slot = slices.current_slot.load(Ordering::Acquire) as usize;
                report!(
                    "\"kind\":\"fuzz_cycle_violation\",\"core\":{core},\"hop\":{hops},\"turn_started_ns\":{turn},\"end\":[{end},{now_end}],\"grace_end\":[{grace_end},{now_grace_end}],\"run_started_ns\":{run_started},\"now_ns\":{},\"events\":{},\"slot\":{slot},\"slot_owner\":{},\"partner_turns\":{},\"partner_repossessions\":{}",
                    sys::now_ns(),
                    d.events.load(Ordering::Acquire),
                    slices.owners[slot % slices.owners.len()].load(Ordering::Acquire),
                    account_of(id).turns.load(Ordering::Acquire),
                    account_of(id).repossessions.load(Ordering::Acquire),
                );
            }
        }
    }
    // Every donation is on the partner's account, and so is its CPU time.
    let account = account_of(id);
    if account.donations_received.load(Ordering::Acquire) < donations {
        violation(OP, 3);
    }
    if account.donations_given.load(Ordering::Acquire) < hops {
        violation(OP, 4);
    }
    if hops > 0 && account.cpu_ns[core].load(Ordering::Acquire) == 0 {
        violation(OP, 5);
    }
    expect(OP, sys::kill(id), Ok(()));
    check_gone(OP, id);
    release(core);
    if donations > 0 {
        ran(OP);
    }
}
