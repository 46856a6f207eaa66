//! What QEMU is asked to be: the accelerator, the machine type and CPU
//! model, the kernel command line, and the argument list that says it all.

use super::RunOptions;
use crate::trust::Mode;

/// Which accelerator to ask QEMU for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Accel {
    /// A run: see [`choose`] (hardware KVM, else deterministic TCG for a
    /// scenario). The benchmark: [`Accel::resolve`].
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
    /// Resolves `Auto` for the benchmark: KVM only when `/dev/kvm` opens
    /// for reading and writing *and* is hardware-assisted. PVM's (or an
    /// unknown kind's) times are not hardware's — a null system call there
    /// takes milliseconds — so `auto` never benchmarks on it: it gives TCG,
    /// and the benchmark says so. An explicit `kvm` is honoured whatever
    /// KVM is (flagged in the report). Runs use [`choose`].
    pub fn resolve(self) -> Accel {
        self.resolve_with(kvm_usable(), KvmKind::of_host())
    }

    /// Resolves `Auto` given whether KVM is usable and what kind it is.
    pub fn resolve_with(self, usable: bool, kind: KvmKind) -> Accel {
        match self {
            Accel::Auto if usable && kind == KvmKind::Hardware => Accel::Kvm,
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

/// What this host's KVM is, as far as the host can tell.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KvmKind {
    /// VMX or SVM in the CPU flags: hardware-assisted virtualisation.
    Hardware,
    /// The `kvm_pvm` module: guests run deprivileged under shadow paging,
    /// with no VMX (what this project's development machines have); every
    /// guest kernel entry costs milliseconds and its figures say nothing
    /// about hardware.
    Pvm,
    /// Neither.
    Unknown,
}

impl KvmKind {
    /// This host's (PVM wins: a PVM host may show VMX flags to nobody).
    pub fn of_host() -> KvmKind {
        if std::path::Path::new("/sys/module/kvm_pvm").exists() {
            return KvmKind::Pvm;
        }
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        KvmKind::from_cpu_flags(&cpuinfo)
    }

    /// From `/proc/cpuinfo`'s first `flags` line.
    pub fn from_cpu_flags(cpuinfo: &str) -> KvmKind {
        let has = |f: &str| {
            cpuinfo
                .lines()
                .find(|l| l.starts_with("flags"))
                .is_some_and(|l| l.split_whitespace().any(|w| w == f))
        };
        if has("vmx") || has("svm") {
            KvmKind::Hardware
        } else {
            KvmKind::Unknown
        }
    }

    /// A few words: what it is.
    pub fn short(self) -> &'static str {
        match self {
            KvmKind::Hardware => "hardware-assisted",
            KvmKind::Pvm => "PVM (kvm_pvm, no VMX)",
            KvmKind::Unknown => "of unknown kind (no VMX/SVM, no kvm_pvm)",
        }
    }

    pub fn describe(self) -> &'static str {
        match self {
            KvmKind::Hardware => "hardware-assisted",
            KvmKind::Pvm => "PVM (kvm_pvm, no VMX): guest ring 0 deprivileged, not hardware",
            KvmKind::Unknown => "of unknown kind",
        }
    }

    /// The trust mode of a KVM run on this kind of host.
    pub fn mode(self) -> Mode {
        match self {
            KvmKind::Hardware => Mode::HardwareKvm,
            KvmKind::Pvm => Mode::PvmKvm,
            KvmKind::Unknown => Mode::UnknownKvm,
        }
    }
}

/// What this host's KVM is, in words ([`KvmKind::describe`]).
pub fn kvm_kind() -> &'static str {
    KvmKind::of_host().describe()
}

/// Whether this process may use KVM.
pub fn kvm_usable() -> bool {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .is_ok()
}

/// What a run runs on, decided from what was asked and what the host has.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Choice {
    /// `Kvm` or `Tcg`.
    pub accel: Accel,
    /// `-icount`, one TCG thread.
    pub det: bool,
    pub mode: Mode,
    /// Why, for the run's first line.
    pub why: String,
}

/// Chooses the accelerator. `accel=auto` picks a mode whose figures are
/// right: hardware KVM when the host has it, else deterministic TCG for a
/// scenario (whose shares are the product) and plain TCG for a bare boot
/// or a kernel test. An explicit `kvm` is honoured whatever KVM is (PVM
/// included: the run's trust says what that means); `det` means TCG.
pub fn choose(asked: Accel, det: bool, scenario: bool, kvm_usable: bool, kvm: KvmKind) -> Choice {
    let tcg = |det: bool, why: String| Choice {
        accel: Accel::Tcg,
        det,
        mode: if det { Mode::DetTcg } else { Mode::Tcg },
        why,
    };
    if det {
        return tcg(true, "det=1".into());
    }
    match asked {
        Accel::Tcg => tcg(false, "accel=tcg".into()),
        Accel::Kvm => Choice {
            accel: Accel::Kvm,
            det: false,
            mode: kvm.mode(),
            why: format!("accel=kvm; KVM here is {}", kvm.short()),
        },
        Accel::Auto if kvm_usable && kvm == KvmKind::Hardware => Choice {
            accel: Accel::Kvm,
            det: false,
            mode: Mode::HardwareKvm,
            why: "accel=auto: KVM here is hardware-assisted".into(),
        },
        Accel::Auto => {
            let kvm_is = if kvm_usable {
                format!(
                    "KVM here is {}, whose times are not hardware's",
                    kvm.short()
                )
            } else {
                "/dev/kvm is not usable".to_string()
            };
            if scenario {
                tcg(true, format!("accel=auto: {kvm_is}"))
            } else {
                tcg(false, format!("accel=auto: {kvm_is}"))
            }
        }
    }
}

/// How a choice reads in a run's first line.
pub fn describe_choice(c: &Choice) -> String {
    let what = match c.mode {
        Mode::DetTcg => "deterministic TCG (-icount: virtual time, exact and repeatable figures)",
        Mode::Tcg => "TCG (not deterministic: guest time is the host's, figures are not exact)",
        Mode::HardwareKvm => "KVM (hardware-assisted)",
        Mode::PvmKvm => {
            "KVM on PVM (!! times are PVM's, not hardware's: shares will be marked untrusted)"
        }
        Mode::UnknownKvm => {
            "KVM of unknown kind (!! not known to be hardware: shares will be marked untrusted)"
        }
    };
    format!("{what} — {}", c.why)
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

/// Guest instructions per virtual second each of `cpus` busy cores
/// executes in a deterministic run (one-core speed up to 8 cores).
pub fn det_core_speed(cpus: u32) -> f64 {
    let cpus = cpus.max(1);
    1e9 / f64::from((1u32 << icount_shift(cpus)) * cpus)
}

/// How many times slower each core of a deterministic run on `cpus` cores
/// is than up to 8 (QEMU runs every vCPU on one instruction clock): runs
/// on more cores stretch slice and grace by as much, so every core has the
/// instructions per turn the 2–8-core runs have (undilated, 64 cores had
/// 3,125 instructions of grace and half their turns were repossessed).
pub fn det_slowdown(cpus: u32) -> u64 {
    (det_core_speed(1) / det_core_speed(cpus)).round() as u64
}

/// What a deterministic run on `cpus` cores must say about its cores'
/// speed: `None` up to 8 cores (the one-core speed); beyond, how much
/// slower each core is, so per-turn overheads against the same slices are
/// not read as the mechanism's (64 cores measured 50% of turns
/// repossessed where 8 had none).
pub fn det_speed_warning(cpus: u32) -> Option<String> {
    let one = det_core_speed(1);
    let here = det_core_speed(cpus);
    (here < one).then(|| {
        format!(
            "!! each core runs {:.1} million instructions per virtual second, 1/{:.0} of the speed up to 8 cores \
             (QEMU's -icount runs all vCPUs on one clock): every per-turn path takes {:.0}x longer against the \
             same slice and grace; scale slice_us and grace_us by as much to compare with smaller runs",
            here / 1e6,
            one / here,
            one / here
        )
    })
}

/// The kernel's `interleave_us` for deterministic runs on several cores:
/// QEMU 7.2's round robin runs each vCPU up to the next timer deadline,
/// so the kernel keeps every running core's deadline this close (see the
/// kernel's `sched::arm_running`; without it, one revocation in two on 2
/// cores reached its grace's end before the epilogue ran an instruction).
pub const DET_INTERLEAVE_US: u32 = 50;

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
    fn det_cores_beyond_8_are_slower_and_the_run_says_so() {
        for cpus in [1, 2, 3, 4, 5, 8] {
            assert!(det_core_speed(cpus) >= 125e6, "{cpus} cores");
            assert_eq!(det_speed_warning(cpus), None);
        }
        assert_eq!(det_core_speed(16), 62.5e6);
        assert_eq!(det_core_speed(64), 15.625e6);
        let w = det_speed_warning(64).unwrap();
        assert!(
            w.contains("15.6 million") && w.contains("1/8") && w.contains("8x"),
            "{w}"
        );
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
    fn auto_picks_a_mode_whose_figures_are_right() {
        use KvmKind::*;
        let c = choose(Accel::Auto, false, true, true, Hardware);
        assert_eq!(
            (c.accel, c.det, c.mode),
            (Accel::Kvm, false, Mode::HardwareKvm)
        );
        // This machine: KVM usable but PVM. A scenario runs deterministically...
        let c = choose(Accel::Auto, false, true, true, Pvm);
        assert_eq!((c.accel, c.det, c.mode), (Accel::Tcg, true, Mode::DetTcg));
        assert_eq!(
            c.why,
            "accel=auto: KVM here is PVM (kvm_pvm, no VMX), whose times are not hardware's"
        );
        assert!(describe_choice(&c).starts_with("deterministic TCG"));
        // ... a bare boot or kernel test on TCG.
        let c = choose(Accel::Auto, false, false, true, Pvm);
        assert_eq!((c.accel, c.det, c.mode), (Accel::Tcg, false, Mode::Tcg));
        let c = choose(Accel::Auto, false, true, true, Unknown);
        assert_eq!(c.mode, Mode::DetTcg);
        let c = choose(Accel::Auto, false, true, false, Hardware);
        assert_eq!(c.mode, Mode::DetTcg);
        assert!(c.why.contains("not usable"));
    }

    #[test]
    fn what_is_asked_for_is_honoured_and_flagged() {
        use KvmKind::*;
        let c = choose(Accel::Kvm, false, true, true, Pvm);
        assert_eq!((c.accel, c.det, c.mode), (Accel::Kvm, false, Mode::PvmKvm));
        assert!(describe_choice(&c).contains("!! times are PVM's"));
        let c = choose(Accel::Kvm, false, true, true, Hardware);
        assert_eq!(c.mode, Mode::HardwareKvm);
        let c = choose(Accel::Tcg, false, true, true, Hardware);
        assert_eq!((c.accel, c.det, c.mode), (Accel::Tcg, false, Mode::Tcg));
        for asked in [Accel::Auto, Accel::Kvm, Accel::Tcg] {
            let c = choose(asked, true, false, true, Hardware);
            assert_eq!((c.accel, c.det, c.mode), (Accel::Tcg, true, Mode::DetTcg));
        }
    }

    #[test]
    fn kvm_kind_comes_from_the_cpu_flags() {
        let info = "processor\t: 0\nflags\t\t: fpu vme sse2 vmx ept\nflags\t\t: ignored\n";
        assert_eq!(KvmKind::from_cpu_flags(info), KvmKind::Hardware);
        assert_eq!(
            KvmKind::from_cpu_flags("flags : fpu svm\n"),
            KvmKind::Hardware
        );
        assert_eq!(
            KvmKind::from_cpu_flags("flags : fpu hypervisor vmxx\n"),
            KvmKind::Unknown
        );
        assert_eq!(KvmKind::Pvm.mode(), Mode::PvmKvm);
    }

    #[test]
    fn accel_parses() {
        assert_eq!("kvm".parse::<Accel>(), Ok(Accel::Kvm));
        assert!("fast".parse::<Accel>().is_err());
        assert_eq!(Accel::Tcg.resolve(), Accel::Tcg);
        use KvmKind::*;
        assert_eq!(Accel::Auto.resolve_with(true, Hardware), Accel::Kvm);
        assert_eq!(Accel::Auto.resolve_with(false, Hardware), Accel::Tcg);
        // The benchmark never takes PVM (or an unknown KVM) for hardware...
        assert_eq!(Accel::Auto.resolve_with(true, Pvm), Accel::Tcg);
        assert_eq!(Accel::Auto.resolve_with(true, Unknown), Accel::Tcg);
        // ... but whoever asks for KVM gets it.
        assert_eq!(Accel::Kvm.resolve_with(true, Pvm), Accel::Kvm);
        assert_eq!(Accel::Kvm.resolve_with(false, Hardware), Accel::Kvm);
    }
}
