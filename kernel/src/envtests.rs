//! Experiments with environments, selected by `test=<name>`: which
//! programs run, how many slots each holds on each core, and what must hold
//! at the end. The host suite boots each one and also asserts on the
//! environments' own `user` reports.

use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, Ordering};

use crate::arch::{mm, smp};
use crate::{env, record, sched};

/// One environment of an experiment.
#[derive(Clone, Copy)]
struct EnvSpec {
    program: &'static str,
    /// The environment's name (a program may run as several environments).
    name: &'static str,
    /// Slots on every core (interleaved with the others' slots).
    slots_per_core: usize,
    /// Launched with its own boot-module index as its arguments (a program
    /// that spawns copies of itself: the copies are launched with none).
    own_index_as_args: bool,
}

struct Experiment {
    name: &'static str,
    envs: &'static [EnvSpec],
    /// Unowned slots per core (after the owned ones).
    idle_slots: usize,
    /// The environment (by name) that receives unowned time.
    default_env: Option<&'static str>,
    /// Repeat-offender limit this experiment needs (the command line's wins
    /// when set).
    offender_limit: u32,
    finish: fn() -> bool,
    /// What must have happened before the run may end (see `run::start`).
    settled: fn() -> bool,
}

const fn spec(program: &'static str, slots_per_core: usize) -> EnvSpec {
    EnvSpec {
        program,
        name: program,
        slots_per_core,
        own_index_as_args: false,
    }
}

/// [`spec`] for a program that spawns copies of itself.
const fn self_spawning(program: &'static str, slots_per_core: usize) -> EnvSpec {
    EnvSpec {
        own_index_as_args: true,
        ..spec(program, slots_per_core)
    }
}

const fn plain(name: &'static str, envs: &'static [EnvSpec], finish: fn() -> bool) -> Experiment {
    Experiment {
        name,
        envs,
        idle_slots: 0,
        default_env: None,
        offender_limit: 0,
        finish,
        settled: on_time,
    }
}

/// The run ends when its time is up (every experiment but `slotrace`).
fn on_time() -> bool {
    true
}

static EXPERIMENTS: &[Experiment] = &[
    plain(
        "revocation",
        &[spec("spin", 4)],
        cooperative_never_repossessed,
    ),
    plain(
        "abort",
        &[spec("spin", 4), spec("hog", 4)],
        hostile_repossessed_others_keep_share,
    ),
    plain(
        "critical",
        &[spec("spin", 4), spec("critical", 4)],
        hostile_repossessed_others_keep_share,
    ),
    plain(
        "epilogue",
        &[spec("spin", 4), spec("epilogue_spin", 4)],
        hostile_repossessed_others_keep_share,
    ),
    plain(
        "resume_hog",
        &[spec("spin", 4), spec("resume_hog", 4)],
        hostile_repossessed_others_keep_share,
    ),
    plain(
        "fault_hog",
        &[spec("spin", 4), spec("fault_hog", 4)],
        hostile_repossessed_others_keep_share,
    ),
    plain(
        "slow_prologue",
        &[spec("slow_prologue", 2), spec("spin", 2)],
        others_keep_share,
    ),
    plain("fpu", &[spec("fpu", 2), spec("hog", 2)], hog_repossessed),
    plain(
        "donate",
        &[spec("donor", 4), spec("spin", 0)],
        donations_move_time,
    ),
    plain(
        "sleep",
        &[spec("sleeper", 4), spec("spin", 4)],
        sleepers_cost_nothing,
    ),
    plain(
        "user_fault",
        &[spec("user_fault", 2), spec("spin", 2)],
        others_keep_share,
    ),
    plain(
        "fault_regs",
        &[spec("fault_regs", 2), spec("spin", 2)],
        others_keep_share,
    ),
    plain(
        "badargs",
        &[spec("badargs", 2), spec("spin", 2)],
        others_keep_share,
    ),
    plain("teardown", &[spec("spin", 4)], teardown_releases_everything),
    plain(
        "sched_env",
        &[
            spec("sched_env", 4),
            EnvSpec {
                program: "spin",
                name: "client_a",
                slots_per_core: 0,
                own_index_as_args: false,
            },
            EnvSpec {
                program: "spin",
                name: "client_b",
                slots_per_core: 0,
                own_index_as_args: false,
            },
            EnvSpec {
                program: "spin",
                name: "client_c",
                slots_per_core: 0,
                own_index_as_args: false,
            },
        ],
        apps_alive,
    ),
    Experiment {
        name: "grow",
        envs: &[
            EnvSpec {
                program: "grow",
                name: "grow",
                slots_per_core: 0,
                own_index_as_args: false,
            },
            spec("spin", 2),
        ],
        idle_slots: 2,
        default_env: None,
        offender_limit: 0,
        finish: grown_to_every_core,
        settled: on_time,
    },
    plain(
        "fuzz",
        &[spec("fuzz", 2), spec("spin", 2)],
        fuzzed_kernel_survives,
    ),
    plain(
        "storm",
        &[spec("storm", 2), spec("spin", 2)],
        storm_returns_everything,
    ),
    plain(
        "segments",
        &[spec("segments", 2), spec("spin", 2), spec("tspin", 2)],
        segment_loads_hurt_nobody,
    ),
    plain(
        "forge",
        &[spec("forger", 2), spec("spin", 2)],
        others_keep_share,
    ),
    plain(
        "launder",
        &[
            spec("launder", 2),
            EnvSpec {
                program: "launder",
                name: "launder_b",
                slots_per_core: 0,
                own_index_as_args: false,
            },
            spec("spin", 2),
        ],
        laundering_pair_is_cut_at_grace,
    ),
    Experiment {
        name: "shed",
        envs: &[spec("shed", 2), spec("grab", 2)],
        idle_slots: 0,
        default_env: None,
        // One repossession costs the slot: a charge landing on the wrong
        // environment shows as a slot it loses.
        offender_limit: 1,
        finish: overrun_charged_to_its_owner,
        settled: on_time,
    },
    Experiment {
        name: "slotrace",
        envs: &[self_spawning("slotrace", 2), spec("spin", 2)],
        // Free slots for the children to allocate and free.
        idle_slots: 2,
        default_env: None,
        offender_limit: 0,
        finish: no_slot_owned_by_the_dead,
        settled: a_child_reaped_after_a_full_cycle,
    },
    plain(
        "badsleep",
        &[spec("badsleep", 2), spec("spin", 2)],
        refused_sleeper_runs_on,
    ),
    plain(
        "syscall_jump",
        &[spec("syscall_jump", 2), spec("spin", 2)],
        others_keep_share,
    ),
    Experiment {
        name: "hoarder",
        envs: &[spec("hoarder", 2), spec("spin", 2)],
        idle_slots: 2,
        default_env: None,
        offender_limit: 0,
        finish: spin_keeps_its_two_slots,
        settled: on_time,
    },
    plain(
        "free_mapped",
        &[spec("free_mapped", 2), spec("spin", 2)],
        others_keep_share,
    ),
    plain(
        "scribble",
        &[spec("scribble", 2), spec("spin", 2)],
        others_keep_share,
    ),
    plain(
        "ripflip",
        &[spec("ripflip", 2), spec("spin", 2)],
        others_keep_share,
    ),
    plain(
        "bad_iret",
        &[spec("bad_iret", 2), spec("spin", 2)],
        others_keep_share,
    ),
    plain(
        "bad_iret_bare",
        &[spec("bad_iret_bare", 2), spec("spin", 2)],
        others_keep_share,
    ),
    plain("threads", &[spec("tspin", 4)], apps_alive),
    plain(
        "bench",
        &[spec("bench", 1), spec("bench_peer", 1)],
        apps_alive,
    ),
    plain("tbench", &[spec("tbench", 1)], apps_alive),
    plain("overhead", &[spec("overhead", 1)], apps_alive),
    plain(
        "watch",
        &[spec("twatch", 2), spec("spin", 2)],
        sleeping_app_costs_little,
    ),
    plain("swap", &[spec("tswap", 4)], apps_alive),
    plain(
        "overflow",
        &[spec("toverflow", 1), spec("tspin", 1)],
        apps_alive,
    ),
    plain(
        "two_apps",
        &[spec("tspin", 2), spec("tspin_rr", 2)],
        apps_alive,
    ),
    Experiment {
        name: "unowned",
        envs: &[
            spec("spin", 2),
            EnvSpec {
                program: "spin",
                name: "background",
                slots_per_core: 0,
                own_index_as_args: false,
            },
        ],
        idle_slots: 2,
        default_env: Some("background"),
        offender_limit: 0,
        finish: unowned_time_goes_to_default,
        settled: on_time,
    },
    Experiment {
        name: "offender",
        envs: &[spec("spin", 2), spec("hog", 2)],
        idle_slots: 0,
        default_env: None,
        offender_limit: 4,
        finish: repeat_offender_loses_slots,
        settled: on_time,
    },
];

/// Whether `name` is an environment experiment.
pub fn exists(name: &str) -> bool {
    EXPERIMENTS.iter().any(|e| e.name == name)
}

/// Total slots the experiment `name` needs per core.
pub fn slots_needed(name: &str) -> usize {
    EXPERIMENTS.iter().find(|e| e.name == name).map_or(0, |e| {
        e.envs.iter().map(|s| s.slots_per_core).sum::<usize>() + e.idle_slots
    })
}

static FREE_FRAMES_BEFORE: AtomicU64 = AtomicU64::new(0);

/// The repeat-offender limit experiment `name` needs.
pub fn offender_limit(name: &str) -> u32 {
    EXPERIMENTS
        .iter()
        .find(|e| e.name == name)
        .map_or(0, |e| e.offender_limit)
}

/// Spawns the experiment's environments and hands out their slots.
pub fn setup(name: &str, run_ms: u64) -> Result<(), &'static str> {
    let exp = EXPERIMENTS
        .iter()
        .find(|e| e.name == name)
        .ok_or("no such experiment")?;
    FREE_FRAMES_BEFORE.store(mm::free_frames(), Ordering::Relaxed);
    crate::syscall::TEST_BAD_IRET_ENABLED
        .store(exp.name.starts_with("bad_iret"), Ordering::Relaxed);
    crate::invariants::set_baseline();
    let mut envs = Vec::new();
    for s in exp.envs {
        let image = crate::programs::program_named(s.program)
            .ok_or("program missing from the boot modules")?;
        let (args, quota) = launch(s);
        let e = env::spawn(s.name, image, quota, abi::syscall::NO_ENV, args.as_bytes())
            .map_err(|_| "spawn failed")?;
        if exp.default_env == Some(s.name) {
            sched::set_default_env(e.id);
        }
        envs.push((e, s.slots_per_core));
    }
    // `grow` starts with one slot on core 0 and acquires the rest itself.
    if let Some((e, _)) = envs.iter().find(|(e, _)| e.name() == "grow") {
        sched::alloc_slot(e, 0, None).map_err(|_| "slot allocation failed")?;
    }
    let wants: Vec<(&env::Env, usize)> = envs.iter().map(|(e, n)| (&**e, *n)).collect();
    for core in 0..smp::cores() {
        sched::grant_interleaved(core, &wants).map_err(|_| "slot allocation failed")?;
    }
    crate::run::start(run_ms, exp.finish, exp.settled, None);
    Ok(())
}

/// What a program of an experiment is launched with: its arguments and
/// slot quota (no limit, unless the experiment needs one).
/// - `syscall_jump` gets the kernel's syscall entry address (no secret:
///   the kernel is not randomised; anyone holding its image can read it);
/// - `hoarder` gets its own program index (it spawns itself) and a quota
///   of exactly the slots it is given, so a child can be lent nothing.
fn launch(s: &EnvSpec) -> (alloc::string::String, u32) {
    if s.own_index_as_args {
        let index = crate::programs::program_index(s.program).unwrap_or(usize::MAX);
        return (alloc::format!("{index}"), u32::MAX);
    }
    match s.program {
        "syscall_jump" => (
            alloc::format!("{:#x}", crate::arch::interrupts::syscall_entry_address()),
            u32::MAX,
        ),
        "hoarder" => (
            alloc::format!(
                "parent {}",
                crate::programs::program_index(s.program).unwrap_or(usize::MAX)
            ),
            (s.slots_per_core * smp::cores()) as u32,
        ),
        _ => (alloc::string::String::new(), u32::MAX),
    }
}

/// CPU time of `env` over all cores.
fn cpu_ns(e: &env::Env) -> u64 {
    e.account()
        .cpu_ns
        .iter()
        .take(smp::cores())
        .map(|c| c.load(Ordering::Relaxed))
        .sum()
}

fn find(program: &str) -> Option<alloc::sync::Arc<env::Env>> {
    env::all().into_iter().find(|e| e.name() == program)
}

fn check(name: &str, ok: bool, detail: core::fmt::Arguments<'_>) -> bool {
    record::check("env", name, ok, detail)
}

/// The core time the kernel handed out: every live environment's CPU time
/// plus the time cores idled. Shares are fractions of this; what the kernel
/// kept for itself (switches, repossessions, upcall entry — a few percent
/// under emulation, more when the host deschedules vCPUs) is nobody's
/// share, and counting it made the 2% checks hinge on host load.
fn core_time() -> u64 {
    let envs: u64 = env::all().iter().map(|e| cpu_ns(e)).sum();
    let idle: u64 = (0..smp::cores())
        .map(|c| {
            crate::exported::core_slices_of(c)
                .idle_ns
                .load(Ordering::Relaxed)
        })
        .sum();
    (envs + idle).max(1)
}

/// The share of all core time `e` received, against the share its slots
/// entitle it to (`slots / slots per core`): within `tolerance` both ways.
fn share_check(e: &env::Env, slots_per_core: usize, tolerance: f64) -> bool {
    let (got, ideal) = share(e, slots_per_core);
    check(
        "share_within_tolerance",
        (got - ideal).abs() <= tolerance,
        format_args!(
            "{}: share {:.4} ideal {:.4} (tolerance {tolerance})",
            e.name(),
            got,
            ideal
        ),
    )
}

fn share(e: &env::Env, slots_per_core: usize) -> (f64, f64) {
    let got = cpu_ns(e) as f64 / core_time() as f64;
    (got, slots_per_core as f64 / sched::config().slots as f64)
}

fn cooperative_never_repossessed() -> bool {
    let Some(spin) = find("spin") else {
        return check("spin_alive", false, format_args!("gone"));
    };
    // A cooperative libOS yields within grace; on an oversubscribed host a
    // descheduled vCPU can still overrun now and then, so allow one turn in
    // fifty (the hostile tests see every turn repossessed).
    let turns = (crate::run::elapsed_ns() / sched::config().slice_ns) * smp::cores() as u64;
    let n = spin.account().repossessions.load(Ordering::Relaxed);
    let mut ok = check(
        "cooperative_rarely_repossessed",
        n <= (turns / 50).max(2),
        format_args!("{n} repossessions in about {turns} turns"),
    );
    for core in 0..smp::cores() {
        let c = spin.account().cpu_ns[core].load(Ordering::Relaxed);
        ok &= check(
            "ran_on_every_core",
            c > 0,
            format_args!("core {core}: {c} ns"),
        );
    }
    // Alone on its slots it should get nearly all the time; what it loses is
    // the platform's overhead per turn (upcalls, yield, resume), which the
    // benchmarks measure — large under nested KVM, hence the wide margin
    // (time past a turn's end, epilogue included, is charged back).
    ok & share_check(&spin, 4, 0.12)
}

fn hog_repossessed() -> bool {
    let hog = env::all()
        .into_iter()
        .find(|e| e.name() != "spin" && e.name() != "fpu");
    let Some(hog) = hog else {
        return check("hostile_alive", false, format_args!("gone"));
    };
    let n = hog.account().repossessions.load(Ordering::Relaxed);
    check(
        "hostile_repossessed",
        n > 0,
        format_args!("{}: {n} repossessions", hog.name()),
    )
}

fn hostile_repossessed_others_keep_share() -> bool {
    hog_repossessed() & others_keep_share()
}

/// The well-behaved environment keeps (at least) its share, to 2%, whatever
/// the hostile one does; a hostile one that died leaves its slots idle.
fn others_keep_share() -> bool {
    let Some(spin) = find("spin") else {
        return check("spin_alive", false, format_args!("gone"));
    };
    let (got, ideal) = share(&spin, sched::config().slots / 2);
    check(
        "well_behaved_keeps_share",
        got >= ideal - 0.02,
        format_args!("spin: share {got:.4} ideal {ideal:.4} (at most 0.02 below)"),
    )
}

/// `spin`, holding 2 of each core's slots beside idle ones and a hostile
/// environment's, receives at least their share, to 2% (more once the
/// hostile one is gone and its slots' time goes spare).
fn spin_keeps_its_two_slots() -> bool {
    let Some(spin) = find("spin") else {
        return check("spin_alive", false, format_args!("gone"));
    };
    let (got, ideal) = share(&spin, 2);
    check(
        "well_behaved_keeps_share",
        got >= ideal - 0.02,
        format_args!("spin: share {got:.4} ideal {ideal:.4} (at most 0.02 below)"),
    )
}

/// `segments` loaded FS with a data selector (base 0) on every core and
/// far-jumped to the 32-bit code selector: `spin` keeps its share and
/// `tspin`, whose libOS reaches its dispatch page through FS, is alive.
fn segment_loads_hurt_nobody() -> bool {
    let (Some(spin), Some(tspin)) = (find("spin"), find("tspin")) else {
        return check(
            "both_alive",
            false,
            format_args!("spin or tspin (FS-relative dispatch page) is gone"),
        );
    };
    // Two slots each of six per core: a third of the machine each.
    [spin, tspin].iter().fold(true, |ok, e| {
        let (got, ideal) = share(e, 2);
        ok & check(
            "well_behaved_keeps_share",
            got >= ideal - 0.02,
            format_args!(
                "{}: share {got:.4} ideal {ideal:.4} (at most 0.02 below)",
                e.name()
            ),
        )
    })
}

/// Slack over the grace period for [`turns_charged_past_grace`]: how late
/// a revocation may be delivered (the grace runs from delivery). Virtual
/// time is exact in deterministic runs, where this is checked.
const DELIVERY_SLACK_NS: u64 = 2_000_000;

/// No turn, ended or in progress, ran past its end by more than the grace
/// period without its owner being charged for the excess.
fn turns_charged_past_grace() -> bool {
    let max = sched::uncharged_overrun_max_ns();
    let grace = sched::config().grace_ns;
    check(
        "overrun_past_grace_charged",
        max <= grace + DELIVERY_SLACK_NS,
        format_args!(
            "longest uncharged run past a turn's end {max} ns (grace {grace} ns + {DELIVERY_SLACK_NS} ns slack)"
        ),
    )
}

/// Issue 14, hole 5: `launder` and `launder_b` donated a turn back and
/// forth past its end, never yielding. They are taken at the grace end
/// of the turn like any overrunning environment and charged for it; `spin`
/// keeps its share.
fn laundering_pair_is_cut_at_grace() -> bool {
    let taken: u64 = ["launder", "launder_b"]
        .iter()
        .filter_map(|n| find(n))
        .map(|e| e.account().repossessions.load(Ordering::Relaxed))
        .sum();
    check(
        "laundering_pair_repossessed",
        taken > 0,
        format_args!("{taken} repossessions of the pair"),
    ) & turns_charged_past_grace()
        & others_keep_share()
}

/// Issue 14, hole 8: `shed` freed the slot of each of its turns and ran
/// over; `grab`, which allocated the freed slots and always yielded in
/// time, was never charged for it (offender limit 1: one wrong charge
/// would cost it a slot).
fn overrun_charged_to_its_owner() -> bool {
    let (Some(shed), Some(grab)) = (find("shed"), find("grab")) else {
        return check("both_alive", false, format_args!("an env is gone"));
    };
    let a = grab.account();
    let (revoked, forfeits, taken) = (
        a.slots_revoked.load(Ordering::Relaxed),
        a.forfeits.load(Ordering::Relaxed),
        a.repossessions.load(Ordering::Relaxed),
    );
    let shed_taken = shed.account().repossessions.load(Ordering::Relaxed);
    check(
        "shed_repossessed",
        shed_taken > 0,
        format_args!("shed: {shed_taken} repossessions"),
    ) & check(
        "innocent_not_charged",
        revoked == 0 && forfeits == 0 && taken == 0,
        format_args!(
            "grab: {revoked} slots revoked, {forfeits} turns forfeited, {taken} repossessions (all must be 0)"
        ),
    ) & turns_charged_past_grace()
}

/// `slotrace` may end once its parent has finished a cycle (spawn, kill,
/// reap, look for leaked slots, report) and no child is being torn down.
/// A cycle waits for the child to run and for every core to let it go, so
/// how many fit in the run's time depends on the host (1 to 16 in 4 s of
/// plain TCG): two children reaped means the first cycle's report was made
/// (the parent reports before it spawns the next). A child never reaped
/// keeps the run going until the runner's limit: a finding.
fn a_child_reaped_after_a_full_cycle() -> bool {
    crate::invariants::reaped() >= 2 && env::none_dying()
}

/// Issue 14, hole 9: `slotrace` killed children while they allocated
/// slots on every core. No slot may be owned by an environment that has
/// been reaped (its teardown freed its slots everywhere; an allocation
/// that landed after that must have been refused).
fn no_slot_owned_by_the_dead() -> bool {
    // The interleaving the race needs, forced: an environment killed (its
    // teardown has passed every core) before its allocation reaches one.
    let Some(doomed) = crate::programs::program_named("spin")
        .and_then(|image| env::spawn("doomed", image, 4, abi::syscall::NO_ENV, &[]).ok())
    else {
        return check("doomed_spawned", false, format_args!("spawn failed"));
    };
    crate::sched::kill(
        &doomed,
        env::ExitReason::Killed("slotrace: killed before its allocation"),
    );
    let late = (0..smp::cores())
        .map(|core| sched::alloc_slot(&doomed, core, None))
        .find(|r| *r != Err(abi::syscall::Error::Exhausted));
    drop(doomed);
    let mut ok = check(
        "late_allocation_refused",
        !matches!(late, Some(Ok(_))),
        format_args!("allocation by a killed environment: {late:?}"),
    );
    let mut dead = 0;
    for core in 0..smp::cores() {
        for slot in 0..sched::config().slots {
            let owner = sched::slot_owner(core, slot).unwrap_or(abi::syscall::NO_ENV);
            if owner != abi::syscall::NO_ENV && env::reaped(owner) {
                dead += 1;
            }
        }
    }
    ok &= check(
        "no_slot_owned_by_the_dead",
        dead == 0,
        format_args!("{dead} slots owned by reaped environments"),
    );
    ok
}

/// Issue 14, hole 10 (`sleep`): `badsleep`'s sleep was refused (its
/// donation to nobody failed); it must be awake and keep its slots' share.
fn refused_sleeper_runs_on() -> bool {
    let Some(b) = find("badsleep") else {
        return check("badsleep_alive", false, format_args!("gone"));
    };
    let asleep = b.asleep.load(Ordering::Acquire);
    let (got, ideal) = share(&b, 2);
    check(
        "refused_sleeper_awake",
        !asleep,
        format_args!("badsleep marked asleep: {asleep}"),
    ) & check(
        "refused_sleeper_keeps_share",
        got >= ideal - 0.02,
        format_args!("badsleep: share {got:.4} ideal {ideal:.4} (at most 0.02 below)"),
    )
}

fn donations_move_time() -> bool {
    let (Some(donor), Some(spin)) = (find("donor"), find("spin")) else {
        return check("both_alive", false, format_args!("an env is gone"));
    };
    let given = donor.account().donations_given.load(Ordering::Relaxed);
    let received = spin.account().donations_received.load(Ordering::Relaxed);
    let mut ok = check(
        "donations_counted",
        given > 0 && given == received,
        format_args!("given {given} received {received}"),
    );
    // The donor's slots are all the time there is: nearly all of it must
    // have gone to the recipient. Under this machine's nested KVM every
    // donation is a syscall the kernel completes from a fault, and the donor
    // keeps 15-27% of its 10 ms slices doing it (measured 0.73-0.85), so
    // the bound there is lower; the mechanism checked is the same.
    let share = cpu_ns(&spin) as f64 / core_time() as f64;
    let bound = if crate::arch::time::hypervisor() == Some("KVM") {
        0.7
    } else {
        0.8
    };
    ok &= check(
        "recipient_got_the_time",
        share > bound,
        format_args!("recipient share {share:.3} (bound {bound})"),
    );
    ok
}

fn sleepers_cost_nothing() -> bool {
    let (Some(sleeper), Some(spin)) = (find("sleeper"), find("spin")) else {
        return check("both_alive", false, format_args!("an env is gone"));
    };
    let wakeups = sleeper.account().wakeups.load(Ordering::Relaxed);
    let sleeper_share = cpu_ns(&sleeper) as f64 / core_time() as f64;
    let spin_share = cpu_ns(&spin) as f64 / core_time() as f64;
    check(
        "sleeper_woken",
        wakeups > 0,
        format_args!("{wakeups} wakeups"),
    ) & check(
        "sleeper_costs_little",
        sleeper_share < 0.1,
        format_args!("sleeper share {sleeper_share:.3}"),
    ) & check(
        "others_get_its_time",
        spin_share > 0.85,
        format_args!("spin share {spin_share:.3}"),
    )
}

fn teardown_releases_everything() -> bool {
    // Kill the environment while it runs on every core, then look.
    let Some(spin) = find("spin") else {
        return check("spin_alive", false, format_args!("gone"));
    };
    crate::sched::kill(&spin, env::ExitReason::Killed("teardown test"));
    let deadline = crate::arch::time::now_ns() + 1_000_000_000;
    while !env::reaped(spin.id) {
        if crate::arch::time::now_ns() > deadline {
            return check(
                "env_reaped",
                false,
                format_args!(
                    "still running on {} cores",
                    spin.running_on.load(Ordering::SeqCst)
                ),
            );
        }
        core::hint::spin_loop();
    }
    drop(spin);
    let before = FREE_FRAMES_BEFORE.load(Ordering::Relaxed);
    let after = mm::free_frames();
    let mut ok = check(
        "frames_returned",
        after == before,
        format_args!("free frames before {before} after {after}"),
    );
    for core in 0..smp::cores() {
        let owned = (0..sched::config().slots)
            .filter(|&s| sched::slot_owner(core, s).is_ok_and(|o| o != abi::syscall::NO_ENV))
            .count();
        ok &= check(
            "slots_returned",
            owned == 0,
            format_args!("core {core}: {owned} slots still owned"),
        );
    }
    ok
}

fn unowned_time_goes_to_default() -> bool {
    let (Some(spin), Some(bg)) = (find("spin"), find("background")) else {
        return check("both_alive", false, format_args!("an env is gone"));
    };
    let (spin_share, ideal) = share(&spin, 2);
    let bg_share = cpu_ns(&bg) as f64 / core_time() as f64;
    let idle: u64 = (0..smp::cores())
        .map(|c| {
            crate::exported::core_slices_of(c)
                .idle_ns
                .load(Ordering::Relaxed)
        })
        .sum();
    let idle_share = idle as f64 / core_time() as f64;
    check(
        "owner_keeps_share",
        spin_share >= ideal - 0.03,
        format_args!("spin {spin_share:.4} ideal {ideal:.4}"),
    ) & check(
        "default_gets_unowned_time",
        bg_share >= 0.5 - 0.05,
        format_args!("background {bg_share:.4} of 0.5"),
    ) & check(
        "core_barely_idles",
        idle_share < 0.05,
        format_args!("idle {idle_share:.4}"),
    )
}

fn repeat_offender_loses_slots() -> bool {
    let (Some(spin), Some(hog)) = (find("spin"), find("hog")) else {
        return check("both_alive", false, format_args!("an env is gone"));
    };
    let revoked = hog.account().slots_revoked.load(Ordering::Relaxed);
    let held = hog.account().slots_held.load(Ordering::Relaxed);
    let (got, ideal) = share(&spin, 2);
    check(
        "offender_slots_revoked",
        revoked as usize == 2 * smp::cores() && held == 0,
        format_args!("revoked {revoked}, still held {held}"),
    ) & check(
        "well_behaved_keeps_share",
        got >= ideal - 0.02,
        format_args!("spin {got:.4} ideal {ideal:.4}"),
    )
}

/// Threaded applications: the shares are checked by the host from the
/// applications' own reports; here, that every one is still alive.
fn apps_alive() -> bool {
    let n = env::all().len();
    check("applications_alive", n > 0, format_args!("{n} alive"))
}

fn sleeping_app_costs_little() -> bool {
    let (Some(app), Some(spin)) = (find("twatch"), find("spin")) else {
        return check("both_alive", false, format_args!("an env is gone"));
    };
    let app_share = cpu_ns(&app) as f64 / core_time() as f64;
    let spin_share = cpu_ns(&spin) as f64 / core_time() as f64;
    check(
        "sleeping_threads_cost_little",
        app_share < 0.1,
        format_args!("twatch share {app_share:.3}"),
    ) & check(
        "others_get_the_time",
        spin_share > 0.85,
        format_args!("spin share {spin_share:.3}"),
    )
}

fn grown_to_every_core() -> bool {
    let Some(g) = find("grow") else {
        return check("grow_alive", false, format_args!("gone"));
    };
    let held = g.account().slots_held.load(Ordering::Relaxed) as usize;
    let mut ok = check(
        "slices_acquired_by_the_libos",
        held == 2 * smp::cores(),
        format_args!("holds {held}"),
    );
    for core in 0..smp::cores() {
        let c = g.account().cpu_ns[core].load(Ordering::Relaxed);
        ok &= check(
            "ran_on_every_core",
            c > 0,
            format_args!("core {core}: {c} ns"),
        );
    }
    ok
}

fn fuzzed_kernel_survives() -> bool {
    let alive = find("fuzz").is_some();
    check(
        "fuzzer_alive",
        alive,
        format_args!("the fuzzer should only ever get errors, never be killed"),
    ) & others_keep_share()
}

/// After a storm of creations and kills: the well-behaved env kept its
/// share; then everything is torn down and every frame and slot must be
/// back to what it was before the experiment.
fn storm_returns_everything() -> bool {
    let mut ok = others_keep_share();
    for e in env::all() {
        crate::sched::kill(&e, env::ExitReason::Killed("end of the storm experiment"));
    }
    let deadline = crate::arch::time::now_ns() + 2_000_000_000;
    while !env::all_reaped() {
        if crate::arch::time::now_ns() > deadline {
            return check(
                "all_reaped",
                false,
                format_args!("environments still running"),
            );
        }
        core::hint::spin_loop();
    }
    let before = FREE_FRAMES_BEFORE.load(Ordering::Relaxed);
    let after = mm::free_frames();
    ok &= check(
        "frames_back_to_baseline",
        after == before,
        format_args!("free frames before {before} after {after}"),
    );
    for core in 0..smp::cores() {
        let owned = (0..sched::config().slots)
            .filter(|&s| sched::slot_owner(core, s).is_ok_and(|o| o != abi::syscall::NO_ENV))
            .count();
        ok &= check(
            "slots_back_to_baseline",
            owned == 0,
            format_args!("core {core}: {owned} slots owned"),
        );
    }
    ok
}
