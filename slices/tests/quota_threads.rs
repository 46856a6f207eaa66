//! The quota holds across cores without a global lock: threads standing in
//! for cores, each with its own slice vector (as under its own lock), race
//! to allocate and free slots for environments sharing quotas.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;

use slices::{EnvId, Quota, SliceError, SliceVector};

const THREADS: usize = 4;
const LIMITS: [u32; 3] = [3, 17, 1000];

#[test]
fn quotas_are_never_exceeded_under_contention() {
    let quotas: Arc<Vec<Quota>> = Arc::new(LIMITS.iter().map(|&l| Quota::new(l)).collect());
    let stop = Arc::new(AtomicBool::new(false));
    // A watcher checks the bound while the cores race.
    let watcher = {
        let (quotas, stop) = (quotas.clone(), stop.clone());
        thread::spawn(move || {
            let mut looks = 0u64;
            while !stop.load(Ordering::Acquire) {
                for q in quotas.iter() {
                    assert!(q.held() <= q.limit());
                }
                looks += 1;
            }
            looks
        })
    };
    let cores: Vec<_> = (0..THREADS)
        .map(|t| {
            let quotas = quotas.clone();
            thread::spawn(move || {
                let mut v = SliceVector::new(32, 1000);
                let mut x = 0x9E37_79B9_7F4A_7C15u64 ^ t as u64;
                let mut exceeded = 0;
                for _ in 0..20_000 {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    let e = (x % 3) as usize;
                    let q = &quotas[e];
                    if x & 8 == 0 {
                        match v.alloc_any(EnvId(e as u32), q) {
                            Ok(_) | Err(SliceError::NoFreeSlot) => {}
                            Err(SliceError::QuotaExceeded) => exceeded += 1,
                            Err(other) => panic!("{other:?}"),
                        }
                    } else {
                        let first = v.slots_of(EnvId(e as u32)).next();
                        if let Some(s) = first {
                            v.free(s, EnvId(e as u32), q).unwrap();
                        }
                    }
                    assert!(q.held() <= q.limit());
                }
                (v, exceeded)
            })
        })
        .collect();
    let results: Vec<(SliceVector, u32)> = cores.into_iter().map(|h| h.join().unwrap()).collect();
    stop.store(true, Ordering::Release);
    assert!(watcher.join().unwrap() > 0);
    // Every unit held is a slot bound on some core, and the small quota was
    // actually contended.
    for (e, q) in quotas.iter().enumerate() {
        let bound: usize = results
            .iter()
            .map(|(v, _)| v.held_by(EnvId(e as u32)))
            .sum();
        assert_eq!(q.held() as usize, bound);
    }
    assert!(results.iter().map(|(_, x)| x).sum::<u32>() > 0);
    // Teardown everywhere returns it all.
    for (mut v, _) in results {
        for (e, q) in quotas.iter().enumerate() {
            v.free_all(EnvId(e as u32), q);
        }
    }
    assert!(quotas.iter().all(|q| q.held() == 0));
}
