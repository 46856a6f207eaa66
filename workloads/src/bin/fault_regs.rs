//! Takes #BP, #UD and #PF over and over in its worker on core 0, each with
//! every general register, the carry flag and two SSE registers holding a
//! distinct pattern; its exception handler resumes past the instruction,
//! and the worker checks that the context came back exactly (what the
//! kernel saved for the exception upcall is what the libOS resumed).
//! Reports the faults taken and the first mismatch, if any.
#![cfg_attr(target_os = "none", no_std, no_main)]

use core::sync::atomic::{AtomicU64, Ordering};

use libos::abi::shared::FaultInfo;
use libos::{report, App, Epilogue, FaultAction};

/// Faults the handler resumed.
static HANDLED: AtomicU64 = AtomicU64::new(0);
/// Rounds of three faults before the report.
const ROUNDS: u64 = 2000;

fn on_fault(_core: usize, info: &FaultInfo) -> FaultAction {
    HANDLED.fetch_add(1, Ordering::Relaxed);
    FaultAction::Resume {
        skip: workloads::fault_length(info.vector),
    }
}

/// Registers in the order the round loads and stores them: rax, rbx, rcx,
/// rdx, rsi, rdi, rbp, r8-r15, then xmm0 and xmm15 (low halves), then the
/// carry flag (one byte of the last word).
const WORDS: usize = 18;

fn pattern(round: u64, vector: u64, k: usize) -> u64 {
    (0x0101_0101_0101_0101u64 * (k as u64 + 1)) ^ round << 20 ^ vector << 8
}

/// Loads `input` (see [`WORDS`]; the carry set), takes the fault the
/// instruction `$fault` raises, and stores what the registers hold after
/// the handler resumed past it into `output`.
macro_rules! round {
    ($fault:literal, $input:expr, $output:expr) => {
        // SAFETY: the instruction faults by design and the handler resumes
        // past it; rbx and rbp are saved and restored on the stack; every
        // other register it writes is declared clobbered; the stack is not
        // used between the loads and the stores but by the pushes shown.
        unsafe {
            core::arch::asm!(
                "push rbx",
                "push rbp",
                "push rdi",
                "mov rax, [rsi + 120]",
                "movq xmm0, rax",
                "mov rax, [rsi + 128]",
                "movq xmm15, rax",
                "mov rax, [rsi]",
                "mov rbx, [rsi + 8]",
                "mov rcx, [rsi + 16]",
                "mov rdx, [rsi + 24]",
                "mov rdi, [rsi + 40]",
                "mov rbp, [rsi + 48]",
                "mov r8, [rsi + 56]",
                "mov r9, [rsi + 64]",
                "mov r10, [rsi + 72]",
                "mov r11, [rsi + 80]",
                "mov r12, [rsi + 88]",
                "mov r13, [rsi + 96]",
                "mov r14, [rsi + 104]",
                "mov r15, [rsi + 112]",
                "mov rsi, [rsi + 32]",
                "stc",
                $fault,
                // Flags untouched from here to the setc (mov, xchg, pop).
                "xchg rdi, [rsp]",
                "mov [rdi], rax",
                "mov [rdi + 8], rbx",
                "mov [rdi + 16], rcx",
                "mov [rdi + 24], rdx",
                "mov [rdi + 32], rsi",
                "mov [rdi + 48], rbp",
                "mov [rdi + 56], r8",
                "mov [rdi + 64], r9",
                "mov [rdi + 72], r10",
                "mov [rdi + 80], r11",
                "mov [rdi + 88], r12",
                "mov [rdi + 96], r13",
                "mov [rdi + 104], r14",
                "mov [rdi + 112], r15",
                "pop rax",
                "mov [rdi + 40], rax",
                "setc byte ptr [rdi + 136]",
                "movq rax, xmm0",
                "mov [rdi + 120], rax",
                "movq rax, xmm15",
                "mov [rdi + 128], rax",
                "pop rbp",
                "pop rbx",
                in("rsi") $input.as_ptr(),
                in("rdi") $output.as_mut_ptr(),
                out("rax") _, out("rcx") _, out("rdx") _,
                out("r8") _, out("r9") _, out("r10") _, out("r11") _,
                out("r12") _, out("r13") _, out("r14") _, out("r15") _,
                out("xmm0") _, out("xmm15") _,
            )
        }
    };
}

/// One fault of `vector` with the registers set from `round`; the first
/// register that did not come back, as `(index, expected, found)`.
fn check(round: u64, vector: u64) -> Option<(usize, u64, u64)> {
    let mut input = [0u64; WORDS];
    for (k, w) in input.iter_mut().enumerate() {
        *w = pattern(round, vector, k);
    }
    input[WORDS - 1] = 1;
    let mut output = [0u64; WORDS];
    match vector {
        3 => round!("int3", input, output),
        6 => round!("ud2", input, output),
        // mov rax, [0x10]: a page fault that writes nothing.
        _ => round!(
            ".byte 0x48, 0x8b, 0x04, 0x25, 0x10, 0x00, 0x00, 0x00",
            input,
            output
        ),
    }
    (0..WORDS)
        .find(|&k| input[k] != output[k])
        .map(|k| (k, input[k], output[k]))
}

fn worker(core: usize) -> ! {
    if core == 0 {
        let mut first = None;
        for round in 0..ROUNDS {
            for vector in [3, 6, 14] {
                if let Some(m) = check(round, vector) {
                    first.get_or_insert((round, vector, m));
                }
            }
        }
        let (round, vector, (index, expected, found)) = first.unwrap_or((0, 0, (0, 0, 0)));
        report!(
            "\"kind\":\"fault_regs\",\"ok\":{},\"faults\":{},\"rounds\":{ROUNDS},\"round\":{round},\"vector\":{vector},\"index\":{index},\"expected\":{expected},\"found\":{found}",
            first.is_none(),
            HANDLED.load(Ordering::Relaxed)
        );
    }
    loop {
        core::hint::spin_loop();
    }
}

libos::program!(App {
    name: "fault_regs",
    main: worker,
    epilogue: Epilogue::Cooperative,
    on_fault: Some(on_fault)
});
