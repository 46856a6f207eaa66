//! A cooperative CPU-bound program: counts on every core, yields at every
//! epilogue, and reports per core once it has seen 20 prologues: its own
//! figures, and what its core's repossession vector shows of whom the
//! kernel took the core from (a cooperative program is never among them).
#![cfg_attr(target_os = "none", no_std, no_main)]

use core::sync::atomic::{AtomicU64, Ordering};

use abi::shared::REPOSSESSION_LOG_LEN;
use abi::syscall::NO_ENV;
use libos::{report, rt, sys, App, Epilogue};

static SHADOW: [[AtomicU64; 4]; rt::MAX_WORKERS] =
    [const { [const { AtomicU64::new(0) }; 4] }; rt::MAX_WORKERS];

fn worker(core: usize) -> ! {
    let mut state = [0u64; 4];
    let mut iterations = 0u64;
    let mut all_ok = true;
    let mut reported = false;
    loop {
        all_ok &= workloads::checked_step(&mut state, &SHADOW[core]);
        iterations += 1;
        let s = rt::stats(core);
        if !reported && s.prologues.load(Ordering::Relaxed) >= 20 {
            reported = true;
            report!(
                "\"kind\":\"spin\",\"core\":{core},\"prologues\":{},\"epilogues\":{},\"repossessed\":{},\"iterations\":{iterations},\"context_intact\":{all_ok}",
                s.prologues.load(Ordering::Relaxed),
                s.epilogues.load(Ordering::Relaxed),
                s.repossessed.load(Ordering::Relaxed)
            );
            report_repossession_vector(core);
        }
    }
}

/// Reports what `core`'s repossession vector holds: how many entries name
/// this environment (owner or runner), and of the others' the one owner
/// seen first, its entries' overrun range, how late after their grace's
/// end they were taken (the most) and how many before it, how many were
/// charged less than their overrun, causes (a bit per `RepossessionCause`), how many other owners there were, and entries
/// whose runner was not their owner.
fn report_repossession_vector(core: usize) {
    let (me, _) = sys::self_info();
    let log = sys::repossessions(core);
    // Read before the walk: nothing is repossessed on this core while its
    // own turn runs the walk, so the walk must find every one still kept.
    let written = log.written();
    let (mut read, mut own, mut ran_not_owner) = (0u32, 0u32, 0u32);
    let mut owners = [NO_ENV; REPOSSESSION_LOG_LEN];
    let mut distinct = 0;
    let (mut other, mut other_n, mut causes, mut renewed) = (NO_ENV, 0u32, 0u32, 0u32);
    // The other's entries not charged their whole overrun.
    let mut part_charged = 0u32;
    // The others' overrun range; the most any was taken after its grace
    // ended, and how many were taken before.
    let (mut min, mut max, mut max_late, mut early) = (u64::MAX, 0, 0, 0u32);
    for r in log.since(0) {
        read += 1;
        if r.owner == me || r.ran == me {
            own += 1;
            continue;
        }
        ran_not_owner += u32::from(r.ran != r.owner);
        if !owners[..distinct].contains(&r.owner) {
            owners[distinct] = r.owner;
            distinct += 1;
        }
        if other == NO_ENV {
            other = r.owner;
        }
        if r.owner == other {
            other_n += 1;
            min = min.min(r.overrun_ns);
            max = max.max(r.overrun_ns);
            max_late = max_late.max(r.time_ns.saturating_sub(r.grace_end_ns));
            early += u32::from(r.time_ns < r.grace_end_ns);
            renewed += u32::from(r.renewed_ns != 0);
            part_charged += u32::from(r.charged_ns != r.overrun_ns);
            causes |= 1 << r.cause.min(31);
        }
    }
    report!(
        "\"kind\":\"spin_repossessions\",\"core\":{core},\"me\":{me},\"written\":{written},\"read\":{read},\"own\":{own},\"other_owners\":{distinct},\"other\":{other},\"other_n\":{other_n},\"other_min_overrun_ns\":{min},\"other_max_overrun_ns\":{max},\"other_max_late_ns\":{max_late},\"other_early\":{early},\"other_renewed\":{renewed},\"other_part_charged\":{part_charged},\"other_causes\":{causes},\"ran_not_owner\":{ran_not_owner}",
    );
}

libos::program!(App {
    name: "spin",
    main: worker,
    epilogue: Epilogue::Cooperative,
    on_fault: None
});
