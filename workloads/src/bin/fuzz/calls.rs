//! Random system calls, biased to edge values and valid-looking ids.
//!
//! Left out, on purpose: `exit`, `sleep`, `park`, `resume` and
//! `set_upcalls` — they would (legitimately) end, park or derail this
//! program rather than test the kernel's argument checking (`badargs`
//! covers their error paths).

use core::sync::atomic::Ordering;

use libos::abi::shared::{va, MAX_ENVS};
use libos::abi::syscall::{Error, Syscall};
use libos::sys;

use crate::children;
use crate::tally;

pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

const CALLS_FUZZED: [Syscall; 16] = [
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
    Syscall::MapFresh,
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

/// One random call, its result counted. A child it happens to spawn is
/// killed at once (left alive, such children filled the environment
/// table and every later `spawn` was refused).
pub fn random_call(rng: &mut Rng) {
    let number = if rng.below(5) == 0 {
        rng.below(64)
    } else {
        CALLS_FUZZED[rng.below(CALLS_FUZZED.len() as u64) as usize] as u64
    };
    let call = Syscall::from_number(number);
    // Keep the calls that end or park this program out (see the docs).
    if matches!(
        call,
        Some(
            Syscall::Exit | Syscall::Sleep | Syscall::Park | Syscall::Resume | Syscall::SetUpcalls
        )
    ) {
        return;
    }
    // A donation that succeeds ends this turn: fine, and tested too.
    let args = [arg(rng), arg(rng), arg(rng), arg(rng), arg(rng), arg(rng)];
    // A child a sequence on some core is checking is not for random
    // kills and donations: they would change the answers it checks.
    if matches!(call, Some(Syscall::Kill | Syscall::Yield)) && children::in_sequence(args[0]) {
        return;
    }
    // A spawn that would load a program goes ahead one time in 256: each
    // costs the kernel milliseconds (see `children`; those made on
    // purpose are `children::spawn_kill`'s), and one in 16 still took a
    // third of the fuzzer's time.
    if call == Some(Syscall::Spawn)
        && args[1] <= u64::from(u32::MAX)
        && children::may_name_a_program(args[0])
        && rng.below(256) != 0
    {
        return;
    }
    // SAFETY: the kernel validates every argument; none of the calls
    // left in can end or derail this program's own context.
    let (rax, _) = unsafe { sys::raw(number, args) };
    let result = Error::decode(rax);
    if call == Some(Syscall::Spawn) {
        if let Ok(id) = result {
            tally::RANDOM_CHILDREN.fetch_add(1, Ordering::Relaxed);
            let _ = sys::kill(id as u32);
        }
    }
    tally::call_result(result);
}
