//! Whether every application of a scenario run kept sampling.
//!
//! An application's own main thread reports its threads every `sample_ms`;
//! every figure of the run (shares, lags, the plots) is built from those
//! samples. A run whose application stopped sampling has no figures for
//! the rest of it, and must not end as a success (issue 12: beside threads
//! of 1e8 tickets the main thread never ran again, the run kept one sample,
//! and reported success). The libOS now runs that thread outside the
//! policy; this is the runner's own check, whatever the cause.

use abi::record::RecordKind;

use crate::records::Records;

/// The longest gap between an application's samples (or from its start to
/// the first, or from the last to its end) that still counts as sampling:
/// five periods, and at least a second (a vCPU of a non-deterministic run
/// can be away from the host for hundreds of ms).
pub fn gap_limit_ns(sample_ms: u64) -> u64 {
    (5 * sample_ms * 1_000_000).max(1_000_000_000)
}

/// One description per gap that exceeded [`gap_limit_ns`], for every
/// application that started; empty when every one kept sampling until it
/// ended (it exited, was stopped or killed) or the run did.
pub fn gaps(records: &Records, sample_ms: u64) -> Vec<String> {
    let Some(run_end) = records
        .first(RecordKind::End)
        .and_then(|e| e["uptime_ns"].as_u64())
    else {
        return Vec::new(); // no end: the run failed anyway
    };
    let limit = gap_limit_ns(sample_ms);
    let user = |kind: &'static str| {
        records
            .of(RecordKind::User)
            .filter(move |r| r["kind"] == kind)
    };
    let mut found = Vec::new();
    for start in user("app_start") {
        let (Some(env), Some(started)) = (start["env"].as_u64(), start["t_ns"].as_u64()) else {
            continue;
        };
        let name = start["name"].as_str().unwrap_or("?");
        let ended = records
            .of(RecordKind::Event)
            .filter(|e| e["env"].as_u64() == Some(env))
            .filter(|e| e["event"] == "exited" || e["event"] == "killed")
            .filter_map(|e| e["t_ns"].as_u64())
            .min()
            .unwrap_or(run_end)
            .min(run_end);
        let mut times: Vec<u64> = user("sample")
            .filter(|r| r["env"].as_u64() == Some(env))
            .filter_map(|r| r["t_ns"].as_u64())
            .filter(|&t| t >= started && t <= ended)
            .collect();
        times.sort_unstable();
        times.push(ended);
        let mut last = started;
        for t in times {
            if t - last > limit {
                found.push(format!(
                    "{name} (env {env}) sent no sample from {:.3} s to {:.3} s (limit {:.1} s)",
                    last as f64 / 1e9,
                    t as f64 / 1e9,
                    limit as f64 / 1e9
                ));
            }
            last = t;
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(lines: &[String]) -> Records {
        crate::records::parse_records(&lines.concat())
    }

    fn start(env: u64, t: u64) -> String {
        format!("@@exo user {{\"env\":{env},\"name\":\"a{env}\",\"core\":0,\"kind\":\"app_start\",\"t_ns\":{t}}}\n")
    }

    fn sample(env: u64, t: u64) -> String {
        format!("@@exo user {{\"env\":{env},\"name\":\"a{env}\",\"core\":0,\"kind\":\"sample\",\"t_ns\":{t},\"th\":[]}}\n")
    }

    fn end(t: u64) -> String {
        format!("@@exo end {{\"exit\":\"success\",\"uptime_ns\":{t}}}\n")
    }

    const MS: u64 = 1_000_000;

    #[test]
    fn an_application_that_samples_to_the_end_passes() {
        let mut lines = vec![start(256, 100 * MS)];
        lines.extend((1..50).map(|k| sample(256, 100 * MS + k * 100 * MS)));
        lines.push(end(5_000 * MS));
        assert!(gaps(&run(&lines), 100).is_empty());
    }

    /// Issue 12's run: one sample, then nothing for the rest of the run.
    #[test]
    fn one_sample_then_silence_is_caught() {
        let lines = [start(256, 100 * MS), sample(256, 100 * MS), end(5_000 * MS)];
        let found = gaps(&run(&lines), 100);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].contains("from 0.100 s to 5.000 s"), "{found:?}");
    }

    #[test]
    fn a_gap_in_the_middle_is_caught_and_an_ended_application_is_not() {
        let mut lines = vec![start(256, 0), start(513, 0)];
        // 256 stops sampling between 1 s and 2.5 s, then resumes.
        lines.extend([1, 2, 3, 4, 5, 6, 7, 8, 9, 10].map(|k| sample(256, k * 100 * MS)));
        lines.extend((25..50).map(|k| sample(256, k * 100 * MS)));
        // 513 samples for 1 s, then exits: not a gap.
        lines.extend((1..=10).map(|k| sample(513, k * 100 * MS)));
        lines.push(
            "@@exo event {\"event\":\"exited\",\"env\":513,\"name\":\"a513\",\"t_ns\":1050000000}\n"
                .into(),
        );
        lines.push(end(5_000 * MS));
        let found = gaps(&run(&lines), 100);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].starts_with("a256"), "{found:?}");
    }

    #[test]
    fn the_limit_is_five_periods_and_at_least_a_second() {
        assert_eq!(gap_limit_ns(100), 1_000_000_000);
        assert_eq!(gap_limit_ns(500), 2_500_000_000);
    }
}
