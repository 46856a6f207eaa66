//! Layer 2: fixed IPIs from every core to every other, and NMIs, arrive.
mod common;
use common::*;
use xtask::Accel;

#[test]
fn ipis_on_two_cores() {
    assert_checks_pass(&boot("ipi-2", 2, Accel::Tcg, "pc", &[], &["test=ipi"]));
}

#[test]
fn ipis_on_eight_cores() {
    assert_checks_pass(&boot("ipi-8", 8, Accel::Tcg, "pc", &[], &["test=ipi"]));
}

#[test]
fn ipis_on_q35() {
    assert_checks_pass(&boot("ipi-q35", 4, Accel::Tcg, "q35", &[], &["test=ipi"]));
}
