//! The soak's check that every application started under the policy its
//! scenario names, fed a run where one did not.

use super::*;

/// A soak run of one phase whose applications reported starting under
/// `started(name, the policy its scenario names)`, each sampled once with its threads served and its
/// table audited: its violations.
fn violations(started: impl Fn(&str, &str) -> String) -> Vec<String> {
    let (phases, _) = phases(10_000);
    assert_eq!(phases, 1);
    let text = scenario(4, 10_000, 1);
    let spec: toml::Value = text.parse().unwrap();
    let dir = std::env::temp_dir().join(format!("exo-soak-start-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("scenario.toml"), &text).unwrap();
    let mut console = String::new();
    for (k, role) in ["steady", "sleepy", "visitor"].into_iter().enumerate() {
        let name = format!("p0-{role}");
        let env = 256 * (k + 1);
        let own = scheduler_of(&spec, &name).unwrap();
        let policy = started(&name, own);
        console.push_str(&format!(
            "@@exo user {{\"env\":{env},\"name\":\"{name}\",\"core\":0,\"kind\":\"app_start\",\"t_ns\":1,\"policy\":\"{policy}\"}}\n\
             @@exo user {{\"env\":{env},\"name\":\"{name}\",\"core\":0,\"kind\":\"sample\",\"t_ns\":2,\"policy\":\"{policy}\",\"th\":[[1,100,5,0,0,0]],\"audit\":[3,0,0,0,0]}}\n"
        ));
    }
    let out = crate::RunOutcome {
        end: crate::qemu::End::Kernel(abi::ExitCode::Success),
        exit: Some(abi::ExitCode::Success),
        exit_name: "success".into(),
        records: crate::records::parse_records(&console),
        console,
        run_dir: dir.clone(),
        summary_path: dir.join("summary.json"),
        summary: Value::Null,
    };
    let report = check(&out, phases);
    let _ = std::fs::remove_dir_all(&dir);
    report.violations
}

#[test]
fn an_application_started_under_another_policy_than_its_scenarios_is_a_violation() {
    let starts = |v: &[String]| -> Vec<String> {
        v.iter()
            .filter(|v| v.contains("started under"))
            .cloned()
            .collect()
    };
    // Each under its own: no such violation.
    assert_eq!(
        starts(&violations(|_, own| own.to_string())),
        Vec::<String>::new()
    );
    // The sleepy one under a policy its scenario does not name.
    let other = |own: &str| if own == "rr" { "stride" } else { "rr" };
    let v = violations(|name, own| {
        if name == "p0-sleepy" {
            other(own).to_string()
        } else {
            own.to_string()
        }
    });
    let spec: toml::Value = scenario(4, 10_000, 1).parse().unwrap();
    let own = scheduler_of(&spec, "p0-sleepy").unwrap();
    assert_eq!(
        starts(&v),
        [format!(
            "p0-sleepy: started under {} where its scenario names {own}",
            other(own)
        )],
        "{v:?}"
    );
}
