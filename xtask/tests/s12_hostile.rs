//! Layer 12: the hostile-libOS suite, deterministic, on 4 cores and for
//! the races that need them 8 (20 ms slices, 15 ms grace: sized when these
//! ran non-deterministically, 8 emulated vCPUs on a 2-core host). Each experiment runs
//! a well-behaved environment (`spin`) beside a hostile one on every core;
//! the kernel checks that the hostile one was repossessed, got errors or
//! exception upcalls, or was killed with a logged reason, that `spin` kept
//! its share to 2%, and (as in every run) that its own invariants held:
//! time conserved, every frame and slot of every dead environment returned.
//! Layers 6 and 9 assert the finer points of each on fewer cores.
mod common;
use abi::record::RecordKind;
use abi::shared::RepossessionCause;
use common::*;
use xtask::{Accel, RunOutcome};

/// A hostile experiment, deterministic (TCG with `-icount`): its checks
/// bound shares and overruns, which only virtual time measures exactly on
/// this host (non-deterministically, a loaded 2-core host gave `spin`
/// 0.42 of its 0.5 and failed correct kernels).
fn hostile(name: &str, cpus: u32, run_ms: u32) -> RunOutcome {
    hostile_run(name, cpus, run_ms, true)
}

fn hostile_run(name: &str, cpus: u32, run_ms: u32, det: bool) -> RunOutcome {
    let opts = options(
        &format!("hostile-{name}-{cpus}"),
        cpus,
        Accel::Tcg,
        "pc",
        &[],
        &[
            &format!("test={name}"),
            &format!("run_ms={run_ms}"),
            // Sized when these ran non-deterministically, 8 vCPUs on a
            // 2-core host; the mechanisms under test are the same.
            "slice_us=20000",
            "grace_us=15000",
        ],
    );
    let out = run(&if det { deterministic(opts) } else { opts });
    assert_checks_pass(&out);
    assert!(!out.console.contains("PANIC"), "{}", tail(&out.console));
    let invariants = checks_named(&out, "time_conserved");
    assert_eq!(invariants.len(), 1, "the kernel audited its time ledger");
    out
}

/// On 4 cores, then on 8. One host thread runs
/// every vCPU of a deterministic run, at 8-25 million guest instructions
/// a second here (the experiments' programs read the clock in their
/// loops, and under `-icount` each read ends a translation block), so a
/// virtual second on 8 cores costs about a minute: the 8-core runs are
/// kept for the experiments where more cores add a race (repossession on
/// every core at once, slot revocation, creation storms, fuzzing,
/// donation chains). Virtual time is exact, so a second or two bounds a
/// share as well as the 3 s these ran for non-deterministically; where
/// the hostile one overruns every turn, 1.5 s, as an overrun (up to the
/// 15 ms grace per core) is charged back only on its owner's next turns
/// (in 1 s, `spin` beside the laundering pair had 0.479 of its 0.5).
fn on_4_and_8(name: &str, run_ms: u32, also: impl Fn(&RunOutcome, u32)) {
    for cpus in [4, 8] {
        let out = hostile(name, cpus, run_ms);
        also(&out, cpus);
    }
}

/// How long the 4-core experiments whose hostile environment overruns
/// every turn run. `spin` misses a fixed ~30 ms per core whatever the
/// length (the hostile one's first turns and its overrun not yet charged
/// back at the end): measured beside `resume_hog` and `critical`, 0.4793
/// and 0.4799 of its 0.5 over 1.5 s (the 2% bound is 0.48, so any change
/// of a few instructions flipped them), 0.4899 and 0.4931 over 3 s.
const SHARE_RUN_MS: u32 = 3000;

/// On 4 cores only.
fn on_4(name: &str, run_ms: u32, also: impl Fn(&RunOutcome, u32)) {
    also(&hostile(name, 4, run_ms), 4);
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

/// The run's `killed` events.
fn killed(out: &RunOutcome) -> Vec<&serde_json::Value> {
    out.records
        .of(RecordKind::Event)
        .filter(|e| e["event"] == "killed")
        .collect()
}

/// Asserts that exactly one environment was killed in the run, `name`.
fn only_killed(out: &RunOutcome, name: &str) {
    let killed = killed(out);
    assert_eq!(killed.len(), 1, "{killed:?}");
    assert_eq!(killed[0]["name"], name);
}

fn repossessions(out: &RunOutcome, env: &str) -> u64 {
    env_stat(out, env, "repossessions")
}

/// The grace these runs give (`grace_us` above), and how late past its
/// end a repossession may come in virtual time (the kernel's own bound
/// for a late timer, `envtests::DELIVERY_SLACK_NS`).
const GRACE_NS: u64 = 15_000_000;
const DELIVERY_SLACK_NS: u64 = 2_000_000;

/// The exported repossession vector (issue 14, layout): `spin`, on every
/// core, read its core's vector after 20 prologues. Every entry it read
/// names `hostile` as the turn's owner and runner, never `spin`; each
/// overran by the grace at least, was charged its whole overrun, and was
/// taken no earlier than its grace's end (which runs from when the
/// revocation was told); each was taken for `cause`, and no later than
/// the delivery slack after its grace's end (grace's end is the renewed
/// one where the grace was given again). Deterministic, 4 cores beside
/// `hog`, before the kernel armed graces in interleave steps some were
/// taken 15.0 and 30.0 ms late (whole graces: every core was in its grace
/// at once and QEMU ran each vCPU to the next deadline, a grace away);
/// after, at most 0.14 ms on 4 cores and 0.26 ms on 8.
fn repossession_vector_names_only(
    out: &RunOutcome,
    cpus: u32,
    hostile: &str,
    causes: &[RepossessionCause],
) {
    let hostile_id = env_stat(out, hostile, "env");
    let spin_id = env_stat(out, "spin", "env");
    let seen: Vec<_> = out
        .records
        .of(RecordKind::User)
        .filter(|r| r["kind"] == "spin_repossessions")
        .collect();
    assert_eq!(
        seen.len(),
        cpus as usize,
        "one per core: {}",
        tail(&out.console)
    );
    let n = |r: &serde_json::Value, f: &str| r[f].as_u64().unwrap_or_else(|| panic!("{f}: {r}"));
    for r in seen {
        assert_eq!(n(r, "me"), spin_id, "{r}");
        assert_eq!(n(r, "own"), 0, "spin repossessed: {r}");
        assert_eq!(n(r, "other_owners"), 1, "{r}");
        assert_eq!(n(r, "other"), hostile_id, "{r}");
        assert_eq!(n(r, "ran_not_owner"), 0, "{r}");
        assert!(
            n(r, "other_n") >= 2 && n(r, "read") == n(r, "other_n"),
            "{r}"
        );
        // Every repossession the ring still keeps was read whole.
        assert_eq!(
            n(r, "read"),
            n(r, "written").min(abi::shared::REPOSSESSION_LOG_LEN as u64),
            "{r}"
        );
        assert!(
            n(r, "other_min_overrun_ns") >= GRACE_NS,
            "taken before its grace ended: {r}"
        );
        assert_eq!(n(r, "other_early"), 0, "taken before its grace ended: {r}");
        assert_eq!(n(r, "other_part_charged"), 0, "{r}");
        // Late past its grace end by at most a late timer's slack: before
        // the kernel armed a grace in interleave steps, a core whose grace
        // ended while every other core was in its own grace saw its timer
        // one whole grace late (15.0 ms on 4 cores, det).
        assert!(
            n(r, "other_max_late_ns") <= DELIVERY_SLACK_NS,
            "taken late: {r}"
        );
        // Every repossession had one of `causes`, and one at least did.
        let allowed = causes.iter().fold(0, |m, &c| m | 1 << c as u32);
        assert_eq!(n(r, "other_causes") & !allowed, 0, "{r}");
        assert_ne!(n(r, "other_causes") & allowed, 0, "{r}");
    }
}

#[test]
fn never_yielding_is_repossessed_on_every_core() {
    on_4_and_8("abort", 1500, |out, cpus| {
        assert!(repossessions(out, "hog") >= 2 * u64::from(cpus));
        repossession_vector_names_only(out, cpus, "hog", &[RepossessionCause::Grace]);
    });
}

/// A fault reflected to the environment's exception upcall stays inside
/// its turn: it must not move the turn's deadline. `fault_hog` takes a
/// breakpoint every ~0.5 ms, ignores revocation and never yields; it is
/// taken at each grace's end like `hog` (no later than a late timer's
/// slack, though some 30 faults were reflected in each grace), and `spin`
/// keeps its share. (Where the grace ends inside its handler, disabled,
/// the cause is `Disabled`.)
#[test]
fn faulting_for_ever_is_repossessed_at_grace() {
    on_4("fault_hog", SHARE_RUN_MS, |out, cpus| {
        assert!(repossessions(out, "fault_hog") >= 2 * u64::from(cpus));
        repossession_vector_names_only(
            out,
            cpus,
            "fault_hog",
            &[RepossessionCause::Grace, RepossessionCause::Disabled],
        );
    });
}

#[test]
fn a_critical_section_held_for_ever_is_cut_at_grace() {
    on_4("critical", SHARE_RUN_MS, |out, cpus| {
        assert!(repossessions(out, "critical") >= 2 * u64::from(cpus));
        repossession_vector_names_only(out, cpus, "critical", &[RepossessionCause::Disabled]);
    });
}

#[test]
fn spinning_in_the_epilogue_is_cut_at_grace() {
    on_4("epilogue", SHARE_RUN_MS, |out, cpus| {
        assert!(repossessions(out, "epilogue_spin") >= 2 * u64::from(cpus));
    });
}

#[test]
fn a_resume_range_over_a_loop_is_cut_at_grace() {
    on_4("resume_hog", SHARE_RUN_MS, |out, cpus| {
        assert!(repossessions(out, "resume_hog") >= 2 * u64::from(cpus));
    });
}

#[test]
fn faults_of_every_kind_reach_the_upcall_or_kill_only_the_faulter() {
    on_4("user_fault", 1000, |out, _| {
        only_killed(out, "user_fault");
    });
}

#[test]
fn wild_arguments_to_every_syscall_get_errors() {
    on_4("badargs", 1500, |out, _| {
        let done = one_report(out, "badargs_done");
        assert_eq!(done["all_ok"], true);
    });
}

#[test]
fn garbage_in_shared_pages_hurts_nobody() {
    on_4("scribble", 1000, |_, _| {});
}

/// Issue 14, hole 10: on every core, `ripflip` resumes a context from its
/// fault save area while its other cores flip that area's `rip` between a
/// user address and a non-canonical one. The kernel checks and resumes
/// one copy: every resume lands or is refused, nobody is killed, and the
/// kernel never faults. A second read of the page after the check hands
/// `iretq` the non-canonical `rip` now and then: a #GP in ring 0 on
/// hardware; under TCG, in ring 3 at that `rip`, and `ripflip` is killed
/// (as it was 106 ms into this run when `resume` was made to read `rip`
/// again after its check).
#[test]
fn a_save_area_rewritten_under_resume_is_checked_on_one_copy() {
    on_4("ripflip", 1000, |out, cpus| {
        let killed: Vec<_> = out
            .records
            .of(RecordKind::Event)
            .filter(|e| e["event"] == "killed")
            .collect();
        assert!(killed.is_empty(), "{killed:?}");
        // Per core, its last tally: both outcomes were seen, so the
        // kernel's reads met the other cores' writes.
        let mut last = vec![(0, 0); cpus as usize];
        for r in out.records.of(RecordKind::User) {
            if r["kind"] == "ripflip" {
                let core = r["core"].as_u64().unwrap() as usize;
                last[core] = (
                    r["landed"].as_u64().unwrap(),
                    r["refused"].as_u64().unwrap(),
                );
            }
            assert_ne!(r["kind"], "ripflip_unexpected", "{r}");
        }
        let (landed, refused) = last.iter().fold((0, 0), |(l, f), &(a, b)| (l + a, f + b));
        assert!(
            landed > 0 && refused > 0,
            "landed {landed}, refused {refused}: {last:?}"
        );
    });
}

#[test]
fn a_repeat_offender_loses_its_slots_on_every_core() {
    on_4_and_8("offender", 1500, |out, cpus| {
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
    on_4_and_8("storm", 2000, |out, _| {
        let spawned = spawned(out);
        assert!(spawned > 50, "only {spawned} environments created");
    });
}

#[test]
fn syscall_fuzzing_on_every_core_hurts_nobody() {
    on_4_and_8("fuzz", 1500, |out, _| {
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
    on_4("segments", 1000, |out, _| {
        let jumps = one_report(out, "segments_far_jump");
        assert_eq!(jumps["faulted"], 1, "the far jump was taken");
        // Hole 10 (`clac`): segments keeps RFLAGS.AC set on every core; no
        // interrupt from ring 3 may reach its handler with it set.
        let end = out.records.first(RecordKind::End).expect("an end record");
        assert_eq!(end["ac_at_entry"], 0, "handlers ran with AC set: {end}");
        // A breakpoint right after each FS load: every exception upcall
        // found FS at its dispatch page (or its handler faulted, disabled,
        // and the environment was killed before the 100th).
        let breakpoints = one_report(out, "segments_breakpoints");
        assert_eq!(breakpoints["count"], 100);
        assert_eq!(breakpoints["enabled_in_upcall"], 0, "an upcall ran enabled");
        assert!(killed(out).is_empty(), "{}", tail(&out.console));
    });
}

/// Issue 14, hole 10: a `Log` whose text holds a record after a newline
/// (or mid-line) must not become a record the runner believes: the run's
/// checks stay the kernel's own.
#[test]
fn console_lines_cannot_forge_records() {
    on_4("forge", 1000, |out, _| {
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
    on_4_and_8("launder", 1500, |out, cpus| {
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
    on_4("shed", 1500, |out, _| {
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
/// (who owns a slot, not when), so unlike the rest of this suite it runs
/// on real threads (non-deterministic TCG), where the cores overlap.
#[test]
fn a_slot_allocated_while_dying_is_not_kept() {
    // A spawn costs a hundred milliseconds or more here (the child's image
    // and heap; more on 8 cores), and each child is killed only once it
    // has run, which on a loaded host takes seconds (in 4 s: 1 to 16
    // cycles, by host load): the kernel ends the run only once a cycle has
    // been reported and no child is being torn down (its
    // `a_child_reaped_after_a_full_cycle`), so at least one child was
    // killed while it allocated, whatever the host. The kernel's own forced
    // interleaving (late_allocation_refused) does not depend on the host.
    for cpus in [4, 8] {
        let out = hostile_run("slotrace", cpus, 4000, false);
        let last = last_report(&out, "slotrace");
        assert!(last["cycles"].as_u64().unwrap() >= 1, "{last}");
        assert_eq!(last["leaked_slots"], 0, "{last}");
    }
}

/// Issue 14, hole 10 (`sleep`): a `sleep` whose donation (to the caller's
/// `donate_to`) is refused returns the error and leaves the caller awake;
/// it was marked asleep first, and so skipped by the walk until its
/// predicate held, an hour later. Shares: deterministic.
#[test]
fn a_refused_sleep_leaves_the_caller_awake() {
    on_4("badsleep", 1500, |out, cpus| {
        let refused = out
            .records
            .of(RecordKind::User)
            .filter(|r| r["kind"] == "badsleep" && r["refused"] == true)
            .count();
        assert_eq!(refused, cpus as usize, "{}", tail(&out.console));
    });
}

/// Issue 14, hole 1: a frame freed while still mapped goes back to the
/// allocator while its old owner keeps writing it (here it came back as
/// the owner's own page table); the frames the kernel installed (dispatch
/// pages it writes, upcall stacks, image, inbox) could be freed the same
/// way. A mapped frame is refused until its last mapping goes; a
/// kernel-installed one always.
#[test]
fn a_mapped_frame_cannot_be_freed() {
    on_4("free_mapped", 1000, |out, _| {
        let done = one_report(out, "free_mapped_done");
        assert_eq!(done["setup"], true, "{done}");
        assert_eq!(done["mapped_free"], "taken", "{done}");
        assert_eq!(done["pattern_kept"], true, "{done}");
        assert_eq!(done["table_entry_seen"], false, "{done}");
        assert_eq!(done["free_one_mapping_left"], "taken", "{done}");
        assert_eq!(done["free_no_mapping_left"], "ok", "{done}");
        assert_eq!(done["kernel_frames_freed"], 0, "{done}");
        // Image, arguments, inbox, and per core a dispatch page and an
        // 8-page upcall stack: more than 9 per core.
        let refused = done["kernel_frames_refused"].as_u64().unwrap();
        assert!(refused > 9 * 4, "{done}");
        assert_eq!(done["other_errors"], 0, "{done}");
        assert_eq!(done["free_after_unmap"], "ok", "{done}");
    });
}

/// Issue 14, hole 3: a user `jmp` to the syscall entry is completed as a
/// syscall (the nested-KVM fix-up) and returned from through RCX. With a
/// non-canonical RCX the return `iretq` faults in ring 0 on the user's GS
/// on hardware; TCG and this machine's PVM take the fault in ring 3 at the
/// target instead, so what is checked is that the kernel never returns to
/// such an RCX: the program dies of the fault at the entry itself (#PF),
/// not at the non-canonical address.
#[test]
fn a_jump_to_the_syscall_entry_cannot_return_anywhere() {
    on_4("syscall_jump", 1000, |out, _| {
        let fatal: Vec<_> = out
            .console
            .lines()
            .filter(|l| l.contains(" fault: #"))
            .collect();
        assert_eq!(fatal.len(), 1, "{}", tail(&out.console));
        assert!(
            fatal[0].contains("#PF at rip 0xffffffff"),
            "returned to a non-user RCX: {}",
            fatal[0]
        );
        let jump = one_report(out, "syscall_jump");
        assert_eq!(jump["entry_known"], true, "{jump}");
        assert_eq!(jump["jump_returned"], true, "{jump}");
        assert_eq!(jump["rax"], 0, "the null call's result: {jump}");
        let survived = out
            .records
            .of(RecordKind::User)
            .filter(|r| r["kind"] == "syscall_jump_survived")
            .count();
        assert_eq!(survived, 0, "{}", tail(&out.console));
        only_killed(out, "syscall_jump");
    });
}

/// Issue 14, hole 3's last part: an `iretq` back to ring 3 that faults
/// does so in ring 0, after `swapgs` loaded the user's GS; the kernel
/// used to read its per-core data through that GS and die (TCG: a #GP at
/// the `iretq`, then a #PF at the user GS base, a panic). `bad_iret` asks,
/// by a call only the `bad_iret` experiment honours, to be returned to by
/// an `iretq` with a null SS, eight times: each must reach it as its own
/// fault (eight faults; the last a #GP, error code 0, at a `rip` inside
/// the program: only the last is kept), from which it resumes with every
/// call's result 0; nobody is killed and the kernel logs each.
#[test]
fn a_faulting_return_to_ring_3_is_the_environments_fault() {
    on_4("bad_iret", 1000, |out, _| {
        let r = one_report(out, "bad_iret");
        assert_eq!(r["faults"], r["calls"], "{r}");
        assert_eq!(r["vector"], 13, "{r}");
        assert_eq!(r["error_code"], 0, "{r}");
        assert_eq!(r["rip_in_program"], true, "{r}");
        assert_eq!(r["results_ok"], true, "{r}");
        let logged = out
            .console
            .lines()
            .filter(|l| l.contains("return to ring 3 faulted: #GP"))
            .count();
        assert_eq!(
            logged as u64,
            r["calls"].as_u64().unwrap(),
            "{}",
            tail(&out.console)
        );
        assert!(killed(out).is_empty(), "{}", tail(&out.console));
    });
}

/// Issue 14, hole 3's fix-up, its other way out: `bad_iret_bare` has no
/// exception handler, so the #GP of the `iretq` returning to it is its
/// death — logged, only it killed, the call never returning to it, and
/// `spin` keeping its share on every core.
#[test]
fn a_faulting_return_to_ring_3_without_a_handler_kills_only_its_environment() {
    on_4("bad_iret_bare", 1000, |out, _| {
        one_report(out, "bad_iret_bare_calling");
        let survived = out
            .records
            .of(RecordKind::User)
            .filter(|r| r["kind"] == "bad_iret_bare_survived")
            .count();
        assert_eq!(survived, 0, "{}", tail(&out.console));
        only_killed(out, "bad_iret_bare");
        let killed = out
            .records
            .of(RecordKind::Event)
            .find(|e| e["event"] == "killed")
            .expect("one killed");
        assert_eq!(
            killed["reason"], "fault with no exception handler",
            "{killed}"
        );
        assert!(
            out.console.contains("return to ring 3 faulted: #GP"),
            "{}",
            tail(&out.console)
        );
    });
}

/// Issue 14, hole 6: a child could be given any slot quota (up to
/// u32::MAX) whatever its parent held, page tables built for an
/// environment's mappings were charged to nobody (one frame mapped every
/// 2 MiB: 4 KiB of table each, all of RAM in the end), and a child
/// outlived its parent with nobody able to kill it; a child's frames were
/// its own, whatever its parent had used. `hoarder` holds all its slot
/// quota, maps one frame 2000 times 2 MiB apart, spawns itself asking for
/// 1000 slots beside idle ones (the child takes every slot, every fresh
/// page `map_fresh` gives it and every frame it can), maps on to 5000
/// times, then exits.
#[test]
fn a_child_gets_only_what_its_parent_has_and_dies_with_it() {
    on_4("hoarder", 1000, |out, _| {
        let child = one_report(out, "hoarder_child");
        assert_eq!(child["slots_taken"], 0, "{child}");
        assert_eq!(child["first_error"], "quota_exceeded", "{child}");
        // Its parent had used about 2000 of its 4096 frames in page tables.
        let frames = child["frames_taken"].as_u64().unwrap();
        assert!((1000..2200).contains(&frames), "{child}");
        assert_eq!(child["frames_stopped_by"], "quota_exceeded", "{child}");
        assert_eq!(child["frames_freed"], true, "{child}");
        // Before those frames it took fresh pages, 16 a call, until its
        // parent's room stopped it, and gave them back: a call stopped
        // short charged its parent for what it mapped alone, so the frames
        // left after are as many (one more where the last page stopped
        // for a page table there was no room for).
        let fresh = child["fresh_pages"].as_u64().unwrap();
        assert_eq!(child["fresh_stopped_by"], "quota_exceeded", "{child}");
        assert_eq!(child["fresh_freed"], true, "{child}");
        assert!((fresh..=fresh + 1).contains(&frames), "{child}");
        // A call stopped short by a page in its way after 8 pages costs
        // its parent those 8 alone: the frames left are as before.
        assert_eq!(child["short_mapped"], 8, "{child}");
        assert!(
            child["frames_before_short"].as_u64().unwrap() > 1000,
            "{child}"
        );
        assert_eq!(
            child["frames_after_short"], child["frames_before_short"],
            "{child}"
        );
        let tables = one_report(out, "hoarder_tables");
        assert_eq!(tables["spawned_child"], true, "{tables}");
        let mapped = tables["mapped"].as_u64().unwrap();
        // Its frame quota (4096) holds the frame and the tables.
        assert!(mapped < 4096, "{tables}");
        assert_eq!(tables["stopped_by"], "quota_exceeded", "{tables}");
        assert_eq!(tables["unmapped"], mapped, "{tables}");
        assert_eq!(tables["freed"], "ok", "{tables}");
        let ended: Vec<_> = out
            .records
            .of(RecordKind::Event)
            .filter(|e| {
                e["name"] == "hoarder" && (e["event"] == "killed" || e["event"] == "exited")
            })
            .collect();
        assert_eq!(ended.len(), 2, "parent and child both end: {ended:?}");
        assert!(
            ended
                .iter()
                .any(|e| e["event"] == "killed" && e["reason"] == "its parent died"),
            "{ended:?}"
        );
    });
}
