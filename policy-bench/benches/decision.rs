//! Each policy's decision and accounting against the number of threads:
//! `cargo bench -p policy-bench` (all), or with a filter such as
//! `'^decision/stride/10000$'`. The group `churn` times the same decision
//! with one block and one wake of the picked thread in each
//! (`'^churn/lottery/'`).

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use policy_bench::{churn_decision, decision, kinds, new_policy, CHURN_THREADS, THREADS};

fn decisions(c: &mut Criterion) {
    let mut group = c.benchmark_group("decision");
    for kind in kinds() {
        for n in THREADS {
            let mut policy = new_policy(kind, n);
            group.bench_function(BenchmarkId::new(kind.name(), n), |b| {
                b.iter(|| decision(policy.as_mut()))
            });
        }
    }
    group.finish();
}

fn churn(c: &mut Criterion) {
    let mut group = c.benchmark_group("churn");
    for kind in kinds() {
        for n in CHURN_THREADS {
            let mut policy = new_policy(kind, n);
            group.bench_function(BenchmarkId::new(kind.name(), n), |b| {
                b.iter(|| churn_decision(policy.as_mut()))
            });
        }
    }
    group.finish();
}

criterion_group!(benches, decisions, churn);
criterion_main!(benches);
