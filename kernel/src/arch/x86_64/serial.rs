//! 16550 UART on COM1: the console. Output is polled (the FIFO drains far
//! faster than the log fills it); input is polled from the timer tick into a
//! small ring that the console reads.

use kernel::bursts::Bursts;
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

/// Bytes the transmit FIFO (enabled in `init`) takes once it reports empty.
const FIFO_BYTES: usize = 16;

impl Serial {
    /// Sends up to a FIFO's worth of bytes: one wait for the FIFO to empty,
    /// then one string output. Under a hypervisor every port access is an
    /// exit (tens of microseconds under nested KVM), so a line costs two
    /// exits per 16 bytes instead of two per byte.
    fn put_burst(&mut self, bytes: &[u8]) {
        debug_assert!(bytes.len() <= FIFO_BYTES);
        // SAFETY: polling the line status and writing the data register of
        // COM1, owned by this driver (and held under SERIAL's lock, or by
        // the panic path alone). THRE with FIFOs on means the transmit FIFO
        // is empty, so it takes all `bytes`; `rep outsb` reads exactly
        // `bytes` (RSI/RCX) and the ABI keeps DF clear.
        unsafe {
            while inb(LINE_STATUS) & LSR_THR_EMPTY == 0 {
                core::hint::spin_loop();
            }
            core::arch::asm!(
                "rep outsb",
                in("dx") DATA,
                inout("rsi") bytes.as_ptr() => _,
                inout("rcx") bytes.len() => _,
                options(nostack, readonly, preserves_flags)
            );
        }
    }
}

/// Formats `args` onto `port` in bursts of a FIFO's worth (see
/// `kernel::bursts`), all sent when this returns.
fn write_to(port: &mut Serial, args: core::fmt::Arguments<'_>) {
    use core::fmt::Write;
    let mut bursts = Bursts::<FIFO_BYTES, _>::new(|burst: &[u8]| port.put_burst(burst));
    let _ = bursts.write_fmt(args);
    bursts.flush();
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
    write_to(&mut SERIAL.lock(), args);
}

/// Writes a whole line, already in the console's form (`\r\n`), without
/// `core::fmt` or a search for newlines: a FIFO's worth at a time.
pub fn print_bytes(line: &[u8]) {
    let mut port = SERIAL.lock();
    for burst in line.chunks(FIFO_BYTES) {
        port.put_burst(burst);
    }
}

/// Writes to the console without waiting for the lock: used by the panic
/// path, where the panicking core (or a stopped one) may hold it forever.
pub fn print_unlocked(args: core::fmt::Arguments<'_>) {
    write_to(&mut Serial(()), args);
}

/// `print!` to the serial console.
#[macro_export]
macro_rules! print {
    ($($arg:tt)*) => { $crate::arch::serial::print(format_args!($($arg)*)) };
}

/// `println!` to the serial console.
#[macro_export]
macro_rules! println {
    () => { $crate::print!("\n") };
    ($($arg:tt)*) => { $crate::arch::serial::print(format_args!("{}\n", format_args!($($arg)*))) };
}
