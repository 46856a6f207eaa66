//! What a boot does after bring-up: either tick on every core (no programs
//! given) or run environments on the slice vectors, with the BSP's monitor
//! printing a live line per second and, at the end, per-core and
//! per-environment records before stopping the machine.

use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use abi::record::RecordKind;
use abi::ExitCode;
use kernel::cmdline::BootArgs;

use crate::arch::{apic, percpu, serial, smp, time};
use crate::sync::BootCell;
use crate::{env, exported, record, trap};

static END_NS: AtomicU64 = AtomicU64::new(0);
static NEXT_REPORT_NS: AtomicU64 = AtomicU64::new(0);
static START_NS: AtomicU64 = AtomicU64::new(0);
/// The end-of-run check of the selected experiment.
static FINISH: BootCell<fn() -> bool> = BootCell::new();
/// Whether the experiment has reached what its checks need (see [`start`]).
static SETTLED: BootCell<fn() -> bool> = BootCell::new();
/// A scenario's console ([`start`]).
static CONSOLE: BootCell<Option<Console>> = BootCell::new();

/// A run's console, on core 0's monitor: `Some(code)` ends the run.
pub type Console = fn() -> Option<ExitCode>;
/// The run's time is up and it waits for `SETTLED` (said once).
static WAITING_TO_SETTLE: AtomicBool = AtomicBool::new(false);

/// Starts a run of environments lasting `run_ms` (0 = until `q`), ending
/// with `finish`'s verdict, and not before `settled` holds: what an
/// experiment's checks need to have happened (a handshake, where counting
/// on it within `run_ms` would depend on how fast the host runs the
/// vCPUs). A `console` takes the serial line (else `q` quits). Returns;
/// the caller enters the scheduler.
pub fn start(run_ms: u64, finish: fn() -> bool, settled: fn() -> bool, console: Option<Console>) {
    let now = time::now_ns();
    START_NS.store(now, Ordering::Relaxed);
    crate::ledger::start(now);
    NEXT_REPORT_NS.store(now + 1_000_000_000, Ordering::Relaxed);
    END_NS.store(
        if run_ms == 0 {
            u64::MAX
        } else {
            now + run_ms * 1_000_000
        },
        Ordering::Relaxed,
    );
    FINISH.init(finish);
    SETTLED.init(settled);
    CONSOLE.init(console);
}

/// Time since the run started.
pub fn elapsed_ns() -> u64 {
    time::now_ns() - START_NS.load(Ordering::Relaxed)
}

/// Called on core 0 at every scheduling decision and timer interrupt. The
/// run ends only where core 0 runs no environment (`may_finish`), so the
/// end-of-run checks never wait on core 0's own turn.
pub fn monitor(now: u64, may_finish: bool) {
    if crate::sched::stopping() || FINISH.try_get().is_none() {
        return;
    }
    crate::invariants::on_monitor(now, crate::sched::slots_owned);
    let next = NEXT_REPORT_NS.load(Ordering::Relaxed);
    if now >= next {
        NEXT_REPORT_NS.store(next + 1_000_000_000, Ordering::Relaxed);
        live_line(now);
    }
    if !may_finish {
        return;
    }
    // A scenario run has a line-based console; other runs quit on `q`.
    let quit = match CONSOLE.try_get().copied().flatten() {
        Some(console) => console(),
        None => {
            serial::poll_input();
            (serial::read_byte() == Some(b'q')).then_some(ExitCode::UserQuit)
        }
    };
    if let Some(code) = quit {
        finish(code)
    }
    if now >= END_NS.load(Ordering::Relaxed) {
        if SETTLED.try_get().is_none_or(|settled| settled()) {
            finish(ExitCode::Success)
        }
        if !WAITING_TO_SETTLE.swap(true, Ordering::Relaxed) {
            log::info!("run time is up; the experiment has not settled yet: running on");
        }
    }
}

fn live_line(now: u64) {
    use core::fmt::Write;
    if !log::log_enabled!(log::Level::Info) {
        return; // not even built: `log=warn` keeps the timer path quiet
    }
    let mut line = alloc::string::String::new();
    let elapsed = now - START_NS.load(Ordering::Relaxed);
    for e in env::all() {
        let cpu: u64 = e
            .account()
            .cpu_ns
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .sum();
        // The environment's id in brackets: `name#2` is an application's
        // second instance (kernel/src/scenario.rs), not an id.
        let _ = write!(
            line,
            " {}[env {}]={:.1}ms",
            e.name(),
            e.id,
            cpu as f64 / 1e6
        );
    }
    log::info!(
        "t={}.{:03}s cpu:{line}",
        elapsed / 1_000_000_000,
        elapsed / 1_000_000 % 1000
    );
}

/// How long the end of a run waits for a core to park while none does.
const PARK_PATIENCE_NS: u64 = 2_000_000_000;

/// Ends the run: final records, the experiment's checks, exit.
fn finish(code: ExitCode) -> ! {
    crate::sched::stop();
    // Stop every other scheduling core (each charges its running turn and
    // parks) so the figures below are consistent with each other.
    let others: alloc::vec::Vec<usize> = (1..smp::cores())
        .filter(|&c| crate::sched::active(c))
        .collect();
    for &core in &others {
        apic::send_ipi(
            smp::apic_id(core),
            crate::arch::interrupts::vector::IPI_KICK,
        );
    }
    // Each parks at its next kernel entry. Its vCPU may be away from a
    // loaded host for a while (the soak runs 16 on 2 host cores), so the
    // wait gives up only once cores stop parking, not after 500 ms in all:
    // figures read beside a core still running are not consistent, and
    // the end-of-run checks count objects a running core may hold.
    time::wait_until(
        || crate::sched::parked() >= others.len(),
        || crate::sched::parked() as u64,
        PARK_PATIENCE_NS,
    );
    if crate::sched::parked() < others.len() {
        log::warn!(
            "only {} of {} cores parked at the end of the run",
            crate::sched::parked(),
            others.len()
        );
    }
    let now = time::now_ns();
    emit_stats(now);
    crate::trace::emit();
    crate::latency::emit();
    let ok = FINISH.try_get().is_none_or(|f| f());
    let ok = crate::invariants::finish(crate::sched::slots_owned) & ok;
    let code = if code == ExitCode::Success && !ok {
        ExitCode::TestFailed
    } else {
        code
    };
    let evals = crate::wakeup::EVALS.load(Ordering::Relaxed);
    let mut by_length = alloc::string::String::new();
    for (len, n, ns) in crate::wakeup::by_length() {
        use core::fmt::Write;
        let _ = write!(
            by_length,
            "{}[{len},{n},{ns}]",
            if by_length.is_empty() { "" } else { "," }
        );
    }
    record::emit(
        RecordKind::End,
        format_args!(
            "\"exit\":\"{}\",\"uptime_ns\":{now},\"predicate_evals\":{evals},\"predicate_steps\":{},\"predicate_eval_ns_mean\":{},\"predicate_eval_by_length\":[{by_length}],\"syscall_fixups\":{},\"ac_at_entry\":{}",
            code.name(),
            crate::wakeup::EVAL_STEPS.load(Ordering::Relaxed),
            time::tsc_to_ns(crate::wakeup::EVAL_TICKS.load(Ordering::Relaxed)) / evals.max(1),
            crate::trap::SYSCALL_FIXUPS.load(Ordering::Relaxed),
            crate::arch::interrupts::AC_AT_ENTRY.load(Ordering::Relaxed)
        ),
    );
    crate::exit::exit(code)
}

/// A figure in a record: the number, or `null` where there is none.
struct OrNull(Option<u64>);

impl core::fmt::Display for OrNull {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self.0 {
            Some(v) => write!(f, "{v}"),
            None => f.write_str("null"),
        }
    }
}

/// Per-core and per-environment figures.
pub fn emit_stats(now: u64) {
    use core::fmt::Write;
    let duration = now - START_NS.load(Ordering::Relaxed);
    for core in 0..smp::cores() {
        let cpu = percpu::of(core);
        // `null` for a core that never started its turns.
        let late = crate::sched::late_start(core);
        let late = (OrNull(late.map(|l| l.0)), OrNull(late.map(|l| l.1)));
        record::emit(
            RecordKind::CoreStats,
            format_args!(
                "\"core\":{core},\"apic_id\":{},\"ticks\":{},\"ipis\":{},\"idle_ns\":{},\"stolen_ns\":{},\"late_start_asked_ns\":{},\"late_start_ns\":{}",
                cpu.apic_id.load(Ordering::Relaxed),
                cpu.ticks.load(Ordering::Relaxed),
                cpu.ipis.load(Ordering::Relaxed),
                if crate::sched::active(core) {
                    exported::core_slices_of(core)
                        .idle_ns
                        .load(Ordering::Relaxed)
                } else {
                    0
                },
                // Since boot: the host's steal-time clock of this vCPU (0
                // where none is offered, as under TCG).
                crate::arch::steal::stolen_ns(core),
                // How late its first turn was asked to start (a trial's
                // stagger, `spread_turns`) and how late it did.
                late.0,
                late.1
            ),
        );
    }
    for e in env::all() {
        let a = e.account();
        let mut cpu = alloc::string::String::new();
        for core in 0..smp::cores() {
            let _ = write!(
                cpu,
                "{}{}",
                if core == 0 { "" } else { "," },
                a.cpu_ns[core].load(Ordering::Relaxed)
            );
        }
        record::emit(
            RecordKind::EnvStats,
            format_args!(
                "\"env\":{},\"name\":\"{}\",\"duration_ns\":{duration},\"cpu_ns\":[{cpu}],\"slots_held\":{},\"donations_given\":{},\"donations_received\":{},\"repossessions\":{},\"forfeits\":{},\"slots_revoked\":{},\"wakeups\":{},\"turns\":{},\"grace_renewals\":{}",
                e.id,
                e.name(),
                a.slots_held.load(Ordering::Relaxed),
                a.donations_given.load(Ordering::Relaxed),
                a.donations_received.load(Ordering::Relaxed),
                a.repossessions.load(Ordering::Relaxed),
                a.forfeits.load(Ordering::Relaxed),
                a.slots_revoked.load(Ordering::Relaxed),
                a.wakeups.load(Ordering::Relaxed),
                a.turns.load(Ordering::Relaxed),
                a.grace_renewals.load(Ordering::Relaxed),
            ),
        );
    }
}

// ---- The boot-time tick run (no programs) ----------------------------------

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
        "ticking every {} us on {} cores for {} (no scenario given: nothing is scheduled)",
        args.tick_us,
        smp::cores(),
        if args.run_ms == 0 {
            "ever (type q to quit)".into()
        } else {
            alloc::format!("{} ms", args.run_ms)
        }
    );
    let start = time::now_ns();
    let end = start + args.run_ms * 1_000_000;
    let mut next_report = start + 1_000_000_000;
    let mut code = ExitCode::Success;
    loop {
        // Sleep until the next interrupt (our own tick at the latest).
        crate::arch::irq::halt();
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
    START_NS.store(start, Ordering::Relaxed);
    emit_stats(time::now_ns());
    code
}

fn print_ticks(elapsed_ns: u64) {
    use core::fmt::Write;
    let mut line = alloc::string::String::new();
    for core in 0..smp::cores() {
        let _ = write!(
            line,
            " c{core}={}",
            percpu::of(core).ticks.load(Ordering::Relaxed)
        );
    }
    log::info!(
        "t={}.{:03}s ticks:{line}",
        elapsed_ns / 1_000_000_000,
        elapsed_ns / 1_000_000 % 1000
    );
}
