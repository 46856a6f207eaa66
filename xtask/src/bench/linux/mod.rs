//! The yardstick: Linux booted in exactly the platform's deterministic
//! mode (TCG, one thread, `-icount` at the shift the platform's own
//! deterministic benchmark uses, the same machine type and CPU model),
//! running the counterparts of the platform's primitives
//! (`xtask/linux-bench/bench.c`) as its `/init`. In such a run the
//! virtual clock advances by the same few ns per guest instruction, so the
//! benchmark's `clock_gettime` figures are instruction counts, the same on
//! every run and host — the one speed figure this machine (TCG, PVM "KVM")
//! gives exactly for both systems.

pub mod figures;
pub mod initramfs;
pub mod kernel;

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::bench::Stat;
use crate::qemu::{qemu_args, Accel, RunOptions};

/// What the yardstick measured.
#[derive(Clone, Debug)]
pub struct LinuxFigures {
    pub kernel: kernel::Kernel,
    /// Instructions per operation: median (min–max) of the repetitions.
    pub ops: Vec<(String, Stat)>,
    /// Virtual ns per instruction of the run.
    pub ns_per_insn: f64,
    pub qemu_args: Vec<String>,
    pub wall: Duration,
    /// Where the console was written.
    pub console_log: PathBuf,
}

impl LinuxFigures {
    pub fn get(&self, op: &str) -> Option<Stat> {
        self.ops.iter().find(|(o, _)| o == op).map(|(_, s)| *s)
    }
}

/// The kernel command line: the serial console, no boot chatter, and a
/// panic ends the run at once (with `-no-reboot`, QEMU exits).
pub const CMDLINE: &str = "console=ttyS0 quiet panic=-1";

/// How long a boot may take on the wall clock: ~16 s on this 2-core host
/// when idle; the limit allows a loaded host several times that.
const TIMEOUT: Duration = Duration::from_secs(300);

/// The QEMU run options of the yardstick: the platform's deterministic
/// mode on one core (what [`crate::bench`]'s instruction counts use), with
/// the memory a Debian kernel and the benchmark want.
pub fn run_options() -> RunOptions {
    RunOptions {
        cpus: 1,
        accel: Accel::Tcg,
        det: true,
        memory_mib: 512,
        ..RunOptions::default()
    }
}

/// Fetches the kernel (cached), builds the initramfs in `work_dir`, boots
/// Linux deterministically and reads its figures.
pub fn measure(work_dir: &Path) -> Result<LinuxFigures, String> {
    let kernel = kernel::fetch()?;
    let initrd = initramfs::build(work_dir)?;
    let opts = run_options();
    let args = qemu_args(
        &opts,
        Accel::Tcg,
        &kernel.vmlinuz.to_string_lossy(),
        Some(&initrd.to_string_lossy()),
        CMDLINE,
    );
    eprintln!(
        "== bench: Linux ({} {}) in deterministic TCG, one core",
        kernel.package, kernel.version
    );
    let started = Instant::now();
    let console = boot(&args)?;
    let wall = started.elapsed();
    let console_log = work_dir.join("console.log");
    std::fs::write(&console_log, &console)
        .map_err(|e| format!("{}: {e}", console_log.display()))?;
    let ns_per_insn = f64::from(1u32 << crate::qemu::icount_shift(opts.cpus));
    let ops = figures::parse(&console)
        .and_then(|s| figures::per_op(&s, ns_per_insn))
        .map_err(|e| format!("{e} (console: {})", console_log.display()))?;
    Ok(LinuxFigures {
        kernel,
        ops,
        ns_per_insn,
        qemu_args: args,
        wall,
        console_log,
    })
}

/// Runs QEMU with `args` until it exits (the benchmark powers off) or
/// [`TIMEOUT`]; returns the console.
fn boot(args: &[String]) -> Result<String, String> {
    let mut child = Command::new("qemu-system-x86_64")
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start qemu-system-x86_64: {e}"))?;
    let mut stdout = child.stdout.take().expect("piped");
    let mut stderr = child.stderr.take().expect("piped");
    let reader = std::thread::spawn(move || {
        let mut text = Vec::new();
        let _ = stdout.read_to_end(&mut text);
        String::from_utf8_lossy(&text).into_owned()
    });
    let errors = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    let started = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if started.elapsed() > TIMEOUT => {
                // Our own child, by its handle.
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(100)),
            Err(e) => return Err(format!("waiting for QEMU: {e}")),
        }
    };
    let console = reader.join().unwrap_or_default();
    let stderr = errors.join().unwrap_or_default();
    match status {
        None => Err(format!(
            "the Linux guest did not power off within {} s; console ends: {}",
            TIMEOUT.as_secs(),
            tail(&console)
        )),
        // Powered off: QEMU exits 0. Anything else is QEMU's failure.
        Some(s) if !s.success() => Err(format!(
            "QEMU failed ({s}) booting Linux: {} {}",
            stderr.trim(),
            tail(&console)
        )),
        Some(_) => Ok(console),
    }
}

fn tail(console: &str) -> String {
    let lines: Vec<&str> = console.lines().collect();
    lines[lines.len().saturating_sub(8)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::qemu::ICOUNT_SHIFT;

    #[test]
    fn linux_runs_in_the_platforms_deterministic_mode() {
        let opts = run_options();
        let args = qemu_args(&opts, Accel::Tcg, "/vmlinuz", Some("/i"), CMDLINE).join(" ");
        for want in [
            "-M pc",
            "-accel tcg,thread=single",
            "-cpu max",
            // The shift of the platform's one-core deterministic runs.
            &format!("-icount shift={ICOUNT_SHIFT},"),
            "-smp 1",
            "-kernel /vmlinuz",
            "-initrd /i",
            "-no-reboot",
        ] {
            assert!(args.contains(want), "missing `{want}` in {args}");
        }
        assert_eq!(crate::qemu::icount_shift(opts.cpus), ICOUNT_SHIFT);
    }
}
