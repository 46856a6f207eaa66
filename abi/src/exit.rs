//! How a kernel run ends, as seen by the host.
//!
//! The kernel writes one of these to QEMU's `isa-debug-exit` device (I/O port
//! [`DEBUG_EXIT_PORT`]); QEMU then exits with status `(code << 1) | 1`. The
//! values start at 0x10 so that every status they produce (33 and up) differs
//! from QEMU's own 0 (clean shutdown) and 1 (error), and from a signal death.

/// I/O port of QEMU's `isa-debug-exit` device, as the runner configures it.
pub const DEBUG_EXIT_PORT: u16 = 0xf4;

/// Why the kernel stopped the machine.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum ExitCode {
    /// The run (or the selected test) finished and everything it checked held.
    Success = 0x10,
    /// A kernel-side test ran to completion and found a failed assertion.
    TestFailed = 0x11,
    /// A panic on some core; the console carries the core, message and location.
    Panic = 0x12,
    /// A CPU exception the kernel cannot attribute to an environment.
    KernelFault = 0x13,
    /// The kernel command line or a boot module was malformed.
    BadBootInput = 0x14,
    /// Not every core the firmware described came online in time.
    ApBringupFailed = 0x15,
    /// An operator asked the kernel to stop (console `quit`).
    UserQuit = 0x16,
}

impl ExitCode {
    /// Every code, for tables and exhaustive tests.
    pub const ALL: [ExitCode; 7] = [
        ExitCode::Success,
        ExitCode::TestFailed,
        ExitCode::Panic,
        ExitCode::KernelFault,
        ExitCode::BadBootInput,
        ExitCode::ApBringupFailed,
        ExitCode::UserQuit,
    ];

    /// The exit status QEMU reports after the kernel wrote `self` to the port.
    pub const fn qemu_status(self) -> i32 {
        ((self as i32) << 1) | 1
    }

    /// The code the kernel wrote, recovered from QEMU's exit status, if the
    /// status came from the debug-exit device at all.
    pub fn from_qemu_status(status: i32) -> Option<ExitCode> {
        Self::ALL.into_iter().find(|c| c.qemu_status() == status)
    }

    /// Whether a run that ended this way counts as a success for the runner.
    pub const fn is_success(self) -> bool {
        matches!(self, ExitCode::Success | ExitCode::UserQuit)
    }

    /// A stable lower-case name, as written to `summary.json`.
    pub const fn name(self) -> &'static str {
        match self {
            ExitCode::Success => "success",
            ExitCode::TestFailed => "test_failed",
            ExitCode::Panic => "panic",
            ExitCode::KernelFault => "kernel_fault",
            ExitCode::BadBootInput => "bad_boot_input",
            ExitCode::ApBringupFailed => "ap_bringup_failed",
            ExitCode::UserQuit => "user_quit",
        }
    }

    /// The process exit code the host runner uses for a run that ended this
    /// way: 0 for success, otherwise a distinct small number per reason.
    pub const fn process_code(self) -> i32 {
        if self.is_success() {
            0
        } else {
            self as i32 - 0x10 + 10
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qemu_status_round_trips() {
        for code in ExitCode::ALL {
            assert_eq!(ExitCode::from_qemu_status(code.qemu_status()), Some(code));
        }
    }

    #[test]
    fn qemu_own_statuses_are_not_kernel_codes() {
        for status in [0, 1, 2, 3, 255, -1] {
            assert_eq!(ExitCode::from_qemu_status(status), None);
        }
    }

    #[test]
    fn process_codes_are_distinct_and_zero_only_for_success() {
        let mut seen = std::collections::HashSet::new();
        for code in ExitCode::ALL {
            let p = code.process_code();
            assert_eq!(p == 0, code.is_success());
            if p != 0 {
                assert!(seen.insert(p), "duplicate process code {p}");
            }
        }
    }
}
