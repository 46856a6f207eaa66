//! Layer 12: the hostile-libOS suite on 4 and 8 cores (20 ms slices, 15 ms
//! grace: sized for 8 emulated vCPUs on a 2-core host). Each experiment runs
//! a well-behaved environment (`spin`) beside a hostile one on every core;
//! the kernel checks that the hostile one was repossessed, got errors or
//! exception upcalls, or was killed with a logged reason, that `spin` kept
//! its share to 2%, and (as in every run) that its own invariants held:
//! time conserved, every frame and slot of every dead environment returned.
//! Layers 6 and 9 assert the finer points of each on fewer cores.
mod common;
use abi::record::RecordKind;
use common::*;
use xtask::{Accel, RunOutcome};

fn hostile(name: &str, cpus: u32, run_ms: u32) -> RunOutcome {
    hostile_run(name, cpus, run_ms, false)
}

/// [`hostile`], deterministic (TCG with `-icount`): for the experiments
/// whose checks bound time (overrun against the grace period), which only
/// virtual time measures exactly on this host.
fn hostile_det(name: &str, cpus: u32, run_ms: u32) -> RunOutcome {
    hostile_run(name, cpus, run_ms, true)
}

fn hostile_run(name: &str, cpus: u32, run_ms: u32, det: bool) -> RunOutcome {
    let opts = options(
        &format!("hostile-{name}-{cpus}{}", if det { "-det" } else { "" }),
        cpus,
        Accel::Tcg,
        "pc",
        &[],
        &[
            &format!("test={name}"),
            &format!("run_ms={run_ms}"),
            // 8 vCPUs on a 2-core host: a vCPU can wait tens of ms for the
            // host, so a cooperative libOS gets a grace it can meet there.
            "slice_us=20000",
            "grace_us=15000",
        ],
    );
    // One thread runs every vCPU in a deterministic run: 8 of them take
    // minutes of a loaded 2-core host for a second or two of virtual time.
    let timeout = if det {
        std::time::Duration::from_secs(300)
    } else {
        opts.timeout
    };
    let out = run(&xtask::RunOptions {
        det,
        timeout,
        ..opts
    });
    assert_checks_pass(&out);
    assert!(!out.console.contains("PANIC"), "{}", tail(&out.console));
    let invariants = checks_named(&out, "time_conserved");
    assert_eq!(invariants.len(), 1, "the kernel audited its time ledger");
    out
}

fn on_4_and_8(name: &str, run_ms: u32, also: impl Fn(&RunOutcome, u32)) {
    for cpus in [4, 8] {
        let out = hostile(name, cpus, run_ms);
        also(&out, cpus);
    }
}

fn on_4_and_8_det(name: &str, run_ms: u32, also: impl Fn(&RunOutcome, u32)) {
    for cpus in [4, 8] {
        let out = hostile_det(name, cpus, run_ms);
        also(&out, cpus);
    }
}

/// The `env_stats` field `field` of environment `env`.
fn env_stat(out: &RunOutcome, env: &str, field: &str) -> u64 {
    out.records
        .of(RecordKind::EnvStats)
        .find(|e| e["name"] == env)
        .and_then(|e| e[field].as_u64())
        .unwrap_or_else(|| panic!("no {field} for {env}:\n{}", tail(&out.console)))
}

/// The one `user` report of `kind` the run must have made.
fn one_report<'a>(out: &'a RunOutcome, kind: &str) -> &'a serde_json::Value {
    let found: Vec<_> = out
        .records
        .of(RecordKind::User)
        .filter(|r| r["kind"] == kind)
        .collect();
    assert_eq!(found.len(), 1, "{kind} reports: {}", tail(&out.console));
    found[0]
}

fn repossessions(out: &RunOutcome, env: &str) -> u64 {
    env_stat(out, env, "repossessions")
}

#[test]
fn never_yielding_is_repossessed_on_every_core() {
    on_4_and_8("abort", 3000, |out, cpus| {
        assert!(repossessions(out, "hog") >= 2 * u64::from(cpus));
    });
}

#[test]
fn a_critical_section_held_for_ever_is_cut_at_grace() {
    on_4_and_8("critical", 3000, |out, cpus| {
        assert!(repossessions(out, "critical") >= 2 * u64::from(cpus));
    });
}

#[test]
fn spinning_in_the_epilogue_is_cut_at_grace() {
    on_4_and_8("epilogue", 3000, |out, cpus| {
        assert!(repossessions(out, "epilogue_spin") >= 2 * u64::from(cpus));
    });
}

#[test]
fn a_resume_range_over_a_loop_is_cut_at_grace() {
    on_4_and_8("resume_hog", 3000, |out, cpus| {
        assert!(repossessions(out, "resume_hog") >= 2 * u64::from(cpus));
    });
}

#[test]
fn faults_of_every_kind_reach_the_upcall_or_kill_only_the_faulter() {
    on_4_and_8("user_fault", 3000, |out, _| {
        let killed: Vec<_> = out
            .records
            .of(RecordKind::Event)
            .filter(|e| e["event"] == "killed")
            .collect();
        assert_eq!(killed.len(), 1, "{killed:?}");
        assert_eq!(killed[0]["name"], "user_fault");
    });
}

#[test]
fn wild_arguments_to_every_syscall_get_errors() {
    on_4_and_8("badargs", 3000, |out, _| {
        let done = one_report(out, "badargs_done");
        assert_eq!(done["all_ok"], true);
    });
}

#[test]
fn garbage_in_shared_pages_hurts_nobody() {
    on_4_and_8("scribble", 3000, |_, _| {});
}

#[test]
fn a_repeat_offender_loses_its_slots_on_every_core() {
    on_4_and_8("offender", 3000, |out, cpus| {
        let revoked = out
            .records
            .of(RecordKind::Event)
            .filter(|e| e["event"] == "repossession" && e["slot_revoked"] == true)
            .count();
        assert_eq!(revoked, 2 * cpus as usize, "two slots on each core");
    });
}

#[test]
fn a_storm_of_creations_and_kills_returns_everything() {
    on_4_and_8("storm", 3000, |out, _| {
        let spawned = spawned(out);
        assert!(spawned > 50, "only {spawned} environments created");
    });
}

#[test]
fn syscall_fuzzing_on_every_core_hurts_nobody() {
    on_4_and_8("fuzz", 3000, |out, _| {
        let last = last_report(out, "fuzz");
        assert!(last["calls"].as_u64().unwrap() >= 50_000, "{last}");
    });
}

/// Issue 14, holes 2 and 4: a far jump to the 32-bit code selector (then
/// `syscall` from compatibility mode: ring 0 at CSTAR on the user stack)
/// and FS loaded with a data selector (base 0) on every core. The jump
/// faults in ring 3; the environments after it on each core still find
/// their dispatch page through FS.
#[test]
fn segment_games_hurt_nobody() {
    on_4_and_8("segments", 2000, |out, _| {
        let jumps = one_report(out, "segments_far_jump");
        assert_eq!(jumps["faulted"], 1, "the far jump was taken");
    });
}

/// Issue 14, hole 10: a `Log` whose text holds a record after a newline
/// (or mid-line) must not become a record the runner believes: the run's
/// checks stay the kernel's own.
#[test]
fn console_lines_cannot_forge_records() {
    on_4_and_8("forge", 1500, |out, _| {
        let forged = out
            .records
            .of(RecordKind::Check)
            .filter(|c| c["check"] == "forged")
            .count();
        assert_eq!(forged, 0, "a forged check record was believed");
        let done = one_report(out, "forger_done");
        assert_eq!(done["refused"], 3, "a log with a line break was accepted");
    });
}

/// Issue 14, hole 5: two environments donate a turn back and forth past
/// its end and never yield. A donation must not restart the turn: the
/// recipient inherits the donor's deadline, so the pair is repossessed at
/// the turn's grace end and charged; no turn runs past its end by more
/// than the grace uncharged (the kernel's `overrun_past_grace_charged`
/// check, a bound on the maximum), and `spin` keeps its share.
#[test]
fn donations_past_the_end_do_not_launder_overrun() {
    on_4_and_8_det("launder", 1500, |out, cpus| {
        let taken = repossessions(out, "launder") + repossessions(out, "launder_b");
        assert!(
            taken >= u64::from(cpus),
            "{taken} repossessions of the pair"
        );
    });
}

/// Issue 14, hole 8: `shed` frees the slot of its running turn and runs
/// over; `grab` allocates the slot meanwhile. With an offender limit of
/// one, `shed`'s overrun charged to the slot's new holder would cost
/// `grab` the slot: `grab` must lose nothing, forfeit nothing.
#[test]
fn overrun_is_charged_to_the_turns_owner() {
    on_4_and_8_det("shed", 1500, |out, _| {
        assert!(repossessions(out, "shed") > 0, "{}", tail(&out.console));
        assert_eq!(env_stat(out, "grab", "slots_revoked"), 0);
        assert_eq!(env_stat(out, "grab", "forfeits"), 0);
    });
}

/// Issue 14, hole 9: a parent kills its children while they allocate and
/// free slots on every core. An allocation that reached a core after the
/// teardown had freed that core's slots kept the slot for the dead child
/// for ever; the kernel must refuse it (its `no_slot_owned_by_the_dead`
/// check and the `exited_env_returns_slots` invariant at every reap), and
/// the parent must find no slot of a reaped child. Not a timing assertion
/// (who owns a slot, not when), so it runs like the other races here:
/// on real threads, where the cores overlap.
#[test]
fn a_slot_allocated_while_dying_is_not_kept() {
    // A spawn costs a hundred milliseconds or more here (the child's image
    // and heap; more on 8 cores), and each child is killed only once it
    // has run, which on a loaded host takes seconds: at least one child
    // killed while it allocates (seen in 4 s: 1 to 16, by host load). The
    // kernel's own forced interleaving (late_allocation_refused) does not
    // depend on the host.
    on_4_and_8("slotrace", 4000, |out, _| {
        let last = last_report(out, "slotrace");
        assert!(last["cycles"].as_u64().unwrap() >= 1, "{last}");
        assert_eq!(last["leaked_slots"], 0, "{last}");
    });
}

/// Issue 14, hole 10 (`sleep`): a `sleep` whose donation (to the caller's
/// `donate_to`) is refused returns the error and leaves the caller awake;
/// it was marked asleep first, and so skipped by the walk until its
/// predicate held, an hour later. Shares: deterministic.
#[test]
fn a_refused_sleep_leaves_the_caller_awake() {
    on_4_and_8_det("badsleep", 1000, |out, cpus| {
        let refused = out
            .records
            .of(RecordKind::User)
            .filter(|r| r["kind"] == "badsleep" && r["refused"] == true)
            .count();
        assert_eq!(refused, cpus as usize, "{}", tail(&out.console));
    });
}
