//! Console text cut into bursts of at most a FIFO's worth, `"\n"` sent as
//! `"\r\n"`: the logic of the serial console's output, apart from its port.
//!
//! Every record an application reports goes through here (a 1,000-thread
//! sampler sends ~90 KB a sample), so the text moves in slices, not a byte
//! at a time: a search for `'\n'` (word-at-a-time in `core`), whole bursts
//! straight from the caller's text, and only a partial burst between two
//! pieces of a formatted line copied into the buffer. Short pieces go byte
//! by byte.

use core::fmt;

/// Gathers text for `sink` in bursts of 1 to `N` bytes; all but the last
/// burst of a flush are full.
pub struct Bursts<const N: usize, S: FnMut(&[u8])> {
    sink: S,
    buf: [u8; N],
    len: usize,
}

impl<const N: usize, S: FnMut(&[u8])> Bursts<N, S> {
    pub fn new(sink: S) -> Self {
        Self {
            sink,
            buf: [0; N],
            len: 0,
        }
    }

    /// Sends the partial burst gathered so far, if any.
    pub fn flush(&mut self) {
        if self.len > 0 {
            (self.sink)(&self.buf[..self.len]);
            self.len = 0;
        }
    }

    fn push(&mut self, byte: u8) {
        if self.len == N {
            self.flush();
        }
        self.buf[self.len] = byte;
        self.len += 1;
    }

    fn put(&mut self, mut bytes: &[u8]) {
        if self.len > 0 {
            let n = bytes.len().min(N - self.len);
            self.buf[self.len..self.len + n].copy_from_slice(&bytes[..n]);
            self.len += n;
            bytes = &bytes[n..];
            if self.len < N {
                return;
            }
            self.flush();
        }
        let mut whole = bytes.chunks_exact(N);
        for burst in &mut whole {
            (self.sink)(burst);
        }
        let tail = whole.remainder();
        self.buf[..tail.len()].copy_from_slice(tail);
        self.len = tail.len();
    }
}

impl<const N: usize, S: FnMut(&[u8])> fmt::Write for Bursts<N, S> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        // Most pieces of a formatted record are a few bytes (a field name,
        // a number): byte by byte is cheapest there (the slice path's setup
        // made the kernel's own records ~1,200 instructions longer).
        if s.len() < N {
            for &b in s.as_bytes() {
                if b == b'\n' {
                    self.push(b'\r');
                }
                self.push(b);
            }
            return Ok(());
        }
        for (i, line) in s.split('\n').enumerate() {
            if i > 0 {
                self.put(b"\r\n");
            }
            self.put(line.as_bytes());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::fmt::Write;
    use proptest::prelude::*;

    /// Writes `pieces` through 16-byte bursts; returns the bursts.
    fn send(pieces: &[String]) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        {
            let mut b = Bursts::<16, _>::new(|burst: &[u8]| out.push(burst.to_vec()));
            for p in pieces {
                b.write_str(p).unwrap();
            }
            b.flush();
        }
        out
    }

    #[test]
    fn newlines_become_crlf_and_bursts_fill() {
        let out = send(&["@@exo user {\"n\":1}\n".into(), "x\n\n".into()]);
        assert_eq!(out.concat(), b"@@exo user {\"n\":1}\r\nx\r\n\r\n");
        assert_eq!(out.iter().map(Vec::len).collect::<Vec<_>>(), [16, 9]);
    }

    #[test]
    fn nothing_written_sends_nothing() {
        assert!(send(&[]).is_empty());
        assert!(send(&[String::new(), String::new()]).is_empty());
    }

    proptest! {
        #[test]
        fn the_text_arrives_whole_in_full_bursts(
            pieces in proptest::collection::vec("[a-c\n\r]{0,40}", 0..12)
        ) {
            let out = send(&pieces);
            let expected = pieces.concat().replace('\n', "\r\n");
            prop_assert_eq!(out.concat(), expected.as_bytes());
            prop_assert!(out.iter().all(|b| !b.is_empty() && b.len() <= 16));
            // One flush at the end: only the last burst may be short.
            prop_assert_eq!(out.len(), expected.len().div_ceil(16));
        }
    }
}
