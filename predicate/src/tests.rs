//! Unit tests: every error kind, evaluation semantics, the builder.

use super::*;
use std::cell::RefCell;
use std::collections::BTreeMap;

/// Memory: words at 0x1000..0x2000 are readable; counters 0 and 1 exist.
struct Mem {
    words: BTreeMap<u64, u64>,
    clock: u64,
    reads: RefCell<Vec<u64>>,
    /// Addresses unmapped since install.
    gone: Vec<u64>,
}

impl AddressCheck for Mem {
    fn allowed(&self, addr: u64, len: u64) -> bool {
        addr >= 0x1000 && addr.checked_add(len).is_some_and(|e| e <= 0x2000)
    }
}

impl EvalEnv for Mem {
    fn read_u64(&self, addr: u64) -> Option<u64> {
        self.reads.borrow_mut().push(addr);
        (self.allowed(addr, 8) && !self.gone.contains(&addr))
            .then(|| self.words.get(&addr).copied().unwrap_or(0))
    }
    fn clock_ns(&self) -> u64 {
        self.clock
    }
    fn counter(&self, index: u32) -> Option<u64> {
        (index < 2).then_some(u64::from(index) * 10 + 5)
    }
}

fn mem() -> Mem {
    Mem {
        words: [(0x1008, 7), (0x1010, 0x1111_2222_3333_4444)].into(),
        clock: 100,
        reads: RefCell::new(Vec::new()),
        gone: Vec::new(),
    }
}

const LIMITS: Limits = Limits {
    counters: 2,
    ..Limits::DEFAULT
};

/// Raw assembly, for programs the builder would refuse.
#[derive(Clone, Copy)]
enum A {
    Op(u8),
    Word(u8, u64),
    Byte(u8, u8),
    Skip(u8, i16),
}

fn asm(tag: u64, code: &[A]) -> Vec<u8> {
    let mut v = vec![MAGIC, VERSION];
    v.extend_from_slice(&tag.to_le_bytes());
    for a in code {
        match *a {
            A::Op(o) => v.push(o),
            A::Word(o, w) => {
                v.push(o);
                v.extend_from_slice(&w.to_le_bytes());
            }
            A::Byte(o, b) => v.extend_from_slice(&[o, b]),
            A::Skip(o, off) => {
                v.push(o);
                v.extend_from_slice(&off.to_le_bytes());
            }
        }
    }
    v
}

fn err(bytes: &[u8]) -> VerifyError {
    verify(bytes, &LIMITS, &mem()).unwrap_err()
}

fn kind(bytes: &[u8]) -> VerifyErrorKind {
    err(bytes).kind
}

fn ok(bytes: &[u8]) -> Verified {
    verify(bytes, &LIMITS, &mem()).unwrap()
}

const TRUE: [A; 3] = [A::Word(op::IMM, 1), A::Word(op::IMM, 1), A::Op(op::EQ)];

#[test]
fn time_and_word_predicates() {
    let m = mem();
    let p = Builder::until_time(5, 100).unwrap();
    assert_eq!(p.tag(), 5);
    let v = verify(p.as_bytes(), &LIMITS, &m).unwrap();
    assert_eq!(v.tag(), 5);
    assert_eq!(
        v.eval(&m),
        Ok(Outcome {
            value: true,
            steps: 3
        })
    );
    let late = Mem { clock: 99, ..mem() };
    assert!(!v.eval(&late).unwrap().value);
    let p = Builder::until_word_changes(1, 0x1008, 7).unwrap();
    let v = verify(p.as_bytes(), &LIMITS, &m).unwrap();
    assert!(!v.eval(&m).unwrap().value);
    let p = Builder::until_word_changes(1, 0x1008, 6).unwrap();
    assert!(ok(p.as_bytes()).eval(&m).unwrap().value);
    assert_eq!(ok(p.as_bytes()).words_read().collect::<Vec<_>>(), [0x1008]);
}

#[test]
fn bad_header() {
    for bytes in [
        &b""[..],
        b"P",
        b"P\x01\0\0\0\0\0\0\0",
        b"Q\x01\0\0\0\0\0\0\0\0",
        b"P\x02\0\0\0\0\0\0\0\0",
    ] {
        assert_eq!(
            err(bytes),
            VerifyError {
                at: 0,
                offset: 0,
                kind: VerifyErrorKind::BadHeader
            }
        );
    }
}

#[test]
fn truncated_operands() {
    let full = asm(
        0,
        &[A::Word(op::IMM, 1), A::Word(op::IMM, 1), A::Op(op::EQ)],
    );
    // Cut inside the second immediate's operand.
    let e = err(&full[..HEADER_LEN + 9 + 4]);
    assert_eq!(
        e,
        VerifyError {
            at: 1,
            offset: HEADER_LEN + 9,
            kind: VerifyErrorKind::Truncated
        }
    );
    assert_eq!(
        kind(&asm(0, &[A::Op(op::COUNTER)])),
        VerifyErrorKind::Truncated
    );
    let mut skip = asm(0, &TRUE);
    skip.extend_from_slice(&[op::AND_THEN, 0]);
    assert_eq!(kind(&skip), VerifyErrorKind::Truncated);
}

#[test]
fn unknown_opcodes() {
    let known = [
        op::LOAD64,
        op::IMM,
        op::CLOCK,
        op::COUNTER,
        op::LOAD32,
        op::EQ,
        op::NE,
        op::LT,
        op::LE,
        op::GT,
        op::GE,
        op::AND,
        op::OR,
        op::NOT,
        op::BITAND,
        op::ADD,
        op::SUB,
        op::AND_THEN,
        op::OR_ELSE,
    ];
    for o in (0..=255u8).filter(|o| !known.contains(o)) {
        let mut code = TRUE.to_vec();
        code.push(A::Op(o));
        let e = err(&asm(0, &code));
        assert_eq!(e.kind, VerifyErrorKind::UnknownOpcode(o));
        assert_eq!((e.at, e.offset), (3, HEADER_LEN + 19));
    }
    // The kernel's garbage test: a header then 0xff.
    assert_eq!(
        kind(b"P\x01\0\0\0\0\0\0\0\0\xff"),
        VerifyErrorKind::UnknownOpcode(0xff)
    );
}

#[test]
fn too_long() {
    // 64 instructions (TRUE then 61 NOTs) fit; 65 do not.
    let mut code = TRUE.to_vec();
    code.extend([A::Op(op::NOT); 61]);
    assert!(verify(&asm(0, &code), &LIMITS, &mem()).is_ok());
    code.push(A::Op(op::NOT));
    let e = err(&asm(0, &code));
    assert_eq!(
        (e.at, e.kind),
        (MAX_INSNS, VerifyErrorKind::TooLong),
        "{e:?}"
    );
    // A tighter limit from the kernel.
    let small = Limits {
        max_insns: 3,
        ..LIMITS
    };
    let four = asm(0, &[TRUE[0], TRUE[1], TRUE[2], A::Op(op::NOT)]);
    let e = verify(&four, &small, &mem()).unwrap_err();
    assert_eq!((e.at, e.kind), (3, VerifyErrorKind::TooLong));
    // More bytes than any program may have.
    let mut huge = asm(0, &[]);
    huge.resize(MAX_BYTES + 1, op::CLOCK);
    assert_eq!(kind(&huge), VerifyErrorKind::TooLong);
    // Builder: 65 instructions do not fit.
    let mut b = Builder::new(0).imm(1).imm(1).eq();
    for _ in 0..61 {
        b = b.not();
    }
    assert!(b.clone().finish().is_ok());
    assert_eq!(b.not().finish().unwrap_err(), BuildError::TooLong);
}

#[test]
fn stack_underflow() {
    let e = err(&asm(0, &[A::Word(op::IMM, 1), A::Op(op::EQ)]));
    assert_eq!(
        (e.at, e.offset, e.kind),
        (1, HEADER_LEN + 9, VerifyErrorKind::StackUnderflow)
    );
    assert_eq!(
        kind(&asm(0, &[A::Op(op::NOT)])),
        VerifyErrorKind::StackUnderflow
    );
    assert_eq!(
        kind(&asm(0, &[A::Skip(op::OR_ELSE, 0)])),
        VerifyErrorKind::StackUnderflow
    );
    assert_eq!(
        Builder::new(0).eq().finish().unwrap_err(),
        BuildError::Invalid(VerifyError {
            at: 0,
            offset: HEADER_LEN,
            kind: VerifyErrorKind::StackUnderflow
        })
    );
}

#[test]
fn stack_overflow() {
    let e = err(&asm(0, &[A::Op(op::CLOCK); 17]));
    assert_eq!((e.at, e.kind), (16, VerifyErrorKind::StackOverflow));
    // 16 deep is fine: 16 clocks folded by 15 adds, compared.
    let mut code = vec![A::Op(op::CLOCK); 16];
    code.extend([A::Op(op::ADD); 15]);
    code.extend([A::Word(op::IMM, 0), A::Op(op::NE)]);
    assert_eq!(ok(&asm(0, &code)).max_depth(), 16);
    // The kernel may ask for less.
    let shallow = Limits {
        max_stack: 2,
        ..LIMITS
    };
    let three = asm(0, &[A::Op(op::CLOCK), A::Op(op::CLOCK), A::Op(op::CLOCK)]);
    let e = verify(&three, &shallow, &mem()).unwrap_err();
    assert_eq!((e.at, e.kind), (2, VerifyErrorKind::StackOverflow));
}

#[test]
fn type_mismatch() {
    let words_anded = asm(
        0,
        &[A::Word(op::IMM, 1), A::Word(op::IMM, 1), A::Op(op::AND)],
    );
    assert_eq!(kind(&words_anded), VerifyErrorKind::TypeMismatch);
    let mut bools_compared = TRUE.to_vec();
    bools_compared.extend(TRUE);
    bools_compared.push(A::Op(op::LT));
    assert_eq!(
        kind(&asm(0, &bools_compared)),
        VerifyErrorKind::TypeMismatch
    );
    // Mixed: a word under a boolean.
    let mut mixed = vec![A::Op(op::CLOCK)];
    mixed.extend(TRUE);
    mixed.push(A::Op(op::OR));
    let e = err(&asm(0, &mixed));
    assert_eq!((e.at, e.kind), (4, VerifyErrorKind::TypeMismatch));
    let not_word = asm(0, &[A::Op(op::CLOCK), A::Op(op::NOT)]);
    assert_eq!(kind(&not_word), VerifyErrorKind::TypeMismatch);
    let mask_bool = [TRUE.as_slice(), &[A::Op(op::CLOCK), A::Op(op::BITAND)]].concat();
    assert_eq!(kind(&asm(0, &mask_bool)), VerifyErrorKind::TypeMismatch);
    let skip_word = asm(0, &[A::Op(op::CLOCK), A::Skip(op::AND_THEN, 0)]);
    assert_eq!(kind(&skip_word), VerifyErrorKind::TypeMismatch);
}

#[test]
fn misaligned_and_disallowed_addresses() {
    let load = |o, a| asm(0, &[A::Word(o, a), A::Word(op::IMM, 0), A::Op(op::EQ)]);
    assert_eq!(kind(&load(op::LOAD64, 0x1004)), VerifyErrorKind::Misaligned);
    assert_eq!(kind(&load(op::LOAD64, 0x1001)), VerifyErrorKind::Misaligned);
    assert_eq!(kind(&load(op::LOAD32, 0x1002)), VerifyErrorKind::Misaligned);
    assert!(verify(&load(op::LOAD32, 0x1004), &LIMITS, &mem()).is_ok());
    for a in [0, 0xff8, 0x2000, u64::MAX - 7, 0xffff_8000_0000_0000] {
        let e = err(&load(op::LOAD64, a));
        assert_eq!(
            (e.at, e.offset, e.kind),
            (0, HEADER_LEN, VerifyErrorKind::AddressNotAllowed)
        );
    }
    // A u32 just inside the range whose aligned word is not.
    assert_eq!(
        kind(&load(op::LOAD32, 0xffc)),
        VerifyErrorKind::AddressNotAllowed
    );
    assert!(verify(&load(op::LOAD32, 0x1ffc), &LIMITS, &mem()).is_ok());
}

#[test]
fn counters_are_bounded() {
    let c = |i| {
        asm(
            0,
            &[A::Byte(op::COUNTER, i), A::Word(op::IMM, 0), A::Op(op::NE)],
        )
    };
    assert!(verify(&c(1), &LIMITS, &mem()).is_ok());
    let e = err(&c(2));
    assert_eq!((e.at, e.kind), (0, VerifyErrorKind::NoSuchCounter));
    let none = Limits::DEFAULT;
    assert_eq!(
        verify(&c(0), &none, &mem()).unwrap_err().kind,
        VerifyErrorKind::NoSuchCounter
    );
    assert!(ok(&c(1)).eval(&mem()).unwrap().value);
}

#[test]
fn bad_result() {
    for code in [
        vec![],
        vec![A::Op(op::CLOCK)],
        [TRUE.as_slice(), &TRUE].concat(),
        vec![A::Op(op::CLOCK), A::Op(op::CLOCK), A::Op(op::ADD)],
    ] {
        let e = err(&asm(0, &code));
        assert_eq!((e.at, e.kind), (code.len(), VerifyErrorKind::BadResult));
    }
}

#[test]
fn skips_must_go_forward_in_range_onto_boundaries() {
    // TRUE and_then { TRUE }: the skip covers 19 bytes.
    let good = |off| {
        asm(
            0,
            &[
                TRUE[0],
                TRUE[1],
                TRUE[2],
                A::Skip(op::AND_THEN, off),
                TRUE[0],
                TRUE[1],
                TRUE[2],
            ],
        )
    };
    let v = ok(&good(19));
    assert_eq!(v.insns()[3], Insn::AndThen(7));
    let e = err(&good(-1));
    assert_eq!(
        (e.at, e.offset, e.kind),
        (3, HEADER_LEN + 19, VerifyErrorKind::BackwardJump)
    );
    assert_eq!(kind(&good(i16::MIN)), VerifyErrorKind::BackwardJump);
    assert_eq!(kind(&good(20)), VerifyErrorKind::JumpOutOfRange);
    assert_eq!(kind(&good(i16::MAX)), VerifyErrorKind::JumpOutOfRange);
    let e = err(&good(5));
    assert_eq!((e.at, e.kind), (3, VerifyErrorKind::JumpIntoInstruction));
    // Landing after the first immediate: one word on the skip path, none
    // (and then a word) on the other.
    assert_eq!(kind(&good(9)), VerifyErrorKind::PathMismatch);
    // A zero skip: the skip path keeps the boolean, the other pops it.
    assert_eq!(kind(&good(0)), VerifyErrorKind::PathMismatch);
    // Landing on a boundary where the fall-through path has a word where
    // the skip path has a boolean.
    let typed = asm(
        0,
        &[
            TRUE[0],
            TRUE[1],
            TRUE[2],
            A::Skip(op::OR_ELSE, 1),
            A::Op(op::CLOCK),
            A::Word(op::IMM, 0),
            A::Op(op::NE),
        ],
    );
    let e = err(&typed);
    assert_eq!((e.at, e.kind), (3, VerifyErrorKind::PathMismatch));
}

#[test]
fn each_error_code_is_distinct() {
    use VerifyErrorKind::*;
    let all = [
        BadHeader,
        Truncated,
        UnknownOpcode(0),
        TooLong,
        StackUnderflow,
        StackOverflow,
        TypeMismatch,
        Misaligned,
        AddressNotAllowed,
        NoSuchCounter,
        BadResult,
        BackwardJump,
        JumpOutOfRange,
        JumpIntoInstruction,
        PathMismatch,
    ];
    let mut codes: Vec<u32> = all.iter().map(|k| k.code()).collect();
    codes.sort();
    codes.dedup();
    assert_eq!(codes, (1..=15).collect::<Vec<_>>());
}

#[test]
fn short_circuits_skip_reads_and_steps() {
    let m = mem();
    // clock >= 100 (true) or_else { word@0x1008 != 7 }: the load is skipped.
    let p = Builder::new(3)
        .clock()
        .imm(100)
        .ge()
        .or_else(|b| b.load_u64(0x1008).imm(7).ne())
        .finish()
        .unwrap();
    let v = ok(p.as_bytes());
    assert_eq!(v.len(), 7);
    assert_eq!(
        v.eval(&m),
        Ok(Outcome {
            value: true,
            steps: 4
        })
    );
    assert!(m.reads.borrow().is_empty());
    // Not taken: the right side runs.
    let early = Mem { clock: 5, ..mem() };
    assert_eq!(
        v.eval(&early),
        Ok(Outcome {
            value: false,
            steps: 7
        })
    );
    assert_eq!(*early.reads.borrow(), [0x1008]);
    // and_then stops at the first false.
    let p = Builder::all_of(
        0,
        &[
            Cond::ClockAtLeast(1_000),
            Cond::WordChanged {
                addr: 0x1008,
                old: 0,
            },
        ],
    )
    .unwrap();
    let o = ok(p.as_bytes()).eval(&m).unwrap();
    assert_eq!((o.value, o.steps), (false, 4));
}

#[test]
fn any_of_and_all_of() {
    let m = mem();
    let conds = [
        Cond::ClockAtLeast(1_000),
        Cond::WordChanged {
            addr: 0x1008,
            old: 7,
        },
        Cond::MaskAny {
            addr: 0x1010,
            mask: 0x4,
        },
        Cond::CounterAtLeast {
            index: 1,
            value: 15,
        },
        Cond::WordEquals {
            addr: 0x1018,
            value: 0,
        },
    ];
    let truth = [false, false, true, true, true];
    for i in 0..conds.len() {
        let any = ok(Builder::any_of(0, &conds[..=i]).unwrap().as_bytes())
            .eval(&m)
            .unwrap();
        assert_eq!(any.value, truth[..=i].iter().any(|&t| t), "any_of {i}");
        let all = ok(Builder::all_of(0, &conds[i..]).unwrap().as_bytes())
            .eval(&m)
            .unwrap();
        assert_eq!(all.value, truth[i..].iter().all(|&t| t), "all_of {i}");
    }
    assert_eq!(Builder::any_of(0, &[]).unwrap_err(), BuildError::Empty);
    assert_eq!(Builder::all_of(0, &[]).unwrap_err(), BuildError::Empty);
    // 16 five-instruction conditions need more than 64 instructions.
    let many = [Cond::MaskAny {
        addr: 0x1010,
        mask: 1,
    }; 16];
    assert_eq!(Builder::any_of(0, &many).unwrap_err(), BuildError::TooLong);
}

#[test]
fn words_loads_and_arithmetic() {
    let m = mem();
    let eval = |b: Builder| ok(b.finish().unwrap().as_bytes()).eval(&m).unwrap().value;
    // u32 halves of 0x1111_2222_3333_4444 at 0x1010 (little-endian).
    assert!(eval(Builder::new(0).load_u32(0x1010).imm(0x3333_4444).eq()));
    assert!(eval(Builder::new(0).load_u32(0x1014).imm(0x1111_2222).eq()));
    // Wrapping arithmetic.
    assert!(eval(Builder::new(0).imm(u64::MAX).imm(2).add().imm(1).eq()));
    assert!(eval(Builder::new(0).imm(1).imm(2).sub().imm(u64::MAX).eq()));
    assert!(eval(
        Builder::new(0)
            .imm(0b1100)
            .imm(0b0110)
            .bit_and()
            .imm(0b0100)
            .eq()
    ));
    // Operand order: first pushed is on the left.
    assert!(eval(Builder::new(0).imm(1).imm(2).lt()));
    assert!(!eval(Builder::new(0).imm(1).imm(2).gt()));
    assert!(eval(Builder::new(0).imm(2).imm(2).le()));
    assert!(eval(Builder::new(0).imm(2).imm(2).ge()));
    assert!(eval(Builder::new(0).imm(1).imm(1).eq().not().not()));
    let t = |b: Builder| b.imm(0).imm(0).eq();
    let f = |b: Builder| b.imm(0).imm(1).eq();
    assert!(!eval(f(t(Builder::new(0))).and()));
    assert!(eval(f(t(Builder::new(0))).or()));
}

#[test]
fn eval_errors_are_errors_not_panics() {
    let p = Builder::new(0)
        .load_u64(0x1008)
        .imm(7)
        .ne()
        .or_else(|b| b.load_u32(0x1014).imm(0).eq())
        .finish()
        .unwrap();
    let v = ok(p.as_bytes());
    let mut m = mem();
    m.gone.push(0x1008);
    assert_eq!(v.eval(&m), Err(EvalError::ReadFailed(0x1008)));
    let mut m = mem();
    m.gone.push(0x1010);
    assert_eq!(v.eval(&m), Err(EvalError::ReadFailed(0x1010)));
    // A counter the kernel allowed at install but no longer has.
    let wide = Limits {
        counters: 9,
        ..LIMITS
    };
    let c = Builder::new(0).counter(8).imm(0).eq().finish().unwrap();
    let v = verify(c.as_bytes(), &wide, &mem()).unwrap();
    assert_eq!(v.eval(&mem()), Err(EvalError::CounterMissing(8)));
}

#[test]
fn builder_reports_structural_errors() {
    assert!(matches!(
        Builder::new(0).imm(1).imm(1).and().finish(),
        Err(BuildError::Invalid(VerifyError {
            kind: VerifyErrorKind::TypeMismatch,
            ..
        }))
    ));
    assert!(matches!(
        Builder::new(0).imm(1).finish(),
        Err(BuildError::Invalid(VerifyError {
            kind: VerifyErrorKind::BadResult,
            ..
        }))
    ));
    // The closure of a short-circuit must push exactly one boolean.
    assert!(matches!(
        Builder::new(0)
            .imm(1)
            .imm(1)
            .eq()
            .and_then(|b| b.clock())
            .finish(),
        Err(BuildError::Invalid(VerifyError {
            kind: VerifyErrorKind::PathMismatch,
            ..
        }))
    ));
    // Addresses are the kernel's business, not the builder's.
    assert!(Builder::until_word_changes(0, 0xffff_8000_0000_0000, 0).is_ok());
}

#[test]
fn verified_is_small_enough_to_copy_around() {
    // Fixed-size: one tag, 64 instructions, two lengths.
    assert!(core::mem::size_of::<Verified>() <= 8 + 64 * 16 + 16);
}

#[test]
fn the_next_clock_edge_is_where_a_clock_comparison_flips() {
    let v = |p: Program| verify(p.as_bytes(), &Limits::DEFAULT, &mem()).unwrap();
    let deadline = v(Builder::until_time(1, 5_000).unwrap());
    assert_eq!(deadline.next_clock_edge(0), Some(5_000));
    assert_eq!(deadline.next_clock_edge(4_999), Some(5_000));
    assert_eq!(deadline.next_clock_edge(5_000), None);
    // The earliest of several, operands either way round; `>` flips one
    // nanosecond later than `>=`.
    let many = v(Builder::new(2)
        .clock()
        .imm(9_000)
        .gt()
        .imm(7_000)
        .clock()
        .le()
        .or()
        .clock()
        .imm(8_000)
        .ge()
        .or()
        .finish()
        .unwrap());
    assert_eq!(many.next_clock_edge(0), Some(7_000));
    assert_eq!(many.next_clock_edge(7_000), Some(8_000));
    assert_eq!(many.next_clock_edge(8_500), Some(9_001));
    // Checked against evaluation: at the edge the value differs from just
    // before it, for each comparison.
    for (cmp, b) in [
        (Cmp::Ge, Builder::ge as fn(Builder) -> Builder),
        (Cmp::Gt, Builder::gt),
        (Cmp::Le, Builder::le),
        (Cmp::Lt, Builder::lt),
        (Cmp::Eq, Builder::eq),
        (Cmp::Ne, Builder::ne),
    ] {
        for clock_first in [true, false] {
            let p = if clock_first {
                b(Builder::new(3).clock().imm(1_000))
            } else {
                b(Builder::new(3).imm(1_000).clock())
            };
            let p = v(p.finish().unwrap());
            // Every edge from 0 on, each a change of value, and no change
            // of value between them.
            let mut edge = p.next_clock_edge(0).expect("an edge");
            let mut edges = vec![edge];
            while let Some(e) = p.next_clock_edge(edge) {
                edges.push(e);
                edge = e;
            }
            let expected: &[u64] = match cmp {
                Cmp::Eq | Cmp::Ne => &[1_000, 1_001],
                Cmp::Ge | Cmp::Lt if clock_first => &[1_000],
                Cmp::Le | Cmp::Gt if !clock_first => &[1_000],
                _ => &[1_001],
            };
            assert_eq!(edges, expected, "{cmp:?} clock first {clock_first}");
            let edge = edges[0];
            let at = |t: u64| p.eval(&Mem { clock: t, ..mem() }).unwrap().value;
            for &e in &edges {
                assert_ne!(at(e - 1), at(e), "{cmp:?} clock first {clock_first} at {e}");
            }
            assert_eq!(at(edge - 2), at(edge - 1));
        }
    }
    // No clock, no edge.
    let word = v(Builder::new(4).imm(1).imm(2).lt().finish().unwrap());
    assert_eq!(word.next_clock_edge(0), None);
}
