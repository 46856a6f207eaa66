//! `key=value` words, as the recipes take them (`just run-smp cpus=4
//! det=1`), translated into the options clap parses (`run --cpus=4
//! --det`). Everything it knows about a subcommand comes from clap's own
//! metadata: each argument's long name, whether it takes a value, whether
//! it is positional; the only extra fact is the order in which bare words
//! bind ([`crate::cli::positional_order`]).
//!
//! Rules: `_` and `-` in a key are alike; a switch takes 1/0, true/false,
//! yes/no or on/off; an empty value leaves the default; a repeated key's
//! last value wins; raw clap options (`--cpus 4`, `--det`) mean the same
//! as their `key=value` form; bare words fill, in the recipe's positional
//! order, the parameters that no key names; an unknown key is refused with
//! the list of valid ones.

use std::fmt;

use clap::Command;

/// Why a command line cannot be translated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyError {
    /// No such key for the subcommand; the valid ones follow.
    Unknown {
        subcommand: String,
        key: String,
        valid: Vec<String>,
    },
    /// A switch given a value that is not a truth value.
    NotASwitchValue { key: String, value: String },
    /// More bare words than the subcommand binds.
    TooManyBare {
        subcommand: String,
        word: String,
        order: Vec<String>,
    },
    /// A later positional given while an earlier one is missing.
    MissingBefore { missing: String, given: String },
    /// A raw option that takes a value came last, without one.
    NoValue { key: String },
}

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyError::Unknown {
                subcommand,
                key,
                valid,
            } => write!(
                f,
                "`{subcommand}` has no key `{key}`; its keys are: {}",
                valid.join(", ")
            ),
            KeyError::NotASwitchValue { key, value } => write!(
                f,
                "`{key}` is a switch: give it 1/0, true/false, yes/no or on/off, not `{value}`"
            ),
            KeyError::TooManyBare {
                subcommand,
                word,
                order,
            } => {
                if order.is_empty() {
                    write!(
                        f,
                        "`{subcommand}` takes only key=value words; `{word}` is not one"
                    )
                } else {
                    write!(
                        f,
                        "`{word}`: `{subcommand}` binds at most {} bare values ({}); give the rest as key=value",
                        order.len(),
                        order.join(", ")
                    )
                }
            }
            KeyError::MissingBefore { missing, given } => {
                write!(f, "`{given}` is given but `{missing}`, before it, is not")
            }
            KeyError::NoValue { key } => write!(f, "`--{key}` needs a value"),
        }
    }
}

/// One argument of a subcommand, as far as translation cares.
#[derive(Debug, Clone)]
struct Param {
    /// The long name (`run-ms`), or for a positional its id (`scenario`).
    name: String,
    /// Index among the positionals (clap's order).
    positional: Option<usize>,
    /// Takes a value (an option or positional), or is a switch.
    takes_value: bool,
}

/// `key` with `_` for `-`: the spelling keys are compared and shown in.
fn canonical(key: &str) -> String {
    key.replace('-', "_")
}

/// The subcommand's parameters (clap's help and version excluded).
fn params(sub: &Command) -> Vec<Param> {
    let mut positional = 0;
    sub.get_arguments()
        .filter(|a| !matches!(a.get_id().as_str(), "help" | "version"))
        .map(|a| {
            let pos = a.is_positional().then(|| {
                positional += 1;
                positional - 1
            });
            Param {
                name: a
                    .get_long()
                    .map_or_else(|| a.get_id().to_string(), str::to_string),
                positional: pos,
                takes_value: a.get_action().takes_values(),
            }
        })
        .collect()
}

/// A switch's truth value.
fn truth(key: &str, value: &str) -> Result<bool, KeyError> {
    match value.to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" => Ok(false),
        _ => Err(KeyError::NotASwitchValue {
            key: canonical(key),
            value: value.into(),
        }),
    }
}

/// Whether `word` reads as `key=value` (a key is a letter, then letters,
/// digits, `_` or `-`): `scenarios/a=b.toml` is a bare word.
fn split_key(word: &str) -> Option<(&str, &str)> {
    let (key, value) = word.split_once('=')?;
    let mut chars = key.chars();
    let first = chars.next()?;
    (first.is_ascii_alphabetic()
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-'))
    .then_some((key, value))
}

/// Translates the words after the subcommand's name into clap's options
/// for `sub` (`cmd`'s subcommand of that name or alias), returning the
/// whole argument list: `[subcommand, options..., "--", positionals...]`.
/// A subcommand `cmd` does not know is passed through untouched for clap to
/// report; asked for help, clap gets only that.
pub fn translate(
    cmd: &Command,
    subcommand: &str,
    words: &[String],
    positional_order: &[&str],
) -> Result<Vec<String>, KeyError> {
    let mut out = vec![subcommand.to_string()];
    let Some(sub) = cmd.find_subcommand(subcommand) else {
        out.extend(words.iter().cloned());
        return Ok(out);
    };
    if words.iter().any(|w| matches!(w.as_str(), "-h" | "--help")) {
        out.push("--help".into());
        return Ok(out);
    }
    let params = params(sub);
    let find = |key: &str| {
        params
            .iter()
            .position(|p| canonical(&p.name) == canonical(key))
    };
    let unknown = |key: &str| KeyError::Unknown {
        subcommand: subcommand.into(),
        key: key.into(),
        valid: {
            let mut v: Vec<String> = params.iter().map(|p| canonical(&p.name)).collect();
            v.sort();
            v
        },
    };
    // The value each parameter ends with (None: left to its default).
    let mut values: Vec<Option<String>> = vec![None; params.len()];
    let mut set = |i: usize, value: &str| -> Result<(), KeyError> {
        let p = &params[i];
        values[i] = if value.is_empty() {
            None
        } else if p.takes_value {
            Some(value.into())
        } else {
            truth(&p.name, value)?.then(|| "true".into())
        };
        Ok(())
    };
    // First what each word is; then bare words fill, in the recipe's
    // order, the parameters no key names (so mixing both is never
    // ambiguous); then values apply in the order given (last wins).
    enum Word<'w> {
        Named(usize, String),
        Bare(&'w String),
    }
    let mut parsed = Vec::new();
    let mut rest_bare = false;
    let mut it = words.iter();
    while let Some(word) = it.next() {
        if !rest_bare && word == "--" {
            rest_bare = true;
        } else if let Some(long) = word.strip_prefix("--").filter(|_| !rest_bare) {
            // A raw clap option: the same parameter as its key=value form.
            let (key, inline) = match long.split_once('=') {
                Some((k, v)) => (k, Some(v.to_string())),
                None => (long, None),
            };
            let i = find(key).ok_or_else(|| unknown(key))?;
            let value = match inline {
                Some(v) => v,
                None if params[i].takes_value => it
                    .next()
                    .cloned()
                    .ok_or_else(|| KeyError::NoValue { key: key.into() })?,
                None => "1".into(),
            };
            parsed.push(Word::Named(i, value));
        } else if let Some((key, value)) = split_key(word).filter(|_| !rest_bare) {
            parsed.push(Word::Named(
                find(key).ok_or_else(|| unknown(key))?,
                value.into(),
            ));
        } else {
            parsed.push(Word::Bare(word));
        }
    }
    let named: Vec<usize> = parsed
        .iter()
        .filter_map(|w| match w {
            Word::Named(i, _) => Some(*i),
            Word::Bare(_) => None,
        })
        .collect();
    let mut free = Vec::new();
    for name in positional_order {
        let i = find(name).ok_or_else(|| unknown(name))?;
        if !named.contains(&i) {
            free.push(i);
        }
    }
    let mut free = free.into_iter();
    for word in parsed {
        match word {
            Word::Named(i, value) => set(i, &value)?,
            Word::Bare(word) => {
                let i = free.next().ok_or_else(|| KeyError::TooManyBare {
                    subcommand: subcommand.into(),
                    word: word.clone(),
                    order: positional_order.iter().map(|s| canonical(s)).collect(),
                })?;
                set(i, word)?;
            }
        }
    }
    let mut positionals: Vec<(usize, &Param, &String)> = Vec::new();
    for (p, v) in params.iter().zip(&values) {
        match (p.positional, v) {
            (Some(index), Some(v)) => positionals.push((index, p, v)),
            (None, Some(v)) if p.takes_value => out.push(format!("--{}={v}", p.name)),
            (None, Some(_)) => out.push(format!("--{}", p.name)),
            (_, None) => {}
        }
    }
    positionals.sort_by_key(|(index, _, _)| *index);
    for (n, (index, p, _)) in positionals.iter().enumerate() {
        if *index != n {
            let missing = params
                .iter()
                .find(|q| q.positional == Some(n))
                .map_or_else(String::new, |q| canonical(&q.name));
            return Err(KeyError::MissingBefore {
                missing,
                given: canonical(&p.name),
            });
        }
    }
    if !positionals.is_empty() {
        out.push("--".into());
        out.extend(positionals.into_iter().map(|(_, _, v)| v.clone()));
    }
    Ok(out)
}

/// Every valid key of `subcommand`, in the spelling the recipes use.
pub fn keys(cmd: &Command, subcommand: &str) -> Vec<String> {
    cmd.find_subcommand(subcommand)
        .map(|sub| params(sub).iter().map(|p| canonical(&p.name)).collect())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{positional_order, Cli, Cmd};
    use clap::{CommandFactory, Parser};

    fn words(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    fn tr(sub: &str, args: &[String]) -> Result<Vec<String>, KeyError> {
        translate(&Cli::command(), sub, args, positional_order(sub))
    }

    /// Translates and parses `sub args` as `cargo xtask` would.
    fn parse(sub: &str, args: &[String]) -> Cmd {
        let argv = tr(sub, args).unwrap_or_else(|e| panic!("{sub} {args:?}: {e}"));
        Cli::try_parse_from(std::iter::once("xtask".to_string()).chain(argv))
            .unwrap_or_else(|e| panic!("{sub} {args:?}: {e}"))
            .command
    }

    fn run(args: &str) -> crate::cli::RunArgs {
        match parse("run-smp", &words(args)) {
            Cmd::Run(r) => r,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_readme_first_command_sets_cpus() {
        let r = run("cpus=4");
        assert_eq!(r.cpus, Some(4));
        assert_eq!(r.sched, None);
    }

    #[test]
    fn keys_bind_in_any_order_and_dash_and_underscore_are_alike() {
        let a = tr("run-smp", &words("sched=lottery cpus=2 run_ms=1500 det=1")).unwrap();
        let b = tr(
            "run-smp",
            &words("det=yes run-ms=1500 cpus=2 sched=lottery"),
        )
        .unwrap();
        assert_eq!(a, b);
        let r = run("det=1 run_ms=1500 sched=lottery cpus=2");
        assert_eq!(
            (r.sched.as_deref(), r.cpus, r.run_ms, r.det),
            (Some("lottery"), Some(2), Some(1500), true)
        );
    }

    #[test]
    fn switches_take_truth_values_and_refuse_others() {
        for (v, want) in [
            ("1", true),
            ("true", true),
            ("YES", true),
            ("on", true),
            ("0", false),
            ("false", false),
            ("no", false),
            ("off", false),
        ] {
            assert_eq!(run(&format!("det={v}")).det, want, "det={v}");
        }
        let e = tr("run-smp", &words("det=maybe")).unwrap_err();
        assert!(e.to_string().contains("`det` is a switch"), "{e}");
    }

    #[test]
    fn an_unknown_key_is_refused_naming_every_valid_key() {
        let e = tr("run-smp", &words("cpus=4 colour=red")).unwrap_err();
        let text = e.to_string();
        for key in keys(&Cli::command(), "run-smp") {
            assert!(text.contains(&key), "{key} missing from: {text}");
        }
        assert!(text.contains("no key `colour`"), "{text}");
        for must in [
            "sched", "cpus", "scenario", "det", "run_ms", "name", "dry_run",
        ] {
            assert!(text.contains(must), "{must}: {text}");
        }
        // A raw option is checked the same way.
        assert!(matches!(
            tr("run-smp", &words("--colour red")),
            Err(KeyError::Unknown { .. })
        ));
    }

    #[test]
    fn a_repeated_key_keeps_its_last_value_whatever_the_form() {
        assert_eq!(run("cpus=2 cpus=8").cpus, Some(8));
        assert_eq!(run("cpus=2 --cpus 3").cpus, Some(3));
        assert_eq!(run("--cpus=3 cpus=5").cpus, Some(5));
        assert!(!run("det=1 det=0").det);
        assert!(!run("--det det=off").det);
        // An empty value leaves the default.
        assert_eq!(run("sched=rr sched=").sched, None);
    }

    #[test]
    fn values_with_spaces_and_leading_dashes_survive_as_one_value() {
        let args = vec!["qemu=-M q35 -cpu qemu64".to_string(), "cpus=2".into()];
        match parse("run-smp", &args) {
            Cmd::Run(r) => {
                assert_eq!(r.qemu, "-M q35 -cpu qemu64");
                assert_eq!(r.cpus, Some(2));
            }
            other => panic!("{other:?}"),
        }
        let args = vec!["cmdline=slice_us=500 grace_us=50".to_string()];
        match parse("run", &args) {
            Cmd::Run(r) => assert_eq!(r.cmdline, "slice_us=500 grace_us=50"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn bare_words_bind_in_the_old_parameter_order() {
        let r = run("lottery 4");
        assert_eq!((r.sched.as_deref(), r.cpus), (Some("lottery"), Some(4)));
        let r = run("rr 2 tcg q35");
        assert_eq!(r.accel, crate::Accel::Tcg);
        assert_eq!(r.machine, "q35");
        // Mixed with keys: bare words fill the parameters no key names.
        let r = run("lottery det=1 4 accel=tcg");
        assert_eq!(
            (r.sched.as_deref(), r.cpus, r.det),
            (Some("lottery"), Some(4), true)
        );
        let r = run("4 sched=rr");
        assert_eq!((r.sched.as_deref(), r.cpus), (Some("rr"), Some(4)));
        let e = tr("fuzz", &words("10 2 3")).unwrap_err();
        assert!(e.to_string().contains("seconds, cpus"), "{e}");
        let e = tr("build", &words("fast")).unwrap_err();
        assert!(e.to_string().contains("only key=value"), "{e}");
    }

    #[test]
    fn sweep_takes_its_positionals_bare_named_or_mixed() {
        let want = ("scenarios/a.toml", "app.0.thread.0.tickets", "100,200", 3);
        for line in [
            "scenarios/a.toml app.0.thread.0.tickets 100,200 jobs=3",
            "scenarios/a.toml app.0.thread.0.tickets 100,200 3",
            "values=100,200 key=app.0.thread.0.tickets scenario=scenarios/a.toml jobs=3",
            "key=app.0.thread.0.tickets scenarios/a.toml 100,200 --jobs 3",
        ] {
            match parse("sweep", &words(line)) {
                Cmd::Sweep {
                    scenario,
                    key,
                    values,
                    jobs,
                    ..
                } => assert_eq!(
                    (
                        scenario.to_str().unwrap(),
                        key.as_str(),
                        values.as_str(),
                        jobs
                    ),
                    want,
                    "{line}"
                ),
                other => panic!("{other:?}"),
            }
        }
        let e = tr("sweep", &words("scenario=a.toml values=1,2")).unwrap_err();
        assert_eq!(
            e,
            KeyError::MissingBefore {
                missing: "key".into(),
                given: "values".into()
            }
        );
    }

    #[test]
    fn plot_takes_its_run_bare_or_named() {
        for line in ["my-run", "run=my-run"] {
            match parse("plot", &words(line)) {
                Cmd::Plot { run, .. } => assert_eq!(run.unwrap().to_str(), Some("my-run")),
                other => panic!("{other:?}"),
            }
        }
        assert!(matches!(parse("plot", &[]), Cmd::Plot { run: None, .. }));
    }

    #[test]
    fn a_bare_word_with_an_equals_sign_in_a_path_stays_bare() {
        assert_eq!(split_key("results/runs/a=b"), None);
        assert_eq!(split_key("run_ms=5"), Some(("run_ms", "5")));
        assert_eq!(split_key("=5"), None);
    }

    #[test]
    fn the_raw_forms_the_readme_shows_for_cargo_xtask_still_parse() {
        let r = run("--det --cpus 1 --test bench --run-ms 8000");
        assert!(r.det);
        assert_eq!(
            (r.cpus, r.test.as_deref(), r.run_ms),
            (Some(1), Some("bench"), Some(8000))
        );
        let argv = vec!["--cmdline".to_string(), "slice_us=500".into()];
        match parse("run", &argv) {
            Cmd::Run(r) => assert_eq!(r.cmdline, "slice_us=500"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn every_recipe_subcommand_takes_dry_run_and_its_positional_order_names_real_keys() {
        let cmd = Cli::command();
        for sub in cmd.get_subcommands() {
            let name = sub.get_name();
            let keys = keys(&cmd, name);
            assert!(keys.contains(&"dry_run".to_string()), "{name}: {keys:?}");
            for k in positional_order(name) {
                assert!(
                    keys.contains(&canonical(k)),
                    "{name}: `{k}` not in {keys:?}"
                );
            }
        }
        assert!(matches!(
            parse("bench-smoke", &words("dry_run=1")),
            Cmd::BenchSmoke { dry_run: true, .. }
        ));
    }

    #[test]
    fn help_and_unknown_subcommands_pass_through_to_clap() {
        assert_eq!(
            tr("run-smp", &words("cpus=4 --help")).unwrap(),
            words("run-smp --help")
        );
        assert_eq!(
            tr("nonesuch", &words("a=b")).unwrap(),
            words("nonesuch a=b")
        );
    }
}
