//! Application-processor bring-up (INIT-SIPI-SIPI through a 16-bit
//! trampoline at 0x8000) and a minimal cross-core work mailbox.
//!
//! APs are started one at a time: the BSP writes the trampoline's parameter
//! block, sends INIT-SIPI(-SIPI) and waits for that AP to acknowledge before
//! reusing the block. No step depends on a guessed delay: the only waits are
//! the ones the MP protocol prescribes and handshakes with timeouts.

use core::arch::global_asm;
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use super::{apic, boot, gdt, interrupts, irq, mm, percpu, time};

const TRAMPOLINE_PA: u64 = 0x8000;
const PARAMS_PA: u64 = 0x8F00;

global_asm!(
    r#"
    .section .rodata.trampoline, "a"
    .global ap_trampoline_start
    .global ap_trampoline_end
    .code16
ap_trampoline_start:
    cli
    cld
    xor %ax, %ax
    mov %ax, %ds
    lgdtl (0x8000 + tramp_gdt_ptr - ap_trampoline_start)
    mov %cr0, %eax
    or $1, %eax
    mov %eax, %cr0
    ljmpl $0x08, $(0x8000 + tramp_pm32 - ap_trampoline_start)

    .code32
tramp_pm32:
    mov $0x10, %ax
    mov %ax, %ds
    mov %ax, %es
    mov %ax, %ss
    mov %cr4, %eax
    or $0x20, %eax
    mov %eax, %cr4
    mov (0x8F00), %eax
    mov %eax, %cr3
    mov $0xC0000080, %ecx
    rdmsr
    or $0x900, %eax
    wrmsr
    mov %cr0, %eax
    or $0x80010000, %eax
    mov %eax, %cr0
    ljmp $0x18, $(0x8000 + tramp_lm64 - ap_trampoline_start)

    .code64
tramp_lm64:
    mov $0x10, %ax
    mov %ax, %ds
    mov %ax, %es
    mov %ax, %ss
    mov (0x8F08), %rsp
    mov (0x8F18), %rdi
    mov (0x8F10), %rax
    jmp *%rax

    .balign 8
tramp_gdt:
    .quad 0
    .quad 0x00CF9A000000FFFF
    .quad 0x00CF92000000FFFF
    .quad 0x00AF9A000000FFFF
tramp_gdt_ptr:
    .word 31
    .long 0x8000 + tramp_gdt - ap_trampoline_start
ap_trampoline_end:
    .text
"#,
    options(att_syntax)
);

extern "C" {
    static ap_trampoline_start: u8;
    static ap_trampoline_end: u8;
}

/// Parameter block the trampoline reads at `PARAMS_PA`.
#[repr(C)]
struct TrampolineParams {
    cr3: u64,
    stack: u64,
    entry: u64,
    core: u64,
}

/// Index of the last AP that reached Rust (acknowledges the parameter block).
static ACKED: AtomicU64 = AtomicU64::new(0);
/// APIC id of each core, by core index.
static APIC_IDS: [AtomicU32; percpu::MAX_CPUS] =
    [const { AtomicU32::new(u32::MAX) }; percpu::MAX_CPUS];
/// Number of cores the kernel uses (BSP + started APs).
static CORES: AtomicU32 = AtomicU32::new(1);

/// Number of cores started.
pub fn cores() -> usize {
    CORES.load(Ordering::Acquire) as usize
}

/// APIC id of core `core`.
pub fn apic_id(core: usize) -> u32 {
    APIC_IDS[core].load(Ordering::Relaxed)
}

/// Starts every enabled AP in `apic_ids` (the BSP's own id is skipped) and
/// waits until each has come online. Returns the number of cores online.
pub fn start_aps(bsp_apic: u32, apic_ids: &[u32], ap_main: extern "C" fn(u64) -> !) -> usize {
    APIC_IDS[0].store(bsp_apic, Ordering::Relaxed);
    let code_start = &raw const ap_trampoline_start as u64;
    let len = &raw const ap_trampoline_end as u64 - code_start;
    assert!(
        len < PARAMS_PA - TRAMPOLINE_PA,
        "trampoline overlaps its parameters"
    );
    // SAFETY: 0x8000..0x9000 is reserved from the frame allocator at boot
    // and is ours; the source is the trampoline's bytes in the image.
    unsafe {
        core::ptr::copy_nonoverlapping(
            code_start as *const u8,
            mm::phys_to_virt(TRAMPOLINE_PA) as *mut u8,
            len as usize,
        );
    }
    let mut next = 1usize;
    for &id in apic_ids.iter().filter(|&&id| id != bsp_apic) {
        if next >= percpu::MAX_CPUS {
            log::warn!(
                "more than {} processors described; ignoring the rest",
                percpu::MAX_CPUS
            );
            break;
        }
        APIC_IDS[next].store(id, Ordering::Relaxed);
        let params = TrampolineParams {
            cr3: &raw const boot::boot_pml4 as u64,
            stack: gdt::ap_kernel_stack_top(next),
            entry: ap_main as *const () as u64,
            core: next as u64,
        };
        // SAFETY: the parameter block lies in the reserved trampoline page;
        // no AP reads it until the SIPI below.
        unsafe {
            core::ptr::write_volatile(mm::phys_to_virt(PARAMS_PA) as *mut TrampolineParams, params)
        };
        if !start_one(id, next) {
            // It may still wake later and read the parameter block: starting
            // the next AP would hand both the same stack and core index.
            // Keep the block (so a late riser takes this unused index) and
            // start no more.
            log::error!("AP with APIC id {id} did not start; starting no more");
            break;
        }
        next += 1;
    }
    CORES.store(next as u32, Ordering::Release);
    // Each started AP finishes its own initialisation in parallel; wait for
    // all to report online.
    let deadline = time::now_ns() + 10_000_000_000;
    while (percpu::ONLINE.load(Ordering::Acquire) as usize) < next {
        if time::now_ns() > deadline {
            log::error!(
                "only {} of {next} cores reported online",
                percpu::ONLINE.load(Ordering::Acquire)
            );
            break;
        }
        core::hint::spin_loop();
    }
    percpu::ONLINE.load(Ordering::Acquire) as usize
}

/// INIT-SIPI-SIPI to one AP, then wait (bounded) for its acknowledgement.
///
/// The MP specification's 10 ms after INIT and 200 µs after each SIPI were
/// for external APICs; Linux waits 0 and 10 µs on every processor that can
/// run 64-bit code (Intel family 6 on, AMD family 0xF on), so do we. Under
/// `-icount` each of those waits is instructions the BSP must execute: the
/// 10 ms waits alone were a quarter of a 16-core boot's virtual time.
fn start_one(apic_id: u32, core: usize) -> bool {
    let acked = || ACKED.load(Ordering::Acquire) == core as u64;
    apic::send_init(apic_id);
    for _ in 0..2 {
        apic::send_sipi(apic_id, (TRAMPOLINE_PA >> 12) as u8);
        time::delay_us(10);
        if acked() {
            return true;
        }
    }
    // A slow (emulated, oversubscribed) vCPU may take a while to be scheduled.
    let deadline = time::now_ns() + 5_000_000_000;
    while time::now_ns() < deadline {
        if acked() {
            return true;
        }
        core::hint::spin_loop();
    }
    false
}

/// First Rust code on an AP (still on the boot page tables).
pub fn ap_acknowledge(core: u64) {
    ACKED.store(core, Ordering::Release);
}

/// Switches an AP from the boot tables to the kernel's.
pub fn ap_switch_tables() {
    // SAFETY: the kernel tables map the image and this AP's stack (in .bss).
    unsafe { x86::controlregs::cr3_write(mm::kernel_pml4()) };
}

// ---- Pings: IPIs whose delivery is counted per sender ----------------------

/// Per receiver: 1 + index of the core whose ping is in flight (0 = none).
static PING_FROM: [AtomicU32; percpu::MAX_CPUS] = [const { AtomicU32::new(0) }; percpu::MAX_CPUS];
/// Per receiver: pings taken so far (its progress, for waiting senders).
static PINGS_TAKEN: [AtomicU64; percpu::MAX_CPUS] = [const { AtomicU64::new(0) }; percpu::MAX_CPUS];
/// How long a sender waits for a receiver that takes no ping at all.
const PING_PATIENCE_NS: u64 = 2_000_000_000;
/// Per receiver: bitmap of senders whose pings arrived.
static PINGS_SEEN: [[AtomicU64; percpu::MAX_CPUS / 64]; percpu::MAX_CPUS] =
    [const { [const { AtomicU64::new(0) }; percpu::MAX_CPUS / 64] }; percpu::MAX_CPUS];

/// Sends a ping IPI from this core to `target`, waiting until the previous
/// ping to `target` was taken: IPIs of one vector coalesce while pending,
/// so at most one may be in flight per receiver. Every other core may be
/// queueing for the same receiver, and the slot goes to whichever asks
/// first once it is free, so a sender gives up (false) only when the
/// receiver has taken no ping for `PING_PATIENCE_NS`, not after a fixed
/// time in all.
pub fn ping(target: usize) -> bool {
    let me = percpu::core_id() as u32 + 1;
    let free = time::wait_until(
        || {
            PING_FROM[target]
                .compare_exchange(0, me, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
        },
        || PINGS_TAKEN[target].load(Ordering::Acquire),
        PING_PATIENCE_NS,
    );
    if free {
        apic::send_ipi(apic_id(target), interrupts::vector::IPI_KICK);
    }
    free
}

/// Called by the kick handler: records a ping, if one was in flight.
pub fn take_ping() {
    let me = percpu::core_id();
    let from = PING_FROM[me].swap(0, Ordering::AcqRel);
    if from != 0 {
        let sender = from as usize - 1;
        PINGS_SEEN[me][sender / 64].fetch_or(1 << (sender % 64), Ordering::AcqRel);
        PINGS_TAKEN[me].fetch_add(1, Ordering::AcqRel);
    }
}

/// Whether `receiver` has seen a ping from `sender`.
pub fn ping_seen(receiver: usize, sender: usize) -> bool {
    PINGS_SEEN[receiver][sender / 64].load(Ordering::Acquire) & (1 << (sender % 64)) != 0
}

// ---- TLB shootdown ------------------------------------------------------------

/// Per core: flushes asked for and flushes done (see `kernel::shootdown`).
static SHOOTDOWNS: kernel::shootdown::Generations<{ percpu::MAX_CPUS }> =
    kernel::shootdown::Generations::new();

/// Drops `va` from every core's TLB that may hold a translation of the
/// address space `pml4`, and waits until they have: every other core
/// flushes its non-global translations (whatever space it runs; user
/// entries are never global) in a flush that began after this request.
/// It never gives up: a core that does not answer within a second is
/// reported, every second, and waited for — returning would leave a
/// translation of a frame its owner may now free.
pub fn shootdown(pml4: u64, va: u64) {
    // SAFETY: invalidating one page of the current core's TLB.
    unsafe { x86::tlb::flush(va as usize) };
    let me = percpu::core_id();
    let mut tickets = [None; percpu::MAX_CPUS];
    for core in (0..cores()).filter(|&c| c != me) {
        tickets[core] = Some(SHOOTDOWNS.request(core));
        apic::send_ipi(apic_id(core), interrupts::vector::IPI_KICK);
    }
    let start = time::now_ns();
    let mut next_report = start + 1_000_000_000;
    for ticket in tickets.into_iter().flatten() {
        while !SHOOTDOWNS.answered(ticket) {
            // Answer requests aimed at us meanwhile: two cores shooting
            // down at once must not wait for each other forever.
            take_shootdown();
            let now = time::now_ns();
            if now >= next_report {
                log::warn!(
                    "TLB shootdown of space {pml4:#x} va {va:#x}: core {} has not answered for {} ms; waiting",
                    ticket.core,
                    (now - start) / 1_000_000
                );
                next_report = now + 1_000_000_000;
            }
            core::hint::spin_loop();
        }
    }
}

/// Called from the kick handler (and by a core waiting for its own
/// shootdown): performs the flush asked for, if any.
pub fn take_shootdown() {
    let me = percpu::core_id();
    if let Some(generation) = SHOOTDOWNS.pending(me) {
        // SAFETY: reloading CR3 with its current value flushes this core's
        // non-global translations, whatever address space it runs.
        unsafe { x86::controlregs::cr3_write(x86::controlregs::cr3()) };
        SHOOTDOWNS.complete(me, generation);
    }
}

// ---- Cross-core work mailbox ----------------------------------------------

/// A function a core runs from its idle loop, with interrupts enabled.
pub type Work = fn(core: usize);

static MAILBOX: [AtomicU64; percpu::MAX_CPUS] = [const { AtomicU64::new(0) }; percpu::MAX_CPUS];

/// Posts `work` to core `core` and kicks it out of `hlt`.
pub fn post(core: usize, work: Work) {
    MAILBOX[core].store(work as *const () as u64, Ordering::Release);
    apic::send_ipi(apic_id(core), interrupts::vector::IPI_KICK);
}

/// Whether core `core` has finished the work posted to it.
pub fn idle(core: usize) -> bool {
    MAILBOX[core].load(Ordering::Acquire) == 0
}

/// Runs `work` on every core (the caller's included) and waits for all.
pub fn run_everywhere(work: Work) {
    let me = percpu::core_id();
    for core in (0..cores()).filter(|&c| c != me) {
        post(core, work);
    }
    work(me);
    for core in (0..cores()).filter(|&c| c != me) {
        while !idle(core) {
            core::hint::spin_loop();
        }
    }
}

/// An AP's idle loop: run posted work, otherwise sleep until an interrupt.
pub fn idle_loop() -> ! {
    let me = percpu::core_id();
    loop {
        // Masked, the window between checking the mailbox and `hlt` is
        // closed: `sti; hlt` only lets an interrupt in once halted.
        irq::disable();
        let work = MAILBOX[me].load(Ordering::Acquire);
        if work != 0 {
            // The work runs with interrupts enabled.
            irq::enable();
            // SAFETY: only `post` writes the mailbox, always with a `Work`.
            let f: Work = unsafe { core::mem::transmute::<u64, Work>(work) };
            f(me);
            MAILBOX[me].store(0, Ordering::Release);
        } else {
            irq::enable_and_halt();
        }
    }
}
