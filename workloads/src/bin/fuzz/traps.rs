//! Instructions that reach the kernel through the CPU rather than through
//! `syscall`: segment-register loads, far jumps and calls to every GDT
//! selector (and random ones), software interrupts, `sysenter`, and the
//! privileged instructions. Ring 3 may not get past any of them: each must
//! fault in ring 3 (an exception upcall to this program), or, for the few
//! a user may execute, change nothing but this program's own registers.
//!
//! Each runs "armed": its address and the address to go on at are stored
//! for this core first; the exception handler ([`on_fault`]) records the
//! fault and resumes there, and the operation compares what came with what
//! the CPU's rules give for the kernel's tables (issue 14, holes 2 and 4):
//!
//! - GDT (`kernel/src/arch/gdt.rs`): null, kernel code 0x08, kernel data
//!   0x10, a 32-bit user code descriptor 0x18 kept for `sysret`'s layout and
//!   NOT present (a far jump there would reach compatibility mode and its
//!   `syscall`), user data 0x20, user code 0x28, the TSS at 0x30-0x3f;
//!   limit 0x3f; a null LDT is loaded on every core.
//! - IDT: every gate present, DPL 0 except `#BP`'s (3): `int n` is `#GP`
//!   naming gate `n`, but for `int 3`.
//! - `syscall` only from 64-bit code; no `sysenter`; IOPL 0 and no I/O
//!   bitmap; CR4.PCE, CR4.FSGSBASE and CR4.UMIP as the kernel leaves them.
//!
//! A fault nobody armed is reported (`fuzz_unexpected_fault`) and ends the
//! fuzzer, which the experiment's check then fails on: the kernel must
//! never turn this program's own correct code into a fault.

use core::sync::atomic::{AtomicU64, Ordering};

use libos::abi::shared::{Dispatch, FaultInfo, MAX_CORES};
use libos::{report, sys, FaultAction};

use crate::calls::Rng;
use crate::tally::{self, ran, violation, Op};

const DB: u8 = 1;
const BP: u8 = 3;
const UD: u8 = 6;
const NP: u8 = 11;
const GP: u8 = 13;
const PF: u8 = 14;

/// Per core: where the armed instruction starts (0: none armed) and where
/// to go on after it, whether it faults or not.
static ARMED_AT: [AtomicU64; MAX_CORES] = [const { AtomicU64::new(0) }; MAX_CORES];
static RESUME_AT: [AtomicU64; MAX_CORES] = [const { AtomicU64::new(0) }; MAX_CORES];
/// Per core: the fault the armed instruction took, `1 << 63 | vector << 32
/// | error code`, or 0.
static TAKEN: [AtomicU64; MAX_CORES] = [const { AtomicU64::new(0) }; MAX_CORES];
/// Per core: a far pointer (`m16:32`: offset, then selector) for far jumps
/// and calls.
static FAR_POINTER: [AtomicU64; MAX_CORES] = [const { AtomicU64::new(0) }; MAX_CORES];

/// A fault an armed instruction took.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fault {
    vector: u8,
    error: u32,
}

impl Fault {
    /// As a violation's code: `vector << 16 | error code` (low 16 bits).
    fn code(self) -> u64 {
        u64::from(self.vector) << 16 | u64::from(self.error & 0xffff)
    }
}

/// A violation's code when no fault came where one was due.
const NO_FAULT: u64 = 0xffff_ffff;

/// The exception upcall: an armed instruction's fault is noted and the
/// program goes on after it; any other fault ends the program.
pub fn on_fault(core: usize, info: &FaultInfo) -> FaultAction {
    let core = core.min(MAX_CORES - 1);
    let at = ARMED_AT[core].swap(0, Ordering::Relaxed);
    let resume = RESUME_AT[core].load(Ordering::Relaxed);
    // A fault reports the instruction's address, a trap (`int n`, `int3`,
    // `icebp`) the next one's: anything from the first to where to go on.
    if at != 0 && (at..=resume).contains(&info.rip) {
        TAKEN[core].store(
            1 << 63 | (info.vector & 0xff) << 32 | (info.error_code & 0xffff_ffff),
            Ordering::Relaxed,
        );
        tally::FAULTS.fetch_add(1, Ordering::Relaxed);
        return FaultAction::Resume {
            skip: resume - info.rip,
        };
    }
    report!(
        "\"kind\":\"fuzz_unexpected_fault\",\"core\":{core},\"vector\":{},\"error_code\":{},\"rip\":{},\"address\":{},\"armed_at\":{at}",
        info.vector,
        info.error_code,
        info.rip,
        info.address
    );
    FaultAction::Exit
}

fn arm_slots(core: usize) -> (u64, u64) {
    (
        &ARMED_AT[core] as *const AtomicU64 as u64,
        &RESUME_AT[core] as *const AtomicU64 as u64,
    )
}

/// What the armed instruction did: the fault it took, if any.
fn taken(core: usize) -> Option<Fault> {
    ARMED_AT[core].store(0, Ordering::Relaxed);
    let t = TAKEN[core].swap(0, Ordering::Relaxed);
    (t != 0).then_some(Fault {
        vector: (t >> 32) as u8,
        error: t as u32,
    })
}

/// Runs one instruction (`$insn`, with `ax` = `$sel`) armed on `$core`.
macro_rules! armed {
    ($core:expr, $sel:expr, $insn:literal) => {{
        let (armed, resume) = arm_slots($core);
        // SAFETY: stores this core's armed addresses (statics of ours),
        // then runs one instruction that either completes or faults in
        // ring 3; the handler resumes at label 4 with every register as it
        // was. Segment loads change only this program's own segment
        // registers (see `segment_load` for FS).
        unsafe {
            core::arch::asm!(
                "lea {t}, [rip + 3f]",
                "mov qword ptr [{armed}], {t}",
                "lea {t}, [rip + 4f]",
                "mov qword ptr [{resume}], {t}",
                concat!("3: ", $insn),
                "4:",
                t = out(reg) _,
                armed = in(reg) armed,
                resume = in(reg) resume,
                in("ax") $sel,
                options(nostack),
            );
        }
    }};
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Seg {
    Ds,
    Es,
    Fs,
    Gs,
    Ss,
}

fn load(core: usize, seg: Seg, sel: u16) -> Option<Fault> {
    match seg {
        Seg::Ds => armed!(core, sel, "mov ds, ax"),
        Seg::Es => armed!(core, sel, "mov es, ax"),
        Seg::Fs => armed!(core, sel, "mov fs, ax"),
        Seg::Gs => armed!(core, sel, "mov gs, ax"),
        Seg::Ss => armed!(core, sel, "mov ss, ax"),
    }
    taken(core)
}

/// What a selector names in the kernel's GDT.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Descriptor {
    Null,
    /// TI set: a descriptor of the LDT, which is null.
    Ldt,
    KernelCode,
    KernelData,
    /// The 32-bit user code descriptor, not present (hole 2).
    Code32Absent,
    UserData,
    UserCode,
    /// The TSS's two halves.
    System,
    /// Past the GDT's limit.
    Beyond,
}

fn descriptor(sel: u16) -> Descriptor {
    if sel & 4 != 0 {
        return Descriptor::Ldt;
    }
    match sel & 0xfff8 {
        0 => Descriptor::Null,
        0x08 => Descriptor::KernelCode,
        0x10 => Descriptor::KernelData,
        0x18 => Descriptor::Code32Absent,
        0x20 => Descriptor::UserData,
        0x28 => Descriptor::UserCode,
        0x30 | 0x38 => Descriptor::System,
        _ => Descriptor::Beyond,
    }
}

/// What the CPU must do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outcome {
    /// Complete, in ring 3.
    Done,
    Fault(u8, u32),
    /// A selector with TI set: the kernel loads a null LDT on every core,
    /// so `#GP(selector)`. (With LDTR at its reset value — limit 0xffff,
    /// base 0 — the CPU read descriptors from the user's own addresses
    /// 0..64 KiB: `#PF` while nothing is mapped there, a user-built
    /// descriptor table once anything is.)
    ThroughLdt(u32),
    /// Either fault, error code 0: `sysenter`/`sysexit` are `#UD` on AMD
    /// in long mode and `#GP(0)` on Intel (`IA32_SYSENTER_CS` is 0);
    /// `icebp` is `#DB`, but `#UD` under QEMU's TCG.
    Either(u8, u8),
    /// A far call into the user code segment completes; under QEMU's TCG
    /// one with RPL 0 or 1 was seen to fault instead, `#PF` with error
    /// code 3 (present, write, supervisor) on pushing its return address:
    /// TCG makes that push a supervisor access. Ring 3 stays ring 3.
    CallDone,
    /// `int n` through a gate of DPL 0: `#GP` naming gate `n` of the IDT,
    /// error code `n * 8 + 2` (the SDM's); QEMU's TCG gives `n * 16 + 2`
    /// in 64-bit mode (the gate's byte offset), also taken.
    IdtGp(u32),
}

fn load_outcome(seg: Seg, sel: u16) -> Outcome {
    let gp = Outcome::Fault(GP, u32::from(sel & 0xfffc));
    match (descriptor(sel), seg) {
        (Descriptor::Null, Seg::Ss) => Outcome::Fault(GP, 0),
        (Descriptor::Null, _) => Outcome::Done,
        (Descriptor::Ldt, _) => Outcome::ThroughLdt(u32::from(sel & 0xfffc)),
        // SS takes only a writable data segment with RPL = DPL = CPL.
        (Descriptor::UserData, Seg::Ss) if sel & 3 == 3 => Outcome::Done,
        (_, Seg::Ss) => gp,
        // DS, ES, FS, GS: data, or readable code, of DPL 3.
        (Descriptor::UserData | Descriptor::UserCode, _) => Outcome::Done,
        (Descriptor::Code32Absent, _) => Outcome::Fault(NP, u32::from(sel & 0xfffc)),
        _ => gp,
    }
}

/// A far jump or call: only the 64-bit user code segment is enterable.
fn far_outcome(sel: u16) -> Outcome {
    match descriptor(sel) {
        Descriptor::Null => Outcome::Fault(GP, 0),
        Descriptor::Ldt => Outcome::ThroughLdt(u32::from(sel & 0xfffc)),
        Descriptor::UserCode => Outcome::Done,
        Descriptor::Code32Absent => Outcome::Fault(NP, u32::from(sel & 0xfffc)),
        _ => Outcome::Fault(GP, u32::from(sel & 0xfffc)),
    }
}

/// Counts a violation of `op` unless `got` is `want`; whether the
/// instruction completed.
#[track_caller]
fn judge(op: Op, want: Outcome, got: Option<Fault>) -> bool {
    let fine = match (want, got) {
        (Outcome::Done, None) => true,
        (Outcome::Fault(vector, error), Some(f)) => f.vector == vector && f.error == error,
        (Outcome::ThroughLdt(error), Some(f)) => f.vector == GP && f.error == error,
        (Outcome::Either(a, b), Some(f)) => (f.vector == a || f.vector == b) && f.error == 0,
        (Outcome::CallDone, None) => true,
        (Outcome::CallDone, Some(f)) => f.vector == PF && f.error & 6 == 2,
        (Outcome::IdtGp(n), Some(f)) => {
            f.vector == GP && (f.error == n * 8 + 2 || f.error == n * 16 + 2)
        }
        _ => false,
    };
    if !fine {
        violation(op, got.map_or(NO_FAULT, Fault::code));
    }
    got.is_none()
}

/// 3 in 4 a selector within the GDT (every index, RPL and TI), else any.
fn selector(rng: &mut Rng) -> u16 {
    if rng.below(4) != 0 {
        rng.below(0x40) as u16
    } else {
        rng.next() as u16
    }
}

/// DS, ES, FS, GS or SS loaded with a selector. One that loads stays
/// loaded: DS, ES and SS mean nothing more in 64-bit mode, GS's base
/// becomes the descriptor's (0; the kernel's comes back by `swapgs`), and
/// FS's too — this program's code does not use FS, and the kernel points
/// it back at the dispatch page on every entry (see [`fs_reload`]).
pub fn segment_load(core: usize, rng: &mut Rng) {
    const SEGS: [Seg; 5] = [Seg::Ds, Seg::Es, Seg::Fs, Seg::Gs, Seg::Ss];
    let seg = SEGS[rng.below(5) as usize];
    let sel = selector(rng);
    if judge(Op::SegLoad, load_outcome(seg, sel), load(core, seg, sel)) {
        tally::SEGMENTS_LOADED.fetch_add(1, Ordering::Relaxed);
    }
    ran(Op::SegLoad);
}

/// Hole 4: FS loaded with a selector ring 3 may load (its base becomes 0),
/// the turn given up, and at the next entry FS must name this core's
/// dispatch page again (read its `core` field through FS): the libOS sets
/// its disabled flag through FS, and so does every other environment
/// entered on this core.
pub fn fs_reload(core: usize, rng: &mut Rng) {
    const OP: Op = Op::FsReload;
    const LOADABLE: [u16; 6] = [0x23, 0x2b, 0x20, 0x28, 0, 3];
    let sel = LOADABLE[rng.below(LOADABLE.len() as u64) as usize];
    if let Some(f) = load(core, Seg::Fs, sel) {
        violation(OP, f.code());
        return;
    }
    // From here until the next entry nothing of this program uses FS.
    if let Err(e) = sys::yield_to(None, true) {
        violation(OP, e as u64);
        return;
    }
    match read_core_through_fs(core) {
        Ok(c) if c as usize == core => ran(OP),
        Ok(c) => violation(OP, u64::from(c)),
        Err(f) => violation(OP, f.code()),
    }
}

/// `Dispatch::core` read through FS (armed: a fault is an answer).
fn read_core_through_fs(core: usize) -> Result<u32, Fault> {
    let (armed, resume) = arm_slots(core);
    let mut value = u64::MAX;
    // SAFETY: as `armed!`: one read through FS, which either completes
    // or faults in ring 3 and is resumed at label 4.
    unsafe {
        core::arch::asm!(
            "lea {t}, [rip + 3f]",
            "mov qword ptr [{armed}], {t}",
            "lea {t}, [rip + 4f]",
            "mov qword ptr [{resume}], {t}",
            "3: mov eax, dword ptr fs:[{off}]",
            "4:",
            t = out(reg) _,
            armed = in(reg) armed,
            resume = in(reg) resume,
            off = const core::mem::offset_of!(Dispatch, core),
            inout("rax") value,
            options(nostack),
        );
    }
    match taken(core) {
        Some(f) => Err(f),
        None => Ok(value as u32),
    }
}

/// A far jump to `selector:label 4`: it lands there when the selector is
/// the user code segment's (CS unchanged), else faults there.
pub fn far_jump(core: usize, rng: &mut Rng) {
    let sel = selector(rng);
    let (armed, resume) = arm_slots(core);
    let far = &FAR_POINTER[core] as *const AtomicU64 as u64;
    // SAFETY: as `armed!`; the far pointer is this core's static, and its
    // offset is label 4 (this program is linked below 4 GiB).
    unsafe {
        core::arch::asm!(
            "lea {t}, [rip + 3f]",
            "mov qword ptr [{armed}], {t}",
            "lea {t}, [rip + 4f]",
            "mov qword ptr [{resume}], {t}",
            "mov dword ptr [{far}], {t:e}",
            "mov word ptr [{far} + 4], ax",
            "3: jmp fword ptr [{far}]",
            "4:",
            t = out(reg) _,
            armed = in(reg) armed,
            resume = in(reg) resume,
            far = in(reg) far,
            in("ax") sel,
            options(nostack),
        );
    }
    judge(Op::FarJump, far_outcome(sel), taken(core));
    ran(Op::FarJump);
}

/// A far call to `selector:label 5`, where (taken) the stack pointer is
/// put back and the code goes on at label 4, as it does after a fault.
pub fn far_call(core: usize, rng: &mut Rng) {
    let sel = selector(rng);
    let (armed, resume) = arm_slots(core);
    let far = &FAR_POINTER[core] as *const AtomicU64 as u64;
    // SAFETY: as `far_jump`; a taken call pushes a return address (and
    // CS), dropped at label 5 by restoring the stack pointer saved before.
    unsafe {
        core::arch::asm!(
            "lea {t}, [rip + 3f]",
            "mov qword ptr [{armed}], {t}",
            "lea {t}, [rip + 4f]",
            "mov qword ptr [{resume}], {t}",
            "lea {t}, [rip + 5f]",
            "mov dword ptr [{far}], {t:e}",
            "mov word ptr [{far} + 4], ax",
            "mov {sp}, rsp",
            "3: call fword ptr [{far}]",
            "jmp 4f",
            "5: mov rsp, {sp}",
            "4:",
            t = out(reg) _,
            sp = out(reg) _,
            armed = in(reg) armed,
            resume = in(reg) resume,
            far = in(reg) far,
            in("ax") sel,
        );
    }
    let want = match far_outcome(sel) {
        Outcome::Done => Outcome::CallDone,
        other => other,
    };
    judge(Op::FarCall, want, taken(core));
    ran(Op::FarCall);
}

// Stubs of one instruction each, 4 bytes apart: the instruction, `nop`s,
// and a `ret` at +3 (where a fault resumes). 0-255: `int n`; then the
// others, in `STUB_*` order.
#[cfg(target_os = "none")]
core::arch::global_asm!(
    ".pushsection .text.fuzz_stubs, \"ax\"",
    ".balign 16",
    ".globl fuzz_stubs",
    "fuzz_stubs:",
    ".set fuzz_vector, 0",
    ".rept 256",
    ".byte 0xcd, fuzz_vector, 0x90, 0xc3",
    ".set fuzz_vector, fuzz_vector + 1",
    ".endr",
    ".byte 0xf1, 0x90, 0x90, 0xc3", // 256 icebp
    ".byte 0xcc, 0x90, 0x90, 0xc3", // 257 int3
    ".byte 0xce, 0x90, 0x90, 0xc3", // 258 into
    ".byte 0x0f, 0x34, 0x90, 0xc3", // 259 sysenter
    ".byte 0x0f, 0x35, 0x90, 0xc3", // 260 sysexit
    ".byte 0x48, 0x0f, 0x07, 0xc3", // 261 sysretq
    ".byte 0xf4, 0x90, 0x90, 0xc3", // 262 hlt
    ".byte 0xfa, 0x90, 0x90, 0xc3", // 263 cli
    ".byte 0xfb, 0x90, 0x90, 0xc3", // 264 sti
    ".byte 0xec, 0x90, 0x90, 0xc3", // 265 in al, dx
    ".byte 0xee, 0x90, 0x90, 0xc3", // 266 out dx, al
    ".byte 0x0f, 0x01, 0xf8, 0xc3", // 267 swapgs
    ".byte 0x0f, 0x30, 0x90, 0xc3", // 268 wrmsr
    ".byte 0x0f, 0x32, 0x90, 0xc3", // 269 rdmsr
    ".byte 0x0f, 0x09, 0x90, 0xc3", // 270 wbinvd
    ".byte 0x0f, 0x06, 0x90, 0xc3", // 271 clts
    ".byte 0x0f, 0x33, 0x90, 0xc3", // 272 rdpmc
    ".byte 0x0f, 0x22, 0xd8, 0xc3", // 273 mov cr3, rax
    ".byte 0x0f, 0x20, 0xc0, 0xc3", // 274 mov rax, cr0
    ".byte 0x0f, 0x23, 0xf8, 0xc3", // 275 mov dr7, rax
    ".byte 0x0f, 0x01, 0x10, 0xc3", // 276 lgdt [rax]
    ".byte 0x0f, 0x01, 0x18, 0xc3", // 277 lidt [rax]
    ".byte 0x0f, 0x00, 0xd8, 0xc3", // 278 ltr ax
    ".byte 0x0f, 0x00, 0xd0, 0xc3", // 279 lldt ax
    ".byte 0x0f, 0x01, 0x38, 0xc3", // 280 invlpg [rax]
    ".popsection",
);

const STUB_ICEBP: u64 = 256;
const STUB_INTO: u64 = 258;
const STUB_SYSENTER: u64 = 259;
const STUB_SYSEXIT: u64 = 260;
const STUB_LAST: u64 = 280;

#[cfg(target_os = "none")]
fn stubs() -> u64 {
    let base: u64;
    // SAFETY: only computes the stubs' address.
    unsafe {
        core::arch::asm!("lea {}, [rip + fuzz_stubs]", out(reg) base, options(nomem, nostack));
    }
    base
}

#[cfg(not(target_os = "none"))]
fn stubs() -> u64 {
    unreachable!("the stubs exist in the bare-metal build only")
}

/// Calls stub `index` armed, with random `rax`, `rcx`, `rdx` (a port, an
/// MSR, an address for the instructions that take one).
fn run_stub(core: usize, index: u64, rng: &mut Rng) -> Option<Fault> {
    let at = stubs() + 4 * index;
    ARMED_AT[core].store(at, Ordering::Relaxed);
    RESUME_AT[core].store(at + 3, Ordering::Relaxed);
    // SAFETY: the stub runs one instruction ring 3 may not execute (it
    // faults, and the handler resumes at the stub's `ret`) or `int3`/
    // `icebp` (trap, the same); what a stub could change, were it to
    // complete, is declared clobbered.
    unsafe {
        core::arch::asm!(
            "call {stub}",
            stub = in(reg) at,
            inout("rax") rng.next() => _,
            inout("rcx") rng.next() => _,
            inout("rdx") rng.next() => _,
        );
    }
    taken(core)
}

/// What stub `index` must do in ring 3.
fn stub_outcome(index: u64) -> Outcome {
    match index {
        3 => Outcome::Fault(BP, 0),
        0..=255 => Outcome::IdtGp(index as u32),
        STUB_ICEBP => Outcome::Either(DB, UD),
        257 => Outcome::Fault(BP, 0),
        STUB_INTO => Outcome::Fault(UD, 0),
        STUB_SYSENTER | STUB_SYSEXIT => Outcome::Either(UD, GP),
        _ => Outcome::Fault(GP, 0),
    }
}

fn stub_op(core: usize, op: Op, index: u64, rng: &mut Rng) {
    judge(op, stub_outcome(index), run_stub(core, index, rng));
    ran(op);
}

/// `int 0x80`: `#GP` naming gate 0x80, whose DPL is 0.
pub fn int80(core: usize, rng: &mut Rng) {
    stub_op(core, Op::Int80, 0x80, rng);
}

/// `int n` for any other vector (the exception vectors with an error
/// code among them: a DPL-3 gate there would enter the kernel's handler
/// with none pushed), `int3`, `icebp`, `into`.
pub fn int_n(core: usize, rng: &mut Rng) {
    let index = rng.below(STUB_INTO + 1);
    let index = if index == 0x80 { STUB_ICEBP } else { index };
    stub_op(core, Op::IntN, index, rng);
}

pub fn sysenter(core: usize, rng: &mut Rng) {
    stub_op(core, Op::Sysenter, STUB_SYSENTER, rng);
}

pub fn privileged(core: usize, rng: &mut Rng) {
    let index = STUB_SYSEXIT + rng.below(STUB_LAST - STUB_SYSEXIT + 1);
    stub_op(core, Op::Privileged, index, rng);
}
