//! Property tests over the public API: the verifier never panics; every
//! accepted program is bounded, reads only what was allowed, and means what
//! a naive byte-level interpreter says; builder-made expression trees always
//! verify and agree with a recursive reference; mutated programs that are
//! still accepted keep all of that.

use std::cell::RefCell;

use predicate::{
    op, verify, AddressCheck, BuildError, Builder, EvalEnv, Limits, VerifyErrorKind, HEADER_LEN,
    MAGIC, MAX_INSNS, MAX_STACK, VERSION,
};
use proptest::prelude::*;

/// Readable memory: two ranges. Every readable word has a value derived
/// from its address; reads are recorded.
const RANGES: [(u64, u64); 2] = [(0x1000, 0x1100), (0x8000, 0x8008)];
const COUNTERS: u32 = 4;

struct World {
    clock: u64,
    seed: u64,
    reads: RefCell<Vec<u64>>,
}

fn inside(addr: u64, len: u64) -> bool {
    let Some(end) = addr.checked_add(len) else {
        return false;
    };
    RANGES.iter().any(|&(lo, hi)| addr >= lo && end <= hi)
}

impl World {
    fn new(clock: u64, seed: u64) -> Self {
        World {
            clock,
            seed,
            reads: RefCell::new(Vec::new()),
        }
    }
    fn word(&self, addr: u64) -> u64 {
        // Small values half the time so that comparisons go both ways.
        let h = (addr ^ self.seed).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        if h >> 63 == 0 {
            h % 4
        } else {
            h
        }
    }
    fn counter_value(&self, i: u32) -> u64 {
        (self.seed >> (i * 2)) % 5
    }
}

impl AddressCheck for World {
    fn allowed(&self, addr: u64, len: u64) -> bool {
        inside(addr, len)
    }
}

impl EvalEnv for World {
    fn read_u64(&self, addr: u64) -> Option<u64> {
        self.reads.borrow_mut().push(addr);
        inside(addr, 8).then(|| self.word(addr))
    }
    fn clock_ns(&self) -> u64 {
        self.clock
    }
    fn counter(&self, index: u32) -> Option<u64> {
        (index < COUNTERS).then(|| self.counter_value(index))
    }
}

const LIMITS: Limits = Limits {
    counters: COUNTERS,
    ..Limits::DEFAULT
};

/// A direct interpreter of the bytes, written independently of the crate's
/// decoder: follows skips by byte offset, keeps a growable stack, and
/// returns (value, steps, words read). Only run on accepted programs; any
/// panic in here is a verifier bug.
fn naive(bytes: &[u8], w: &World) -> (bool, usize, Vec<u64>) {
    let mut stack: Vec<u64> = Vec::new();
    let mut reads = Vec::new();
    let mut pc = HEADER_LEN;
    let mut steps = 0;
    let u64_at = |i: usize| u64::from_le_bytes(bytes[i..i + 8].try_into().unwrap());
    while pc < bytes.len() {
        steps += 1;
        let o = bytes[pc];
        match o {
            op::LOAD64 | op::IMM | op::LOAD32 => {
                let x = u64_at(pc + 1);
                pc += 9;
                stack.push(match o {
                    op::IMM => x,
                    op::LOAD64 => {
                        reads.push(x);
                        w.word(x)
                    }
                    _ => {
                        reads.push(x & !7);
                        (w.word(x & !7) >> ((x % 8) * 8)) & 0xffff_ffff
                    }
                });
            }
            op::CLOCK => {
                pc += 1;
                stack.push(w.clock);
            }
            op::COUNTER => {
                stack.push(w.counter_value(u32::from(bytes[pc + 1])));
                pc += 2;
            }
            op::NOT => {
                pc += 1;
                let a = stack.pop().unwrap();
                assert!(a <= 1);
                stack.push(u64::from(a == 0));
            }
            op::AND_THEN | op::OR_ELSE => {
                let off = i16::from_le_bytes([bytes[pc + 1], bytes[pc + 2]]);
                pc += 3;
                let top = *stack.last().unwrap();
                assert!(top <= 1);
                if (top == 1) == (o == op::OR_ELSE) {
                    assert!(off >= 0);
                    pc += off as usize;
                } else {
                    stack.pop();
                }
            }
            _ => {
                pc += 1;
                let b = stack.pop().unwrap();
                let a = stack.pop().unwrap();
                stack.push(match o {
                    op::EQ => u64::from(a == b),
                    op::NE => u64::from(a != b),
                    op::LT => u64::from(a < b),
                    op::LE => u64::from(a <= b),
                    op::GT => u64::from(a > b),
                    op::GE => u64::from(a >= b),
                    op::AND => u64::from(a != 0 && b != 0),
                    op::OR => u64::from(a != 0 || b != 0),
                    op::BITAND => a & b,
                    op::ADD => a.wrapping_add(b),
                    op::SUB => a.wrapping_sub(b),
                    other => panic!("accepted unknown opcode {other:#x}"),
                });
            }
        }
        assert!(stack.len() <= MAX_STACK);
    }
    assert_eq!(pc, bytes.len(), "a skip ran past the end");
    assert_eq!(stack.len(), 1);
    assert!(stack[0] <= 1);
    (stack[0] == 1, steps, reads)
}

/// Whatever the verifier accepted must evaluate within its instruction
/// count, read only allowed words, and agree with the naive interpreter.
fn check_accepted(bytes: &[u8], clock: u64, seed: u64) -> Result<(), TestCaseError> {
    let Ok(v) = verify(bytes, &LIMITS, &World::new(clock, seed)) else {
        return Ok(());
    };
    prop_assert!(v.len() <= MAX_INSNS);
    prop_assert!(v.max_depth() <= MAX_STACK);
    for a in v.words_read() {
        prop_assert!(inside(a, 8), "verified a read of {a:#x}");
    }
    let w = World::new(clock, seed);
    let out = v.eval(&w).expect("all allowed memory and counters exist");
    prop_assert!(out.steps <= v.len());
    for &a in w.reads.borrow().iter() {
        prop_assert!(inside(a, 8), "read {a:#x}, not allowed");
    }
    let (value, steps, reads) = naive(bytes, &World::new(clock, seed));
    prop_assert_eq!(out.value, value);
    prop_assert_eq!(out.steps, steps);
    prop_assert_eq!(&*w.reads.borrow(), &reads);
    Ok(())
}

// ---- Expression trees and their reference meaning --------------------------

#[derive(Debug, Clone)]
enum W {
    Load(u64),
    Load32(u64),
    Imm(u64),
    Clock,
    Counter(u8),
    /// 0 bitand, 1 add, 2 sub.
    Bin(u8, Box<W>, Box<W>),
}

#[derive(Debug, Clone)]
enum B {
    /// Comparison 0..6 = eq ne lt le gt ge.
    Cmp(u8, W, W),
    /// `short`: compiled as a short-circuit skip rather than both sides
    /// and the strict operator.
    And(bool, Box<B>, Box<B>),
    Or(bool, Box<B>, Box<B>),
    Not(Box<B>),
}

fn readable_addr() -> impl Strategy<Value = u64> {
    prop_oneof![
        (0x1000u64 / 8..0x1100 / 8).prop_map(|i| i * 8),
        Just(0x8000u64),
    ]
}

fn word() -> impl Strategy<Value = W> {
    let leaf = prop_oneof![
        readable_addr().prop_map(W::Load),
        (readable_addr(), any::<bool>()).prop_map(|(a, hi)| W::Load32(a + 4 * u64::from(hi))),
        prop_oneof![0u64..4, any::<u64>()].prop_map(W::Imm),
        Just(W::Clock),
        (0u8..COUNTERS as u8).prop_map(W::Counter),
    ];
    leaf.prop_recursive(2, 6, 2, |inner| {
        (0u8..3, inner.clone(), inner).prop_map(|(o, a, b)| W::Bin(o, Box::new(a), Box::new(b)))
    })
}

fn boolean() -> impl Strategy<Value = B> {
    let leaf = (0u8..6, word(), word()).prop_map(|(c, a, b)| B::Cmp(c, a, b));
    leaf.prop_recursive(4, 12, 2, |inner| {
        prop_oneof![
            (any::<bool>(), inner.clone(), inner.clone()).prop_map(|(s, a, b)| B::And(
                s,
                Box::new(a),
                Box::new(b)
            )),
            (any::<bool>(), inner.clone(), inner.clone()).prop_map(|(s, a, b)| B::Or(
                s,
                Box::new(a),
                Box::new(b)
            )),
            inner.prop_map(|a| B::Not(Box::new(a))),
        ]
    })
}

fn emit_w(b: Builder, w: &W) -> Builder {
    match w {
        W::Load(a) => b.load_u64(*a),
        W::Load32(a) => b.load_u32(*a),
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
        B::And(true, x, y) => emit_b(b, x).and_then(|b| emit_b(b, y)),
        B::Or(true, x, y) => emit_b(b, x).or_else(|b| emit_b(b, y)),
        B::And(false, x, y) => emit_b(emit_b(b, x), y).and(),
        B::Or(false, x, y) => emit_b(emit_b(b, x), y).or(),
        B::Not(x) => emit_b(b, x).not(),
    }
}

/// Reference meaning: (value, instructions executed), recording reads.
fn ref_w(w: &W, env: &World, reads: &mut Vec<u64>) -> (u64, usize) {
    match w {
        W::Load(a) => {
            reads.push(*a);
            (env.word(*a), 1)
        }
        W::Load32(a) => {
            reads.push(a & !7);
            let v = env.word(a & !7);
            (if a % 8 == 4 { v >> 32 } else { v & 0xffff_ffff }, 1)
        }
        W::Imm(v) => (*v, 1),
        W::Clock => (env.clock, 1),
        W::Counter(i) => (env.counter_value(u32::from(*i)), 1),
        W::Bin(o, x, y) => {
            let (a, s) = ref_w(x, env, reads);
            let (b, t) = ref_w(y, env, reads);
            let v = match o {
                0 => a & b,
                1 => a.wrapping_add(b),
                _ => a.wrapping_sub(b),
            };
            (v, s + t + 1)
        }
    }
}

fn ref_b(e: &B, env: &World, reads: &mut Vec<u64>) -> (bool, usize) {
    match e {
        B::Cmp(c, x, y) => {
            let (a, s) = ref_w(x, env, reads);
            let (b, t) = ref_w(y, env, reads);
            let v = [a == b, a != b, a < b, a <= b, a > b, a >= b][usize::from(*c)];
            (v, s + t + 1)
        }
        B::And(short, x, y) | B::Or(short, x, y) => {
            let is_and = matches!(e, B::And(..));
            let (a, s) = ref_b(x, env, reads);
            if *short && a != is_and {
                // Decided by the left side: the skip, nothing more.
                return (a, s + 1);
            }
            let (b, t) = ref_b(y, env, reads);
            (if is_and { a && b } else { a || b }, s + t + 1)
        }
        B::Not(x) => {
            let (a, s) = ref_b(x, env, reads);
            (!a, s + 1)
        }
    }
}

/// Instructions and deepest stack of the compiled tree.
fn size_w(w: &W) -> (usize, usize) {
    match w {
        W::Bin(_, x, y) => {
            let (n, d) = size_w(x);
            let (m, e) = size_w(y);
            (n + m + 1, d.max(e + 1))
        }
        _ => (1, 1),
    }
}

fn size_b(e: &B) -> (usize, usize) {
    match e {
        B::Cmp(_, x, y) => {
            let (n, d) = size_w(x);
            let (m, f) = size_w(y);
            (n + m + 1, d.max(f + 1))
        }
        // The skip pops the left value before the right side runs.
        B::And(true, x, y) | B::Or(true, x, y) => {
            let (n, d) = size_b(x);
            let (m, f) = size_b(y);
            (n + m + 1, d.max(f))
        }
        B::And(false, x, y) | B::Or(false, x, y) => {
            let (n, d) = size_b(x);
            let (m, f) = size_b(y);
            (n + m + 1, d.max(f + 1))
        }
        B::Not(x) => {
            let (n, d) = size_b(x);
            (n + 1, d)
        }
    }
}

/// Byte-level damage to a program.
#[derive(Debug, Clone)]
enum Mutation {
    Set(usize, u8),
    Flip(usize, u8),
    Insert(usize, u8),
    Delete(usize),
    Truncate(usize),
    Swap(usize, usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Mutation::Set(i, b)),
        (any::<usize>(), 0u8..8).prop_map(|(i, b)| Mutation::Flip(i, b)),
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Mutation::Insert(i, b)),
        any::<usize>().prop_map(Mutation::Delete),
        any::<usize>().prop_map(Mutation::Truncate),
        (any::<usize>(), any::<usize>()).prop_map(|(i, j)| Mutation::Swap(i, j)),
    ]
}

fn mutate(bytes: &mut Vec<u8>, m: &Mutation) {
    // Leave the header alone half the time so that the body gets exercised.
    let n = bytes.len();
    match *m {
        Mutation::Set(i, b) => bytes[i % n] = b,
        Mutation::Flip(i, bit) => bytes[i % n] ^= 1 << bit,
        Mutation::Insert(i, b) => bytes.insert(i % (n + 1), b),
        Mutation::Delete(i) => {
            bytes.remove(i % n);
        }
        Mutation::Truncate(i) => bytes.truncate(i % (n + 1)),
        Mutation::Swap(i, j) => bytes.swap(i % n, j % n),
    }
}

/// One instruction of a random stream: every opcode, with operands drawn
/// from interesting values (allowed, border, misaligned and wild
/// addresses; small, negative and huge skips).
fn raw_insn() -> impl Strategy<Value = Vec<u8>> {
    let addr = prop_oneof![
        readable_addr(),
        readable_addr().prop_map(|a| a + 4),
        Just(0xff8u64),
        Just(0x1100u64),
        Just(0x8008u64),
        Just(0x1002u64),
        any::<u64>(),
    ];
    let with_word = |o: u8, w: u64| {
        let mut v = vec![o];
        v.extend_from_slice(&w.to_le_bytes());
        v
    };
    prop_oneof![
        (prop_oneof![Just(op::LOAD64), Just(op::LOAD32)], addr)
            .prop_map(move |(o, a)| with_word(o, a)),
        prop_oneof![0u64..4, any::<u64>()].prop_map(move |v| with_word(op::IMM, v)),
        Just(vec![op::CLOCK]),
        (0u8..6).prop_map(|i| vec![op::COUNTER, i]),
        (0x10u8..0x16).prop_map(|o| vec![o]),
        (0x20u8..0x23).prop_map(|o| vec![o]),
        (0x30u8..0x33).prop_map(|o| vec![o]),
        (
            prop_oneof![Just(op::AND_THEN), Just(op::OR_ELSE)],
            prop_oneof![0i16..40, -4i16..0, any::<i16>()]
        )
            .prop_map(|(o, off)| {
                let mut v = vec![o];
                v.extend_from_slice(&off.to_le_bytes());
                v
            }),
        any::<u8>().prop_map(|o| vec![o]),
    ]
}

/// The instructions of an encoded program, each as its bytes.
fn split(bytes: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut at = HEADER_LEN;
    while at < bytes.len() {
        let size = match bytes[at] {
            op::LOAD64 | op::IMM | op::LOAD32 => 9,
            op::COUNTER => 2,
            op::AND_THEN | op::OR_ELSE => 3,
            _ => 1,
        };
        out.push(bytes[at..at + size].to_vec());
        at += size;
    }
    out
}

/// Instruction-level damage that keeps most programs well formed, so that
/// many mutants are accepted: retarget a skip to another boundary (or into
/// an instruction), swap an opcode for one of the same shape, replace an
/// operand, delete, duplicate or move an instruction.
#[derive(Debug, Clone)]
enum Edit {
    Retarget(usize, usize, i16),
    SwapOp(usize, u8),
    Operand(usize, u64),
    Delete(usize),
    Duplicate(usize),
    Move(usize, usize),
}

fn edit() -> impl Strategy<Value = Edit> {
    let operand = prop_oneof![
        readable_addr(),
        readable_addr().prop_map(|a| a + 4),
        Just(0xff8u64),
        Just(0x1100u64),
        Just(0x1002u64),
        0u64..4,
        any::<u64>(),
    ];
    prop_oneof![
        3 => (any::<usize>(), any::<usize>(), prop_oneof![Just(0i16), -2i16..3])
            .prop_map(|(i, j, d)| Edit::Retarget(i, j, d)),
        2 => (any::<usize>(), any::<u8>()).prop_map(|(i, o)| Edit::SwapOp(i, o)),
        2 => (any::<usize>(), operand).prop_map(|(i, v)| Edit::Operand(i, v)),
        1 => any::<usize>().prop_map(Edit::Delete),
        1 => any::<usize>().prop_map(Edit::Duplicate),
        1 => (any::<usize>(), any::<usize>()).prop_map(|(i, j)| Edit::Move(i, j)),
    ]
}

fn apply_edit(insns: &mut Vec<Vec<u8>>, e: &Edit) {
    let n = insns.len();
    if n == 0 {
        return;
    }
    match *e {
        Edit::Retarget(i, j, nudge) => {
            // The i-th skip (if any) lands on boundary j, nudged by a byte
            // or two.
            let skips: Vec<usize> = (0..n)
                .filter(|&k| matches!(insns[k][0], op::AND_THEN | op::OR_ELSE))
                .collect();
            if skips.is_empty() {
                return;
            }
            let k = skips[i % skips.len()];
            let j = j % (n + 1);
            let end_of_skip: usize = insns[..=k].iter().map(Vec::len).sum();
            let boundary: usize = insns[..j].iter().map(Vec::len).sum();
            let off = (boundary as i64 - end_of_skip as i64 + i64::from(nudge)) as i16;
            insns[k][1..3].copy_from_slice(&off.to_le_bytes());
        }
        Edit::SwapOp(i, pick) => {
            let classes: [&[u8]; 5] = [
                &[op::EQ, op::NE, op::LT, op::LE, op::GT, op::GE],
                &[op::AND, op::OR],
                &[op::BITAND, op::ADD, op::SUB],
                &[op::AND_THEN, op::OR_ELSE],
                &[op::LOAD64, op::LOAD32, op::IMM],
            ];
            let insn = &mut insns[i % n];
            if let Some(c) = classes.iter().find(|c| c.contains(&insn[0])) {
                insn[0] = c[usize::from(pick) % c.len()];
            }
        }
        Edit::Operand(i, v) => {
            let insn = &mut insns[i % n];
            if insn.len() == 9 {
                insn[1..].copy_from_slice(&v.to_le_bytes());
            } else if insn[0] == op::COUNTER {
                insn[1] = v as u8 % 6;
            }
        }
        Edit::Delete(i) => {
            insns.remove(i % n);
        }
        Edit::Duplicate(i) => {
            let x = insns[i % n].clone();
            insns.insert(i % n, x);
        }
        Edit::Move(i, j) => {
            let x = insns.remove(i % n);
            insns.insert(j % n, x);
        }
    }
}

fn header(tag: u64) -> Vec<u8> {
    let mut v = vec![MAGIC, VERSION];
    v.extend_from_slice(&tag.to_le_bytes());
    v
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Arbitrary bytes, with and without a valid header, never panic the
    /// verifier; anything accepted behaves.
    #[test]
    fn arbitrary_bytes_never_panic(
        body in proptest::collection::vec(any::<u8>(), 0..700),
        with_header in any::<bool>(),
        clock in any::<u64>(),
        seed in any::<u64>(),
    ) {
        let bytes = if with_header { [header(seed), body].concat() } else { body };
        check_accepted(&bytes, clock, seed)?;
    }

    /// Random instruction streams (mostly rejected, some accepted): the
    /// verifier decides without panicking, and what it accepts behaves.
    #[test]
    fn random_instruction_streams(
        insns in proptest::collection::vec(raw_insn(), 0..24),
        clock in prop_oneof![0u64..4, any::<u64>()],
        seed in any::<u64>(),
    ) {
        let bytes = [header(1), insns.concat()].concat();
        check_accepted(&bytes, clock, seed)?;
    }

    /// Expression trees built with the builder verify whenever they fit,
    /// and evaluation agrees with the recursive reference in value, steps
    /// and the exact words read.
    #[test]
    fn builder_trees_verify_and_match_reference(
        e in boolean(),
        tag in any::<u64>(),
        clock in prop_oneof![0u64..4, any::<u64>()],
        seed in any::<u64>(),
    ) {
        let (insns, depth) = size_b(&e);
        let built = emit_b(Builder::new(tag), &e).finish();
        if insns > MAX_INSNS {
            prop_assert_eq!(built.unwrap_err(), BuildError::TooLong);
            return Ok(());
        }
        if depth > MAX_STACK {
            prop_assert!(matches!(built, Err(BuildError::Invalid(v)) if v.kind == VerifyErrorKind::StackOverflow));
            return Ok(());
        }
        let program = built.expect("fits, so it builds");
        prop_assert_eq!(program.insn_count(), insns);
        prop_assert_eq!(program.tag(), tag);
        let w = World::new(clock, seed);
        let v = verify(program.as_bytes(), &LIMITS, &w).expect("builder output verifies");
        prop_assert_eq!(v.tag(), tag);
        prop_assert_eq!(v.len(), insns);
        prop_assert_eq!(v.max_depth(), depth);
        let out = v.eval(&w).unwrap();
        let mut reads = Vec::new();
        let (value, steps) = ref_b(&e, &w, &mut reads);
        prop_assert_eq!(out.value, value);
        prop_assert_eq!(out.steps, steps);
        prop_assert!(out.steps <= v.len());
        prop_assert_eq!(&*w.reads.borrow(), &reads);
        check_accepted(program.as_bytes(), clock, seed)?;
    }

    /// Damaging a valid program either gets it rejected or yields a
    /// program that is still bounded, reads only allowed words and means
    /// what the naive interpreter says.
    #[test]
    fn mutated_programs_stay_safe(
        e in boolean(),
        mutations in proptest::collection::vec(mutation(), 1..4),
        clock in prop_oneof![0u64..4, any::<u64>()],
        seed in any::<u64>(),
    ) {
        let Ok(program) = emit_b(Builder::new(seed), &e).finish() else {
            return Ok(());
        };
        let mut bytes = program.as_bytes().to_vec();
        for m in &mutations {
            if bytes.is_empty() {
                break;
            }
            mutate(&mut bytes, m);
        }
        check_accepted(&bytes, clock, seed)?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    /// Instruction-level mutants of valid programs (many still accepted,
    /// with skips landing elsewhere, operators and operands changed): every
    /// accepted one stays bounded, reads only allowed words and means what
    /// the naive interpreter says.
    #[test]
    fn edited_programs_stay_safe(
        e in boolean(),
        edits in proptest::collection::vec(edit(), 1..4),
        clock in prop_oneof![0u64..4, any::<u64>()],
        seed in any::<u64>(),
    ) {
        let Ok(program) = emit_b(Builder::new(seed), &e).finish() else {
            return Ok(());
        };
        let mut insns = split(program.as_bytes());
        for ed in &edits {
            apply_edit(&mut insns, ed);
        }
        let bytes = [header(seed), insns.concat()].concat();
        check_accepted(&bytes, clock, seed)?;
    }
}

#[test]
fn the_kernel_never_sees_unchecked_addresses() {
    // A builder program naming a kernel address builds (structure is fine)
    // but the kernel's check rejects it.
    let p = Builder::until_word_changes(0, 0xffff_8000_0000_0000, 0).unwrap();
    let e = verify(p.as_bytes(), &LIMITS, &World::new(0, 0)).unwrap_err();
    assert_eq!(e.kind, VerifyErrorKind::AddressNotAllowed);
}
