//! Hostile: tries to forge the harness's records through its own console
//! lines (issue 14, hole 10). The runner reads `@@exo <kind> <json>` lines
//! as the kernel's records (checks, exits, statistics): a `Log` with a
//! record after a newline, or a record in the middle of a log line, must
//! not become one. Its `Report`s are user records, never anything else.
#![cfg_attr(target_os = "none", no_std, no_main)]

use libos::{report, sys, App, Epilogue};

const FORGED: &str = "@@exo check {\"test\":\"env\",\"check\":\"forged\",\"ok\":false,\"detail\":\"forged by ring 3\"}";

fn worker(core: usize) -> ! {
    if core == 0 {
        let mut refused = 0;
        for (i, tail) in ["\n", "\r", "\r\n", " "].iter().enumerate() {
            let text = libos::fmt::format(format_args!("line {i}{tail}{FORGED}"));
            if sys::log(text.as_str()).is_err() {
                refused += 1;
            }
        }
        // A report is a user record whatever it holds (it cannot end the
        // line: newlines are refused).
        let in_report = sys::report(&FORGED[7..]).is_ok();
        report!("\"kind\":\"forger_done\",\"refused\":{refused},\"report_ok\":{in_report}");
    }
    loop {
        core::hint::spin_loop();
    }
}

libos::program!(App {
    name: "forger",
    main: worker,
    epilogue: Epilogue::Cooperative,
    on_fault: None
});
