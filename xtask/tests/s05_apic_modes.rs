//! Layer 5: both local-APIC modes. TCG (QEMU 7.2) has no x2APIC, so it
//! exercises xAPIC; KVM offers x2APIC, and a CPU model without it
//! (`-cpu host,-x2apic`) forces xAPIC there. The KVM cases print why
//! they did not run when KVM is unusable; the TCG cases always run.
mod common;
use common::*;
use xtask::Accel;

fn apic_mode(out: &xtask::RunOutcome) -> String {
    out.summary["apic_mode"].as_str().unwrap_or("").to_string()
}

#[test]
fn tcg_uses_xapic() {
    let out = boot("apic-tcg", 4, Accel::Tcg, "pc", &[], &["test=ipi"]);
    assert_checks_pass(&out);
    assert_eq!(apic_mode(&out), "xapic");
    assert_eq!(out.summary["accel"], "tcg");
}

#[test]
fn kvm_uses_x2apic_and_all_platform_tests_pass() {
    if !kvm() {
        return;
    }
    for test in ["ipi", "timer", "fault", "boot"] {
        let out = boot(
            &format!("apic-kvm-x2-{test}"),
            4,
            Accel::Kvm,
            "microvm",
            &[],
            &[&format!("test={test}")],
        );
        assert_checks_pass(&out);
        assert_eq!(apic_mode(&out), "x2apic");
        assert_eq!(out.summary["accel"], "kvm");
        assert_eq!(out.summary["hypervisor"], "KVM");
    }
}

#[test]
fn kvm_cpu_model_without_x2apic_uses_xapic() {
    if !kvm() {
        return;
    }
    for test in ["ipi", "timer"] {
        let out = boot(
            &format!("apic-kvm-xapic-{test}"),
            4,
            Accel::Kvm,
            "microvm",
            &["-cpu", "host,-arch-capabilities,-x2apic"],
            &[&format!("test={test}")],
        );
        assert_checks_pass(&out);
        assert_eq!(apic_mode(&out), "xapic");
        assert_eq!(out.summary["hypervisor"], "KVM");
    }
}

#[test]
fn kvm_on_pc_with_eight_cores() {
    if !kvm() {
        return;
    }
    let out = boot("kvm-pc-8", 8, Accel::Kvm, "pc", &[], &["test=ipi"]);
    assert_checks_pass(&out);
    assert_eq!(cpus_online(&out), 8);
}
