use super::*;

const GOOD: &str = "exo-launch 1\n\
app a 2 all 0 -\n\
sched stride\n\
thread 1 100 0 - cpu\n\
end\n\
\n\
app b 1 0,2 500 1500 sched_env\n\
end\n";

#[test]
fn parses_apps_headers_and_bodies() {
    let plan = Plan::parse(GOOD).unwrap();
    assert_eq!(plan.len(), 2);
    let a = plan.app("a").unwrap();
    assert_eq!((a.slots_per_core, a.start_ms, a.stop_ms), (2, 0, None));
    assert_eq!(a.args, "sched stride\nthread 1 100 0 - cpu\n");
    assert!(a.on_core(0) && a.on_core(7));
    let b = plan.app("b").unwrap();
    assert_eq!((b.start_ms, b.stop_ms, b.args), (500, Some(1500), ""));
    assert_eq!((a.program, b.program), (APP_PROGRAM, "sched_env"));
    assert!(b.on_core(0) && !b.on_core(1) && b.on_core(2));
    assert!(plan.app("c").is_none());
    assert_eq!((a.frame_quota, b.frame_quota), (None, None));
}

#[test]
fn a_header_may_set_the_frame_quota() {
    let plan = Plan::parse(
        "exo-launch 1\napp a 1 all 0 - frames=50000\nend\napp b 1 all 0 - sched_env frames=7\nend\n",
    )
    .unwrap();
    let (a, b) = (plan.app("a").unwrap(), plan.app("b").unwrap());
    assert_eq!((a.program, a.frame_quota), (APP_PROGRAM, Some(50_000)));
    assert_eq!((b.program, b.frame_quota), ("sched_env", Some(7)));
}

#[test]
fn rejects_bad_plans_with_the_line() {
    let bad = |text: &str, line: usize| {
        let e = Plan::parse(text).unwrap_err();
        assert_eq!(e.line, line, "{text:?}: {e}");
    };
    bad("", 0);
    bad("exo-launch 2\n", 1);
    bad("exo-launch 1\nap a 1 all 0 -\nend\n", 2);
    bad("exo-launch 1\napp a x all 0 -\nend\n", 2);
    bad("exo-launch 1\napp a 100000 all 0 -\nend\n", 2);
    bad("exo-launch 1\napp a 1 0,x 0 -\nend\n", 2);
    bad("exo-launch 1\napp a 1 all soon -\nend\n", 2);
    bad("exo-launch 1\napp a 1 all 0 never\nend\n", 2);
    bad("exo-launch 1\napp a 1 all 0\nend\n", 2);
    bad("exo-launch 1\napp a 1 all 0 - sched_env extra\nend\n", 2);
    bad("exo-launch 1\napp a 1 all 0 - frames=0\nend\n", 2);
    bad("exo-launch 1\napp a 1 all 0 - frames=x\nend\n", 2);
    bad("exo-launch 1\napp a 1 all 0 - frames=9999999999\nend\n", 2);
    bad("exo-launch 1\napp a 1 all 0 - frames=5 app\nend\n", 2);
    bad("exo-launch 1\napp a 1 all 0 - frames=5 frames=6\nend\n", 2);
    bad("exo-launch 1\napp a 1 all 0 -\nsched rr\n", 3);
}

#[test]
fn arbitrary_text_never_panics() {
    use proptest::prelude::*;
    proptest!(ProptestConfig::with_cases(2000), |(text in "(exo-launch 1\n)?((app|end|[a-z0-9 ,-]{0,12})\n){0,12}")| {
        if let Ok(plan) = Plan::parse(&text) {
            for app in plan.apps() {
                let _ = app.on_core(3);
            }
        }
    });
}

#[test]
fn an_optional_slots_line_sizes_the_vectors() {
    let plan = Plan::parse("exo-launch 1\nslots 6\napp a 2 all 0 -\nend\n").unwrap();
    assert_eq!((plan.slots, plan.len()), (Some(6), 1));
    assert_eq!(Plan::parse(GOOD).unwrap().slots, None);
    assert_eq!(Plan::parse("exo-launch 1\nslots 0\n").unwrap_err().line, 2);
    assert_eq!(
        Plan::parse("exo-launch 1\nslots many\n").unwrap_err().line,
        2
    );
}

#[test]
fn the_vector_holds_the_most_slots_held_at_once() {
    let plan = |apps: &str| format!("exo-launch 1\n{apps}");
    // Two apps for ever, one after the other, one that overlaps both.
    let text = plan(
        "app a 2 all 0 -\nend\n\
         app b 3 all 0 5000\nend\n\
         app c 3 all 7000 9000\nend\n\
         app d 1 0,1 4000 8000\nend\n",
    );
    let p = Plan::parse(&text).unwrap();
    // core 0: a(2) + b(3) + d(1) = 6 at 4-6 s; a + c + d = 6 at 7-8 s.
    assert_eq!(p.slots_at_once(0), 6);
    // core 2: a + b, then a + c (b's slots are back by then).
    assert_eq!(p.slots_at_once(2), 5);
    // Back to back within the stop margin: both counted.
    let text = plan("app x 4 all 0 1000\nend\napp y 4 all 1500 -\nend\n");
    assert_eq!(Plan::parse(&text).unwrap().slots_at_once(0), 8);
    let text = plan("app x 4 all 0 1000\nend\napp y 4 all 2500 -\nend\n");
    assert_eq!(Plan::parse(&text).unwrap().slots_at_once(0), 4);
    assert_eq!(Plan::parse("exo-launch 1\n").unwrap().slots_at_once(0), 0);
}

#[test]
fn written_plans_read_back() {
    let cores = [0u32, 2, 5];
    let apps = [
        AppEntry {
            name: "a",
            slots_per_core: 2,
            cores: None,
            start_ms: 0,
            stop_ms: None,
            program: None,
            frame_quota: Some(40_000),
            args: "sched stride\nthread 1 100 0 - cpu\n",
        },
        AppEntry {
            name: "b-2",
            slots_per_core: 1,
            cores: Some(&cores),
            start_ms: 500,
            stop_ms: Some(1500),
            program: Some("sched_env"),
            frame_quota: None,
            args: "",
        },
        AppEntry {
            name: "c",
            slots_per_core: 3,
            cores: Some(&cores[1..2]),
            start_ms: 7,
            stop_ms: Some(8),
            program: None,
            frame_quota: None,
            args: "no newline at the end",
        },
    ];
    for slots in [None, Some(6)] {
        let mut text = String::new();
        write_plan(&mut text, slots, &apps).unwrap();
        let plan = Plan::parse(&text).unwrap_or_else(|e| panic!("{e}:\n{text}"));
        assert_eq!((plan.slots, plan.len()), (slots, 3));
        for (want, got) in apps.iter().zip(plan.apps()) {
            assert_eq!(got.name, want.name);
            assert_eq!(got.slots_per_core, want.slots_per_core);
            assert_eq!((got.start_ms, got.stop_ms), (want.start_ms, want.stop_ms));
            assert_eq!(got.args.trim_end(), want.args.trim_end());
            assert_eq!(got.program, want.program.unwrap_or(APP_PROGRAM));
            assert_eq!(got.frame_quota, want.frame_quota);
            for core in 0..8 {
                let on = want.cores.is_none_or(|c| c.contains(&(core as u32)));
                assert_eq!(got.on_core(core), on, "{} core {core}", want.name);
            }
        }
    }
}
