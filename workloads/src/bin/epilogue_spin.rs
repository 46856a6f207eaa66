//! Hostile: its epilogue spins forever instead of yielding.
#![cfg_attr(target_os = "none", no_std, no_main)]

use libos::{App, Epilogue};

fn worker(_core: usize) -> ! {
    loop {
        core::hint::spin_loop();
    }
}

libos::program!(App {
    name: "epilogue_spin",
    main: worker,
    epilogue: Epilogue::Spin,
    on_fault: None
});
