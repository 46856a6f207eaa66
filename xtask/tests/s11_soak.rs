//! Layer 11: the soak, short version (`just soak` runs ten minutes): 16
//! cores, applications joining, leaving, swapping schedulers and sleeping,
//! while the kernel checks time conservation, frames and slots, and every
//! application's libOS audits its thread table. Any violation, anywhere,
//! fails it.
mod common;
use xtask::{soak, Accel};

#[test]
fn sixteen_cores_of_churn_keep_every_invariant() {
    let duration_ms = 20_000;
    let opts = soak::options(16, duration_ms, Accel::Tcg, 7).unwrap();
    let opts = xtask::RunOptions {
        name: Some("test-soak-16c".into()),
        ..opts
    };
    let out = common::run(&opts);
    let (phases, _) = soak::phases(duration_ms);
    let report = soak::check(&out, phases);
    assert!(
        report.passed(),
        "{}\n{}\n{}",
        report.lines.join("\n"),
        report.violations.join("\n"),
        common::tail(&out.console)
    );
}
