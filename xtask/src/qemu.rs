//! Starting QEMU, watching the console, writing the run's results.

use std::fs::File;
use std::io::{BufWriter, IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, OnceLock};
use std::time::{Duration, Instant, SystemTime};

use abi::ExitCode;

use crate::summary::{self, Records};
use crate::{build, Error};

/// Which accelerator to ask QEMU for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Accel {
    /// KVM when `/dev/kvm` is usable, TCG otherwise.
    Auto,
    Kvm,
    Tcg,
}

impl std::str::FromStr for Accel {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(Accel::Auto),
            "kvm" => Ok(Accel::Kvm),
            "tcg" => Ok(Accel::Tcg),
            _ => Err(format!("accel must be auto, kvm or tcg, not `{s}`")),
        }
    }
}

impl Accel {
    /// Resolves `Auto` by trying to open `/dev/kvm` for reading and writing.
    pub fn resolve(self) -> Accel {
        self.resolve_with(kvm_usable())
    }

    /// Resolves `Auto` given whether KVM is usable.
    pub fn resolve_with(self, kvm: bool) -> Accel {
        match self {
            Accel::Auto if kvm => Accel::Kvm,
            Accel::Auto => Accel::Tcg,
            other => other,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Accel::Auto => "auto",
            Accel::Kvm => "kvm",
            Accel::Tcg => "tcg",
        }
    }
}

/// What this host's KVM is, as far as the host can tell: hardware-assisted
/// (VMX/SVM in its CPU flags) or PVM (the `kvm_pvm` module: guests run
/// deprivileged under shadow paging, with no VMX — what this project's
/// development machines have; there the guest kernel's every entry costs
/// milliseconds and its figures say nothing about hardware).
pub fn kvm_kind() -> &'static str {
    if std::path::Path::new("/sys/module/kvm_pvm").exists() {
        return "PVM (kvm_pvm, no VMX): guest ring 0 deprivileged, not hardware";
    }
    let flags = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let has = |f: &str| {
        flags
            .lines()
            .find(|l| l.starts_with("flags"))
            .is_some_and(|l| l.split_whitespace().any(|w| w == f))
    };
    if has("vmx") || has("svm") {
        "hardware-assisted"
    } else {
        "of unknown kind"
    }
}

/// Whether this process may use KVM.
pub fn kvm_usable() -> bool {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .is_ok()
}

/// Deterministic runs on one core execute one guest instruction per
/// 2^ICOUNT_SHIFT virtual ns (`-icount shift=`): a duration there counts
/// instructions.
pub const ICOUNT_SHIFT: u32 = 3;

/// The `-icount` shift of a deterministic run on `cpus` cores.
///
/// QEMU runs the vCPUs one at a time on one clock, so each of N cores
/// executes 1/N of the instructions a virtual ns stands for: at a fixed
/// shift, every fixed-length path (an upcall, a dispatch) takes N times
/// longer on N cores, and a grace period holds N times fewer of the
/// epilogue's instructions. Halving the ns per instruction as the cores
/// double keeps each core at the one-core speed, 125 million instructions
/// per virtual second, up to 8 cores (shift 0, the least QEMU allows;
/// beyond 8 cores each core is slower: 62.5 million on 16).
pub fn icount_shift(cpus: u32) -> u32 {
    ICOUNT_SHIFT.saturating_sub(cpus.max(1).next_power_of_two().trailing_zeros())
}

/// The kernel's `interleave_us` for deterministic runs on several cores:
/// QEMU 7.2's round robin runs each vCPU up to the next timer deadline,
/// so the kernel keeps every running core's deadline this close (see the
/// kernel's `sched::arm_running`; without it, one revocation in two on 2
/// cores reached its grace's end before the epilogue ran an instruction).
pub const DET_INTERLEAVE_US: u32 = 50;

/// Everything a run needs.
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// Scheduler the applications start with (`sched=`).
    pub sched: String,
    pub cpus: u32,
    pub accel: Accel,
    /// QEMU machine type (`pc`, `q35`, `microvm`); `-M` in `qemu_extra` wins.
    pub machine: String,
    /// Extra QEMU arguments, appended last (QEMU takes the last -cpu / -M).
    pub qemu_extra: Vec<String>,
    /// Kernel `run_ms=` (absent: the kernel's default).
    pub run_ms: Option<u64>,
    /// Kernel `test=` (absent: a normal run).
    pub test: Option<String>,
    /// A scenario file to run (`None`: `test=` or a plain run).
    pub scenario: Option<PathBuf>,
    /// Whether `sched` replaces every application's scheduler in the
    /// scenario (it was given on the command line).
    pub sched_override: bool,
    /// Deterministic run: TCG, one thread, `-icount` (same scenario, same
    /// measurements).
    pub det: bool,
    /// Console input typed at given times after QEMU starts (tests).
    pub input: Vec<(Duration, String)>,
    /// Further kernel command-line words (`key=value`), after the above.
    pub cmdline: Vec<String>,
    /// Wall-clock limit; `Duration::ZERO` means none.
    pub timeout: Duration,
    /// Run name (directory under `results/runs/`); generated when `None`.
    pub name: Option<String>,
    /// Echo the console to the terminal while running, and pass a terminal
    /// stdin through to the kernel's serial port.
    pub stream: bool,
    /// Pass the programs' boot-module archive.
    pub programs: bool,
    /// Memory in MiB.
    pub memory_mib: u32,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            sched: "stride".into(),
            cpus: 4,
            accel: Accel::Auto,
            machine: "pc".into(),
            qemu_extra: Vec::new(),
            run_ms: None,
            test: None,
            cmdline: Vec::new(),
            scenario: None,
            sched_override: false,
            det: false,
            input: Vec::new(),
            timeout: Duration::from_secs(120),
            name: None,
            stream: false,
            programs: true,
            memory_mib: 1024,
        }
    }
}

/// How a run ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum End {
    /// The kernel wrote this code to the debug-exit device.
    Kernel(ExitCode),
    /// The run outlived its timeout and QEMU was stopped.
    Timeout,
    /// Ctrl-C (SIGINT) during the run.
    Interrupted,
    /// QEMU ended without a kernel exit code (bad arguments, triple fault
    /// with `-no-reboot`, killed from outside, ...).
    QemuError,
}

impl End {
    /// Classifies a finished QEMU: its exit status (`None` when killed by a
    /// signal) and whether the runner stopped it. A kernel exit code wins:
    /// the kernel may have finished just as the limit struck.
    pub fn classify(status: Option<i32>, timed_out: bool, interrupted: bool) -> End {
        match status.and_then(ExitCode::from_qemu_status) {
            Some(code) => End::Kernel(code),
            None if timed_out => End::Timeout,
            None if interrupted => End::Interrupted,
            None => End::QemuError,
        }
    }

    /// The name written to `summary.json`'s `exit`.
    pub fn name(self) -> &'static str {
        match self {
            End::Kernel(code) => code.name(),
            End::Timeout => "timeout",
            End::Interrupted => "interrupted",
            End::QemuError => "qemu_error",
        }
    }

    /// The runner's process exit code: the kernel's own mapping
    /// ([`ExitCode::process_code`]: 0 or 11..), else 2 (QEMU failed),
    /// 3 (timeout) or 130 (interrupted, as shells report SIGINT).
    pub fn process_code(self) -> i32 {
        match self {
            End::Kernel(code) => code.process_code(),
            End::QemuError => 2,
            End::Timeout => 3,
            End::Interrupted => 130,
        }
    }

    pub fn exit_code(self) -> Option<ExitCode> {
        match self {
            End::Kernel(code) => Some(code),
            _ => None,
        }
    }
}

/// What a run produced.
#[derive(Debug)]
pub struct RunOutcome {
    pub end: End,
    /// The kernel's exit code, if it reached the exit device.
    pub exit: Option<ExitCode>,
    /// [`End::name`]: an `ExitCode` name, "timeout", "interrupted" or "qemu_error".
    pub exit_name: String,
    pub records: Records,
    pub console: String,
    pub run_dir: PathBuf,
    pub summary_path: PathBuf,
    pub summary: serde_json::Value,
}

impl RunOutcome {
    /// The process exit code `cargo xtask run` (and so `just`) ends with.
    pub fn process_code(&self) -> i32 {
        self.end.process_code()
    }
}

/// The machine type the run uses: the last `-M`/`-machine` in the extra
/// arguments, else `default` (options after a comma are dropped).
pub fn effective_machine(default: &str, extra: &[String]) -> String {
    let mut machine = default;
    let mut it = extra.iter();
    while let Some(a) = it.next() {
        if let Some(v) = a
            .strip_prefix("-machine=")
            .or_else(|| a.strip_prefix("--machine="))
            .or_else(|| a.strip_prefix("-M="))
        {
            machine = v;
        } else if matches!(a.as_str(), "-M" | "-machine" | "--machine") {
            if let Some(v) = it.next() {
                machine = v;
            }
        }
    }
    // `-M q35,accel=tcg` or `-machine type=q35,...`: the type is the bare
    // word or the `type=` option.
    let mut opts = machine.split(',');
    let first = opts.next().unwrap_or("");
    if first.contains('=') {
        machine
            .split(',')
            .find_map(|o| o.strip_prefix("type="))
            .unwrap_or(default)
            .to_string()
    } else {
        first.to_string()
    }
}

/// The last `-cpu` in `args`.
pub fn effective_cpu_model(args: &[String]) -> Option<String> {
    args.windows(2)
        .rfind(|w| w[0] == "-cpu" || w[0] == "--cpu")
        .map(|w| w[1].clone())
}

/// The kernel command line: `sched=` first, then `run_ms=` and `test=`
/// when given, then the extra words.
pub fn kernel_cmdline(opts: &RunOptions) -> String {
    let mut words = vec![format!("sched={}", opts.sched)];
    if let Some(ms) = opts.run_ms {
        words.push(format!("run_ms={ms}"));
    }
    if let Some(test) = &opts.test {
        words.push(format!("test={test}"));
    }
    words.extend(
        opts.cmdline
            .iter()
            .flat_map(|w| w.split_whitespace())
            .map(String::from),
    );
    words.join(" ")
}

/// The CPU model for an accelerator. Under this machine's nested KVM,
/// `-cpu host` and `-cpu max` abort QEMU on the arch-capabilities MSR
/// (0x10a); `+invtsc` makes KVM report the TSC rate (CPUID 0x40000010).
/// TCG's `max` has no x2APIC in QEMU 7.2.
pub fn cpu_model(accel: Accel) -> &'static str {
    match accel {
        Accel::Kvm => "host,-arch-capabilities,+invtsc",
        Accel::Tcg | Accel::Auto => "max",
    }
}

/// QEMU's arguments for a run (without the binary name). `initrd` is the
/// boot-module archive: the one place more boot modules would be added.
pub fn qemu_args(
    opts: &RunOptions,
    accel: Accel,
    kernel: &str,
    initrd: Option<&str>,
    cmdline: &str,
) -> Vec<String> {
    let mut a: Vec<String> = Vec::new();
    let mut push = |xs: &[&str]| a.extend(xs.iter().map(|s| s.to_string()));
    push(&["-M", &opts.machine]);
    // Deterministic: one TCG thread runs the vCPUs in turn and the guest's
    // clocks follow executed instructions (8 ns each: shift=3), not the
    // host's time. The platform's own code then costs more time than on
    // hardware (overheads look larger); shares are unaffected.
    let accel_name = match accel {
        Accel::Kvm => "kvm",
        _ if opts.det => "tcg,thread=single",
        _ => "tcg",
    };
    push(&["-accel", accel_name, "-cpu", cpu_model(accel)]);
    if opts.det {
        let icount = format!("shift={},align=off,sleep=off", icount_shift(opts.cpus));
        push(&["-icount", &icount, "-rtc", "clock=vm"]);
    }
    push(&[
        "-smp",
        &opts.cpus.to_string(),
        "-m",
        &format!("{}M", opts.memory_mib),
    ]);
    push(&[
        "-display",
        "none",
        "-no-reboot",
        "-serial",
        "stdio",
        "-monitor",
        "none",
    ]);
    push(&[
        "-device",
        &format!(
            "isa-debug-exit,iobase={:#x},iosize=0x04",
            abi::exit::DEBUG_EXIT_PORT
        ),
    ]);
    push(&["-kernel", kernel, "-append", cmdline]);
    if let Some(initrd) = initrd {
        push(&["-initrd", initrd]);
    }
    a.extend(opts.qemu_extra.iter().cloned());
    a
}

/// `yyyymmdd-hhmmss` in UTC.
pub fn utc_stamp(t: SystemTime) -> String {
    let secs = t
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    format!(
        "{y:04}{m:02}{d:02}-{:02}{:02}{:02}",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// The default run name: `<UTC yyyymmdd-hhmmss>-<sched>-<N>c`.
pub fn run_name(sched: &str, cpus: u32, now: SystemTime) -> String {
    format!("{}-{sched}-{cpus}c", utc_stamp(now))
}

/// Days since 1970-01-01 to a civil date (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// Creates `base/name`, or `base/name-2`, `-3`, ... if taken. Creation is
/// the test, so two runners starting at once never share a directory.
pub fn create_unique_dir(base: &Path, name: &str) -> Result<PathBuf, Error> {
    std::fs::create_dir_all(base).map_err(Error::io(base))?;
    for n in 1u32.. {
        let dir = if n == 1 {
            base.join(name)
        } else {
            base.join(format!("{name}-{n}"))
        };
        match std::fs::create_dir(&dir) {
            Ok(()) => return Ok(dir),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(Error::io(dir)(e)),
        }
    }
    unreachable!("more than u32::MAX runs of one name")
}

/// The SIGINT flags [`install_interrupt_handler`] registers: (Ctrl-C was
/// pressed during a run, no run is being watched).
static SIGINT_FLAGS: OnceLock<(Arc<AtomicBool>, Arc<AtomicBool>)> = OnceLock::new();

/// Makes Ctrl-C during a run stop QEMU and still write the results (exit
/// "interrupted"). Outside a run (while building, say) Ctrl-C terminates as
/// usual. For the command-line runner; tests do not need it.
pub fn install_interrupt_handler() -> std::io::Result<()> {
    use signal_hook::{consts::SIGINT, flag};
    let pressed = Arc::new(AtomicBool::new(false));
    let outside_run = Arc::new(AtomicBool::new(true));
    flag::register_conditional_default(SIGINT, Arc::clone(&outside_run))?;
    flag::register(SIGINT, Arc::clone(&pressed))?;
    let _ = SIGINT_FLAGS.set((pressed, outside_run));
    Ok(())
}

fn set_watching(on: bool) {
    if let Some((pressed, outside_run)) = SIGINT_FLAGS.get() {
        pressed.store(false, Ordering::SeqCst);
        outside_run.store(!on, Ordering::SeqCst);
    }
}

fn interrupted() -> bool {
    SIGINT_FLAGS
        .get()
        .is_some_and(|(pressed, _)| pressed.load(Ordering::SeqCst))
}

/// Asks QEMU to stop (SIGTERM, so it restores a terminal it put in raw
/// mode), then kills it if it has not ended within a second.
fn stop(child: &mut Child) {
    if let Ok(pid) = libc::pid_t::try_from(child.id()) {
        // SAFETY: kill(2) on our own child's pid (not yet reaped, so the pid
        // cannot have been reused); no memory is involved.
        unsafe { libc::kill(pid, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(1);
        while Instant::now() < deadline {
            if matches!(child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    let _ = child.kill();
}

/// Splits a byte stream into lines (without `\r`/`\n`), tolerating
/// non-UTF-8 bytes (a garbled console must not stop the capture).
#[derive(Default)]
pub struct LineSplitter {
    partial: Vec<u8>,
}

impl LineSplitter {
    /// Feeds `bytes`; returns the lines they completed.
    pub fn feed(&mut self, bytes: &[u8]) -> Vec<String> {
        let mut lines = Vec::new();
        for &b in bytes {
            if b == b'\n' {
                lines.push(Self::text(&std::mem::take(&mut self.partial)));
            } else {
                self.partial.push(b);
            }
        }
        lines
    }

    /// The unterminated last line, if any.
    pub fn finish(&mut self) -> Option<String> {
        (!self.partial.is_empty()).then(|| Self::text(&std::mem::take(&mut self.partial)))
    }

    fn text(bytes: &[u8]) -> String {
        String::from_utf8_lossy(bytes)
            .trim_end_matches('\r')
            .to_string()
    }
}

/// The live table of a scenario run: fed every console line, printed about
/// once a second (when streaming).
struct Live {
    tracker: crate::scenario_run::Tracker,
    names: std::collections::BTreeMap<(String, u32), String>,
    stream: bool,
    last_print: Instant,
}

impl Live {
    fn new(s: &crate::scenario::Scenario, cpus: u32, stream: bool) -> Live {
        Live {
            tracker: crate::scenario_run::Tracker::new(s.capacities(cpus)),
            names: crate::scenario_run::thread_names(s),
            stream,
            last_print: Instant::now(),
        }
    }

    fn line(&mut self, line: &str) {
        let Some((abi::record::RecordKind::User, payload)) = abi::record::parse_record_line(line)
        else {
            return;
        };
        let Ok(v) = serde_json::from_str::<serde_json::Value>(payload) else {
            return;
        };
        if self.tracker.record(&v)
            && self.stream
            && self.last_print.elapsed() >= Duration::from_secs(1)
        {
            self.last_print = Instant::now();
            println!("{}", self.tracker.table(&self.names));
        }
    }

    fn finish(&mut self) {
        self.tracker.flush();
        if self.stream {
            println!(
                "== final shares (within each application)\n{}",
                self.tracker.table(&self.names)
            );
        }
    }
}

/// Types `input` into QEMU's serial port, each line at its time.
fn type_input(
    mut stdin: std::process::ChildStdin,
    input: Vec<(Duration, String)>,
    started: Instant,
) {
    std::thread::spawn(move || {
        for (at, line) in input {
            if let Some(wait) = at.checked_sub(started.elapsed()) {
                std::thread::sleep(wait);
            }
            if stdin
                .write_all(format!("{line}\r").as_bytes())
                .and_then(|()| stdin.flush())
                .is_err()
            {
                return;
            }
        }
        // Keep the pipe open (EOF is not a command) until QEMU goes.
        std::thread::sleep(Duration::from_secs(3600));
    });
}

/// What watching QEMU gave.
struct Watched {
    console: String,
    status: Option<i32>,
    timed_out: bool,
    interrupted: bool,
    stderr: String,
    wall: Duration,
}

/// Streams QEMU's console (to the terminal when `stream`, always into
/// `console.log` and the returned text) until it ends, times out or is
/// interrupted.
fn watch(
    mut child: Child,
    opts: &RunOptions,
    started: Instant,
    log_path: &Path,
    mut live: Option<&mut Live>,
) -> Result<Watched, Error> {
    let mut log = BufWriter::new(File::create(log_path).map_err(Error::io(log_path))?);
    let (tx, rx) = mpsc::channel::<Vec<u8>>();
    let mut stdout = child.stdout.take().expect("piped stdout");
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = stdout.read(&mut buf) {
            if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                break;
            }
        }
    });
    let mut stderr = child.stderr.take().expect("piped stderr");
    let stderr_thread = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = stderr.read_to_end(&mut s);
        String::from_utf8_lossy(&s).into_owned()
    });

    let mut console = String::new();
    let mut lines = LineSplitter::default();
    let mut term = std::io::stdout();
    let by_line = live.is_some();
    let mut keep = |line: String, log: &mut BufWriter<File>| -> Result<(), Error> {
        writeln!(log, "{line}").map_err(Error::io(log_path))?;
        if let Some(live) = live.as_deref_mut() {
            live.line(&line);
        }
        console.push_str(&line);
        console.push('\n');
        Ok(())
    };
    let (mut timed_out, mut was_interrupted) = (false, false);
    loop {
        match rx.recv_timeout(Duration::from_millis(50)) {
            Ok(chunk) => {
                // A scenario's samples go to the live table, not the
                // terminal: there the console is shown line by line without
                // the records.
                if opts.stream && !by_line {
                    let _ = term.write_all(&chunk);
                    let _ = term.flush();
                }
                for line in lines.feed(&chunk) {
                    if opts.stream && by_line && !line.starts_with(abi::record::RECORD_PREFIX) {
                        let _ = writeln!(term, "{line}");
                    }
                    keep(line, &mut log)?;
                }
                log.flush().map_err(Error::io(log_path))?;
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
            Err(mpsc::RecvTimeoutError::Timeout) => {}
        }
        if !opts.timeout.is_zero() && started.elapsed() > opts.timeout {
            timed_out = true;
            stop(&mut child);
            break;
        }
        if interrupted() {
            was_interrupted = true;
            stop(&mut child);
            break;
        }
    }
    // QEMU closed its console (it is exiting) or was stopped: reap it, but
    // never hang on one that lingers.
    let deadline = Instant::now() + Duration::from_secs(5);
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(10)),
            Ok(None) => {
                stop(&mut child);
                break child.wait().ok();
            }
            Err(_) => break None,
        }
    };
    let wall = started.elapsed();
    // Whatever QEMU printed before it went.
    while let Ok(chunk) = rx.recv_timeout(Duration::from_millis(100)) {
        for line in lines.feed(&chunk) {
            keep(line, &mut log)?;
        }
    }
    if let Some(line) = lines.finish() {
        keep(line, &mut log)?;
    }
    log.flush().map_err(Error::io(log_path))?;
    was_interrupted |= interrupted();
    Ok(Watched {
        console,
        status: status.and_then(|s| s.code()),
        timed_out,
        interrupted: was_interrupted,
        stderr: stderr_thread.join().unwrap_or_default(),
        wall,
    })
}

/// Builds, boots and watches one run; writes its results directory
/// (`console.log` as the console arrives, `summary.json` at the end, also
/// after a timeout, an interrupt or a QEMU failure).
pub fn run(opts: &RunOptions) -> Result<RunOutcome, Error> {
    // A scenario is validated before anything is built or booted.
    let scenario = match &opts.scenario {
        Some(path) => {
            let mut s = crate::scenario::load(path, opts.cpus).map_err(Error::Scenario)?;
            if opts.sched_override {
                s.override_scheduler(&opts.sched);
            }
            Some(s)
        }
        None => None,
    };
    let mut opts = opts.clone();
    if let Some(s) = &scenario {
        opts.cmdline.splice(0..0, s.cmdline());
        opts.run_ms.get_or_insert(s.duration_ms);
    }
    if opts.det {
        opts.accel = Accel::Tcg;
        let asked = opts.cmdline.iter().any(|w| w.contains("interleave_us="));
        if opts.cpus > 1 && !asked {
            opts.cmdline
                .push(format!("interleave_us={DET_INTERLEAVE_US}"));
        }
    }
    let opts = &opts;
    let kernel = build::kernel()?;
    let initrd = match &scenario {
        Some(s) => build::programs_with(&[("scenario", s.launch_plan().as_bytes())])?,
        None if opts.programs => build::programs()?,
        None => None,
    };
    let accel = opts.accel.resolve();
    let cmdline = kernel_cmdline(opts);
    let args = qemu_args(
        opts,
        accel,
        &kernel.to_string_lossy(),
        initrd.as_deref().map(|p| p.to_str().unwrap_or("")),
        &cmdline,
    );
    let started_at = SystemTime::now();
    let name = opts
        .name
        .clone()
        .unwrap_or_else(|| run_name(&opts.sched, opts.cpus, started_at));
    let run_dir = create_unique_dir(&build::workspace_root().join("results/runs"), &name)?;
    let machine = effective_machine(&opts.machine, &opts.qemu_extra);

    if opts.stream {
        eprintln!(
            "== {} cores, {} ({}), machine {}; results in {}",
            opts.cpus,
            accel.name(),
            if accel == Accel::Tcg {
                "emulated"
            } else {
                kvm_kind()
            },
            machine,
            run_dir.display()
        );
    }
    // A terminal's stdin goes straight to QEMU's serial port (QEMU puts it
    // in raw mode and restores it; Ctrl-C still signals). Otherwise QEMU
    // gets no stdin at all, so nothing ever waits on it.
    let interactive = opts.stream && std::io::stdin().is_terminal() && opts.input.is_empty();
    let started = Instant::now();
    set_watching(true);
    let child = Command::new("qemu-system-x86_64")
        .args(&args)
        .stdin(if interactive {
            Stdio::inherit()
        } else if !opts.input.is_empty() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(Error::QemuSpawn);
    let mut live = scenario
        .as_ref()
        .map(|s| Live::new(s, opts.cpus, opts.stream));
    let watched = child.and_then(|mut child| {
        if let Some(stdin) = child.stdin.take() {
            type_input(stdin, opts.input.clone(), started);
        }
        watch(
            child,
            opts,
            started,
            &run_dir.join("console.log"),
            live.as_mut(),
        )
    });
    set_watching(false);
    let w = watched?;

    let end = End::classify(w.status, w.timed_out, w.interrupted);
    if opts.stream && !w.stderr.trim().is_empty() && end == End::QemuError {
        eprintln!("qemu: {}", w.stderr.trim());
    }
    let records = summary::parse_records(&w.console);
    let summary = summary::build(
        &summary::RunFacts {
            run_name: run_dir
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            started_utc: utc_stamp(started_at),
            commit: build::commit(),
            opts,
            accel_requested: opts.accel.name(),
            accel: accel.name(),
            machine,
            cpu_model: effective_cpu_model(&args).unwrap_or_default(),
            qemu_args: &args,
            cmdline: &cmdline,
            exit: end.name(),
            wall_ms: w.wall.as_millis() as u64,
            qemu_stderr: &w.stderr,
        },
        &records,
    );
    if let Some(warning) = summary::accel_mismatch(&summary) {
        eprintln!("warning: {warning}");
    }
    let mut summary = summary;
    if let Some(s) = &scenario {
        let online = summary["cpus_online"]
            .as_u64()
            .unwrap_or(u64::from(opts.cpus)) as u32;
        let data = crate::scenario_run::rundata(s, &records, online, opts.det);
        crate::scenario_run::write_results(&run_dir, s, &data, &mut summary)?;
        if let Some(live) = live.as_mut() {
            live.finish();
        }
    }
    let summary_path = run_dir.join("summary.json");
    let mut text = serde_json::to_string_pretty(&summary).expect("a JSON value serialises");
    text.push('\n');
    std::fs::write(&summary_path, text).map_err(Error::io(&summary_path))?;
    Ok(RunOutcome {
        end,
        exit: end.exit_code(),
        exit_name: end.name().to_string(),
        records,
        console: w.console,
        run_dir,
        summary_path,
        summary,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn machine_comes_from_the_last_override() {
        assert_eq!(effective_machine("pc", &[]), "pc");
        assert_eq!(
            effective_machine("pc", &s(&["-M", "q35", "-cpu", "qemu64"])),
            "q35"
        );
        assert_eq!(
            effective_machine("pc", &s(&["-M", "q35", "-machine", "microvm,acpi=on"])),
            "microvm"
        );
        assert_eq!(
            effective_machine("pc", &s(&["-machine", "type=microvm,acpi=on"])),
            "microvm"
        );
        assert_eq!(
            effective_machine("pc", &s(&["-machine", "acpi=off,type=q35"])),
            "q35"
        );
        // Options without a type keep the machine.
        assert_eq!(
            effective_machine("q35", &s(&["-machine", "acpi=off"])),
            "q35"
        );
        assert_eq!(effective_machine("pc", &s(&["-machine=q35"])), "q35");
        // A trailing -M without a value changes nothing.
        assert_eq!(effective_machine("pc", &s(&["-M"])), "pc");
    }

    #[test]
    fn cpu_model_comes_from_the_last_override() {
        let opts = RunOptions {
            qemu_extra: s(&["-cpu", "qemu64"]),
            ..RunOptions::default()
        };
        let args = qemu_args(&opts, Accel::Tcg, "k", None, "");
        assert_eq!(effective_cpu_model(&args).as_deref(), Some("qemu64"));
        let args = qemu_args(&RunOptions::default(), Accel::Kvm, "k", None, "");
        assert_eq!(
            effective_cpu_model(&args).as_deref(),
            Some("host,-arch-capabilities,+invtsc")
        );
    }

    #[test]
    fn args_carry_everything_the_kernel_needs() {
        let opts = RunOptions {
            cpus: 8,
            machine: "q35".into(),
            qemu_extra: s(&["-M", "microvm"]),
            ..RunOptions::default()
        };
        let args = qemu_args(&opts, Accel::Kvm, "/k", Some("/m"), "sched=rr test=boot");
        let joined = args.join(" ");
        for want in [
            "-M q35",
            "-smp 8",
            "-accel kvm -cpu host,-arch-capabilities,+invtsc",
            "-display none",
            "-no-reboot",
            "-serial stdio",
            "-kernel /k",
            "-initrd /m",
            "-device isa-debug-exit,iobase=0xf4,iosize=0x04",
        ] {
            assert!(joined.contains(want), "missing `{want}` in {joined}");
        }
        // The command line is one argument, and extras come last.
        let append = args.iter().position(|a| a == "-append").unwrap();
        assert_eq!(args[append + 1], "sched=rr test=boot");
        assert_eq!(&args[args.len() - 2..], &s(&["-M", "microvm"])[..]);
        let tcg = qemu_args(&opts, Accel::Tcg, "/k", None, "").join(" ");
        assert!(tcg.contains("-accel tcg -cpu max"));
        assert!(!tcg.contains("-initrd"));
    }

    #[test]
    fn det_runs_keep_each_core_at_the_one_core_speed() {
        // ns per instruction x cores = the one-core figure, down to shift 0.
        for (cpus, shift) in [
            (1, 3),
            (2, 2),
            (3, 1),
            (4, 1),
            (5, 0),
            (8, 0),
            (16, 0),
            (0, 3),
        ] {
            assert_eq!(icount_shift(cpus), shift, "{cpus} cores");
        }
    }

    #[test]
    fn cmdline_has_sched_first_and_only_what_was_asked() {
        let mut opts = RunOptions::default();
        assert_eq!(kernel_cmdline(&opts), "sched=stride");
        opts.sched = "lottery".into();
        opts.run_ms = Some(0);
        opts.test = Some("ipi".into());
        opts.cmdline = s(&["slice_us=100 grace_us=10", "log=debug"]);
        assert_eq!(
            kernel_cmdline(&opts),
            "sched=lottery run_ms=0 test=ipi slice_us=100 grace_us=10 log=debug"
        );
    }

    #[test]
    fn run_names_are_dated() {
        let t = std::time::UNIX_EPOCH + Duration::from_secs(1_795_000_000);
        assert_eq!(run_name("lottery", 8, t), "20261118-110640-lottery-8c");
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        assert_eq!(utc_stamp(std::time::UNIX_EPOCH), "19700101-000000");
    }

    #[test]
    fn run_dirs_never_collide() {
        let base = std::env::temp_dir().join(format!(
            "xtask-unique-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = std::fs::remove_dir_all(&base);
        let a = create_unique_dir(&base, "r").unwrap();
        let b = create_unique_dir(&base, "r").unwrap();
        let c = create_unique_dir(&base, "r").unwrap();
        assert_eq!(a.file_name().unwrap(), "r");
        assert_eq!(b.file_name().unwrap(), "r-2");
        assert_eq!(c.file_name().unwrap(), "r-3");
        std::fs::remove_dir_all(&base).unwrap();
    }

    #[test]
    fn accel_parses() {
        assert_eq!("kvm".parse::<Accel>(), Ok(Accel::Kvm));
        assert!("fast".parse::<Accel>().is_err());
        assert_eq!(Accel::Tcg.resolve(), Accel::Tcg);
        assert_eq!(Accel::Auto.resolve_with(true), Accel::Kvm);
        assert_eq!(Accel::Auto.resolve_with(false), Accel::Tcg);
        assert_eq!(Accel::Kvm.resolve_with(false), Accel::Kvm);
    }

    #[test]
    fn exit_statuses_map_to_ends_and_process_codes() {
        for code in ExitCode::ALL {
            let end = End::classify(Some(code.qemu_status()), false, false);
            assert_eq!(end, End::Kernel(code));
            assert_eq!(end.name(), code.name());
            assert_eq!(end.process_code(), code.process_code());
            // A kernel that finished as the limit struck still counts.
            assert_eq!(End::classify(Some(code.qemu_status()), true, true), end);
        }
        assert_eq!(End::classify(None, true, false), End::Timeout);
        assert_eq!(End::classify(Some(0), false, true), End::Interrupted);
        assert_eq!(End::classify(Some(1), false, false), End::QemuError);
        assert_eq!(End::classify(Some(0), false, false), End::QemuError);
        assert_eq!(End::classify(None, false, false), End::QemuError);
        assert_eq!(End::Kernel(ExitCode::Success).process_code(), 0);
        let runner = [End::QemuError, End::Timeout, End::Interrupted];
        for end in runner {
            assert_ne!(end.process_code(), 0);
            assert!(ExitCode::ALL
                .iter()
                .all(|c| c.process_code() != end.process_code()));
        }
        assert_eq!(End::Timeout.name(), "timeout");
        assert_eq!(End::QemuError.name(), "qemu_error");
    }

    #[test]
    fn console_lines_survive_chunking_and_bad_bytes() {
        let mut l = LineSplitter::default();
        assert!(l.feed(b"@@exo bo").is_empty());
        assert_eq!(l.feed(b"ot {}\r\n[c1 "), vec!["@@exo boot {}"]);
        assert_eq!(
            l.feed(b"\xff\xfeok\n\n"),
            vec!["[c1 \u{fffd}\u{fffd}ok", ""]
        );
        assert_eq!(l.feed(b"tail"), Vec::<String>::new());
        assert_eq!(l.finish().as_deref(), Some("tail"));
        assert_eq!(l.finish(), None);
    }
}
