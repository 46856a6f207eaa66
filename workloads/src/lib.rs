//! Helpers shared by the programs in `src/bin/`.
#![cfg_attr(not(test), no_std)]

extern crate alloc;

use core::sync::atomic::{AtomicU64, Ordering};

/// A register-heavy step whose result is also kept in memory, so a context
/// restored wrongly (any register) shows up as a mismatch.
#[inline(never)]
pub fn checked_step(state: &mut [u64; 4], shadow: &[AtomicU64; 4]) -> bool {
    let mut ok = true;
    for (i, s) in state.iter_mut().enumerate() {
        ok &= *s == shadow[i].load(Ordering::Relaxed);
        *s = s
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407 + i as u64);
        shadow[i].store(*s, Ordering::Relaxed);
    }
    ok
}

/// Takes #UD, #PF (a read of address 0x10), #DE, #GP (a non-canonical
/// address) and #BP, in that order; a fault handler resumes each past
/// [`fault_length`] bytes.
#[inline(never)]
pub fn take_each_fault() {
    // SAFETY: each instruction faults by design and is skipped by the
    // program's handler; the registers named are clobbered.
    unsafe {
        core::arch::asm!("ud2");
        core::arch::asm!(".byte 0x48, 0x8b, 0x04, 0x25, 0x10, 0x00, 0x00, 0x00", out("rax") _);
        core::arch::asm!(".byte 0xf7, 0xf1", in("ecx") 0u32, inout("eax") 1u32 => _, inout("edx") 0u32 => _);
        core::arch::asm!(".byte 0x48, 0x8b, 0x01", in("rcx") 0x8000_0000_0000_0000u64, out("rax") _);
        core::arch::asm!("int3");
    }
}

/// Bytes to skip after a fault [`take_each_fault`] took (#BP is a trap:
/// its rip is already past the instruction).
pub fn fault_length(vector: u64) -> u64 {
    match vector {
        6 => 2,  // ud2
        14 => 8, // mov rax, [0x10]
        0 => 2,  // div ecx
        13 => 3, // mov rax, [rcx]
        _ => 0,
    }
}

/// Iterations of each thread of the threaded programs.
pub static THREAD_ITERATIONS: [AtomicU64; 16] = [const { AtomicU64::new(0) }; 16];

/// Weights of the worker threads of the threaded programs.
pub const WORKER_WEIGHTS: [u32; 8] = [1, 2, 3, 4, 5, 6, 7, 8];

fn count_forever(slot: usize) {
    loop {
        THREAD_ITERATIONS[slot].fetch_add(1, Ordering::Relaxed);
    }
}

/// Main thread of the threaded programs: spawns the workers, then every
/// `period_ns` reports every thread as `[id, weight, service_ns,
/// iterations]` (and, with
/// `swaps`, cycles the application's policy through the given kinds).
pub fn threads_main(period_ns: u64, swaps: &[libos::threads::PolicyKind]) -> ! {
    use core::fmt::Write;
    // The main thread sleeps between reports: a high weight costs nothing
    // then, and makes it run promptly when it wakes.
    libos::threads::set_weight(libos::threads::self_id(), 16);
    for (i, &w) in WORKER_WEIGHTS.iter().enumerate() {
        let _ = libos::threads::spawn(count_forever, i, w);
    }
    let mut round = 0usize;
    loop {
        libos::threads::sleep_until(libos::sys::now_ns() + period_ns);
        if !swaps.is_empty() {
            libos::threads::swap_policy(swaps[round % swaps.len()]);
        }
        round += 1;
        let mut table = [(0u32, 0u32, 0u64, libos::threads::ThreadState::Runnable); 16];
        let (n, kind, swapped) = libos::threads::snapshot(&mut table);
        let mut list = libos::fmt::Buf::new();
        for (i, (id, weight, service, _)) in table[..n].iter().enumerate() {
            // Workers count in slot id - 1 (thread 0 is this main thread).
            let iterations = (*id as usize)
                .checked_sub(1)
                .and_then(|slot| THREAD_ITERATIONS.get(slot))
                .map_or(0, |c| c.load(Ordering::Relaxed));
            let _ = write!(
                list,
                "{}[{id},{weight},{service},{iterations}]",
                if i == 0 { "" } else { "," }
            );
        }
        libos::report!(
            "\"kind\":\"threads\",\"round\":{round},\"policy\":\"{}\",\"swaps\":{swapped},\"t_ns\":{},\"threads\":[{}]",
            kind.name(),
            libos::sys::now_ns(),
            list.as_str()
        );
    }
}

pub mod appspec;
pub mod bench;
pub mod requests;
pub mod sched_env;
pub mod sleep_log;
pub mod text;
