//! The time base: the TSC, calibrated once on the BSP. Sources in order of
//! trust: the hypervisor's own figure (KVM leaf 0x40000010), CPUID leaf 0x15,
//! the PIT's channel 0 counter (read back, no gate needed, so it also works
//! on `microvm`), the ACPI PM timer.

use core::sync::atomic::{AtomicU64, Ordering};

use raw_cpuid::CpuId;
use x86::io::{inb, outb};

static TSC_KHZ: AtomicU64 = AtomicU64::new(0);
/// `abi::clock::ns_per_tick(TSC_KHZ)`, computed once.
static TSC_NS_SCALE: AtomicU64 = AtomicU64::new(abi::clock::ns_per_tick(1));
static TSC_AT_BOOT: AtomicU64 = AtomicU64::new(0);
static SOURCE: spin::Once<&'static str> = spin::Once::new();

/// Reads the TSC.
#[inline]
pub fn rdtsc() -> u64 {
    // SAFETY: rdtsc has no side effects.
    unsafe { core::arch::x86_64::_rdtsc() }
}

/// Name of the hypervisor from CPUID leaf 0x40000000 ("KVMKVMKVM", "TCGTCGTCGTCG"), if any.
pub fn hypervisor() -> Option<&'static str> {
    let cpuid = CpuId::new();
    let info = cpuid.get_hypervisor_info()?;
    Some(match info.identify() {
        raw_cpuid::Hypervisor::KVM => "KVM",
        raw_cpuid::Hypervisor::QEMU => "TCG",
        raw_cpuid::Hypervisor::Xen => "Xen",
        raw_cpuid::Hypervisor::VMware => "VMware",
        raw_cpuid::Hypervisor::HyperV => "HyperV",
        _ => "other",
    })
}

/// The fewest TSC cycles between two back-to-back `rdtsc`s (best of 64):
/// tens of cycles where the instruction runs natively (hardware, KVM with
/// VMX/SVM) or is translated (TCG); thousands where every read traps to
/// the hypervisor, as under PVM (`kvm_pvm`). The runner reads it from the
/// boot record to tell what the guest really runs on.
pub fn rdtsc_cost_cycles() -> u64 {
    let mut best = u64::MAX;
    for _ in 0..64 {
        let t0 = rdtsc();
        let t1 = rdtsc();
        best = best.min(t1.wrapping_sub(t0));
    }
    best
}

/// KVM's timing leaf 0x40000010: (tsc_khz, apic_bus_khz), when offered.
fn kvm_timing_leaf() -> Option<(u64, u64)> {
    let cpuid = CpuId::new();
    let info = cpuid.get_hypervisor_info()?;
    let khz = info.tsc_frequency()?;
    let apic = info.apic_frequency()?;
    (khz != 0).then_some((u64::from(khz), u64::from(apic)))
}

/// APIC bus rate in kHz as reported by the hypervisor, if it does.
pub fn hypervisor_apic_khz() -> Option<u64> {
    kvm_timing_leaf().map(|(_, apic)| apic).filter(|&k| k != 0)
}

fn pit_read() -> u16 {
    // SAFETY: latching and reading PIT channel 0, which nothing else uses
    // (its interrupt line is masked at the PIC).
    unsafe {
        outb(0x43, 0x00);
        let lo = inb(0x40);
        let hi = inb(0x40);
        u16::from_le_bytes([lo, hi])
    }
}

/// TSC kHz measured over `ms` milliseconds against a free-running counter
/// of `hz` that `read` returns and that wraps at `mask + 1`; `elapsed`
/// turns two readings into ticks (counters count up or down). `None` when
/// the counter does not move (no such timer on this machine).
fn calibrate_against(
    hz: u64,
    ms: u64,
    read: impl Fn() -> u64,
    elapsed: impl Fn(u64, u64) -> u64,
) -> Option<u64> {
    let target = hz * ms / 1000;
    let mut prev = read();
    let mut ticks = 0u64;
    let mut stuck = 0u32;
    let t0 = rdtsc();
    while ticks < target {
        let cur = read();
        if cur == prev {
            stuck += 1;
            if stuck > 2_000_000 {
                return None;
            }
            continue;
        }
        stuck = 0;
        ticks += elapsed(prev, cur);
        prev = cur;
    }
    Some((rdtsc() - t0) * hz / ticks / 1000)
}

/// TSC kHz against PIT channel 0 (1.193182 MHz, counting down, 16 bits).
fn calibrate_pit(ms: u64) -> Option<u64> {
    // SAFETY: channel 0, lobyte/hibyte, mode 2 (rate generator), reload 65536.
    unsafe {
        outb(0x43, 0x34);
        outb(0x40, 0);
        outb(0x40, 0);
    }
    calibrate_against(
        1_193_182,
        ms,
        || u64::from(pit_read()),
        |prev, cur| (prev as u16).wrapping_sub(cur as u16).into(),
    )
}

/// TSC kHz against the ACPI PM timer (3.579545 MHz, counting up, 24 bits).
fn calibrate_pm_timer(port: u16, ms: u64) -> Option<u64> {
    // SAFETY: the PM timer is a read-only counter.
    let read = || u64::from(unsafe { x86::io::inl(port) } & 0x00FF_FFFF);
    calibrate_against(3_579_545, ms, read, |prev, cur| {
        cur.wrapping_sub(prev) & 0x00FF_FFFF
    })
}

/// Calibrates the TSC; `pm_timer_port` comes from the FADT when present.
pub fn calibrate(pm_timer_port: Option<u16>) {
    let cpuid = CpuId::new();
    let (khz, source) = if let Some((khz, _)) = kvm_timing_leaf() {
        (khz, "kvm-leaf")
    } else if let Some(khz) = cpuid
        .get_tsc_info()
        .and_then(|t| t.tsc_frequency())
        .filter(|&hz| hz != 0)
        .map(|hz| hz / 1000)
    {
        (khz, "cpuid-15h")
    } else if let Some(khz) = calibrate_pit(20) {
        (khz, "pit")
    } else if let Some(khz) = pm_timer_port.and_then(|p| calibrate_pm_timer(p, 20)) {
        (khz, "acpi-pm")
    } else {
        panic!("no timer to calibrate the TSC against");
    };
    TSC_KHZ.store(khz, Ordering::Relaxed);
    TSC_NS_SCALE.store(abi::clock::ns_per_tick(khz), Ordering::Relaxed);
    TSC_AT_BOOT.store(rdtsc(), Ordering::Relaxed);
    SOURCE.call_once(|| source);
    log::info!("tsc: {} kHz (from {source})", khz);
}

/// TSC value at calibration (the zero of `now_ns`).
pub fn tsc_base() -> u64 {
    TSC_AT_BOOT.load(Ordering::Relaxed)
}

/// TSC rate in kHz.
pub fn tsc_khz() -> u64 {
    TSC_KHZ.load(Ordering::Relaxed)
}

/// Where the TSC rate came from.
pub fn source() -> &'static str {
    SOURCE.get().copied().unwrap_or("uncalibrated")
}

/// The fixed-point scale of [`tsc_to_ns`] (exported to libOSes).
pub fn tsc_ns_scale() -> u64 {
    TSC_NS_SCALE.load(Ordering::Relaxed)
}

/// TSC ticks to nanoseconds ([`abi::clock`]: the conversion libOSes use too).
pub fn tsc_to_ns(ticks: u64) -> u64 {
    abi::clock::ticks_to_ns(ticks, tsc_ns_scale())
}

/// Nanoseconds since calibration: the global clock every core shares
/// (the TSC is synchronised across vCPUs by the hypervisor).
pub fn now_ns() -> u64 {
    tsc_to_ns(rdtsc().saturating_sub(TSC_AT_BOOT.load(Ordering::Relaxed)))
}

/// Waits until `done()`, giving up (false) only once `progress()`, a count
/// of steps made toward it, has stood still for `patience_ns`. For waits
/// on other cores: on an oversubscribed host each vCPU may be away for a
/// while, and a fixed deadline for all of them fails while they are still
/// getting through; one that stops moving has stopped.
pub fn wait_until(
    mut done: impl FnMut() -> bool,
    mut progress: impl FnMut() -> u64,
    patience_ns: u64,
) -> bool {
    let mut seen = progress();
    let mut deadline = now_ns() + patience_ns;
    while !done() {
        let now = now_ns();
        let p = progress();
        if p != seen {
            seen = p;
            deadline = now + patience_ns;
        } else if now > deadline {
            return false;
        }
        core::hint::spin_loop();
    }
    true
}

/// Busy-waits `us` microseconds.
pub fn delay_us(us: u64) {
    delay_ns(us * 1000);
}

/// Busy-waits `ns` nanoseconds.
pub fn delay_ns(ns: u64) {
    let end = rdtsc() + ns * tsc_khz() / 1_000_000;
    while rdtsc() < end {
        core::hint::spin_loop();
    }
}
