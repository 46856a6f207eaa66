//! Per-core GDT and TSS. Each core has its own TSS (its kernel stack for
//! ring-3 interrupts and IST stacks for NMI, double fault and machine check),
//! hence its own GDT.
//!
//! Selector layout is fixed by `syscall`/`sysret`: STAR[47:32] = KERNEL_CODE
//! (kernel SS = +8), STAR[63:48] = USER_BASE (user SS = +8, user CS = +16).

use core::cell::UnsafeCell;
use core::mem::size_of;

use crate::arch::percpu::MAX_CPUS;

pub const KERNEL_CODE: u16 = 0x08;
pub const KERNEL_DATA: u16 = 0x10;
/// Base for `sysret`: 32-bit user code placeholder (never loaded).
pub const USER_BASE: u16 = 0x18;
pub const USER_DATA: u16 = 0x20 | 3;
pub const USER_CODE: u16 = 0x28 | 3;
const TSS_SELECTOR: u16 = 0x30;

/// IST slots (1-based as the IDT encodes them).
pub const IST_DOUBLE_FAULT: u8 = 1;
pub const IST_NMI: u8 = 2;
pub const IST_MACHINE_CHECK: u8 = 3;

const IST_STACK_SIZE: usize = 16 * 1024;
/// Kernel stack of each AP (the BSP's is in the boot code).
pub const KERNEL_STACK_SIZE: usize = 64 * 1024;

#[repr(C, packed)]
struct Tss {
    reserved0: u32,
    rsp: [u64; 3],
    reserved1: u64,
    ist: [u64; 7],
    reserved2: u64,
    reserved3: u16,
    iomap_base: u16,
}

#[repr(C, align(16))]
struct CoreTables {
    gdt: [u64; 8],
    tss: Tss,
}

#[repr(C, align(4096))]
struct Stack<const N: usize>([u8; N]);

/// A per-core array: core `i` only ever touches element `i`.
struct PerCore<T>(UnsafeCell<[T; MAX_CPUS]>);

// SAFETY: core `i` only touches element `i` (enforced by every accessor
// taking the index of the core it runs for).
unsafe impl<T> Sync for PerCore<T> {}

impl<T> PerCore<T> {
    /// Element `core`.
    ///
    /// # Safety
    /// Only core `core` may use the returned reference, and not reentrantly.
    #[allow(clippy::mut_from_ref)]
    unsafe fn slot(&self, core: usize) -> &mut T {
        // SAFETY: per the contract, no other reference to element `core` exists.
        unsafe { &mut (*self.0.get())[core] }
    }
}

// Three statics rather than one so the (zero) stacks stay in .bss instead of
// dragging megabytes of zeros into the image with the (non-zero) tables.
static TABLES: PerCore<CoreTables> = PerCore(UnsafeCell::new(
    [const {
        CoreTables {
            gdt: [0; 8],
            tss: Tss {
                reserved0: 0,
                rsp: [0; 3],
                reserved1: 0,
                ist: [0; 7],
                reserved2: 0,
                reserved3: 0,
                iomap_base: size_of::<Tss>() as u16,
            },
        }
    }; MAX_CPUS],
));
static IST_STACKS: PerCore<[Stack<IST_STACK_SIZE>; 3]> = PerCore(UnsafeCell::new(
    [const { [const { Stack([0; IST_STACK_SIZE]) }; 3] }; MAX_CPUS],
));
static KERNEL_STACKS: PerCore<Stack<KERNEL_STACK_SIZE>> = PerCore(UnsafeCell::new(
    [const { Stack([0; KERNEL_STACK_SIZE]) }; MAX_CPUS],
));

/// Top of the kernel stack reserved for AP `core`.
pub fn ap_kernel_stack_top(core: usize) -> u64 {
    // SAFETY: only an address is computed; the stack is used by that AP alone.
    let base = unsafe { (*KERNEL_STACKS.0.get()).as_ptr().add(core) };
    base as u64 + KERNEL_STACK_SIZE as u64
}

const fn segment(access: u64, flags: u64) -> u64 {
    (access << 40) | (flags << 52) | 0xFFFF | (0xF << 48)
}

/// Builds and loads this core's GDT and TSS and reloads the segment registers.
///
/// # Safety
/// Called once per core, on core `core`, with interrupts disabled.
pub unsafe fn load(core: usize) {
    // SAFETY: element `core` belongs to the calling core.
    let (t, ist) = unsafe { (TABLES.slot(core), IST_STACKS.slot(core)) };
    let mut ist_tops = [0u64; 7];
    for (top, stack) in ist_tops.iter_mut().zip(ist.iter()) {
        *top = stack.0.as_ptr() as u64 + IST_STACK_SIZE as u64;
    }
    t.tss.ist = ist_tops;
    t.gdt[0] = 0;
    t.gdt[1] = segment(0x9A, 0xA); // kernel code: present, ring 0, exec/read; L, G
    t.gdt[2] = segment(0x92, 0xC); // kernel data
                                   // User code 32: only a placeholder for the `sysret` layout (STAR's
                                   // user base), and NOT present: a far jump to it faults in ring 3.
                                   // Present, it let ring 3 enter compatibility mode and `syscall` into
                                   // ring 0 at IA32_CSTAR on its own stack (AMD's rule, which TCG follows).
    t.gdt[3] = segment(0x7A, 0xC);
    t.gdt[4] = segment(0xF2, 0xC); // user data, ring 3
    t.gdt[5] = segment(0xFA, 0xA); // user code 64, ring 3
    let base = &raw const t.tss as u64;
    let limit = (size_of::<Tss>() - 1) as u64;
    t.gdt[6] = limit
        | ((base & 0xFF_FFFF) << 16)
        | (0x89 << 40) // present, 64-bit TSS (available)
        | (((base >> 24) & 0xFF) << 56);
    t.gdt[7] = base >> 32;

    #[repr(C, packed)]
    struct Pointer {
        limit: u16,
        base: u64,
    }
    let ptr = Pointer {
        limit: (size_of::<[u64; 8]>() - 1) as u16,
        base: t.gdt.as_ptr() as u64,
    };
    // SAFETY: the GDT just built is valid and lives forever (static); the
    // far return reloads CS with the kernel code selector of that GDT.
    unsafe {
        core::arch::asm!(
            "lgdt [{ptr}]",
            "mov ds, {data:x}",
            "mov es, {data:x}",
            "mov ss, {data:x}",
            "push {code}",
            "lea {tmp}, [rip + 2f]",
            "push {tmp}",
            "retfq",
            "2:",
            "ltr {tss:x}",
            // A null LDT: a selector with TI set then names nothing
            // (#GP). LDTR's reset value (base 0, limit 0xffff) would have
            // the CPU read descriptors from the user's own addresses.
            "lldt {null:x}",
            ptr = in(reg) &ptr,
            data = in(reg) KERNEL_DATA as u64,
            code = in(reg) KERNEL_CODE as u64,
            tss = in(reg) TSS_SELECTOR as u64,
            null = in(reg) 0u64,
            // Written mid-block (before `ltr`/`lldt` read their inputs):
            // `out`, not `lateout`, so it shares no register with them.
            tmp = out(reg) _,
        );
    }
}

/// Sets the stack the CPU switches to on an interrupt from ring 3.
pub fn set_ring0_stack(core: usize, top: u64) {
    // SAFETY: only the owning core writes its TSS's RSP0.
    let t = unsafe { TABLES.slot(core) };
    t.tss.rsp = [top, 0, 0];
}
