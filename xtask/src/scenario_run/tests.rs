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
    let table = t.table(&BTreeMap::new());
    assert!(table.contains("a(stride)"));
    assert!(
        table.lines().nth(2).unwrap().ends_with(" -"),
        "no waits yet: {table}"
    );
    // Thread 2 waited 4 ms twice (bucket 159) and 0 ns once, reported with
    // the sample at 200 ms: the table shows them with that sample's
    // shares, not before (a live table's wait columns were a sample ahead
    // of its shares, an audit found).
    assert!(!t.record(&sample(
        "a",
        200_000_000,
        "[[1,200,133333332,5,0,0],[2,100,66666668,3,0,0]]"
    )));
    let waits: Value = serde_json::from_str(
        r#"{"kind":"waits","name":"a","t_ns":200000000,"w":[[2,3,4000000,4000000,0,1,159,2]]}"#,
    )
    .unwrap();
    assert_eq!(abi::waits::bucket_of(4_000_000), 159);
    assert!(!t.record(&waits));
    let table = t.table(&BTreeMap::new());
    assert!(
        table.lines().nth(2).unwrap().ends_with(" -"),
        "the sample at 200 ms is not complete yet: {table}"
    );
    t.flush();
    let table = t.table(&BTreeMap::new());
    let row: Vec<&str> = table.lines().nth(2).unwrap().split_whitespace().collect();
    let p99: f64 = row[row.len() - 2].parse().unwrap();
    assert!((p99 - 4.0).abs() <= 4.0 / 16.0, "{table}");
    assert_eq!(row[row.len() - 1], "4.000", "{table}");
}

#[test]
fn results_files_have_their_schema() {
    let s = crate::scenario::parse(
        "[[app]]\nname = \"a\"\nscheduler = \"stride\"\ncores = [0]\n[[app.thread]]\nbehaviour = \"cpu\"\ntickets = 300\n[[app.thread]]\nbehaviour = \"cpu\"\n",
        "schema",
        2,
    )
    .unwrap();
    let user = |t: u64, th: &str| sample_line(256, "a", t, "", th);
    let console = [
        "@@exo event {\"event\":\"spawned\",\"env\":256,\"name\":\"a\",\"t_ns\":5}\n".to_string(),
        "@@exo user {\"env\":256,\"name\":\"a\",\"core\":0,\"kind\":\"app_start\",\"t_ns\":10,\"policy\":\"stride\",\"threads\":2}\n".into(),
        user(10, "[[1,300,0,0,0,0],[2,100,0,0,0,1]]"),
        user(100_000_010, "[[1,300,75000000,7,0,0],[2,100,25000000,2,0,1]]"),
        // Thread 2 waited twice, about 2 ms and 6 ms (buckets 151, 163),
        // in two records of one interval.
        "@@exo user {\"env\":256,\"name\":\"a\",\"core\":0,\"kind\":\"waits\",\"t_ns\":100000010,\"w\":[[2,2,6000000,6000000,151,1]]}\n".into(),
        "@@exo user {\"env\":256,\"name\":\"a\",\"core\":0,\"kind\":\"waits\",\"t_ns\":100000010,\"w\":[[2,2,6000000,6000000,163,1]]}\n".into(),
        "@@exo user {\"env\":256,\"name\":\"a\",\"core\":1,\"kind\":\"app_event\",\"t_ns\":50000000,\"what\":\"swap\",\"thread\":0,\"detail\":\"stride -> rr\",\"source\":\"console\"}\n".into(),
        "@@exo trace {\"core\":0,\"runs\":[[10,256],[60000000,4294967295]],\"dropped\":0}\n".into(),
        "@@exo end {\"exit\":\"success\",\"uptime_ns\":100000010}\n".into(),
    ]
    .concat();
    let records = crate::records::parse_records(&console);
    let mut data = rundata(&s, &records, 2, false);
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
    let mut summary =
        json!({"commit": "x", "trust": {"trusted": true, "why_not": [], "checks": []}});
    write_results(&dir, &s, &mut data, &mut summary).unwrap();
    // The verdict, with the check on the figures, kept with the data; a
    // summary without an exit is no bad end.
    assert_eq!(summary["trust"]["checks"][0]["check"], "sleeps_placed");
    assert_eq!(data.trusted, Some(true));
    assert_eq!(data.ended, None);
    assert_eq!(ended_badly(&json!("user_quit")), None);
    assert_eq!(ended_badly(&json!("timeout")).as_deref(), Some("timeout"));
    let read = |f: &str| std::fs::read_to_string(dir.join(f)).unwrap();
    assert_eq!(
        read("samples.csv").lines().next(),
        Some("t_ns,core,app,thread,cpu_ns,iterations,sleep_ns,alive_ns,ideal_cpu_ns,wait_count,wait_p50_ns,wait_p99_ns,wait_max_ns")
    );
    let row = read("samples.csv")
        .lines()
        .find(|l| l.starts_with("100000010,1,a,2,"))
        .map(str::to_string)
        .unwrap();
    let wait: Vec<u64> = row.split(',').skip(9).map(|x| x.parse().unwrap()).collect();
    assert_eq!((wait[0], wait[3]), (2, 6_000_000), "{row}");
    assert!(wait[1].abs_diff(2_000_000) <= 2_000_000 / 16, "{row}");
    assert!(wait[2].abs_diff(6_000_000) <= 6_000_000 / 16, "{row}");
    assert!(
        read("samples.csv")
            .lines()
            .any(|l| l.starts_with("100000010,0,a,1,") && l.ends_with(",0,,,")),
        "a thread without waits has none, not zeros"
    );
    // The last sample is at the end; the trace has the application on
    // core 0 until 60 ms only.
    assert_eq!(summary["apps"][0]["last_sample_ns"], 100_000_010);
    assert_eq!(summary["apps"][0]["ran_after_last_sample_ns"], 0);
    let th = &summary["apps"][0]["threads"];
    assert_eq!(th[1]["wait"]["count"], 2);
    assert_eq!(th[1]["wait"]["max_ns"], 6_000_000);
    assert_eq!(th[0]["wait"]["p99_ns"], Value::Null);
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

/// A console of application `a` run twice (stopped and started again):
/// env 256, then env 512 named `a#2`.
fn restarted_console() -> String {
    let user = |env: u64, name: &str, t: u64, th: &str| sample_line(env, name, t, "", th);
    [
        "@@exo event {\"event\":\"spawned\",\"env\":256,\"name\":\"a\",\"t_ns\":5}\n".to_string(),
        "@@exo user {\"env\":256,\"name\":\"a\",\"core\":0,\"kind\":\"app_start\",\"t_ns\":10,\"policy\":\"stride\",\"threads\":2}\n".into(),
        user(256, "a", 10, "[[1,300,0,0,0,0],[2,100,0,0,0,0]]"),
        user(256, "a", 100_000_010, "[[1,300,75000000,7,0,0],[2,100,25000000,2,0,0]]"),
        "@@exo event {\"event\":\"console\",\"env\":256,\"core\":0,\"t_ns\":110000000,\"command\":\"swap a foo\",\"outcome\":\"forwarded\",\"source\":\"console\",\"seq\":0}\n".into(),
        "@@exo user {\"env\":256,\"name\":\"a\",\"core\":1,\"kind\":\"app_event\",\"t_ns\":111000000,\"what\":\"console\",\"thread\":0,\"seq\":0,\"detail\":\"swap foo\",\"outcome\":\"no scheduler `foo` (stride, lottery or rr)\",\"source\":\"console\"}\n".into(),
        "@@exo event {\"event\":\"console\",\"env\":256,\"core\":0,\"t_ns\":120000000,\"command\":\"tickets a t2 5\",\"outcome\":\"forwarded\",\"source\":\"script\",\"seq\":1}\n".into(),
        "@@exo user {\"env\":256,\"name\":\"a\",\"core\":1,\"kind\":\"app_event\",\"t_ns\":121000000,\"what\":\"tickets\",\"thread\":2,\"detail\":\"100 -> 5\",\"source\":\"console\"}\n".into(),
        "@@exo user {\"env\":256,\"name\":\"a\",\"core\":1,\"kind\":\"app_event\",\"t_ns\":121000000,\"what\":\"console\",\"thread\":0,\"seq\":1,\"detail\":\"tickets t2 5\",\"outcome\":\"ok\",\"source\":\"console\"}\n".into(),
        "@@exo event {\"event\":\"console\",\"env\":256,\"core\":0,\"t_ns\":130000000,\"command\":\"swap a rr\",\"outcome\":\"forwarded\",\"source\":\"console\",\"seq\":2}\n".into(),
        "@@exo event {\"event\":\"console\",\"env\":256,\"core\":0,\"t_ns\":140000000,\"command\":\"stop a\",\"outcome\":\"ok\",\"source\":\"console\"}\n".into(),
        "@@exo event {\"event\":\"console\",\"env\":4294967295,\"core\":0,\"t_ns\":145000000,\"command\":\"stop b\",\"outcome\":\"no such application\",\"source\":\"console\"}\n".into(),
        "@@exo event {\"event\":\"spawned\",\"env\":512,\"name\":\"a#2\",\"t_ns\":150000000}\n".into(),
        "@@exo user {\"env\":512,\"name\":\"a#2\",\"core\":0,\"kind\":\"app_start\",\"t_ns\":150000010,\"policy\":\"stride\",\"threads\":2}\n".into(),
        user(512, "a#2", 150_000_010, "[[1,300,0,0,0,0],[2,100,0,0,0,0]]"),
        user(512, "a#2", 250_000_010, "[[1,300,50000000,7,0,0],[2,100,50000000,2,0,0]]"),
        "@@exo trace {\"core\":0,\"runs\":[[10,256],[140000000,4294967295],[150000000,512]],\"dropped\":0}\n".into(),
        "@@exo end {\"exit\":\"success\",\"uptime_ns\":250000010}\n".into(),
    ]
    .concat()
}

/// `console` parsed as a 2-core run of [`two_threads`].
fn two_threads_run(console: &str) -> RunData {
    rundata(
        &two_threads(),
        &crate::records::parse_records(console),
        2,
        false,
    )
}

fn two_threads() -> Scenario {
    crate::scenario::parse(
        "[[app]]\nname = \"a\"\nscheduler = \"stride\"\ncores = [0]\n[[app.thread]]\nbehaviour = \"cpu\"\ntickets = 300\n[[app.thread]]\nbehaviour = \"cpu\"\n",
        "restart",
        2,
    )
    .unwrap()
}

#[test]
fn a_restarted_application_is_a_new_instance_with_its_own_accounting() {
    let records = crate::records::parse_records(&restarted_console());
    let data = rundata(&two_threads(), &records, 2, false);
    let names: Vec<(&str, u64)> = data.apps.iter().map(|a| (a.name.as_str(), a.env)).collect();
    assert_eq!(names, [("a", 256), ("a#2", 512)]);
    assert_eq!(data.apps[1].threads[1].joined_ns, 150_000_010);
    // Each instance's samples are its own; its shares compare it with
    // itself, not with the first instance's history.
    assert_eq!(data.samples.iter().filter(|s| s.app == 1).count(), 4);
    let replayed = replay(&data);
    let first = replayed[0].0.shares();
    let second = replayed[1].0.shares();
    assert!((first[&1].0 - 0.75).abs() < 1e-9);
    assert!((second[&1].0 - 0.5).abs() < 1e-9, "{second:?}");
    // The slice map and the trace name the instance that ran.
    let runs: Vec<(u64, Option<u32>)> = data.runs.iter().map(|r| (r.start_ns, r.app)).collect();
    assert_eq!(runs, [(10, Some(0)), (150_000_000, Some(1))]);
    let trace = perfetto_trace(&data).to_string();
    assert!(trace.contains("\"name\":\"a#2\""), "{trace}");
    assert!(!trace.contains("other env"), "{trace}");
}

#[test]
fn each_instance_says_what_it_ran_after_its_last_sample() {
    let records = crate::records::parse_records(&restarted_console());
    let data = rundata(&two_threads(), &records, 2, false);
    assert_eq!(data.trace_dropped, 0);
    let apps = fairness_summary(&data);
    // `a` was sampled last at 100 ms and ran on until it stopped at 140 ms;
    // `a#2` was sampled at the run's end.
    assert_eq!(apps[0]["last_sample_ns"], 100_000_010);
    assert_eq!(apps[0]["ran_after_last_sample_ns"], 39_999_990);
    assert_eq!(apps[1]["ran_after_last_sample_ns"], 0);
    // And all it ran, on the trace's wall clock: `a` from 10 ns to 140 ms.
    assert_eq!(apps[0]["ran_ns"], 139_999_990);
    // A core whose trace filled up lost the end of the run: unknown.
    let full = restarted_console().replace("\"dropped\":0", "\"dropped\":3");
    let data = two_threads_run(&full);
    assert_eq!(data.trace_dropped, 3);
    assert_eq!(
        fairness_summary(&data)[0]["ran_after_last_sample_ns"],
        Value::Null
    );
}

#[test]
fn console_commands_are_logged_with_what_happened() {
    let records = crate::records::parse_records(&restarted_console());
    let data = rundata(&two_threads(), &records, 2, false);
    let consoles: Vec<&str> = data
        .events
        .iter()
        .filter(|e| e.kind == "console")
        .map(|e| e.detail.as_str())
        .collect();
    assert_eq!(
        consoles,
        [
            "swap a foo -> no scheduler `foo` (stride, lottery or rr)",
            "tickets a t2 5 -> ok (script)",
            "swap a rr -> forwarded; the application never answered",
            "stop a -> ok",
            "stop b -> no such application",
        ]
    );
    // The replies themselves are not listed twice.
    assert!(!data
        .events
        .iter()
        .any(|e| e.kind == "console" && e.detail.starts_with("swap foo")));
    assert_eq!(
        data.apps[0].threads[1].tickets_timeline.last(),
        Some(&(121_000_000, 5))
    );
    // What the application did for a command from the script says so,
    // although the application, which cannot tell, wrote `console`.
    let tickets: Vec<&str> = data
        .events
        .iter()
        .filter(|e| e.kind == "tickets")
        .map(|e| e.detail.as_str())
        .collect();
    assert_eq!(tickets, ["100 -> 5 (script)"]);
}

#[test]
fn a_sample_the_runs_end_cut_short_is_not_the_last_sample() {
    // Two threads, 3:1; at 200 ms the sample's first record (thread 1)
    // arrived and the run ended before its second (thread 2).
    let user = |t: u64, th: &str| sample_line(256, "a", t, "\"rows\":2,", th);
    let console = [
        "@@exo event {\"event\":\"spawned\",\"env\":256,\"name\":\"a\",\"t_ns\":5}\n".to_string(),
        "@@exo user {\"env\":256,\"name\":\"a\",\"core\":0,\"kind\":\"app_start\",\"t_ns\":10,\"policy\":\"stride\",\"threads\":2}\n".into(),
        user(10, "[[1,300,0,0,0,0],[2,100,0,0,0,0]]"),
        user(100_000_010, "[[1,300,75000000,7,0,0]]"),
        user(100_000_010, "[[2,100,25000000,2,0,0]]"),
        user(200_000_010, "[[1,300,150000000,7,0,0]]"),
        "@@exo trace {\"core\":0,\"runs\":[[10,256]],\"dropped\":0}\n".into(),
        "@@exo end {\"exit\":\"success\",\"uptime_ns\":200000020}\n".into(),
    ]
    .concat();
    let data = two_threads_run(&console);
    let app = &fairness_summary(&data)[0];
    // The whole sample at 100 ms is the last: both threads as of then
    // (3:1), and the application's time after it is what ran after it.
    assert_eq!(app["last_sample_ns"], 100_000_010);
    assert_eq!(app["ran_after_last_sample_ns"], 100_000_010);
    let cpu: Vec<u64> = app["threads"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["cpu_ns"].as_u64().unwrap())
        .collect();
    assert_eq!(cpu, [75_000_000, 25_000_000]);
    assert_eq!(data.cut_samples, [(0, 200_000_010)]);
    assert_eq!(app["cut_samples"], 1);
    // Records without `rows` (runs made before it existed) are kept.
    let old = console.replace("\"rows\":2,", "");
    let data = two_threads_run(&old);
    assert_eq!(fairness_summary(&data)[0]["last_sample_ns"], 200_000_010);
}

#[test]
fn a_last_sample_whose_sleeps_the_runs_end_cut_off_is_left_out() {
    // Thread 2 sleeps 30 ms before the sample at 100 ms (placed) and 40 ms
    // between those at 100 and 200 ms; the run ended after the sample at
    // 200 ms, before its `sleeps` record.
    let user = |t: u64, th: &str| sample_line(256, "a", t, "\"rows\":2,", th);
    let sleeps = "@@exo user {\"env\":256,\"name\":\"a\",\"core\":0,\"kind\":\"sleeps\",\"t_ns\":200000010,\"from_ns\":100000010,\"id\":2,\"dropped\":0,\"iv\":[20000000,60000000]}\n";
    let console = |with_sleeps: bool| {
        [
            "@@exo event {\"event\":\"spawned\",\"env\":256,\"name\":\"a\",\"t_ns\":5}\n".to_string(),
            "@@exo user {\"env\":256,\"name\":\"a\",\"core\":0,\"kind\":\"app_start\",\"t_ns\":10,\"policy\":\"stride\",\"threads\":2}\n".into(),
            user(10, "[[1,300,0,0,0,0],[2,100,0,0,0,0]]"),
            user(100_000_010, "[[1,300,75000000,7,0,0],[2,100,25000000,2,30000000,0]]"),
            "@@exo user {\"env\":256,\"name\":\"a\",\"core\":0,\"kind\":\"sleeps\",\"t_ns\":100000010,\"from_ns\":10,\"id\":2,\"dropped\":0,\"iv\":[10000000,40000000]}\n".into(),
            user(200_000_010, "[[1,300,160000000,7,0,0],[2,100,40000000,2,70000000,0]]"),
            if with_sleeps { sleeps.into() } else { String::new() },
            "@@exo trace {\"core\":0,\"runs\":[[10,256]],\"dropped\":0}\n".into(),
            "@@exo end {\"exit\":\"success\",\"uptime_ns\":200000020}\n".into(),
        ]
        .concat()
    };
    let data = two_threads_run(&console(false));
    let app = &fairness_summary(&data)[0];
    assert_eq!(data.cut_samples, [(0, 200_000_010)]);
    assert_eq!(app["last_sample_ns"], 100_000_010);
    assert_eq!(app["threads"][1]["sleep_unlogged_ns"], 0);
    // With it, the sample stands: the 40 ms placed, none unplaced.
    let data = two_threads_run(&console(true));
    let app = &fairness_summary(&data)[0];
    assert!(data.cut_samples.is_empty());
    assert_eq!(app["last_sample_ns"], 200_000_010);
    assert_eq!(app["threads"][1]["sleep_ns"], 70_000_000);
    assert_eq!(app["threads"][1]["sleep_unlogged_ns"], 0);
}

/// A console of application `a`'s two threads, thread 2 asleep 30 ms
/// before the sample at 100 ms and 40 ms between those at 100 and 200 ms,
/// its samples closed (`sample_end`, with how many records each sent) as
/// `closed` says, sample by sample, `None` for one that sent none; `last`:
/// the records of the sample at 200 ms that came (its `sample` record, and
/// its `sleeps` record if 2).
fn closed_console(closed: [Option<u64>; 3], last: usize) -> String {
    let user = |t: u64, th: &str| sample_line(256, "a", t, "\"rows\":2,", th);
    let end = |t: u64, n: Option<u64>| {
        n.map_or(String::new(), |n| {
            format!("@@exo user {{\"env\":256,\"name\":\"a\",\"core\":0,\"kind\":\"sample_end\",\"t_ns\":{t},\"records\":{n}}}\n")
        })
    };
    let last_sleeps = "@@exo user {\"env\":256,\"name\":\"a\",\"core\":0,\"kind\":\"sleeps\",\"t_ns\":200000010,\"from_ns\":100000010,\"id\":2,\"dropped\":0,\"iv\":[20000000,60000000]}\n";
    [
        "@@exo event {\"event\":\"spawned\",\"env\":256,\"name\":\"a\",\"t_ns\":5}\n".to_string(),
        "@@exo user {\"env\":256,\"name\":\"a\",\"core\":0,\"kind\":\"app_start\",\"t_ns\":10,\"policy\":\"stride\",\"threads\":2}\n".into(),
        user(10, "[[1,300,0,0,0,0],[2,100,0,0,0,0]]"),
        end(10, closed[0]),
        user(100_000_010, "[[1,300,75000000,7,0,0],[2,100,25000000,2,30000000,0]]"),
        "@@exo user {\"env\":256,\"name\":\"a\",\"core\":0,\"kind\":\"sleeps\",\"t_ns\":100000010,\"from_ns\":10,\"id\":2,\"dropped\":0,\"iv\":[10000000,40000000]}\n".into(),
        end(100_000_010, closed[1]),
        if last >= 1 { user(200_000_010, "[[1,300,160000000,7,0,0],[2,100,40000000,2,70000000,0]]") } else { String::new() },
        if last >= 2 { last_sleeps.into() } else { String::new() },
        end(200_000_010, closed[2]),
        "@@exo trace {\"core\":0,\"runs\":[[10,256]],\"dropped\":0}\n".into(),
        "@@exo end {\"exit\":\"success\",\"uptime_ns\":200000020}\n".into(),
    ]
    .concat()
}

#[test]
fn in_a_run_of_closed_samples_a_last_sample_without_its_sample_end_is_cut() {
    // Its rows and sleeps all came, its sleep all placed: by inference it
    // stood; the run's end cut it before its `sample_end`.
    let data = two_threads_run(&closed_console([Some(1), Some(2), None], 2));
    let app = &fairness_summary(&data)[0];
    assert_eq!(data.cut_samples, [(0, 200_000_010)]);
    assert_eq!(app["cut_samples"], 1);
    assert_eq!(app["last_sample_ns"], 100_000_010);
    assert_eq!(app["threads"][1]["sleep_ns"], 30_000_000);
    // With it, it stands.
    let data = two_threads_run(&closed_console([Some(1), Some(2), Some(2)], 2));
    assert!(data.cut_samples.is_empty());
    assert_eq!(fairness_summary(&data)[0]["last_sample_ns"], 200_000_010);
}

#[test]
fn a_closed_sample_stands_with_its_sleep_unplaced() {
    // The sample at 200 ms sent no `sleeps` record (as when a thread's log
    // lost its sleeps) and closed itself: whole, its 40 ms asleep unplaced
    // (the run's finding, `sleep_unlogged_ns`), not a cut. By inference
    // (no `sample_end` in the run) the same records are a cut.
    let data = two_threads_run(&closed_console([Some(1), Some(2), Some(1)], 1));
    let app = &fairness_summary(&data)[0];
    assert!(data.cut_samples.is_empty());
    assert_eq!(app["last_sample_ns"], 200_000_010);
    assert_eq!(app["threads"][1]["sleep_ns"], 70_000_000);
    assert_eq!(app["threads"][1]["sleep_unlogged_ns"], 40_000_000);
    let data = two_threads_run(&closed_console([None; 3], 1));
    assert_eq!(data.cut_samples, [(0, 200_000_010)]);
}

#[test]
fn a_closed_sample_missing_a_record_it_counts_is_cut_wherever_it_is() {
    // The sample at 100 ms says it sent 3 records: one (refused, or lost)
    // never came. Not the last, it is cut all the same.
    let data = two_threads_run(&closed_console([Some(1), Some(3), Some(2)], 2));
    assert_eq!(data.cut_samples, [(0, 100_000_010)]);
    let app = &fairness_summary(&data)[0];
    assert_eq!(app["last_sample_ns"], 200_000_010);
}

/// `closed_console`'s records with thread 2's `waits` records after its
/// sleeps: 3 waits up to 5 us at 100 ms, 5 up to 9 ms at 200 ms.
fn with_waits(console: &str) -> String {
    with_waits_of(console, 5_000, true)
}

/// [`with_waits`], the longest of the first 3 waits `max_100`, and the
/// record at 200 ms left out unless `at_200`.
fn with_waits_of(console: &str, max_100: u64, at_200: bool) -> String {
    let waits = |t: u64, n: u64, max: u64, count: u64| {
        format!(
            "@@exo user {{\"env\":256,\"name\":\"a\",\"core\":0,\"kind\":\"waits\",\"t_ns\":{t},\"w\":[[2,{n},{max},{max},{},{count}]]}}\n",
            abi::waits::bucket_of(max)
        )
    };
    let mut out = String::new();
    for line in console.lines() {
        out.push_str(line);
        out.push('\n');
        if line.contains("\"kind\":\"sleeps\",\"t_ns\":100000010") {
            out.push_str(&waits(100_000_010, 3, max_100, 3));
        }
        if at_200 && line.contains("\"kind\":\"sleeps\",\"t_ns\":200000010") {
            out.push_str(&waits(200_000_010, 8, 9_000_000, 5));
        }
    }
    out
}

/// Thread 2's wait count and longest wait in `data`'s summary.
fn thread_2_waits(data: &RunData) -> (Value, Value) {
    let wait = &fairness_summary(data)[0]["threads"][1]["wait"];
    (wait["count"].clone(), wait["max_ns"].clone())
}

#[test]
fn a_cut_sample_s_waits_and_sleeps_count_with_the_next_whole_sample_or_not_at_all() {
    // The last sample (its waits came, its mark did not) is cut: its 5
    // waits, after the figures' last instant, are not counted, as the live
    // table does not count them.
    let data = two_threads_run(&with_waits(&closed_console([Some(1), Some(3), None], 2)));
    assert_eq!(data.cut_samples, [(0, 200_000_010)]);
    assert_eq!(thread_2_waits(&data), (json!(3), json!(5_000)));
    assert!(
        data.sleeps.iter().all(|x| x.t_ns != 200_000_010),
        "nor its sleeps: {:?}",
        data.sleeps
    );
    // The sample at 100 ms is cut in mid-run (a record it counts never
    // came): its sleep and its waits count with the sample at 200 ms,
    // whose interval spans its. Dropped with it, its 30 ms asleep read as
    // unplaced, and failed the run's `sleeps_placed` check.
    let data = two_threads_run(&with_waits(&closed_console([Some(1), Some(4), Some(3)], 2)));
    assert_eq!(data.cut_samples, [(0, 100_000_010)]);
    let app = &fairness_summary(&data)[0];
    assert_eq!(app["threads"][1]["sleep_ns"], 70_000_000);
    assert_eq!(app["threads"][1]["sleep_unlogged_ns"], 0);
    assert_eq!(thread_2_waits(&data), (json!(8), json!(9_000_000)));
    let thread_2: Vec<(u64, u64)> = data
        .waits
        .iter()
        .filter(|w| w.thread == 2)
        .map(|w| (w.t_ns, w.buckets.iter().map(|b| b.1).sum()))
        .collect();
    assert_eq!(thread_2, [(200_000_010, 8)], "one interval, the sample's");
    // Merged, the longest is the cut sample's when it is longer, and the
    // running total the later one.
    let data = two_threads_run(&with_waits_of(
        &closed_console([Some(1), Some(4), Some(3)], 2),
        20_000_000,
        true,
    ));
    assert_eq!(thread_2_waits(&data), (json!(8), json!(20_000_000)));
    let merged: Vec<(u64, u64, u64)> = data
        .waits
        .iter()
        .filter(|w| w.thread == 2)
        .map(|w| (w.t_ns, w.max_ns, w.total))
        .collect();
    assert_eq!(merged, [(200_000_010, 20_000_000, 8)]);
    // With no waits of its own there, the next sample takes the cut one's.
    let data = two_threads_run(&with_waits_of(
        &closed_console([Some(1), Some(4), Some(2)], 2),
        5_000,
        false,
    ));
    let moved: Vec<(u64, u64)> = data
        .waits
        .iter()
        .filter(|w| w.thread == 2)
        .map(|w| (w.t_ns, w.total))
        .collect();
    assert_eq!(moved, [(200_000_010, 3)]);
}

#[test]
fn a_cut_sample_whose_rows_never_came_is_cut_and_carried_all_the_same() {
    // The sample at 100 ms lost its `sample` record: its sleeps and waits
    // came, its mark counts 3 records and 2 came. No row of it to leave
    // out, it is a cut sample still, and what came of it goes to 200 ms.
    let console: String = with_waits(&closed_console([Some(1), Some(3), Some(3)], 2))
        .lines()
        .filter(|l| !l.contains("\"kind\":\"sample\",\"t_ns\":100000010"))
        .map(|l| format!("{l}\n"))
        .collect();
    let data = two_threads_run(&console);
    assert_eq!(data.cut_samples, [(0, 100_000_010)]);
    let app = &fairness_summary(&data)[0];
    assert_eq!(app["cut_samples"], 1);
    assert_eq!(app["threads"][1]["sleep_unlogged_ns"], 0);
    assert_eq!(thread_2_waits(&data), (json!(8), json!(9_000_000)));
}

/// A console line of application `name`'s (environment `env`) sample at
/// `t` with thread rows `th`, and `extra` fields before `policy`.
fn sample_line(env: u64, name: &str, t: u64, extra: &str, th: &str) -> String {
    format!("@@exo user {{\"env\":{env},\"name\":\"{name}\",\"core\":0,\"kind\":\"sample\",\"t_ns\":{t},{extra}\"policy\":\"stride\",\"th\":{th}}}\n")
}

#[test]
fn the_summary_gives_the_libos_counters_at_the_last_whole_sample() {
    let user = |t: u64, extra: &str, th: &str| sample_line(256, "a", t, extra, th);
    let both = "[[1,300,0,0,0,0],[2,100,0,0,0,0]]";
    let console = [
        "@@exo event {\"event\":\"spawned\",\"env\":256,\"name\":\"a\",\"t_ns\":5}\n".to_string(),
        user(10, "\"rows\":2,\"turns\":[4,1],\"control_ns\":50,", both),
        user(
            100_000_010,
            "\"rows\":2,\"turns\":[90,7],\"control_ns\":900,\"longest_charge_ns\":2100000,",
            both,
        ),
        // Cut short by the run's end: not the last sample, nor its counters.
        user(
            200_000_010,
            "\"rows\":2,\"turns\":[150,9],\"control_ns\":1500,",
            "[[1,300,0,0,0,0]]",
        ),
        "@@exo end {\"exit\":\"success\",\"uptime_ns\":200000020}\n".into(),
    ]
    .concat();
    let data = two_threads_run(&console);
    assert_eq!(
        data.counters,
        [AppCounters {
            app: 0,
            turns_decided: 90,
            turns_run_on: 7,
            control_ns: Some(900),
            longest_charge_ns: Some(2_100_000),
        }]
    );
    let app = &fairness_summary(&data)[0];
    assert_eq!(app["turns"]["decided"], 90);
    assert_eq!(app["turns"]["run_on"], 7);
    assert_eq!(app["control_ns"], 900);
    assert_eq!(app["longest_charge_ns"], 2_100_000);
    // Runs made before applications reported them have none.
    let old: String = console
        .lines()
        .map(|l| {
            let cut = l.find("\"turns\"").map_or(l.to_string(), |i| {
                let end = l[i..].find("\"policy\"").unwrap() + i;
                format!("{}{}", &l[..i], &l[end..])
            });
            cut + "\n"
        })
        .collect();
    let data = two_threads_run(&old);
    assert!(data.counters.is_empty());
    assert!(fairness_summary(&data)[0]["turns"].is_null());
    assert!(fairness_summary(&data)[0]["control_ns"].is_null());
    assert!(fairness_summary(&data)[0]["longest_charge_ns"].is_null());
}

#[test]
fn the_summary_gives_the_runs_in_progress_at_the_last_and_middle_samples() {
    let user =
        |t: u64, extra: &str| sample_line(256, "a", t, extra, "[[1,300,0,0,0,0],[2,100,0,0,0,0]]");
    let console = [
        "@@exo event {\"event\":\"spawned\",\"env\":256,\"name\":\"a\",\"t_ns\":5}\n".to_string(),
        user(10, "\"rows\":2,\"running_ns\":0,"),
        user(100_000_010, "\"rows\":2,\"running_ns\":1500,"),
        user(200_000_010, "\"rows\":2,\"running_ns\":2500,"),
        "@@exo end {\"exit\":\"success\",\"uptime_ns\":200000020}\n".into(),
    ]
    .concat();
    let data = two_threads_run(&console);
    assert_eq!(data.running_at(0, 100_000_010), Some(1500));
    assert_eq!(data.running_at(0, 5), None);
    let app = &fairness_summary(&data)[0];
    assert_eq!(app["running_at_last_sample_ns"], 2500);
    assert_eq!(app["second_half"]["threads_running_ns"], 1500);
    // Runs made before samples reported them have none.
    let data = two_threads_run(&console.replace("\"running_ns\"", "\"other_ns\""));
    assert!(data.running.is_empty());
    assert!(fairness_summary(&data)[0]["running_at_last_sample_ns"].is_null());
}

#[test]
fn the_time_before_the_first_sample_is_owed_like_any_other() {
    // 1,000 threads take the application's control thread a while to
    // start: its first sample comes after they have run. Tickets 3:1 on
    // one core, started at 10 ns, first sampled 100 ms later with 75 and
    // 25 ms, then 150 and 50: owed 75/25 in the first interval too, so
    // their lag is 0 throughout, not the first sample's CPU time.
    let user = |t: u64, th: &str| sample_line(256, "a", t, "\"rows\":2,", th);
    let console = [
        "@@exo event {\"event\":\"spawned\",\"env\":256,\"name\":\"a\",\"t_ns\":5}\n".to_string(),
        "@@exo user {\"env\":256,\"name\":\"a\",\"core\":0,\"kind\":\"app_start\",\"t_ns\":10,\"policy\":\"stride\",\"threads\":2}\n".into(),
        user(
            100_000_010,
            "[[1,300,75000000,7,0,0,100000000],[2,100,25000000,2,0,0,100000000]]",
        ),
        user(
            200_000_010,
            "[[1,300,150000000,14,0,0,200000000],[2,100,50000000,4,0,0,200000000]]",
        ),
        "@@exo trace {\"core\":0,\"runs\":[[10,256]],\"dropped\":0}\n".into(),
        "@@exo end {\"exit\":\"success\",\"uptime_ns\":200000020}\n".into(),
    ]
    .concat();
    let data = two_threads_run(&console);
    let app = &fairness_summary(&data)[0];
    let threads = app["threads"].as_array().unwrap();
    let ideal: Vec<f64> = threads
        .iter()
        .map(|t| t["ideal_cpu_ns"].as_f64().unwrap())
        .collect();
    assert_eq!(ideal, [150_000_000.0, 50_000_000.0], "{app}");
    for t in threads {
        assert!(t["max_abs_lag_quanta"].as_f64().unwrap() < 1e-6, "{t}");
        assert!(t["share_error_pp"].as_f64().unwrap().abs() < 1e-9, "{t}");
    }
}

/// The live table owes the threads from the application's start, as the
/// replay does (`Fairness::begin`): what they ran before its first sample
/// is neither lost from their ideal nor shown as lag.
#[test]
fn the_live_table_owes_from_the_applications_start() {
    let mut t = Tracker::default();
    let start: Value = serde_json::from_str(
        r#"{"kind":"app_start","name":"a","t_ns":0,"policy":"stride","threads":2}"#,
    )
    .unwrap();
    assert!(!t.record(&start));
    // First sampled after 100 ms on one core, 2:1 exactly, both threads
    // alive all along.
    assert!(!t.record(&sample(
        "a",
        100_000_000,
        "[[1,200,66666666,5,0,0,100000000],[2,100,33333334,3,0,0,100000000]]"
    )));
    t.flush();
    let shares = t.apps["a"].shares();
    assert!((shares[&1].1 - 2.0 / 3.0).abs() < 1e-6, "{shares:?}");
    assert!((shares[&2].1 - 1.0 / 3.0).abs() < 1e-6, "{shares:?}");
}

/// The second half's figures: the first sample at or after the middle of
/// the application's run (its start to its last sample), the threads' CPU
/// time then, and what it ran after it on the trace.
#[test]
fn the_second_half_starts_at_the_middle_sample() {
    let user = |t: u64, th: &str| sample_line(256, "a", t, "", th);
    let console = [
        "@@exo event {\"event\":\"spawned\",\"env\":256,\"name\":\"a\",\"t_ns\":5}\n".to_string(),
        "@@exo user {\"env\":256,\"name\":\"a\",\"core\":0,\"kind\":\"app_start\",\"t_ns\":10,\"policy\":\"stride\",\"threads\":2}\n".into(),
        user(10, "[[1,300,0,0,0,0],[2,100,0,0,0,0]]"),
        user(40_000_010, "[[1,300,30000000,3,0,0],[2,100,10000000,1,0,0]]"),
        user(60_000_010, "[[1,300,45000000,5,0,0],[2,100,15000000,1,0,0]]"),
        user(100_000_010, "[[1,300,75000000,7,0,0],[2,100,25000000,2,0,0]]"),
        "@@exo trace {\"core\":0,\"runs\":[[10,256],[140000000,4294967295]],\"dropped\":0}\n".into(),
        "@@exo end {\"exit\":\"success\",\"uptime_ns\":140000010}\n".into(),
    ]
    .concat();
    let data = two_threads_run(&console);
    let half = &fairness_summary(&data)[0]["second_half"];
    // The middle is 50 ms: the 60 ms sample is the first at or after it.
    assert_eq!(half["from_sample_ns"], 60_000_010);
    assert_eq!(half["threads_cpu_ns"], 60_000_000);
    assert_eq!(half["ran_after_ns"], 79_999_990);
    // With only a first and a last sample there is no second half.
    let data = rundata(
        &two_threads(),
        &crate::records::parse_records(&restarted_console()),
        2,
        false,
    );
    assert_eq!(fairness_summary(&data)[0]["second_half"], Value::Null);
}

#[test]
fn the_table_names_every_scheduler_an_application_ran_under_in_order() {
    let line = |s: &str| -> Value { serde_json::from_str(s).unwrap() };
    let swap = |t: u64, detail: &str| {
        line(&format!(
            r#"{{"kind":"app_event","name":"eevee","t_ns":{t},"what":"swap","thread":0,"detail":"{detail}","source":"console"}}"#
        ))
    };
    let sample = |t: u64, policy: &str| {
        line(&format!(
            r#"{{"kind":"sample","name":"eevee","t_ns":{t},"policy":"{policy}","th":[[1,100,{t},0,0,0]]}}"#
        ))
    };
    let mut t = Tracker::default();
    t.record(&line(
        r#"{"kind":"app_start","name":"eevee","t_ns":0,"policy":"eevdf"}"#,
    ));
    t.record(&sample(0, "eevdf"));
    t.record(&swap(10, "eevdf -> stride"));
    t.record(&sample(20, "stride"));
    t.record(&sample(30, "stride"));
    t.record(&swap(40, "stride -> eevdf"));
    t.record(&sample(50, "eevdf"));
    t.flush();
    let table = t.table(&BTreeMap::new());
    let row = table.lines().nth(1).unwrap();
    assert!(row.starts_with("eevee(eevdf→stride→eevdf) "), "{table}");
    // The header's first column is as wide as the widest name in it.
    let header = table.lines().next().unwrap();
    let column = |line: &str, word: &str| line[..line.find(word).unwrap()].chars().count();
    assert_eq!(
        column(header, "thread"),
        column(row, "t1"),
        "columns line up: {table}"
    );
}

#[test]
fn an_application_that_has_not_run_yet_shows_no_shares() {
    let mut t = Tracker::default();
    t.record(&sample("a", 0, "[[1,100,0,0,0,0]]"));
    t.record(&sample("a", 100, "[[1,100,100,0,0,0]]"));
    // Just started (a restarted instance): one snapshot, nothing run.
    t.record(&sample("a#2", 100, "[[1,100,0,0,0,0]]"));
    t.flush();
    let table = t.table(&BTreeMap::new());
    let row = |app: &str| -> Vec<String> {
        table
            .lines()
            .find(|l| l.starts_with(&format!("{app}(")))
            .unwrap_or_else(|| panic!("{app} in {table}"))
            .split_whitespace()
            .map(String::from)
            .collect()
    };
    assert_eq!(row("a")[3..6], ["100.0", "100.0", "+0.0"], "{table}");
    // Not 0.0 and 0.0, which read as a thread starved.
    assert_eq!(row("a#2")[3..6], ["-", "-", "-"], "{table}");
}

/// The kernel's record of console command `seq` for environment `env`.
fn console_forwarded(env: u64, seq: u64, source: &str) -> String {
    format!("@@exo event {{\"event\":\"console\",\"env\":{env},\"core\":0,\"t_ns\":1,\"command\":\"swap x\",\"outcome\":\"forwarded\",\"source\":\"{source}\",\"seq\":{seq}}}\n")
}

/// An application's swap record; `extra`: fields after `source`.
fn swap_record(env: u64, name: &str, t: u64, source: &str, extra: &str) -> String {
    format!("@@exo user {{\"env\":{env},\"name\":\"{name}\",\"core\":1,\"kind\":\"app_event\",\"t_ns\":{t},\"what\":\"swap\",\"thread\":0,\"detail\":\"stride -> rr\",\"source\":\"{source}\"{extra}}}\n")
}

/// An application's reply to console command `seq`.
fn console_reply(env: u64, name: &str, t: u64, seq: u64) -> String {
    format!("@@exo user {{\"env\":{env},\"name\":\"{name}\",\"core\":1,\"kind\":\"app_event\",\"t_ns\":{t},\"what\":\"console\",\"thread\":0,\"seq\":{seq},\"detail\":\"swap rr\",\"outcome\":\"ok\",\"source\":\"console\"}}\n")
}

/// An application's spawn and start.
fn app_started(env: u64, name: &str) -> String {
    format!("@@exo event {{\"event\":\"spawned\",\"env\":{env},\"name\":\"{name}\",\"t_ns\":5}}\n@@exo user {{\"env\":{env},\"name\":\"{name}\",\"core\":0,\"kind\":\"app_start\",\"t_ns\":10,\"policy\":\"stride\",\"threads\":2}}\n")
}

/// The swaps' details in the run made of `lines`.
fn swap_details(lines: &[String]) -> Vec<String> {
    let data = two_threads_run(&lines.concat());
    data.events
        .iter()
        .filter(|e| e.kind == "swap")
        .map(|e| e.detail.clone())
        .collect()
}

const RUN_END: &str = "@@exo end {\"exit\":\"success\",\"uptime_ns\":100}\n";

#[test]
fn a_change_is_attributed_by_its_own_application_s_reply_and_command() {
    // Two instances (envs 256 and 512) whose inbox numbers overlap. A's
    // typed swap (its reply is seq 1, typed) must not take B's scripted
    // reply (seq 0) that comes between, nor B's scripted command seq 1; a
    // swap the scenario planned stays the scenario's. (Records as
    // applications made them before a change carried its command's
    // number.)
    let swap = |env, name, t, source| swap_record(env, name, t, source, "");
    let console = [
        app_started(256, "a"),
        app_started(512, "a#2"),
        console_forwarded(256, 0, "script"),
        console_forwarded(256, 1, "console"),
        console_forwarded(512, 0, "script"),
        console_forwarded(512, 1, "script"),
        console_reply(256, "a", 20, 0),
        swap(256, "a", 30, "console"),
        console_reply(512, "a#2", 31, 0),
        console_reply(256, "a", 32, 1),
        swap(256, "a", 40, "scenario"),
        console_reply(512, "a#2", 41, 1),
        console_forwarded(256, 2, "script"),
        console_reply(256, "a", 42, 2),
        RUN_END.into(),
    ];
    assert_eq!(
        swap_details(&console),
        ["stride -> rr (console)", "stride -> rr (scenario)"]
    );
}

#[test]
fn a_change_carrying_its_command_s_number_needs_no_reply() {
    // The run ended between a scripted swap and the application's reply:
    // the swap's own number names the command. Instance a#2's command 0,
    // typed, does not count for a's.
    let console = [
        app_started(256, "a"),
        app_started(512, "a#2"),
        console_forwarded(512, 0, "console"),
        console_forwarded(256, 0, "script"),
        swap_record(256, "a", 30, "console", ",\"seq\":0"),
        RUN_END.into(),
    ];
    assert_eq!(swap_details(&console), ["stride -> rr (script)"]);
    // With its number, a reply to another command that comes next is not
    // taken for its own (typed 1, after scripted 0).
    let console = [
        app_started(256, "a"),
        console_forwarded(256, 0, "script"),
        console_forwarded(256, 1, "console"),
        swap_record(256, "a", 30, "console", ",\"seq\":0"),
        console_reply(256, "a", 32, 1),
        RUN_END.into(),
    ];
    assert_eq!(swap_details(&console), ["stride -> rr (script)"]);
}
