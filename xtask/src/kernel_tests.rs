//! The names `test=` accepts, read from the kernel's own sources (compiled
//! in, so cargo rebuilds the runner when they change): the platform tests
//! dispatched in `kernel/src/tests.rs` and the experiments with
//! environments listed in `kernel/src/envtests.rs`. The kernel is the one
//! place they are declared; the runner checks `test=` against them before
//! it builds or boots anything, and names them all when one is unknown.

const PLATFORM_TESTS: &str = include_str!("../../kernel/src/tests.rs");
const ENV_EXPERIMENTS: &str = include_str!("../../kernel/src/envtests.rs");

/// `text` with every whitespace character removed (rustfmt may break a
/// call over lines; the patterns below do not depend on how).
fn squeezed(text: &str) -> String {
    text.chars().filter(|c| !c.is_whitespace()).collect()
}

/// Every string literal that directly follows `prefix` in `text`.
fn literals_after<'a>(text: &'a str, prefix: &str) -> Vec<&'a str> {
    text.match_indices(prefix)
        .filter_map(|(i, _)| {
            let rest = &text[i + prefix.len()..];
            rest.find('"').map(|end| &rest[..end])
        })
        .collect()
}

/// The match arms `"name" =>` of `tests.rs`'s `pub fn run`, up to its
/// catch-all arm.
fn platform_tests(source: &str) -> Vec<String> {
    let s = squeezed(source);
    let Some(start) = s.find("pubfnrun(name:&str)") else {
        return Vec::new();
    };
    let body = &s[start..];
    let body = &body[..body.find("_=>").unwrap_or(body.len())];
    body.match_indices("=>")
        .filter_map(|(i, _)| {
            let head = body[..i].strip_suffix('"')?;
            let open = head.rfind('"')?;
            Some(head[open + 1..].to_string())
        })
        .collect()
}

/// The experiments' names in `envtests.rs`'s `EXPERIMENTS` table: the
/// first argument of each `plain(…)` and the `name` of each
/// `Experiment { … }`.
fn env_experiments(source: &str) -> Vec<String> {
    let s = squeezed(source);
    let Some(start) = s.find("staticEXPERIMENTS") else {
        return Vec::new();
    };
    let table = &s[start..];
    let table = &table[..table.find("];").unwrap_or(table.len())];
    let mut names: Vec<(usize, &str)> = Vec::new();
    for prefix in ["plain(\"", "Experiment{name:\""] {
        let found = literals_after(table, prefix);
        let at = table.match_indices(prefix).map(|(i, _)| i);
        names.extend(at.zip(found));
    }
    names.sort_by_key(|(i, _)| *i);
    names.into_iter().map(|(_, n)| n.to_string()).collect()
}

/// Every name `test=` accepts: the platform tests, then the experiments,
/// in the kernel's order.
pub fn names() -> Vec<String> {
    let mut all = platform_tests(PLATFORM_TESTS);
    all.extend(env_experiments(ENV_EXPERIMENTS));
    all
}

/// `Ok` when the kernel has a test `name`; otherwise the error a user sees,
/// naming every test.
pub fn check(name: &str) -> Result<(), String> {
    let all = names();
    if all.iter().any(|n| n == name) {
        Ok(())
    } else {
        Err(format!(
            "no kernel test named `{name}`; the kernel has {}: {}",
            all.len(),
            all.join(", ")
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_platform_test_and_experiment_is_found_once() {
        let all = names();
        for want in [
            "boot",
            "timer",
            "ipi",
            "fault",
            "panic",
            "revocation",
            "abort",
            "grow",
            "fuzz",
            "threads",
            "bench",
            "tbench",
            "overhead",
            "unowned",
            "offender",
            "sched_env",
            "swap",
        ] {
            assert_eq!(
                all.iter().filter(|n| *n == want).count(),
                1,
                "{want} in {all:?}"
            );
        }
        // The environments' own names inside the table are not tests.
        for not in ["client_a", "background", "spin"] {
            assert!(!all.iter().any(|n| n == not), "{not} in {all:?}");
        }
        assert!(all.len() >= 30, "{} tests: {all:?}", all.len());
    }

    #[test]
    fn the_catalogue_agrees_with_every_kernel_dispatch_site() {
        // Each experiment in the table is one `plain(` or `Experiment {`;
        // each platform test one arm before the catch-all. Counting them
        // independently catches a form the parser would miss.
        let s = squeezed(ENV_EXPERIMENTS);
        let table = &s[s.find("staticEXPERIMENTS").unwrap()..];
        let table = &table[..table.find("];").unwrap()];
        let entries = table.matches("plain(").count() + table.matches("Experiment{").count();
        assert_eq!(env_experiments(ENV_EXPERIMENTS).len(), entries);
        let p = squeezed(PLATFORM_TESTS);
        let run = &p[p.find("pubfnrun(name:&str)").unwrap()..];
        let arms = run[..run.find("_=>").unwrap()].matches("=>").count();
        assert_eq!(platform_tests(PLATFORM_TESTS).len(), arms);
    }

    #[test]
    fn a_new_arm_or_experiment_in_either_layout_is_picked_up() {
        let src = "pub fn run(name: &str) -> ExitCode {\n let ok = match name {\n \"a\" => a(),\n \"b\" =>\n b(),\n _ => {} } }";
        assert_eq!(platform_tests(src), ["a", "b"]);
        let src = "static EXPERIMENTS: &[Experiment] = &[\n plain(\"x\", &[], f),\n Experiment {\n name: \"y\",\n envs: &[EnvSpec { name: \"inner\" }],\n },\n plain(\n \"z\",\n &[], g),\n];";
        assert_eq!(env_experiments(src), ["x", "y", "z"]);
    }

    #[test]
    fn an_unknown_test_is_refused_with_every_name() {
        assert!(check("boot").is_ok());
        assert!(check("sched_env").is_ok());
        let e = check("nonesuch").unwrap_err();
        for n in names() {
            assert!(e.contains(&n), "{n} missing from {e}");
        }
    }
}
