//! The default run until the schedulers exist: every core takes its APIC
//! timer tick; the BSP prints a per-second line of tick counts and, at the
//! end, one `core_stats` record per core. It schedules nothing.

use core::sync::atomic::Ordering;

use abi::record::RecordKind;
use abi::ExitCode;
use kernel::cmdline::BootArgs;

use crate::{apic, percpu, record, serial, smp, time, trap};

/// Arms this core's periodic tick (re-armed by the timer handler).
pub fn start_tick(_core: usize) {
    trap::start_tick();
}

/// Stops this core's tick.
pub fn stop_tick(_core: usize) {
    apic::stop_timer();
}

/// Ticks on every core for `args.run_ms` (0 = until `q` on the console).
pub fn ticking(args: &BootArgs<'_>) -> ExitCode {
    trap::TICK_NS.store(args.tick_us * 1000, Ordering::Relaxed);
    smp::run_everywhere(start_tick);
    log::info!(
        "ticking every {} us on {} cores for {}",
        args.tick_us,
        smp::cores(),
        if args.run_ms == 0 { "ever (type q to quit)".into() } else { alloc::format!("{} ms", args.run_ms) }
    );
    let start = time::now_ns();
    let end = start + args.run_ms * 1_000_000;
    let mut next_report = start + 1_000_000_000;
    let mut code = ExitCode::Success;
    loop {
        // SAFETY: sleep until the next interrupt (our own tick at the latest).
        unsafe { core::arch::asm!("hlt", options(nomem, nostack)) };
        let now = time::now_ns();
        if now >= next_report {
            next_report += 1_000_000_000;
            print_ticks(now - start);
        }
        if serial::read_byte() == Some(b'q') {
            code = ExitCode::UserQuit;
            break;
        }
        if args.run_ms != 0 && now >= end {
            break;
        }
    }
    trap::TICK_NS.store(0, Ordering::Relaxed);
    smp::run_everywhere(stop_tick);
    for core in 0..smp::cores() {
        let cpu = percpu::of(core);
        record::emit(
            RecordKind::CoreStats,
            format_args!(
                "\"core\":{core},\"apic_id\":{},\"ticks\":{},\"ipis\":{}",
                cpu.apic_id.load(Ordering::Relaxed),
                cpu.ticks.load(Ordering::Relaxed),
                cpu.ipis.load(Ordering::Relaxed)
            ),
        );
    }
    code
}

fn print_ticks(elapsed_ns: u64) {
    use core::fmt::Write;
    let mut line = alloc::string::String::new();
    for core in 0..smp::cores() {
        let _ = write!(line, " c{core}={}", percpu::of(core).ticks.load(Ordering::Relaxed));
    }
    log::info!("t={}.{:03}s ticks:{line}", elapsed_ns / 1_000_000_000, elapsed_ns / 1_000_000 % 1000);
}
