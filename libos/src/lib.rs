//! The library OS every program links. It takes the kernel's upcalls and
//! gives the program a simple model: one worker context per core, entered at
//! `main(core)` the first time the environment runs there, preempted and
//! resumed exactly across revocations and repossessions.
//!
//! Policy hooks (what to do at an epilogue, on a fault) are the program's,
//! through [`App`].
#![cfg_attr(not(test), no_std)]

extern crate alloc;

pub mod context;
pub mod fmt;
pub mod rt;
pub mod slices;
pub mod sys;
pub mod threads;
pub mod wakeup;

pub use abi;
pub use predicate;
pub use rt::{App, Epilogue, FaultAction};
pub use sched_api;
