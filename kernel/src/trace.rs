//! Who ran on each core, when: a per-core log of turn changes kept in
//! memory during a scenario run and printed at its end (`trace` records),
//! for the slice map and the Perfetto trace. Recording is one uncontended
//! lock and one store on the core's own buffer, with no allocation; a full
//! buffer stops recording and counts what it dropped.

use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, Ordering};

use abi::record::RecordKind;
use spin::Mutex;

use crate::arch::smp;
use crate::record;
use crate::sync::BootCell;

/// Heap the buffers may take together (the heap is 32 MiB).
const BUDGET_BYTES: usize = 4 << 20;

struct Log {
    /// `(t_ns, env)`: from `t_ns` on, `env` ran (`NO_ENV`: idle).
    changes: Vec<(u64, u32)>,
    dropped: u64,
}

static LOGS: BootCell<Vec<Mutex<Log>>> = BootCell::new();
static ON: AtomicBool = AtomicBool::new(false);

/// Starts recording on every online core.
pub fn enable() {
    let cores = smp::cores();
    let per_core = BUDGET_BYTES / 16 / cores.max(1);
    LOGS.init(
        (0..cores)
            .map(|_| {
                Mutex::new(Log {
                    changes: Vec::with_capacity(per_core),
                    dropped: 0,
                })
            })
            .collect(),
    );
    ON.store(true, Ordering::Release);
}

/// Notes that `env` runs on `core` from `now` (a no-op when not recording or
/// when it was already running there).
pub fn note(core: usize, now: u64, env: u32) {
    if !ON.load(Ordering::Relaxed) {
        return;
    }
    let Some(log) = LOGS.try_get().and_then(|l| l.get(core)) else {
        return;
    };
    let mut log = log.lock();
    if log.changes.last().is_some_and(|&(_, e)| e == env) {
        return;
    }
    if log.changes.len() < log.changes.capacity() {
        log.changes.push((now, env));
    } else {
        log.dropped += 1;
    }
}

/// Prints every core's log as `trace` records (with every core parked).
pub fn emit() {
    use core::fmt::Write;
    let Some(logs) = LOGS.try_get() else { return };
    for (core, log) in logs.iter().enumerate() {
        let log = log.lock();
        for chunk in log.changes.chunks(40) {
            let mut runs = alloc::string::String::new();
            for (i, (t, env)) in chunk.iter().enumerate() {
                let _ = write!(runs, "{}[{t},{env}]", if i == 0 { "" } else { "," });
            }
            record::emit(
                RecordKind::Trace,
                format_args!(
                    "\"core\":{core},\"runs\":[{runs}],\"dropped\":{}",
                    log.dropped
                ),
            );
        }
    }
}
