//! The figures' titles name the schedulers that ran; which events a
//! timeline marks, and by what name.

use super::title;
use crate::rundata::{App, RunData};

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
        ..Default::default()
    }
}

#[test]
fn a_title_names_the_schedulers_each_application_ran_under_in_order() {
    let one = run(vec![app("eevee", &["eevdf", "stride", "eevdf"])]);
    assert_eq!(
        title(&one, "lag"),
        "swapper: lag (2 cores; eevdf→stride→eevdf)"
    );
    // Several applications: each named with its own.
    let two = run(vec![
        app("lotto", &["lottery"]),
        app("strider", &["stride", "rr"]),
    ]);
    assert_eq!(
        title(&two, "lag"),
        "swapper: lag (2 cores; lotto: lottery, strider: stride→rr)"
    );
    // Several that all ran under the same: named once.
    let same = run(vec![app("a", &["stride"]), app("b", &["stride"])]);
    assert_eq!(title(&same, "lag"), "swapper: lag (2 cores; stride)");
}
