//! Each policy's decision and accounting against the number of threads:
//! `cargo bench -p policy-bench` (all), or with a filter such as
//! `'^decision/stride/10000$'`.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use policy_bench::{decision, kinds, new_policy, THREADS};

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

criterion_group!(benches, decisions);
criterion_main!(benches);
