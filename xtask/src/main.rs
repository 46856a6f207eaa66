//! `cargo xtask <command>`: the runner behind the `justfile`.

use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use xtask::{build, Accel, RunOptions};

#[derive(Parser)]
#[command(about = "Build and run the exokernel in QEMU")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Build the kernel image and the programs' boot-module archive.
    Build,
    /// Boot the kernel on N cores and stream its console.
    Run {
        /// Scheduler for the applications: stride, lottery or rr.
        #[arg(long, default_value = "stride")]
        sched: String,
        #[arg(long, default_value_t = 4)]
        cpus: u32,
        /// auto (KVM when /dev/kvm is usable), kvm or tcg.
        #[arg(long, default_value = "auto")]
        accel: Accel,
        #[arg(long, default_value = "pc")]
        machine: String,
        /// Extra QEMU arguments, split on whitespace, appended last.
        #[arg(long, default_value = "", allow_hyphen_values = true)]
        qemu: String,
        /// Seconds before the run is stopped.
        #[arg(long, default_value_t = 120)]
        timeout: u64,
        /// How long the run lasts (kernel `run_ms`); 0 = until `q`.
        #[arg(long)]
        run_ms: Option<u64>,
        /// A kernel-side test or experiment to run.
        #[arg(long)]
        test: Option<String>,
        /// Results directory name under results/runs/.
        #[arg(long)]
        name: Option<String>,
        /// Extra kernel command-line words (key=value ...).
        #[arg(long, default_value = "")]
        cmdline: String,
        #[arg(long, default_value_t = 1024)]
        memory: u32,
    },
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Cmd::Build => match build::kernel().and_then(|k| build::programs().map(|p| (k, p))) {
            Ok((k, p)) => {
                println!("kernel: {}", k.display());
                if let Some(p) = p {
                    println!("programs: {}", p.display());
                }
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::FAILURE
            }
        },
        Cmd::Run {
            sched,
            cpus,
            accel,
            machine,
            qemu,
            timeout,
            run_ms,
            test,
            name,
            cmdline,
            memory,
        } => {
            if !["stride", "lottery", "rr"].contains(&sched.as_str()) {
                eprintln!("error: sched must be stride, lottery or rr, not `{sched}`");
                return ExitCode::from(2);
            }
            if !(1..=128).contains(&cpus) {
                eprintln!("error: cpus must be 1..=128");
                return ExitCode::from(2);
            }
            let mut words: Vec<String> = cmdline.split_whitespace().map(String::from).collect();
            if let Some(ms) = run_ms {
                words.push(format!("run_ms={ms}"));
            }
            if let Some(t) = test {
                words.push(format!("test={t}"));
            }
            let opts = RunOptions {
                sched,
                cpus,
                accel,
                machine,
                qemu_extra: qemu.split_whitespace().map(String::from).collect(),
                cmdline: words,
                timeout: Duration::from_secs(timeout),
                name,
                stream: true,
                programs: true,
                memory_mib: memory,
            };
            match xtask::run(&opts) {
                Ok(out) => {
                    eprintln!(
                        "== exit: {} — results in {}",
                        out.exit_name,
                        out.run_dir.display()
                    );
                    ExitCode::from(out.process_code() as u8)
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}
