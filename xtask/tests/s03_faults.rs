//! Layer 3: kernel-mode exceptions are caught on every core.
mod common;
use common::*;
use xtask::Accel;

#[test]
fn faults_caught_on_four_cores() {
    let out = boot("fault-4", 4, Accel::Tcg, "pc", &[], &["test=fault"]);
    assert_checks_pass(&out);
    // Four kinds plus the breakpoint, on each core.
    assert_eq!(
        out.records.of(abi::record::RecordKind::Check).count(),
        4 * 5
    );
}
