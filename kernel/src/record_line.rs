//! A record's fields written one by one into a fixed buffer, without
//! `core::fmt`: for records on a path whose length is a measured figure.
//!
//! The `repossession` record is printed between a grace's end and the next
//! environment's entry, so its cost is part of the abort latency. Through
//! `format_args!` its nine fields took ~3,600 instructions (~29 µs of a
//! one-core deterministic abort of 51.2 µs): every argument goes through a
//! dynamic `Display` call and `pad_integral`. Here a number is `itoa`'s
//! digits copied after its key, and the text is the same byte for byte.

use abi::record::{RecordKind, RECORD_PREFIX};
use abi::shared::RepossessionCause;

/// One console line: a header (`@@exo event {`), then a JSON object's
/// fields, comma-separated, then `}` and `\r\n`. A field that does not fit
/// in `N` bytes is left out whole and the object ends with
/// `"truncated":true`, so the line is always a whole, valid record.
pub struct RecordLine<const N: usize> {
    buf: [u8; N],
    len: usize,
    fields: bool,
    truncated: bool,
    finished: bool,
}

/// The end of a line whose fields were all written, and of one that lost
/// some: room for the longer is kept free until [`RecordLine::finish`].
const END: &[u8] = b"}\r\n";
const END_TRUNCATED: &[u8] = b",\"truncated\":true}\r\n";

impl<const N: usize> RecordLine<N> {
    /// A line that starts with `header`'s pieces (constants; the last opens
    /// the object): `@@exo <kind> {` for a console record.
    ///
    /// # Panics
    /// If `N` does not hold the header and the longest end: a line type too
    /// small for any record.
    pub fn new(header: &[&str]) -> Self {
        let mut line = Self {
            buf: [0; N],
            len: 0,
            fields: false,
            truncated: false,
            finished: false,
        };
        for piece in header {
            assert!(line.fits(piece.len()), "a record line of {N} bytes");
            line.put(piece.as_bytes());
        }
        line
    }

    /// Whether `n` more bytes leave room for the longest end.
    #[inline(always)]
    fn fits(&self, n: usize) -> bool {
        self.len + n + END_TRUNCATED.len() <= N
    }

    #[inline(always)]
    fn put(&mut self, bytes: &[u8]) {
        self.buf[self.len..self.len + bytes.len()].copy_from_slice(bytes);
        self.len += bytes.len();
    }

    /// Appends `"key":` then `open`, `value` and `close` as they are, or
    /// nothing if they do not fit or the line is finished. Inlined so that
    /// a constant key is a constant-length copy. Keys and text values are
    /// `'static` (the kernel's own names: text an environment chose would
    /// need escaping, and could end the line); digits and `true`/`false`
    /// need none.
    #[inline(always)]
    fn field(&mut self, key: &'static str, open: &[u8], value: &[u8], close: &[u8]) -> &mut Self {
        debug_assert!(plain(key.as_bytes()) && plain(value));
        let comma = usize::from(self.fields);
        if self.finished
            || !self.fits(comma + key.len() + 3 + open.len() + value.len() + close.len())
        {
            self.truncated = true;
            return self;
        }
        self.put(&b","[..comma]);
        self.put(b"\"");
        self.put(key.as_bytes());
        self.put(b"\":");
        self.put(open);
        self.put(value);
        self.put(close);
        self.fields = true;
        self
    }

    /// `"key":123`.
    #[inline(always)]
    pub fn u64(&mut self, key: &'static str, value: u64) -> &mut Self {
        let mut digits = itoa::Buffer::new();
        self.field(key, b"", digits.format(value).as_bytes(), b"")
    }

    /// `"key":true`.
    #[inline(always)]
    pub fn bool(&mut self, key: &'static str, value: bool) -> &mut Self {
        let text: &[u8] = if value { b"true" } else { b"false" };
        self.field(key, b"", text, b"")
    }

    /// `"key":"value"`; `value` is one of the kernel's names, which need no
    /// escaping (checked in debug builds).
    #[inline(always)]
    pub fn str(&mut self, key: &'static str, value: &'static str) -> &mut Self {
        self.field(key, b"\"", value.as_bytes(), b"\"")
    }

    /// Whether a field was left out for want of room.
    pub fn truncated(&self) -> bool {
        self.truncated
    }

    /// Closes the object and the line (once; no field is added after);
    /// the whole line's bytes.
    pub fn finish(&mut self) -> &[u8] {
        if self.finished {
            return &self.buf[..self.len];
        }
        self.finished = true;
        if self.truncated {
            let end = if self.fields {
                END_TRUNCATED
            } else {
                &END_TRUNCATED[1..]
            };
            self.put(end);
        } else {
            self.put(END);
        }
        &self.buf[..self.len]
    }
}

/// A console line's size for the `repossession` record: its header (13
/// bytes), its fields with every number at its longest (249: a test builds
/// it) and the end `RecordLine` keeps room for (20).
pub const REPOSSESSION_LINE: usize = 288;

/// The `repossession` event record's fields (an abort: the kernel took a
/// core back at a grace's end).
#[derive(Clone, Copy, Debug)]
pub struct RepossessionRecord {
    pub env: u32,
    pub core: usize,
    pub slot: usize,
    pub t_ns: u64,
    pub overrun_ns: u64,
    pub slot_revoked: bool,
    pub cause: RepossessionCause,
    pub kept_disabled: bool,
    pub rip: u64,
}

impl RepossessionRecord {
    /// The record's console line.
    #[inline(always)]
    pub fn line(&self) -> RecordLine<REPOSSESSION_LINE> {
        let mut line = RecordLine::new(&[RECORD_PREFIX, RecordKind::Event.name(), " {"]);
        line.str("event", "repossession")
            .u64("env", u64::from(self.env))
            .u64("core", self.core as u64)
            .u64("slot", self.slot as u64)
            .u64("t_ns", self.t_ns)
            .u64("overrun_ns", self.overrun_ns)
            .bool("slot_revoked", self.slot_revoked)
            .str("cause", self.cause.name())
            .bool("kept_disabled", self.kept_disabled)
            .u64("rip", self.rip);
        line
    }
}

/// Text that goes into a JSON string as it is, and keeps the line one line.
fn plain(b: &[u8]) -> bool {
    b.iter().all(|&c| c >= 0x20 && c != b'"' && c != b'\\')
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn fields_are_comma_separated_json_after_the_header() {
        let mut line = RecordLine::<128>::new(&["@@exo ", "event", " {"]);
        line.str("event", "repossession")
            .u64("core", 0)
            .u64("t_ns", u64::MAX)
            .bool("kept", false)
            .bool("lost", true);
        assert!(!line.truncated());
        assert_eq!(
            String::from_utf8(line.finish().to_vec()).unwrap(),
            "@@exo event {\"event\":\"repossession\",\"core\":0,\"t_ns\":18446744073709551615,\"kept\":false,\"lost\":true}\r\n"
        );
        // Finishing again adds nothing.
        assert!(line.finish().ends_with(b"true}\r\n"));
    }

    #[test]
    fn a_field_that_does_not_fit_is_left_out_whole_and_the_line_says_so() {
        // Room: 1 (header) + 20 (longest end) + 11 for fields.
        let mut line = RecordLine::<32>::new(&["{"]);
        line.u64("a", 1).u64("bb", 123_456).u64("c", 2);
        // `"a":1` (5) fits, `,"bb":123456` (12) does not, `,"c":2` (6) does.
        assert!(line.truncated());
        assert_eq!(
            String::from_utf8(line.finish().to_vec()).unwrap(),
            "{\"a\":1,\"c\":2,\"truncated\":true}\r\n"
        );
        let mut none = RecordLine::<24>::new(&["{"]);
        none.u64("bb", 123_456);
        assert_eq!(none.finish(), b"{\"truncated\":true}\r\n");
        let mut exact = RecordLine::<26>::new(&["{"]);
        exact.u64("a", 1);
        assert!(!exact.truncated());
        assert_eq!(exact.finish(), b"{\"a\":1}\r\n");
    }

    /// Whatever it holds, the repossession record is never truncated.
    #[test]
    fn the_longest_repossession_record_fits() {
        for cause in 0..4 {
            let r = RepossessionRecord {
                env: u32::MAX,
                core: usize::MAX,
                slot: usize::MAX,
                t_ns: u64::MAX,
                overrun_ns: u64::MAX,
                slot_revoked: false,
                cause: RepossessionCause::from_u32(cause).unwrap(),
                kept_disabled: false,
                rip: u64::MAX,
            };
            let mut line = r.line();
            assert!(!line.truncated());
            let bytes = line.finish();
            assert!(bytes.len() + END_TRUNCATED.len() - END.len() <= REPOSSESSION_LINE);
        }
    }

    /// A field added after the line is finished is not written.
    #[test]
    fn a_finished_line_takes_no_more_fields() {
        let mut line = RecordLine::<64>::new(&["{"]);
        line.u64("a", 1);
        let before = line.finish().to_vec();
        line.u64("b", 2);
        assert_eq!(line.finish(), before.as_slice());
    }

    fn cause() -> impl Strategy<Value = RepossessionCause> {
        (0u32..4).prop_map(|v| RepossessionCause::from_u32(v).unwrap())
    }

    proptest! {
        /// The repossession record is the text the kernel printed before
        /// (`record::emit`'s `format_args!`, its `\n` sent as `\r\n`),
        /// and it goes out in the same 16-byte bursts.
        #[test]
        fn the_repossession_record_is_what_format_printed(
            env in any::<u32>(), core in any::<usize>(), slot in any::<usize>(),
            now in any::<u64>(), overrun in any::<u64>(), lost_slot in any::<bool>(),
            cause in cause(), was_disabled in any::<bool>(), rip in any::<u64>()
        ) {
            use core::fmt::Write;
            let r = RepossessionRecord {
                env, core, slot, t_ns: now, overrun_ns: overrun, slot_revoked: lost_slot,
                cause, kept_disabled: was_disabled, rip,
            };
            let payload = format!(
                "\"event\":\"repossession\",\"env\":{},\"core\":{core},\"slot\":{},\"t_ns\":{now},\"overrun_ns\":{overrun},\"slot_revoked\":{lost_slot},\"cause\":\"{cause:?}\",\"kept_disabled\":{was_disabled},\"rip\":{}",
                env, slot, rip
            );
            let mut old = Vec::new();
            {
                let mut b = crate::bursts::Bursts::<16, _>::new(|x: &[u8]| old.push(x.to_vec()));
                // As `record::emit` wrote it.
                b.write_fmt(format_args!(
                    "{RECORD_PREFIX}{} {{{payload}}}\n",
                    RecordKind::Event.name()
                ))
                .unwrap();
                b.flush();
            }
            let mut line = r.line();
            prop_assert!(!line.truncated());
            let new: Vec<Vec<u8>> = line.finish().chunks(16).map(<[u8]>::to_vec).collect();
            prop_assert_eq!(new, old);
        }

        /// The same text `format!` writes, for any values.
        #[test]
        fn it_writes_what_format_writes(
            a in any::<u64>(), b in any::<u32>(), c in any::<bool>(),
            name in proptest::sample::select(vec!["", "Grace", "ResumeRange", "x"]),
            d in any::<u64>()
        ) {
            let mut line = RecordLine::<256>::new(&["@@exo event {"]);
            line.u64("a", a).u64("b", u64::from(b)).bool("c", c).str("name", name).u64("rip", d);
            prop_assert!(!line.truncated());
            let expected = format!(
                "@@exo event {{\"a\":{a},\"b\":{b},\"c\":{c},\"name\":\"{name}\",\"rip\":{d}}}\r\n"
            );
            prop_assert_eq!(line.finish(), expected.as_bytes());
        }

        /// In a line too short for them all, what is written is still one
        /// JSON object, each field with its own value, and a field is
        /// missing only when the object says it was left out.
        #[test]
        fn what_is_written_is_always_a_valid_record(
            values in proptest::collection::vec(any::<u64>(), 0..8)
        ) {
            const KEYS: [&str; 8] = ["k0", "k1", "k2", "k3", "k4", "k5", "k6", "k7"];
            let mut line = RecordLine::<64>::new(&["{"]);
            for (key, v) in KEYS.iter().zip(&values) {
                line.u64(key, *v);
            }
            let bytes = line.finish();
            let closed = bytes.ends_with(b"}\r\n");
            prop_assert!(closed && bytes.len() <= 64);
            let object: serde_json::Map<String, serde_json::Value> =
                serde_json::from_slice(bytes).unwrap();
            let truncated = object.get("truncated").is_some();
            for (i, v) in values.iter().enumerate() {
                match object.get(&format!("k{i}")) {
                    Some(got) => prop_assert_eq!(got.as_u64(), Some(*v)),
                    None => prop_assert!(truncated),
                }
            }
            prop_assert_eq!(truncated, object.len() - usize::from(truncated) < values.len());
        }
    }
}
