//! The figures' titles name the schedulers that ran; which events a
//! timeline marks, and by what name.

use super::events::markers;
use super::title;
use crate::rundata::{App, Event, RunData};

const MS: u64 = 1_000_000;

fn app(name: &str, timeline: &[&str]) -> App {
    App {
        name: name.into(),
        scheduler_timeline: timeline
            .iter()
            .enumerate()
            .map(|(k, s)| (k as u64 * 100 * MS, s.to_string()))
            .collect(),
        ..Default::default()
    }
}

fn run(apps: Vec<App>) -> RunData {
    RunData {
        scenario_name: "swapper".into(),
        cpus_online: 2,
        apps,
        trusted: Some(true),
        ..Default::default()
    }
}

#[test]
fn a_title_names_the_schedulers_each_application_ran_under_in_order() {
    // On the second line, after where the run's time came from, so a long
    // list does not push what the figure shows, or whether it is
    // deterministic, out of a title cut to the figure's width.
    let one = run(vec![app("eevee", &["eevdf", "stride", "eevdf"])]);
    assert_eq!(
        title(&one, "lag"),
        "swapper: lag\n2 cores, not det: host-timed; under eevdf→stride→eevdf"
    );
    // Several applications: each named with its own.
    let two = run(vec![
        app("lotto", &["lottery"]),
        app("strider", &["stride", "rr"]),
    ]);
    assert_eq!(
        title(&two, "lag"),
        "swapper: lag\n2 cores, not det: host-timed; lotto under lottery; strider under stride→rr"
    );
    // Several that all ran under the same: named once.
    let same = run(vec![app("a", &["stride"]), app("b", &["stride"])]);
    assert_eq!(
        title(&same, "lag"),
        "swapper: lag\n2 cores, not det: host-timed; under stride"
    );
    // None known: where the time came from alone.
    let mut det = run(vec![]);
    det.deterministic = true;
    assert_eq!(title(&det, "lag"), "swapper: lag\n2 cores, det");
}

#[test]
fn a_title_says_when_the_run_was_not_trusted_or_its_trust_is_unknown() {
    // Beside where its time came from, before the schedulers: a cut
    // title keeps it.
    let mut untrusted = run(vec![app("eevee", &["eevdf"])]);
    untrusted.deterministic = true;
    untrusted.trusted = Some(false);
    assert_eq!(
        title(&untrusted, "lag"),
        "swapper: lag\n2 cores, det, NOT trusted; under eevdf"
    );
    untrusted.trusted = None;
    assert_eq!(
        title(&untrusted, "lag"),
        "swapper: lag\n2 cores, det, trust unknown; under eevdf"
    );
    untrusted.trusted = Some(true);
    untrusted.ended = Some("timeout".into());
    assert_eq!(
        title(&untrusted, "lag"),
        "swapper: lag\n2 cores, det, ended: timeout; under eevdf"
    );
}

fn event(t_ms: u64, kind: &str, app: Option<u32>, detail: &str) -> Event {
    Event {
        t_ns: t_ms * MS,
        kind: kind.into(),
        app,
        detail: detail.into(),
        ..Default::default()
    }
}

fn labels(events: &[Event]) -> Vec<String> {
    markers(events).into_iter().map(|m| m.label).collect()
}

#[test]
fn a_console_stop_is_marked_once() {
    // The kernel kills the application before it records the command, so
    // the `killed` may come first; either way it is the stop's effect.
    for killed_at in [999, 1000, 1001] {
        let events = [
            event(killed_at, "killed", Some(0), "stopped by the scenario"),
            event(1000, "console", Some(0), "stop lotto -> ok"),
        ];
        assert_eq!(labels(&events), ["stop"], "killed at {killed_at} ms");
    }
    // A kill the console did not ask for, or of another application, is
    // its own marker.
    let events = [
        event(1000, "console", Some(0), "stop lotto -> ok"),
        event(1001, "killed", Some(1), "killed by its parent"),
        event(5000, "killed", Some(0), "stopped by the scenario"),
    ];
    assert_eq!(labels(&events), ["stop", "killed", "killed"]);
}

#[test]
fn a_console_swap_to_the_policy_already_running_says_so() {
    // The application answers `ok` and records no swap: nothing changed.
    let events = [
        event(1000, "console", Some(0), "swap eevee stride -> ok"),
        event(2000, "console", Some(0), "swap eevee rr -> ok (script)"),
        event(2001, "swap", Some(0), "stride -> rr (script)"),
        event(3000, "console", Some(0), "swap eevee eevdf -> ok"),
        event(3001, "swap", Some(0), "rr -> eevdf (console)"),
        // A scripted swap carried out late (the application's next
        // sample): its command is drawn, and it is no swap "(already)".
        event(5000, "console", Some(0), "swap eevee rr -> ok (script)"),
        event(5300, "swap", Some(0), "eevdf -> rr (script)"),
    ];
    assert_eq!(
        labels(&events),
        [
            "swap to stride (already)",
            "swap to rr",
            "swap to eevdf",
            "swap",
            "swap to rr"
        ]
    );
    // A swap of another application after it is not this one's effect.
    let events = [
        event(1000, "console", Some(0), "swap eevee stride -> ok"),
        event(1001, "swap", Some(1), "rr -> stride (console)"),
    ];
    assert_eq!(
        labels(&events),
        ["swap to stride (already)", "swap to stride"]
    );
}
