//! A libOS asks to sleep until a deadline (or until a flag word in its own
//! memory changes); the kernel verifies the predicate at install and
//! evaluates it as the sleeper's slot comes round.
//!
//! Run with `cargo run -p predicate --example sleep_until`.

use predicate::{verify, AddressCheck, Builder, Cond, EvalEnv, Limits};

/// The kernel's view of one environment: one mapped page and a clock.
struct Sleeper {
    page: u64,
    flag: u64,
    now_ns: u64,
}

impl AddressCheck for Sleeper {
    fn allowed(&self, addr: u64, len: u64) -> bool {
        addr >= self.page
            && addr
                .checked_add(len)
                .is_some_and(|end| end <= self.page + 4096)
    }
}

impl EvalEnv for Sleeper {
    fn read_u64(&self, addr: u64) -> Option<u64> {
        (addr == self.page).then_some(self.flag)
    }
    fn clock_ns(&self) -> u64 {
        self.now_ns
    }
    fn counter(&self, _index: u32) -> Option<u64> {
        None
    }
}

fn main() {
    let page = 0x1000_0000_0000;
    // libOS side: wake (tag 42) at 20 ms, or as soon as the flag leaves 0.
    let deadline = 20_000_000;
    let program = Builder::any_of(
        42,
        &[
            Cond::ClockAtLeast(deadline),
            Cond::WordChanged { addr: page, old: 0 },
        ],
    )
    .expect("fits");
    println!(
        "predicate: {} bytes, {} instructions",
        program.as_bytes().len(),
        program.insn_count()
    );

    // Kernel side: verify once at install.
    let mut env = Sleeper {
        page,
        flag: 0,
        now_ns: 0,
    };
    let verified = verify(program.as_bytes(), &Limits::DEFAULT, &env).expect("accepted");

    // ... and evaluate whenever the sleeper's slot comes round.
    for now_ns in (0..=25_000_000).step_by(5_000_000) {
        env.now_ns = now_ns;
        let out = verified.eval(&env).expect("memory still mapped");
        println!(
            "t = {:>2} ms: wake = {:5} ({} steps)",
            now_ns / 1_000_000,
            out.value,
            out.steps
        );
        if out.value {
            println!("woken with tag {}", verified.tag());
            break;
        }
    }
}
