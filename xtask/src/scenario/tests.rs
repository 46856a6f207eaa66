use super::*;

const GOOD: &str = r#"
name = "demo"
duration_ms = 2000
slice_us = 1000
seed = 7

[[app]]
name = "a"
scheduler = "lottery"
slices = 2
cores = [0, 1]

[[app.thread]]
name = "big"
tickets = 200
behaviour = "cpu"

[[app.thread]]
name = "w"
tickets = 100
behaviour = "cpu"
count = 3

[[app]]
name = "b"
scheduler = "rr"
start_ms = 500
stop_ms = 1500

[[app.thread]]
behaviour = "sleep"
run_us = 1000
sleep_us = 4000

[[app.thread]]
behaviour = "fraction"
fraction = 0.25
join_ms = 100
leave_ms = 900

[[event]]
at_ms = 1000
app = "a"
swap = "stride"

[[event]]
at_ms = 1200
app = "a"
thread = "w.1"
tickets = 300

[[event]]
at_ms = 1500
app = "a"
slices = 3
"#;

#[test]
fn a_good_scenario_compiles_to_a_plan_the_kernel_and_apps_accept() {
    let s = parse(GOOD, "file", 4).unwrap();
    assert_eq!(s.name, "demo");
    let plan = s.launch_plan();
    let parsed = kernel::launch::Plan::parse(&plan).unwrap();
    assert_eq!(parsed.len(), 2);
    // Core 0 holds a's 3 (after its slices event) and b's 1.
    assert_eq!(parsed.slots, Some(4));
    let a = parsed.app("a").unwrap();
    assert_eq!(a.slots_per_core, 2);
    assert!(a.on_core(1) && !a.on_core(2));
    let spec = workloads::appspec::AppSpec::parse(a.args).unwrap();
    assert_eq!(spec.threads.len(), 4);
    assert_eq!(spec.threads[0].tickets, 200);
    assert_eq!(spec.seed, 7);
    assert_eq!(spec.events.len(), 3);
    assert_eq!(spec.events[2].action, workloads::appspec::Action::Slices(3));
    // `w.1` is the third thread: id 3, and the console finds it by name.
    assert_eq!(spec.thread_named("w.1"), Some(3));
    assert_eq!(
        spec.events[1].action,
        workloads::appspec::Action::Tickets {
            thread: 3,
            tickets: 300
        }
    );
    let b = parsed.app("b").unwrap();
    assert_eq!((b.start_ms, b.stop_ms), (500, Some(1500)));
    let spec = workloads::appspec::AppSpec::parse(b.args).unwrap();
    assert_eq!(
        spec.threads[1].behaviour,
        workloads::appspec::Behaviour::Fraction { permille: 250 }
    );
    assert_eq!(spec.threads[1].leave_ms, Some(900));
    assert!(!spec.thread_trace, "off unless the scenario asks");
    assert_eq!(spec.core_speed, None, "told only in deterministic runs");
    let det = s.launch_plan_at(Some(125_000_000));
    let det = kernel::launch::Plan::parse(&det).unwrap();
    for name in ["a", "b"] {
        let spec = workloads::appspec::AppSpec::parse(det.app(name).unwrap().args).unwrap();
        assert_eq!(spec.core_speed, Some(125_000_000), "{name}");
    }
    let traced = parse(
        &GOOD.replacen("\n", "\nthread_trace = true\n", 1),
        "file",
        4,
    )
    .unwrap();
    let plan = traced.launch_plan();
    let parsed = kernel::launch::Plan::parse(&plan).unwrap();
    for app in ["a", "b"] {
        let args = parsed.app(app).unwrap().args;
        assert!(
            workloads::appspec::AppSpec::parse(args)
                .unwrap()
                .thread_trace,
            "{app}"
        );
    }
}

#[test]
fn sched_override_replaces_every_scheduler_and_drops_swaps() {
    let mut s = parse(GOOD, "file", 4).unwrap();
    let events = s.events.len();
    assert_eq!(s.override_scheduler("rr"), events - 2);
    assert!(s.apps.iter().all(|a| a.get_ref().scheduler == "rr"));
    assert_eq!(s.events.len(), 2);
    assert!(s.events.iter().all(|e| e.get_ref().swap.is_none()));
}

fn fails(text: &str, line: usize, field: &str) {
    let e = parse(text, "f", 4).unwrap_err();
    assert_eq!((e.line, e.field.as_str()), (line, field), "{e}\n{text}");
}

const APP: &str =
    "[[app]]\nname = \"a\"\nscheduler = \"stride\"\n[[app.thread]]\nbehaviour = \"cpu\"\n";

#[test]
fn every_kind_of_bad_input_names_line_and_field() {
    // Syntax and types (toml's own errors carry the line).
    fails("[[app]]\nname = = 3\n", 2, "(syntax)");
    fails("duration_ms = \"long\"\n[[app]]\n", 1, "(syntax)");
    fails(&format!("colour = 1\n{APP}"), 1, "(syntax)");
    fails(&format!("{APP}flavour = 2\n"), 6, "(syntax)");
    fails("", 1, "(syntax)");
    // Semantics: (text replaced in APP, by what, line, field).
    let cases = [
        ("stride", "fifo", 3, "app[0].scheduler"),
        ("\"a\"", "\"a b\"", 2, "app[0].name"),
        ("scheduler", "cores = [9]\nscheduler", 3, "app[0].cores"),
        ("scheduler", "slices = 0\nscheduler", 3, "app[0].slices"),
        ("scheduler", "slices = 300\nscheduler", 0, "app"),
        (
            "scheduler",
            "start_ms = 5\nstop_ms = 5\nscheduler",
            4,
            "app[0].stop_ms",
        ),
        ("\"cpu\"", "\"spin\"", 5, "app[0].thread[0].behaviour"),
        (
            "\"cpu\"",
            "\"sleep\"\nrun_us = 5",
            4,
            "app[0].thread[0].sleep_us",
        ),
        (
            "\"cpu\"",
            "\"fraction\"\nfraction = 1.5",
            6,
            "app[0].thread[0].fraction",
        ),
        (
            "\"cpu\"",
            "\"cpu\"\ntickets = 0",
            6,
            "app[0].thread[0].tickets",
        ),
        ("\"cpu\"", "\"cpu\"\ncount = 10001", 1, "app[0].thread"),
        (
            "\"cpu\"",
            "\"cpu\"\njoin_ms = 9\nleave_ms = 3",
            7,
            "app[0].thread[0].leave_ms",
        ),
    ];
    for (from, to, line, field) in cases {
        fails(&APP.replace(from, to), line, field);
    }
    fails(&format!("slice_us = 1\n{APP}"), 0, "slice_us");
    fails(&format!("duration_ms = 0\n{APP}"), 0, "duration_ms");
    fails(&format!("{APP}{APP}"), 2, "app[0].name");
    fails(
        &format!("{APP}[[app.thread]]\nname = \"t1\"\nbehaviour = \"cpu\"\n"),
        1,
        "app[0].thread",
    );
    let events = [
        ("app = \"z\"\nswap = \"rr\"\n", 8, "event[0].app"),
        ("app = \"a\"\nswap = \"fifo\"\n", 9, "event[0].swap"),
        ("app = \"a\"\n", 6, "event[0].swap"),
        (
            "app = \"a\"\nthread = \"nobody\"\ntickets = 5\n",
            9,
            "event[0].thread",
        ),
        (
            "app = \"a\"\nthread = \"t1\"\ntickets = 0\n",
            10,
            "event[0].tickets",
        ),
    ];
    for (body, line, field) in events {
        fails(&format!("{APP}[[event]]\nat_ms = 1\n{body}"), line, field);
    }
}

#[test]
fn request_streams_are_checked_and_reach_the_application() {
    let server = |requests: &str| {
        format!(
            "[[app]]\nname = \"s\"\nscheduler = \"stride\"\n{requests}[[app.thread]]\nbehaviour = \"serve\"\ncount = 2\n"
        )
    };
    let good = server(
        "[app.requests]\nrate_per_s = 500\nservice = \"bimodal\"\nservice_us = 10\nlong_us = 900\nlong_fraction = 0.05\n",
    );
    let s = parse(&good, "f", 2).unwrap();
    let spec = AppSpec::parse(&{
        let mut t = String::new();
        s.app_spec(s.apps[0].get_ref(), None).write(&mut t).unwrap();
        t
    })
    .unwrap();
    assert_eq!(
        spec.requests,
        Some(Requests {
            rate_per_s: 500,
            service: Service::Bimodal {
                short_us: 10,
                long_us: 900,
                long_permille: 50
            }
        })
    );
    assert_eq!(spec.threads[1].behaviour, Behaviour::Serve);
    // (stream, line, field)
    let bad = [
        ("", 1, "app[0].requests"),
        (
            "[app.requests]\nrate_per_s = 0\nservice = \"fixed\"\nservice_us = 5\n",
            5,
            "app[0].requests.rate_per_s",
        ),
        (
            "[app.requests]\nrate_per_s = 9\nservice = \"gamma\"\nservice_us = 5\n",
            6,
            "app[0].requests.service",
        ),
        (
            "[app.requests]\nrate_per_s = 9\nservice = \"fixed\"\nservice_us = 0\n",
            7,
            "app[0].requests.service_us",
        ),
        (
            "[app.requests]\nrate_per_s = 2000000\nservice = \"fixed\"\nservice_us = 5\n",
            5,
            "app[0].requests.rate_per_s",
        ),
        (
            "[app.requests]\nrate_per_s = 9\nservice = \"bimodal\"\nservice_us = 5\nlong_us = 50\nlong_fraction = 0.0001\n",
            9,
            "app[0].requests.long_fraction",
        ),
        (
            "[app.requests]\nrate_per_s = 9\nservice = \"bimodal\"\nservice_us = 5\nlong_us = 50\n",
            4,
            "app[0].requests.long_fraction",
        ),
        (
            "[app.requests]\nrate_per_s = 9\nservice = \"fixed\"\nservice_us = 5\nlong_us = 50\n",
            8,
            "app[0].requests.long_us",
        ),
    ];
    for (requests, line, field) in bad {
        fails(&server(requests), line, field);
    }
    fails(
        &format!("{APP}[app.requests]\nrate_per_s = 9\nservice = \"fixed\"\nservice_us = 5\n"),
        6,
        "app[0].requests",
    );
}

#[test]
fn a_scheduler_environment_compiles_to_its_own_program_after_its_clients() {
    let client = |name: &str| {
        format!("[[app]]\nname = \"{name}\"\nscheduler = \"rr\"\nslices = 0\n[[app.thread]]\nbehaviour = \"cpu\"\n")
    };
    let env = "[scheduler_env]\nscheduler = \"stride\"\nslices = 2\n[[scheduler_env.client]]\napp = \"a\"\ntickets = 3\n[[scheduler_env.client]]\napp = \"b\"\n";
    let text = format!("{}{}{env}", client("a"), client("b"));
    let s = parse(&text, "f", 4).unwrap();
    let plan_text = s.launch_plan();
    let plan = kernel::launch::Plan::parse(&plan_text).unwrap();
    let names: Vec<&str> = plan.apps().map(|a| a.name).collect();
    assert_eq!(names, ["a", "b", "sched_env"]);
    let e = plan.app("sched_env").unwrap();
    assert_eq!((e.program, e.slots_per_core), ("sched_env", 2));
    assert_eq!(plan.app("a").unwrap().program, kernel::launch::APP_PROGRAM);
    assert_eq!(plan.app("a").unwrap().slots_per_core, 0);
    let spec = workloads::sched_env::Spec::parse(e.args).unwrap();
    assert_eq!(spec.policy.as_deref(), Some("stride"));
    assert_eq!(spec.clients, [("a".to_string(), 3), ("b".to_string(), 100)]);
    // Its slots count in every core's vector.
    assert_eq!(s.vector_len(4), 2);
    // A client runs on as many cores at once as the environment holds.
    assert_eq!(s.capacities(4)["a"], 4);
    // (scenario text, line, field)
    let bad = [
        (
            format!("{}{}", client("a"), env),
            7,
            "scheduler_env.client[1].app",
        ),
        (
            format!(
                "{}{}{}",
                client("a"),
                client("b"),
                env.replace("stride", "fifo")
            ),
            14,
            "scheduler_env.scheduler",
        ),
        (
            format!(
                "{}{}{}",
                client("a"),
                client("b"),
                env.replace("tickets = 3", "tickets = 0")
            ),
            13,
            "scheduler_env.client[0].tickets",
        ),
        (
            format!(
                "{}{}{}",
                client("a").replace("slices = 0", "slices = 1"),
                client("b"),
                env
            ),
            4,
            "app[0].slices",
        ),
        (
            format!(
                "{}{}{}",
                client("a"),
                client("b"),
                env.replace("slices = 2", "slices = 0")
            ),
            15,
            "scheduler_env.slices",
        ),
        (
            format!("{}{}", client("a"), client("b")),
            4,
            "app[0].slices",
        ),
    ];
    for (text, line, field) in bad {
        fails(&text, line, field);
    }
}

#[test]
fn every_shipped_scenario_validates_and_compiles() {
    let dir = crate::build::workspace_root().join("scenarios");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            let s = load(&path, 8).unwrap_or_else(|e| panic!("{e}"));
            let plan = s.launch_plan();
            let parsed = kernel::launch::Plan::parse(&plan)
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            for app in parsed.apps() {
                // Each program reads its own arguments.
                let read = match app.program {
                    "sched_env" => workloads::sched_env::Spec::parse(app.args).map(drop),
                    _ => workloads::appspec::AppSpec::parse(app.args)
                        .map(drop)
                        .map_err(|e| e.what),
                };
                read.unwrap_or_else(|e| panic!("{}: app {}: {e}", path.display(), app.name));
            }
            n += 1;
        }
    }
    assert!(n >= 5, "only {n} scenarios in {}", dir.display());
}

#[test]
fn arbitrary_text_is_rejected_or_compiles_cleanly() {
    use proptest::prelude::*;
    let words = "(duration_ms|slice_us|name|scheduler|behaviour|tickets|count|at_ms|app|swap|\\[\\[app\\]\\]|\\[\\[app.thread\\]\\]|\\[\\[event\\]\\]| = |\"a\"|\"cpu\"|\"rr\"|0|7|100|\n){0,40}";
    proptest!(ProptestConfig::with_cases(3000), |(text in words)| {
        if let Ok(s) = parse(&text, "p", 4) {
            let plan = s.launch_plan();
            prop_assert!(kernel::launch::Plan::parse(&plan).is_ok());
        }
    });
}

#[test]
fn the_vector_length_follows_the_kernels_rule() {
    assert_eq!(STOP_MARGIN_MS, kernel::launch::STOP_MARGIN_MS);
    let dir = crate::build::workspace_root().join("scenarios");
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "toml") {
            continue;
        }
        let s = load(&path, 8).unwrap();
        if !s.events.iter().any(|e| e.get_ref().slices.is_some()) {
            let plan = s.launch_plan();
            let parsed = kernel::launch::Plan::parse(&plan).unwrap();
            let kernel_len = (0..8).map(|c| parsed.slots_at_once(c)).max().unwrap();
            assert_eq!(
                s.vector_len(8) as usize,
                kernel_len.max(1),
                "{}",
                path.display()
            );
        }
    }
}

#[test]
fn ten_thousand_threads_fit_an_application_its_arguments_and_its_quota() {
    let text = APP.replace("\"cpu\"", "\"cpu\"\ncount = 10000");
    let s = parse(&text, "many", 16).unwrap();
    let plan = s.launch_plan();
    let parsed = kernel::launch::Plan::parse(&plan).unwrap();
    let a = parsed.app("a").unwrap();
    let spec = workloads::appspec::AppSpec::parse(a.args).unwrap();
    assert_eq!(spec.threads.len(), 10_000);
    assert!(a.args.len() < 200, "one line for alike threads: {}", a.args);
    // Stacks (4 frames a thread) and more, on top of the default.
    let quota = a.frame_quota.unwrap();
    assert!(quota >= DEFAULT_FRAME_QUOTA + 10_001 * 5, "{quota}");
    assert!(quota <= kernel::launch::MAX_FRAME_QUOTA);
    // It needs more memory than a 256 MiB guest has, and fits in 1 GiB.
    let e = s.check_memory(256).unwrap_err();
    assert!(e.contains("10000 threads") && e.contains("memory="), "{e}");
    s.check_memory(1024).unwrap();
    // One thread more is refused.
    let e = parse(&APP.replace("\"cpu\"", "\"cpu\"\ncount = 10001"), "f", 16).unwrap_err();
    assert!(e.message.contains("1..=10000"), "{e}");
}

#[test]
fn a_description_too_long_for_the_arguments_is_refused_by_name() {
    // Threads each unlike the last cannot share a line.
    let mut text = String::from(APP);
    for k in 0..1500 {
        text.push_str(&format!(
            "[[app.thread]]\nbehaviour = \"cpu\"\ntickets = {}\n",
            k + 1
        ));
    }
    let e = parse(&text, "f", 4).unwrap_err();
    assert_eq!(e.field, "app[0].thread", "{e}");
    assert!(e.message.contains("count"), "{e}");
}

const CURRENCIES: &str = r#"
[[app]]
name = "a"
scheduler = "lottery"

[[app.currency]]
name = "A"
funding = 100

[[app.currency]]
name = "A1"
parent = "A"
funding = 30

[[app.thread]]
name = "x"
tickets = 1000
currency = "A1"
behaviour = "cpu"
count = 2

[[app.thread]]
name = "y"
behaviour = "cpu"
"#;

#[test]
fn currencies_reach_the_application_in_declaration_order() {
    let s = parse(CURRENCIES, "c", 2).unwrap();
    let spec = s.app_spec(s.apps[0].get_ref(), None);
    assert_eq!(
        spec.currencies,
        [
            CurrencySpec {
                parent: 0,
                funding: 100
            },
            CurrencySpec {
                parent: 1,
                funding: 30
            }
        ]
    );
    let currencies: Vec<u32> = spec.threads.iter().map(|t| t.currency).collect();
    assert_eq!(currencies, [2, 2, 0]);
    let mut args = String::new();
    spec.write(&mut args).unwrap();
    assert_eq!(AppSpec::parse(&args).unwrap(), spec);
}

#[test]
fn bad_currencies_name_line_and_field() {
    let with = |from: &str, to: &str| CURRENCIES.replacen(from, to, 1);
    let at = |text: &str, field: &str, needle: &str| {
        let e = parse(text, "c", 2).unwrap_err();
        assert_eq!(e.field, field, "{e}");
        assert!(e.message.contains(needle), "{e}");
    };
    at(
        &with("\"lottery\"", "\"stride\""),
        "app[0].currency",
        "lottery",
    );
    at(
        &with("funding = 100", "funding = 0"),
        "app[0].currency[0].funding",
        "positive",
    );
    at(
        &with("name = \"A1\"", "name = \"A\""),
        "app[0].currency[1].name",
        "another",
    );
    at(
        &with("name = \"A1\"", "name = \"12\""),
        "app[0].currency[1].name",
        "number",
    );
    at(
        &with("parent = \"A\"", "parent = \"B\""),
        "app[0].currency[1].parent",
        "before",
    );
    at(
        &with("currency = \"A1\"", "currency = \"Z\""),
        "app[0].thread[0].currency",
        "no such",
    );
    // A currency's line is its own.
    let e = parse(&with("funding = 30", "funding = 0"), "c", 2).unwrap_err();
    assert_eq!(e.line, 13, "{e}");
}

#[test]
fn the_docs_name_every_shipped_scenario() {
    let root = crate::build::workspace_root();
    let docs = std::fs::read_to_string(root.join("docs/scenarios.md")).unwrap();
    let shipped = &docs[docs.find("## Shipped scenarios").expect("the section")..];
    let shipped = &shipped[..shipped[3..].find("\n## ").map_or(shipped.len(), |e| e + 3)];
    let mut missing = Vec::new();
    for entry in std::fs::read_dir(root.join("scenarios")).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        if !shipped.contains(&format!("`{name}`")) {
            missing.push(name);
        }
    }
    assert!(
        missing.is_empty(),
        "docs/scenarios.md, Shipped scenarios, does not name {missing:?}"
    );
}
