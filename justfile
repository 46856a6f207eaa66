# The platform's front door: thin recipes over the Rust runner (`cargo xtask`).
# Run `just` (or `./just` on a fresh machine, which installs what is missing)
# to list the recipes.

set positional-arguments := false

# List the recipes.
default:
    @just --list

# Build the kernel image and the programs' boot-module archive.
build:
    cargo xtask build

# Boot the platform on N cores and run a scenario (default: scenarios/default.toml;
# scenario=none boots the platform alone). sched= replaces every application's
# scheduler; cpus= defaults to the scenario's `cores`, else 4; det=1 runs
# deterministically (TCG, -icount). Type `help` on the console for commands.
run-smp sched="" cpus="" accel="auto" machine="pc" qemu="" timeout="120" run_ms="" test="" scenario="" det="":
    #!/usr/bin/env bash
    set -euo pipefail
    args=(--accel "{{accel}}" --machine "{{machine}}" --timeout "{{timeout}}")
    [ -n "{{sched}}" ] && args+=(--sched "{{sched}}")
    [ -n "{{cpus}}" ] && args+=(--cpus "{{cpus}}")
    [ -n "{{qemu}}" ] && args+=(--qemu "{{qemu}}")
    [ -n "{{run_ms}}" ] && args+=(--run-ms "{{run_ms}}")
    [ -n "{{test}}" ] && args+=(--test "{{test}}")
    [ -n "{{scenario}}" ] && args+=(--scenario "{{scenario}}")
    [ "{{det}}" = "1" ] && args+=(--det)
    exec cargo xtask run "${args[@]}"

# Draw a scenario run's figures (PNG and SVG) next to its data (default: the newest run).
plot run="":
    cargo xtask plot {{run}}

# Run the canonical experiments (several QEMUs at once), draw their figures into
# results/figures/ and write results/README.md from the measurements.
experiments jobs="2" accel="auto":
    cargo xtask experiments --jobs {{jobs}} --accel {{accel}}

# Run a scenario once per value of one field, e.g.
# just sweep scenarios/lottery-2to1.toml app.0.thread.0.tickets 100,200,400
sweep scenario key values jobs="2" accel="auto":
    cargo xtask sweep {{scenario}} {{key}} {{values}} --jobs {{jobs}} --accel {{accel}}

# Benchmark every primitive and policy beside Linux on this host (KVM when usable,
# TCG otherwise, said loudly); writes results/bench/<commit>-<accel>.{json,md}.
bench accel="auto":
    cargo xtask bench --accel {{accel}}

# The seconds-long version for CI: figures printed, never asserted (TCG by
# default: the same on every machine).
bench-smoke accel="tcg":
    cargo xtask bench --smoke --accel {{accel}}

# Fuzz the system-call interface from ring 3 on 4 cores (>= 1,000,000 calls).
fuzz seconds="60" cpus="4":
    cargo xtask run --accel tcg --cpus {{cpus}} --test fuzz --run-ms {{seconds}}000 --timeout 600 --cmdline "slice_us=10000 grace_us=3000"

# Soak: N cores for a long time, applications joining, leaving, swapping
# schedulers and sleeping, every invariant checked all along (TCG by default).
soak minutes="10" cpus="16" accel="tcg":
    cargo xtask soak --minutes {{minutes}} --cpus {{cpus}} --accel {{accel}}

# Host unit and property tests of every pure crate.
test-host:
    cargo test --workspace --exclude xtask --quiet
    cargo test -p xtask --lib --quiet

# In-QEMU suites: boot the kernel and assert on what it reports.
test-qemu:
    cargo test -p xtask --tests --quiet -- --test-threads=2

# Formatting and lints (host, and the bare-metal crates for their target).
lint:
    cargo fmt --all -- --check
    # The bare-metal kernel's modules come in through `include!`, which
    # cargo fmt does not follow: check them file by file.
    rustfmt --edition 2021 --check kernel/src/*.rs kernel/src/arch/*.rs kernel/src/launch/*.rs
    cargo clippy --workspace --all-targets --quiet -- -D warnings
    cargo clippy -p kernel -p slices -p predicate -p abi -p libos -p workloads -p sched-api -p sched-stride -p sched-lottery -p sched-rr --target x86_64-unknown-none --quiet -- -D warnings

# Everything CI runs.
test: test-host test-qemu lint bench-smoke
