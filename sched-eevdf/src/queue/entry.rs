//! The queue's entries, in two widths (see the parent module's docs).

use sched_api::heap::{Key, Keyed};

use sched_api::lazy::Ticket;
use sched_api::table::Slot;
use sched_api::ThreadId;

/// What the heaps need of an entry, of either width: its order
/// ([`Keyed`]: by `(key, id)`, `key` being `ve` in `waiting`, `vd` in
/// `deadlines`; ids of live entries are unique, so they never tie) and
/// liveness ([`Ticket`]).
pub(crate) trait Times: Keyed + Ticket {
    /// `V` as the entries' keys encode it.
    type Now: Copy;
    /// Whether an entry keyed by its eligible time is eligible at `now`
    /// (its key is at or before `now`).
    fn due(&self, now: Self::Now) -> bool;
    /// The same entry keyed by its deadline (from `waiting` to
    /// `deadlines`).
    fn to_deadline(self) -> Self;
    /// The same entry keyed by its eligible time (from `deadlines` to
    /// `waiting`).
    fn to_waiting(self) -> Self;
    /// Whether an entry keyed by its deadline is eligible at `now`.
    fn eligible_at(&self, now: Self::Now) -> bool;
    fn id(&self) -> ThreadId;
    /// Its `(ve, vd)`, as held in `deadlines` (`by_deadline`) or
    /// `waiting`, times counted from `base`.
    fn decode(&self, by_deadline: bool, base: i128) -> (i128, i128);
}

/// What an entry holds, whatever its width: a runnable thread's times,
/// its id and slot, and the sequence number of its entry.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Item {
    pub ve: i128,
    pub vd: i128,
    pub id: ThreadId,
    pub slot: Slot,
    pub seq: u64,
}

/// An entry with full 128-bit times. The other time is kept in two
/// halves, not as an `i128`, whose 16-byte alignment would pad the entry
/// from 48 bytes to 64.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Wide {
    key: Key,
    /// The other time: `vd` in `waiting`, `ve` in `deadlines`.
    other: [u64; 2],
    seq: u64,
}

impl Wide {
    #[inline]
    pub(super) fn new(i: Item) -> Wide {
        let vd = i.vd as u128;
        Wide {
            key: Key::new(i.ve, i.id, i.slot),
            other: [(vd >> 64) as u64, vd as u64],
            seq: i.seq,
        }
    }

    #[inline]
    fn other(&self) -> i128 {
        ((u128::from(self.other[0]) << 64) | u128::from(self.other[1])) as i128
    }
}

impl Keyed for Wide {
    #[inline]
    fn before(&self, other: &Wide) -> bool {
        self.key.before(&other.key)
    }
}

impl Ticket for Wide {
    #[inline]
    fn slot(&self) -> Slot {
        self.key.slot
    }
    #[inline]
    fn seq(&self) -> u64 {
        self.seq
    }
}

impl Times for Wide {
    type Now = i128;

    #[inline]
    fn due(&self, now: i128) -> bool {
        self.key.time() <= now
    }

    #[inline]
    fn to_deadline(self) -> Wide {
        Wide::new(Item {
            ve: self.other(),
            vd: self.key.time(),
            id: self.key.id,
            slot: self.key.slot,
            seq: self.seq,
        })
    }

    /// The two times swap places, as they did the other way.
    #[inline]
    fn to_waiting(self) -> Wide {
        self.to_deadline()
    }

    #[inline]
    fn eligible_at(&self, now: i128) -> bool {
        self.other() <= now
    }

    fn id(&self) -> ThreadId {
        self.key.id
    }

    fn decode(&self, by_deadline: bool, _: i128) -> (i128, i128) {
        let (key, other) = (self.key.time(), self.other());
        if by_deadline {
            (other, key)
        } else {
            (key, other)
        }
    }
}

/// An entry with 64-bit times: `key` is the time's offset from the
/// queue's base, sign bit flipped (an offset of `i64::MIN` is not used, so
/// that a `V` clamped to it is before every key), and `span` is `vd - ve`,
/// which turns one key into the other.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Narrow {
    key: u64,
    id: ThreadId,
    slot: Slot,
    span: u64,
    seq: u64,
}

const FLIP: u64 = 1 << 63;

/// `t - base` encoded as a key, if it fits (a handful of instructions:
/// no 128-bit clamps or conversions).
#[inline]
pub(super) fn offset(t: i128, base: i128) -> Option<u64> {
    let (d, overflow) = t.overflowing_sub(base);
    let key = d as i64 as u64 ^ FLIP;
    (!overflow && i128::from(d as i64) == d && key != 0).then_some(key)
}

/// `now - base` encoded as a key, clamped: as `due` sees it, a `V` past
/// every key that fits, or before every one, is the same as the nearest
/// end.
#[inline]
pub(super) fn narrow_now(now: i128, base: i128) -> u64 {
    match offset(now, base) {
        Some(key) => key,
        None => far(now, base),
    }
}

/// [`narrow_now`] beyond the keys' range (after an import, say).
#[cold]
#[inline(never)]
fn far(now: i128, base: i128) -> u64 {
    if now > base {
        u64::MAX
    } else {
        0
    }
}

impl Narrow {
    /// The entry, if `vd` is not before `ve` and both fit 64-bit offsets
    /// from `base`.
    #[inline]
    pub(super) fn new(i: Item, base: i128) -> Option<Narrow> {
        let Item {
            ve,
            vd,
            id,
            slot,
            seq,
        } = i;
        if vd < ve {
            return None;
        }
        // Exact: `vd >= ve`.
        let span = u64::try_from((vd as u128).wrapping_sub(ve as u128)).ok()?;
        let key = offset(ve, base)?;
        // `vd`'s key.
        key.checked_add(span)?;
        Some(Narrow {
            key,
            id,
            slot,
            span,
            seq,
        })
    }
}

impl Keyed for Narrow {
    #[inline]
    fn before(&self, other: &Narrow) -> bool {
        let key = |e: &Narrow| (u128::from(e.key) << 64) | u128::from(e.id);
        key(self) < key(other)
    }
}

impl Ticket for Narrow {
    #[inline]
    fn slot(&self) -> Slot {
        self.slot
    }
    #[inline]
    fn seq(&self) -> u64 {
        self.seq
    }
}

impl Times for Narrow {
    type Now = u64;

    #[inline]
    fn due(&self, now: u64) -> bool {
        self.key <= now
    }

    /// `ve + span`: `vd`'s key (it fits: `new` checked).
    #[inline]
    fn to_deadline(self) -> Narrow {
        Narrow {
            key: self.key.wrapping_add(self.span),
            ..self
        }
    }

    /// `vd - span`: `ve`'s key.
    #[inline]
    fn to_waiting(self) -> Narrow {
        Narrow {
            key: self.key.wrapping_sub(self.span),
            ..self
        }
    }

    #[inline]
    fn eligible_at(&self, now: u64) -> bool {
        self.key.wrapping_sub(self.span) <= now
    }

    fn id(&self) -> ThreadId {
        self.id
    }

    fn decode(&self, by_deadline: bool, base: i128) -> (i128, i128) {
        let key = base + i128::from((self.key ^ FLIP) as i64);
        let span = i128::from(self.span);
        if by_deadline {
            (key - span, key)
        } else {
            (key, key + span)
        }
    }
}
