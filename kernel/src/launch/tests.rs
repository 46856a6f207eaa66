use super::*;

const GOOD: &str = "exo-launch 1\n\
app a 2 all 0 -\n\
sched stride\n\
thread 1 100 0 - cpu\n\
end\n\
\n\
app b 1 0,2 500 1500\n\
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
    assert!(b.on_core(0) && !b.on_core(1) && b.on_core(2));
    assert!(plan.app("c").is_none());
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
    bad("exo-launch 1\napp a 1 all 0 - extra\nend\n", 2);
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
