//! Hostile: ignores revocation (resumes itself from its epilogue) and never
//! yields; the kernel must repossess it at the end of every grace period.
#![cfg_attr(target_os = "none", no_std, no_main)]

use libos::{App, Epilogue};

fn worker(_core: usize) -> ! {
    let mut x = 0u64;
    loop {
        x = core::hint::black_box(x.wrapping_add(1));
    }
}

libos::program!(App {
    name: "hog",
    main: worker,
    epilogue: Epilogue::Ignore,
    on_fault: None
});
