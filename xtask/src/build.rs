//! Building the kernel image and the boot-module archive of programs.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::Error;

/// The workspace root (this crate's parent directory).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_path_buf()
}

/// A `cargo` command in the workspace, with the variables an outer
/// `cargo run`/`cargo test` sets removed so they do not leak into the inner
/// build (they would point it at the wrong target or profile).
pub(crate) fn inner_cargo(args: &[&str]) -> Command {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    for (key, _) in std::env::vars() {
        if (key.starts_with("CARGO_") && key != "CARGO_HOME")
            || key == "RUSTFLAGS"
            || key == "RUSTC_WRAPPER"
            || key == "RUSTC"
        {
            cmd.env_remove(key);
        }
    }
    cmd.current_dir(workspace_root()).args(args);
    cmd
}

/// `cargo build --release -p <package>` for the bare-metal target.
fn build_for_target(package: &'static str) -> Result<(), Error> {
    let status = inner_cargo(&[
        "build",
        "--quiet",
        "-p",
        package,
        "--release",
        "--target",
        "x86_64-unknown-none",
    ])
    .status()
    .map_err(|e| Error::Build {
        package,
        detail: format!("cannot run cargo: {e}"),
    })?;
    if status.success() {
        Ok(())
    } else {
        Err(Error::Build {
            package,
            detail: status.to_string(),
        })
    }
}

/// Builds the kernel; returns the ELF's path.
pub fn kernel() -> Result<PathBuf, Error> {
    build_for_target("kernel")?;
    Ok(workspace_root().join("target/x86_64-unknown-none/release/kernel"))
}

/// Builds the ring-3 programs (the `workloads` crate's binaries) and packs
/// them into a boot-module archive; returns its path, or `None` when the
/// workspace has no programs.
pub fn programs() -> Result<Option<BootModules>, Error> {
    programs_with(&[])
}

/// A boot-module archive on disk. One written for a single run (it holds
/// that run's scenario plan) is removed when this is dropped: every
/// scenario run writes one, and the test suites run hundreds.
#[derive(Debug)]
pub struct BootModules {
    path: PathBuf,
    per_run: bool,
}

impl BootModules {
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for BootModules {
    fn drop(&mut self) {
        if self.per_run {
            // Already gone is fine; a file left behind only costs disk.
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Like [`programs`], with `extra` entries (a scenario's launch plan)
/// packed after the programs.
pub fn programs_with(extra: &[(&str, &[u8])]) -> Result<Option<BootModules>, Error> {
    let root = workspace_root();
    let bins_dir = root.join("workloads/src/bin");
    if !bins_dir.is_dir() {
        return Ok(None);
    }
    build_for_target("workloads")?;
    let mut names: Vec<String> = std::fs::read_dir(&bins_dir)
        .map_err(Error::io(&bins_dir))?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            e.path()
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
        })
        .collect();
    names.sort();
    let mut entries = Vec::new();
    for name in names {
        let path = root.join("target/x86_64-unknown-none/release").join(&name);
        let bytes = std::fs::read(&path).map_err(Error::io(&path))?;
        entries.push((name, bytes));
    }
    entries.extend(extra.iter().map(|(n, b)| (n.to_string(), b.to_vec())));
    write_archive(&root.join("target"), &entries, !extra.is_empty()).map(Some)
}

/// Packs `entries` into `dir`: as `boot-modules.bin`, or, `per_run`, under
/// a name of its own that is removed when the result is dropped.
fn write_archive(
    dir: &Path,
    entries: &[(String, Vec<u8>)],
    per_run: bool,
) -> Result<BootModules, Error> {
    let archive = pack(entries)?;
    // Written aside and renamed into place: runs in parallel (the test
    // suites) must never see a half-written archive. Archives with extra
    // entries differ per run, so each gets its own name.
    static WRITES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = WRITES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let pid = std::process::id();
    let out = if per_run {
        dir.join(format!("boot-modules-{pid}-{n}.bin"))
    } else {
        dir.join("boot-modules.bin")
    };
    let tmp = dir.join(format!("boot-modules.bin.{pid}.{n}"));
    std::fs::write(&tmp, archive).map_err(Error::io(&tmp))?;
    std::fs::rename(&tmp, &out).map_err(Error::io(&out))?;
    Ok(BootModules { path: out, per_run })
}

/// Packs `(name, bytes)` entries into a boot-module archive
/// (`abi::boot_archive`, whose reader the kernel uses).
pub fn pack(entries: &[(String, Vec<u8>)]) -> Result<Vec<u8>, Error> {
    use abi::boot_archive::{pack_into, packed_len, PackError};
    let entries: Vec<(&str, &[u8])> = entries
        .iter()
        .map(|(n, d)| (n.as_str(), d.as_slice()))
        .collect();
    let mut out = vec![0; packed_len(&entries)];
    match pack_into(&entries, &mut out) {
        Ok(_) => Ok(out),
        Err(PackError::BadName { index }) => Err(Error::ProgramName(entries[index].0.into())),
        Err(PackError::TooSmall) => unreachable!("sized by packed_len"),
    }
}

/// `git rev-parse HEAD`, with `-dirty` when the working tree (outside
/// `results/`) differs from
/// it (changed or untracked files that are not ignored).
pub fn commit() -> String {
    let git = |args: &[&str]| {
        Command::new("git")
            .args(args)
            .current_dir(workspace_root())
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    let rev = git(&["rev-parse", "HEAD"]).unwrap_or_else(|| "unknown".into());
    // Results (figures, README tables) are outputs of runs, not inputs:
    // regenerating them does not make the code that ran "dirty".
    match git(&["status", "--porcelain", "--", ".", ":(exclude)results"]) {
        Some(changes) if !changes.is_empty() => format!("{rev}-dirty"),
        _ => rev,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_per_run_archive_is_removed_when_dropped_and_the_shared_one_kept() {
        let dir = std::env::temp_dir().join(format!("exo-archive-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let entries = [("scenario".to_string(), b"plan".to_vec())];
        let per_run = write_archive(&dir, &entries, true).unwrap();
        let shared = write_archive(&dir, &entries, false).unwrap();
        let (per_run_path, shared_path) = (per_run.path().to_owned(), shared.path().to_owned());
        assert!(per_run_path.is_file() && shared_path.is_file());
        assert_ne!(per_run_path, shared_path);
        drop(per_run);
        drop(shared);
        assert!(!per_run_path.exists(), "a run's own archive is left behind");
        assert!(shared_path.is_file());
        // Nothing else (the written-aside temporaries) is left either.
        let left: Vec<_> = std::fs::read_dir(&dir).unwrap().collect();
        assert_eq!(left.len(), 1);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn packed_programs_read_back_as_the_kernel_reads_them() {
        let a = pack(&[("spin".into(), b"abc".to_vec()), ("hog".into(), vec![])]).unwrap();
        let ar = abi::boot_archive::Archive::parse(&a).unwrap();
        assert_eq!(ar.find("spin"), Some((0, &b"abc"[..])));
        assert_eq!(ar.find("hog"), Some((1, &b""[..])));
        assert!(matches!(
            pack(&[("x".repeat(60), vec![])]),
            Err(Error::ProgramName(n)) if n.len() == 60
        ));
    }
}
