//! 16550 UART on COM1: the console. Output is polled (the FIFO drains far
//! faster than the log fills it); input is polled from the timer tick into a
//! small ring that the console reads.

use spin::Mutex;
use x86::io::{inb, outb};

const COM1: u16 = 0x3f8;
const DATA: u16 = COM1;
const INT_ENABLE: u16 = COM1 + 1;
const FIFO_CTRL: u16 = COM1 + 2;
const LINE_CTRL: u16 = COM1 + 3;
const MODEM_CTRL: u16 = COM1 + 4;
const LINE_STATUS: u16 = COM1 + 5;
const LSR_DATA_READY: u8 = 1;
const LSR_THR_EMPTY: u8 = 1 << 5;

/// The port, behind a lock so lines from different cores do not interleave.
pub struct Serial(());

pub static SERIAL: Mutex<Serial> = Mutex::new(Serial(()));

/// Programs COM1 for 115200 8N1 with FIFOs, interrupts off.
pub fn init() {
    // SAFETY: COM1's I/O ports belong to this driver alone; the sequence is
    // the standard 16550 initialisation.
    unsafe {
        outb(INT_ENABLE, 0x00);
        outb(LINE_CTRL, 0x80); // DLAB on
        outb(DATA, 0x01); // divisor 1 = 115200 baud
        outb(INT_ENABLE, 0x00);
        outb(LINE_CTRL, 0x03); // 8N1, DLAB off
        outb(FIFO_CTRL, 0xc7); // enable + clear FIFOs
        outb(MODEM_CTRL, 0x03); // DTR + RTS
    }
}

impl Serial {
    fn put(&mut self, byte: u8) {
        // SAFETY: polling the line status and writing the data register of
        // COM1, owned by this driver (and held under SERIAL's lock).
        unsafe {
            while inb(LINE_STATUS) & LSR_THR_EMPTY == 0 {
                core::hint::spin_loop();
            }
            outb(DATA, byte);
        }
    }
}

impl core::fmt::Write for Serial {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        for b in s.bytes() {
            if b == b'\n' {
                self.put(b'\r');
            }
            self.put(b);
        }
        Ok(())
    }
}

/// Reads one received byte, if any.
pub fn try_read() -> Option<u8> {
    // SAFETY: reading COM1's status and data registers has no side effect
    // beyond consuming the received byte, which is what we want.
    unsafe { (inb(LINE_STATUS) & LSR_DATA_READY != 0).then(|| inb(DATA)) }
}

/// Received bytes not yet consumed by the console.
static INPUT: Mutex<InputRing> = Mutex::new(InputRing {
    buf: [0; 256],
    head: 0,
    len: 0,
});

struct InputRing {
    buf: [u8; 256],
    head: usize,
    len: usize,
}

/// Moves received bytes from the UART into the input ring (called from the
/// BSP's tick). Bytes beyond the ring's capacity are dropped.
pub fn poll_input() {
    let Some(mut ring) = INPUT.try_lock() else {
        return;
    };
    while let Some(b) = try_read() {
        if ring.len < ring.buf.len() {
            let at = (ring.head + ring.len) % ring.buf.len();
            ring.buf[at] = b;
            ring.len += 1;
        }
    }
}

/// Takes the oldest received byte.
pub fn read_byte() -> Option<u8> {
    let mut ring = INPUT.lock();
    (ring.len > 0).then(|| {
        let b = ring.buf[ring.head];
        ring.head = (ring.head + 1) % ring.buf.len();
        ring.len -= 1;
        b
    })
}

/// Writes formatted text to the console, holding the lock for the whole
/// message so lines stay whole.
pub fn print(args: core::fmt::Arguments<'_>) {
    use core::fmt::Write;
    let mut port = SERIAL.lock();
    let _ = port.write_fmt(args);
}

/// Writes to the console without waiting for the lock: used by the panic
/// path, where the panicking core (or a stopped one) may hold it forever.
pub fn print_unlocked(args: core::fmt::Arguments<'_>) {
    use core::fmt::Write;
    let _ = Serial(()).write_fmt(args);
}

/// `print!` to the serial console.
#[macro_export]
macro_rules! print {
    ($($arg:tt)*) => { $crate::serial::print(format_args!($($arg)*)) };
}

/// `println!` to the serial console.
#[macro_export]
macro_rules! println {
    () => { $crate::print!("\n") };
    ($($arg:tt)*) => { $crate::serial::print(format_args!("{}\n", format_args!($($arg)*))) };
}
