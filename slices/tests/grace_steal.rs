//! The grace period against the hypervisor's steal time (issue 13): time
//! the host ran something else on a core's vCPU after its environment was
//! told to yield is given back at the grace's end, once, within the same
//! bound as a renewal; without steal (TCG, hardware) nothing changes.

use slices::{EnvId, Grace, Seen, Tick, TurnClock};

const SLICE: u64 = 1_000;
const G: Grace = Grace {
    grace_ns: 300,
    renew_limit_ns: SLICE,
};

/// A turn of 1,000 ns from 0, told at 1,000 (running, enabled): its grace
/// ends at 1,300.
fn told() -> TurnClock {
    let mut clock = TurnClock::begin(Some(EnvId(1)), 0, 0, SLICE, G);
    assert_eq!(
        clock.tick(SLICE, Seen::default(), G),
        Tick::Revoke { grace_end: 1_300 }
    );
    clock
}

/// What the kernel sees at a tick with the steal clock at `ns` (it read 0
/// when `told` told the turn).
fn stolen(ns: u64) -> Seen {
    Seen {
        steal_clock_ns: ns,
        ..Seen::default()
    }
}

#[test]
fn without_steal_the_grace_ends_where_it_did() {
    assert_eq!(told().tick(1_300, stolen(0), G), Tick::Repossess);
}

#[test]
fn stolen_time_moves_the_graces_end_by_as_much() {
    let mut clock = told();
    assert_eq!(
        clock.tick(1_300, stolen(120), G),
        Tick::Renewed { grace_end: 1_420 }
    );
    assert_eq!(clock.renewed_ns(), 120);
    // Nothing stolen since: taken at the new end.
    assert_eq!(clock.tick(1_420, stolen(120), G), Tick::Repossess);
}

#[test]
fn stolen_time_is_given_back_once() {
    let mut clock = told();
    assert_eq!(
        clock.tick(1_300, stolen(120), G),
        Tick::Renewed { grace_end: 1_420 }
    );
    // 30 ns more stolen meanwhile: 30 more, not 150.
    assert_eq!(
        clock.tick(1_420, stolen(150), G),
        Tick::Renewed { grace_end: 1_450 }
    );
    assert_eq!(clock.tick(1_450, stolen(150), G), Tick::Repossess);
}

#[test]
fn a_disabled_environment_gets_its_stolen_time_too() {
    let mut clock = TurnClock::begin(Some(EnvId(1)), 0, 0, SLICE, G);
    let disabled = Seen {
        disabled: true,
        ..Seen::default()
    };
    assert_eq!(
        clock.tick(SLICE, disabled, G),
        Tick::Defer { grace_end: 1_300 }
    );
    assert_eq!(
        clock.tick(
            1_300,
            Seen {
                steal_clock_ns: 100,
                ..disabled
            },
            G
        ),
        Tick::Renewed { grace_end: 1_400 }
    );
}

#[test]
fn steal_is_given_back_within_the_renewal_bound() {
    // A vCPU off the host for 10 µs: the grace grows by one slice (the
    // bound renewals share), no more; then the core is taken.
    let mut clock = told();
    assert_eq!(
        clock.tick(1_300, stolen(10_000), G),
        Tick::Renewed { grace_end: 2_300 }
    );
    assert_eq!(clock.tick(2_300, stolen(20_000), G), Tick::Repossess);
}

#[test]
fn a_tick_later_than_the_stolen_time_repossesses() {
    // The interrupt came 50 ns after the grace's end, 40 of them stolen:
    // the environment had its grace and 10 ns more.
    assert_eq!(told().tick(1_350, stolen(40), G), Tick::Repossess);
}

#[test]
fn an_untouched_renewal_covers_what_was_stolen_before_it() {
    // Untouched at the grace's end: the grace starts again from 1,300,
    // which gives back the 100 ns stolen until then; only steal after it
    // moves the end again.
    let mut clock = told();
    let untouched = Seen {
        untouched_since_told: true,
        steal_clock_ns: 100,
        ..Seen::default()
    };
    assert_eq!(
        clock.tick(1_300, untouched, G),
        Tick::Renewed { grace_end: 1_600 }
    );
    assert_eq!(clock.tick(1_600, stolen(100), G), Tick::Repossess);
}

#[test]
fn only_the_steal_after_the_turn_was_told_counts() {
    // The clock read 5,000 when the turn was told (steal during the turn
    // itself is the slice's business): 5,120 at the grace's end is 120.
    let mut clock = TurnClock::begin(Some(EnvId(1)), 0, 0, SLICE, G);
    assert_eq!(
        clock.tick(SLICE, stolen(5_000), G),
        Tick::Revoke { grace_end: 1_300 }
    );
    assert_eq!(
        clock.tick(1_300, stolen(5_120), G),
        Tick::Renewed { grace_end: 1_420 }
    );
}

#[test]
fn stolen_time_given_back_is_not_charged_as_overrun() {
    // 250 of the 300 ns of grace stolen: the grace ends at 1,550, and a
    // yield at 1,500 is within it, owing nothing.
    use slices::{Quota, SliceVector};
    let mut v = SliceVector::new(1, SLICE);
    let quota = Quota::new(1);
    v.alloc_named(0, EnvId(1), &quota).unwrap();
    let mut clock = told();
    assert_eq!(
        clock.tick(1_300, stolen(250), G),
        Tick::Renewed { grace_end: 1_550 }
    );
    assert_eq!(clock.end_by_yield(1_500, &mut v, true, G), 0);
    // One at 1,600 owes the 50 ns past the extended grace.
    let mut clock = told();
    clock.tick(1_300, stolen(250), G);
    assert_eq!(clock.end_by_yield(1_600, &mut v, true, G), 50);
}
