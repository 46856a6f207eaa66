//! Formatting into a stack buffer: `log!` and `report!` without allocating.

use core::fmt::{self, Write};

/// A fixed buffer that drops what does not fit.
pub struct Buf {
    bytes: [u8; 480],
    len: usize,
}

impl Buf {
    pub const fn new() -> Self {
        Buf {
            bytes: [0; 480],
            len: 0,
        }
    }

    pub fn as_str(&self) -> &str {
        core::str::from_utf8(&self.bytes[..self.len]).unwrap_or("")
    }
}

impl Default for Buf {
    fn default() -> Self {
        Self::new()
    }
}

impl Write for Buf {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let n = s.len().min(self.bytes.len() - self.len);
        self.bytes[self.len..self.len + n].copy_from_slice(&s.as_bytes()[..n]);
        self.len += n;
        Ok(())
    }
}

/// Formats `args` into a buffer.
pub fn format(args: fmt::Arguments<'_>) -> Buf {
    let mut b = Buf::new();
    let _ = b.write_fmt(args);
    b
}

/// Prints a line on the console, prefixed by the kernel with our env id.
#[macro_export]
macro_rules! log {
    ($($arg:tt)*) => { let _ = $crate::sys::log($crate::fmt::format(format_args!($($arg)*)).as_str()); };
}

/// Emits a `user` record: `report!("\"kind\":\"spin\",\"n\":{}", n)`.
#[macro_export]
macro_rules! report {
    ($($arg:tt)*) => { let _ = $crate::sys::report($crate::fmt::format(format_args!($($arg)*)).as_str()); };
}
