//! The policy seam of the libOS: one small trait that stride, lottery and
//! round robin implement, so an application can swap its scheduler at run
//! time without losing a thread.
//!
//! Fairness state crosses a swap in one policy-neutral quantity: each
//! thread's *virtual time*, its service divided by its weight
//! (`ran_ns * VT_SCALE / weight`, summed). Every policy keeps it up to date
//! whether it uses it or not; stride uses it directly as its pass, so a
//! thread that got less than its share under lottery is owed exactly that
//! after a swap to stride, and nobody gains or loses.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

extern crate alloc;

use alloc::vec::Vec;

pub mod feasible;
pub mod sim;

pub use feasible::feasible_weights;

/// Scale of virtual time: one ns of service at weight 1.
pub const VT_SCALE: u128 = 1 << 20;

/// A thread, as the policies name it.
pub type ThreadId = u32;
/// A core index.
pub type CoreId = usize;

/// The policies.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PolicyKind {
    Stride,
    Lottery,
    RoundRobin,
}

impl PolicyKind {
    pub const ALL: [PolicyKind; 3] = [
        PolicyKind::Stride,
        PolicyKind::Lottery,
        PolicyKind::RoundRobin,
    ];

    pub const fn name(self) -> &'static str {
        match self {
            PolicyKind::Stride => "stride",
            PolicyKind::Lottery => "lottery",
            PolicyKind::RoundRobin => "rr",
        }
    }

    pub fn from_name(name: &str) -> Option<PolicyKind> {
        Self::ALL.into_iter().find(|k| k.name() == name)
    }
}

/// Where a thread is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ThreadState {
    Runnable,
    Running(CoreId),
    Sleeping,
}

/// How a run ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunEnd {
    /// The quantum ran out (or the slice was revoked).
    Preempted,
    /// The thread gave the core up early but stays runnable.
    Yielded,
    /// The thread blocked: it sleeps until woken.
    Blocked,
}

/// Why a call was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SchedError {
    UnknownThread,
    DuplicateThread,
    ZeroWeight,
    /// `charge` for a thread not running on that core.
    NotRunning,
    /// `sleep`/`remove`/`set_weight` is fine, but `wake` needs a sleeper.
    NotSleeping,
    /// `sleep` of a thread that is running (charge it with `Blocked`).
    IsRunning,
    /// The snapshot names a thread twice or has a zero weight.
    BadSnapshot,
}

/// Everything a policy knows about one thread, in neutral terms.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ThreadRecord {
    pub id: ThreadId,
    pub weight: u32,
    pub state: ThreadState,
    /// CPU time received, exactly as charged.
    pub service_ns: u64,
    /// Service / weight, in `VT_SCALE` units (see the crate docs).
    pub vtime: u128,
}

/// The whole state of a policy, for a swap.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Snapshot {
    pub threads: Vec<ThreadRecord>,
    /// The system's virtual time: where a newly runnable thread starts.
    pub global_vtime: u128,
}

impl Snapshot {
    /// Checks ids are unique and weights non-zero.
    pub fn validate(&self) -> Result<(), SchedError> {
        let mut ids: Vec<ThreadId> = self.threads.iter().map(|t| t.id).collect();
        ids.sort_unstable();
        let unique = ids.windows(2).all(|w| w[0] != w[1]);
        if !unique || self.threads.iter().any(|t| t.weight == 0) {
            return Err(SchedError::BadSnapshot);
        }
        Ok(())
    }
}

/// The scheduler interface. Policies are safe, `no_std`, allocation only
/// on membership changes; `pick` and `charge` are the hot path.
pub trait Policy: Send {
    fn kind(&self) -> PolicyKind;
    /// Adds a runnable thread with `weight` (tickets).
    fn add(&mut self, id: ThreadId, weight: u32) -> Result<(), SchedError>;
    /// Removes a thread (in any state) and returns its record.
    fn remove(&mut self, id: ThreadId) -> Result<ThreadRecord, SchedError>;
    /// Changes a weight; the thread keeps its place (no gain, no loss).
    fn set_weight(&mut self, id: ThreadId, weight: u32) -> Result<(), SchedError>;
    /// A runnable (not running) thread goes to sleep.
    fn sleep(&mut self, id: ThreadId) -> Result<(), SchedError>;
    /// A sleeping thread becomes runnable again.
    fn wake(&mut self, id: ThreadId) -> Result<(), SchedError>;
    /// Chooses a thread for `core` and marks it running there. Never
    /// returns a thread that runs on another core.
    fn pick(&mut self, core: CoreId) -> Option<ThreadId>;
    /// Charges `id` the `ran_ns` it actually used on `core`, and ends its run.
    fn charge(
        &mut self,
        id: ThreadId,
        core: CoreId,
        ran_ns: u64,
        end: RunEnd,
    ) -> Result<(), SchedError>;
    /// The number of cores shares are computed for.
    fn set_cores(&mut self, cores: usize);
    /// The quantum this policy intends (a thread runs at most this long).
    fn quantum_ns(&self) -> u64;
    /// The whole state, policy-neutral.
    fn export(&self) -> Snapshot;
    /// Replaces the state with `snapshot` (threads running stay running).
    fn import(&mut self, snapshot: Snapshot) -> Result<(), SchedError>;
    /// One thread's record.
    fn record(&self, id: ThreadId) -> Option<ThreadRecord>;
    /// Number of threads.
    fn len(&self) -> usize;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Lag a swap carries, in each thread's own quanta: a thread ahead of or
/// behind its share keeps at most this much of it into the new policy.
/// Unbounded, a leg of round robin (which ignores weights) would make the
/// next proportional policy starve light threads for seconds to pay back.
pub const SWAP_LAG_QUANTA: u128 = 2;

/// A thread's virtual time brought within the swap lag bound of `global`.
pub fn bounded_vtime(vtime: u128, global: u128, quantum_ns: u64, weight: u32) -> u128 {
    let bound = SWAP_LAG_QUANTA * vtime_for(quantum_ns, weight);
    vtime.clamp(global.saturating_sub(bound), global + bound)
}

/// Virtual time for `ran_ns` of service at `weight`.
pub fn vtime_for(ran_ns: u64, weight: u32) -> u128 {
    u128::from(ran_ns) * VT_SCALE / u128::from(weight.max(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for k in PolicyKind::ALL {
            assert_eq!(PolicyKind::from_name(k.name()), Some(k));
        }
        assert_eq!(PolicyKind::from_name("fifo"), None);
    }

    #[test]
    fn snapshots_are_validated() {
        let r = |id, weight| ThreadRecord {
            id,
            weight,
            state: ThreadState::Runnable,
            service_ns: 0,
            vtime: 0,
        };
        assert!(Snapshot {
            threads: vec![r(1, 1), r(2, 3)],
            global_vtime: 0
        }
        .validate()
        .is_ok());
        assert_eq!(
            Snapshot {
                threads: vec![r(1, 1), r(1, 3)],
                global_vtime: 0
            }
            .validate(),
            Err(SchedError::BadSnapshot)
        );
        assert_eq!(
            Snapshot {
                threads: vec![r(1, 0)],
                global_vtime: 0
            }
            .validate(),
            Err(SchedError::BadSnapshot)
        );
    }
}
