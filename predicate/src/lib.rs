//! Wakeup predicates (after Xok): a small postfix program over words in the
//! sleeper's own memory, the global clock, exported counters and
//! immediates, combined with unsigned comparisons, boolean operators and
//! forward-only conditional skips (short-circuit `and`/`or`).
//!
//! An untrusted libOS builds a program with the [`Builder`] (no allocation)
//! and hands the bytes to the kernel. The kernel [`verify`]s them once, at
//! install: well formed, at most [`Limits::max_insns`] instructions, every
//! skip forward and landing on an instruction boundary, type-correct
//! (words vs booleans) with a stack of at most [`Limits::max_stack`] on
//! every path, leaving exactly one boolean, and reading only words that the
//! caller's [`AddressCheck`] allows. The result, [`Verified`], holds the
//! decoded instructions in a fixed array; [`Verified::eval`] runs them
//! without allocating, in at most one step per instruction (control only
//! moves forward).
//!
//! ```
//! use predicate::{verify, AddressCheck, Builder, EvalEnv, Limits};
//!
//! // The kernel's view of the sleeper: a clock, no memory, no counters.
//! struct Now(u64);
//! impl AddressCheck for Now {
//!     fn allowed(&self, _addr: u64, _len: u64) -> bool { false }
//! }
//! impl EvalEnv for Now {
//!     fn read_u64(&self, _addr: u64) -> Option<u64> { None }
//!     fn clock_ns(&self) -> u64 { self.0 }
//!     fn counter(&self, _index: u32) -> Option<u64> { None }
//! }
//!
//! // libOS: "wake me (tag 7) once the clock reaches 5 ms".
//! let program = Builder::until_time(7, 5_000_000).unwrap();
//! // Kernel, at install:
//! let verified = verify(program.as_bytes(), &Limits::DEFAULT, &Now(0)).unwrap();
//! // Kernel, when the sleeper's slot comes round:
//! assert!(!verified.eval(&Now(4_999_999)).unwrap().value);
//! let woke = verified.eval(&Now(5_000_000)).unwrap();
//! assert!(woke.value && woke.steps == 3);
//! assert_eq!(verified.tag(), 7);
//! ```
//!
//! # Encoding (all integers little-endian)
//!
//! A program is a 10-byte header — `b'P'`, version `1`, the `u64` tag
//! delivered with the wakeup — followed by instructions, each an opcode
//! byte and its operand. `w` is a word (`u64`), `b` a boolean.
//!
//! | byte   | name          | operand        | stack          | effect |
//! |--------|---------------|----------------|----------------|--------|
//! | `0x01` | `load64`      | `u64` address  | → w            | the word at a user address; 8-byte aligned |
//! | `0x02` | `imm`         | `u64` value    | → w            | an immediate |
//! | `0x03` | `clock`       | —              | → w            | the global clock (ns) |
//! | `0x04` | `counter`     | `u8` index     | → w            | exported counter `index` (< [`Limits::counters`]) |
//! | `0x05` | `load32`      | `u64` address  | → w            | the zero-extended `u32` at a 4-byte-aligned address (the verifier checks the whole aligned 8-byte word holding it) |
//! | `0x10` | `eq`          | —              | w w → b        | unsigned comparisons of the two words, first operand on the left: `a == b` |
//! | `0x11` | `ne`          | —              | w w → b        | `a != b` |
//! | `0x12` | `lt`          | —              | w w → b        | `a < b` |
//! | `0x13` | `le`          | —              | w w → b        | `a <= b` |
//! | `0x14` | `gt`          | —              | w w → b        | `a > b` |
//! | `0x15` | `ge`          | —              | w w → b        | `a >= b` |
//! | `0x20` | `and`         | —              | b b → b        | both |
//! | `0x21` | `or`          | —              | b b → b        | either |
//! | `0x22` | `not`         | —              | b → b          | negation |
//! | `0x30` | `bitand`      | —              | w w → w        | `a & b` (masks) |
//! | `0x31` | `add`         | —              | w w → w        | `a.wrapping_add(b)` |
//! | `0x32` | `sub`         | —              | w w → w        | `a.wrapping_sub(b)` |
//! | `0x40` | `and_then`    | `i16` offset   | b → b, or b →  | if the top is false, keep it and skip `offset` bytes (counted from the end of this instruction); otherwise pop it and go on |
//! | `0x41` | `or_else`     | `i16` offset   | b → b, or b →  | if the top is true, keep it and skip; otherwise pop it and go on |
//!
//! A skip's offset must be ≥ 0 (no backward jumps, ever) and land on an
//! instruction boundary or the end of the program; the stack must have the
//! same shape on both paths where they meet. `b and_then{ c }` is thus the
//! short-circuit `b && c`, and `b or_else{ c }` is `b || c`, provided `c`
//! pushes exactly one boolean. Booleans are stored as the words 0 and 1.
//!
//! Stable error numbers for the system call ABI are in
//! [`VerifyErrorKind::code`].
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

mod build;
mod verify;

pub use build::{BuildError, Builder, Cond, Program};
pub use verify::verify;

/// Most instructions in a program (also the bound on evaluation steps).
pub const MAX_INSNS: usize = 64;
/// Deepest evaluation stack.
pub const MAX_STACK: usize = 16;
/// Length of the header: magic, version, tag.
pub const HEADER_LEN: usize = 10;
/// Longest instruction (opcode and `u64` operand).
pub const MAX_INSN_LEN: usize = 9;
/// Largest encoded program.
pub const MAX_BYTES: usize = HEADER_LEN + MAX_INSNS * MAX_INSN_LEN;
/// First header byte.
pub const MAGIC: u8 = b'P';
/// Encoding version (second header byte).
pub const VERSION: u8 = 1;

/// Opcodes (see the table in the crate documentation).
pub mod op {
    pub const LOAD64: u8 = 0x01;
    pub const IMM: u8 = 0x02;
    pub const CLOCK: u8 = 0x03;
    pub const COUNTER: u8 = 0x04;
    pub const LOAD32: u8 = 0x05;
    pub const EQ: u8 = 0x10;
    pub const NE: u8 = 0x11;
    pub const LT: u8 = 0x12;
    pub const LE: u8 = 0x13;
    pub const GT: u8 = 0x14;
    pub const GE: u8 = 0x15;
    pub const AND: u8 = 0x20;
    pub const OR: u8 = 0x21;
    pub const NOT: u8 = 0x22;
    pub const BITAND: u8 = 0x30;
    pub const ADD: u8 = 0x31;
    pub const SUB: u8 = 0x32;
    pub const AND_THEN: u8 = 0x40;
    pub const OR_ELSE: u8 = 0x41;
}

/// One decoded instruction, as [`Verified`] holds it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Insn {
    /// Push the `u64` at this (8-byte-aligned) user address.
    Load(u64),
    /// Push the zero-extended `u32` at this (4-byte-aligned) user address.
    Load32(u64),
    Imm(u64),
    Clock,
    Counter(u8),
    Cmp(Cmp),
    And,
    Or,
    Not,
    BitAnd,
    Add,
    Sub,
    /// If the top is false keep it and continue at this instruction index
    /// (always later; may be the program's length, i.e. the end); else pop.
    AndThen(u8),
    /// If the top is true keep it and continue at this instruction index;
    /// else pop.
    OrElse(u8),
}

/// Unsigned comparisons, first operand on the left.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cmp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

impl Cmp {
    /// `a <op> b`.
    pub fn apply(self, a: u64, b: u64) -> bool {
        match self {
            Cmp::Eq => a == b,
            Cmp::Ne => a != b,
            Cmp::Lt => a < b,
            Cmp::Le => a <= b,
            Cmp::Gt => a > b,
            Cmp::Ge => a >= b,
        }
    }
}

/// What the kernel allows a program. Build it from [`Limits::DEFAULT`] with
/// struct-update syntax; the hard caps [`MAX_INSNS`] and [`MAX_STACK`]
/// apply whatever is asked here.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Counters `0..counters` may be read.
    pub counters: u32,
    /// Most instructions (capped at [`MAX_INSNS`]).
    pub max_insns: usize,
    /// Deepest stack on any path (capped at [`MAX_STACK`]).
    pub max_stack: usize,
}

impl Limits {
    /// No counters; the hard caps for length and depth.
    pub const DEFAULT: Limits = Limits {
        counters: 0,
        max_insns: MAX_INSNS,
        max_stack: MAX_STACK,
    };
}

impl Default for Limits {
    fn default() -> Self {
        Limits::DEFAULT
    }
}

/// Which memory a program may read. The kernel answers from the calling
/// environment's own pinned mappings.
pub trait AddressCheck {
    /// Whether `[addr, addr + len)` lies inside memory the caller may
    /// name. `addr + len` may overflow; answer `false` then.
    fn allowed(&self, addr: u64, len: u64) -> bool;
}

/// What evaluation reads.
pub trait EvalEnv {
    /// The word at the 8-byte-aligned user address `addr`, or `None` if it
    /// is no longer readable (unmapped since install).
    fn read_u64(&self, addr: u64) -> Option<u64>;
    /// The global clock (ns).
    fn clock_ns(&self) -> u64;
    /// Exported counter `index`, or `None` if it does not exist.
    fn counter(&self, index: u32) -> Option<u64>;
}

/// Why a program was rejected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VerifyError {
    /// Index of the instruction at fault (for header errors 0; for a
    /// program that is too long, the first instruction past the limit; for
    /// [`VerifyErrorKind::BadResult`], the instruction count).
    pub at: usize,
    /// Byte offset of that instruction (or of the header, or the end).
    pub offset: usize,
    pub kind: VerifyErrorKind,
}

/// What was wrong.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VerifyErrorKind {
    /// Shorter than the header, wrong magic or unknown version.
    BadHeader,
    /// An instruction's operand runs past the end.
    Truncated,
    UnknownOpcode(u8),
    /// More instructions than the limits allow, or more than
    /// [`MAX_BYTES`] bytes.
    TooLong,
    /// An operator found too few values on the stack.
    StackUnderflow,
    /// A push would exceed the stack limit.
    StackOverflow,
    /// An operator found a word where it wanted a boolean or vice versa.
    TypeMismatch,
    /// A load address is not aligned to its size.
    Misaligned,
    /// A load reads memory the [`AddressCheck`] does not allow.
    AddressNotAllowed,
    /// A counter index is not below [`Limits::counters`].
    NoSuchCounter,
    /// The program does not leave exactly one boolean.
    BadResult,
    /// A skip with a negative offset.
    BackwardJump,
    /// A skip past the end of the program.
    JumpOutOfRange,
    /// A skip landing inside an instruction.
    JumpIntoInstruction,
    /// Where a skip lands, the stack differs (depth or types) from the
    /// stack of the path that did not skip.
    PathMismatch,
}

impl VerifyErrorKind {
    /// A stable number for the system call ABI (never reused).
    pub fn code(&self) -> u32 {
        match self {
            VerifyErrorKind::BadHeader => 1,
            VerifyErrorKind::Truncated => 2,
            VerifyErrorKind::UnknownOpcode(_) => 3,
            VerifyErrorKind::TooLong => 4,
            VerifyErrorKind::StackUnderflow => 5,
            VerifyErrorKind::StackOverflow => 6,
            VerifyErrorKind::TypeMismatch => 7,
            VerifyErrorKind::Misaligned => 8,
            VerifyErrorKind::AddressNotAllowed => 9,
            VerifyErrorKind::NoSuchCounter => 10,
            VerifyErrorKind::BadResult => 11,
            VerifyErrorKind::BackwardJump => 12,
            VerifyErrorKind::JumpOutOfRange => 13,
            VerifyErrorKind::JumpIntoInstruction => 14,
            VerifyErrorKind::PathMismatch => 15,
        }
    }
}

/// A verified program, decoded into a fixed array (no heap).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verified {
    tag: u64,
    insns: [Insn; MAX_INSNS],
    len: usize,
    max_depth: usize,
}

/// An evaluation's result and cost.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// Whether the predicate holds (the sleeper wakes).
    pub value: bool,
    /// Instructions executed: at most [`Verified::len`].
    pub steps: usize,
}

/// Evaluation failed (never a panic): memory the program reads is no longer
/// readable, or a counter vanished.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EvalError {
    /// Reading the aligned word at this address failed.
    ReadFailed(u64),
    CounterMissing(u32),
}

impl Verified {
    /// The tag delivered with the wakeup.
    pub fn tag(&self) -> u64 {
        self.tag
    }

    /// Instructions: the most steps an evaluation can take.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Always false for a verified program (it leaves one boolean).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The decoded instructions.
    pub fn insns(&self) -> &[Insn] {
        &self.insns[..self.len]
    }

    /// Deepest stack on any path.
    pub fn max_depth(&self) -> usize {
        self.max_depth
    }

    /// The aligned 8-byte words the program may read (the kernel may pin
    /// them), in program order, possibly repeated.
    pub fn words_read(&self) -> impl Iterator<Item = u64> + '_ {
        self.insns().iter().filter_map(|i| match *i {
            Insn::Load(a) => Some(a),
            Insn::Load32(a) => Some(a & !7),
            _ => None,
        })
    }

    /// The earliest instant after `now_ns` at which a comparison of the
    /// clock with an immediate (`clock imm cmp` or `imm clock cmp`, as
    /// [`Cond::ClockAtLeast`] builds) changes its value: when the program,
    /// evaluated again, can answer differently because time passed. The
    /// kernel can arm an idle core's timer for it, so a timed sleeper wakes at
    /// its deadline rather than at its slot's next turn. A hint, not a
    /// promise: other terms may keep the program false then, and memory or
    /// counters may make it true earlier. `None` when no such comparison
    /// has an edge after `now_ns`.
    pub fn next_clock_edge(&self, now_ns: u64) -> Option<u64> {
        // Each comparison's edges: where its value changes. `clock >= x`
        // and `clock < x` change at x; `clock > x` and `clock <= x` at
        // x + 1; `==` and `!=` at both. With the immediate first, the
        // comparison reads the other way round (`x <= clock` is
        // `clock >= x`).
        let edges = |c: Cmp, x: u64, clock_first: bool| -> [Option<u64>; 2] {
            let (at, after) = (Some(x), Some(x.saturating_add(1)));
            match (c, clock_first) {
                (Cmp::Eq | Cmp::Ne, _) => [at, after],
                (Cmp::Ge | Cmp::Lt, true) | (Cmp::Le | Cmp::Gt, false) => [at, None],
                (Cmp::Gt | Cmp::Le, true) | (Cmp::Lt | Cmp::Ge, false) => [after, None],
            }
        };
        self.insns()
            .windows(3)
            .flat_map(|w| match *w {
                [Insn::Clock, Insn::Imm(x), Insn::Cmp(c)] => edges(c, x, true),
                [Insn::Imm(x), Insn::Clock, Insn::Cmp(c)] => edges(c, x, false),
                _ => [None, None],
            })
            .flatten()
            .filter(|&t| t > now_ns)
            .min()
    }

    /// Evaluates the program: allocation-free, at most [`Self::len`] steps
    /// (control only moves forward). A read or counter that fails is an
    /// error, not a panic.
    pub fn eval(&self, env: &dyn EvalEnv) -> Result<Outcome, EvalError> {
        let insns = &self.insns[..self.len];
        let mut stack = [0u64; MAX_STACK];
        let mut sp = 0usize;
        let mut pc = 0usize;
        let mut steps = 0usize;
        // Verification guarantees the depth and types on every path, so the
        // pops below never underflow and the pushes never overflow.
        while let Some(&insn) = insns.get(pc) {
            steps += 1;
            pc += 1;
            let value = match insn {
                Insn::Load(addr) => env.read_u64(addr).ok_or(EvalError::ReadFailed(addr))?,
                Insn::Load32(addr) => {
                    let word = addr & !7;
                    let w = env.read_u64(word).ok_or(EvalError::ReadFailed(word))?;
                    (w >> ((addr & 4) * 8)) & 0xffff_ffff
                }
                Insn::Imm(v) => v,
                Insn::Clock => env.clock_ns(),
                Insn::Counter(i) => env
                    .counter(u32::from(i))
                    .ok_or(EvalError::CounterMissing(u32::from(i)))?,
                Insn::AndThen(to) | Insn::OrElse(to) => {
                    let top = stack[sp - 1] != 0;
                    if top == matches!(insn, Insn::OrElse(_)) {
                        pc = usize::from(to);
                    } else {
                        sp -= 1;
                    }
                    continue;
                }
                Insn::Not => {
                    sp -= 1;
                    u64::from(stack[sp] == 0)
                }
                Insn::Cmp(_) | Insn::And | Insn::Or | Insn::BitAnd | Insn::Add | Insn::Sub => {
                    sp -= 2;
                    let (a, b) = (stack[sp], stack[sp + 1]);
                    match insn {
                        Insn::Cmp(c) => u64::from(c.apply(a, b)),
                        Insn::And => u64::from(a != 0 && b != 0),
                        Insn::Or => u64::from(a != 0 || b != 0),
                        Insn::BitAnd => a & b,
                        Insn::Add => a.wrapping_add(b),
                        _ => a.wrapping_sub(b),
                    }
                }
            };
            stack[sp] = value;
            sp += 1;
        }
        Ok(Outcome {
            value: stack[0] != 0,
            steps,
        })
    }
}

#[cfg(test)]
mod tests;
