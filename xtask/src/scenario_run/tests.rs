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
fn results_files_have_their_schema() {
    let s = crate::scenario::parse(
        "[[app]]\nname = \"a\"\nscheduler = \"stride\"\ncores = [0]\n[[app.thread]]\nbehaviour = \"cpu\"\ntickets = 300\n[[app.thread]]\nbehaviour = \"cpu\"\n",
        "schema",
        2,
    )
    .unwrap();
    let user = |t: u64, th: &str| {
        format!("@@exo user {{\"env\":256,\"name\":\"a\",\"core\":0,\"kind\":\"sample\",\"t_ns\":{t},\"policy\":\"stride\",\"th\":{th}}}\n")
    };
    let console = [
        "@@exo event {\"event\":\"spawned\",\"env\":256,\"name\":\"a\",\"t_ns\":5}\n".to_string(),
        "@@exo user {\"env\":256,\"name\":\"a\",\"core\":0,\"kind\":\"app_start\",\"t_ns\":10,\"policy\":\"stride\",\"threads\":2}\n".into(),
        user(10, "[[1,300,0,0,0,0],[2,100,0,0,0,1]]"),
        user(100_000_010, "[[1,300,75000000,7,0,0],[2,100,25000000,2,0,1]]"),
        "@@exo user {\"env\":256,\"name\":\"a\",\"core\":1,\"kind\":\"app_event\",\"t_ns\":50000000,\"what\":\"swap\",\"thread\":0,\"detail\":\"stride -> rr\",\"source\":\"console\"}\n".into(),
        "@@exo trace {\"core\":0,\"runs\":[[10,256],[60000000,4294967295]],\"dropped\":0}\n".into(),
        "@@exo end {\"exit\":\"success\",\"uptime_ns\":100000010}\n".into(),
    ]
    .concat();
    let records = crate::records::parse_records(&console);
    let data = rundata(&s, &records, 2, false);
    assert_eq!(data.samples.len(), 4);
    assert_eq!(data.apps[0].env, 256);
    assert_eq!(data.apps[0].scheduler_timeline.last().unwrap().1, "rr");
    assert_eq!(data.runs.len(), 1, "idle stretches left out");
    assert_eq!(
        (data.runs[0].start_ns, data.runs[0].end_ns, data.runs[0].app),
        (10, 60_000_000, Some(0))
    );
    let dir = std::env::temp_dir().join(format!("exo-schema-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut summary = json!({"commit": "x"});
    write_results(&dir, &s, &data, &mut summary).unwrap();
    let read = |f: &str| std::fs::read_to_string(dir.join(f)).unwrap();
    assert_eq!(
        read("samples.csv").lines().next(),
        Some("t_ns,core,app,thread,cpu_ns,iterations,sleep_ns,alive_ns,ideal_cpu_ns")
    );
    assert_eq!(read("samples.csv").lines().count(), 5);
    let events = read("events.csv");
    assert!(
        events.starts_with("t_ns,kind,app,thread,core,detail\n5,spawned,a,"),
        "{events}"
    );
    assert!(
        events.contains("\n50000000,swap,a,,,\"stride -> rr (console)\"\n"),
        "{events}"
    );
    let trace: Value = serde_json::from_str(&read("trace.json")).unwrap();
    assert!(trace["traceEvents"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["ph"] == "X" && e["name"] == "a"));
    let back: RunData = serde_json::from_str(&read("rundata.json")).unwrap();
    assert_eq!(back, data);
    for key in [
        "scenario",
        "seed",
        "deterministic",
        "duration_ns",
        "slice_ns",
        "apps",
    ] {
        assert!(summary.get(key).is_some(), "summary lacks {key}");
    }
    let t = &summary["apps"][0]["threads"][0];
    for key in [
        "tickets",
        "cpu_ns",
        "iterations",
        "ideal_cpu_ns",
        "sleep_ns",
        "ideal_share",
        "measured_share",
        "share_error_pp",
        "max_abs_lag_quanta",
    ] {
        assert!(t.get(key).is_some(), "thread lacks {key}");
    }
    assert!((t["measured_share"].as_f64().unwrap() - 0.75).abs() < 1e-9);
    // Stride (3:1) until the swap at 50 ms, rr (1:1) after it.
    assert!((t["ideal_share"].as_f64().unwrap() - 0.625).abs() < 1e-6);
    assert!((t["share_error_pp"].as_f64().unwrap() - 12.5).abs() < 1e-4);
    std::fs::remove_dir_all(&dir).unwrap();
}
