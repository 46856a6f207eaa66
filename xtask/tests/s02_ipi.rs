//! Layer 2: fixed IPIs from every core to every other, and NMIs, arrive.
mod common;
use common::*;
use xtask::Accel;

fn ipis(name: &str, cpus: u32, machine: &str) {
    let out = boot(name, cpus, Accel::Tcg, machine, &[], &["test=ipi"]);
    assert_checks_pass(&out);
    // One check per receiving core (from every other core), one per AP for
    // the NMI the BSP sent it.
    assert_eq!(
        checks_named(&out, "fixed_ipis_received").len(),
        cpus as usize
    );
    assert_eq!(checks_named(&out, "nmi_received").len(), cpus as usize - 1);
}

#[test]
fn ipis_on_two_cores() {
    ipis("ipi-2", 2, "pc");
}

#[test]
fn ipis_on_eight_cores() {
    ipis("ipi-8", 8, "pc");
}

#[test]
fn ipis_on_sixteen_cores() {
    ipis("ipi-16", 16, "pc");
}

#[test]
fn ipis_on_q35() {
    ipis("ipi-q35", 4, "q35");
}

#[test]
fn ipis_on_microvm() {
    ipis("ipi-microvm", 4, "microvm");
}
