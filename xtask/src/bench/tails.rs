//! Issue 16's tails and per-turn overhead, measured deterministically
//! (TCG, `-icount`) whatever accelerator the rest of `just bench` used:
//! the libOS's overhead on a CPU-bound loop at 1 ms and 10 ms slices
//! (`overhead`, one core), the time a runtime swap of 32 threads holds
//! them off 8 cores (`tbench`), and the kernel-timed revocation (deadline
//! → epilogue entered) and abort (grace end → the core entering another
//! environment) latencies of the `abort` experiment on 1 and 8 cores.
//! Each figure stands beside its target, met or not; the maxima are the
//! targets, so they are reported with the medians.

use serde_json::{json, Value};

use abi::record::RecordKind;

use super::{guest_with, records, series, stat, stat_json, Stat};
use crate::{Accel, RunOutcome};

/// Per-turn overhead targets: (slice µs, largest fraction).
pub const OVERHEAD_TARGETS: [(u64, f64); 2] = [(1000, 0.005), (10_000, 0.001)];
/// The swap target: its maximum over the repetitions, ns.
pub const SWAP_MAX_NS: f64 = 1e6;
/// Revocation and abort targets: their maxima, ns of virtual time.
pub const LATENCY_MAX_NS: f64 = 50_000.0;
/// Cores of the swap and of the issue's latency tails.
pub const TAIL_CORES: u32 = 8;

/// The per-turn overhead at one slice length.
#[derive(Clone, Debug, PartialEq)]
pub struct Overhead {
    pub slice_us: u64,
    /// 1 − (loop rate across slices / bare loop rate).
    pub fraction: f64,
}

impl Overhead {
    /// Guest instructions each turn costs the loop (one core runs one
    /// instruction per `DET_NS_PER_INSN` virtual ns).
    pub fn instructions_per_turn(&self) -> f64 {
        self.fraction * self.slice_us as f64 * 1000.0 / super::DET_NS_PER_INSN
    }

    pub fn target(&self) -> Option<f64> {
        OVERHEAD_TARGETS
            .iter()
            .find(|t| t.0 == self.slice_us)
            .map(|t| t.1)
    }
}

/// Kernel-timed latencies of one kind on one core count.
#[derive(Clone, Debug, PartialEq)]
pub struct Latency {
    /// "revocation" or "abort".
    pub kind: &'static str,
    pub cores: u32,
    pub ns: Stat,
    pub samples: usize,
}

/// A `tbench` run's runtime swaps.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Swap {
    pub cores: u32,
    pub threads: u64,
    /// How long each held the runtime lock: the threads' downtime (no core
    /// decides meanwhile), the target's figure.
    pub held: Stat,
    /// Each call as its caller saw it: the new policy's construction before
    /// the lock, and any time the caller spent off its core, on top.
    pub call: Option<Stat>,
}

/// Everything measured; a run that failed or reported nothing is an error
/// naming it, not a row.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Tails {
    pub overhead: Vec<Overhead>,
    /// On one core (the path alone) and on [`TAIL_CORES`] (the target's).
    pub swap: Vec<Swap>,
    pub latency: Vec<Latency>,
    pub errors: Vec<String>,
}

fn det(
    name: &str,
    test: &str,
    cpus: u32,
    run_ms: u64,
    cmdline: &[&str],
) -> Result<RunOutcome, String> {
    let out = guest_with(name, test, cpus, run_ms, cmdline, Accel::Tcg, true)?;
    if out.exit_name != "success" {
        return Err(format!(
            "{name}: ended {} ({})",
            out.exit_name,
            out.run_dir.display()
        ));
    }
    Ok(out)
}

/// `of(out)`, or an error naming the run and what it lacked.
fn figure<T>(
    name: &str,
    what: &str,
    out: &RunOutcome,
    of: impl Fn(&RunOutcome) -> Option<T>,
) -> Result<T, String> {
    of(out).ok_or_else(|| format!("{name}: no {what} ({})", out.run_dir.display()))
}

/// The overhead record of a run of `overhead`.
pub fn overhead_of(out: &RunOutcome) -> Option<Overhead> {
    let r = records(out, "bench_overhead").into_iter().next()?;
    Some(Overhead {
        slice_us: r["slice_us"].as_u64()?,
        fraction: r["overhead"].as_f64()?,
    })
}

/// The swap records of a run of `tbench`.
pub fn swap_of(out: &RunOutcome) -> Option<Swap> {
    let bench = records(out, "bench");
    let of = |name: &str| bench.iter().find(|r| r["bench"] == name);
    let held = of("swap_downtime")?;
    Some(Swap {
        cores: held["cores"].as_u64()? as u32,
        threads: held["threads"].as_u64()?,
        held: stat(&series(held, "ns")),
        call: of("swap_call").map(|r| stat(&series(r, "ns"))),
    })
}

/// The kernel's latency samples of `kind` in a run.
pub fn latency_of(out: &RunOutcome, kind: &'static str, cores: u32) -> Option<Latency> {
    let ns: Vec<f64> = out
        .records
        .of(RecordKind::Latency)
        .filter(|r| r["kind"] == kind)
        .flat_map(|r| series(r, "ns"))
        .collect();
    (!ns.is_empty()).then(|| Latency {
        kind,
        cores,
        ns: stat(&ns),
        samples: ns.len(),
    })
}

/// Runs the deterministic measurements: all of them, or for the smoke
/// only the one-core `abort` run (seconds). `one_core_swap` is the swap of
/// a deterministic one-core `tbench` run made already (`just bench`'s
/// instruction counts make one); without it, and not in the smoke, one is
/// made here.
pub fn measure(smoke: bool, one_core_swap: Option<Swap>) -> Tails {
    let mut t = Tails::default();
    let fail = |t: &mut Tails, e: String| {
        eprintln!("!! bench: tails: {e}");
        t.errors.push(e);
    };
    if !smoke {
        for (slice, _) in OVERHEAD_TARGETS {
            let word = format!("slice_us={slice}");
            let name = format!("bench-det-overhead-{}ms", slice / 1000);
            match det(&name, "overhead", 1, 3000, &[&word])
                .and_then(|o| figure(&name, "overhead report", &o, overhead_of))
            {
                Ok(o) => t.overhead.push(o),
                Err(e) => fail(&mut t, e),
            }
        }
        let one = match one_core_swap {
            Some(s) => Ok(s),
            None => det("bench-det-swap-1", "tbench", 1, 12_000, &[])
                .and_then(|o| figure("bench-det-swap-1", "swap report", &o, swap_of)),
        };
        let name = format!("bench-det-swap-{TAIL_CORES}");
        let many = det(&name, "tbench", TAIL_CORES, 2000, &[])
            .and_then(|o| figure(&name, "swap report", &o, swap_of));
        for r in [one, many] {
            match r {
                Ok(s) => t.swap.push(s),
                Err(e) => fail(&mut t, e),
            }
        }
    }
    let cores: &[u32] = if smoke { &[1] } else { &[1, TAIL_CORES] };
    for &n in cores {
        let name = format!("bench-det-abort-{n}");
        // `log=warn`: without the live line, console output the kernel's
        // timer interrupt prints once a second before it revokes (72 µs of
        // one core's revocation maximum). Records still print.
        match det(
            &name,
            "abort",
            n,
            if smoke { 1000 } else { 2000 },
            &["log=warn"],
        ) {
            Ok(o) => {
                for kind in ["revocation", "abort"] {
                    match latency_of(&o, kind, n) {
                        Some(l) => t.latency.push(l),
                        None => fail(
                            &mut t,
                            format!("{name}: no {kind} samples ({})", o.run_dir.display()),
                        ),
                    }
                }
            }
            Err(e) => fail(&mut t, e),
        }
    }
    t
}

fn verdict(met: bool) -> &'static str {
    if met {
        "met"
    } else {
        "NOT met"
    }
}

/// The report's section (markdown).
pub fn section(t: &Tails) -> String {
    let mut md = String::from(
        "## Per-turn overhead and tails (deterministic TCG, whatever the accel above)\n\n\
         Issue 16's targets, measured with `-icount` (one core: 8 virtual ns per instruction; \
         8 cores: each core at the same 125 million instructions per virtual second). Overhead: the \
         `overhead` program's counting loop across 100 ms of slices against its bare rate (median of \
         20 paired rounds), and what that costs per turn in instructions. Swap: `tbench`'s \
         `swap_policy` with 32 spinning threads, 20 swaps. Revocation (slice deadline → the owner \
         entering its epilogue) and abort (grace end → the core entering another environment): every \
         sample the kernel timed in the `abort` experiment (spin beside hog, 2 ms slices, 200 µs \
         grace; the kernel keeps the last 4,096 of each). On several cores QEMU runs one vCPU at a \
         time (the kernel's 50 µs `interleave_us` steps set the grain), so a core whose timer fired \
         waits for the others' turns: the 8-core tails hold that wait, which hardware does not have \
         (the one-core rows do not).\n\n\
         | figure | cores | median | max | target | |\n|---|---|---|---|---|---|\n",
    );
    for o in &t.overhead {
        let target = o.target().unwrap_or(f64::NAN);
        md += &format!(
            "| per-turn overhead, CPU-bound loop, {} ms slices | 1 | {:.3}% ({:.0} instructions a turn) | — | ≤ {}% | {} |\n",
            o.slice_us / 1000,
            o.fraction * 100.0,
            o.instructions_per_turn(),
            target * 100.0,
            verdict(o.fraction <= target)
        );
    }
    for w in &t.swap {
        let (target, met) = if w.cores == TAIL_CORES {
            (
                format!("max ≤ {:.0} ms", SWAP_MAX_NS / 1e6),
                verdict(w.held.max <= SWAP_MAX_NS),
            )
        } else {
            ("— (the path alone)".to_string(), "")
        };
        md += &format!(
            "| runtime swap, {} threads (time the swap holds them off the cores: the runtime lock held) | {} | {:.3} ms | {:.3} ms | {target} | {met} |\n",
            w.threads,
            w.cores,
            w.held.median / 1e6,
            w.held.max / 1e6,
        );
        if let Some(c) = w.call {
            md += &format!(
                "| the swap call as its caller sees it (adds the policy's construction and the caller's own time off its core) | {} | {:.3} ms | {:.3} ms | — | |\n",
                w.cores,
                c.median / 1e6,
                c.max / 1e6,
            );
        }
    }
    for l in &t.latency {
        md += &format!(
            "| {} latency ({} samples) | {} | {:.1} µs | {:.1} µs | max ≤ {:.0} µs | {} |\n",
            l.kind,
            l.samples,
            l.cores,
            l.ns.median / 1e3,
            l.ns.max / 1e3,
            LATENCY_MAX_NS / 1e3,
            verdict(l.ns.max <= LATENCY_MAX_NS)
        );
    }
    md += WHY;
    for e in &t.errors {
        md += &format!("\nNot measured: {e}\n");
    }
    md
}

/// What det runs showed behind the figures (issue 16; `just bench
/// tails=1` reruns them, their records are in the runs' directories).
const WHY: &str = "\nWhere the figures come from (traced in det runs): a turn's end on a core the \
program holds is a timer interrupt, the revocation upcall, the libOS's epilogue, a yield system call \
and the prologue — the directed-yield ping-pong's path, which the overhead's instructions a turn \
count (the targets allow 625 at 1 ms and 1,250 at 10 ms). The swap's figure is how long it held the \
runtime lock, the time no core can decide what runs; the call as its caller sees it adds the new \
policy's construction and any wait of the caller for the lock or for its own core. On one core the \
hold is the path alone (repeatable by target policy; the swap to lottery is the longest); on 8 cores \
the same instructions take longer where the emulator's round robin gives the holder's vCPU less of the \
clock, and the maximum moves with that: 0.45 to 1.82 ms over 15 timings of one build (`interleave_us` \
20 to 80), over 1 ms in two, so a \"met\" there is the timing's, not a margin. The revocation and abort runs boot with \
`log=warn`: the kernel's once-a-second live line (`t=… cpu:`), which core 0's timer interrupt prints \
before it revokes, was one core's revocation maximum (72 µs). Most of the abort is the `repossession` \
record printed before the next environment is entered: console output inside the interval, kept \
(it is the run's data). On 8 cores the distributions move with `interleave_us` (the emulator's \
round-robin grain), not with the kernel's path, and their maxima are fragile: the same build repeats \
them exactly, but a change to an unrelated program in the boot modules moved the 8-core abort \
maximum from 1.06 to 1.40 ms.\n";

/// The JSON's `tails` object (numbers; ns unless named otherwise).
pub fn json(t: &Tails) -> Value {
    json!({
        "mode": "deterministic TCG (-icount)",
        "overhead": t.overhead.iter().map(|o| json!({
            "slice_us": o.slice_us,
            "overhead": o.fraction,
            "instructions_per_turn": o.instructions_per_turn(),
            "target_max": o.target(),
            "met": o.target().is_some_and(|m| o.fraction <= m),
        })).collect::<Vec<_>>(),
        "swap": t.swap.iter().map(|w| json!({
            "cores": w.cores, "threads": w.threads, "ns": stat_json(w.held),
            "call_ns": w.call.map(stat_json),
            "target_max_ns": (w.cores == TAIL_CORES).then_some(SWAP_MAX_NS),
            "met": (w.cores == TAIL_CORES).then_some(w.held.max <= SWAP_MAX_NS),
        })).collect::<Vec<_>>(),
        "latency": t.latency.iter().map(|l| json!({
            "kind": l.kind, "cores": l.cores, "ns": stat_json(l.ns), "samples": l.samples,
            "target_max_ns": LATENCY_MAX_NS, "met": l.ns.max <= LATENCY_MAX_NS,
        })).collect::<Vec<_>>(),
        "errors": t.errors,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(median: f64, max: f64) -> Stat {
        Stat {
            median,
            min: 0.0,
            max,
        }
    }

    #[test]
    fn a_turn_costs_the_overhead_of_its_slice_in_instructions() {
        let o = Overhead {
            slice_us: 1000,
            fraction: 0.016,
        };
        // 1 ms is 125,000 instructions at 8 ns each.
        assert!((o.instructions_per_turn() - 2000.0).abs() < 1e-6);
        assert_eq!(o.target(), Some(0.005));
        assert_eq!(
            Overhead {
                slice_us: 2000,
                fraction: 0.0
            }
            .target(),
            None
        );
    }

    fn outcome(console: &str) -> RunOutcome {
        RunOutcome {
            end: crate::qemu::End::Timeout,
            exit: None,
            exit_name: "success".into(),
            records: crate::records::parse_records(console),
            console: console.into(),
            run_dir: "r".into(),
            summary_path: "r/summary.json".into(),
            summary: Value::Null,
        }
    }

    #[test]
    fn a_tbench_run_gives_the_hold_and_the_call() {
        let line = |bench: &str, ns: &str| {
            format!(
                "@@exo user {{\"env\":256,\"name\":\"tbench\",\"core\":4,\"kind\":\"bench\",\"bench\":\"{bench}\",\"iters\":1,\"cycles\":[{ns}],\"ns\":[{ns}],\"cores\":8,\"threads\":32}}\n"
            )
        };
        let console = line("swap_downtime", "1.0,3.0,2.0") + &line("swap_call", "4.0,5.0,6.0");
        let w = swap_of(&outcome(&console)).unwrap();
        assert_eq!((w.cores, w.threads), (8, 32));
        assert_eq!((w.held.median, w.held.max), (2.0, 3.0));
        assert_eq!(w.call.map(|c| (c.median, c.max)), Some((5.0, 6.0)));
        // A run without the call's record still has its hold; one without
        // the hold has no swap.
        assert_eq!(
            swap_of(&outcome(&line("swap_downtime", "1.0")))
                .unwrap()
                .call,
            None
        );
        assert!(swap_of(&outcome(&line("swap_call", "1.0"))).is_none());
    }

    #[test]
    fn the_maximum_decides_the_tails() {
        let t = Tails {
            overhead: vec![Overhead {
                slice_us: 10_000,
                fraction: 0.0005,
            }],
            swap: vec![
                Swap {
                    cores: 1,
                    threads: 32,
                    held: s(0.4e6, 0.7e6),
                    call: None,
                },
                Swap {
                    cores: 8,
                    threads: 32,
                    held: s(0.4e6, 1.4e6),
                    call: Some(s(0.5e6, 0.9e6)),
                },
            ],
            latency: vec![
                Latency {
                    kind: "revocation",
                    cores: 1,
                    ns: s(4_000.0, 40_000.0),
                    samples: 10,
                },
                Latency {
                    kind: "abort",
                    cores: 8,
                    ns: s(10_000.0, 60_000.0),
                    samples: 10,
                },
            ],
            errors: vec!["x: ended timeout".into()],
        };
        let j = json(&t);
        assert_eq!(j["overhead"][0]["met"], true);
        assert_eq!(
            j["swap"][1]["met"], false,
            "a median under 1 ms does not meet it"
        );
        assert_eq!(j["latency"][0]["met"], true);
        assert_eq!(j["latency"][1]["met"], false);
        let md = section(&t);
        assert!(
            md.contains("| 8 | 0.400 ms | 1.400 ms | max ≤ 1 ms | NOT met |"),
            "{md}"
        );
        assert_eq!(j["swap"][0]["met"], Value::Null, "one core has no target");
        // The call's time is shown, and judged by nothing: the held lock is
        // the target's figure.
        assert!(
            md.contains("caller's own time off its core) | 8 | 0.500 ms | 0.900 ms | — | |"),
            "{md}"
        );
        assert_eq!(j["swap"][1]["call_ns"]["max"], 0.9e6);
        // The hold is judged, not the call: a call over 1 ms whose hold is
        // under it meets the target.
        let t = Tails {
            swap: vec![Swap {
                cores: 8,
                threads: 32,
                held: s(0.3e6, 0.9e6),
                call: Some(s(0.4e6, 2.1e6)),
            }],
            ..Tails::default()
        };
        assert_eq!(json(&t)["swap"][0]["met"], true);
        assert!(
            section(&t).contains("| 8 | 0.300 ms | 0.900 ms | max ≤ 1 ms | met |"),
            "{}",
            section(&t)
        );
        assert!(md.contains("Not measured: x: ended timeout"), "{md}");
    }
}
