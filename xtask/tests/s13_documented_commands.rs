//! Every `just …` / `./just …` command line in README.md and docs/*.md,
//! run literally through the real `just` (from the workspace root, with
//! `sh`, as a user would type it): each one checked with `dry_run=1`, the
//! cheap ones also run for real with a short run length appended. The docs
//! and the recipes cannot drift apart without this failing.
//!
//! What counts as a command line: a line of a fenced code block that starts
//! with `just ` or `./just ` (its `# comment` cut off), and an inline code
//! span that does (in prose or a table cell; `\|` is a table's escaped
//! `|`). An inline span that is only `just <recipe>` names the recipe in a
//! sentence ("runs in `just test`"): it is checked to exist, since the
//! recipe table gives each recipe's full syntax, which is run.
//!
//! Templates — a span with `<placeholder>`, `[optional]` words or `a|b`
//! alternatives (the recipe table's syntax lines) — are expanded into
//! concrete command lines: the shortest (no optional word), the longest
//! (every optional word) and one per alternative, each placeholder given a
//! valid example from [`PLACEHOLDERS`] (an unknown placeholder fails the
//! test: add it there). A lone `…` stands for "other options" and is
//! dropped.
//!
//! Recipes without parameters (`test`, `lint`, …) are checked with just's
//! own `--dry-run`; the others with the runner's `dry_run=1`, whose output
//! must start with its header (proof that nothing was built or booted).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::Instant;

/// A placeholder's example value. `{RUN}` is the name of a scenario run this
/// test made for real (for `plot`).
const PLACEHOLDERS: &[(&str, &str)] = &[
    ("N", "2"),
    ("file", "scenarios/lottery-2to1.toml"),
    ("script", "scenarios/console-demo.txt"),
    ("s", "60"),
    ("ms", "1500"),
    ("name", "sched_env"),
    ("run name", "docs-example"),
    ("MiB", "512"),
    ("words", "slice_us=5000"),
    ("QEMU args", "-M q35 -cpu qemu64"),
    ("dir or name", "{RUN}"),
    ("scenario", "scenarios/lottery-2to1.toml"),
    ("key", "app.0.thread.0.tickets"),
    ("v1,v2,…", "100,200"),
    ("seed", "7"),
    // A window inside the 1.5 s runs this test makes.
    ("from s", "0.5"),
    ("to s", "0.6"),
];

/// Recipes run for real (literal lines and each template's shortest form),
/// with what keeps them short: QEMU runs of a few seconds.
const REAL: &[(&str, &str)] = &[
    ("default", ""),
    ("build", ""),
    ("run-smp", "run_ms=1500"),
    ("plot", ""),
    ("sweep", "run_ms=1500"),
];
// Not run for real here: `experiments` and `bench` (minutes), `test*` and
// `lint` (this suite is part of them), and `fuzz` and `soak`, whose real
// runs are s09's/s12's and s11's. Both end in share or liveness checks
// that a run of a few seconds cannot pass reliably: `fuzz seconds=2`
// failed `well_behaved_keeps_share` once when it ran plain TCG (spin at
// 0.478 of its 0.5 beside other QEMUs; it is deterministic now, and a
// short run still ends with overruns not yet charged back), a 12 s soak reported an
// application's main thread that stopped sampling; a 3 s soak leaves late
// joiners unserved. Those are findings for their suites, not drift between
// the docs and the recipes, which the dry runs check.

/// Recipes whose real runs use TCG when the line picks no accelerator:
/// where /dev/kvm is PVM (this machine kind) every guest kernel entry costs
/// milliseconds, and a 1.5 s run takes 30 s of wall time.
const TCG_WHEN_UNSAID: &[&str] = &["run-smp", "sweep"];

const DRY_RUN_HEADER: &str = xtask::plan::HEADER;

fn root() -> PathBuf {
    xtask::build::workspace_root()
}

/// A command line found in the docs.
#[derive(Debug, Clone, PartialEq)]
struct Found {
    /// `README.md:41`.
    at: String,
    text: String,
    /// From a code block (always a command) or inline.
    block: bool,
}

/// Strips a trailing shell comment (a `#` after whitespace, outside quotes).
fn strip_comment(line: &str) -> &str {
    let mut quote = None;
    let mut prev_space = true;
    for (i, c) in line.char_indices() {
        match (quote, c) {
            (None, '"' | '\'') => quote = Some(c),
            (Some(q), c) if c == q => quote = None,
            (None, '#') if prev_space => return line[..i].trim_end(),
            _ => {}
        }
        prev_space = c.is_whitespace();
    }
    line.trim_end()
}

fn is_command(text: &str) -> bool {
    text == "just" || text == "./just" || text.starts_with("just ") || text.starts_with("./just ")
}

/// Every command line of one markdown file.
fn extract(file: &str, md: &str) -> Vec<Found> {
    let mut out = Vec::new();
    let mut fence: Option<&str> = None;
    for (n, line) in md.lines().enumerate() {
        let at = format!("{file}:{}", n + 1);
        let trimmed = line.trim_start();
        if let Some(f) = fence {
            if trimmed.starts_with(f) {
                fence = None;
            } else {
                let cmd = strip_comment(trimmed);
                if is_command(cmd) {
                    out.push(Found {
                        at,
                        text: cmd.to_string(),
                        block: true,
                    });
                }
            }
            continue;
        }
        if trimmed.starts_with("```") {
            fence = Some("```");
            continue;
        }
        if trimmed.starts_with("~~~") {
            fence = Some("~~~");
            continue;
        }
        // Inline code spans: text between single backticks.
        let mut rest = line;
        while let Some(open) = rest.find('`') {
            let after = &rest[open + 1..];
            let Some(close) = after.find('`') else { break };
            let span = after[..close].replace("\\|", "|");
            let span = span.trim();
            if is_command(span) {
                out.push(Found {
                    at: at.clone(),
                    text: span.to_string(),
                    block: false,
                });
            }
            rest = &after[close + 1..];
        }
    }
    out
}

/// Splits a template into words: whitespace separates them except inside
/// quotes, `[…]` and `<…>`.
fn template_words(text: &str) -> Vec<String> {
    let (mut words, mut cur) = (Vec::new(), String::new());
    let (mut depth, mut quote) = (0i32, false);
    for c in text.chars() {
        match c {
            '"' => quote = !quote,
            '[' | '<' if !quote => depth += 1,
            ']' | '>' if !quote => depth -= 1,
            c if c.is_whitespace() && depth == 0 && !quote => {
                if !cur.is_empty() {
                    words.push(std::mem::take(&mut cur));
                }
                continue;
            }
            _ => {}
        }
        cur.push(c);
    }
    if !cur.is_empty() {
        words.push(cur);
    }
    words
}

/// Splits on `|` outside `<…>` and quotes.
fn alternatives(spec: &str) -> Vec<&str> {
    let (mut out, mut start, mut depth, mut quote) = (Vec::new(), 0, 0i32, false);
    for (i, c) in spec.char_indices() {
        match c {
            '"' => quote = !quote,
            '<' if !quote => depth += 1,
            '>' if !quote => depth -= 1,
            '|' if depth == 0 && !quote => {
                out.push(&spec[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&spec[start..]);
    out
}

/// The concrete values a value spec stands for.
fn values(spec: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    for alt in alternatives(spec) {
        let (q, inner) = match alt.strip_prefix('"').and_then(|a| a.strip_suffix('"')) {
            Some(inner) => ("\"", inner),
            None => ("", alt),
        };
        match inner.strip_prefix('<').and_then(|a| a.strip_suffix('>')) {
            // `<stride|lottery|rr>`: literal choices.
            Some(choices) if choices.contains('|') => {
                out.extend(choices.split('|').map(|c| format!("{q}{c}{q}")));
            }
            // `<policy>`: every registered policy (the docs name none, so
            // that adding one touches no document).
            Some("policy") => {
                out.extend(sched_registry::names().map(|c| format!("{q}{c}{q}")));
            }
            Some(ph) => {
                let v = PLACEHOLDERS
                    .iter()
                    .find(|(name, _)| *name == ph)
                    .ok_or_else(|| {
                        format!("no example value for placeholder <{ph}>: add it to PLACEHOLDERS")
                    })?
                    .1;
                out.push(format!("{q}{v}{q}"));
            }
            None if inner.contains('<') || inner.contains('…') => {
                return Err(format!("cannot read the value `{alt}`"));
            }
            None => out.push(alt.to_string()),
        }
    }
    Ok(out)
}

/// A template's concrete command lines; the first is the shortest.
fn expand(text: &str) -> Result<Vec<String>, String> {
    // (optional, alternatives)
    let mut words: Vec<(bool, Vec<String>)> = Vec::new();
    for w in template_words(text) {
        if w == "…" || w == "..." {
            continue;
        }
        let (optional, spec) = match w.strip_prefix('[').and_then(|w| w.strip_suffix(']')) {
            Some(inner) => (true, inner.to_string()),
            None => (false, w.clone()),
        };
        let alts = match spec.split_once('=') {
            Some((key, value)) if !key.contains('<') => values(value)?
                .into_iter()
                .map(|v| format!("{key}={v}"))
                .collect(),
            _ => values(&spec)?,
        };
        words.push((optional, alts));
    }
    let line = |pick: &dyn Fn(usize) -> Option<usize>| -> String {
        words
            .iter()
            .enumerate()
            .filter_map(|(i, (_, alts))| pick(i).map(|a| alts[a].clone()))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let shortest = |i: usize| (!words[i].0).then_some(0);
    let mut out = vec![line(&shortest), line(&|_| Some(0))];
    for (w, (_, alts)) in words.iter().enumerate() {
        for a in 1..alts.len() {
            out.push(line(&|i| if i == w { Some(a) } else { shortest(i) }));
        }
    }
    let mut seen = Vec::new();
    out.retain(|l| {
        let new = !seen.contains(l);
        seen.push(l.clone());
        new
    });
    Ok(out)
}

fn is_template(text: &str) -> bool {
    text.contains(['<', '[', '|', '…'])
}

/// Every command line in README.md and docs/*.md.
fn documented() -> Vec<Found> {
    let mut files = vec![root().join("README.md")];
    let mut docs: Vec<PathBuf> = std::fs::read_dir(root().join("docs"))
        .expect("docs/")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    docs.sort();
    files.extend(docs);
    files
        .iter()
        .flat_map(|f| {
            let name = f.strip_prefix(root()).unwrap().display().to_string();
            extract(&name, &std::fs::read_to_string(f).unwrap())
        })
        .collect()
}

/// The `just` binary a user would run: on PATH, or where the bootstrap
/// puts it.
fn path_with_just() -> String {
    let path = std::env::var("PATH").unwrap_or_default();
    let cargo_bin = std::env::var("CARGO_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cargo"))
        .join("bin");
    format!("{}:{path}", cargo_bin.display())
}

/// Runs `line` with `sh -c` in the workspace root, without the variables
/// the outer `cargo test` set (as `xtask::build` does for its inner cargo).
fn sh(line: &str) -> Output {
    let mut cmd = Command::new("sh");
    for (key, _) in std::env::vars() {
        if (key.starts_with("CARGO_") && key != "CARGO_HOME")
            || matches!(key.as_str(), "RUSTFLAGS" | "RUSTC_WRAPPER" | "RUSTC")
        {
            cmd.env_remove(key);
        }
    }
    cmd.env("PATH", path_with_just())
        .current_dir(root())
        .args(["-c", line])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("sh -c {line}: {e}"))
}

fn tail(bytes: &[u8]) -> String {
    let s = String::from_utf8_lossy(bytes);
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(15)..].join("\n")
}

/// Recipe name → whether it takes words (a variadic parameter).
fn recipes() -> BTreeMap<String, bool> {
    let out = sh("just --dump --dump-format json");
    assert!(out.status.success(), "just --dump: {}", tail(&out.stderr));
    let dump: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    dump["recipes"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(name, r)| {
            let variadic = r["parameters"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|p| p["kind"] != "singular");
            (name.clone(), variadic)
        })
        .collect()
}

/// The recipe a command line runs (`default` when it names none).
fn recipe_of(line: &str) -> String {
    line.split_whitespace()
        .skip(1)
        .find(|w| !w.starts_with('-') && !matches!(*w, "…" | "..."))
        .unwrap_or("default")
        .to_string()
}

/// `line` checked without running anything: `dry_run=1` for a recipe that
/// takes words; just's own `--dry-run` for one that takes none.
fn dry(line: &str, variadic: bool) -> Result<String, String> {
    let words: Vec<&str> = line.split_whitespace().collect();
    let recipe = recipe_of(line);
    let args = words.iter().skip_while(|w| **w != recipe).skip(1).count();
    if variadic {
        Ok(format!("{line} dry_run=1"))
    } else if args == 0 {
        Ok(format!("{} --dry-run {}", words[0], words[1..].join(" ")))
    } else {
        Err(format!(
            "`{recipe}` does not take its words as key=value (no `*args` parameter)"
        ))
    }
}

/// The scenario runs under results/runs/ whose names start with `prefix`,
/// newest first.
fn runs_named(prefix: &str) -> Vec<String> {
    let mut runs: Vec<(std::time::SystemTime, String)> =
        std::fs::read_dir(root().join("results/runs"))
            .into_iter()
            .flatten()
            .filter_map(|e| e.ok())
            .filter(|e| e.path().join("rundata.json").is_file())
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                let t = e.metadata().and_then(|m| m.modified()).ok()?;
                name.starts_with(prefix).then_some((t, name))
            })
            .collect();
    runs.sort();
    runs.into_iter().rev().map(|(_, n)| n).collect()
}

#[test]
fn every_documented_command_line_works_as_written() {
    let started = Instant::now();
    let found = documented();
    assert!(
        found
            .iter()
            .any(|f| f.block && f.text == "./just run-smp cpus=4"),
        "the README's first command was not found: {found:#?}"
    );
    let recipes = recipes();
    let mut failures = Vec::new();
    // (where, line, run for real)
    let mut lines: Vec<(String, String, bool)> = Vec::new();
    for f in &found {
        let recipe = recipe_of(&f.text);
        let Some(_) = recipes.get(&recipe) else {
            failures.push(format!(
                "{}: `{}`: there is no recipe `{recipe}`",
                f.at, f.text
            ));
            continue;
        };
        let bare_mention = !f.block && f.text.split_whitespace().count() <= 2;
        if bare_mention {
            continue;
        }
        if is_template(&f.text) {
            match expand(&f.text) {
                Ok(expanded) => {
                    for (i, l) in expanded.into_iter().enumerate() {
                        lines.push((format!("{} (from `{}`)", f.at, f.text), l, i == 0));
                    }
                }
                Err(e) => failures.push(format!("{}: `{}`: {e}", f.at, f.text)),
            }
        } else {
            lines.push((f.at.clone(), f.text.clone(), true));
        }
    }
    assert!(
        lines.len() >= 30,
        "only {} command lines: {lines:#?}",
        lines.len()
    );
    let mut checked = Vec::new();
    let mut real_done: Vec<String> = Vec::new();
    for (at, line, real) in &lines {
        let recipe = recipe_of(line);
        let variadic = recipes[&recipe];
        let cheap = REAL.iter().find(|(r, _)| *r == recipe);
        // The real run before the dry one, in document order, so that
        // `plot` has a run to draw.
        if let Some((_, extra)) = cheap.filter(|_| *real && !line.contains("{RUN}")) {
            let mut real_line = format!("{line} {extra}").trim_end().to_string();
            if !real_done.contains(&real_line) {
                real_done.push(real_line.clone());
                if recipe == "run-smp" {
                    // Named as the suites name theirs.
                    real_line.push_str(&format!(" name=test-docs-{}", real_done.len()));
                }
                if TCG_WHEN_UNSAID.contains(&recipe.as_str())
                    && !line.contains("accel=")
                    && !line.contains("det=")
                {
                    real_line.push_str(" accel=tcg");
                }
                let t = Instant::now();
                let out = sh(&real_line);
                eprintln!("{:>5.1} s  {real_line}", t.elapsed().as_secs_f64());
                if !out.status.success() {
                    failures.push(format!(
                        "{at}: `{real_line}` failed ({}):\n{}\n{}",
                        out.status,
                        tail(&out.stdout),
                        tail(&out.stderr)
                    ));
                }
            }
        }
        let line = match runs_named("test-docs-").first() {
            Some(run) => line.replace("{RUN}", run),
            None if line.contains("{RUN}") => {
                failures.push(format!(
                    "{at}: `{line}` needs a scenario run, and no documented run-smp line made one"
                ));
                continue;
            }
            None => line.clone(),
        };
        let dry_line = match dry(&line, variadic) {
            Ok(d) => d,
            Err(e) => {
                failures.push(format!("{at}: `{line}`: {e}"));
                continue;
            }
        };
        if checked.contains(&dry_line) {
            continue;
        }
        let t = Instant::now();
        let out = sh(&dry_line);
        eprintln!("{:>5.1} s  {dry_line}", t.elapsed().as_secs_f64());
        let stdout = String::from_utf8_lossy(&out.stdout);
        if !out.status.success() || (variadic && !stdout.starts_with(DRY_RUN_HEADER)) {
            failures.push(format!(
                "{at}: `{dry_line}` failed ({}):\n{}\n{}",
                out.status,
                tail(&out.stdout),
                tail(&out.stderr)
            ));
        }
        checked.push(dry_line);
    }
    eprintln!(
        "{} command lines from the docs: {} dry runs, {} real runs, {:.0} s",
        lines.len(),
        checked.len(),
        real_done.len(),
        started.elapsed().as_secs_f64()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// `sh -c line`, expected to fail; returns its stderr.
fn refused(line: &str) -> String {
    let out = sh(line);
    assert!(
        !out.status.success(),
        "`{line}` succeeded:\n{}",
        tail(&out.stdout)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// `sh -c line`, expected to succeed; returns its stdout.
fn works(line: &str) -> String {
    let out = sh(line);
    assert!(
        out.status.success(),
        "`{line}`: {}\n{}\n{}",
        out.status,
        tail(&out.stdout),
        tail(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn an_unknown_key_or_kernel_test_is_refused_naming_the_valid_ones() {
    let e = refused("just run-smp cpus=4 colour=red dry_run=1");
    for key in [
        "sched", "cpus", "scenario", "det", "accel", "qemu", "run_ms", "test", "name", "dry_run",
    ] {
        assert!(e.contains(key), "{key} not named in: {e}");
    }
    let e = refused("just fuzz minutes=3 dry_run=1");
    assert!(e.contains("seconds") && e.contains("cpus"), "{e}");
    let e = refused("just run-smp test=nonesuch dry_run=1");
    let names = xtask::kernel_tests::names();
    assert!(names.len() >= 30, "{names:?}");
    for n in &names {
        assert!(e.contains(n.as_str()), "test {n} not named in: {e}");
    }
    let e = refused("just run-smp scenario=scenarios/nonesuch.toml dry_run=1");
    assert!(e.contains("nonesuch.toml"), "{e}");
    let e = refused("just run-smp det=perhaps dry_run=1");
    assert!(e.contains("switch"), "{e}");
    refused("just sweep dry_run=1");
}

#[test]
fn old_positional_forms_keep_their_meaning() {
    let out = works("just run-smp lottery 2 dry_run=1");
    assert!(
        out.contains("sched=lottery") && out.contains("-smp 2"),
        "{out}"
    );
    let out = works(
        "just sweep scenarios/lottery-2to1.toml app.0.thread.0.tickets 100,300 jobs=1 dry_run=1",
    );
    assert!(out.contains("2 variant(s)"), "{out}");
    let out = works("just run-smp cpus=2 cpus=3 dry_run=1");
    assert!(out.contains("-smp 3"), "last value wins: {out}");
}

#[test]
fn a_value_with_spaces_reaches_qemu_as_its_words() {
    let out = works("just run-smp qemu=\"-M q35 -cpu qemu64\" name=mine dry_run=1");
    let qemu = out.lines().find(|l| l.starts_with("would run")).unwrap();
    assert!(qemu.ends_with("-M q35 -cpu qemu64"), "{qemu}");
    assert!(out.contains("results/runs/mine"), "{out}");
}

#[test]
fn just_list_gives_every_recipe_one_line_with_its_doc() {
    let list = works("just --list");
    let recipes = recipes();
    for line in list.lines().skip(1) {
        let t = line.trim_start();
        assert!(!t.starts_with('#'), "a doc line on its own: {line}\n{list}");
        assert!(t.contains(" # "), "a recipe without its doc: {line}");
    }
    for name in recipes.keys() {
        assert!(
            list.lines()
                .any(|l| l.trim_start().starts_with(&format!("{name} "))),
            "{name} missing:\n{list}"
        );
    }
}

#[test]
fn extraction_takes_command_lines_not_prose() {
    let md = "Run\n\n```sh\n./just run-smp cpus=4   # boots 4 cores\n    # and more\n./just test\n```\n\
              | `just plot [run=<dir>]` | x `y` |\n| `just bench [accel=auto\\|tcg]` / `just bench-smoke` |\n\
              The `just` tool; see `just sweep`, `cargo xtask run`, `just run-smp scenario=a.toml`.\n";
    let texts: Vec<(String, bool)> = extract("x.md", md)
        .into_iter()
        .map(|f| (f.text, f.block))
        .collect();
    let want = [
        ("./just run-smp cpus=4", true),
        ("./just test", true),
        ("just plot [run=<dir>]", false),
        ("just bench [accel=auto|tcg]", false),
        ("just bench-smoke", false),
        ("just", false),
        ("just sweep", false),
        ("just run-smp scenario=a.toml", false),
    ];
    let want: Vec<(String, bool)> = want.iter().map(|(t, b)| (t.to_string(), *b)).collect();
    assert_eq!(texts, want);
    assert_eq!(
        strip_comment("just a qemu=\"x # y\" # c"),
        "just a qemu=\"x # y\""
    );
}

#[test]
fn templates_expand_to_their_shortest_longest_and_every_alternative() {
    let got = expand("just run-smp [sched=<stride|lottery|rr>] [cpus=<N>] [scenario=<file>|none] [qemu=\"<QEMU args>\"]").unwrap();
    assert_eq!(got[0], "just run-smp");
    assert_eq!(
        got[1],
        "just run-smp sched=stride cpus=2 scenario=scenarios/lottery-2to1.toml qemu=\"-M q35 -cpu qemu64\""
    );
    for want in [
        "just run-smp sched=lottery",
        "just run-smp sched=rr",
        "just run-smp scenario=none",
    ] {
        assert!(got.iter().any(|l| l == want), "{want} not in {got:#?}");
    }
    let got = expand("just sweep <scenario> <key> <v1,v2,…> [jobs=2]").unwrap();
    assert_eq!(
        got[0],
        "just sweep scenarios/lottery-2to1.toml app.0.thread.0.tickets 100,200"
    );
    assert_eq!(
        expand("just run-smp … test=<name>").unwrap()[0],
        "just run-smp test=sched_env"
    );
    assert!(expand("just run-smp [x=<nonesuch>]").is_err());
}

#[test]
fn the_readme_first_command_reads_cpus_as_a_key_through_the_bootstrap() {
    // What the old justfile did with `cpus=4` (bound it to its first
    // positional parameter, `sched`) is what this suite exists to catch;
    // here the current recipes must read it as a key.
    let out = works("./just run-smp cpus=4 dry_run=1");
    assert!(out.starts_with(DRY_RUN_HEADER), "{out}");
    assert!(
        out.contains("-smp 4") && out.contains("sched=stride"),
        "{out}"
    );
}
