//! Ring-3 system-call fuzzer: seeded, reproducible random calls biased to
//! edge values and valid-looking ids, on every core it holds slots on.
//! Reports calls and results by code; the kernel must never fault, and the
//! environments beside it must keep their share.
//!
//! Left out, on purpose: `exit`, `sleep`, `resume` and `set_upcalls` — they
//! would (legitimately) end, park or derail this program rather than test
//! the kernel's argument checking (`badargs` covers their error paths).
//!
//! Between the random calls it keeps state: one call in 64 starts a
//! sequence whose every answer the ABI fixes (a frame mapped at two
//! addresses, written through one and read through the other, refused
//! while mapped, freed once unmapped), and it counts every answer that
//! differs as a violation (reported, with the first one's line and error
//! code; the suite wants none).
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
/// Answers of the stateful sequences that the ABI forbids.
static VIOLATIONS: AtomicU64 = AtomicU64::new(0);
/// The first violation: its step in the sequence (source line) and the
/// error code that came (0: success).
static FIRST_VIOLATION: AtomicU64 = AtomicU64::new(0);
/// Stateful sequences run to their end.
static SEQUENCES: AtomicU64 = AtomicU64::new(0);

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

/// Counts a violation: at the caller's source line, with what came (an
/// error code, 0 for success or a wrong value read back).
#[track_caller]
fn violation(code: u64) {
    VIOLATIONS.fetch_add(1, Ordering::Relaxed);
    let line = u64::from(core::panic::Location::caller().line());
    let _ =
        FIRST_VIOLATION.compare_exchange(0, line << 8 | code, Ordering::Relaxed, Ordering::Relaxed);
}

/// Counts `got` as a violation unless it is `want`.
#[track_caller]
fn expect(got: Result<u64, Error>, want: Result<(), Error>) {
    if got.map(|_| ()) != want {
        violation(got.err().map_or(0, |e| e as u64));
    }
}

/// Whether a random call on another core could name frame `pfn` (see
/// `arg`: small numbers, powers of two, live environments' ids): it could
/// free it or map it under this sequence, which would then count answers
/// the ABI rightly gave as violations.
fn named_by_random_calls(pfn: u64) -> bool {
    pfn < 64
        || pfn.is_power_of_two()
        || (0..MAX_ENVS)
            .any(|slot| u64::from(sys::account(slot).env.load(Ordering::Relaxed)) == pfn)
}

/// Where this core's sequences map: past any address the random arguments
/// name (`USER_MAP_START` plus up to 64 pages, powers of two), a MiB per
/// core, so no other core's sequence and no random call touches it.
fn sequence_base(core: usize) -> u64 {
    va::USER_MAP_START + (1 << 32) + core as u64 * 0x10_0000
}

/// One frame through its whole life, every answer checked (see the
/// module's docs). A refused allocation (quota, memory) is no violation:
/// the sequence just does not run.
fn frame_sequence(core: usize, rng: &mut Rng) {
    use libos::abi::syscall::map_flags::WRITABLE;
    let Ok(pfn) = sys::frame_alloc(None) else {
        return;
    };
    if named_by_random_calls(pfn) {
        let _ = sys::frame_free(pfn);
        return;
    }
    let a = sequence_base(core);
    let b = a + 4096 * (1 + rng.below(16));
    // A mapping may need page-table frames, which count against the
    // quota the random calls have been spending: running out is an
    // answer the ABI allows (then nothing is mapped and the sequence ends
    // here); any other refusal is not.
    for (i, at) in [a, b].into_iter().enumerate() {
        if let Err(e) = sys::map(at, pfn, WRITABLE) {
            if !matches!(e, Error::QuotaExceeded | Error::Exhausted) {
                violation(e as u64);
            }
            if i == 1 {
                expect(sys::unmap(a), Ok(()));
            }
            expect(sys::frame_free(pfn), Ok(()));
            return;
        }
    }
    expect(sys::map(a, pfn, WRITABLE), Err(Error::BadAddress));
    let word = rng.next();
    // SAFETY: `a` and `b` were just mapped writable to one frame of this
    // environment's, at addresses nothing else here uses.
    let seen = unsafe {
        core::ptr::write_volatile(a as *mut u64, word);
        core::ptr::read_volatile(b as *const u64)
    };
    if seen != word {
        violation(0);
    }
    expect(sys::frame_free(pfn), Err(Error::Taken));
    expect(sys::unmap(a), Ok(()));
    expect(sys::frame_free(pfn), Err(Error::Taken));
    expect(sys::unmap(b), Ok(()));
    expect(sys::unmap(b), Err(Error::NotMapped));
    expect(sys::frame_free(pfn), Ok(()));
    // Not "freeing it again is refused": this environment's other cores
    // allocate frames too, and may just have been given this one.
    expect(sys::unmap(a), Err(Error::NotMapped));
    SEQUENCES.fetch_add(1, Ordering::Relaxed);
}

fn worker(core: usize) -> ! {
    let (me, _) = sys::self_info();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ (u64::from(me) << 8) ^ core as u64 | 1);
    loop {
        if rng.below(64) == 0 {
            frame_sequence(core, &mut rng);
        }
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
                "\"kind\":\"fuzz\",\"calls\":{n},\"sequences\":{},\"violations\":{},\"first_violation\":[{},{}],\"results\":{{{}}}",
                SEQUENCES.load(Ordering::Relaxed),
                VIOLATIONS.load(Ordering::Relaxed),
                FIRST_VIOLATION.load(Ordering::Relaxed) >> 8,
                FIRST_VIOLATION.load(Ordering::Relaxed) & 0xff,
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
