//! The kernel side: decoding and verifying a program in one forward pass.

use crate::{
    op, AddressCheck, Cmp, Insn, Limits, Verified, VerifyError, VerifyErrorKind, HEADER_LEN, MAGIC,
    MAX_BYTES, MAX_INSNS, MAX_STACK, VERSION,
};

/// The abstract stack: its depth and, bit `i` set, slot `i` holds a boolean
/// (clear: a word). Two paths meet only if these are equal.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Shape {
    depth: usize,
    bools: u32,
}

impl Shape {
    fn top_is_bool(self, n: usize) -> bool {
        // The top `n` entries (depth ≥ n checked by the caller).
        let mask = ((1u32 << n) - 1) << (self.depth - n);
        self.bools & mask == mask
    }

    fn top_is_word(self, n: usize) -> bool {
        let mask = ((1u32 << n) - 1) << (self.depth - n);
        self.bools & mask == 0
    }
}

/// A skip not yet resolved: the instruction that skips, where it lands
/// (byte offset) and the stack it brings there.
#[derive(Clone, Copy)]
struct Pending {
    from: usize,
    from_offset: usize,
    target: usize,
    shape: Shape,
}

/// An instruction's operand types and result.
enum Effect {
    /// Pops `n` values of one type (`bool` true: booleans), pushes one.
    Op {
        pops: usize,
        bools_in: bool,
        bool_out: bool,
    },
    /// A conditional skip.
    Skip,
}

fn decode_one(bytes: &[u8], at: usize) -> Result<(Insn, usize, i16), VerifyErrorKind> {
    let operand = |n: usize| -> Result<u64, VerifyErrorKind> {
        let b = bytes
            .get(at + 1..at + 1 + n)
            .ok_or(VerifyErrorKind::Truncated)?;
        let mut w = [0u8; 8];
        w[..n].copy_from_slice(b);
        Ok(u64::from_le_bytes(w))
    };
    let simple = |i| Ok((i, 1, 0));
    match bytes[at] {
        op::LOAD64 => Ok((Insn::Load(operand(8)?), 9, 0)),
        op::IMM => Ok((Insn::Imm(operand(8)?), 9, 0)),
        op::CLOCK => simple(Insn::Clock),
        op::COUNTER => Ok((Insn::Counter(operand(1)? as u8), 2, 0)),
        op::LOAD32 => Ok((Insn::Load32(operand(8)?), 9, 0)),
        op::EQ => simple(Insn::Cmp(Cmp::Eq)),
        op::NE => simple(Insn::Cmp(Cmp::Ne)),
        op::LT => simple(Insn::Cmp(Cmp::Lt)),
        op::LE => simple(Insn::Cmp(Cmp::Le)),
        op::GT => simple(Insn::Cmp(Cmp::Gt)),
        op::GE => simple(Insn::Cmp(Cmp::Ge)),
        op::AND => simple(Insn::And),
        op::OR => simple(Insn::Or),
        op::NOT => simple(Insn::Not),
        op::BITAND => simple(Insn::BitAnd),
        op::ADD => simple(Insn::Add),
        op::SUB => simple(Insn::Sub),
        op::AND_THEN => Ok((Insn::AndThen(0), 3, operand(2)? as u16 as i16)),
        op::OR_ELSE => Ok((Insn::OrElse(0), 3, operand(2)? as u16 as i16)),
        other => Err(VerifyErrorKind::UnknownOpcode(other)),
    }
}

/// Verifies an encoded program against the caller's limits and memory.
///
/// One forward pass: decodes each instruction, checks its operands, and
/// tracks the stack's shape; every skip must land forward on an
/// instruction boundary (or the end) where the shape equals that of the
/// path that did not skip. Work is linear in the program's length (times
/// the number of open skips, at most [`MAX_INSNS`]); it never panics.
pub fn verify(
    bytes: &[u8],
    limits: &Limits,
    memory: &dyn AddressCheck,
) -> Result<Verified, VerifyError> {
    let fail = |at, offset, kind| Err(VerifyError { at, offset, kind });
    if bytes.len() < HEADER_LEN || bytes[0] != MAGIC || bytes[1] != VERSION {
        return fail(0, 0, VerifyErrorKind::BadHeader);
    }
    if bytes.len() > MAX_BYTES {
        return fail(0, MAX_BYTES, VerifyErrorKind::TooLong);
    }
    let mut tag = [0u8; 8];
    tag.copy_from_slice(&bytes[2..HEADER_LEN]);
    let max_insns = limits.max_insns.min(MAX_INSNS);
    let max_stack = limits.max_stack.min(MAX_STACK);
    let mut v = Verified {
        tag: u64::from_le_bytes(tag),
        insns: [Insn::Clock; MAX_INSNS],
        len: 0,
        max_depth: 0,
    };
    let mut shape = Shape { depth: 0, bools: 0 };
    let mut pending = [Pending {
        from: 0,
        from_offset: 0,
        target: 0,
        shape,
    }; MAX_INSNS];
    let mut open = 0usize;
    let mut at = HEADER_LEN;
    loop {
        let index = v.len;
        // Resolve skips landing here; one landing before here fell inside
        // an instruction.
        let mut i = 0;
        while i < open {
            let p = pending[i];
            if p.target > at {
                i += 1;
                continue;
            }
            if p.target < at {
                return fail(p.from, p.from_offset, VerifyErrorKind::JumpIntoInstruction);
            }
            if p.shape != shape {
                return fail(p.from, p.from_offset, VerifyErrorKind::PathMismatch);
            }
            // `index` ≤ MAX_INSNS = 64 fits a u8.
            v.insns[p.from] = match v.insns[p.from] {
                Insn::AndThen(_) => Insn::AndThen(index as u8),
                _ => Insn::OrElse(index as u8),
            };
            open -= 1;
            pending[i] = pending[open];
        }
        if at == bytes.len() {
            break;
        }
        if index >= max_insns {
            return fail(index, at, VerifyErrorKind::TooLong);
        }
        let err = |kind| fail(index, at, kind);
        let (insn, size, skip) = match decode_one(bytes, at) {
            Ok(d) => d,
            Err(kind) => return err(kind),
        };
        let effect = match insn {
            Insn::Load(addr) => {
                if addr % 8 != 0 {
                    return err(VerifyErrorKind::Misaligned);
                }
                if !memory.allowed(addr, 8) {
                    return err(VerifyErrorKind::AddressNotAllowed);
                }
                Effect::Op {
                    pops: 0,
                    bools_in: false,
                    bool_out: false,
                }
            }
            Insn::Load32(addr) => {
                if addr % 4 != 0 {
                    return err(VerifyErrorKind::Misaligned);
                }
                // Evaluation reads the aligned word holding the u32.
                if !memory.allowed(addr & !7, 8) {
                    return err(VerifyErrorKind::AddressNotAllowed);
                }
                Effect::Op {
                    pops: 0,
                    bools_in: false,
                    bool_out: false,
                }
            }
            Insn::Counter(i) if u32::from(i) >= limits.counters => {
                return err(VerifyErrorKind::NoSuchCounter)
            }
            Insn::Imm(_) | Insn::Clock | Insn::Counter(_) => Effect::Op {
                pops: 0,
                bools_in: false,
                bool_out: false,
            },
            Insn::Cmp(_) => Effect::Op {
                pops: 2,
                bools_in: false,
                bool_out: true,
            },
            Insn::And | Insn::Or => Effect::Op {
                pops: 2,
                bools_in: true,
                bool_out: true,
            },
            Insn::Not => Effect::Op {
                pops: 1,
                bools_in: true,
                bool_out: true,
            },
            Insn::BitAnd | Insn::Add | Insn::Sub => Effect::Op {
                pops: 2,
                bools_in: false,
                bool_out: false,
            },
            Insn::AndThen(_) | Insn::OrElse(_) => Effect::Skip,
        };
        match effect {
            Effect::Op {
                pops,
                bools_in,
                bool_out,
            } => {
                if shape.depth < pops {
                    return err(VerifyErrorKind::StackUnderflow);
                }
                let typed = if bools_in {
                    shape.top_is_bool(pops)
                } else {
                    shape.top_is_word(pops)
                };
                if !typed {
                    return err(VerifyErrorKind::TypeMismatch);
                }
                shape.depth -= pops;
                shape.bools &= (1u32 << shape.depth) - 1;
                if shape.depth >= max_stack {
                    return err(VerifyErrorKind::StackOverflow);
                }
                shape.bools |= u32::from(bool_out) << shape.depth;
                shape.depth += 1;
            }
            Effect::Skip => {
                if shape.depth < 1 {
                    return err(VerifyErrorKind::StackUnderflow);
                }
                if !shape.top_is_bool(1) {
                    return err(VerifyErrorKind::TypeMismatch);
                }
                if skip < 0 {
                    return err(VerifyErrorKind::BackwardJump);
                }
                let target = at + size + skip as usize;
                if target > bytes.len() {
                    return err(VerifyErrorKind::JumpOutOfRange);
                }
                // At most one open skip per instruction so far.
                pending[open] = Pending {
                    from: index,
                    from_offset: at,
                    target,
                    shape,
                };
                open += 1;
                // Falling through pops the tested boolean.
                shape.depth -= 1;
                shape.bools &= (1u32 << shape.depth) - 1;
            }
        }
        v.max_depth = v.max_depth.max(shape.depth);
        v.insns[index] = insn;
        v.len += 1;
        at += size;
    }
    if shape.depth != 1 || shape.bools != 1 {
        return fail(v.len, at, VerifyErrorKind::BadResult);
    }
    Ok(v)
}
