use super::*;

fn sample(app: &str, t: u64, th: &str) -> Value {
    serde_json::from_str(&format!(
        r#"{{"kind":"sample","name":"{app}","t_ns":{t},"policy":"stride","th":{th}}}"#
    ))
    .unwrap()
}

#[test]
fn snapshots_spanning_records_are_joined_and_shares_follow_tickets() {
    let mut t = Tracker::default();
    assert!(!t.record(&sample("a", 0, "[[1,200,0,0,0,0]]")));
    assert!(!t.record(&sample("a", 0, "[[2,100,0,0,0,0]]")));
    // 100 ms on one core: 2:1 exactly.
    assert!(t.record(&sample(
        "a",
        100_000_000,
        "[[1,200,66666666,5,0,0],[2,100,33333334,3,0,0]]"
    )));
    t.flush();
    let shares = t.apps["a"].shares();
    assert!((shares[&1].0 - 2.0 / 3.0).abs() < 1e-6);
    assert!((shares[&1].1 - 2.0 / 3.0).abs() < 1e-6);
    assert!(t.table(&BTreeMap::new()).contains("a(stride)"));
}

#[test]
fn a_sleeping_thread_is_not_owed_the_time_it_slept() {
    let mut t = Tracker::default();
    t.record(&sample("a", 0, "[[1,100,0,0,0,0],[2,100,0,0,0,0]]"));
    // Thread 2 slept 90 of 100 ms and used its 10: it is owed nothing more.
    t.record(&sample(
        "a",
        100_000_000,
        "[[1,100,90000000,0,0,0],[2,100,10000000,0,90000000,0]]",
    ));
    t.flush();
    let f = &t.apps["a"];
    assert!((f.threads[&1].ideal_ns - 90e6).abs() < 1.0);
    assert!((f.threads[&2].ideal_ns - 10e6).abs() < 1.0);
    assert!(f.threads[&1].max_abs_lag_ns < 1.0);
}
