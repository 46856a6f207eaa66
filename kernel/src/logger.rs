//! The `log` facade on the serial console: every line carries the core it
//! came from, `[c3 INFO ] ...`.

use kernel::cmdline::LogLevel;
use log::{LevelFilter, Log, Metadata, Record};

struct ConsoleLog;

static LOGGER: ConsoleLog = ConsoleLog;

impl Log for ConsoleLog {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &Record<'_>) {
        if self.enabled(record.metadata()) {
            crate::arch::serial::print(format_args!(
                "[c{} {:<5}] {}\n",
                crate::arch::percpu::core_id(),
                record.level(),
                record.args()
            ));
        }
    }

    fn flush(&self) {}
}

/// Installs the console logger (idempotent) at the given verbosity.
pub fn init(level: LogLevel) {
    let _ = log::set_logger(&LOGGER);
    log::set_max_level(match level {
        LogLevel::Error => LevelFilter::Error,
        LogLevel::Warn => LevelFilter::Warn,
        LogLevel::Info => LevelFilter::Info,
        LogLevel::Debug => LevelFilter::Debug,
        LogLevel::Trace => LevelFilter::Trace,
    });
}
