//! Bring-up: the BSP's entry from the boot code (hardware, then the
//! experiment, scenario or test the command line names) and the APs'.

use core::sync::atomic::Ordering;

use abi::record::RecordKind;
use abi::ExitCode;
use alloc::vec::Vec;

use crate::arch::{acpi, apic, mm, percpu, serial, smp, time};
use crate::{
    arch, envtests, exit, logger, record, run, scenario, sched, syscall, tests, trace, trap,
};

/// BSP entry from the boot code, on the boot page tables.
#[no_mangle]
extern "C" fn kernel_main(start_info_paddr: u32) -> ! {
    // SAFETY: first thing on the BSP: per-CPU data for core 0 (its APIC id
    // is filled in once the APIC is up).
    unsafe { percpu::install(0, 0) };
    // SAFETY: once, on the BSP, interrupts off, nothing else running.
    unsafe {
        arch::interrupts::install(arch::interrupts::Handlers {
            interrupt: trap::handle,
            syscall: syscall::full_entry,
            compat_syscall: syscall::compat_entry,
            user_exception: trap::user_exception,
            light: syscall::light::ENTRIES,
        })
    };
    serial::init();
    logger::init(kernel::cmdline::LogLevel::Info);
    // SAFETY: the boot tables are active and the loader's data untouched.
    let boot = match unsafe { arch::pvh::capture(u64::from(start_info_paddr)) } {
        Ok(b) => b,
        Err(e) => {
            log::error!("bad PVH start info: {e:?}");
            exit::exit(ExitCode::BadBootInput);
        }
    };
    let args = match kernel::cmdline::parse(boot.cmdline()) {
        Ok(a) => a,
        Err(e) => {
            log::error!("command line `{}`: {e}", boot.cmdline());
            exit::exit(ExitCode::BadBootInput);
        }
    };
    logger::init(args.log);
    log::info!("exokernel booting; cmdline `{}`", boot.cmdline());
    // SAFETY: once, on the BSP, interrupts off.
    unsafe {
        arch::gdt::load(0);
        arch::interrupts::load(0);
    }
    mask_legacy_pic();
    let modules: [core::ops::Range<u64>; 4] = core::array::from_fn(|i| {
        boot.modules()
            .get(i)
            .map_or(0..0, |m| m.paddr..m.paddr + m.size)
    });
    // SAFETY: once, on the BSP, on the boot tables.
    unsafe { mm::init(boot.memory_map(), &modules) };

    let platform = match acpi::parse(boot.rsdp_paddr) {
        Ok(p) => p,
        Err(e) => {
            log::error!("ACPI: {e:?}");
            exit::exit(ExitCode::BadBootInput);
        }
    };
    time::calibrate(platform.pm_timer_port);
    arch::cpu::init_this_core(arch::gdt::ap_kernel_stack_top(0));
    arch::steal::enable_this_core(0);
    let bsp_apic = apic::init_this_core();
    percpu::this().apic_id.store(bsp_apic, Ordering::Relaxed);
    apic::calibrate_timer();
    record::emit(
        RecordKind::CoreOnline,
        format_args!("\"core\":0,\"apic_id\":{bsp_apic}"),
    );
    percpu::ONLINE.fetch_add(1, Ordering::AcqRel);

    let described: Vec<u32> = platform
        .processors
        .iter()
        .filter(|p| p.enabled)
        .map(|p| p.apic_id)
        .collect();
    let online = smp::start_aps(bsp_apic, &described, ap_main);
    // All handlers are installed: from here on the BSP takes interrupts.
    arch::irq::enable();
    record::emit(
        RecordKind::Boot,
        format_args!(
            "\"cpus_online\":{online},\"cpus_described\":{},\"apic_mode\":\"{}\",\"tsc_khz\":{},\"timer_source\":\"{}\",\"hypervisor\":\"{}\",\"steal_time\":{},\"rdtsc_cycles\":{},\"free_frames\":{},\"cmdline\":\"{}\"",
            described.len(),
            apic::mode_name(),
            time::tsc_khz(),
            time::source(),
            time::hypervisor().unwrap_or("none"),
            arch::steal::offered(),
            time::rdtsc_cost_cycles(),
            mm::free_frames(),
            boot.cmdline()
        ),
    );
    log::info!("{online} of {} cores online", described.len());
    if let Some(m) = boot.modules().first() {
        // SAFETY: the loader placed the module there; its frames were kept
        // out of the allocator, so the bytes stay untouched for the run.
        let bytes = unsafe {
            core::slice::from_raw_parts(mm::phys_to_virt(m.paddr) as *const u8, m.size as usize)
        };
        if let Err(e) = crate::programs::set_archive(bytes) {
            log::error!("boot module: {e:?}");
            exit::exit(ExitCode::BadBootInput);
        }
    }
    let code = match args.test {
        Some(name) if envtests::exists(name) => run_environments(&args, name),
        Some(name) => tests::run(name),
        // A scenario from the runner, or else the cores ticking.
        None => match scenario::plan() {
            Some(Ok(plan)) => run_scenario(&args, plan),
            Some(Err(e)) => {
                log::error!("scenario: {e}");
                ExitCode::BadBootInput
            }
            None => run::ticking(&args),
        },
    };
    record::emit(
        RecordKind::End,
        format_args!(
            "\"exit\":\"{}\",\"uptime_ns\":{}",
            code.name(),
            time::now_ns()
        ),
    );
    exit::exit(code)
}

/// Sets up the slice vectors, spawns the environments of experiment `test`
/// and makes every core a scheduling core. Only returns on failure.
fn run_environments(args: &kernel::cmdline::BootArgs<'_>, name: &str) -> ExitCode {
    let slots = envtests::slots_needed(name).max(1);
    let offender_limit = if args.offender_limit != 0 {
        args.offender_limit
    } else {
        envtests::offender_limit(name)
    };
    init_slices(args, slots, offender_limit);
    if let Err(e) = envtests::setup(name, args.run_ms) {
        log::error!("experiment {name}: {e}");
        return ExitCode::BadBootInput;
    }
    log::info!(
        "experiment {name}: {slots} slots of {} us per core, grace {} us, {} ms",
        args.slice_us,
        args.grace_us,
        args.run_ms
    );
    schedule_on_every_core()
}

/// As `run_environments`, for the runner's scenario.
fn run_scenario(
    args: &kernel::cmdline::BootArgs<'_>,
    plan: kernel::launch::Plan<'static>,
) -> ExitCode {
    let slots = scenario::slots_needed(&plan);
    init_slices(args, slots, args.offender_limit);
    trace::enable();
    if let Err(e) = scenario::setup(plan, args.run_ms) {
        log::error!("scenario: {e}");
        return ExitCode::BadBootInput;
    }
    log::info!(
        "scenario: {} applications, {slots} slots of {} us per core, grace {} us, {} ms; type `help` for commands",
        plan.len(),
        args.slice_us,
        args.grace_us,
        args.run_ms
    );
    schedule_on_every_core()
}

fn init_slices(args: &kernel::cmdline::BootArgs<'_>, slots: usize, offender_limit: u32) {
    sched::init(
        smp::cores(),
        sched::Config {
            slots,
            slice_ns: args.slice_us * 1000,
            grace_ns: args.grace_us * 1000,
            interleave_ns: args.interleave_us * 1000,
            stagger_seed: args.stagger_seed,
            spread_turns: args.spread_turns,
            idle_spin: args.idle_spin,
            offender_limit,
            // The policy's number in the registry (0, its default, when
            // the command line names none): the libOS reads it back there.
            app_sched: args.sched.and_then(sched_registry::index_of).unwrap_or(0),
        },
        run::monitor,
    );
}

fn schedule_on_every_core() -> ExitCode {
    for core in 1..smp::cores() {
        smp::post(core, enter_scheduler);
    }
    enter_scheduler(0);
    unreachable!("the scheduler does not return")
}

/// Mailbox work: become a scheduling core.
fn enter_scheduler(_core: usize) {
    sched::run_core()
}

/// AP entry from the trampoline, on the boot page tables and its own stack.
extern "C" fn ap_main(core: u64) -> ! {
    let core = core as usize;
    smp::ap_acknowledge(core as u64);
    smp::ap_switch_tables();
    // SAFETY: once, on this AP, interrupts off, before anything reads `gs`.
    unsafe {
        arch::gdt::load(core);
        arch::interrupts::load(core);
        percpu::install(core, smp::apic_id(core));
    }
    arch::cpu::init_this_core(arch::gdt::ap_kernel_stack_top(core));
    arch::steal::enable_this_core(core);
    let apic_id = apic::init_this_core();
    // The record before the count: the BSP goes on (and a boot test exits)
    // once every core is counted, so a core counted first could be cut off
    // before its record reached the console (CI saw 13 of 16 records).
    record::emit(
        RecordKind::CoreOnline,
        format_args!("\"core\":{core},\"apic_id\":{apic_id}"),
    );
    percpu::ONLINE.fetch_add(1, Ordering::AcqRel);
    smp::idle_loop()
}

/// Masks both 8259 PICs: all external interrupts arrive through APICs.
fn mask_legacy_pic() {
    // SAFETY: writing the PIC mask registers only masks legacy IRQ lines.
    unsafe {
        x86::io::outb(0x21, 0xff);
        x86::io::outb(0xa1, 0xff);
    }
}
