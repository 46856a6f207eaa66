//! The figures' valuation of currencies (`xtask::metrics::worth`, f64)
//! against lottery's own (`sched_lottery`, fixed point, kept up to date
//! as threads come and go), over random currency trees. The two are
//! written apart on purpose: a figure must not take its ideal from the
//! code it judges. This test is what keeps them saying the same thing.
//! (It boots nothing, but lives with the QEMU suites: `cargo test -p
//! xtask --tests` runs it, `just test-host` does not.)

use proptest::prelude::*;
use sched_api::{CurrencyId, BASE_CURRENCY};
use sched_registry::Params;
use xtask::metrics::{worth, Currency};

/// A currency tree: each currency's parent (0 the base, else an earlier
/// currency counted from 1) and funding; each thread's currency (the same
/// numbering), tickets and whether it is runnable.
fn tree() -> impl Strategy<Value = (Vec<Currency>, Vec<(u32, u64, bool)>)> {
    (0usize..6)
        .prop_flat_map(|n| {
            let currencies: Vec<_> = (0..n).map(|c| (0..=c as u32, 1u64..100_000)).collect();
            (currencies, Just(n))
        })
        .prop_flat_map(|(currencies, n)| {
            let threads =
                proptest::collection::vec((0..=n as u32, 1u64..10_000, any::<bool>()), 1..12);
            (Just(currencies), threads)
        })
        .prop_map(|(currencies, threads)| {
            let currencies = currencies
                .into_iter()
                .map(|(parent, funding)| Currency { parent, funding })
                .collect();
            (currencies, threads)
        })
}

proptest! {
    /// Every runnable thread's worth in base tickets as lottery reports it
    /// (its record's weight: rounded to the nearest whole ticket, at least
    /// 1) is the figures' worth, rounded the same way.
    #[test]
    fn lottery_and_the_figures_value_currencies_alike((currencies, threads) in tree()) {
        let kind = sched_registry::POLICIES
            .iter()
            .map(|p| p.kind)
            .find(|k| k.name() == "lottery")
            .expect("lottery is registered");
        let params = Params { quantum_ns: 1_000_000, cores: 1, seed: 1 };
        let mut lottery = sched_registry::build(kind, &params).expect("lottery builds");
        // Lottery's ids for the currencies, in the figures' numbering.
        let mut ids: Vec<CurrencyId> = vec![BASE_CURRENCY];
        for c in &currencies {
            let funding = u32::try_from(c.funding).expect("small funding");
            let id = lottery.create_currency(ids[c.parent as usize], funding);
            ids.push(id.expect("a currency"));
        }
        for (id, &(currency, tickets, runnable)) in threads.iter().enumerate() {
            let (id, tickets) = (id as u32, tickets as u32);
            lottery.add(id, tickets).expect("added");
            if currency > 0 {
                lottery
                    .move_to_currency(id, ids[currency as usize], tickets)
                    .expect("moved");
            }
            if !runnable {
                lottery.sleep(id).expect("asleep");
            }
        }
        let currency: Vec<u32> = threads.iter().map(|t| t.0).collect();
        let tickets: Vec<u64> = threads.iter().map(|t| t.1).collect();
        let runnable: Vec<bool> = threads.iter().map(|t| t.2).collect();
        let figures = worth(&currencies, &currency, &tickets, &runnable);
        for (id, &want) in figures.iter().enumerate() {
            if !runnable[id] {
                continue;
            }
            let got = lottery.record(id as u32).expect("a record").weight;
            // Rounded to the nearest ticket, at least 1; the slack is
            // fixed point's, not a tolerance of the valuation.
            let want = want.max(1.0);
            prop_assert!(
                (f64::from(got) - want).abs() <= 0.5 + 1e-6 * want,
                "thread {}: lottery {} tickets, the figures {}", id, got, want
            );
        }
    }
}
