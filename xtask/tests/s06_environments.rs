//! Layer 6: the CPU interface with real ring-3 programs (workloads/).
//! Each experiment runs well-behaved and hostile environments side by side;
//! the kernel checks shares and accounting, and these tests also assert on
//! what the environments themselves reported.
mod common;
use abi::record::RecordKind;
use common::*;
use serde_json::Value;
use xtask::{Accel, RunOutcome};

/// Slices of 10 ms with a 3 ms grace: roomy enough that a cooperative
/// libOS on an emulated, oversubscribed 2-core host yields in time.
const TIMING: &str = "slice_us=10000";
const GRACE: &str = "grace_us=3000";

fn experiment(name: &str, cpus: u32, run_ms: u32) -> RunOutcome {
    experiment_with_grace(name, cpus, run_ms, GRACE)
}

fn experiment_with_grace(name: &str, cpus: u32, run_ms: u32, grace: &str) -> RunOutcome {
    let run = format!("run_ms={run_ms}");
    let test = format!("test={name}");
    boot_det(
        &format!("env-{name}-{cpus}"),
        cpus,
        "pc",
        &[],
        &[&test, &run, TIMING, grace],
    )
}

fn reports<'a>(out: &'a RunOutcome, kind: &'a str) -> Vec<&'a Value> {
    out.records
        .of(RecordKind::User)
        .filter(|r| r["kind"] == kind)
        .collect()
}

fn env_stats<'a>(out: &'a RunOutcome, name: &str) -> &'a Value {
    out.records
        .of(RecordKind::EnvStats)
        .find(|e| e["name"] == name)
        .unwrap_or_else(|| panic!("no env_stats for {name}:\n{}", tail(&out.console)))
}

#[test]
fn prologue_and_epilogue_on_every_core() {
    // Four vCPUs on the 2-core host: one descheduled in its epilogue was
    // seen to overrun a 3 ms grace by up to 4.5 ms, up to 13 times in 604
    // turns (the check allows 12), so this one gets 8 ms.
    let out = experiment_with_grace("revocation", 4, 1500, "grace_us=8000");
    assert_checks_pass(&out);
    let spins = reports(&out, "spin");
    assert_eq!(
        spins.len(),
        4,
        "one report per core:\n{}",
        tail(&out.console)
    );
    for r in spins {
        assert!(r["epilogues"].as_u64().unwrap() >= 10, "{r}");
        assert_eq!(r["context_intact"], true, "{r}");
    }
}

#[test]
fn ignoring_revocation_gets_repossessed_and_charged() {
    let out = experiment("abort", 4, 1500);
    assert_checks_pass(&out);
    let hog = env_stats(&out, "hog");
    assert!(hog["repossessions"].as_u64().unwrap() > 20, "{hog}");
    let events: Vec<_> = out
        .records
        .of(RecordKind::Event)
        .filter(|e| e["event"] == "repossession")
        .collect();
    assert!(!events.is_empty());
    // Repossessed at the end of the grace period: the typical (median)
    // overrun is within grace plus one slice. Single events can be later
    // when the host deschedules a vCPU, so the bound is on the median.
    let mut overruns: Vec<u64> = events
        .iter()
        .map(|e| e["overrun_ns"].as_u64().unwrap())
        .collect();
    overruns.sort_unstable();
    let median = overruns[overruns.len() / 2];
    assert!(
        median >= 3_000_000,
        "repossessed before the grace period ended: median overrun {median} ns"
    );
    assert!(
        median < 3_000_000 + 10_000_000,
        "median overrun {median} ns; all: {overruns:?}"
    );
}

#[test]
fn critical_section_defers_but_cannot_extend_past_grace() {
    let out = experiment("critical", 2, 1500);
    assert_checks_pass(&out);
    assert!(
        env_stats(&out, "critical")["repossessions"]
            .as_u64()
            .unwrap()
            > 10
    );
}

#[test]
fn spinning_epilogue_is_aborted() {
    let out = experiment("epilogue", 2, 1500);
    assert_checks_pass(&out);
    assert!(
        env_stats(&out, "epilogue_spin")["repossessions"]
            .as_u64()
            .unwrap()
            > 10
    );
}

#[test]
fn a_resume_range_over_a_loop_does_not_keep_the_core() {
    let out = experiment("resume_hog", 2, 1500);
    assert_checks_pass(&out);
    assert!(
        env_stats(&out, "resume_hog")["repossessions"]
            .as_u64()
            .unwrap()
            > 10
    );
    // Taken in its resume range with its flag clear, it is resumed with the
    // flag clear (forcing it set would leave the thread being entered
    // running disabled: seen as a thread running uncharged in s07's swap).
    let r = reports(&out, "resume_hog");
    assert!(!r.is_empty(), "{}", tail(&out.console));
    for x in r {
        assert_eq!(x["flag_seen_set"], 0, "resumed with its flag set: {x}");
    }
}

#[test]
fn prologue_repossessed_before_it_resumes_loses_no_context() {
    // The prologue told to resume a repossessed worker is itself
    // repossessed (disabled) first: the kernel must keep both contexts.
    let out = experiment("slow_prologue", 2, 2000);
    assert_checks_pass(&out);
    let all = reports(&out, "slow_prologue");
    for core in 0..2 {
        let last = all
            .iter()
            .rfind(|r| r["core"] == core)
            .unwrap_or_else(|| panic!("no report from core {core}:\n{}", tail(&out.console)));
        assert_eq!(last["restarts"], 0, "the worker lost its context: {last}");
        assert_eq!(last["context_intact"], true, "{last}");
        assert!(
            last["prologues_resumed_disabled"].as_u64().unwrap() >= 3,
            "the prologue was not repossessed as intended: {last}"
        );
    }
}

#[test]
fn registers_and_sse_state_survive_repossession() {
    let out = experiment("fpu", 2, 2000);
    assert_checks_pass(&out);
    let fpu = reports(&out, "fpu");
    assert_eq!(fpu.len(), 2, "{}", tail(&out.console));
    for r in fpu {
        assert_eq!(r["ok"], true, "{r}");
        assert!(r["repossessed"].as_u64().unwrap() >= 10, "{r}");
    }
}

#[test]
fn directed_yield_moves_time_and_accounting() {
    let out = experiment("donate", 2, 1500);
    assert_checks_pass(&out);
    let donor = env_stats(&out, "donor");
    let spin = env_stats(&out, "spin");
    assert_eq!(donor["donations_given"], spin["donations_received"]);
    // The slot is charged to its owner, the CPU time to whoever ran.
    let donor_cpu: u64 = donor["cpu_ns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap())
        .sum();
    let spin_cpu: u64 = spin["cpu_ns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap())
        .sum();
    assert!(
        spin_cpu > 10 * donor_cpu,
        "spin {spin_cpu} donor {donor_cpu}"
    );
}

#[test]
fn predicate_wakes_sleeper_within_a_slot_and_sleep_is_free() {
    let out = experiment("sleep", 2, 2000);
    assert_checks_pass(&out);
    let last = reports(&out, "sleeper")
        .into_iter()
        .last()
        .unwrap_or_else(|| panic!("{}", tail(&out.console)));
    assert!(last["wakeups"].as_u64().unwrap() >= 30, "{last}");
    // Evaluation cost is bounded by the verifier and measured by the kernel.
    let end = out.records.first(RecordKind::End).unwrap();
    assert!(end["predicate_evals"].as_u64().unwrap() > 0, "{end}");
    assert!(end.get("predicate_eval_ns_mean").is_some(), "{end}");
    // Within one slot (10 ms) of its condition becoming true, on average
    // (a descheduled vCPU on the host can delay a single wakeup further).
    assert!(
        last["mean_late_ns"].as_u64().unwrap() < 10_000_000,
        "{last}"
    );
}

#[test]
fn faults_reach_the_exception_upcall_and_a_fault_in_it_kills_only_that_env() {
    let out = experiment("user_fault", 2, 1500);
    assert_checks_pass(&out);
    let vectors: Vec<u64> = reports(&out, "fault")
        .iter()
        .map(|r| r["vector"].as_u64().unwrap())
        .collect();
    for v in [6, 14, 0, 13, 3] {
        assert!(
            vectors.contains(&v),
            "vector {v} not reflected: {vectors:?}"
        );
    }
    assert_eq!(reports(&out, "faults_survived").len(), 1);
    let killed: Vec<_> = out
        .records
        .of(RecordKind::Event)
        .filter(|e| e["event"] == "killed")
        .collect();
    assert_eq!(killed.len(), 1);
    assert_eq!(killed[0]["reason"], "fault while disabled");
}

#[test]
fn a_reflected_fault_resumes_every_register_exactly() {
    let out = experiment("fault_regs", 2, 1500);
    assert_checks_pass(&out);
    let r = reports(&out, "fault_regs");
    assert_eq!(r.len(), 1, "{}", tail(&out.console));
    assert_eq!(
        r[0]["ok"], true,
        "a register changed across a fault: {}",
        r[0]
    );
    // Three faults a round, every one handled.
    let rounds = r[0]["rounds"].as_u64().unwrap();
    assert!(rounds >= 1000, "{}", r[0]);
    assert!(r[0]["faults"].as_u64().unwrap() >= 3 * rounds, "{}", r[0]);
    let killed = out
        .records
        .of(RecordKind::Event)
        .filter(|e| e["event"] == "killed")
        .count();
    assert_eq!(killed, 0, "{}", tail(&out.console));
}

#[test]
fn wild_syscall_arguments_get_errors_and_hurt_nobody() {
    let out = experiment("badargs", 2, 1200);
    assert_checks_pass(&out);
    let calls = reports(&out, "badargs");
    assert!(calls.len() >= 25, "{}", tail(&out.console));
    for c in calls {
        assert_eq!(c["ok"], true, "{c}");
    }
    assert_eq!(reports(&out, "badargs_done")[0]["all_ok"], true);
}

#[test]
fn environment_on_eight_cores_torn_down_while_running_releases_everything() {
    assert_checks_pass(&experiment("teardown", 8, 800));
}

#[test]
fn unowned_time_goes_to_the_default_environment() {
    assert_checks_pass(&experiment("unowned", 2, 1500));
}

#[test]
fn repeat_offender_loses_its_slots_and_others_keep_their_share() {
    let out = experiment("offender", 2, 1500);
    assert_checks_pass(&out);
    let revoked = out
        .records
        .of(RecordKind::Event)
        .filter(|e| e["event"] == "repossession" && e["slot_revoked"] == true)
        .count();
    assert_eq!(revoked, 4, "two slots on each of two cores");
}

#[test]
fn experiments_also_hold_under_kvm() {
    if !kvm() {
        return;
    }
    // `abort` is asserted under TCG only: here the well-behaved program is
    // itself repossessed now and then when the host deschedules its vCPU,
    // and the (correct) charge-back pushes its share below the 2% bound.
    for name in ["revocation", "fpu", "donate", "teardown"] {
        let test = format!("test={name}");
        // KVM here is PVM (every kernel entry costs milliseconds) on 2 host
        // cores: with an 8 ms grace the cooperative program's epilogue
        // overran 1 to 12 times in ~345 turns (the check allows 6), so the
        // grace period is sized for that (the mechanism under test is the
        // same).
        let out = boot(
            &format!("env-kvm-{name}"),
            2,
            Accel::Kvm,
            "microvm",
            &[],
            &[&test, "run_ms=1500", TIMING, "grace_us=20000"],
        );
        assert_checks_pass(&out);
        // KVM's steal-time clock is registered on every core (PVM offers
        // it), so graces are extended by what the host takes.
        let boot = out.records.first(RecordKind::Boot).expect("a boot record");
        assert_eq!(boot["steal_time"], true, "{boot}");
    }
}

#[test]
fn the_libos_slice_manager_acquires_slots_on_every_core() {
    let out = experiment("grow", 2, 1000);
    assert_checks_pass(&out);
    let r = out
        .records
        .of(RecordKind::User)
        .find(|r| r["kind"] == "grow")
        .unwrap();
    assert_eq!(r["ok"], true, "{r}");
}

#[test]
fn per_turn_overhead_is_measured_without_bias() {
    // Deterministic: the loop's rate is exact, so across 10 ms slices it
    // can only be slower than bare, by the turns' cost (~1,700
    // instructions each: 0.14% of a slice). The `overhead` program once
    // ran its bare windows on a longer copy of the loop and read −0.13%.
    let out = experiment_with_grace("overhead", 1, 3000, "grace_us=2000");
    let r = reports(&out, "bench_overhead");
    let r = r
        .first()
        .unwrap_or_else(|| panic!("no report:\n{}", tail(&out.console)));
    let overhead = r["overhead"].as_f64().unwrap();
    assert!(
        (0.0..0.01).contains(&overhead),
        "overhead {overhead} outside [0, 1%) at 10 ms slices: {r}"
    );
}
