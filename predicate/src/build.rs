//! The libOS side: building predicates without allocation.

use crate::{
    op, verify, AddressCheck, Limits, VerifyError, HEADER_LEN, MAGIC, MAX_BYTES, MAX_INSNS,
    MAX_STACK, VERSION,
};

/// An encoded predicate, ready for the kernel's install call. Only
/// [`Builder::finish`] makes one, so it is always well formed (whether the
/// kernel accepts its addresses and counters is the kernel's call).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Program {
    bytes: [u8; MAX_BYTES],
    len: usize,
    insns: usize,
}

impl Program {
    /// The encoding.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }

    /// The tag delivered with the wakeup.
    pub fn tag(&self) -> u64 {
        let mut t = [0u8; 8];
        t.copy_from_slice(&self.bytes[2..HEADER_LEN]);
        u64::from_le_bytes(t)
    }

    /// Instructions in the program.
    pub fn insn_count(&self) -> usize {
        self.insns
    }
}

/// Why a program could not be built.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BuildError {
    /// More than [`MAX_INSNS`] instructions or [`MAX_BYTES`] bytes.
    TooLong,
    /// [`Builder::any_of`] or [`Builder::all_of`] of no conditions.
    Empty,
    /// The program is malformed (stack, types, skips, result); the error
    /// is the verifier's, with any address and counter allowed.
    Invalid(VerifyError),
}

/// One condition for [`Builder::any_of`] / [`Builder::all_of`] (or
/// [`Builder::cond`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cond {
    /// `clock >= deadline_ns`.
    ClockAtLeast(u64),
    /// `*addr != old`: the word changed.
    WordChanged { addr: u64, old: u64 },
    /// `*addr == value`.
    WordEquals { addr: u64, value: u64 },
    /// `(*addr & mask) != 0`: some bit of the mask is set.
    MaskAny { addr: u64, mask: u64 },
    /// `counter[index] >= value`.
    CounterAtLeast { index: u8, value: u64 },
}

/// A postfix builder: push operands, then apply operators. Fluent and
/// allocation-free (a fixed buffer of [`MAX_BYTES`]); running out of room is
/// remembered and reported by [`Builder::finish`].
///
/// ```
/// # use predicate::Builder;
/// // Wake when the word at 0x1000_0000_0000 is no longer 7, or at 5 ms,
/// // whichever comes first.
/// let p = Builder::new(1)
///     .load_u64(0x1000_0000_0000).imm(7).ne()
///     .clock().imm(5_000_000).ge()
///     .or()
///     .finish()
///     .unwrap();
/// assert_eq!(p.insn_count(), 7);
/// // The same with a short-circuit: the clock is not read once the word
/// // has changed.
/// let q = Builder::new(1)
///     .load_u64(0x1000_0000_0000).imm(7).ne()
///     .or_else(|b| b.clock().imm(5_000_000).ge())
///     .finish()
///     .unwrap();
/// assert_eq!(q.insn_count(), 7);
/// ```
#[derive(Clone, Debug)]
pub struct Builder {
    program: Program,
    overflow: bool,
}

/// Accepts every address: the builder checks structure, not permissions.
struct AnyAddress;

impl AddressCheck for AnyAddress {
    fn allowed(&self, _addr: u64, _len: u64) -> bool {
        true
    }
}

impl Builder {
    /// An empty program carrying `tag`.
    pub fn new(tag: u64) -> Self {
        let mut bytes = [0u8; MAX_BYTES];
        bytes[0] = MAGIC;
        bytes[1] = VERSION;
        bytes[2..HEADER_LEN].copy_from_slice(&tag.to_le_bytes());
        Builder {
            program: Program {
                bytes,
                len: HEADER_LEN,
                insns: 0,
            },
            overflow: false,
        }
    }

    fn emit(mut self, opcode: u8, operand: &[u8]) -> Self {
        let p = &mut self.program;
        let end = p.len + 1 + operand.len();
        if self.overflow || end > MAX_BYTES || p.insns >= MAX_INSNS {
            self.overflow = true;
            return self;
        }
        p.bytes[p.len] = opcode;
        p.bytes[p.len + 1..end].copy_from_slice(operand);
        p.len = end;
        p.insns += 1;
        self
    }

    /// Pushes the word at `addr` (8-byte aligned, in the caller's memory).
    pub fn load_u64(self, addr: u64) -> Self {
        self.emit(op::LOAD64, &addr.to_le_bytes())
    }
    /// Pushes the zero-extended `u32` at `addr` (4-byte aligned).
    pub fn load_u32(self, addr: u64) -> Self {
        self.emit(op::LOAD32, &addr.to_le_bytes())
    }
    /// Pushes an immediate.
    pub fn imm(self, value: u64) -> Self {
        self.emit(op::IMM, &value.to_le_bytes())
    }
    /// Pushes the global clock (ns).
    pub fn clock(self) -> Self {
        self.emit(op::CLOCK, &[])
    }
    /// Pushes exported counter `index`.
    pub fn counter(self, index: u8) -> Self {
        self.emit(op::COUNTER, &[index])
    }
    pub fn eq(self) -> Self {
        self.emit(op::EQ, &[])
    }
    pub fn ne(self) -> Self {
        self.emit(op::NE, &[])
    }
    pub fn lt(self) -> Self {
        self.emit(op::LT, &[])
    }
    pub fn le(self) -> Self {
        self.emit(op::LE, &[])
    }
    pub fn gt(self) -> Self {
        self.emit(op::GT, &[])
    }
    pub fn ge(self) -> Self {
        self.emit(op::GE, &[])
    }
    /// Boolean and of the two top values (both evaluated).
    pub fn and(self) -> Self {
        self.emit(op::AND, &[])
    }
    /// Boolean or of the two top values (both evaluated).
    pub fn or(self) -> Self {
        self.emit(op::OR, &[])
    }
    /// Boolean negation. Named like the opcode it emits, not `ops::Not`:
    /// the builder is a postfix program, not an expression value.
    #[allow(clippy::should_implement_trait)]
    pub fn not(self) -> Self {
        self.emit(op::NOT, &[])
    }
    /// Bitwise and of two words (a mask).
    pub fn bit_and(self) -> Self {
        self.emit(op::BITAND, &[])
    }
    /// Wrapping sum of two words.
    pub fn add(self) -> Self {
        self.emit(op::ADD, &[])
    }
    /// Wrapping difference of two words (first minus second).
    pub fn sub(self) -> Self {
        self.emit(op::SUB, &[])
    }

    fn skip(self, opcode: u8, rest: impl FnOnce(Builder) -> Builder) -> Self {
        let at = self.program.len;
        let mut b = rest(self.emit(opcode, &[0, 0]));
        if !b.overflow {
            // Bytes from the end of the skip to the end of `rest`: below
            // MAX_BYTES, so it fits an i16.
            let offset = (b.program.len - (at + 3)) as u16;
            b.program.bytes[at + 1..at + 3].copy_from_slice(&offset.to_le_bytes());
        }
        b
    }

    /// Short-circuit and: `top && rest`, where `rest` pushes one boolean
    /// and is skipped when the top is already false.
    pub fn and_then(self, rest: impl FnOnce(Builder) -> Builder) -> Self {
        self.skip(op::AND_THEN, rest)
    }

    /// Short-circuit or: `top || rest`, where `rest` pushes one boolean and
    /// is skipped when the top is already true.
    pub fn or_else(self, rest: impl FnOnce(Builder) -> Builder) -> Self {
        self.skip(op::OR_ELSE, rest)
    }

    /// Pushes the boolean of one condition.
    pub fn cond(self, c: Cond) -> Self {
        match c {
            Cond::ClockAtLeast(deadline) => self.clock().imm(deadline).ge(),
            Cond::WordChanged { addr, old } => self.load_u64(addr).imm(old).ne(),
            Cond::WordEquals { addr, value } => self.load_u64(addr).imm(value).eq(),
            Cond::MaskAny { addr, mask } => self.load_u64(addr).imm(mask).bit_and().imm(0).ne(),
            Cond::CounterAtLeast { index, value } => self.counter(index).imm(value).ge(),
        }
    }

    /// The program, checked for structure (stack depth and types on every
    /// path, skips, a single boolean result, length).
    pub fn finish(self) -> Result<Program, BuildError> {
        if self.overflow {
            return Err(BuildError::TooLong);
        }
        let limits = Limits {
            counters: 256,
            max_insns: MAX_INSNS,
            max_stack: MAX_STACK,
        };
        verify(self.program.as_bytes(), &limits, &AnyAddress).map_err(BuildError::Invalid)?;
        Ok(self.program)
    }

    /// True once the global clock reaches `deadline_ns`.
    pub fn until_time(tag: u64, deadline_ns: u64) -> Result<Program, BuildError> {
        Builder::new(tag)
            .cond(Cond::ClockAtLeast(deadline_ns))
            .finish()
    }

    /// True once the word at `addr` differs from `old`.
    pub fn until_word_changes(tag: u64, addr: u64, old: u64) -> Result<Program, BuildError> {
        Builder::new(tag)
            .cond(Cond::WordChanged { addr, old })
            .finish()
    }

    /// True once any of `conds` holds; evaluation stops at the first that
    /// does (each later condition sits behind an `or_else`).
    pub fn any_of(tag: u64, conds: &[Cond]) -> Result<Program, BuildError> {
        Self::chain(tag, conds, true)
    }

    /// True once all of `conds` hold; evaluation stops at the first that
    /// does not (each later condition sits behind an `and_then`).
    pub fn all_of(tag: u64, conds: &[Cond]) -> Result<Program, BuildError> {
        Self::chain(tag, conds, false)
    }

    fn chain(tag: u64, conds: &[Cond], any: bool) -> Result<Program, BuildError> {
        let (first, rest) = conds.split_first().ok_or(BuildError::Empty)?;
        let mut b = Builder::new(tag).cond(*first);
        for &c in rest {
            b = if any {
                b.or_else(|b| b.cond(c))
            } else {
                b.and_then(|b| b.cond(c))
            };
        }
        b.finish()
    }
}
