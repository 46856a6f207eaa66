//! Machine-readable console records (`@@exo <kind> <json>`, see
//! `abi::record`), written whole under the console lock.

use abi::record::{RecordKind, RECORD_PREFIX};
use kernel::record_line::RecordLine;

/// Emits one record; `payload` must format as a JSON object.
pub fn emit(kind: RecordKind, payload: core::fmt::Arguments<'_>) {
    crate::arch::serial::print(format_args!(
        "{RECORD_PREFIX}{} {{{payload}}}\n",
        kind.name()
    ));
}

/// Emits a [`RecordLine`] (built without `core::fmt`, for records on a
/// measured path).
pub fn emit_line<const N: usize>(mut line: RecordLine<N>) {
    crate::arch::serial::print_bytes(line.finish());
}

/// Emits a `check` record for a kernel-side test and returns `ok`, so tests
/// can count failures.
pub fn check(test: &str, check: &str, ok: bool, detail: core::fmt::Arguments<'_>) -> bool {
    emit(
        RecordKind::Check,
        format_args!(
            "\"test\":\"{test}\",\"check\":\"{check}\",\"ok\":{ok},\"detail\":\"{detail}\""
        ),
    );
    ok
}
