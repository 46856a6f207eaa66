//! Instructions per operation, the platform's beside Linux's, both from
//! deterministic runs in the same emulator: the side-by-side table and
//! the `instructions` object of `results/bench/<commit>-<mode>.json`.

use std::fmt::Write as _;

use serde_json::{json, Map, Value};

use super::linux::LinuxFigures;

/// One row: what is compared, the platform's figure's name, Linux's.
pub struct Pair {
    pub platform_op: &'static str,
    pub platform_name: Option<&'static str>,
    pub linux_op: &'static str,
    pub linux_name: Option<&'static str>,
}

/// The rows of the side-by-side table, in the pairing.
pub const PAIRS: &[Pair] = &[
    Pair {
        platform_op: "null system call",
        platform_name: Some("null_syscall"),
        linux_op: "getpid",
        linux_name: Some("getpid"),
    },
    Pair {
        platform_op: "`syscall` + `sysret` alone (the floor, no Rust)",
        platform_name: Some("syscall_floor"),
        linux_op: "—",
        linux_name: None,
    },
    Pair {
        platform_op: "#BP → exception upcall to the libOS → resume",
        platform_name: Some("exception_upcall"),
        linux_op: "`int3` → SIGTRAP handler → sigreturn",
        linux_name: Some("sigtrap_roundtrip"),
    },
    Pair {
        platform_op: "directed-yield ping-pong, two environments, one core (round trip)",
        platform_name: Some("yield_pingpong"),
        linux_op: "pipe ping-pong, two processes pinned to one CPU (round trip)",
        linux_name: Some("pipe_pingpong"),
    },
    Pair {
        platform_op: "directed-yield ping-pong (as above)",
        platform_name: Some("yield_pingpong"),
        linux_op: "futex ping-pong, two threads of a process (round trip)",
        linux_name: Some("futex_pingpong"),
    },
    Pair {
        platform_op: "libOS thread switch, the policy's decision included",
        platform_name: Some("thread_switch"),
        linux_op: "glibc `swapcontext` pair (there and back: two calls, two system calls)",
        linux_name: Some("swapcontext_pair"),
    },
    Pair {
        platform_op: "—",
        platform_name: None,
        linux_op: "`sched_yield`, nothing else runnable",
        linux_name: Some("sched_yield"),
    },
];

fn lookup(figures: &[(String, f64)], name: Option<&str>) -> Option<f64> {
    let name = name?;
    figures.iter().find(|(n, _)| n == name).map(|(_, x)| *x)
}

/// Linux's instructions over the platform's (how many times fewer the
/// platform executes), when both are there.
pub fn ratio(platform: Option<f64>, linux: Option<f64>) -> Option<f64> {
    match (platform, linux) {
        (Some(p), Some(l)) if p > 0.0 => Some(l / p),
        _ => None,
    }
}

/// Linux's medians by name.
pub fn linux_medians(linux: &LinuxFigures) -> Vec<(String, f64)> {
    linux
        .ops
        .iter()
        .map(|(op, s)| (op.clone(), s.median))
        .collect()
}

/// The side-by-side table in markdown (rows with neither figure left out).
pub fn table(platform: &[(String, f64)], linux: &[(String, f64)]) -> String {
    let mut md = String::from(
        "| platform | instructions | Linux | instructions | Linux / platform |\n|---|---|---|---|---|\n",
    );
    let n = |x: Option<f64>| x.map_or("—".to_string(), |x| format!("{x:.0}"));
    for p in PAIRS {
        let (a, b) = (
            lookup(platform, p.platform_name),
            lookup(linux, p.linux_name),
        );
        if a.is_none() && b.is_none() {
            continue;
        }
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} |",
            p.platform_op,
            n(a),
            p.linux_op,
            n(b),
            ratio(a, b).map_or("—".to_string(), |r| format!("{r:.1}x"))
        );
    }
    md
}

/// `{"platform": {name: instructions}, "linux": {name: instructions}}`.
pub fn json(platform: &[(String, f64)], linux: &[(String, f64)]) -> Value {
    let object = |xs: &[(String, f64)]| {
        Value::Object(
            xs.iter()
                .map(|(k, v)| (k.clone(), json!(v)))
                .collect::<Map<_, _>>(),
        )
    };
    json!({"platform": object(platform), "linux": object(linux)})
}

#[cfg(test)]
mod tests {
    use super::*;

    fn figures(xs: &[(&str, f64)]) -> Vec<(String, f64)> {
        xs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
    }

    #[test]
    fn rows_pair_the_figures_with_linux_over_platform() {
        let platform = figures(&[
            ("null_syscall", 124.0),
            ("syscall_floor", 13.0),
            ("yield_pingpong", 1718.0),
        ]);
        let linux = figures(&[
            ("getpid", 322.6),
            ("pipe_pingpong", 13_000.0),
            ("sched_yield", 802.0),
        ]);
        let md = table(&platform, &linux);
        assert!(
            md.contains("| null system call | 124 | getpid | 323 | 2.6x |"),
            "{md}"
        );
        assert!(md.contains("| 1718 | pipe ping-pong"), "{md}");
        assert!(md.contains("| 13000 | 7.6x |"), "{md}");
        // One side missing: its cell and the ratio are dashes, not zeros.
        assert!(md.contains("| 13 | — | — | — |"), "{md}");
        assert!(md.contains("nothing else runnable | 802 | — |"), "{md}");
        // Neither side: no row (the exception upcall was not measured).
        assert!(!md.contains("SIGTRAP"), "{md}");
        assert_eq!(ratio(Some(0.0), Some(5.0)), None);
        assert_eq!(ratio(Some(2.0), None), None);
        let j = json(&platform, &linux);
        assert_eq!(j["platform"]["null_syscall"], 124.0);
        assert_eq!(j["linux"]["getpid"], 322.6);
        assert!(j["linux"]["futex_pingpong"].is_null());
    }
}
