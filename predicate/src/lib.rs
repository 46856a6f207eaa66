//! Wakeup predicates (after Xok): a small postfix program over words in the
//! sleeper's own memory, the global clock, exported counters and
//! immediates, combined with unsigned comparisons and boolean operators.
//!
//! The kernel [`verify`]s a program once, at install: it must be well
//! formed, at most [`MAX_INSNS`] instructions, type-correct (words vs
//! booleans) with a stack of at most [`MAX_STACK`], end with exactly one
//! boolean, and read only 8-byte-aligned words the caller's own mappings
//! allow. There are no jumps at all, so every program runs in at most one
//! step per instruction. [`Verified::eval`] is allocation-free.
//!
//! # Encoding (little-endian)
//! A program is `b'P'`, version `1`, a `u64` tag, then instructions:
//!
//! | byte | operand        | effect                                  |
//! |------|----------------|-----------------------------------------|
//! | 0x01 | `u64` address  | push the word at that user address      |
//! | 0x02 | `u64` value    | push an immediate word                  |
//! | 0x03 | —              | push the global clock (ns)              |
//! | 0x04 | `u8` index     | push exported counter `index`           |
//! | 0x10..=0x15 | —       | word,word → bool: eq ne lt le gt ge     |
//! | 0x20 / 0x21 | —       | bool,bool → bool: and / or              |
//! | 0x22 | —              | bool → bool: not                        |
//! | 0x30 / 0x31 / 0x32 | — | word,word → word: and, wrapping add, wrapping sub |
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

mod build;
pub use build::{BuildError, Builder, Program};

/// Most instructions in a program.
pub const MAX_INSNS: usize = 64;
/// Deepest evaluation stack.
pub const MAX_STACK: usize = 16;
/// Largest encoded program.
pub const MAX_BYTES: usize = 10 + MAX_INSNS * 9;

const MAGIC: u8 = b'P';
const VERSION: u8 = 1;

/// One decoded instruction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Insn {
    Load(u64),
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
}

/// Unsigned comparisons.
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
    fn apply(self, a: u64, b: u64) -> bool {
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

/// What the kernel allows a program.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Counters `0..counters` may be read.
    pub counters: u32,
    pub max_insns: usize,
}

impl Limits {
    pub const DEFAULT: Limits = Limits {
        counters: 0,
        max_insns: MAX_INSNS,
    };
}

/// Which memory a program may read: the kernel answers from the caller's
/// own page tables.
pub trait AddressCheck {
    fn allowed(&self, addr: u64, len: u64) -> bool;
}

/// What evaluation reads.
pub trait EvalEnv {
    fn read_u64(&self, addr: u64) -> Option<u64>;
    fn clock_ns(&self) -> u64;
    fn counter(&self, index: u32) -> Option<u64>;
}

/// Why a program was rejected; `at` is the instruction index (or the byte
/// offset for header and truncation errors).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VerifyError {
    pub at: usize,
    pub kind: VerifyErrorKind,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VerifyErrorKind {
    BadHeader,
    Truncated,
    UnknownOpcode(u8),
    TooLong,
    StackUnderflow,
    StackOverflow,
    TypeMismatch,
    Misaligned,
    AddressNotAllowed,
    NoSuchCounter,
    /// The program must leave exactly one boolean.
    BadResult,
}

impl VerifyErrorKind {
    /// A stable number for the syscall ABI.
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
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Ty {
    Word,
    Bool,
}

/// A verified program, decoded into a fixed array.
#[derive(Clone, Debug)]
pub struct Verified {
    tag: u64,
    insns: [Insn; MAX_INSNS],
    len: usize,
}

/// An evaluation's result and cost.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Outcome {
    pub value: bool,
    pub steps: usize,
}

/// Evaluation failed: memory the program reads is no longer readable (or a
/// counter vanished).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EvalError {
    ReadFailed(u64),
    CounterMissing(u32),
}

fn decode_one(bytes: &[u8], at: usize) -> Result<(Insn, usize), VerifyErrorKind> {
    let op = bytes[at];
    let word = |n: usize| -> Result<u64, VerifyErrorKind> {
        let b = bytes
            .get(at + 1..at + 1 + n)
            .ok_or(VerifyErrorKind::Truncated)?;
        let mut w = [0u8; 8];
        w[..n].copy_from_slice(b);
        Ok(u64::from_le_bytes(w))
    };
    Ok(match op {
        0x01 => (Insn::Load(word(8)?), 9),
        0x02 => (Insn::Imm(word(8)?), 9),
        0x03 => (Insn::Clock, 1),
        0x04 => (Insn::Counter(word(1)? as u8), 2),
        0x10 => (Insn::Cmp(Cmp::Eq), 1),
        0x11 => (Insn::Cmp(Cmp::Ne), 1),
        0x12 => (Insn::Cmp(Cmp::Lt), 1),
        0x13 => (Insn::Cmp(Cmp::Le), 1),
        0x14 => (Insn::Cmp(Cmp::Gt), 1),
        0x15 => (Insn::Cmp(Cmp::Ge), 1),
        0x20 => (Insn::And, 1),
        0x21 => (Insn::Or, 1),
        0x22 => (Insn::Not, 1),
        0x30 => (Insn::BitAnd, 1),
        0x31 => (Insn::Add, 1),
        0x32 => (Insn::Sub, 1),
        other => return Err(VerifyErrorKind::UnknownOpcode(other)),
    })
}

/// Verifies an encoded program.
pub fn verify(
    bytes: &[u8],
    limits: &Limits,
    memory: &dyn AddressCheck,
) -> Result<Verified, VerifyError> {
    let err = |at, kind| VerifyError { at, kind };
    if bytes.len() < 10 || bytes[0] != MAGIC || bytes[1] != VERSION {
        return Err(err(0, VerifyErrorKind::BadHeader));
    }
    let mut tag = [0u8; 8];
    tag.copy_from_slice(&bytes[2..10]);
    let mut v = Verified {
        tag: u64::from_le_bytes(tag),
        insns: [Insn::Clock; MAX_INSNS],
        len: 0,
    };
    let mut types = [Ty::Word; MAX_STACK];
    let mut depth = 0usize;
    let mut at = 10;
    let max = limits.max_insns.min(MAX_INSNS);
    while at < bytes.len() {
        let index = v.len;
        if index >= max {
            return Err(err(index, VerifyErrorKind::TooLong));
        }
        let (insn, size) = decode_one(bytes, at).map_err(|k| {
            err(
                if k == VerifyErrorKind::Truncated {
                    at
                } else {
                    index
                },
                k,
            )
        })?;
        let (pops, inputs, output): (usize, Ty, Option<Ty>) = match insn {
            Insn::Load(addr) => {
                if addr % 8 != 0 {
                    return Err(err(index, VerifyErrorKind::Misaligned));
                }
                if !memory.allowed(addr, 8) {
                    return Err(err(index, VerifyErrorKind::AddressNotAllowed));
                }
                (0, Ty::Word, Some(Ty::Word))
            }
            Insn::Counter(i) if u32::from(i) >= limits.counters => {
                return Err(err(index, VerifyErrorKind::NoSuchCounter))
            }
            Insn::Imm(_) | Insn::Clock | Insn::Counter(_) => (0, Ty::Word, Some(Ty::Word)),
            Insn::Cmp(_) => (2, Ty::Word, Some(Ty::Bool)),
            Insn::And | Insn::Or => (2, Ty::Bool, Some(Ty::Bool)),
            Insn::Not => (1, Ty::Bool, Some(Ty::Bool)),
            Insn::BitAnd | Insn::Add | Insn::Sub => (2, Ty::Word, Some(Ty::Word)),
        };
        if depth < pops {
            return Err(err(index, VerifyErrorKind::StackUnderflow));
        }
        if types[depth - pops..depth].iter().any(|&t| t != inputs) {
            return Err(err(index, VerifyErrorKind::TypeMismatch));
        }
        depth -= pops;
        if let Some(t) = output {
            if depth == MAX_STACK {
                return Err(err(index, VerifyErrorKind::StackOverflow));
            }
            types[depth] = t;
            depth += 1;
        }
        v.insns[index] = insn;
        v.len += 1;
        at += size;
    }
    if depth != 1 || types[0] != Ty::Bool {
        return Err(err(v.len, VerifyErrorKind::BadResult));
    }
    Ok(v)
}

impl Verified {
    /// The tag delivered with the wakeup.
    pub fn tag(&self) -> u64 {
        self.tag
    }

    /// Instructions (one evaluation step each).
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Evaluates the program. Bounded by `len()` steps; no allocation.
    pub fn eval(&self, env: &dyn EvalEnv) -> Result<Outcome, EvalError> {
        let mut stack = [0u64; MAX_STACK];
        let mut sp = 0usize;
        for insn in &self.insns[..self.len] {
            // Verification guarantees depth and types, so the pops below
            // never underflow and the push never overflows.
            let value = match *insn {
                Insn::Load(addr) => env.read_u64(addr).ok_or(EvalError::ReadFailed(addr))?,
                Insn::Imm(v) => v,
                Insn::Clock => env.clock_ns(),
                Insn::Counter(i) => env
                    .counter(u32::from(i))
                    .ok_or(EvalError::CounterMissing(u32::from(i)))?,
                Insn::Not => {
                    sp -= 1;
                    u64::from(stack[sp] == 0)
                }
                binary => {
                    sp -= 2;
                    let (a, b) = (stack[sp], stack[sp + 1]);
                    match binary {
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
            steps: self.len,
        })
    }
}

#[cfg(test)]
mod tests;
