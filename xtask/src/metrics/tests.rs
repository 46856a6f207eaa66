use super::*;

fn close(a: &[f64], b: &[f64]) {
    assert!(
        a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-9),
        "{a:?} vs {b:?}"
    );
}

#[test]
fn proportional_when_nobody_is_capped() {
    close(&water_fill(6.0, &[1.0, 2.0], &[10.0, 10.0]), &[2.0, 4.0]);
}

#[test]
fn an_infeasible_weight_gets_one_core_and_the_rest_share_the_surplus() {
    // 4 cores for 1 s: weights 10,1,1,1,1. Thread 0 asks for 10/14 of 4
    // cores (2.86) but can use 1; the other four share 3 equally.
    close(
        &water_fill(4.0, &[10.0, 1.0, 1.0, 1.0, 1.0], &[1.0; 5]),
        &[1.0, 0.75, 0.75, 0.75, 0.75],
    );
}

#[test]
fn capping_cascades() {
    // 3 units, weights 4,2,1, caps 1,1,5: 0 and 1 saturate in turn.
    close(
        &water_fill(3.0, &[4.0, 2.0, 1.0], &[1.0, 1.0, 5.0]),
        &[1.0, 1.0, 1.0],
    );
}

#[test]
fn sleepers_cap_their_own_ideal() {
    // A thread awake 10% of the time can use only that.
    close(&water_fill(1.0, &[1.0, 1.0], &[0.1, 1.0]), &[0.1, 0.9]);
}

#[test]
fn more_total_than_caps_is_not_invented() {
    close(&water_fill(9.0, &[1.0, 1.0], &[1.0, 2.0]), &[1.0, 2.0]);
    close(&water_fill(1.0, &[0.0, 1.0], &[1.0, 2.0]), &[0.0, 1.0]);
}

#[test]
fn shares_errors_and_envelopes() {
    close(&shares(&[1.0, 3.0]), &[0.25, 0.75]);
    close(&shares(&[0.0, 0.0]), &[0.0, 0.0]);
    assert!((share_error_pp(0.55, 0.5) - 5.0).abs() < 1e-12);
    // 2:1 lottery over 1000 draws: p = 2/3, envelope ~2.9%.
    assert!((lottery_envelope(2.0 / 3.0, 1000.0) - 0.02922).abs() < 1e-4);
}

// ---- One interval, by hand ---------------------------------------------

const MS: u64 = 1_000_000;

/// A thread present and runnable all of `[0, 100 ms]` that received
/// `cpu_ms`.
fn busy(cpu_ms: u64, tickets: u64) -> ThreadInterval {
    ThreadInterval {
        cpu_ns: (cpu_ms * MS) as f64,
        present: (0, 100 * MS),
        asleep: Vec::new(),
        tickets,
        currency: 0,
        fixed: None,
    }
}

/// `busy`, asleep in the given ms ranges.
fn sleeping(cpu_ms: u64, tickets: u64, asleep_ms: &[(u64, u64)]) -> ThreadInterval {
    ThreadInterval {
        asleep: asleep_ms.iter().map(|&(s, e)| (s * MS, e * MS)).collect(),
        ..busy(cpu_ms, tickets)
    }
}

fn ideal_ms(
    capacity: u32,
    policy: Entitlement,
    threads: &[ThreadInterval],
    changes: &[(u64, Change)],
) -> Vec<f64> {
    interval_ideal((0, 100 * MS), capacity, policy, threads, changes)
        .into_iter()
        .map(|v| v / MS as f64)
        .collect()
}

#[test]
fn round_robin_entitles_runnable_threads_equally_whatever_their_tickets() {
    let threads = [busy(50, 100), busy(50, 300)];
    close(
        &ideal_ms(1, Entitlement::Equal, &threads, &[]),
        &[50.0, 50.0],
    );
    // The same interval under stride or lottery follows the tickets.
    close(
        &ideal_ms(1, Entitlement::Tickets, &threads, &[]),
        &[25.0, 75.0],
    );
    assert_eq!(Entitlement::of("rr"), Some(Entitlement::Equal));
    assert_eq!(Entitlement::of("lottery"), Some(Entitlement::Tickets));
    assert_eq!(Entitlement::of("stride"), Some(Entitlement::Tickets));
    assert_eq!(Entitlement::of("eevdf"), Some(Entitlement::Tickets));
    assert_eq!(Entitlement::of("fifo"), None);
}

#[test]
fn a_swap_mid_sample_changes_the_entitlement_from_that_moment() {
    // 100 ms on one core, tickets 300:100; stride until 40 ms, then rr:
    // 40 ms split 3:1 (30, 10), 60 ms split evenly (30, 30).
    let threads = [busy(50, 300), busy(50, 100)];
    let swap = [(40 * MS, Change::Policy(Entitlement::Equal))];
    close(
        &ideal_ms(1, Entitlement::Tickets, &threads, &swap),
        &[60.0, 40.0],
    );
    // A ticket change at 80 ms: 80 ms at 1:1, 20 ms at 3:1 -> 40+15, 40+5.
    let threads = [busy(50, 100), busy(50, 100)];
    let more = [(
        80 * MS,
        Change::Tickets {
            index: 0,
            tickets: 300,
        },
    )];
    close(
        &ideal_ms(1, Entitlement::Tickets, &threads, &more),
        &[55.0, 45.0],
    );
}

#[test]
fn an_infeasible_weight_is_capped_at_one_core() {
    // Two cores for 100 ms (200 ms of CPU), tickets 1000:100:100: the
    // first asks for 5/6 of two cores but can use one (100 ms); the other
    // two share the rest evenly.
    let threads = [busy(100, 1000), busy(50, 100), busy(50, 100)];
    close(
        &ideal_ms(2, Entitlement::Tickets, &threads, &[]),
        &[100.0, 50.0, 50.0],
    );
    // The application got half of each core (100 ms of CPU): one core's
    // worth of that is 50 ms.
    let threads = [busy(50, 1000), busy(25, 100), busy(25, 100)];
    close(
        &ideal_ms(2, Entitlement::Tickets, &threads, &[]),
        &[50.0, 25.0, 25.0],
    );
    // Fewer runnable threads than cores: a core each, whatever the weights.
    let threads = [busy(50, 1000), busy(50, 100)];
    close(
        &ideal_ms(2, Entitlement::Tickets, &threads, &[]),
        &[50.0, 50.0],
    );
}

#[test]
fn a_thread_is_owed_a_share_only_while_it_wants_the_cpu() {
    // One core; the second thread sleeps from 50 ms: they share the first
    // 50 ms (25 each), the first has the rest alone. A thread asleep half
    // the time is owed a quarter, not half.
    let threads = [busy(75, 100), sleeping(25, 100, &[(50, 100)])];
    close(
        &ideal_ms(1, Entitlement::Tickets, &threads, &[]),
        &[75.0, 25.0],
    );
    // The same in ten alternating pieces.
    let half: Vec<(u64, u64)> = (0..10).map(|k| (10 * k + 5, 10 * k + 10)).collect();
    let threads = [busy(75, 100), sleeping(25, 100, &half)];
    close(
        &ideal_ms(1, Entitlement::Equal, &threads, &[]),
        &[75.0, 25.0],
    );
    // Two cores: alone, a thread can use one of the application's cores,
    // so the application's time goes half as fast then. [0,20] both run
    // (40 core-ms), [20,60] the first alone (40), [60,100] both (80):
    // T = 100 ms splits 25, 25, 50, the first thread getting 12.5 + 25 +
    // 25, the second 12.5 + 25.
    let threads = [busy(60, 100), sleeping(40, 100, &[(20, 60)])];
    close(
        &ideal_ms(2, Entitlement::Tickets, &threads, &[]),
        &[62.5, 37.5],
    );
    // Joined at 60 ms: alone until then.
    let joiner = ThreadInterval {
        present: (60 * MS, 100 * MS),
        ..busy(20, 100)
    };
    close(
        &ideal_ms(1, Entitlement::Tickets, &[busy(80, 100), joiner], &[]),
        &[80.0, 20.0],
    );
    // Nothing received, nothing owed.
    close(
        &ideal_ms(1, Entitlement::Tickets, &[busy(0, 1)], &[]),
        &[0.0],
    );
}

/// The first sample's interval, from the application's start, is split
/// the way the policy it started under promises: under round robin the
/// first 100 ms are owed half and half whatever the tickets (3:1 here),
/// not by tickets as before the first sample reports its policy.
#[test]
fn the_first_interval_follows_the_starting_policy() {
    let row = |id, tickets, cpu_ns| fairness::Row {
        id,
        tickets,
        cpu_ns,
        alive_ns: Some(100 * MS),
        ..fairness::Row::default()
    };
    let mut f = fairness::Fairness::new(1);
    f.begin(0, "rr");
    let rows = [row(1, 300, 50 * MS), row(2, 100, 50 * MS)];
    f.snapshot(100 * MS, Some("rr"), &rows, &fairness::Sleeps::new());
    let ideal: Vec<f64> = f.threads.values().map(|t| t.ideal_ns / MS as f64).collect();
    close(&ideal, &[50.0, 50.0]);
}

/// docs/metrics.md's entitlement table has a row for every registered
/// policy, saying what its crate declares.
#[test]
fn the_documented_entitlements_are_the_registry_s() {
    let path = crate::build::workspace_root().join("docs/metrics.md");
    let text = std::fs::read_to_string(&path).unwrap();
    let table = &text[text.find("| policy | weight `w_i` |").expect("the table")..];
    let rows: Vec<(&str, &str)> = table
        .lines()
        .skip(2)
        .take_while(|l| l.starts_with('|'))
        .map(|l| {
            let cells: Vec<&str> = l.split('|').map(str::trim).collect();
            (cells[1].trim_matches('`'), cells[2])
        })
        .collect();
    let documented: Vec<&str> = rows.iter().map(|r| r.0).collect();
    let registered: Vec<&str> = sched_registry::names().collect();
    assert_eq!(
        documented, registered,
        "docs/metrics.md's rows, in the registry's order"
    );
    for (name, weight) in rows {
        let expected = match Entitlement::of(name) {
            Some(Entitlement::Tickets) => "its tickets",
            Some(Entitlement::Equal) => "1: equal",
            None => unreachable!(),
        };
        assert!(weight.starts_with(expected), "{name}: {weight}");
    }
}

// ---- Currencies ------------------------------------------------------

/// Currencies A and B, each funded with 100 base tickets.
const TWO_USERS: [Currency; 2] = [
    Currency {
        parent: 0,
        funding: 100,
    },
    Currency {
        parent: 0,
        funding: 100,
    },
];

/// One core, 100 ms, under a policy with `currencies` (lottery).
fn in_lottery(
    threads: &[ThreadInterval],
    changes: &[(u64, Change)],
    currencies: &[Currency],
) -> Vec<f64> {
    let mut d = Denominations {
        currencies: currencies.to_vec(),
        in_force: true,
    };
    let span = (0, 100 * MS);
    interval_ideal_in(span, 1, Entitlement::Tickets, threads, changes, &mut d).0
}

fn near(got: &[f64], want: &[f64]) -> bool {
    got.len() == want.len() && got.iter().zip(want).all(|(g, w)| (g - w).abs() < 1e-9)
}

#[test]
fn tickets_in_a_currency_are_worth_their_share_of_its_active_issue() {
    // A: 100 and 200 of its tickets; B: 100, 200 and 300; one base thread.
    let currency = [1, 1, 2, 2, 2, 0];
    let tickets = [100, 200, 100, 200, 300, 50];
    let all = [true; 6];
    let w = worth(&TWO_USERS, &currency, &tickets, &all);
    let third = 100.0 / 3.0;
    assert!(
        near(&w, &[third, 2.0 * third, 100.0 / 6.0, third, 50.0, 50.0]),
        "{w:?}"
    );
    // B's third thread asleep: B's worth goes to the other two, A's stays.
    let w = worth(
        &TWO_USERS,
        &currency,
        &tickets,
        &[true, true, true, true, false, true],
    );
    assert!(
        near(&w, &[third, 2.0 * third, third, 2.0 * third, 0.0, 50.0]),
        "{w:?}"
    );
    // Every thread of A asleep: A is inactive, nothing of it counts.
    let w = worth(
        &TWO_USERS,
        &currency,
        &tickets,
        &[false, false, true, true, true, true],
    );
    assert!(
        near(&w[..2], &[0.0, 0.0]) && (w[2] - 100.0 / 6.0).abs() < 1e-9,
        "{w:?}"
    );
}

#[test]
fn a_currency_below_another_takes_its_share_of_the_parents_worth() {
    // D funded with 30 base tickets; C with 60 of D's; D also funds a
    // thread of its own with 60 of its tickets.
    let tree = [
        Currency {
            parent: 0,
            funding: 30,
        },
        Currency {
            parent: 1,
            funding: 60,
        },
    ];
    let w = worth(&tree, &[2, 1], &[7, 60], &[true, true]);
    assert!(near(&w, &[15.0, 15.0]), "{w:?}");
    // C's only thread asleep: C is inactive in D, D's thread has all of D.
    let w = worth(&tree, &[2, 1], &[7, 60], &[false, true]);
    assert!(near(&w, &[0.0, 30.0]), "{w:?}");
}

#[test]
fn a_users_new_task_takes_only_from_its_own_currency() {
    // Over 100 ms: A's two tasks and B's two, B's third joining at 50 ms.
    let mut joiner = busy(25, 300);
    joiner.present = (50 * MS, 100 * MS);
    let mut threads = vec![
        busy(15, 100),
        busy(35, 200),
        busy(15, 100),
        busy(35, 200),
        joiner,
    ];
    for (t, c) in threads.iter_mut().zip([1, 1, 2, 2, 2]) {
        t.currency = c;
    }
    let ideal = in_lottery(&threads, &[], &TWO_USERS);
    let a: f64 = ideal[..2].iter().sum();
    let b: f64 = ideal[2..].iter().sum();
    assert!((a - b).abs() < 1e-6 * a, "A {a}, B {b}");
    // By face value A would have 300 of 600 tickets, then 300 of 900.
    let face = interval_ideal((0, 100 * MS), 1, Entitlement::Tickets, &threads, &[]);
    assert!(face[..2].iter().sum::<f64>() < 0.45 * face.iter().sum::<f64>());
}

#[test]
fn a_currency_mates_sleep_leaves_its_worth_to_the_other() {
    // A's two threads (1,000 each), one asleep for the second half, beside
    // a base thread of 100: A keeps half the time throughout.
    let mut threads = vec![
        busy(30, 1000),
        sleeping(20, 1000, &[(50, 100)]),
        busy(50, 100),
    ];
    threads[0].currency = 1;
    threads[1].currency = 1;
    let ideal = in_lottery(&threads, &[], &TWO_USERS[..1]);
    let total: f64 = ideal.iter().sum();
    assert!(
        (ideal[0] + ideal[1] - 0.5 * total).abs() < 1e-6 * total,
        "{ideal:?}"
    );
    assert!(
        (ideal[0] - 3.0 * ideal[1]).abs() < 1e-6 * total,
        "{ideal:?}"
    );
}

#[test]
fn a_swap_away_holds_each_worth_as_it_was_and_a_swap_back_values_anew() {
    // A's two threads (100 each) beside a base thread (100); at 20 ms a
    // swap to a policy without currencies holds 50 / 50 / 100; at 40 ms
    // A's second thread sleeps (its 50 no longer runs, the first keeps
    // 50, not all of A); at 60 ms tickets of 300 are set for the first,
    // as base tickets; at 80 ms a swap back values through A again (the
    // first left A for good: A is the second's alone, asleep).
    let mut threads = vec![busy(0, 100), sleeping(0, 100, &[(40, 100)]), busy(0, 100)];
    threads[0].currency = 1;
    threads[1].currency = 1;
    for t in &mut threads {
        t.cpu_ns = 1.0; // any: the ideal is what the weights say
    }
    let changes = [
        (20 * MS, Change::Currencies(false)),
        (
            60 * MS,
            Change::Tickets {
                index: 0,
                tickets: 300,
            },
        ),
        (80 * MS, Change::Currencies(true)),
    ];
    let mut d = Denominations {
        currencies: TWO_USERS[..1].to_vec(),
        in_force: true,
    };
    let span = (0, 100 * MS);
    let (ideal, ends) =
        interval_ideal_in(span, 1, Entitlement::Tickets, &threads, &changes, &mut d);
    // The weights piece by piece, over the 3 ns the threads were charged.
    let piece = |w: [f64; 3]| w.map(|x| x / w.iter().sum::<f64>() * 0.6);
    let want = [
        piece([50.0, 50.0, 100.0]), // 0-20: in A
        piece([50.0, 50.0, 100.0]), // 20-40: held
        piece([50.0, 0.0, 100.0]),  // 40-60: held, the second asleep
        piece([300.0, 0.0, 100.0]), // 60-80: base tickets
        piece([300.0, 0.0, 100.0]), // 80-100: the first out of A for good
    ];
    for k in 0..3 {
        let w: f64 = want.iter().map(|p| p[k]).sum();
        assert!((ideal[k] - w).abs() < 1e-9, "thread {k}: {ideal:?}");
    }
    assert!(d.in_force);
    assert_eq!(ends, [(0, None), (1, None), (0, None)]);
}

/// Sleep intervals clipped to a window `[t0, t)`, merged where they
/// overlap or touch, in order: what both the sleep placed in an interval
/// and a thread's interval asleep are made of.
#[test]
fn intervals_are_clipped_to_the_window_and_merged_in_order() {
    let spans = [
        (50, 70),
        (5, 15),
        (0, 3),
        (12, 20),
        (20, 22),
        (30, 40),
        (1, 2),
    ];
    assert_eq!(
        fairness::merged_within(&spans, 2, 35),
        [(2, 3), (5, 22), (30, 35)]
    );
    // Nothing inside the window, or no window at all.
    assert_eq!(fairness::merged_within(&spans, 23, 30), []);
    assert_eq!(fairness::merged_within(&spans, 35, 2), []);
    assert_eq!(fairness::merged_within(&[], 0, 100), []);
    // The sleep they place: what of a thread's sleep they leave unplaced.
    assert_eq!(
        fairness::unplaced_sleep(30, 2, 35, &spans),
        30 - (1 + 17 + 5)
    );
}
