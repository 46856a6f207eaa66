//! Ring-3 system-call fuzzer: seeded, reproducible random calls biased to
//! edge values and valid-looking ids, on every core it holds slots on.
//! Reports calls and results by code; the kernel must never fault, and the
//! environments beside it must keep their share.
//!
//! Left out, on purpose: `exit`, `sleep`, `resume` and `set_upcalls` — they
//! would (legitimately) end, park or derail this program rather than test
//! the kernel's argument checking (`badargs` covers their error paths).
#![cfg_attr(target_os = "none", no_std, no_main)]

use core::fmt::Write;
use core::sync::atomic::{AtomicU64, Ordering};

use libos::abi::shared::{va, MAX_ENVS};
use libos::abi::syscall::{Error, Syscall};
use libos::{report, sys, App, Epilogue};

const REPORT_EVERY: u64 = 50_000;

/// Results by code: index 0 = success, then `Error as usize`.
static RESULTS: [AtomicU64; 16] = [const { AtomicU64::new(0) }; 16];
static CALLS: AtomicU64 = AtomicU64::new(0);

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

const CALLS_FUZZED: [Syscall; 15] = [
    Syscall::Null,
    Syscall::Log,
    Syscall::SelfInfo,
    Syscall::Report,
    Syscall::SliceAlloc,
    Syscall::SliceFree,
    Syscall::SliceOwner,
    Syscall::Yield,
    Syscall::PredicateInstall,
    Syscall::PredicateClear,
    Syscall::FrameAlloc,
    Syscall::FrameFree,
    Syscall::Map,
    Syscall::Unmap,
    Syscall::Kill,
];

fn arg(rng: &mut Rng) -> u64 {
    match rng.below(12) {
        0 => 0,
        1 => 1,
        2 => u64::MAX,
        3 => rng.below(64),
        4 => 0xffff_8000_0000_0000 + rng.below(1 << 30),
        5 => 0xffff_ffff_8010_0000 + rng.below(1 << 20),
        6 => va::PROGRAM_BASE + rng.below(1 << 16),
        7 => va::USER_MAP_START + rng.below(64) * 4096,
        8 => u64::from(
            sys::account(rng.below(MAX_ENVS as u64) as usize)
                .env
                .load(Ordering::Relaxed),
        ),
        9 => va::DISPATCH + rng.below(8) * 4096,
        10 => 1 << rng.below(64),
        _ => rng.next(),
    }
}

fn worker(core: usize) -> ! {
    let (me, _) = sys::self_info();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ (u64::from(me) << 8) ^ core as u64 | 1);
    loop {
        let number = if rng.below(5) == 0 {
            rng.below(64)
        } else {
            CALLS_FUZZED[rng.below(15) as usize] as u64
        };
        // Keep the calls that end or park this program out (see the docs).
        if matches!(
            Syscall::from_number(number),
            Some(Syscall::Exit | Syscall::Sleep | Syscall::Resume | Syscall::SetUpcalls)
        ) {
            continue;
        }
        // A donation that succeeds ends this turn: fine, and tested too.
        let args = [
            arg(&mut rng),
            arg(&mut rng),
            arg(&mut rng),
            arg(&mut rng),
            arg(&mut rng),
            arg(&mut rng),
        ];
        // SAFETY: the kernel validates every argument; none of the calls
        // left in can end or derail this program's own context.
        let (rax, _) = unsafe { sys::raw(number, args) };
        let slot = match Error::decode(rax) {
            Ok(_) => 0,
            Err(e) => (e as usize).min(15),
        };
        RESULTS[slot].fetch_add(1, Ordering::Relaxed);
        let n = CALLS.fetch_add(1, Ordering::Relaxed) + 1;
        if n.is_multiple_of(REPORT_EVERY) {
            let mut by_code = libos::fmt::Buf::new();
            let _ = write!(by_code, "\"ok\":{}", RESULTS[0].load(Ordering::Relaxed));
            for e in Error::ALL {
                let _ = write!(
                    by_code,
                    ",\"{}\":{}",
                    e.name(),
                    RESULTS[e as usize].load(Ordering::Relaxed)
                );
            }
            report!(
                "\"kind\":\"fuzz\",\"calls\":{n},\"results\":{{{}}}",
                by_code.as_str()
            );
        }
    }
}

libos::program!(App {
    name: "fuzz",
    main: worker,
    epilogue: Epilogue::Cooperative,
    on_fault: None
});
