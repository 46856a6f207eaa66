//! Which events a figure marks, and where their names go so none overprints
//! another.

use crate::rundata::Event;

/// An event worth a vertical line: when, and the word naming it.
#[derive(Clone, Debug, PartialEq)]
pub struct Marker {
    pub t_ns: u64,
    pub label: String,
}

/// How long after a console command its effect's own event may come and
/// still be the same change (the effect names it; the command is not drawn
/// twice).
const EFFECT_WITHIN_NS: u64 = 100_000_000;

/// The console's commands that only show or end something (the kernel's
/// `scenario::console`): `slices <core>` prints a core's slots, `window`
/// the live table's span. They change nothing in the run.
const SHOWING_ONLY: [&str; 6] = ["help", "list", "slices", "window", "quit", "q"];

/// The events a timeline marks: changes (swaps, named by the policy swapped
/// to, tickets, joins, leaves, starts, stops, slot changes) and the console
/// commands that changed something and succeeded without an event of their
/// own. Repossessions (hundreds a second) and spawns are not changes; a
/// failed console command, or one that only shows something, changed
/// nothing and draws nothing.
pub fn markers(events: &[Event]) -> Vec<Marker> {
    events
        .iter()
        .filter_map(|e| match e.kind.as_str() {
            "repossession" | "spawned" => None,
            "killed" if stopped_by_console(e, events) => None,
            "console" => {
                let (command, outcome) = e.detail.split_once(" -> ")?;
                let ok = outcome.trim_end_matches(" (script)") == "ok";
                // Another application's change at the same time is not
                // this command's effect.
                let effect_drawn = events.iter().any(|f| {
                    f.kind != "console"
                        && f.app == e.app
                        && asked_by_console(f)
                        && f.t_ns >= e.t_ns
                        && f.t_ns - e.t_ns <= EFFECT_WITHIN_NS
                });
                let words: Vec<&str> = command.split_whitespace().collect();
                let word = *words.first()?;
                let changes = !SHOWING_ONLY.contains(&word);
                let label = match words[..] {
                    // The application answers `ok` to a swap to the policy
                    // it already runs and records no swap.
                    ["swap", _, to] if !swapped_after(e, events) => {
                        format!("swap to {to} (already)")
                    }
                    _ => word.to_string(),
                };
                (ok && changes && !effect_drawn).then_some(Marker {
                    t_ns: e.t_ns,
                    label,
                })
            }
            "swap" => Some(Marker {
                t_ns: e.t_ns,
                // `from -> to (source)`
                label: match e.detail.split(" -> ").nth(1) {
                    Some(to) => format!("swap to {}", to.split(' ').next().unwrap_or(to)),
                    None => "swap".into(),
                },
            }),
            kind => Some(Marker {
                t_ns: e.t_ns,
                label: kind.replace('_', " "),
            }),
        })
        .collect()
}

/// Whether console command `e`'s application recorded a swap the console
/// asked for after it and before the console's next command to it (its
/// effect, however late it came).
fn swapped_after(e: &Event, events: &[Event]) -> bool {
    let next = events
        .iter()
        .filter(|f| f.kind == "console" && f.app == e.app && f.t_ns > e.t_ns)
        .map(|f| f.t_ns)
        .min()
        .unwrap_or(u64::MAX);
    events.iter().any(|f| {
        f.kind == "swap"
            && f.app == e.app
            && asked_by_console(f)
            && (e.t_ns..next).contains(&f.t_ns)
    })
}

/// Whether an application's change was a console command's doing, typed
/// (`(console)`) or from the runner's script (`(script)`).
fn asked_by_console(f: &Event) -> bool {
    f.detail.ends_with("(console)") || f.detail.ends_with("(script)")
}

/// Whether `killed` is what a console `stop` of its application did: the
/// command is drawn (`stop`), not again its effect. The kernel kills before
/// it records the command, so the kill may come first.
fn stopped_by_console(killed: &Event, events: &[Event]) -> bool {
    events.iter().any(|e| {
        e.kind == "console"
            && e.app.is_some()
            && e.app == killed.app
            && e.t_ns.abs_diff(killed.t_ns) <= EFFECT_WITHIN_NS
            && e.detail
                .split_once(" -> ")
                .is_some_and(|(command, outcome)| {
                    command.split_whitespace().next() == Some("stop")
                        && outcome.trim_end_matches(" (script)") == "ok"
                })
    })
}

/// Rows for labels `[(left px, width px)]` sorted by left edge: each goes in
/// the first of `rows` rows where it clears the label before it by `gap`;
/// `None` when no row has room (its line is drawn, its name is not).
pub fn stack(labels: &[(f64, f64)], rows: usize, gap: f64) -> Vec<Option<usize>> {
    let mut ends = vec![f64::NEG_INFINITY; rows];
    labels
        .iter()
        .map(|&(left, width)| {
            let row = ends.iter().position(|&end| left >= end + gap)?;
            ends[row] = left + width;
            Some(row)
        })
        .collect()
}
