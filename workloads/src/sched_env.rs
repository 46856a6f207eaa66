//! The scheduler environment's arguments and its bookkeeping (Aegis's
//! stride experiment, generalised; the program is `src/bin/sched_env.rs`).
//! Pure and host-tested.
//!
//! ```text
//! sched <policy>              (optional: else the kernel's sched=)
//! client <name> <tickets>     (one per client, by environment name)
//! ```
//! With no `client` line the clients are every other environment, in
//! spawn order, with tickets 3, 2, 1, 1, … (the kernel's `sched_env`
//! experiment).
//!
//! **Charging what was used.** A pick charges the client a slice at once
//! (so the environment's other cores, picking meanwhile, see it charged
//! and spread their donations); when the donation is over — at the
//! scheduler's next turn on that core — the client's CPU time on that core
//! during it is known from the kernel's account, and what the pick
//! overcharged (a donation refused, a client that yielded early) becomes
//! credit that the client's next picks are not charged for. So each
//! client is charged, within one slice, exactly the time it received.

use alloc::string::String;
use alloc::vec::Vec;

/// The tickets of the clients when none is named, by spawn order.
pub const DEFAULT_TICKETS: [u32; 4] = [3, 2, 1, 1];

/// Parsed arguments.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Spec {
    /// A registered policy's name, if the arguments name one.
    pub policy: Option<String>,
    /// `(environment name, tickets)`; empty: every other environment.
    pub clients: Vec<(String, u32)>,
}

impl Spec {
    pub fn parse(text: &str) -> Result<Spec, &'static str> {
        let mut spec = Spec::default();
        for line in text.lines() {
            let mut words = line.split_ascii_whitespace();
            match words.next() {
                None => continue,
                Some("sched") => {
                    spec.policy = Some(String::from(words.next().ok_or("sched needs a policy")?))
                }
                Some("client") => {
                    let name = words.next().ok_or("client needs a name")?;
                    let tickets = words
                        .next()
                        .and_then(|w| w.parse::<u32>().ok())
                        .filter(|&t| t > 0)
                        .ok_or("client needs positive tickets")?;
                    if spec.clients.iter().any(|(n, _)| n == name) {
                        return Err("a client named twice");
                    }
                    spec.clients.push((String::from(name), tickets));
                }
                Some(_) => return Err("unknown line"),
            }
            if words.next().is_some() {
                return Err("extra words");
            }
        }
        Ok(spec)
    }

    /// The arguments [`Spec::parse`] reads back.
    pub fn write(&self, out: &mut impl core::fmt::Write) -> core::fmt::Result {
        if let Some(p) = &self.policy {
            writeln!(out, "sched {p}")?;
        }
        for (name, tickets) in &self.clients {
            writeln!(out, "client {name} {tickets}")?;
        }
        Ok(())
    }
}

/// What one client has been charged against what it used.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Bill {
    /// Charged beyond what the client used, not yet taken off later picks.
    credit: u64,
}

impl Bill {
    /// What a pick charges now for a donation of up to `slice` ns: the
    /// slice, less the credit (which it uses up).
    pub fn charge_for_pick(&mut self, slice: u64) -> u64 {
        let off = self.credit.min(slice);
        self.credit -= off;
        slice - off
    }

    /// A donation of up to `slice` ns (a pick paid for it, in charge or
    /// credit) is over and the client used `used` of it: what it did not
    /// use becomes credit; what it used beyond the slice is returned, to be
    /// charged at once. So the total charged is what was used plus the
    /// credit, and the credit is at most one slice.
    pub fn settle(&mut self, slice: u64, used: u64) -> u64 {
        if used >= slice {
            used - slice
        } else {
            self.credit += slice - used;
            0
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_read_back_and_bad_ones_are_refused() {
        let spec = Spec {
            policy: Some("stride".into()),
            clients: alloc::vec![("web".into(), 3), ("batch".into(), 1)],
        };
        let mut text = String::new();
        spec.write(&mut text).unwrap();
        assert_eq!(Spec::parse(&text), Ok(spec));
        assert_eq!(Spec::parse(""), Ok(Spec::default()));
        for bad in [
            "client a 0",
            "client a",
            "client a 1\nclient a 2",
            "sched",
            "flavour x",
            "client a 1 2",
        ] {
            assert!(Spec::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_client_is_charged_what_it_used_within_one_slice() {
        let slice = 2_000;
        // (what the client used of each donation)
        let uses = [2_000, 0, 500, 2_000, 0, 0, 1_999, 2_000];
        let mut bill = Bill::default();
        let (mut charged_total, mut used_total) = (0, 0);
        for used in uses {
            charged_total += bill.charge_for_pick(slice);
            charged_total += bill.settle(slice, used);
            used_total += used;
            // Charged what it used, plus a credit of at most one slice.
            assert_eq!(charged_total, used_total + bill.credit);
            assert!(bill.credit <= slice, "{bill:?}");
        }
    }

    #[test]
    fn a_donation_used_beyond_its_charge_is_charged_at_settling() {
        let mut bill = Bill::default();
        assert_eq!(bill.charge_for_pick(1_000), 1_000);
        assert_eq!(bill.settle(1_000, 1_300), 300);
        // A donation not used at all: its slice is credit, which the next
        // picks are not charged for (up to their slice each).
        assert_eq!(bill.charge_for_pick(1_000), 1_000);
        assert_eq!(bill.settle(1_000, 0), 0);
        assert_eq!(bill.charge_for_pick(400), 0);
        assert_eq!(bill.charge_for_pick(1_000), 400);
    }
}
