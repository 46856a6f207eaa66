//! Interrupt and exception entry: 256 small stubs (generated with `.rept`)
//! push the vector number, a common path saves the registers into a
//! [`TrapFrame`] and calls [`interrupt_dispatch`] (an exception from ring 3
//! saves them into the running environment's save area instead, once,
//! and calls [`user_exception_dispatch`]); the `syscall` entry
//! sorts calls into a light and a full path. What each entry then does is
//! the kernel's business above this layer: it installs its handlers once
//! at boot ([`install`]), and the entries call through them.
//!
//! GS: an entry from ring 3 swaps to the kernel GS base. NMI, double fault
//! and machine check can arrive at any instruction, including the window of
//! the syscall entry before `swapgs`, so they decide by reading the GS base
//! MSR itself ("paranoid" entry) instead of trusting the saved CS. An
//! `iretq` to ring 3 that faults does so in ring 0 after the return's
//! `swapgs`: the common entry recognises its address (the `iret_*` labels)
//! and swaps back first ([`faulted_user_return`]).

use core::arch::global_asm;
use core::cell::UnsafeCell;
use core::ptr::NonNull;

use abi::shared::UserContext;

use x86::bits64::rflags::RFlags;

use super::gdt::{self, KERNEL_CODE};
use super::percpu::MAX_CPUS;

/// Vector numbers the kernel assigns.
pub mod vector {
    pub const DIVIDE: u8 = 0;
    pub const NMI: u8 = 2;
    pub const BREAKPOINT: u8 = 3;
    pub const INVALID_OPCODE: u8 = 6;
    pub const DOUBLE_FAULT: u8 = 8;
    pub const GENERAL_PROTECTION: u8 = 13;
    pub const PAGE_FAULT: u8 = 14;
    pub const MACHINE_CHECK: u8 = 18;
    /// Local APIC timer.
    pub const TIMER: u8 = 0x30;
    /// Fixed-vector IPI used by the IPI test and as a wake-up kick.
    pub const IPI_KICK: u8 = 0x31;
    /// "Run the function in the IPI mailbox" (TLB shootdown and friends).
    pub const IPI_CALL: u8 = 0x32;
    pub const APIC_ERROR: u8 = 0xFE;
    pub const SPURIOUS: u8 = 0xFF;
}

/// Mnemonic of an exception vector.
pub fn exception_name(v: u64) -> &'static str {
    const NAMES: [&str; 22] = [
        "#DE", "#DB", "NMI", "#BP", "#OF", "#BR", "#UD", "#NM", "#DF", "CSO", "#TS", "#NP", "#SS",
        "#GP", "#PF", "reserved", "#MF", "#AC", "#MC", "#XM", "#VE", "#CP",
    ];
    NAMES.get(v as usize).copied().unwrap_or("exception")
}

/// Registers as saved by the entry stubs, lowest address first.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct TrapFrame {
    pub r15: u64,
    pub r14: u64,
    pub r13: u64,
    pub r12: u64,
    pub r11: u64,
    pub r10: u64,
    pub r9: u64,
    pub r8: u64,
    pub rbp: u64,
    pub rdi: u64,
    pub rsi: u64,
    pub rdx: u64,
    pub rcx: u64,
    pub rbx: u64,
    pub rax: u64,
    pub vector: u64,
    pub error_code: u64,
    pub rip: u64,
    pub cs: u64,
    pub rflags: u64,
    pub rsp: u64,
    pub ss: u64,
}

impl TrapFrame {
    pub fn is_user(&self) -> bool {
        self.cs & 3 == 3
    }
}

/// An exception from ring 3 as the user-exception entry hands it to
/// [`Handlers::user_exception`], lowest address first: room for the
/// arguments of the upcall it enters, then the vector and what the CPU
/// pushed. The general registers are not here: the entry saved them in
/// the core's user-exception area
/// ([`PerCpu::set_user_exception_area`](super::percpu::PerCpu::set_user_exception_area)).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct UserException {
    /// The upcall's arguments, in `rdi`, `rsi`, `rdx` and `rcx` on the way
    /// out (every other general register leaves zero).
    pub args: [u64; 4],
    /// Keeps the call's stack 16-byte aligned.
    _align: u64,
    pub vector: u64,
    pub error_code: u64,
    /// What `iretq` takes: the faulting context on the way in, the
    /// upcall's entry on the way out.
    pub rip: u64,
    pub cs: u64,
    pub rflags: u64,
    pub rsp: u64,
    pub ss: u64,
}

impl UserException {
    /// The registers the user-exception entry leaves with: the arguments,
    /// what `iretq` takes, every other general register zero.
    pub fn leaving(&self) -> TrapFrame {
        let [rdi, rsi, rdx, rcx] = self.args;
        TrapFrame {
            rdi,
            rsi,
            rdx,
            rcx,
            rip: self.rip,
            cs: self.cs,
            rflags: self.rflags,
            rsp: self.rsp,
            ss: self.ss,
            ..TrapFrame::default()
        }
    }

    /// The exception `frame` holds (its registers aside), as the entry
    /// would have handed it over.
    pub fn of(frame: &TrapFrame) -> UserException {
        UserException {
            vector: frame.vector,
            error_code: frame.error_code,
            rip: frame.rip,
            cs: frame.cs,
            rflags: frame.rflags,
            rsp: frame.rsp,
            ss: frame.ss,
            ..UserException::default()
        }
    }
}

global_asm!(
    r#"
    .section .text.interrupt_entry, "ax"
    .balign 16
    .global interrupt_stubs
interrupt_stubs:
    .set vec, 0
    .rept 256
    .balign 16
    .if (vec == 8) || (vec == 10) || (vec == 11) || (vec == 12) || (vec == 13) || (vec == 14) || (vec == 17) || (vec == 21) || (vec == 29) || (vec == 30)
    .else
    pushq $0
    .endif
    pushq $vec
    .if (vec == 2) || (vec == 8) || (vec == 18)
    jmp interrupt_paranoid
    .elseif vec < 32
    jmp exception_common
    .else
    jmp interrupt_common
    .endif
    .set vec, vec + 1
    .endr
"#,
    options(att_syntax)
);

// SAFETY (the entry paths below): each is reached only through its gate
// or MSR (IDT, LSTAR, CSTAR), with interrupts off for `syscall` (IA32_FMASK)
// and interrupt gates; an entry from ring 3 swaps to the kernel GS before
// any `gs:` access and back just before leaving; the user's RSP is stored
// and restored, never dereferenced; each core runs on its own kernel stack
// (TSS RSP0, `gs:16`, `light_stack_top`) and IST stacks. The user-exception
// entry writes only the `UserContext` the core's user-exception area names,
// which its setter keeps live and writable until it clears or replaces it
// (`PerCpu::set_user_exception_area`; only the scheduler sets it, with the
// environment its turn holds), and is entered only from ring 3, where the
// environment that area belongs to runs.
global_asm!(
    r#"
    .section .text.interrupt_entry, "ax"
.macro SAVE_REGS
    push rax
    push rbx
    push rcx
    push rdx
    push rsi
    push rdi
    push rbp
    push r8
    push r9
    push r10
    push r11
    push r12
    push r13
    push r14
    push r15
.endm

/* Gates keep RFLAGS.AC, which ring 3 may set: with it, SMAP would let the
   handler touch user pages. `clac` is #UD without SMAP, so clear it
   through the stack (user entries only; the iretq restores the user's). */
.macro CLEAR_AC
    pushfq
    and qword ptr [rsp], ~0x40000
    popfq
.endm

.macro RESTORE_REGS
    pop r15
    pop r14
    pop r13
    pop r12
    pop r11
    pop r10
    pop r9
    pop r8
    pop rbp
    pop rdi
    pop rsi
    pop rdx
    pop rcx
    pop rbx
    pop rax
.endm

interrupt_common:
    /* [rsp] vector, +8 error, +16 rip, +24 cs */
    test byte ptr [rsp + 24], 3
    jz interrupt_from_kernel
    swapgs
    CLEAR_AC
1:
interrupt_save_regs:
    SAVE_REGS
    mov rdi, rsp
    cld
    call interrupt_dispatch
    RESTORE_REGS
    test byte ptr [rsp + 24], 3
    jz 2f
    swapgs
2:  add rsp, 16
    .global iret_common
iret_common:
    iretq

/* From ring 0. An iretq to ring 3 that faults (a bad selector or, on some
   CPUs, a non-canonical rip in its frame) does so in ring 0, after the
   return's swapgs: the kernel's GS comes back before any gs: access, and
   the handler (`faulted_user_return`) blames the environment. Its frame
   is where the fault left rsp. */
interrupt_from_kernel:
    push rax
    /* now +24 rip, +48 rsp */
    lea rax, [rip + iret_common]
    cmp [rsp + 24], rax
    je 7f
    lea rax, [rip + iret_enter_user]
    cmp [rsp + 24], rax
    je 7f
    lea rax, [rip + iret_paranoid]
    cmp [rsp + 24], rax
    je 7f
    lea rax, [rip + iret_user_exception]
    cmp [rsp + 24], rax
    je 7f
    pop rax
    jmp 1b
7:  mov rax, [rsp + 48]
    test byte ptr [rax + 8], 3 /* the CS it returned to: ring 3, GS swapped */
    pop rax
    jz 1b
    swapgs
    jmp 1b

/* An exception (a vector below 32 but NMI, #DF and #MC) from ring 3: its
   general registers are saved once, straight into the save area the
   scheduler names for this core (gs:[user_exception_area]: the running
   environment's fault area in its dispatch page, where its libOS reads
   them), not on this stack to be copied there. The handler
   (Handlers::user_exception) gets the CPU's frame below room for the
   upcall's four arguments (UserException) and rewrites it into the entry
   of the environment's exception upcall, or does not return (through
   user_exception_dispatch, as interrupt_dispatch for the others); the upcall
   is entered with those arguments and every other register zero. Without
   an area, and for a fault at the syscall entry (which may be a syscall
   the hypervisor delivered in ring 3: trap::is_unprivileged_syscall), the
   common path with a TrapFrame. */
exception_common:
    test byte ptr [rsp + 24], 3
    jz interrupt_from_kernel
    swapgs
    CLEAR_AC
    push rax
    /* now +24 rip */
    lea rax, [rip + syscall_entry]
    cmp [rsp + 24], rax
    je 8f
    mov rax, gs:[{user_exception_area}]
    test rax, rax
    jz 8f
    mov [rax + {ctx_rbx}], rbx
    mov [rax + {ctx_rcx}], rcx
    mov [rax + {ctx_rdx}], rdx
    mov [rax + {ctx_rsi}], rsi
    mov [rax + {ctx_rdi}], rdi
    mov [rax + {ctx_rbp}], rbp
    mov [rax + {ctx_r8}], r8
    mov [rax + {ctx_r9}], r9
    mov [rax + {ctx_r10}], r10
    mov [rax + {ctx_r11}], r11
    mov [rax + {ctx_r12}], r12
    mov [rax + {ctx_r13}], r13
    mov [rax + {ctx_r14}], r14
    mov [rax + {ctx_r15}], r15
    pop qword ptr [rax + {ctx_rax}]
    /* The arguments and a word of alignment: rsp is 16-byte aligned at
       the call (the CPU's 5 words, error and vector: 56 bytes below the
       aligned stack top, and 40 more). */
    sub rsp, 40
    mov rdi, rsp
    mov rsi, rax
    cld
    call user_exception_dispatch
    pop rdi
    pop rsi
    pop rdx
    pop rcx
    add rsp, 24            /* the alignment word, vector and error code */
    xor eax, eax
    xor ebx, ebx
    xor ebp, ebp
    xor r8d, r8d
    xor r9d, r9d
    xor r10d, r10d
    xor r11d, r11d
    xor r12d, r12d
    xor r13d, r13d
    xor r14d, r14d
    xor r15d, r15d
    swapgs
    .global iret_user_exception
iret_user_exception:
    iretq
8:  pop rax
    jmp interrupt_save_regs

/* syscall: one compare sorts the number. abi::syscall::FLOOR returns at
   once (rcx, r11 still hold the caller's rip and rflags); a number above
   it, unknown by construction, takes the full path; one below it goes
   where SYSCALL_PATHS says: syscall_light for a light call
   (syscall::light), syscall_full for the others, which build a TrapFrame
   (vector 0x100) on the kernel stack. */
    .global syscall_entry
syscall_entry:
    cmp rax, {floor}
    je 5f
    ja syscall_full
    jmp qword ptr [{paths} + rax * 8]

    .global syscall_full
syscall_full:
    swapgs
    mov gs:[24], rsp
    mov rsp, gs:[16]
    push 0x23              /* user SS (USER_DATA) */
    push qword ptr gs:[24] /* user RSP */
    push r11               /* RFLAGS */
    push 0x2b              /* user CS (USER_CODE) */
    push rcx               /* RIP */
    push 0
    push 0x100             /* vector 0x100: "a syscall", never a real vector */
    SAVE_REGS
    mov rdi, rsp
    cld
    call qword ptr [{handlers} + {syscall_handler}]
    /* Same-context return: sysret. (Context switches leave through enter_user_frame.) */
    RESTORE_REGS
    add rsp, 16
    pop rcx                /* RIP: the caller's own, canonical by construction */
    add rsp, 8
    pop r11                /* RFLAGS */
    pop rsp                /* user RSP; NMIs use an IST stack, so this is safe */
    swapgs
    sysretq
5:  sysretq

/* The light path: no TrapFrame. Saved are the registers the System V ABI
   lets the handler clobber and the syscall ABI keeps (rdi, rsi, r8, r9,
   r10) and the caller's rip and rflags (rcx, r11) for sysret; rbx, rbp and
   r12-r15 the handler keeps itself; rax and rdx come back from the entry
   (LightReply); the caller's rsp waits in light_caller_rsp,
   which also tells enter_user a light call is under way. Interrupts stay
   off throughout (IA32_FMASK cleared IF, DF and AC on the way in: no cld
   or clac needed), as on the full path. */
    .global syscall_light
syscall_light:
    swapgs
    mov gs:[{light_caller_rsp}], rsp
    mov rsp, gs:[{light_stack_top}]
    push rcx
    push r11
    push rdi
    push rsi
    push r8
    push r9
    push r10
    /* rdi, rsi, rdx are the entry's arguments as they stand; rsp is 16-byte
       aligned here (light_stack_top is the kernel stack top - 8). */
    call qword ptr [{light_entries} + rax * 8]
    pop r10
    pop r9
    pop r8
    pop rsi
    pop rdi
    pop r11
    pop rcx                /* the caller's own rip, canonical as on the full path */
    mov rsp, gs:[{light_caller_rsp}]
    mov qword ptr gs:[{light_caller_rsp}], 0
    swapgs
    sysretq

/* `syscall` from compatibility mode (IA32_CSTAR): ring 0 on the caller's
   stack with its GS. Switch as the 64-bit entry does, then kill the caller
   (its handler never returns). */
    .global compat_syscall_entry
compat_syscall_entry:
    swapgs
    mov gs:[24], rsp
    mov rsp, gs:[16]
    push 0x23
    push qword ptr gs:[24]
    push r11
    push 0x2b
    push rcx
    push 0
    push 0x101
    SAVE_REGS
    mov rdi, rsp
    cld
    call qword ptr [{handlers} + {compat_handler}]
    ud2

/* enter_user_frame(frame): rsp = frame (a local of the caller, on the current stack). */
    .global enter_user_frame
enter_user_frame:
    mov rsp, rdi
    RESTORE_REGS
    add rsp, 16
    swapgs
    .global iret_enter_user
iret_enter_user:
    iretq

interrupt_paranoid:
    SAVE_REGS
    /* Kernel GS base has its top bit set; a user one never does. */
    mov ecx, 0xC0000101
    rdmsr
    xor ebx, ebx
    test edx, edx
    js 3f
    swapgs
    CLEAR_AC
    mov ebx, 1
3:  mov rdi, rsp
    cld
    call interrupt_dispatch
    test ebx, ebx
    jz 4f
    swapgs
4:  RESTORE_REGS
    add rsp, 16
    .global iret_paranoid
iret_paranoid:
    iretq
"#,
    floor = const abi::syscall::FLOOR,
    paths = sym SYSCALL_PATHS,
    light_entries = sym LIGHT_ENTRIES,
    handlers = sym HANDLERS,
    syscall_handler = const core::mem::offset_of!(Entries, syscall),
    compat_handler = const core::mem::offset_of!(Entries, compat_syscall),
    user_exception_area = const super::percpu::USER_EXCEPTION_AREA,
    ctx_rax = const core::mem::offset_of!(UserContext, rax),
    ctx_rbx = const core::mem::offset_of!(UserContext, rbx),
    ctx_rcx = const core::mem::offset_of!(UserContext, rcx),
    ctx_rdx = const core::mem::offset_of!(UserContext, rdx),
    ctx_rsi = const core::mem::offset_of!(UserContext, rsi),
    ctx_rdi = const core::mem::offset_of!(UserContext, rdi),
    ctx_rbp = const core::mem::offset_of!(UserContext, rbp),
    ctx_r8 = const core::mem::offset_of!(UserContext, r8),
    ctx_r9 = const core::mem::offset_of!(UserContext, r9),
    ctx_r10 = const core::mem::offset_of!(UserContext, r10),
    ctx_r11 = const core::mem::offset_of!(UserContext, r11),
    ctx_r12 = const core::mem::offset_of!(UserContext, r12),
    ctx_r13 = const core::mem::offset_of!(UserContext, r13),
    ctx_r14 = const core::mem::offset_of!(UserContext, r14),
    ctx_r15 = const core::mem::offset_of!(UserContext, r15),
    light_caller_rsp = const core::mem::offset_of!(crate::arch::percpu::PerCpu, light_caller_rsp),
    light_stack_top = const core::mem::offset_of!(crate::arch::percpu::PerCpu, light_stack_top),
);

extern "C" {
    static interrupt_stubs: u8;
    /// The `iretq`s that may return to ring 3.
    static iret_common: u8;
    static iret_enter_user: u8;
    static iret_paranoid: u8;
    static iret_user_exception: u8;
}

/// If `frame` is an exception raised by one of the `iretq`s that return to
/// ring 3 (in ring 0: a bad selector, say, in the frame it was given), the
/// context that `iretq` was returning to: its registers were restored
/// already, its rip, CS, RFLAGS, rsp and SS are the frame the `iretq` read,
/// where the fault left the stack pointer. The entry stub has given the
/// kernel its GS back. The caller blames the environment being entered;
/// `None` for any other fault (a fault of an `iretq` back to ring 0 is the
/// kernel's own bug).
pub fn faulted_user_return(frame: &TrapFrame) -> Option<TrapFrame> {
    let at = frame.rip;
    let labels = [
        &raw const iret_common as u64,
        &raw const iret_enter_user as u64,
        &raw const iret_paranoid as u64,
        &raw const iret_user_exception as u64,
    ];
    if frame.is_user() || !labels.contains(&at) {
        return None;
    }
    // SAFETY: the fault was raised by that `iretq`, in ring 0 without a
    // stack switch, so `frame.rsp` is where its five-word frame lies on
    // this core's stack, below which the CPU pushed the exception's frame:
    // still there, and not written since.
    let iret = unsafe { core::ptr::read(frame.rsp as *const [u64; 5]) };
    let [rip, cs, rflags, rsp, ss] = iret;
    (cs & 3 == 3).then_some(TrapFrame {
        rip,
        cs,
        rflags,
        rsp,
        ss,
        ..*frame
    })
}

#[repr(C, align(16))]
#[derive(Clone, Copy)]
struct Gate {
    offset_low: u16,
    selector: u16,
    ist: u8,
    flags: u8,
    offset_mid: u16,
    offset_high: u32,
    reserved: u32,
}

impl Gate {
    const EMPTY: Gate = Gate {
        offset_low: 0,
        selector: 0,
        ist: 0,
        flags: 0,
        offset_mid: 0,
        offset_high: 0,
        reserved: 0,
    };

    fn new(handler: u64, ist: u8, user_callable: bool) -> Gate {
        Gate {
            offset_low: handler as u16,
            selector: KERNEL_CODE,
            ist,
            // present | DPL | 64-bit interrupt gate (IF cleared on entry)
            flags: 0x8E | if user_callable { 0x60 } else { 0 },
            offset_mid: (handler >> 16) as u16,
            offset_high: (handler >> 32) as u32,
            reserved: 0,
        }
    }
}

struct Idts(UnsafeCell<[[Gate; 256]; MAX_CPUS]>);

// SAFETY: core `i` writes only IDT `i`, once, before loading it.
unsafe impl Sync for Idts {}

static IDTS: Idts = Idts(UnsafeCell::new([[Gate::EMPTY; 256]; MAX_CPUS]));

/// Builds and loads this core's IDT.
///
/// # Safety
/// Called once per core, on core `core`, with interrupts disabled, after its
/// GDT (the gates name its kernel code selector and IST slots) is loaded.
pub unsafe fn load(core: usize) {
    // SAFETY: IDT `core` belongs to the calling core.
    let idt = unsafe { &mut (*IDTS.0.get())[core] };
    let base = &raw const interrupt_stubs as u64;
    for (v, gate) in idt.iter_mut().enumerate() {
        let ist = match v as u8 {
            vector::DOUBLE_FAULT => gdt::IST_DOUBLE_FAULT,
            vector::NMI => gdt::IST_NMI,
            vector::MACHINE_CHECK => gdt::IST_MACHINE_CHECK,
            _ => 0,
        };
        // int3 may be executed from ring 3 and reflected to the environment.
        let user = v as u8 == vector::BREAKPOINT;
        *gate = Gate::new(base + 16 * v as u64, ist, user);
    }
    #[repr(C, packed)]
    struct Pointer {
        limit: u16,
        base: u64,
    }
    let ptr = Pointer {
        limit: (256 * 16 - 1) as u16,
        base: idt.as_ptr() as u64,
    };
    // SAFETY: the IDT is static and fully initialised.
    unsafe { core::arch::asm!("lidt [{}]", in(reg) &ptr, options(readonly, nostack)) };
}

extern "C" {
    fn syscall_entry();
    fn syscall_full();
    fn syscall_light();
    fn compat_syscall_entry();
    fn enter_user_frame(frame: *const TrapFrame) -> !;
}

/// Numbers the light table covers: those below `abi::syscall::FLOOR` (the
/// stub sends every number above it down the full path, and the table
/// covers exactly the numbers below: its one compare).
pub const LIGHT_TABLE_LEN: usize = abi::syscall::FLOOR as usize;

/// What a light entry returns to the stub: RAX and RDX (a two-word
/// `repr(C)` struct comes back in RAX:RDX under the System V ABI).
#[repr(C)]
pub struct LightReply {
    pub rax: u64,
    pub rdx: u64,
}

/// A light call's entry as the stub calls it: the caller's RDI, RSI and RDX
/// are its arguments as they stand.
pub type LightEntry = extern "C" fn(u64, u64, u64) -> LightReply;

/// A handler of a saved frame, called by an entry stub with interrupts off.
pub type FrameHandler = extern "C" fn(&mut TrapFrame);

/// The kernel's handlers, installed once at boot ([`install`]).
pub struct Handlers {
    /// Every interrupt and exception (after the AC check).
    pub interrupt: fn(&mut TrapFrame),
    /// A system call down the full path (one that may switch context, or an
    /// unknown number): writes its result into the frame, or switches
    /// context and does not return.
    pub syscall: FrameHandler,
    /// `syscall` from compatibility mode: never legitimate; never returns.
    pub compat_syscall: extern "C" fn(&mut TrapFrame) -> !,
    /// An exception from ring 3 whose registers the entry saved at the
    /// core's user-exception area (the second argument: where it saved
    /// them): rewrites the exception into its upcall's entry, or does not
    /// return.
    pub user_exception: fn(&mut UserException, NonNull<UserContext>),
    /// Entry `n`: light call `n`'s (`None`: call `n` takes the full path).
    pub light: [Option<LightEntry>; LIGHT_TABLE_LEN],
}

/// The frame handlers where the stubs find them (at fixed offsets: one
/// indirect `call` through memory, as cheap as the direct call it replaced).
#[repr(C)]
struct Entries {
    interrupt: fn(&mut TrapFrame),
    syscall: FrameHandler,
    compat_syscall: extern "C" fn(&mut TrapFrame) -> !,
    user_exception: fn(&mut UserException, NonNull<UserContext>),
}

/// A table the stubs read, written by [`install`] only.
#[repr(transparent)]
struct BootTable<T>(UnsafeCell<T>);

// SAFETY: written only by `install`, on the BSP before anything reads it
// (its contract); read-only afterwards.
unsafe impl<T> Sync for BootTable<T> {}

impl<T> BootTable<T> {
    fn get(&self) -> &T {
        // SAFETY: no write after boot (see `install`), so no `&mut` aliases.
        unsafe { &*self.0.get() }
    }
}

fn not_installed(frame: &mut TrapFrame) {
    panic!(
        "vector {:#x} before the kernel's handlers were installed",
        frame.vector
    );
}

extern "C" fn syscall_not_installed(frame: &mut TrapFrame) {
    not_installed(frame)
}

extern "C" fn compat_not_installed(frame: &mut TrapFrame) -> ! {
    not_installed(frame);
    unreachable!("not_installed panics")
}

fn user_exception_not_installed(frame: &mut UserException, _: NonNull<UserContext>) {
    panic!(
        "user exception {:#x} before the kernel's handlers were installed",
        frame.vector
    );
}

static HANDLERS: BootTable<Entries> = BootTable(UnsafeCell::new(Entries {
    interrupt: not_installed,
    syscall: syscall_not_installed,
    compat_syscall: compat_not_installed,
    user_exception: user_exception_not_installed,
}));

/// Where the `syscall` stub jumps for each number below `FLOOR`: the light
/// path for the light calls, the full path for every other number (the
/// calls that may switch context, and unknown numbers, which get
/// `BadSyscall` there). Made from [`Handlers::light`] by [`install`].
static SYSCALL_PATHS: BootTable<[unsafe extern "C" fn(); LIGHT_TABLE_LEN]> =
    BootTable(UnsafeCell::new([syscall_full; LIGHT_TABLE_LEN]));

/// The light path's table ([`Handlers::light`]).
static LIGHT_ENTRIES: BootTable<[Option<LightEntry>; LIGHT_TABLE_LEN]> =
    BootTable(UnsafeCell::new([None; LIGHT_TABLE_LEN]));

// The stub reads a light entry as one word, zero for `None` (guaranteed
// for `Option` of a function pointer).
const _: () = assert!(core::mem::size_of::<Option<LightEntry>>() == 8);

/// Installs the kernel's handlers: from now on the entries call them.
///
/// # Safety
/// Once, on the BSP, before interrupts are enabled, before any other core
/// starts and before any system call: nothing reads the tables meanwhile.
pub unsafe fn install(handlers: Handlers) {
    // SAFETY: nothing else reads or writes the tables now (the contract).
    let (entries, paths, light) = unsafe {
        (
            &mut *HANDLERS.0.get(),
            &mut *SYSCALL_PATHS.0.get(),
            &mut *LIGHT_ENTRIES.0.get(),
        )
    };
    *entries = Entries {
        interrupt: handlers.interrupt,
        syscall: handlers.syscall,
        compat_syscall: handlers.compat_syscall,
        user_exception: handlers.user_exception,
    };
    for (n, entry) in handlers.light.iter().enumerate() {
        light[n] = *entry;
        paths[n] = if entry.is_some() {
            syscall_light
        } else {
            syscall_full
        };
    }
}

// Both syscall paths `sysret` to the RCX that `syscall` saved: the address
// after the caller's `syscall` instruction. A non-canonical one would make
// `sysretq` fault in ring 0 on Intel, on the user's RSP and GS; it cannot
// occur because no page in the lower half's last page is executable by
// ring 3 (`aspace` checks it where user mappings are made; the nested-KVM
// fix-up, which takes RCX from a fault rather than from `syscall`, checks
// it itself: `trap::is_unprivileged_syscall`).
// The full path names the kernel stack top and the RSP scratch literally.
const _: () = assert!(
    core::mem::offset_of!(crate::arch::percpu::PerCpu, kernel_rsp) == 16
        && core::mem::offset_of!(crate::arch::percpu::PerCpu, user_rsp_scratch) == 24
);

/// Address of the `syscall` entry point (for LSTAR).
pub fn syscall_entry_address() -> u64 {
    syscall_entry as *const () as u64
}

/// Address of the compatibility-mode `syscall` entry point (for CSTAR).
pub fn compat_syscall_entry_address() -> u64 {
    compat_syscall_entry as *const () as u64
}

/// Leaves the kernel for ring 3 with `frame`, a local of a caller on the
/// current stack, discarding that stack: the registers are popped from
/// `frame` where it lies and `iretq` takes the rest. The frame is not
/// moved to the stack top first (a 176-byte copy, ~38 instructions an
/// entry): nothing runs on this stack between the move of RSP onto the
/// frame and the `iretq` (interrupts are off, NMI and machine checks have
/// their own stacks), and the next entry from ring 3 starts at the top
/// again (TSS RSP0). An `iretq` that faults (no IST, same privilege) pushes
/// its exception frame at and below `rip`'s slot, rounded down to 16
/// bytes: the words it overwrites are registers already popped; `rip` to
/// `ss`, all `faulted_user_return` reads, stay as they were.
///
/// Safe to call with any frame: one that is not on the stack above RSP
/// (the heap, a static, a page ring 3 writes, which would become the
/// stack) or not for ring 3 stops the kernel here. Every frame of the
/// stack is abandoned, callers' included: nothing returns to them.
pub fn enter_user(frame: &TrapFrame) -> ! {
    let cpu = crate::arch::percpu::this();
    // Every context switch ends here; a light call's handler must return
    // to its caller instead (see `syscall::light`).
    assert!(
        cpu.light_caller_rsp
            .load(core::sync::atomic::Ordering::Relaxed)
            == 0,
        "a light system call switched context"
    );
    assert!(frame.is_user(), "enter_user with a kernel CS");
    let rsp: u64;
    // SAFETY: reads RSP; no memory touched.
    unsafe {
        core::arch::asm!("mov {}, rsp", out(reg) rsp, options(nomem, nostack, preserves_flags))
    };
    let at = frame as *const TrapFrame as u64;
    assert!(
        at > rsp && at - rsp < gdt::KERNEL_STACK_SIZE as u64,
        "enter_user: frame at {at:#x} is not on the stack above rsp {rsp:#x}"
    );
    // SAFETY: `frame` is on this stack above RSP (checked above), so
    // popping from it abandons only this stack's frames, none of which
    // runs again; its CS is ring 3's (checked), so `iretq` cannot enter
    // ring 0 (a bad SS or a non-canonical rip faults, and the fix-up
    // blames the environment). `RSP0` and the IST stacks are untouched.
    unsafe { enter_user_frame(frame) }
}

/// Interrupts and exceptions from ring 3 whose handler found RFLAGS.AC
/// set. A gate does not clear AC, and ring 3 may set it (`popf`): with AC
/// set, SMAP lets the handler touch user pages. The entry stubs clear it;
/// this counts any that did not (the end record reports it).
pub static AC_AT_ENTRY: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);

/// Counts an entry from ring 3 whose handler would run with AC set.
#[inline(always)]
fn note_ac_at_user_entry() {
    if x86::bits64::rflags::read().contains(RFlags::FLAGS_AC) {
        AC_AT_ENTRY.fetch_add(1, core::sync::atomic::Ordering::Relaxed);
    }
}

/// Entry from the stubs, with interrupts disabled.
#[no_mangle]
extern "C" fn interrupt_dispatch(frame: &mut TrapFrame) {
    if frame.is_user() {
        note_ac_at_user_entry();
    }
    (HANDLERS.get().interrupt)(frame);
}

/// Entry from the user-exception path (`exception_common`), with
/// interrupts disabled and the registers saved at `area`.
#[no_mangle]
extern "C" fn user_exception_dispatch(frame: &mut UserException, area: NonNull<UserContext>) {
    note_ac_at_user_entry();
    (HANDLERS.get().user_exception)(frame, area);
}
