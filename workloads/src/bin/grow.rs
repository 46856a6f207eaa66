//! Starts with a single slot (core 0) and uses the libOS slice manager to
//! acquire two on every core, then runs like `spin` everywhere.
#![cfg_attr(target_os = "none", no_std, no_main)]

use libos::{report, slices, App, Epilogue};

fn worker(core: usize) -> ! {
    if core == 0 {
        let got = slices::hold(2, None);
        report!(
            "\"kind\":\"grow\",\"acquired\":{},\"ok\":{}",
            got.unwrap_or_else(|(n, _)| n),
            got.is_ok()
        );
    }
    loop {
        core::hint::spin_loop();
    }
}

libos::program!(App {
    name: "grow",
    main: worker,
    epilogue: Epilogue::Cooperative,
    on_fault: None
});
