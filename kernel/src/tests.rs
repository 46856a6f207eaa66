//! Kernel-side tests, selected with `test=<name>` on the command line. Each
//! reports `check` records; any failed check ends the run with
//! `ExitCode::TestFailed`. The host-side suite (`xtask/tests`) boots each one.

use core::sync::atomic::{AtomicUsize, Ordering};

use abi::ExitCode;

use crate::arch::interrupts::vector;
use crate::arch::{apic, irq, percpu, smp, time};
use crate::{record, trap};

/// Runs the test `name`.
pub fn run(name: &str) -> ExitCode {
    let ok = match name {
        "boot" => boot(),
        "timer" => timer(),
        "ipi" => ipi(),
        "fault" => fault(),
        "panic" => panic_on_last_core(),
        "corespeed" => core_speed(),
        _ => {
            log::error!(
                "no kernel test named `{name}` (have: boot timer ipi fault panic corespeed)"
            );
            return ExitCode::BadBootInput;
        }
    };
    if ok {
        ExitCode::Success
    } else {
        ExitCode::TestFailed
    }
}

/// Every described core is online with a distinct APIC id.
fn boot() -> bool {
    let n = smp::cores();
    let online = percpu::ONLINE.load(Ordering::Acquire) as usize;
    let mut ok = record::check(
        "boot",
        "all_started_cores_online",
        online == n,
        format_args!("{online} of {n}"),
    );
    let mut ids: alloc::vec::Vec<u32> = (0..n).map(smp::apic_id).collect();
    ids.sort_unstable();
    ids.dedup();
    ok &= record::check(
        "boot",
        "distinct_apic_ids",
        ids.len() == n,
        format_args!("{} distinct of {n}", ids.len()),
    );
    let (pages, bad, first) = crate::arch::mm::image_w_xor_x_violations();
    ok &= record::check(
        "boot",
        "kernel_image_w_xor_x",
        pages > 0 && bad == 0,
        format_args!(
            "{bad} of {pages} image pages writable and executable, or writable read-only data (first {:#x})",
            first.unwrap_or(0)
        ),
    );
    ok
}

static TIMER_FAILS: AtomicUsize = AtomicUsize::new(0);

/// On every core: a one-shot deadline never fires early, and periodic
/// ticks keep coming.
fn timer_on_core(core: usize) {
    let cpu = percpu::this();
    let deadline_ns = 2_000_000;
    let before = cpu.ticks.load(Ordering::Relaxed);
    let t0 = time::now_ns();
    apic::arm_timer_ns(deadline_ns);
    while cpu.ticks.load(Ordering::Relaxed) == before {
        irq::enable_and_halt();
    }
    let waited = time::now_ns() - t0;
    // Allow 1% for the calibration error of the two clocks.
    let on_time = waited >= deadline_ns * 99 / 100;
    if !record::check(
        "timer",
        "oneshot_not_early",
        on_time,
        format_args!("core {core} waited {waited} ns for {deadline_ns}"),
    ) {
        TIMER_FAILS.fetch_add(1, Ordering::Relaxed);
    }
    trap::TICK_NS.store(1_000_000, Ordering::Relaxed);
    let start = cpu.ticks.load(Ordering::Relaxed);
    trap::start_tick();
    while cpu.ticks.load(Ordering::Relaxed) < start + 20 {
        irq::enable_and_halt();
    }
    apic::stop_timer();
}

fn timer() -> bool {
    trap::TICK_NS.store(0, Ordering::Relaxed);
    smp::run_everywhere(timer_on_core);
    trap::TICK_NS.store(0, Ordering::Relaxed);
    let mut ok = TIMER_FAILS.load(Ordering::Relaxed) == 0;
    for core in 0..smp::cores() {
        let ticks = percpu::of(core).ticks.load(Ordering::Relaxed);
        ok &= record::check(
            "timer",
            "core_ticked",
            ticks >= 21,
            format_args!("core {core}: {ticks} ticks"),
        );
    }
    ok
}

static PING_FAILS: AtomicUsize = AtomicUsize::new(0);

/// Each core pings every other core once.
fn ping_all_others(core: usize) {
    for other in (0..smp::cores()).filter(|&c| c != core) {
        if !smp::ping(other) {
            PING_FAILS.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// How long the IPI test waits for deliveries that have stopped coming
/// (while they keep coming, it waits on: see `time::wait_until`).
const IPI_PATIENCE_NS: u64 = 2_000_000_000;

fn ipi() -> bool {
    let n = smp::cores();
    smp::run_everywhere(ping_all_others);
    let seen = || {
        (0..n)
            .flat_map(|r| (0..n).filter(move |&s| s != r).map(move |s| (r, s)))
            .filter(|&(r, s)| smp::ping_seen(r, s))
            .count() as u64
    };
    let pairs = (n * (n - 1)) as u64;
    time::wait_until(|| seen() == pairs, seen, IPI_PATIENCE_NS);
    let mut ok = record::check(
        "ipi",
        "ping_slots_free",
        PING_FAILS.load(Ordering::Relaxed) == 0,
        format_args!("{} pings timed out", PING_FAILS.load(Ordering::Relaxed)),
    );
    for core in 0..n {
        let got = (0..n)
            .filter(|&s| s != core && smp::ping_seen(core, s))
            .count();
        ok &= record::check(
            "ipi",
            "fixed_ipis_received",
            got == n - 1,
            format_args!("core {core}: from {got} of {} cores", n - 1),
        );
    }
    // NMIs: the BSP sends one to every AP.
    let nmi_base: alloc::vec::Vec<u64> = (0..n)
        .map(|c| percpu::of(c).nmis.load(Ordering::Relaxed))
        .collect();
    for core in 1..n {
        apic::send_nmi(smp::apic_id(core));
    }
    let nmi_taken = || {
        (1..n)
            .filter(|&c| percpu::of(c).nmis.load(Ordering::Relaxed) != nmi_base[c])
            .count() as u64
    };
    time::wait_until(|| nmi_taken() == (n - 1) as u64, nmi_taken, IPI_PATIENCE_NS);
    for (core, base) in nmi_base.iter().enumerate().skip(1) {
        let got = percpu::of(core).nmis.load(Ordering::Relaxed) - base;
        ok &= record::check(
            "ipi",
            "nmi_received",
            got == 1,
            format_args!("core {core}: {got} NMIs"),
        );
    }
    ok
}

static FAULT_FAILS: AtomicUsize = AtomicUsize::new(0);

/// Executes `body` (inline asm that faults at most once) with a fixup at
/// label `2:`; returns the vector that was fixed up (0 = none).
macro_rules! expect_fault {
    ($($body:tt)*) => {{
        let cpu = percpu::this();
        cpu.last_fixed_vector.store(u64::MAX, Ordering::Relaxed);
        // SAFETY: the instruction faults by design; the fault handler resumes
        // at label 2 via the per-CPU fixup, and nothing else is touched.
        unsafe {
            core::arch::asm!(
                "lea {tmp}, [rip + 2f]",
                "mov gs:[{fix}], {tmp}",
                $($body)*,
                "2:",
                "mov qword ptr gs:[{fix}], 0",
                tmp = out(reg) _,
                fix = const core::mem::offset_of!(percpu::PerCpu, fault_fixup),
                out("rax") _, out("rdx") _,
            );
        }
        cpu.last_fixed_vector.load(Ordering::Relaxed)
    }};
}

fn fault_on_core(core: usize) {
    let checks: [(&str, u64, u64); 4] = [
        (
            "page_fault_caught",
            u64::from(vector::PAGE_FAULT),
            expect_fault!("mov rax, [0x10]"),
        ),
        (
            "general_protection_caught",
            u64::from(vector::GENERAL_PROTECTION),
            expect_fault!("mov rax, 0x8000000000000000", "mov rax, [rax]"),
        ),
        (
            "invalid_opcode_caught",
            u64::from(vector::INVALID_OPCODE),
            expect_fault!("ud2"),
        ),
        (
            "divide_error_caught",
            u64::from(vector::DIVIDE),
            expect_fault!("xor edx, edx", "xor eax, eax", "div eax"),
        ),
    ];
    for (name, want, got) in checks {
        if !record::check(
            "fault",
            name,
            got == want,
            format_args!("core {core}: vector {got}, expected {want}"),
        ) {
            FAULT_FAILS.fetch_add(1, Ordering::Relaxed);
        }
    }
    // Nested KVM on the development machines stops the VM with "KVM
    // internal error, emulation failure" when a ring-0 #BP is delivered
    // (with either encoding), so under KVM this one check is left to TCG.
    if crate::arch::time::hypervisor() == Some("KVM") {
        if core == 0 {
            log::warn!("kernel breakpoint check not run under KVM (nested KVM cannot deliver a ring-0 #BP)");
        }
        return;
    }
    let before = trap::BREAKPOINTS.load(Ordering::Relaxed);
    // SAFETY: a kernel int3 traps to the breakpoint handler, which returns.
    unsafe { core::arch::asm!("int3", options(nomem, nostack)) };
    let ok = trap::BREAKPOINTS.load(Ordering::Relaxed) > before;
    if !record::check(
        "fault",
        "breakpoint_resumes",
        ok,
        format_args!("core {core}"),
    ) {
        FAULT_FAILS.fetch_add(1, Ordering::Relaxed);
    }
}

fn fault() -> bool {
    smp::run_everywhere(fault_on_core);
    FAULT_FAILS.load(Ordering::Relaxed) == 0
}

/// Iterations of one chunk of [`core_speed_on`]'s loop
/// (`abi::busy::countdown`, two instructions each): 160 µs at one core's
/// speed in a deterministic run, so the clock is read rarely and the
/// window's end is overshot by little.
const SPEED_CHUNK: u64 = 10_000;

/// The window every core counts its chunks in, on the kernel's clock.
const SPEED_WINDOW_NS: u64 = 100_000_000;

/// The timer period on every core while the loop runs: the grain
/// deterministic scenario runs keep running cores' deadlines at
/// (`interleave_us`), so the cores take turns as they do there. Without
/// any deadline each core ran a fixed loop alone (500 million
/// instructions per virtual second on 4 cores: its -icount shift's rate,
/// not a share of the machine). The tick's own instructions cost about
/// 2.4% of a period at one core's speed.
const SPEED_TICK_NS: u64 = 50_000;

/// Cores that reached the loop; when the window starts (0: not yet).
static SPEED_READY: AtomicUsize = AtomicUsize::new(0);
static SPEED_START: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);
/// Each core's measured instructions per second of the kernel's clock.
static SPEED: [core::sync::atomic::AtomicU64; abi::shared::MAX_CORES] =
    [const { core::sync::atomic::AtomicU64::new(0) }; abi::shared::MAX_CORES];

/// Counts how many instructions of a known loop this core executes in a
/// window of the kernel's clock common to every core, its timer ticking.
/// All cores are busy for the whole window: a fixed amount of work each
/// would let the first to finish leave the emulator to the others (a
/// spinning vCPU's `pause` hands QEMU's one thread on), and the last
/// measured faster than it ran beside them.
fn core_speed_on(core: usize) {
    let n = smp::cores();
    trap::start_tick();
    if SPEED_READY.fetch_add(1, Ordering::AcqRel) + 1 == n {
        SPEED_START.store(time::now_ns() + 1_000_000, Ordering::Release);
    }
    let start = loop {
        let at = SPEED_START.load(Ordering::Acquire);
        if at != 0 && time::now_ns() >= at {
            break at;
        }
        core::hint::spin_loop();
    };
    let end = start + SPEED_WINDOW_NS;
    let first = time::now_ns();
    let mut chunks = 0u64;
    let mut last = first;
    while last < end {
        abi::busy::countdown(SPEED_CHUNK);
        chunks += 1;
        last = time::now_ns();
    }
    let per_second = u128::from(abi::busy::INSTRUCTIONS_PER_ITERATION * SPEED_CHUNK * chunks)
        * 1_000_000_000
        / u128::from((last - first).max(1));
    SPEED[core].store(per_second as u64, Ordering::Relaxed);
    apic::stop_timer();
}

/// Every core's speed, instructions per second of the kernel's clock
/// (which in a deterministic run is virtual time: what slices and graces
/// are measured in). The cores must run at one speed, within 2% of their
/// median; the host suite compares the figures with the speed the runner
/// states (`xtask::qemu::det_core_speed`).
fn core_speed() -> bool {
    trap::TICK_NS.store(SPEED_TICK_NS, Ordering::Relaxed);
    smp::run_everywhere(core_speed_on);
    trap::TICK_NS.store(0, Ordering::Relaxed);
    let n = smp::cores();
    let mut speeds: alloc::vec::Vec<u64> =
        (0..n).map(|c| SPEED[c].load(Ordering::Relaxed)).collect();
    speeds.sort_unstable();
    let median = speeds[n / 2];
    (0..n).fold(true, |ok, core| {
        let got = SPEED[core].load(Ordering::Relaxed);
        ok & record::check(
            "corespeed",
            "instructions_per_second",
            got.abs_diff(median) * 50 <= median,
            format_args!("core {core}: {got} (median {median})"),
        )
    })
}

fn do_panic(core: usize) {
    panic!("deliberate test panic on core {core}");
}

/// Panics on the highest-numbered core: the run must end with
/// `ExitCode::Panic`, never return here.
fn panic_on_last_core() -> bool {
    let last = smp::cores() - 1;
    if last == 0 {
        do_panic(0);
    }
    smp::post(last, do_panic);
    let deadline = time::now_ns() + 5_000_000_000;
    while time::now_ns() < deadline {
        core::hint::spin_loop();
    }
    record::check(
        "panic",
        "panic_stopped_machine",
        false,
        format_args!("core {last} did not stop the run"),
    )
}
