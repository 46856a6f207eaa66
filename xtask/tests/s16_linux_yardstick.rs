//! Layer 16: the yardstick `just bench` puts beside the platform — Debian's
//! cloud kernel booted in the platform's deterministic mode with the
//! static C benchmark as `/init` — boots, finishes, and reports
//! instructions per operation within plausible bounds (wide: a different
//! Debian kernel or glibc moves them, a broken measurement — a clock that
//! is not instruction-driven, a loop the compiler removed, an operation
//! that failed — leaves them). One boot, ~16 s on this 2-core host
//! (fetching the kernel package once per machine: ~27 MB from Debian's
//! registry, cached in `~/.cache/exo/linux-bench`).
mod common;

#[test]
fn linux_guest_reports_plausible_instruction_counts() {
    let _serial = common::HEAVY.lock().unwrap_or_else(|e| e.into_inner());
    let dir = xtask::build::workspace_root().join("target/test-runs/linux-yardstick");
    let l = xtask::bench::linux::measure(&dir).unwrap_or_else(|e| panic!("{e}"));
    // (operation, fewest, most instructions). Measured here on Debian 12's
    // 6.1 cloud kernel: 320, 3,720, 805, 870, 13,100, 10,100.
    let bounds = [
        ("getpid", 50.0, 5_000.0),
        ("sigtrap_roundtrip", 500.0, 50_000.0),
        ("sched_yield", 100.0, 10_000.0),
        ("swapcontext_pair", 100.0, 10_000.0),
        ("pipe_pingpong", 1_000.0, 200_000.0),
        ("futex_pingpong", 1_000.0, 200_000.0),
    ];
    for (op, lo, hi) in bounds {
        let s = l
            .get(op)
            .unwrap_or_else(|| panic!("no `{op}` figure ({})", l.console_log.display()));
        assert!(
            (lo..=hi).contains(&s.median),
            "{op}: {:.0} instructions, outside {lo}..{hi} ({})",
            s.median,
            l.console_log.display()
        );
        // Deterministic: repetitions differ only by where the timer ticks
        // fell (a few percent at most), not by the host's load.
        assert!(
            s.max <= s.min * 1.1,
            "{op}: repetitions {:.0}..{:.0} differ by more than 10% ({})",
            s.min,
            s.max,
            l.console_log.display()
        );
    }
    // A pipe round trip is two system calls per side plus two process
    // switches: more than two getpids.
    assert!(l.get("pipe_pingpong").unwrap().median > 2.0 * l.get("getpid").unwrap().median);
}
