//! The library OS every program links.
//!
//! - [`sys`]: a typed wrapper per system call, the exported pages
//!   (sysinfo, slice vectors, accounting, this environment's dispatch
//!   pages) and the clock; [`fmt`]: `log!`/`report!` without allocation.
//! - [`rt`]: the upcall entry, registration of the upcall table (with the
//!   resume range), the allocator, the panic path, and the simple
//!   per-core-worker model of `program!` ([`App`]: what to do at an
//!   epilogue, on a fault) used by the adversarial programs.
//! - [`context`]: full user contexts saved at a call and resumed in user
//!   mode from the registered resume range.
//! - [`threads`]: user-level threads on every core the application holds,
//!   one swappable policy (`sched_api::Policy`) for all of them, sleeping
//!   on time or memory, block/unblock/join, per-application fault handler
//!   ([`threaded_program!`]); its pure state machine is `threads::table`.
//! - [`wakeup`]: every sleeper folded into the one wakeup predicate.
//! - [`slices`]: the slice manager (how many slots to hold, where).
#![cfg_attr(not(test), no_std)]

extern crate alloc;

pub mod context;
pub mod fmt;
pub mod heap;
pub mod rt;
pub mod slices;
pub mod sys;
pub mod threads;
pub mod wakeup;

pub use abi;
pub use predicate;
pub use rt::{App, Epilogue, FaultAction};
pub use sched_api;
pub use sched_registry;
