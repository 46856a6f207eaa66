//! `just bench`: the platform's primitives measured in the guest (KVM when
//! it is hardware-assisted, TCG otherwise — and then said loudly: emulated
//! figures), their Linux counterparts on this host in the same run, the
//! policies on both, and the goals of the performance issue shown met or
//! not (never asserted). A full run also counts instructions per
//! operation, the platform's and a Linux guest's ([`linux`]), both in the
//! same deterministic emulator. Writes
//! `results/bench/<commit>-<accel>.{json,md}`.

pub mod floor;
pub mod host;
pub mod instructions;
pub mod linux;
pub mod scale;
pub mod tails;

use std::fmt::Write as _;
use std::time::Duration;

use abi::record::RecordKind;
use serde_json::{json, Value};

use crate::qemu::KvmKind;
use crate::{build, Accel, RunOptions, RunOutcome};

/// Median, min and max of a figure's repetitions.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Stat {
    pub median: f64,
    pub min: f64,
    pub max: f64,
}

pub fn stat(xs: &[f64]) -> Stat {
    let mut v: Vec<f64> = xs.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return Stat {
            median: f64::NAN,
            min: f64::NAN,
            max: f64::NAN,
        };
    }
    v.sort_by(f64::total_cmp);
    let median = if v.len() % 2 == 1 {
        v[v.len() / 2]
    } else {
        (v[v.len() / 2 - 1] + v[v.len() / 2]) / 2.0
    };
    Stat {
        median,
        min: v[0],
        max: v[v.len() - 1],
    }
}

fn stat_json(s: Stat) -> Value {
    json!({"median": s.median, "min": s.min, "max": s.max})
}

fn guest(
    name: &str,
    test: &str,
    cpus: u32,
    run_ms: u64,
    cmdline: &[&str],
    accel: Accel,
) -> Result<RunOutcome, String> {
    guest_with(name, test, cpus, run_ms, cmdline, accel, false)
}

/// Virtual ns per guest instruction in a deterministic run: there a
/// figure in ns divided by this is the number of instructions the
/// operation executed — the same on every run and every host, so a change
/// to a hot path shows even on this noisy machine.
const DET_NS_PER_INSN: f64 = (1u32 << crate::qemu::ICOUNT_SHIFT) as f64;

/// A deterministic run (TCG, -icount) of `test` on one core.
fn guest_det(name: &str, test: &str, run_ms: u64) -> Result<RunOutcome, String> {
    guest_with(name, test, 1, run_ms, &[], Accel::Tcg, true)
}

fn guest_with(
    name: &str,
    test: &str,
    cpus: u32,
    run_ms: u64,
    cmdline: &[&str],
    accel: Accel,
    det: bool,
) -> Result<RunOutcome, String> {
    let run_ms = run_ms * time_factor(accel);
    let opts = RunOptions {
        cpus,
        accel,
        det,
        test: Some(test.into()),
        run_ms: Some(run_ms),
        cmdline: cmdline.iter().map(|s| s.to_string()).collect(),
        name: Some(name.into()),
        timeout: Duration::from_secs(run_ms / 1000 + 120),
        ..RunOptions::default()
    };
    eprintln!("== bench: {name} ({cpus} cores, {test})");
    crate::run(&opts).map_err(|e| e.to_string())
}

/// How much longer guest runs last under PVM "KVM", where every kernel
/// entry costs milliseconds and the programs need that much longer to get
/// through their measurements.
fn time_factor(accel: Accel) -> u64 {
    if accel == Accel::Kvm && crate::qemu::kvm_kind().starts_with("PVM") {
        3
    } else {
        1
    }
}

/// `bench` records of a run: (name, record).
fn records(out: &RunOutcome, kind: &str) -> Vec<Value> {
    out.records
        .of(RecordKind::User)
        .filter(|r| r["kind"] == kind)
        .cloned()
        .collect()
}

fn series(r: &Value, key: &str) -> Vec<f64> {
    r[key]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_f64)
        .collect()
}

fn find<'a>(recs: &'a [Value], bench: &str) -> Option<&'a Value> {
    recs.iter().find(|r| r["bench"] == bench)
}

/// One row of the report.
struct Row {
    name: String,
    platform: Option<Stat>,
    platform_cycles: Option<Stat>,
    linux: Option<Stat>,
    /// (goal text, met)
    goal: Option<(String, bool)>,
}

/// What the report's wall-clock tables carry in their headings when the
/// guest ran under a KVM that is not hardware-assisted (asked for with
/// `accel=kvm`; `auto` never picks it).
fn not_hardware_flag(accel: Accel, kvm: KvmKind) -> String {
    if accel == Accel::Kvm && kvm != KvmKind::Hardware {
        format!(
            " — !! KVM here is {}: these times are not hardware's",
            kvm.short()
        )
    } else {
        String::new()
    }
}

/// Runs everything; returns the markdown report (also written to disk).
pub fn run(smoke: bool, asked: Accel) -> Result<String, String> {
    let kvm = KvmKind::of_host();
    let mut accel = asked.resolve();
    if asked == Accel::Auto && accel == Accel::Tcg && crate::qemu::kvm_usable() {
        eprintln!(
            "!! bench: accel=auto: KVM here is {}, whose times are not hardware's: wall-clock \
             figures under plain TCG, instruction counts under deterministic TCG (accel=kvm \
             measures under it anyway, flagged) !!",
            kvm.short()
        );
    }
    // The Linux yardstick first: a missing package or compiler fails the
    // run before the long part, not after it.
    let linux = if smoke {
        eprintln!("== bench: the smoke skips the Linux guest (`just bench` boots it; the s16 test checks it)");
        None
    } else {
        Some(linux::measure(
            &build::workspace_root().join("target/linux-bench"),
        )?)
    };
    let prims_ms = if smoke { 6000 } else { 8000 };
    let mut prims = guest("bench-primitives", "bench", 1, prims_ms, &[], accel)?;
    if accel == Accel::Kvm && records(&prims, "bench").is_empty() {
        // A guest whose kernel entries cost milliseconds (this machine's
        // PVM) once could not finish; say so and measure under TCG.
        eprintln!("!! bench: under KVM the guest benchmark did not finish (see {}); falling back to TCG !!", prims.run_dir.display());
        accel = Accel::Tcg;
        prims = guest("bench-primitives-tcg", "bench", 1, prims_ms, &[], accel)?;
    }
    let accel_used = accel;
    if accel_used == Accel::Tcg {
        eprintln!("!! bench: the guest runs under TCG: its figures are EMULATION, not hardware !!");
    } else if kvm != KvmKind::Hardware {
        eprintln!(
            "!! bench: accel=kvm: KVM here is {}: every wall-clock figure is its, not hardware's (flagged in every table) !!",
            kvm.short()
        );
    }
    let mut guest_runs = vec![prims];
    let mut overheads = Vec::new();
    let mut swaps = Vec::new();
    let overhead_slices: &[u64] = if smoke { &[10_000] } else { &[1000, 10_000] };
    let mut overhead_runs = Vec::new();
    for slice in overhead_slices {
        overhead_runs.push((*slice, guest_runs.len()));
        guest_runs.push(guest(
            &format!("bench-overhead-{}ms", slice / 1000),
            "overhead",
            1,
            // Its 20 rounds take ~2.1 s of wall clock; under PVM, where
            // each of its clock reads traps (~70 µs), 1 ms slices needed
            // ~25 s to get through them.
            if smoke { 5000 } else { 12_000 },
            &[&format!("slice_us={slice}")],
            accel,
        )?);
    }
    if !smoke {
        guest_runs.push(guest("bench-threads-1", "tbench", 1, 25_000, &[], accel)?);
        for cores in [4u32, 8] {
            guest_runs.push(guest(
                &format!("bench-swap-{cores}"),
                "tbench",
                cores,
                8000,
                &[],
                accel,
            )?);
        }
    }
    // Abort latency needs a program that ignores revocation: the `abort`
    // experiment (spin beside hog) on one core.
    guest_runs.push(guest(
        "bench-abort",
        "abort",
        1,
        if smoke { 2000 } else { 4000 },
        &[],
        accel,
    )?);
    // Instruction counts, from deterministic runs (full runs only).
    let mut instructions: Vec<(String, f64)> = Vec::new();
    let mut one_core_swap = None;
    if !smoke {
        let det = [
            guest_det("bench-primitives-det", "bench", prims_ms)?,
            guest_det("bench-threads-det", "tbench", 12_000)?,
        ];
        one_core_swap = tails::swap_of(&det[1]);
        let recs: Vec<Value> = det.iter().flat_map(|o| records(o, "bench")).collect();
        for name in [
            "syscall_floor",
            "null_syscall",
            "exception_upcall",
            "yield_pingpong",
            "thread_switch",
        ] {
            if let Some(r) = find(&recs, name) {
                instructions.push((
                    name.to_string(),
                    stat(&series(r, "ns")).median / DET_NS_PER_INSN,
                ));
            }
        }
    }
    // Decisions per second and wake-up latency as cores grow
    // (deterministic runs; the smoke runs the two-core row only).
    let scale_cores: &[u32] = if smoke { &[2] } else { &scale::CORES };
    let (scale_rows, scale_errors) = scale::measure(scale_cores, accel);
    for e in &scale_errors {
        eprintln!("!! bench: scale: {e}");
    }
    // Issue 16's per-turn overhead and tails (deterministic runs; the
    // smoke runs the one-core abort row only).
    let tails = tails::measure(smoke, one_core_swap);
    let latency = |kind: &str| -> Option<Stat> {
        let ns: Vec<f64> = guest_runs
            .iter()
            .flat_map(|o| {
                o.records
                    .of(RecordKind::Latency)
                    .filter(|r| r["kind"] == kind)
                    .cloned()
                    .collect::<Vec<_>>()
            })
            .flat_map(|r| series(&r, "ns"))
            .collect();
        (!ns.is_empty()).then(|| stat(&ns))
    };
    let (revocation, abort) = (latency("revocation"), latency("abort"));
    let bench: Vec<Value> = guest_runs
        .iter()
        .flat_map(|o| records(o, "bench"))
        .collect();
    for o in &guest_runs {
        overheads.extend(records(o, "bench_overhead"));
    }
    for r in bench.iter().filter(|r| r["bench"] == "swap_downtime") {
        swaps.push(r.clone());
    }
    let ns = |b: &str| find(&bench, b).map(|r| stat(&series(r, "ns")));
    let cycles = |b: &str| find(&bench, b).map(|r| stat(&series(r, "cycles")));
    eprintln!("== bench: Linux counterparts on this host");
    let linux_getpid = stat(&host::getpid());
    let linux_signal = stat(&host::signal_round_trip());
    let linux_yield = stat(&host::sched_yield());
    let linux_pipe = stat(&host::pipe_ping_pong());
    let linux_swapcontext = stat(&host::swapcontext());
    let ratio = |a: Option<Stat>, b: Option<Stat>| match (a, b) {
        (Some(a), Some(b)) => a.median / b.median,
        _ => f64::NAN,
    };
    let mut rows = vec![
        Row {
            name: "null system call".into(),
            platform: ns("null_syscall"),
            platform_cycles: cycles("null_syscall"),
            linux: Some(linux_getpid),
            goal: {
                let r = ratio(ns("null_syscall"), ns("syscall_floor"));
                Some((format!("≤ 1.3x the syscall/sysret floor: {r:.2}x"), r <= 1.3))
            },
        },
        Row { name: "syscall/sysret floor (no Rust)".into(), platform: ns("syscall_floor"), platform_cycles: cycles("syscall_floor"), linux: None, goal: None },
        Row {
            name: "exception → upcall → resume (#BP) vs SIGTRAP handler".into(),
            platform: ns("exception_upcall"),
            platform_cycles: cycles("exception_upcall"),
            linux: Some(linux_signal),
            goal: {
                let r = linux_signal.median / ns("exception_upcall").map_or(f64::NAN, |s| s.median);
                Some((format!("≥ 10x faster than Linux signal delivery: {r:.2}x"), r >= 10.0))
            },
        },
        Row {
            name: "directed-yield ping-pong, two environments, one core (round trip) vs pipe ping-pong, two processes pinned to one CPU".into(),
            platform: ns("yield_pingpong"),
            platform_cycles: cycles("yield_pingpong"),
            linux: Some(linux_pipe),
            goal: {
                let r = linux_pipe.median / ns("yield_pingpong").map_or(f64::NAN, |s| s.median);
                Some((format!("≥ 5x faster than Linux process ping-pong: {r:.2}x"), r >= 5.0))
            },
        },
        Row {
            name: "revocation: slice deadline → owner entering its epilogue (kernel-timed, all samples: median (min–max))".into(),
            platform: revocation,
            platform_cycles: None,
            linux: None,
            goal: None,
        },
        Row {
            name: "abort: end of grace → the core entering another environment (kernel-timed)".into(),
            platform: abort,
            platform_cycles: None,
            linux: None,
            goal: None,
        },
        Row { name: "sched_yield (Linux only)".into(), platform: None, platform_cycles: None, linux: Some(linux_yield), goal: None },
        Row {
            name: "user-level thread switch (libos) vs glibc swapcontext".into(),
            platform: ns("thread_switch"),
            platform_cycles: cycles("thread_switch"),
            linux: Some(linux_swapcontext),
            goal: None,
        },
    ];
    let threads: &[u32] = if smoke {
        &[10, 10_000]
    } else {
        &policy_bench::THREADS
    };
    eprintln!("== bench: policy decisions on the host (criterion)");
    let policy_rows: Vec<_> = host::policy_decisions(threads, smoke)?
        .into_iter()
        .map(|cost| {
            let guest_ns = bench
                .iter()
                .find(|r| {
                    r["bench"] == "policy_decision"
                        && r["policy"] == cost.kind.name()
                        && r["threads"] == cost.threads
                })
                .map(|r| stat(&series(r, "ns")));
            (cost, guest_ns)
        })
        .collect();
    for kind in policy_bench::kinds() {
        let at_10000 = policy_rows
            .iter()
            .find(|(c, _)| c.kind == kind && c.threads == 10_000);
        if let Some((host::PolicyCost { steady: h, .. }, g)) = at_10000 {
            rows.push(Row {
                name: format!(
                    "{} decision + accounting at 10,000 threads (host; guest beside)",
                    kind.name()
                ),
                platform: Some(*h),
                platform_cycles: None,
                linux: None,
                goal: Some((
                    format!(
                        "≤ 150 ns: host {:.0} ns, in the guest {:.0} ns",
                        h.median,
                        g.map_or(f64::NAN, |g| g.median)
                    ),
                    h.median <= 150.0,
                )),
            });
        }
        if let Some((host::PolicyCost { churn: Some(c), .. }, _)) = at_10000 {
            rows.push(Row {
                name: format!(
                    "{} decision + accounting at 10,000 threads, a block and a wake in each (host)",
                    kind.name()
                ),
                platform: Some(*c),
                platform_cycles: None,
                linux: None,
                goal: Some((format!("≤ 1 µs: {:.0} ns", c.median), c.median <= 1000.0)),
            });
        }
    }
    let costs: Vec<host::PolicyCost> = policy_rows.iter().map(|(c, _)| c.clone()).collect();
    for kind in policy_bench::kinds() {
        for (name, figure, met) in floor::goals(kind, &costs) {
            rows.push(Row {
                name,
                platform: None,
                platform_cycles: None,
                linux: None,
                goal: Some((figure, met)),
            });
        }
    }
    // Wakeup predicates by size: install from ring 3 (verification
    // included), the kernel's own evaluation timing while the benchmark
    // slept on each, and both halves on the host.
    let by_length: Vec<(u64, u64, u64)> = guest_runs[0]
        .records
        .of(RecordKind::End)
        .flat_map(|e| {
            e["predicate_eval_by_length"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .filter_map(|v| Some((v[0].as_u64()?, v[1].as_u64()?, v[2].as_u64()?)))
        .collect();
    let predicate_rows: Vec<Value> = [0usize, 1, 3, 7, 14]
        .into_iter()
        .map(|words| {
            let insns = host::watch_predicate(words).insn_count() as u64;
            let install = bench
                .iter()
                .find(|r| r["bench"] == "predicate_install" && r["insns"] == insns)
                .map(|r| stat(&series(r, "ns")));
            let kernel = by_length.iter().find(|l| l.0 == insns);
            let (verify, eval) = host::predicate_costs(words);
            json!({
                "words": words, "insns": insns,
                "install_guest_ns": install.map(stat_json),
                "eval_kernel_mean_ns": kernel.map(|k| k.2), "evals_kernel": kernel.map(|k| k.1),
                "verify_host_ns": stat_json(stat(&verify)), "eval_host_ns": stat_json(stat(&eval)),
            })
        })
        .collect();
    let swap8 = swaps
        .iter()
        .find(|r| r["cores"] == 8)
        .map(|r| stat(&series(r, "ns")));
    if let Some(s) = swap8 {
        rows.push(Row {
            name: "runtime swap, 32 threads on 8 cores (time the swap holds the threads off the cores)".into(),
            platform: Some(s),
            platform_cycles: None,
            linux: None,
            goal: Some((format!("≤ 1 ms on 8 cores: {:.3} ms", s.median / 1e6), s.median <= 1e6)),
        });
    }
    if let Some(o) = overheads.iter().find(|o| o["slice_us"] == 10_000) {
        let f = o["overhead"].as_f64().unwrap_or(f64::NAN);
        rows.push(Row {
            name: "overhead on a CPU-bound loop at 10 ms slices".into(),
            platform: None,
            platform_cycles: None,
            linux: None,
            goal: Some((format!("≤ 1%: {:.2}%", f * 100.0), f <= 0.01)),
        });
    }
    let first = &guest_runs[0];
    let commit = build::commit();
    let flag = not_hardware_flag(accel_used, kvm);
    let accel_why = if asked == Accel::Auto && accel_used == Accel::Tcg && crate::qemu::kvm_usable()
    {
        format!(
            " (accel=auto: KVM here is {}, not benchmarked on as if it were hardware)",
            kvm.short()
        )
    } else {
        String::new()
    };
    let mut md = String::new();
    let _ = writeln!(
        md,
        "# Benchmarks{}\n\ncommit `{commit}`, accel **{}**{}{accel_why}, CPU model `{}`, guest CPU `{}`, host cores {}, {}\n",
        if smoke { " (smoke)" } else { "" },
        first.summary["accel"].as_str().unwrap_or("?"),
        if accel_used == Accel::Tcg {
            " — EMULATED: guest figures are TCG's, not hardware's".to_string()
        } else {
            format!(" — KVM here is {}", kvm.describe())
        },
        first.summary["cpu_model"].as_str().unwrap_or("?"),
        first.summary["hypervisor"].as_str().unwrap_or("?"),
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        first.summary["started_utc"].as_str().unwrap_or(""),
    );
    let linux_insns = linux
        .as_ref()
        .map(instructions::linux_medians)
        .unwrap_or_default();
    match &linux {
        Some(l) => {
            let _ = writeln!(
                md,
                "## Instructions per operation, the platform beside Linux (deterministic TCG, whatever the accel above)\n\n\
                 Both measured in this run in the same emulator mode (`-accel tcg,thread=single -icount shift={}`, one core, \
                 {} virtual ns per instruction): the platform's benchmark programs, and Debian's `{}` ({}) booting a static C \
                 benchmark (`xtask/linux-bench/bench.c`) as `/init`, each Linux figure the median of its repetitions from \
                 two loop lengths differenced and an empty loop subtracted. The same on every run and host; the costs of \
                 `syscall`, exceptions, CR3 writes and `fxsave` on hardware are not in it (each counts as one instruction).\n\n{}",
                crate::qemu::ICOUNT_SHIFT,
                l.ns_per_insn,
                l.kernel.package,
                l.kernel.version,
                instructions::table(&instructions, &linux_insns)
            );
        }
        None => {
            let _ = writeln!(
                md,
                "## Instructions per operation\n\nNot in the smoke: `just bench` counts them (the platform and a Linux guest, deterministic TCG).\n"
            );
        }
    }
    let _ = writeln!(
        md,
        "## Primitives, wall clock{flag}\n\nMedians of {} repetitions (min–max), each timed over many iterations.\n",
        host::REPS
    );
    let _ = writeln!(md, "| primitive | platform | platform cycles | Linux (this host) | Linux / platform | goal |\n|---|---|---|---|---|---|");
    let cell = |s: Option<Stat>, unit: &str| {
        s.map_or("—".to_string(), |s| {
            format!("{:.0} {unit} ({:.0}–{:.0})", s.median, s.min, s.max)
        })
    };
    for r in &rows {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} |",
            r.name,
            cell(r.platform, "ns"),
            cell(r.platform_cycles, "cyc"),
            cell(r.linux, "ns"),
            match (r.linux, r.platform) {
                (Some(l), Some(p)) => format!("{:.2}", l.median / p.median),
                _ => "—".into(),
            },
            r.goal.as_ref().map_or("—".to_string(), |(t, met)| format!(
                "{} {t}",
                if *met { "met:" } else { "NOT met:" }
            ))
        );
    }
    let _ = writeln!(md, "\n## Policy decision + accounting (pick and charge), ns{flag}\n\nHost: criterion's median (its 95% confidence interval), `cargo bench -p policy-bench`. Under churn: the same on the host with the picked thread blocking at the end of its quantum and woken again (one block and one wake per decision). Floor: in the same criterion run, right after the policies at that thread count, the bare data-structure operation the policy's decision amounts to (`policy-bench/src/floor.rs`: `BinaryHeap` pop+push for stride and EEVDF, `VecDeque` pop+push for rr, a draw and a Fenwick-tree descent for lottery); host / floor is the ratio of the medians (in brackets, the widest the two intervals allow). Through the trait: the same floor as a `dyn Policy` whose `pick` is the floor's step and whose `charge` does nothing, timed through the policies' own loop (`floor::Through`), and its ratio to the bare floor: the part of host / floor that is the loop and the trait's two calls, before the policy does anything. Guest: the steady loop in `tbench`, median of 5 repetitions (min–max).\n\n| policy | threads | host | floor | host / floor | floor through the trait (/ floor) | host, under churn | guest |\n|---|---|---|---|---|---|---|---|");
    for (c, g) in &policy_rows {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} | {} | {} |",
            c.kind.name(),
            c.threads,
            cell(Some(c.steady), "ns"),
            c.floor.map_or("—".to_string(), |(f, s)| format!(
                "{} {}",
                f.name(),
                floor::cell(s)
            )),
            floor::of(c).map_or("—".to_string(), |r| format!(
                "{:.2}x ({:.2}–{:.2})",
                r.median, r.min, r.max
            )),
            c.floor_through_trait.zip(floor::trait_of(c)).map_or(
                "—".to_string(),
                |(t, r)| format!("{} ({:.2}x)", floor::cell(t), r.median)
            ),
            cell(c.churn, "ns"),
            cell(*g, "ns")
        );
    }
    let _ = writeln!(md, "\n## Wakeup predicates (a deadline and N watched words, all false: the whole program runs){flag}\n\n| watched words | instructions | install from ring 3, verification included (guest) | evaluation in the kernel, mean (evaluations) | verify (host) | evaluate (host) |\n|---|---|---|---|---|---|");
    for p in &predicate_rows {
        let st = |v: &Value| {
            v.get("median").and_then(Value::as_f64).map(|m| Stat {
                median: m,
                min: v["min"].as_f64().unwrap_or(m),
                max: v["max"].as_f64().unwrap_or(m),
            })
        };
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} |",
            p["words"],
            p["insns"],
            cell(st(&p["install_guest_ns"]), "ns"),
            p["eval_kernel_mean_ns"]
                .as_u64()
                .map_or("—".to_string(), |ns| format!(
                    "{ns} ns ({})",
                    p["evals_kernel"]
                )),
            cell(st(&p["verify_host_ns"]), "ns"),
            cell(st(&p["eval_host_ns"]), "ns"),
        );
    }
    let _ = writeln!(md, "\n## Runtime swap (time `swap_policy` holds the application's threads off the cores){flag}\n\n| cores | median | min–max |\n|---|---|---|");
    for s in &swaps {
        let st = stat(&series(s, "ns"));
        let _ = writeln!(
            md,
            "| {} | {:.3} ms | {:.3}–{:.3} ms |",
            s["cores"],
            st.median / 1e6,
            st.min / 1e6,
            st.max / 1e6
        );
    }
    let _ = writeln!(
        md,
        "\n## Scale: decisions and wake-up latency as cores grow (deterministic TCG, whatever the accel above)\n\n\
         `scenarios/scale-wakeups.toml`: one stride application of sleepers, four per core, each computing 200 µs and sleeping \
         1.8 ms; a decision is a thread dispatched after a wait (every wake-up served is one), a wait the time from its \
         becoming runnable (its wake-up time) to running. The wake-ups served are the rate the sleepers ask for (they sleep after \
         computing, so a longer wait lowers it), not the libOS's capacity. Beyond 8 cores each core is slower (one instruction \
         clock for all vCPUs): those rows stretch slice, grace and the sleepers' times by the slowdown (so they ask for \
         proportionally fewer wake-ups: the column multiplied by it compares), and the instruction column compares latencies \
         across rows. The emulator runs one vCPU at a time, so a core holding the libOS's lock waits for the others: \
         contention here is an upper bound, not hardware's.\n\n{}",
        scale::table_and_errors(&scale_rows, &scale_errors),
    );
    let _ = writeln!(md, "\n{}", tails::section(&tails));
    let _ = writeln!(md, "\n## Overhead on a CPU-bound loop{flag}\n\n| slice | loop iterations/µs, bare (median 50 µs window) | over 100 ms of slices | overhead (median of 20 paired rounds) | rounds' ratio run/bare, min–max |\n|---|---|---|---|---|");
    for o in &overheads {
        let _ = writeln!(
            md,
            "| {} µs | {:.1} | {:.1} | {:.2}% | {:.3}–{:.3} |",
            o["slice_us"],
            o["bare_per_us"].as_f64().unwrap_or(f64::NAN),
            o["run_per_us"].as_f64().unwrap_or(f64::NAN),
            o["overhead"].as_f64().unwrap_or(f64::NAN) * 100.0,
            o["ratio_min"].as_f64().unwrap_or(f64::NAN),
            o["ratio_max"].as_f64().unwrap_or(f64::NAN)
        );
    }
    // A slice length whose run reported nothing gets a row saying so (and
    // what the kernel saw), not silence.
    for &(slice, i) in &overhead_runs {
        if overheads.iter().any(|o| o["slice_us"] == slice) {
            continue;
        }
        let run = &guest_runs[i];
        let repossessions = run
            .records
            .of(RecordKind::Event)
            .filter(|r| r["event"] == "repossession")
            .count();
        let _ = writeln!(
            md,
            "| {slice} µs | not measured: the program did not report within its run ({repossessions} repossessions; {}) | | | |",
            run.run_dir.display()
        );
    }
    let out = json!({
        "commit": commit,
        "smoke": smoke,
        "accel": first.summary["accel"],
        "emulated": accel_used == Accel::Tcg,
        "accel_asked": asked.name(),
        "kvm_kind": kvm.short(),
        "not_hardware": accel_used == Accel::Tcg || kvm != KvmKind::Hardware,
        "cpu_model": first.summary["cpu_model"],
        "host_cores": std::thread::available_parallelism().map_or(0, |n| n.get()),
        "rows": rows.iter().map(|r| json!({
            "name": r.name,
            "platform_ns": r.platform.map(stat_json),
            "platform_cycles": r.platform_cycles.map(stat_json),
            "linux_ns": r.linux.map(stat_json),
            "goal": r.goal.as_ref().map(|(t, met)| json!({"text": t, "met": met})),
        })).collect::<Vec<_>>(),
        "policy": policy_rows.iter().map(|(c, g)| json!({
            "policy": c.kind.name(), "threads": c.threads, "host_ns": stat_json(c.steady),
            "host_churn_ns": c.churn.map(stat_json), "guest_ns": g.map(stat_json),
            "floor": c.floor.map(|(f, _)| f.name()), "floor_ns": c.floor.map(|(_, s)| stat_json(s)),
            "host_over_floor": floor::of(c).map(stat_json),
            "floor_through_trait_ns": c.floor_through_trait.map(stat_json),
            "floor_through_trait_over_floor": floor::trait_of(c).map(stat_json),
        })).collect::<Vec<_>>(),
        "swap": swaps,
        "predicates": predicate_rows,
        "overhead": overheads,
        "scale": scale::json(&scale_rows, &scale_errors),
        "tails": tails::json(&tails),
        // Instructions per operation (deterministic TCG), the platform's
        // and Linux's by name; how Linux's were taken, beside them.
        "instructions": instructions::json(&instructions, &linux_insns),
        "linux_guest": linux.as_ref().map(|l| json!({
            "package": l.kernel.package,
            "version": l.kernel.version,
            "cmdline": linux::CMDLINE,
            "qemu_args": l.qemu_args,
            "ns_per_instruction": l.ns_per_insn,
            "instructions": l.ops.iter().map(|(op, s)| (op.clone(), stat_json(*s))).collect::<serde_json::Map<_, _>>(),
            "wall_s": l.wall.as_secs_f64(),
        })),
        "guest_records": bench,
    });
    let dir = build::workspace_root().join("results/bench");
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    // One file per accelerator: a KVM and a TCG run of one commit both stay.
    let stem = format!(
        "{commit}-{}{}",
        accel_used.name(),
        if smoke { "-smoke" } else { "" }
    );
    std::fs::write(
        dir.join(format!("{stem}.json")),
        serde_json::to_string_pretty(&out).unwrap_or_default(),
    )
    .map_err(|e| e.to_string())?;
    std::fs::write(dir.join(format!("{stem}.md")), &md).map_err(|e| e.to_string())?;
    Ok(md)
}

/// The deterministic tails section alone (`just bench tails=1`): the
/// section and its JSON printed, nothing written under results/.
pub fn run_tails() -> String {
    let t = tails::measure(false, None);
    format!(
        "{}\n{}",
        tails::section(&t),
        serde_json::to_string_pretty(&json!({ "tails": tails::json(&t) })).unwrap_or_default()
    )
}

/// The scale rows alone (`just bench scale=1`): their table and JSON
/// printed, with any run that failed, nothing written under results/.
pub fn run_scale() -> String {
    let (rows, errors) = scale::measure(&scale::CORES, Accel::Tcg);
    format!(
        "{}\n{}",
        scale::table_and_errors(&rows, &errors),
        serde_json::to_string_pretty(&json!({ "scale": scale::json(&rows, &errors) }))
            .unwrap_or_default()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_are_median_min_max() {
        assert_eq!(
            stat(&[3.0, 1.0, 2.0]),
            Stat {
                median: 2.0,
                min: 1.0,
                max: 3.0
            }
        );
        assert_eq!(stat(&[4.0, 1.0, 2.0, 3.0]).median, 2.5);
        assert!(stat(&[]).median.is_nan());
    }

    #[test]
    fn only_a_kvm_that_is_not_hardware_is_flagged() {
        assert!(not_hardware_flag(Accel::Kvm, KvmKind::Pvm).contains("PVM"));
        assert!(not_hardware_flag(Accel::Kvm, KvmKind::Unknown).contains("not hardware's"));
        assert_eq!(not_hardware_flag(Accel::Kvm, KvmKind::Hardware), "");
        // TCG's tables say EMULATED in the report's first line instead.
        assert_eq!(not_hardware_flag(Accel::Tcg, KvmKind::Pvm), "");
    }

    #[test]
    fn host_counterparts_measure_something() {
        assert!(host::getpid().iter().all(|&x| x > 0.0));
        assert!(host::swapcontext().iter().all(|&x| x > 0.0));
        let mut p = policy_bench::new_policy(sched_registry::default_policy().kind, 100);
        assert!(host::ns_per(1000, || policy_bench::decision(p.as_mut()))
            .iter()
            .all(|&x| x > 0.0));
    }
}
