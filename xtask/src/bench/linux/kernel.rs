//! The yardstick's kernel: Debian's cloud kernel image, fetched with
//! `apt-get download` (the package registry is the only network used),
//! unpacked with `dpkg-deb -x`, and kept in a per-user cache so that a
//! fresh clone, a CI run or the next `just bench` boots it without
//! fetching again.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Debian's meta-package whose one dependency names the current cloud
/// kernel (`linux-image-<ver>-cloud-amd64`): small, boots straight to
/// `/init` from an initramfs, with virtio and the serial console built in.
pub const META_PACKAGE: &str = "linux-image-cloud-amd64";

/// A kernel image ready to boot.
#[derive(Clone, Debug)]
pub struct Kernel {
    /// The package it came from, e.g. `linux-image-6.1.0-57-cloud-amd64`.
    pub package: String,
    /// The package's version, e.g. `6.1.192-3`.
    pub version: String,
    pub vmlinuz: PathBuf,
}

/// Where unpacked kernels are kept: `$XDG_CACHE_HOME/exo/linux-bench`
/// (`~/.cache/exo/linux-bench`), outside the work tree so that clones and
/// `cargo clean` share one copy.
pub fn cache_dir() -> PathBuf {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(|| crate::build::workspace_root().join("target"));
    base.join("exo/linux-bench")
}

/// The kernel package `apt-cache depends <META_PACKAGE>` names.
pub fn package_from_depends(text: &str) -> Option<String> {
    text.lines()
        .filter_map(|l| l.trim().strip_prefix("Depends:"))
        .map(str::trim)
        .find(|p| p.starts_with("linux-image-") && p.ends_with("-cloud-amd64"))
        .map(str::to_string)
}

/// The `Candidate:` version in `apt-cache policy <package>`'s output.
pub fn candidate_version(text: &str) -> Option<String> {
    text.lines()
        .filter_map(|l| l.trim().strip_prefix("Candidate:"))
        .map(str::trim)
        .find(|v| !v.is_empty() && *v != "(none)")
        .map(str::to_string)
}

fn run(cmd: &mut Command, what: &str) -> Result<String, String> {
    let out = cmd
        .output()
        .map_err(|e| format!("cannot run {what}: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "{what} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// The current cloud kernel, fetched and unpacked into [`cache_dir`]
/// unless already there.
pub fn fetch() -> Result<Kernel, String> {
    let missing = |why: String| {
        format!(
            "the Linux yardstick needs Debian's package `{META_PACKAGE}` (its kernel image): {why}. \
             On Debian run `apt-get update` (the `./just` bootstrap does) and retry"
        )
    };
    let depends = run(
        Command::new("apt-cache").args(["depends", META_PACKAGE]),
        &format!("apt-cache depends {META_PACKAGE}"),
    )
    .map_err(missing)?;
    let package = package_from_depends(&depends)
        .ok_or_else(|| missing("apt-cache names no cloud kernel for it".into()))?;
    let policy = run(
        Command::new("apt-cache").args(["policy", &package]),
        &format!("apt-cache policy {package}"),
    )
    .map_err(missing)?;
    let version = candidate_version(&policy)
        .ok_or_else(|| missing(format!("apt has no candidate version of `{package}`")))?;
    let dir = cache_dir().join(format!("{package}_{version}"));
    let vmlinuz = dir.join("vmlinuz");
    if !vmlinuz.is_file() {
        unpack(&package, &dir)?;
    }
    Ok(Kernel {
        package,
        version,
        vmlinuz,
    })
}

/// `apt-get download` + `dpkg-deb -x` into a scratch directory beside
/// `dir`; only the kernel image is kept (renamed into place last, so an
/// interrupted fetch leaves no half a kernel behind).
fn unpack(package: &str, dir: &Path) -> Result<(), String> {
    let scratch = dir.with_extension(format!("tmp{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&scratch);
    std::fs::create_dir_all(&scratch).map_err(|e| format!("{}: {e}", scratch.display()))?;
    eprintln!(
        "== bench: fetching Debian's {package} (apt-get download) into {}",
        dir.display()
    );
    let result = (|| {
        run(
            Command::new("apt-get")
                .args(["download", "-qq", package])
                .current_dir(&scratch),
            &format!("apt-get download {package}"),
        )?;
        let deb = std::fs::read_dir(&scratch)
            .map_err(|e| e.to_string())?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .find(|p| p.extension().is_some_and(|x| x == "deb"))
            .ok_or_else(|| format!("apt-get download {package} left no .deb"))?;
        let tree = scratch.join("tree");
        run(
            Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&tree),
            &format!("dpkg-deb -x {}", deb.display()),
        )?;
        let boot = tree.join("boot");
        let image = std::fs::read_dir(&boot)
            .map_err(|e| format!("{}: {e}", boot.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .find(|p| {
                p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with("vmlinuz-"))
            })
            .ok_or_else(|| format!("{package} has no boot/vmlinuz-*"))?;
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let tmp = dir.join(format!("vmlinuz.{}", std::process::id()));
        std::fs::copy(&image, &tmp).map_err(|e| format!("{}: {e}", tmp.display()))?;
        std::fs::rename(&tmp, dir.join("vmlinuz")).map_err(|e| e.to_string())
    })();
    let _ = std::fs::remove_dir_all(&scratch);
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_package_and_version_come_from_apt_caches_words() {
        let depends = "linux-image-cloud-amd64\n  Depends: linux-image-6.1.0-57-cloud-amd64\n";
        assert_eq!(
            package_from_depends(depends).as_deref(),
            Some("linux-image-6.1.0-57-cloud-amd64")
        );
        assert_eq!(package_from_depends("linux-image-cloud-amd64\n"), None);
        assert_eq!(
            package_from_depends("x\n  Depends: <linux-image-6.1-cloud-amd64-unsigned>\n"),
            None
        );
        let policy = "linux-image-6.1.0-57-cloud-amd64:\n  Installed: (none)\n  Candidate: 6.1.192-3\n  Version table:\n";
        assert_eq!(candidate_version(policy).as_deref(), Some("6.1.192-3"));
        assert_eq!(candidate_version("p:\n  Candidate: (none)\n"), None);
    }
}
