//! Starting QEMU and watching the console.

use std::io::{BufRead, BufReader, IsTerminal, Read, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use abi::ExitCode;

use crate::build;
use crate::summary::{self, Records};

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
        match self {
            Accel::Auto if kvm_usable() => Accel::Kvm,
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

/// Whether this process may use KVM.
pub fn kvm_usable() -> bool {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .is_ok()
}

/// Everything a run needs.
#[derive(Clone, Debug)]
pub struct RunOptions {
    pub sched: String,
    pub cpus: u32,
    pub accel: Accel,
    /// QEMU machine type (`pc`, `q35`, `microvm`); `-M` in `qemu_extra` wins.
    pub machine: String,
    /// Extra QEMU arguments, appended last (QEMU takes the last -cpu / -M).
    pub qemu_extra: Vec<String>,
    /// Kernel command-line words (`key=value`), besides `sched=`.
    pub cmdline: Vec<String>,
    pub timeout: Duration,
    /// Run name (directory under `results/runs/`); generated when `None`.
    pub name: Option<String>,
    /// Echo the console to the terminal while running.
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
            cmdline: Vec::new(),
            timeout: Duration::from_secs(120),
            name: None,
            stream: false,
            programs: true,
            memory_mib: 1024,
        }
    }
}

/// How a run ended.
#[derive(Debug)]
pub struct RunOutcome {
    /// The kernel's exit code, if it reached the exit device.
    pub exit: Option<ExitCode>,
    /// "success", an `ExitCode` name, "timeout" or "qemu_error".
    pub exit_name: String,
    pub records: Records,
    pub console: String,
    pub run_dir: PathBuf,
    pub summary: serde_json::Value,
}

impl RunOutcome {
    /// The process exit code `just` ends with.
    pub fn process_code(&self) -> i32 {
        match (self.exit, self.exit_name.as_str()) {
            (Some(code), _) => code.process_code(),
            (None, "timeout") => 3,
            _ => 2,
        }
    }
}

/// The machine type the run uses: the last `-M`/`-machine` in the extra
/// arguments, else `default` (options after a comma are dropped).
pub fn effective_machine(default: &str, extra: &[String]) -> String {
    let mut machine = default.to_string();
    let mut it = extra.iter();
    while let Some(a) = it.next() {
        if a == "-M" || a == "-machine" {
            if let Some(v) = it.next() {
                machine = v.clone();
            }
        }
    }
    let base = machine.split(',').next().unwrap_or(&machine);
    base.strip_prefix("type=").unwrap_or(base).to_string()
}

/// The last `-cpu` in `args`.
pub fn effective_cpu_model(args: &[String]) -> Option<String> {
    args.windows(2)
        .rfind(|w| w[0] == "-cpu")
        .map(|w| w[1].clone())
}

/// QEMU's arguments for a run (without the binary name).
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
    match accel {
        // Nested KVM here aborts on -cpu host/max with the arch-capabilities
        // MSR; invtsc makes KVM report the TSC rate (CPUID 0x40000010).
        Accel::Kvm => push(&["-accel", "kvm", "-cpu", "host,-arch-capabilities,+invtsc"]),
        _ => push(&["-accel", "tcg", "-cpu", "max"]),
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

/// A unique run directory name: `<UTC time>-<sched>-<N>c`.
pub fn run_name(sched: &str, cpus: u32, now: std::time::SystemTime) -> String {
    let secs = now
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    format!(
        "{y:04}{m:02}{d:02}-{:02}{:02}{:02}-{sched}-{cpus}c",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
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

fn unique_dir(base: PathBuf, name: &str) -> PathBuf {
    let mut dir = base.join(name);
    let mut n = 2;
    while dir.exists() {
        dir = base.join(format!("{name}-{n}"));
        n += 1;
    }
    dir
}

/// Builds, boots and watches one run; writes its results directory.
pub fn run(opts: &RunOptions) -> Result<RunOutcome, String> {
    let kernel = build::kernel()?;
    let initrd = if opts.programs {
        build::programs()?
    } else {
        None
    };
    let accel = opts.accel.resolve();
    let mut words = vec![format!("sched={}", opts.sched)];
    words.extend(opts.cmdline.iter().cloned());
    let cmdline = words.join(" ");
    let args = qemu_args(
        opts,
        accel,
        &kernel.to_string_lossy(),
        initrd.as_deref().map(|p| p.to_str().unwrap_or("")),
        &cmdline,
    );
    let name = opts
        .name
        .clone()
        .unwrap_or_else(|| run_name(&opts.sched, opts.cpus, std::time::SystemTime::now()));
    let run_dir = unique_dir(build::workspace_root().join("results/runs"), &name);
    std::fs::create_dir_all(&run_dir).map_err(|e| format!("{}: {e}", run_dir.display()))?;

    if opts.stream {
        eprintln!(
            "== {} cores, {} ({}), machine {}; results in {}",
            opts.cpus,
            accel.name(),
            if accel == Accel::Tcg {
                "emulated"
            } else {
                "hardware-assisted"
            },
            effective_machine(&opts.machine, &opts.qemu_extra),
            run_dir.display()
        );
    }
    let interactive = opts.stream && std::io::stdin().is_terminal();
    let started = Instant::now();
    let mut child = Command::new("qemu-system-x86_64")
        .args(&args)
        .stdin(if interactive {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| {
            format!("cannot start qemu-system-x86_64 (is it installed? `./just` installs it): {e}")
        })?;
    if let Some(mut qemu_in) = child.stdin.take() {
        std::thread::spawn(move || {
            let mut buf = [0u8; 64];
            let mut stdin = std::io::stdin();
            while let Ok(n) = stdin.read(&mut buf) {
                if n == 0 || qemu_in.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        });
    }
    let (tx, rx) = mpsc::channel::<String>();
    let stdout = child.stdout.take().expect("piped stdout");
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut stderr = child.stderr.take().expect("piped stderr");
    let stderr_thread = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let mut console = String::new();
    let mut timed_out = false;
    loop {
        match rx.recv_timeout(Duration::from_millis(50)) {
            Ok(line) => {
                let line = line.trim_end_matches('\r').to_string();
                if opts.stream {
                    println!("{line}");
                }
                console.push_str(&line);
                console.push('\n');
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
            Err(mpsc::RecvTimeoutError::Timeout) => {}
        }
        if started.elapsed() > opts.timeout {
            timed_out = true;
            let _ = child.kill();
            break;
        }
    }
    let status = child.wait().map_err(|e| format!("waiting for qemu: {e}"))?;
    while let Ok(line) = rx.try_recv() {
        console.push_str(line.trim_end_matches('\r'));
        console.push('\n');
    }
    let qemu_stderr = stderr_thread.join().unwrap_or_default();
    let wall = started.elapsed();
    let exit = if timed_out {
        None
    } else {
        status.code().and_then(ExitCode::from_qemu_status)
    };
    let exit_name = match (exit, timed_out) {
        (Some(code), _) => code.name().to_string(),
        (None, true) => "timeout".to_string(),
        (None, false) => "qemu_error".to_string(),
    };
    if opts.stream && !qemu_stderr.trim().is_empty() && exit.is_none() {
        eprintln!("qemu: {}", qemu_stderr.trim());
    }
    let records = summary::parse_records(&console);
    let summary = summary::build(
        &summary::RunFacts {
            commit: build::commit(),
            opts,
            accel_requested: opts.accel.name(),
            accel: accel.name(),
            machine: effective_machine(&opts.machine, &opts.qemu_extra),
            cpu_model: effective_cpu_model(&args).unwrap_or_default(),
            qemu_args: &args,
            cmdline: &cmdline,
            exit: &exit_name,
            wall_ms: wall.as_millis() as u64,
            qemu_stderr: &qemu_stderr,
        },
        &records,
    );
    std::fs::write(run_dir.join("console.log"), &console)
        .map_err(|e| format!("writing console.log: {e}"))?;
    std::fs::write(
        run_dir.join("summary.json"),
        serde_json::to_string_pretty(&summary).unwrap_or_default(),
    )
    .map_err(|e| format!("writing summary.json: {e}"))?;
    Ok(RunOutcome {
        exit,
        exit_name,
        records,
        console,
        run_dir,
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
    fn machine_and_cpu_come_from_the_last_override() {
        assert_eq!(effective_machine("pc", &[]), "pc");
        assert_eq!(
            effective_machine("pc", &s(&["-M", "q35", "-cpu", "qemu64"])),
            "q35"
        );
        assert_eq!(
            effective_machine("pc", &s(&["-machine", "type=microvm,acpi=on"])),
            "microvm"
        );
        let opts = RunOptions {
            qemu_extra: s(&["-cpu", "qemu64"]),
            ..RunOptions::default()
        };
        let args = qemu_args(&opts, Accel::Tcg, "k", None, "");
        assert_eq!(effective_cpu_model(&args).as_deref(), Some("qemu64"));
    }

    #[test]
    fn args_carry_everything_the_kernel_needs() {
        let opts = RunOptions {
            cpus: 8,
            ..RunOptions::default()
        };
        let args = qemu_args(&opts, Accel::Kvm, "/k", Some("/m"), "sched=rr test=boot");
        let joined = args.join(" ");
        for want in [
            "-smp 8",
            "-accel kvm",
            "-kernel /k",
            "-initrd /m",
            "isa-debug-exit,iobase=0xf4",
            "-append sched=rr test=boot",
        ] {
            assert!(joined.contains(want), "missing `{want}` in {joined}");
        }
        assert!(qemu_args(&opts, Accel::Tcg, "/k", None, "")
            .join(" ")
            .contains("-accel tcg -cpu max"));
    }

    #[test]
    fn run_names_are_dated() {
        let t = std::time::UNIX_EPOCH + Duration::from_secs(1_795_000_000);
        assert_eq!(run_name("lottery", 8, t), "20261118-110640-lottery-8c");
        assert_eq!(civil_from_days(0), (1970, 1, 1));
    }

    #[test]
    fn accel_parses() {
        assert_eq!("kvm".parse::<Accel>(), Ok(Accel::Kvm));
        assert!("fast".parse::<Accel>().is_err());
        assert_eq!(Accel::Tcg.resolve(), Accel::Tcg);
    }
}
