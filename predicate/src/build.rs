//! The libOS side: building predicates without allocation.

use crate::{MAGIC, MAX_BYTES, VERSION};

/// An encoded predicate, ready for `predicate_install`.
#[derive(Clone)]
pub struct Program {
    bytes: [u8; MAX_BYTES],
    len: usize,
}

impl Program {
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

/// The builder ran out of room.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BuildError;

/// A postfix builder: push operands, then apply operators.
///
/// ```
/// # use predicate::Builder;
/// // Wake when the clock passes 5 ms, or the word at 0x1000_0000_0000 changes from 7.
/// let p = Builder::new(1).clock().imm(5_000_000).ge()
///     .load_u64(0x1000_0000_0000).imm(7).ne().or().finish().unwrap();
/// assert!(!p.as_bytes().is_empty());
/// ```
#[derive(Clone)]
pub struct Builder {
    program: Program,
    overflow: bool,
}

impl Builder {
    pub fn new(tag: u64) -> Self {
        let mut bytes = [0u8; MAX_BYTES];
        bytes[0] = MAGIC;
        bytes[1] = VERSION;
        bytes[2..10].copy_from_slice(&tag.to_le_bytes());
        Builder {
            program: Program { bytes, len: 10 },
            overflow: false,
        }
    }

    fn emit(mut self, op: u8, operand: &[u8]) -> Self {
        let p = &mut self.program;
        if p.len + 1 + operand.len() > MAX_BYTES {
            self.overflow = true;
            return self;
        }
        p.bytes[p.len] = op;
        p.bytes[p.len + 1..p.len + 1 + operand.len()].copy_from_slice(operand);
        p.len += 1 + operand.len();
        self
    }

    pub fn load_u64(self, addr: u64) -> Self {
        self.emit(0x01, &addr.to_le_bytes())
    }
    pub fn imm(self, value: u64) -> Self {
        self.emit(0x02, &value.to_le_bytes())
    }
    pub fn clock(self) -> Self {
        self.emit(0x03, &[])
    }
    pub fn counter(self, index: u8) -> Self {
        self.emit(0x04, &[index])
    }
    pub fn eq(self) -> Self {
        self.emit(0x10, &[])
    }
    pub fn ne(self) -> Self {
        self.emit(0x11, &[])
    }
    pub fn lt(self) -> Self {
        self.emit(0x12, &[])
    }
    pub fn le(self) -> Self {
        self.emit(0x13, &[])
    }
    pub fn gt(self) -> Self {
        self.emit(0x14, &[])
    }
    pub fn ge(self) -> Self {
        self.emit(0x15, &[])
    }
    pub fn and(self) -> Self {
        self.emit(0x20, &[])
    }
    pub fn or(self) -> Self {
        self.emit(0x21, &[])
    }
    /// Boolean negation. Named like the opcode it emits, not `ops::Not`:
    /// the builder is a postfix program, not an expression value.
    #[allow(clippy::should_implement_trait)]
    pub fn not(self) -> Self {
        self.emit(0x22, &[])
    }
    pub fn bit_and(self) -> Self {
        self.emit(0x30, &[])
    }
    pub fn add(self) -> Self {
        self.emit(0x31, &[])
    }
    pub fn sub(self) -> Self {
        self.emit(0x32, &[])
    }

    pub fn finish(self) -> Result<Program, BuildError> {
        if self.overflow {
            Err(BuildError)
        } else {
            Ok(self.program)
        }
    }

    /// True once the global clock reaches `deadline_ns`.
    pub fn until_time(tag: u64, deadline_ns: u64) -> Result<Program, BuildError> {
        Builder::new(tag).clock().imm(deadline_ns).ge().finish()
    }

    /// True once the word at `addr` differs from `old`.
    pub fn until_word_changes(tag: u64, addr: u64, old: u64) -> Result<Program, BuildError> {
        Builder::new(tag).load_u64(addr).imm(old).ne().finish()
    }
}
