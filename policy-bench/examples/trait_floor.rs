//! What a decision costs through `dyn Policy` when the policy does no more
//! than rr's floor (`VecDeque` pop at the pick, push at the charge): the
//! trait's two calls and the bench's loop, which every policy's figure
//! includes and its floor does not. For a profiler, as `decide`:
//! `valgrind --tool=callgrind target/release/examples/trait_floor 1000 100000`
//! (instructions per decision: the difference between two counts, over
//! the difference in decisions).

use std::collections::VecDeque;

use policy_bench::decision;
use sched_api::{CoreId, Policy, PolicyKind, RunEnd, SchedError, Snapshot, ThreadId, ThreadRecord};

/// The ring alone, as a policy: no weights, no records, no lag.
struct Ring {
    queue: VecDeque<ThreadId>,
    running: Vec<Option<ThreadId>>,
}

impl Policy for Ring {
    fn kind(&self) -> PolicyKind {
        PolicyKind::new("ring")
    }
    fn add(&mut self, id: ThreadId, _weight: u32) -> Result<(), SchedError> {
        self.queue.push_back(id);
        Ok(())
    }
    fn remove(&mut self, _id: ThreadId) -> Result<ThreadRecord, SchedError> {
        Err(SchedError::UnknownThread)
    }
    fn try_pick(&mut self, core: CoreId) -> Result<Option<ThreadId>, SchedError> {
        let on = self.running.get_mut(core).ok_or(SchedError::BadCore)?;
        *on = self.queue.pop_front();
        Ok(*on)
    }
    fn charge(&mut self, id: ThreadId, core: CoreId, _: u64, _: RunEnd) -> Result<(), SchedError> {
        *self.running.get_mut(core).ok_or(SchedError::BadCore)? = None;
        self.queue.push_back(id);
        Ok(())
    }
    fn sleep(&mut self, _id: ThreadId) -> Result<(), SchedError> {
        Ok(())
    }
    fn wake(&mut self, _id: ThreadId) -> Result<(), SchedError> {
        Ok(())
    }
    fn set_weight(&mut self, _id: ThreadId, _weight: u32) -> Result<(), SchedError> {
        Ok(())
    }
    fn set_cores(&mut self, _cores: usize) -> Result<(), SchedError> {
        Ok(())
    }
    fn cores(&self) -> usize {
        self.running.len()
    }
    fn quantum_ns(&self) -> u64 {
        1
    }
    fn export(&self) -> Snapshot {
        Snapshot {
            global_vtime: 0,
            threads: Vec::new(),
        }
    }
    fn import(&mut self, _snapshot: Snapshot) -> Result<(), SchedError> {
        Ok(())
    }
    fn record(&self, _id: ThreadId) -> Option<ThreadRecord> {
        None
    }
    fn len(&self) -> usize {
        self.queue.len()
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let n: u32 = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(1000);
    let count: u64 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(100_000);
    let mut p: Box<dyn Policy> = Box::new(Ring {
        queue: (0..n).collect(),
        running: vec![None],
    });
    for _ in 0..count {
        decision(std::hint::black_box(p.as_mut()));
    }
}
