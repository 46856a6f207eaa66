//! Guest instructions per function, from a QEMU exec log.
//!
//! A deterministic run's figures are instruction counts (8 virtual ns
//! each), so the profile that explains them counts instructions too. QEMU
//! logs a `Trace` line per translation block it enters (`-d exec`); with
//! `-singlestep` every block is one instruction, so the log is the run's
//! instruction stream, less the blocks QEMU stopped before running them
//! (its `Stopped execution of TB chain before … [pc]` lines, taken off
//! here). Without `-singlestep` a line is a block of several instructions,
//! and even weighting blocks by their length gave a thread switch 531
//! instructions where it executes 1,009: do not use such a log.
//! `-dfilter` keeps the log to the ranges asked for (a CPU-bound loop
//! left out, say) and the monitor's `log exec` / `log none` to a window:
//!
//! ```text
//! just run-smp scenario=… det=1 qemu="-singlestep -d exec -dfilter 0x400000..0x7fffff -D /tmp/exec.log"
//! cargo xtask profile /tmp/exec.log --elf target/x86_64-unknown-none/release/app,target/x86_64-unknown-none/release/kernel --per 1000
//! ```
//!
//! Each instruction goes to the function whose range holds it (a label
//! of hand-written assembly, which has no size, only where no function
//! does); `--per` divides by the operations the window held (switches,
//! samples, …).

use std::collections::HashMap;
use std::io::BufRead;
use std::path::Path;

use object::{Object, ObjectSection, ObjectSymbol, SectionKind, SymbolKind};

/// A function's address range and demangled name (without its hash).
#[derive(Clone, Debug, PartialEq)]
pub struct Symbol {
    pub start: u64,
    pub end: u64,
    pub name: String,
    /// Its size is in the symbol table (a function); a label without one
    /// reaches the next symbol.
    pub sized: bool,
}

/// The text symbols of an ELF file, sorted by address. A symbol without a
/// size reaches the next one.
pub fn symbols(elf: &[u8]) -> Result<Vec<Symbol>, String> {
    let file = object::File::parse(elf).map_err(|e| format!("not an ELF file: {e}"))?;
    let mut raw: Vec<(u64, u64, String)> = file
        .symbols()
        // Functions, and the labels of hand-written assembly (no type),
        // in code: a label in data would swallow the addresses after it.
        .filter(|s| {
            matches!(
                s.kind(),
                SymbolKind::Text | SymbolKind::Label | SymbolKind::Unknown
            ) && s.address() != 0
                && s.section_index()
                    .and_then(|i| file.section_by_index(i).ok())
                    .is_some_and(|sec| sec.kind() == SectionKind::Text)
        })
        .filter_map(|s| {
            let name = s.name().ok()?;
            Some((
                s.address(),
                s.size(),
                format!("{:#}", rustc_demangle::demangle(name)),
            ))
        })
        .collect();
    // At one address a function before a label (aliases: the first).
    raw.sort_by_key(|s| (s.0, s.1 == 0));
    raw.dedup_by_key(|s| s.0);
    let next: Vec<u64> = raw.iter().skip(1).map(|s| s.0).chain([u64::MAX]).collect();
    Ok(raw
        .into_iter()
        .zip(next)
        .map(|((start, size, name), next)| Symbol {
            start,
            end: if size > 0 { start + size } else { next },
            name,
            sized: size > 0,
        })
        .collect())
}

/// The guest address of a `Trace` line (`Trace 0: 0x7f… [cs_base/pc/flags/cflags] …`).
pub fn trace_pc(line: &str) -> Option<u64> {
    let rest = line.strip_prefix("Trace ")?;
    let fields = &rest[rest.find('[')? + 1..];
    let pc = fields.split('/').nth(1)?;
    u64::from_str_radix(pc, 16).ok()
}

/// The guest address of a `Stopped execution of TB chain before … [pc]`
/// line: a block logged but not run.
pub fn stopped_pc(line: &str) -> Option<u64> {
    let rest = line.strip_prefix("Stopped execution of TB chain before ")?;
    let pc = &rest[rest.find('[')? + 1..rest.find(']')?];
    u64::from_str_radix(pc, 16).ok()
}

/// How many times each address was run (lines that are not text are
/// skipped).
pub fn count(log: impl BufRead) -> Result<HashMap<u64, u64>, String> {
    let mut counts: HashMap<u64, u64> = HashMap::new();
    for line in log.split(b'\n') {
        let line = line.map_err(|e| e.to_string())?;
        let Ok(line) = std::str::from_utf8(&line) else {
            continue;
        };
        if let Some(pc) = trace_pc(line) {
            *counts.entry(pc).or_insert(0) += 1;
        } else if let Some(pc) = stopped_pc(line) {
            if let Some(n) = counts.get_mut(&pc) {
                *n = n.saturating_sub(1);
            }
        }
    }
    Ok(counts)
}

/// The function that holds `pc`: the sized symbol (function) whose range
/// does, else the label before it; `?` for none.
fn holder(pc: u64, symbols: &[Symbol]) -> &str {
    let at = symbols.partition_point(|s| s.start <= pc);
    let before = &symbols[..at];
    // A label inside a function does not end it: look back past labels to
    // the nearest function and take it if it still holds `pc`.
    if let Some(f) = before.iter().rev().find(|s| s.sized) {
        if pc < f.end {
            return &f.name;
        }
    }
    before
        .last()
        .filter(|s| !s.sized && pc < s.end)
        .map_or("?", |s| s.name.as_str())
}

/// Instructions per function, most first; addresses no symbol holds are
/// counted as `?`.
pub fn by_function(counts: &HashMap<u64, u64>, symbols: &[Symbol]) -> Vec<(String, u64)> {
    let mut per: HashMap<&str, u64> = HashMap::new();
    for (&pc, &n) in counts {
        *per.entry(holder(pc, symbols)).or_insert(0) += n;
    }
    let mut out: Vec<(String, u64)> = per.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
    out.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    out
}

/// `cargo xtask profile`: prints the `top` functions of `log`, divided by
/// `per`.
pub fn run(log: &Path, elfs: &[impl AsRef<Path>], per: f64, top: usize) -> Result<(), String> {
    let mut syms = Vec::new();
    for elf in elfs {
        let bytes = std::fs::read(elf).map_err(|e| format!("{}: {e}", elf.as_ref().display()))?;
        syms.extend(symbols(&bytes).map_err(|e| format!("{}: {e}", elf.as_ref().display()))?);
    }
    if !(per.is_finite() && per > 0.0) {
        return Err(format!(
            "per={per}: the operations in the log, a number above 0"
        ));
    }
    syms.sort_by_key(|s| (s.start, !s.sized));
    let file = std::fs::File::open(log).map_err(|e| format!("{}: {e}", log.display()))?;
    let counts = count(std::io::BufReader::new(file))?;
    let rows = by_function(&counts, &syms);
    let total: u64 = rows.iter().map(|r| r.1).sum();
    if total == 0 {
        return Err(format!(
            "{}: no `Trace` lines (run with qemu=\"-singlestep -d exec -D <log>\")",
            log.display()
        ));
    }
    println!(
        "{total} instructions logged; {:.1} per operation (--per {per})",
        total as f64 / per
    );
    for (name, n) in rows.iter().take(top) {
        println!(
            "{:>12.1}  {:>5.1}%  {name}",
            *n as f64 / per,
            100.0 * *n as f64 / total as f64
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sym(start: u64, end: u64, name: &str) -> Symbol {
        Symbol {
            start,
            end,
            name: name.into(),
            sized: true,
        }
    }

    fn label(start: u64, end: u64, name: &str) -> Symbol {
        Symbol {
            sized: false,
            ..sym(start, end, name)
        }
    }

    #[test]
    fn a_trace_line_gives_its_guest_address() {
        let line = "Trace 3: 0x7f7f74302600 [0000000000000000/0000000000406959/00c0c2b3/ff020201] ";
        assert_eq!(trace_pc(line), Some(0x406959));
        let kernel =
            "Trace 0: 0x7f [0000000000000000/ffffffff80132d60/00c0c290/ff020200] _ZN6kernel";
        assert_eq!(trace_pc(kernel), Some(0xffff_ffff_8013_2d60));
        assert_eq!(trace_pc("IN: \n"), None);
        assert_eq!(trace_pc("Trace 0: garbage"), None);
    }

    #[test]
    fn instructions_go_to_the_function_that_holds_them() {
        let log = "Trace 0: 0x1 [0/0000000000001000/0/0] \n\
                   Trace 1: 0x1 [0/0000000000001004/0/0] \n\
                   IN: something else\n\
                   Trace 0: 0x1 [0/0000000000001010/0/0] \n\
                   Trace 0: 0x1 [0/0000000000002000/0/0] \n\
                   Trace 0: 0x1 [0/0000000000000500/0/0] \n";
        let counts = count(log.as_bytes()).unwrap();
        let syms = [sym(0x1000, 0x1010, "a"), sym(0x1010, 0x1100, "b")];
        assert_eq!(
            by_function(&counts, &syms),
            [("?".to_string(), 2), ("a".into(), 2), ("b".into(), 1)]
        );
    }

    #[test]
    fn a_block_stopped_before_it_ran_is_not_counted() {
        let log = "Trace 0: 0x1 [0/0000000000001000/0/0] \n\
                   Trace 0: 0x1 [0/0000000000001004/0/0] \n\
                   Stopped execution of TB chain before 0x7f8798976d80 [0000000000001004] \n\
                   Stopped execution of TB chain before 0x7f8798976d80 [0000000000009999] \n";
        let counts = count(log.as_bytes()).unwrap();
        assert_eq!(counts.get(&0x1000), Some(&1));
        assert_eq!(counts.get(&0x1004), Some(&0));
        assert_eq!(counts.get(&0x9999), None);
    }

    #[test]
    fn a_line_that_is_not_text_is_skipped_not_fatal() {
        let mut log = b"Trace 0: 0x1 [0/0000000000001000/0/0] \n".to_vec();
        log.extend_from_slice(b"\xff\xfe garbage\n");
        log.extend_from_slice(b"Trace 0: 0x1 [0/0000000000001000/0/0] \n");
        assert_eq!(count(log.as_slice()).unwrap().get(&0x1000), Some(&2));
    }

    #[test]
    fn a_label_inside_a_function_does_not_take_its_rest() {
        // `f` 0x100..0x200 with a label at 0x140 (reaching the next symbol);
        // `lone`, a label outside any function, holds what follows it.
        let syms = [
            sym(0x100, 0x200, "f"),
            label(0x140, 0x300, "inner"),
            label(0x300, 0x400, "lone"),
        ];
        let counts: HashMap<u64, u64> = [(0x150, 1), (0x1ff, 1), (0x250, 1), (0x310, 1), (0x50, 1)]
            .into_iter()
            .collect();
        assert_eq!(
            by_function(&counts, &syms),
            [
                ("f".to_string(), 2),
                ("?".into(), 1),
                ("inner".into(), 1),
                ("lone".into(), 1)
            ]
        );
    }

    #[test]
    fn this_programs_own_symbols_are_read_and_demangled() {
        let exe = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        let syms = symbols(&exe).unwrap();
        assert!(syms
            .windows(2)
            .all(|w| w[0].start < w[1].start && w[0].end > w[0].start));
        assert!(
            syms.iter().any(|s| s.name.contains("profile::tests")),
            "demangled names"
        );
        assert!(
            syms.iter().all(|s| !s.name.starts_with("_ZN")),
            "no mangled names"
        );
    }
}
