use super::*;
use proptest::prelude::*;
use std::cell::RefCell;
use std::collections::BTreeMap;

/// Memory: words at 0x1000..0x2000 are readable.
struct Mem {
    words: BTreeMap<u64, u64>,
    clock: u64,
    reads: RefCell<Vec<u64>>,
}

impl AddressCheck for Mem {
    fn allowed(&self, addr: u64, len: u64) -> bool {
        addr >= 0x1000 && addr.checked_add(len).is_some_and(|e| e <= 0x2000)
    }
}

impl EvalEnv for Mem {
    fn read_u64(&self, addr: u64) -> Option<u64> {
        self.reads.borrow_mut().push(addr);
        self.allowed(addr, 8)
            .then(|| self.words.get(&addr).copied().unwrap_or(0))
    }
    fn clock_ns(&self) -> u64 {
        self.clock
    }
    fn counter(&self, index: u32) -> Option<u64> {
        (index < 2).then_some(u64::from(index) * 10)
    }
}

fn mem() -> Mem {
    Mem {
        words: [(0x1008, 7)].into(),
        clock: 100,
        reads: RefCell::new(Vec::new()),
    }
}

const LIMITS: Limits = Limits {
    counters: 2,
    max_insns: MAX_INSNS,
};

fn kind(bytes: &[u8]) -> VerifyErrorKind {
    verify(bytes, &LIMITS, &mem()).unwrap_err().kind
}

#[test]
fn time_and_word_predicates() {
    let m = mem();
    let p = Builder::until_time(5, 100).unwrap();
    let v = verify(p.as_bytes(), &LIMITS, &m).unwrap();
    assert_eq!(v.tag(), 5);
    assert_eq!(
        v.eval(&m),
        Ok(Outcome {
            value: true,
            steps: 3
        })
    );
    let p = Builder::until_word_changes(1, 0x1008, 7).unwrap();
    let v = verify(p.as_bytes(), &LIMITS, &m).unwrap();
    assert!(!v.eval(&m).unwrap().value);
}

#[test]
fn each_error_kind() {
    assert_eq!(kind(b"Q\x01"), VerifyErrorKind::BadHeader);
    let ok = Builder::until_time(0, 1).unwrap();
    assert_eq!(
        kind(&ok.as_bytes()[..ok.as_bytes().len() - 3]),
        VerifyErrorKind::Truncated
    );
    let mut bad = Builder::new(0).finish().unwrap().as_bytes().to_vec();
    bad.push(0x99);
    assert_eq!(kind(&bad), VerifyErrorKind::UnknownOpcode(0x99));
    assert_eq!(
        kind(Builder::new(0).eq().finish().unwrap().as_bytes()),
        VerifyErrorKind::StackUnderflow
    );
    assert_eq!(
        kind(
            Builder::new(0)
                .imm(1)
                .imm(2)
                .and()
                .finish()
                .unwrap()
                .as_bytes()
        ),
        VerifyErrorKind::TypeMismatch
    );
    assert_eq!(
        kind(
            Builder::new(0)
                .load_u64(0x1004)
                .imm(0)
                .eq()
                .finish()
                .unwrap()
                .as_bytes()
        ),
        VerifyErrorKind::Misaligned
    );
    assert_eq!(
        kind(
            Builder::new(0)
                .load_u64(0xffff_8000_0000_0000)
                .imm(0)
                .eq()
                .finish()
                .unwrap()
                .as_bytes()
        ),
        VerifyErrorKind::AddressNotAllowed
    );
    assert_eq!(
        kind(
            Builder::new(0)
                .counter(5)
                .imm(0)
                .eq()
                .finish()
                .unwrap()
                .as_bytes()
        ),
        VerifyErrorKind::NoSuchCounter
    );
    assert_eq!(
        kind(Builder::new(0).imm(1).finish().unwrap().as_bytes()),
        VerifyErrorKind::BadResult
    );
    let mut deep = Builder::new(0);
    for _ in 0..17 {
        deep = deep.imm(1);
    }
    assert_eq!(
        kind(deep.finish().unwrap().as_bytes()),
        VerifyErrorKind::StackOverflow
    );
    let mut long = Builder::new(0).imm(1).imm(1).eq();
    for _ in 0..40 {
        long = long.not().not();
    }
    assert_eq!(
        kind(long.finish().unwrap().as_bytes()),
        VerifyErrorKind::TooLong
    );
}

/// An expression tree and its reference meaning.
#[derive(Debug, Clone)]
enum W {
    Load(u64),
    Imm(u64),
    Clock,
    Counter(u8),
    Bin(u8, Box<W>, Box<W>),
}

#[derive(Debug, Clone)]
enum B {
    Cmp(u8, W, W),
    And(Box<B>, Box<B>),
    Or(Box<B>, Box<B>),
    Not(Box<B>),
}

fn word() -> impl Strategy<Value = W> {
    let leaf = prop_oneof![
        (0x200u64..0x400).prop_map(|i| W::Load(i * 8)),
        any::<u64>().prop_map(W::Imm),
        Just(W::Clock),
        (0u8..2).prop_map(W::Counter),
    ];
    leaf.prop_recursive(2, 6, 2, |inner| {
        (0u8..3, inner.clone(), inner).prop_map(|(o, a, b)| W::Bin(o, Box::new(a), Box::new(b)))
    })
}

fn boolean() -> impl Strategy<Value = B> {
    let leaf = (0u8..6, word(), word()).prop_map(|(c, a, b)| B::Cmp(c, a, b));
    leaf.prop_recursive(3, 8, 2, |inner| {
        prop_oneof![
            (inner.clone(), inner.clone()).prop_map(|(a, b)| B::And(Box::new(a), Box::new(b))),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| B::Or(Box::new(a), Box::new(b))),
            inner.prop_map(|a| B::Not(Box::new(a))),
        ]
    })
}

fn emit_w(b: Builder, w: &W) -> Builder {
    match w {
        W::Load(a) => b.load_u64(*a),
        W::Imm(v) => b.imm(*v),
        W::Clock => b.clock(),
        W::Counter(i) => b.counter(*i),
        W::Bin(o, x, y) => {
            let b = emit_w(emit_w(b, x), y);
            match o {
                0 => b.bit_and(),
                1 => b.add(),
                _ => b.sub(),
            }
        }
    }
}

fn emit_b(b: Builder, e: &B) -> Builder {
    match e {
        B::Cmp(c, x, y) => {
            let b = emit_w(emit_w(b, x), y);
            match c {
                0 => b.eq(),
                1 => b.ne(),
                2 => b.lt(),
                3 => b.le(),
                4 => b.gt(),
                _ => b.ge(),
            }
        }
        B::And(x, y) => emit_b(emit_b(b, x), y).and(),
        B::Or(x, y) => emit_b(emit_b(b, x), y).or(),
        B::Not(x) => emit_b(b, x).not(),
    }
}

fn eval_w(m: &Mem, w: &W) -> u64 {
    match w {
        W::Load(a) => m.words.get(a).copied().unwrap_or(0),
        W::Imm(v) => *v,
        W::Clock => m.clock,
        W::Counter(i) => u64::from(*i) * 10,
        W::Bin(o, x, y) => {
            let (a, b) = (eval_w(m, x), eval_w(m, y));
            match o {
                0 => a & b,
                1 => a.wrapping_add(b),
                _ => a.wrapping_sub(b),
            }
        }
    }
}

fn eval_b(m: &Mem, e: &B) -> bool {
    match e {
        B::Cmp(c, x, y) => {
            let (a, b) = (eval_w(m, x), eval_w(m, y));
            [a == b, a != b, a < b, a <= b, a > b, a >= b][*c as usize]
        }
        B::And(x, y) => eval_b(m, x) & eval_b(m, y),
        B::Or(x, y) => eval_b(m, x) | eval_b(m, y),
        B::Not(x) => !eval_b(m, x),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]

    /// Arbitrary bytes never panic the verifier; anything accepted evaluates
    /// within its instruction count and reads only allowed addresses.
    #[test]
    fn arbitrary_bytes_are_safe(tail in proptest::collection::vec(any::<u8>(), 0..300), tag in any::<u64>()) {
        let mut bytes = vec![b'P', 1];
        bytes.extend_from_slice(&tag.to_le_bytes());
        bytes.extend_from_slice(&tail);
        let m = mem();
        if let Ok(v) = verify(&bytes, &LIMITS, &m) {
            let out = v.eval(&m).unwrap();
            prop_assert!(out.steps <= MAX_INSNS);
            for &a in m.reads.borrow().iter() {
                prop_assert!(m.allowed(a, 8));
            }
        }
    }

    /// Builder output of random expressions verifies (when within limits)
    /// and agrees with a recursive reference interpreter.
    #[test]
    fn evaluator_agrees_with_reference(e in boolean(), words in proptest::collection::btree_map((0x200u64..0x400).prop_map(|i| i * 8), any::<u64>(), 0..20), clock in any::<u64>()) {
        let m = Mem { words, clock, reads: RefCell::new(Vec::new()) };
        let p = emit_b(Builder::new(9), &e).finish().unwrap();
        match verify(p.as_bytes(), &LIMITS, &m) {
            Ok(v) => prop_assert_eq!(v.eval(&m).unwrap().value, eval_b(&m, &e)),
            Err(err) => prop_assert!(matches!(err.kind, VerifyErrorKind::TooLong | VerifyErrorKind::StackOverflow)),
        }
    }

    /// Mutating a valid program never yields an accepted program that reads
    /// outside the allowed range or runs longer than its length.
    #[test]
    fn mutations_stay_safe(e in boolean(), at in any::<usize>(), byte in any::<u8>()) {
        let m = mem();
        let p = emit_b(Builder::new(1), &e).finish().unwrap();
        let mut bytes = p.as_bytes().to_vec();
        let i = at % bytes.len();
        bytes[i] = byte;
        if let Ok(v) = verify(&bytes, &LIMITS, &m) {
            let out = v.eval(&m).unwrap();
            prop_assert_eq!(out.steps, v.len());
            for &a in m.reads.borrow().iter() {
                prop_assert!(m.allowed(a, 8));
            }
        }
    }
}
