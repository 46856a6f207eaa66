//! The yardstick's userland: `xtask/linux-bench/bench.c` compiled static
//! (gcc and libc6-dev, Debian packages the `./just` bootstrap installs)
//! and packed alone as `/init` into an initramfs: a cpio archive in the
//! "newc" format the kernel unpacks, written here (a header of ASCII hex
//! fields per file) rather than by the `cpio` tool, which it would need
//! for nothing else.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The benchmark's source, committed beside the runner.
pub fn source() -> PathBuf {
    crate::build::workspace_root().join("xtask/linux-bench/bench.c")
}

/// Compiles [`source`] to a static executable at `out`.
pub fn compile(out: &Path) -> Result<(), String> {
    let gcc_missing = |why: String| {
        format!(
            "the Linux yardstick needs Debian's packages `gcc` and `libc6-dev` \
             (a static C benchmark): {why}. `./just` installs them, or `apt-get install gcc libc6-dev`"
        )
    };
    // A static link needs libc.a (libc6-dev); gcc answers a bare name when
    // it has none, so check before compiling for a clear message.
    let libc = Command::new("gcc")
        .arg("-print-file-name=libc.a")
        .output()
        .map_err(|e| gcc_missing(format!("cannot run gcc: {e}")))?;
    let libc = String::from_utf8_lossy(&libc.stdout).trim().to_string();
    if !Path::new(&libc).is_absolute() || !Path::new(&libc).is_file() {
        return Err(gcc_missing("gcc finds no static libc (libc.a)".into()));
    }
    let status = Command::new("gcc")
        .args(["-O2", "-static", "-pthread", "-Wall", "-Werror", "-o"])
        .arg(out)
        .arg(source())
        .status()
        .map_err(|e| gcc_missing(format!("cannot run gcc: {e}")))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!(
            "gcc could not build {} ({status})",
            source().display()
        ))
    }
}

/// One file of a newc archive: its header, name (NUL-terminated) and data,
/// each padded to 4 bytes.
fn newc_entry(out: &mut Vec<u8>, ino: u32, name: &str, mode: u32, data: &[u8]) {
    let fields = [
        ino,
        mode,
        0, // uid
        0, // gid
        1, // nlink
        0, // mtime: fixed, so the archive is the same bytes every time
        data.len() as u32,
        0, // devmajor
        0, // devminor
        0, // rdevmajor
        0, // rdevminor
        name.len() as u32 + 1,
        0, // check (newc, not crc)
    ];
    out.extend_from_slice(b"070701");
    for f in fields {
        out.extend_from_slice(format!("{f:08X}").as_bytes());
    }
    out.extend_from_slice(name.as_bytes());
    out.push(0);
    pad4(out);
    out.extend_from_slice(data);
    pad4(out);
}

fn pad4(out: &mut Vec<u8>) {
    while !out.len().is_multiple_of(4) {
        out.push(0);
    }
}

/// A newc archive holding `init` as `/init` (mode 0755), closed by the
/// trailer entry.
pub fn newc_with_init(init: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(init.len() + 512);
    newc_entry(&mut out, 1, "init", 0o100_755, init);
    newc_entry(&mut out, 0, "TRAILER!!!", 0, &[]);
    out
}

/// Compiles the benchmark and writes `dir/initramfs.cpio`; returns its path.
pub fn build(dir: &Path) -> Result<PathBuf, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let init = dir.join("init");
    compile(&init)?;
    let bytes = std::fs::read(&init).map_err(|e| format!("{}: {e}", init.display()))?;
    let cpio = dir.join("initramfs.cpio");
    std::fs::write(&cpio, newc_with_init(&bytes))
        .map_err(|e| format!("{}: {e}", cpio.display()))?;
    Ok(cpio)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reads a newc archive back: (name, mode, data) per entry, the
    /// trailer excluded; checks magic, padding and sizes on the way.
    fn read_newc(mut a: &[u8]) -> Vec<(String, u32, Vec<u8>)> {
        let mut entries = Vec::new();
        let total = a.len();
        loop {
            assert_eq!(&a[..6], b"070701", "magic at offset {}", total - a.len());
            let field = |i: usize| {
                u32::from_str_radix(std::str::from_utf8(&a[6 + 8 * i..14 + 8 * i]).unwrap(), 16)
                    .unwrap()
            };
            let (mode, size, namesize) = (field(1), field(6) as usize, field(11) as usize);
            let name_end = 110 + namesize;
            let name = std::str::from_utf8(&a[110..name_end - 1])
                .unwrap()
                .to_string();
            assert_eq!(a[name_end - 1], 0, "name NUL-terminated");
            let data_at = name_end.div_ceil(4) * 4;
            let data = a[data_at..data_at + size].to_vec();
            let next = (data_at + size).div_ceil(4) * 4;
            a = &a[next..];
            if name == "TRAILER!!!" {
                assert!(a.is_empty(), "nothing after the trailer");
                return entries;
            }
            entries.push((name, mode, data));
        }
    }

    #[test]
    fn the_initramfs_holds_init_alone_executable() {
        for len in [0usize, 1, 3, 4, 5, 1001] {
            let init: Vec<u8> = (0..len).map(|i| i as u8).collect();
            let a = newc_with_init(&init);
            assert!(a.len().is_multiple_of(4));
            assert_eq!(read_newc(&a), vec![("init".to_string(), 0o100_755, init)]);
        }
    }
}
