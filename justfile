# The platform's front door: thin recipes over the Rust runner (`cargo xtask`).
# Run `just` (or `./just` on a fresh machine, which installs what is missing)
# to list the recipes.
#
# Every recipe with options passes its words unchanged to `cargo xtask
# <recipe>`, which reads them as key=value (any order; `_` and `-` alike;
# unknown keys refused with the list of valid ones) or as bare values in the
# recipe's documented order, and takes dry_run=1 to check everything and print
# what it would run. The keys and their defaults are in the README's recipe
# table and in `cargo xtask <recipe> --help`. Docs stay on one line each
# (`[doc]`): `just --list` shows only a recipe's last comment line.

set positional-arguments := true

[doc("List the recipes.")]
default:
    @{{just_executable()}} --justfile {{quote(justfile())}} --list

[doc("Build the kernel image and the programs' boot-module archive. [dry_run=1]")]
build *args:
    @cargo xtask build "$@"

[doc("Boot N cores and run a scenario: [sched=] [cpus=] [scenario=<file>|none] [det=1] [thread_trace=1] [accel=] [machine=] [qemu=] [timeout=] [run_ms=] [test=] [name=] [trials=N] [dry_run=1]")]
run-smp *args:
    @cargo xtask run-smp "$@"

[doc("Draw a scenario run's figures (PNG, SVG) for a paper next to its data: [run=<dir or name>] (default: newest run) [size=page|column] [title=0] [from=<s>] [to=<s>] (the slice map's window)")]
plot *args:
    @cargo xtask plot "$@"

[doc("Two scenario runs side by side per thread (share, error, lag, wait percentiles, differences): <run> <run> or a=<run> b=<run>")]
compare *args:
    @cargo xtask compare "$@"

[doc("Guest instructions per function from a QEMU exec log, written by a run with qemu=\"-singlestep -d exec [-dfilter <ranges>] -D <log>\": <log> elf=<program>,<kernel> [per=<operations in the log>] [top=40]")]
profile *args:
    @cargo xtask profile "$@"

[doc("Run the canonical experiments, draw their figures, write results/README.md: [jobs=2] [accel=] [sweep_trials=<N>]")]
experiments *args:
    @cargo xtask experiments "$@"

[doc("Run a scenario once per value of one field: <scenario> <key> <v1,v2,...> [jobs=2] [cpus=] [accel=] [run_ms=] [det=1] [trials=N]; writes the table as CSV beside the runs")]
sweep *args:
    @cargo xtask sweep "$@"

[doc("Benchmark every primitive and policy beside Linux: instructions per operation beside a Linux guest (det TCG), wall clock beside this host; writes results/bench/: [accel=auto] [tails=1] (only the deterministic overhead and tails, printed) [scale=1] (only the scale rows, 1 to 64 cores, printed)")]
bench *args:
    @cargo xtask bench "$@"

[doc("The seconds-long benchmark CI runs, figures printed, never asserted; no Linux guest, no instruction counts (test-qemu boots Linux once): [accel=tcg]")]
bench-smoke *args:
    @cargo xtask bench-smoke "$@"

[doc("Fuzz the system-call interface from ring 3 (>= 1,000,000 calls a minute): [seconds=60] [cpus=4] [accel=tcg]")]
fuzz *args:
    @cargo xtask fuzz "$@"

[doc("N cores for a long time, applications coming, going, swapping; every invariant checked: [minutes=10] [cpus=16] [accel=tcg]")]
soak *args:
    @cargo xtask soak "$@"

[doc("Host unit and property tests of every pure crate.")]
test-host:
    cargo test --workspace --exclude xtask --quiet
    cargo test -p xtask --lib --quiet

[doc("In-QEMU suites (boot the kernel, assert on what it reports) and the docs' command lines.")]
test-qemu:
    cargo test -p xtask --tests --quiet -- --test-threads=2

[doc("Formatting and lints (host, and the bare-metal crates for their target).")]
lint:
    cargo fmt --all -- --check
    cargo clippy --workspace --all-targets --quiet -- -D warnings
    # Every member but the host-only runner and benchmarks: a new crate (a
    # policy) is linted for the bare-metal target without being listed.
    cargo clippy --workspace --exclude xtask --exclude policy-bench --target x86_64-unknown-none --quiet -- -D warnings

[doc("Everything CI runs: test-host, test-qemu, lint, bench-smoke.")]
test: test-host test-qemu lint bench-smoke
