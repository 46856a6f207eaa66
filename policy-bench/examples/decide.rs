//! Runs `count` decisions of one policy at `n` threads, for a profiler:
//! `valgrind --tool=callgrind target/release/examples/decide stride 1000 100000`.
//! With `floor` as the policy, the floor of `of` instead (`decide floor 1000 100000 rr`);
//! with `trait`, that floor as a `dyn Policy` through the same loop as the
//! policies (`floor::Through`: `decide trait 1000 100000 rr`).
//! With `churn` after the count, decisions under churn
//! (`policy_bench::churn_decision`: the picked thread blocks and wakes).

use policy_bench::floor::Floor;
use policy_bench::{churn_decision, decision, new_policy};
use sched_api::PolicyKind;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let kind = args.get(1).map_or("stride", String::as_str);
    let n: u32 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(1000);
    let count: u64 = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(100_000);
    let floor = || {
        let of = args.get(4).map_or("stride", String::as_str);
        policy_bench::kinds()
            .find(|k| k.name() == of)
            .and_then(Floor::of)
            .expect("a policy with a floor")
    };
    if kind == "floor" {
        let mut f = floor().build(n);
        for _ in 0..count {
            f.step();
        }
        return;
    }
    let mut p = if kind == "trait" {
        floor().through(n)
    } else {
        let kind = policy_bench::kinds()
            .find(|k| k.name() == kind)
            .unwrap_or(PolicyKind::new("stride"));
        new_policy(kind, n)
    };
    let step = match args.get(4).map(String::as_str) {
        Some("churn") => churn_decision,
        _ => decision,
    };
    for _ in 0..count {
        step(p.as_mut());
    }
}
