//! KVM's paravirtual steal-time clock: per vCPU, the time the host ran
//! something else while this vCPU was runnable. A grace period is extended
//! by the steal it contains (`slices::Seen::steal_clock_ns`): an
//! environment is not repossessed for time its core was not running at
//! all, which is how Linux keeps steal out of a task's runtime.
//!
//! The guest registers one 64-byte record per vCPU (`MSR_KVM_STEAL_TIME`);
//! the host updates it whenever it schedules the vCPU in, making its
//! version odd while it writes. Offered only under KVM, when CPUID leaf
//! 0x40000001 says so; under TCG and on hardware there is none, and the
//! clock reads 0 for ever.

use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicU8, Ordering};

use abi::shared::MAX_CORES;
use raw_cpuid::{CpuId, Hypervisor};
use x86::msr::wrmsr;

use super::boot::KERNEL_VMA;

/// KVM's steal-time MSR; bit 0 of the value enables the record at the
/// physical address in the rest.
const MSR_KVM_STEAL_TIME: u32 = 0x4b56_4d03;
const KVM_MSR_ENABLED: u64 = 1;
/// CPUID 0x40000001 EAX: the host offers steal time.
const KVM_FEATURE_STEAL_TIME: u32 = 1 << 5;

/// `struct kvm_steal_time` of KVM's ABI: written by the host, read here.
#[repr(C, align(64))]
struct StealRecord {
    /// Nanoseconds stolen so far.
    steal: AtomicU64,
    /// Odd while the host writes the record.
    version: AtomicU32,
    flags: AtomicU32,
    preempted: AtomicU8,
    _pad: [u8; 47],
}

const _: () = assert!(core::mem::size_of::<StealRecord>() == 64);

/// One record per core, in the kernel image (its physical address is its
/// virtual one less `KERNEL_VMA`), so the host writes it from boot on.
static RECORDS: [StealRecord; MAX_CORES] = [const {
    StealRecord {
        steal: AtomicU64::new(0),
        version: AtomicU32::new(0),
        flags: AtomicU32::new(0),
        preempted: AtomicU8::new(0),
        _pad: [0; 47],
    }
}; MAX_CORES];

static OFFERED: AtomicBool = AtomicBool::new(false);

/// Whether the host offers steal time (KVM, with the feature bit).
fn host_offers() -> bool {
    let cpuid = CpuId::new();
    let kvm = cpuid
        .get_hypervisor_info()
        .is_some_and(|h| h.identify() == Hypervisor::KVM);
    kvm && raw_cpuid::cpuid!(0x4000_0001).eax & KVM_FEATURE_STEAL_TIME != 0
}

/// Registers this core's record with the host, if it offers steal time.
/// Every core calls this once at bring-up.
pub fn enable_this_core(core: usize) {
    if core >= MAX_CORES || !host_offers() {
        return;
    }
    let pa = &RECORDS[core] as *const StealRecord as u64 - KERNEL_VMA;
    // SAFETY: KVM's steal-time MSR, offered by the host (checked above);
    // the record is 64-byte aligned, in memory the kernel keeps for its
    // whole life, and nothing but the host writes it.
    unsafe { wrmsr(MSR_KVM_STEAL_TIME, pa | KVM_MSR_ENABLED) };
    OFFERED.store(true, Ordering::Release);
}

/// Whether the cores' steal-time clocks run (for the boot record).
pub fn offered() -> bool {
    OFFERED.load(Ordering::Acquire)
}

/// Time stolen from `core`'s vCPU so far, in ns (0 without steal time).
pub fn stolen_ns(core: usize) -> u64 {
    let Some(r) = RECORDS.get(core) else {
        return 0;
    };
    // The host writes it only while scheduling this vCPU in, so a read
    // from this core never meets a write half done; from another core a
    // few tries are plenty, and a host that left the version odd gets the
    // last value read rather than a core spinning on it.
    let mut steal = 0;
    for _ in 0..64 {
        let before = r.version.load(Ordering::Acquire);
        steal = r.steal.load(Ordering::Acquire);
        if before & 1 == 0 && r.version.load(Ordering::Acquire) == before {
            break;
        }
        core::hint::spin_loop();
    }
    steal
}
