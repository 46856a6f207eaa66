//! Each policy's decision and accounting against the number of threads:
//! `cargo bench -p policy-bench` (all), or with a filter such as
//! `'^decision/stride/10000$'`. The group `churn` times the same decision
//! with one block and one wake of the picked thread in each
//! (`'^churn/lottery/'`); the group `floor` the bare data-structure
//! operation each policy's decision amounts to (`policy_bench::floor`),
//! timed right after the policies at the same thread count so that the
//! ratio of the two compares figures taken under the same load; the group
//! `trait` each floor as a `dyn Policy` through the policies' own loop
//! (`floor::Through`).

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use policy_bench::floor::{Floor, FloorState};
use policy_bench::{churn_decision, decision, kinds, new_policy, CHURN_THREADS, THREADS};

fn decisions_and_floors(c: &mut Criterion) {
    for n in THREADS {
        let mut group = c.benchmark_group("decision");
        for kind in kinds() {
            let mut policy = new_policy(kind, n);
            group.bench_function(BenchmarkId::new(kind.name(), n), |b| {
                b.iter(|| decision(policy.as_mut()))
            });
        }
        group.finish();
        let mut group = c.benchmark_group("floor");
        for floor in Floor::ALL {
            // Each structure's own step, not through the enum: the floor
            // carries no dispatch. (`iter` passes the result through
            // `black_box`.)
            let id = BenchmarkId::new(floor.name(), n);
            match floor.build(n) {
                FloorState::Heap(mut h) => group.bench_function(id, |b| b.iter(|| h.step())),
                FloorState::Ring(mut r) => group.bench_function(id, |b| b.iter(|| r.step())),
                FloorState::SumTree(mut s) => group.bench_function(id, |b| b.iter(|| s.step())),
            };
        }
        group.finish();
        // Each floor again through the trait and the same loop as the
        // policies (`floor::Through`): what a decision costs here at least.
        let mut group = c.benchmark_group("trait");
        for floor in Floor::ALL {
            let mut p = floor.through(n);
            group.bench_function(BenchmarkId::new(floor.name(), n), |b| {
                b.iter(|| decision(p.as_mut()))
            });
        }
        group.finish();
    }
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

criterion_group!(benches, decisions_and_floors, churn);
criterion_main!(benches);
