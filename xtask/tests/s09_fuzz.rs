//! Layer 9: a ring-3 fuzzer hammers the system-call interface (short
//! version; `just fuzz` runs the long one). The kernel must not fault, the
//! fuzzer must only ever get errors (never be killed), and the environment
//! beside it keeps its share. Deterministic runs: each experiment's checks
//! bound `spin`'s share to 2%, and these tests count calls and creations,
//! neither of which plain TCG measures apart from the host's load (`just
//! fuzz seconds=2` there once gave `spin` 0.478 of its 0.5 beside other
//! QEMUs).
mod common;
use abi::record::RecordKind;
use common::*;

#[test]
fn syscall_fuzzing_from_ring_3_hurts_nobody() {
    let out = boot_det(
        "fuzz-short",
        2,
        "pc",
        &[],
        &[
            "test=fuzz",
            "run_ms=4000",
            "slice_us=10000",
            "grace_us=3000",
        ],
    );
    assert_checks_pass(&out);
    let last = last_report(&out, "fuzz");
    assert!(last["calls"].as_u64().unwrap() >= 100_000, "{last}");
    let results = last["results"].as_object().unwrap();
    assert!(results.len() >= 10, "errors of many kinds expected: {last}");
    // The stateful sequences (a frame mapped twice, refused while mapped,
    // freed once unmapped): many ran, and every answer was the ABI's.
    assert!(last["sequences"].as_u64().unwrap() >= 500, "{last}");
    assert_eq!(last["violations"], 0, "{last}");
    assert!(!out.console.contains("PANIC"));
}

#[test]
fn a_storm_of_creations_and_kills_returns_every_frame_and_slot() {
    let out = boot_det(
        "storm",
        4,
        "pc",
        &[],
        &[
            "test=storm",
            "run_ms=4000",
            "slice_us=10000",
            "grace_us=3000",
        ],
    );
    assert_checks_pass(&out);
    let spawned = spawned(&out);
    assert!(spawned > 50, "only {spawned} environments created");
}

#[test]
fn garbage_in_shared_pages_is_refused_or_made_safe() {
    let out = boot_det(
        "scribble",
        2,
        "pc",
        &[],
        &[
            "test=scribble",
            "run_ms=1500",
            "slice_us=10000",
            "grace_us=3000",
        ],
    );
    assert_checks_pass(&out);
    let r: Vec<_> = out
        .records
        .of(RecordKind::User)
        .filter(|r| r["kind"] == "scribble")
        .collect();
    assert!(
        r.iter().any(|r| r["kernel_rip_refused"] == true),
        "{}",
        tail(&out.console)
    );
    // Reserved MXCSR bits in the image were cleared, not loaded (which would
    // fault the kernel): the context landed.
    assert!(
        r.iter().any(|r| r["landed"] == true),
        "{}",
        tail(&out.console)
    );
}
