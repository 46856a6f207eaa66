//! Layer 4: a panic on an AP stops the machine with the panic exit code and
//! says where.
mod common;
use common::*;
use xtask::Accel;

#[test]
fn panic_on_an_ap_stops_the_run() {
    let out = boot("panic-4", 4, Accel::Tcg, "pc", &[], &["test=panic"]);
    assert_exit(&out, abi::ExitCode::Panic);
    // Core, message and location on one line.
    assert!(
        out.console
            .contains("[c3 PANIC] deliberate test panic on core 3 at kernel/src/tests.rs:"),
        "{}",
        tail(&out.console)
    );
    assert_eq!(out.summary["exit"], "panic");
    assert_eq!(out.process_code(), abi::ExitCode::Panic.process_code());
    assert_ne!(out.process_code(), 0);
}
