//! The one list of scheduling policies.
//!
//! A policy's identity (its name, one-line description, capabilities and
//! constructor) is declared once, by its own crate, as a
//! [`sched_api::PolicyInfo`]; [`POLICIES`] lists them. Everything else
//! derives from this list: the kernel's `sched=` and the number it passes
//! applications ([`index_of`]), the libOS's constructor ([`build`]), the
//! applications' console, the runner's scenario schema and value lists, the
//! benchmarks, and the conformance suite (`tests/conformance.rs`), which
//! every policy listed here runs.
//!
//! Adding a policy is its crate, its dependency in this crate's
//! `Cargo.toml` and one line below.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

extern crate alloc;

use alloc::boxed::Box;
use alloc::string::String;
use core::fmt;

pub use sched_api::{Entitlement, Params, Policy, PolicyInfo, PolicyKind, SchedError};

/// Every policy, the default (the one a run without `sched=` starts) first.
/// A policy's position is the number the kernel passes applications in
/// `SysInfo::sched`.
pub static POLICIES: &[PolicyInfo] = &[
    sched_stride::INFO, // the default
    sched_lottery::INFO,
    sched_rr::INFO,
    sched_eevdf::INFO,
];

/// The policy a run starts with when it names none.
pub fn default_policy() -> &'static PolicyInfo {
    &POLICIES[0]
}

/// The policy named `name`.
pub fn by_name(name: &str) -> Option<&'static PolicyInfo> {
    POLICIES.iter().find(|p| p.kind.name() == name)
}

/// The registered kind named `name`.
pub fn kind(name: &str) -> Option<PolicyKind> {
    by_name(name).map(|p| p.kind)
}

/// The policy of `kind`.
pub fn info(kind: PolicyKind) -> Option<&'static PolicyInfo> {
    by_name(kind.name())
}

/// The number naming the policy `name` between the kernel and the libOS.
pub fn index_of(name: &str) -> Option<u32> {
    POLICIES
        .iter()
        .position(|p| p.kind.name() == name)
        .and_then(|i| u32::try_from(i).ok())
}

/// The policy numbered `index` ([`index_of`]).
pub fn by_index(index: u32) -> Option<&'static PolicyInfo> {
    POLICIES.get(usize::try_from(index).ok()?)
}

/// Every policy's name, in registry order.
pub fn names() -> impl Iterator<Item = &'static str> + Clone {
    POLICIES.iter().map(|p| p.kind.name())
}

/// The names as a sentence for messages: `"stride, lottery, rr or eevdf"`.
pub fn names_sentence() -> String {
    let mut s = String::new();
    let n = POLICIES.len();
    for (i, name) in names().enumerate() {
        if i > 0 {
            s.push_str(if i + 1 == n { " or " } else { ", " });
        }
        s.push_str(name);
    }
    s
}

/// A fresh policy of `kind`.
pub fn build(kind: PolicyKind, params: &Params) -> Result<Box<dyn Policy>, BuildError> {
    let info = info(kind).ok_or(BuildError::Unknown)?;
    (info.build)(params).map_err(BuildError::Refused)
}

/// Why [`build`] made nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BuildError {
    /// No registered policy has that name.
    Unknown,
    /// The policy refused the parameters.
    Refused(SchedError),
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BuildError::Unknown => write!(f, "unknown policy (expected {})", names_sentence()),
            BuildError::Refused(e) => write!(f, "{e}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_short_words() {
        for (i, p) in POLICIES.iter().enumerate() {
            let name = p.kind.name();
            assert!(
                (1..=15).contains(&name.len())
                    && name
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'),
                "{name}: names are console and command-line words"
            );
            assert_eq!(index_of(name), Some(i as u32));
            assert_eq!(by_index(i as u32).map(|p| p.kind), Some(p.kind));
            assert_eq!(kind(name), Some(p.kind));
            assert!(!p.description.is_empty());
        }
        assert_eq!(by_name("fifo").map(|p| p.kind), None);
        assert_eq!(by_index(POLICIES.len() as u32).map(|p| p.kind), None);
    }

    #[test]
    fn every_policy_builds_and_names_itself() {
        let params = Params {
            quantum_ns: 1_000_000,
            cores: 2,
            seed: 7,
        };
        for p in POLICIES {
            let built = build(p.kind, &params).unwrap();
            assert_eq!(built.kind(), p.kind);
            assert_eq!((built.cores(), built.quantum_ns()), (2, 1_000_000));
            for bad in [
                Params {
                    quantum_ns: 0,
                    ..params
                },
                Params { cores: 0, ..params },
            ] {
                assert!(matches!(build(p.kind, &bad), Err(BuildError::Refused(_))));
            }
        }
        assert!(matches!(
            build(PolicyKind::new("fifo"), &params),
            Err(BuildError::Unknown)
        ));
    }

    #[test]
    fn the_sentence_lists_every_name() {
        let s = names_sentence();
        assert!(names().all(|n| s.contains(n)), "{s}");
        assert!(s.contains(" or ") || POLICIES.len() == 1);
    }
}
