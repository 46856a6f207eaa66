//! Layer 3: kernel-mode exceptions are caught on every core.
mod common;
use common::*;
use xtask::Accel;

#[test]
fn faults_caught_on_four_cores() {
    let out = boot("fault-4", 4, Accel::Tcg, "pc", &[], &["test=fault"]);
    assert_checks_pass(&out);
    // Under TCG every core checks #PF, #GP, #UD, #DE and the #BP round trip.
    for check in [
        "page_fault_caught",
        "general_protection_caught",
        "invalid_opcode_caught",
        "divide_error_caught",
        "breakpoint_resumes",
    ] {
        assert_eq!(checks_named(&out, check).len(), 4, "{check}");
    }
}
