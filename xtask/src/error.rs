//! Why the runner itself could not do its job (as opposed to how a kernel
//! run ended, which is [`crate::End`]).

use std::fmt;
use std::path::PathBuf;

/// A failure of the runner before, around or after QEMU.
#[derive(Debug)]
pub enum Error {
    /// `cargo build` of a crate for the bare-metal target failed.
    Build {
        package: &'static str,
        /// Why: the exit status, or why cargo could not be started.
        detail: String,
    },
    /// A program name does not fit the boot-module archive's name field.
    ProgramName(String),
    /// QEMU could not be started.
    QemuSpawn(std::io::Error),
    /// The scenario file did not validate (path, line and field in the text).
    Scenario(String),
    /// The console script did not validate, or cannot be used (why, with
    /// the path and line).
    ConsoleScript(String),
    /// Reading or writing a file or directory.
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Error {
        let path = path.into();
        move |source| Error::Io { path, source }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Build { package, detail } => write!(f, "building `{package}` failed: {detail}"),
            Error::ProgramName(name) => write!(
                f,
                "program name `{name}` is longer than the archive's 47 bytes"
            ),
            Error::QemuSpawn(e) => write!(
                f,
                "cannot start qemu-system-x86_64 (is it installed? `./just` installs it): {e}"
            ),
            Error::Io { path, source } => write!(f, "{}: {source}", path.display()),
            Error::Scenario(why) => write!(f, "scenario rejected: {why}"),
            Error::ConsoleScript(why) => write!(f, "console script rejected: {why}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::QemuSpawn(e) | Error::Io { source: e, .. } => Some(e),
            _ => None,
        }
    }
}
