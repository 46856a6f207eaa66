//! What the fuzzer counts and reports: random calls by result, each
//! stateful operation's runs, and every answer the ABI (or the CPU, by the
//! kernel's GDT and IDT) forbids, as a violation of that operation.

use core::fmt::Write;
use core::sync::atomic::{AtomicU64, Ordering};

use libos::abi::syscall::Error;
use libos::report;

/// The stateful operations, each counted apart (the report's `ops`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(usize)]
pub enum Op {
    /// A frame mapped at two addresses, refused while mapped, freed once
    /// unmapped (`frames`).
    Frame,
    /// A child spawned (sometimes run) and killed; gone everywhere after.
    SpawnKill,
    /// Donations back and forth with a child until the turn ends.
    Cycle,
    /// A data or stack segment register loaded with a GDT or random selector.
    SegLoad,
    /// FS loaded (base 0), then the next entry must point it back.
    FsReload,
    /// A far jump to a GDT or random selector.
    FarJump,
    /// A far call to a GDT or random selector.
    FarCall,
    /// `int 0x80`.
    Int80,
    /// `int n` for every other vector, `int3`, `icebp`, `into`.
    IntN,
    /// `sysenter`.
    Sysenter,
    /// `sysexit`, `sysret`, `swapgs`, `hlt`, `cli`, port I/O, MSRs, control
    /// and debug registers, descriptor tables: all refused in ring 3.
    Privileged,
}

impl Op {
    pub const ALL: [Op; 11] = [
        Op::Frame,
        Op::SpawnKill,
        Op::Cycle,
        Op::SegLoad,
        Op::FsReload,
        Op::FarJump,
        Op::FarCall,
        Op::Int80,
        Op::IntN,
        Op::Sysenter,
        Op::Privileged,
    ];

    pub const fn name(self) -> &'static str {
        match self {
            Op::Frame => "frame",
            Op::SpawnKill => "spawn_kill",
            Op::Cycle => "donation_cycle",
            Op::SegLoad => "segment_load",
            Op::FsReload => "fs_reload",
            Op::FarJump => "far_jump",
            Op::FarCall => "far_call",
            Op::Int80 => "int80",
            Op::IntN => "int_n",
            Op::Sysenter => "sysenter",
            Op::Privileged => "privileged",
        }
    }
}

const OPS: usize = Op::ALL.len();

/// Random calls made, and their results by code: index 0 = success, then
/// `Error as usize`.
static CALLS: AtomicU64 = AtomicU64::new(0);
static RESULTS: [AtomicU64; 16] = [const { AtomicU64::new(0) }; 16];
/// Per operation: runs to their end, and answers the ABI forbids.
static RUNS: [AtomicU64; OPS] = [const { AtomicU64::new(0) }; OPS];
static VIOLATIONS: [AtomicU64; OPS] = [const { AtomicU64::new(0) }; OPS];
/// The first violation: `op << 56 | source line << 32 | what came`
/// (an error code, a vector, a wrong value's low bits; 0 for success).
static FIRST_VIOLATION: AtomicU64 = AtomicU64::new(0);

/// Figures of the operations beyond runs (the report's other fields).
pub static CYCLE_HOPS: AtomicU64 = AtomicU64::new(0);
pub static CYCLES_CUT: AtomicU64 = AtomicU64::new(0);
pub static CHILDREN_RUN: AtomicU64 = AtomicU64::new(0);
pub static SEGMENTS_LOADED: AtomicU64 = AtomicU64::new(0);
pub static FAULTS: AtomicU64 = AtomicU64::new(0);
/// Random spawns that succeeded (each killed at once).
pub static RANDOM_CHILDREN: AtomicU64 = AtomicU64::new(0);

/// Reports go out this often (ns of the kernel's clock), whichever core
/// gets there first: the last one of a run is never far from its end.
const REPORT_EVERY_NS: u64 = 200_000_000;
static NEXT_REPORT_NS: AtomicU64 = AtomicU64::new(0);

/// One more run of `op` to its end.
pub fn ran(op: Op) {
    RUNS[op as usize].fetch_add(1, Ordering::Relaxed);
}

/// Counts a violation of `op`: at the caller's source line, with what
/// came (an error code, 0 for success, a vector, a wrong value).
#[track_caller]
pub fn violation(op: Op, code: u64) {
    VIOLATIONS[op as usize].fetch_add(1, Ordering::Relaxed);
    let line = u64::from(core::panic::Location::caller().line()) & 0xff_ffff;
    let first = (op as u64) << 56 | line << 32 | (code & 0xffff_ffff);
    let _ = FIRST_VIOLATION.compare_exchange(0, first, Ordering::Relaxed, Ordering::Relaxed);
}

/// Counts `got` as a violation of `op` unless it is `want`.
#[track_caller]
pub fn expect(op: Op, got: Result<u64, Error>, want: Result<(), Error>) {
    if got.map(|_| ()) != want {
        violation(op, got.err().map_or(0, |e| e as u64));
    }
}

/// Counts a random call's result.
pub fn call_result(result: Result<u64, Error>) {
    let slot = match result {
        Ok(_) => 0,
        Err(e) => (e as usize).min(15),
    };
    RESULTS[slot].fetch_add(1, Ordering::Relaxed);
    CALLS.fetch_add(1, Ordering::Relaxed);
}

/// Reports, if it is time to. Looks at the clock once in 256 calls
/// (`rdtsc` is slow under QEMU's `-icount`, which ends a translation
/// block at every clock read).
pub fn maybe_report() {
    if !CALLS.load(Ordering::Relaxed).is_multiple_of(256) {
        return;
    }
    let now = libos::sys::now_ns();
    let due = NEXT_REPORT_NS.load(Ordering::Relaxed);
    if now < due
        || NEXT_REPORT_NS
            .compare_exchange(
                due,
                now + REPORT_EVERY_NS,
                Ordering::Relaxed,
                Ordering::Relaxed,
            )
            .is_err()
    {
        return;
    }
    let n = CALLS.load(Ordering::Relaxed);
    report_calls(n);
    report_ops(n);
}

fn total_violations() -> u64 {
    VIOLATIONS.iter().map(|v| v.load(Ordering::Relaxed)).sum()
}

/// The `fuzz` record: calls, results by code, frame sequences (as before
/// the other operations came) and violations of every operation.
fn report_calls(n: u64) {
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
    let first = FIRST_VIOLATION.load(Ordering::Relaxed);
    report!(
        "\"kind\":\"fuzz\",\"calls\":{n},\"sequences\":{},\"violations\":{},\"first_violation\":[{},{}],\"results\":{{{}}}",
        RUNS[Op::Frame as usize].load(Ordering::Relaxed),
        total_violations(),
        first >> 32 & 0xff_ffff,
        first & 0xffff_ffff,
        by_code.as_str()
    );
}

/// The `fuzz_ops` record: per operation `[runs, violations]`, the first
/// violation as `[operation, source line, what came]`, and the figures
/// the operations' checks rest on.
fn report_ops(n: u64) {
    let mut ops = libos::fmt::Buf::new();
    for (i, op) in Op::ALL.into_iter().enumerate() {
        let _ = write!(
            ops,
            "{}\"{}\":[{},{}]",
            if i == 0 { "" } else { "," },
            op.name(),
            RUNS[op as usize].load(Ordering::Relaxed),
            VIOLATIONS[op as usize].load(Ordering::Relaxed)
        );
    }
    let first = FIRST_VIOLATION.load(Ordering::Relaxed);
    let first_op = if first == 0 {
        ""
    } else {
        Op::ALL
            .get((first >> 56) as usize)
            .map_or("?", |op| op.name())
    };
    let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
    report!(
        "\"kind\":\"fuzz_ops\",\"calls\":{n},\"ops\":{{{}}},\"first_violation\":[\"{first_op}\",{},{}],\"cycle_hops\":{},\"cycles_cut\":{},\"children_run\":{},\"random_children\":{},\"segments_loaded\":{},\"faults\":{}",
        ops.as_str(),
        first >> 32 & 0xff_ffff,
        first & 0xffff_ffff,
        load(&CYCLE_HOPS),
        load(&CYCLES_CUT),
        load(&CHILDREN_RUN),
        load(&RANDOM_CHILDREN),
        load(&SEGMENTS_LOADED),
        load(&FAULTS),
    );
}
