//! Where a run's results go: a dated, never-shared directory.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use crate::Error;

/// `yyyymmdd-hhmmss` in UTC.
pub fn utc_stamp(t: SystemTime) -> String {
    let secs = t
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    format!(
        "{y:04}{m:02}{d:02}-{:02}{:02}{:02}",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// The default run name: `<UTC yyyymmdd-hhmmss>-<sched>-<N>c`.
pub fn run_name(sched: &str, cpus: u32, now: SystemTime) -> String {
    format!("{}-{sched}-{cpus}c", utc_stamp(now))
}

/// Days since 1970-01-01 to a civil date (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// Creates `base/name`, or `base/name-2`, `-3`, ... if taken. Creation is
/// the test, so two runners starting at once never share a directory.
pub fn create_unique_dir(base: &Path, name: &str) -> Result<PathBuf, Error> {
    std::fs::create_dir_all(base).map_err(Error::io(base))?;
    for n in 1u32.. {
        let dir = if n == 1 {
            base.join(name)
        } else {
            base.join(format!("{name}-{n}"))
        };
        match std::fs::create_dir(&dir) {
            Ok(()) => return Ok(dir),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(Error::io(dir)(e)),
        }
    }
    unreachable!("more than u32::MAX runs of one name")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn run_names_are_dated() {
        let t = std::time::UNIX_EPOCH + Duration::from_secs(1_795_000_000);
        assert_eq!(run_name("lottery", 8, t), "20261118-110640-lottery-8c");
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        assert_eq!(utc_stamp(std::time::UNIX_EPOCH), "19700101-000000");
    }

    #[test]
    fn run_dirs_never_collide() {
        let base = std::env::temp_dir().join(format!(
            "xtask-unique-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = std::fs::remove_dir_all(&base);
        let a = create_unique_dir(&base, "r").unwrap();
        let b = create_unique_dir(&base, "r").unwrap();
        let c = create_unique_dir(&base, "r").unwrap();
        assert_eq!(a.file_name().unwrap(), "r");
        assert_eq!(b.file_name().unwrap(), "r-2");
        assert_eq!(c.file_name().unwrap(), "r-3");
        std::fs::remove_dir_all(&base).unwrap();
    }
}
