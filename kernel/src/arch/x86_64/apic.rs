//! The local APIC of each core, through the `x2apic` crate: x2APIC (MSR)
//! mode when CPUID offers it, xAPIC (MMIO through the uncached direct map)
//! otherwise. Hides the one difference callers would trip on: in xAPIC mode
//! the ID register and the ICR destination carry the id in bits 31:24.

use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use raw_cpuid::CpuId;
use x2apic::lapic::{LocalApicBuilder, TimerDivide, TimerMode};

use crate::arch::interrupts::vector;
use crate::arch::percpu;

static X2APIC: AtomicBool = AtomicBool::new(false);
/// APIC timer counts per millisecond (divide-by-1), measured on the BSP.
static TIMER_PER_MS: AtomicU64 = AtomicU64::new(0);

/// Which register interface the local APICs use.
pub fn mode_name() -> &'static str {
    if X2APIC.load(Ordering::Relaxed) {
        "x2apic"
    } else {
        "xapic"
    }
}

/// Enables this core's local APIC with the timer masked-off (count 0) and
/// returns its APIC id.
pub fn init_this_core() -> u32 {
    let x2 = CpuId::new()
        .get_feature_info()
        .is_some_and(|f| f.has_x2apic());
    X2APIC.store(x2, Ordering::Relaxed);
    // SAFETY: reading IA32_APIC_BASE has no side effects.
    let base = unsafe { x86::msr::rdmsr(x86::msr::IA32_APIC_BASE) } & 0xFFFF_F000;
    let mut apic = LocalApicBuilder::new()
        .timer_vector(vector::TIMER as usize)
        .error_vector(vector::APIC_ERROR as usize)
        .spurious_vector(vector::SPURIOUS as usize)
        .timer_mode(TimerMode::OneShot)
        .timer_divide(TimerDivide::Div1)
        .timer_initial(0)
        .set_xapic_base(crate::arch::mm::phys_to_virt(base))
        .build()
        .unwrap_or_else(|e| panic!("local APIC: {e}"));
    // SAFETY: the vectors above have handlers in every core's IDT; the
    // legacy PIC is masked, so LINT0/1 being reprogrammed is harmless.
    //
    // `enable()` is called twice on purpose: it unmasks the LVT entries before
    // setting the software-enable bit, and while an APIC is software-disabled
    // (as every AP's is after INIT) unmask writes are ignored (SDM 10.4.7.2).
    // The second call runs with the APIC enabled, so the unmasks stick. TCG
    // does not enforce the rule; KVM does.
    let raw_id = unsafe {
        apic.enable();
        apic.enable();
        apic.id()
    };
    percpu::set_apic(apic);
    if x2 {
        raw_id
    } else {
        raw_id >> 24
    }
}

fn destination(apic_id: u32) -> u32 {
    if X2APIC.load(Ordering::Relaxed) {
        apic_id
    } else {
        apic_id << 24
    }
}

/// Waits until the previous IPI left this core's APIC (xAPIC only; the
/// x2APIC ICR has no pending state). Bounded: a stuck APIC is reported by
/// the caller's own timeout, not by hanging here.
fn wait_icr_idle(apic: &mut x2apic::lapic::LocalApic) {
    if X2APIC.load(Ordering::Relaxed) {
        return;
    }
    for _ in 0..1_000_000 {
        // SAFETY: reading the ICR delivery-status bit.
        if !unsafe { apic.get_ipi_delivery_status() } {
            return;
        }
        core::hint::spin_loop();
    }
}

/// Sends a fixed-vector IPI to the core with `apic_id`.
pub fn send_ipi(apic_id: u32, vector: u8) {
    percpu::with_apic(|apic| {
        wait_icr_idle(apic);
        // SAFETY: a fixed IPI to a valid APIC id only raises `vector` there.
        unsafe { apic.send_ipi(vector, destination(apic_id)) };
    });
}

/// Sends an NMI to the core with `apic_id`.
pub fn send_nmi(apic_id: u32) {
    percpu::with_apic(|apic| {
        wait_icr_idle(apic);
        // SAFETY: the NMI handler on every core is installed before it is
        // marked online.
        unsafe { apic.send_nmi(destination(apic_id)) };
    });
}

/// Sends INIT to the core with `apic_id`.
pub fn send_init(apic_id: u32) {
    percpu::with_apic(|apic| {
        wait_icr_idle(apic);
        // SAFETY: INIT resets only the target AP, which is not running yet.
        unsafe { apic.send_init_ipi(destination(apic_id)) };
    });
}

/// Sends a start-up IPI pointing the AP at physical page `page`.
pub fn send_sipi(apic_id: u32, page: u8) {
    percpu::with_apic(|apic| {
        wait_icr_idle(apic);
        // SAFETY: the trampoline has been copied to `page` before this.
        unsafe { apic.send_sipi(page, destination(apic_id)) };
    });
}

/// Signals end of interrupt to this core's APIC.
pub fn eoi() {
    percpu::with_apic(|apic| {
        // SAFETY: called at the end of an APIC-delivered interrupt handler.
        unsafe { apic.end_of_interrupt() }
    });
}

/// Measures the APIC timer rate against the calibrated TSC (or takes it from
/// the hypervisor), on the BSP.
pub fn calibrate_timer() {
    let per_ms = match crate::arch::time::hypervisor_apic_khz() {
        Some(khz) => khz,
        None => {
            let start = percpu::with_apic(|apic| {
                // SAFETY: programming this core's own timer.
                unsafe {
                    apic.set_timer_initial(u32::MAX);
                    apic.timer_current()
                }
            });
            crate::arch::time::delay_us(10_000);
            let now = percpu::with_apic(|apic| {
                // SAFETY: reading and stopping this core's own timer.
                unsafe {
                    let n = apic.timer_current();
                    apic.set_timer_initial(0);
                    n
                }
            });
            u64::from(start - now) / 10
        }
    };
    TIMER_PER_MS.store(per_ms.max(1), Ordering::Relaxed);
    log::info!("apic timer: {per_ms} counts/ms ({} mode)", mode_name());
}

/// Arms this core's one-shot timer to fire `ns` from now.
pub fn arm_timer_ns(ns: u64) {
    let per_ms = TIMER_PER_MS.load(Ordering::Relaxed);
    // In u64 (a 128-bit division is a `__udivti3` call on every arming):
    // a product that saturates is far past the largest count anyway.
    let count = (ns.saturating_mul(per_ms) / 1_000_000).clamp(1, u64::from(u32::MAX));
    percpu::with_apic(|apic| {
        // SAFETY: programming this core's own timer.
        unsafe { apic.set_timer_initial(count as u32) }
    });
}

/// Stops this core's timer.
pub fn stop_timer() {
    percpu::with_apic(|apic| {
        // SAFETY: programming this core's own timer.
        unsafe { apic.set_timer_initial(0) }
    });
}
