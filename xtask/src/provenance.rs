//! What `results/README.md` was made from: a hash over the tracked files
//! that determine its figures, written into it by `just experiments` and
//! checked by a host test, so a change to a policy, the libOS, the kernel
//! or the metrics cannot leave stale figures looking current.
//!
//! The hash is FNV-1a 64 over every file `git ls-files` lists under
//! [`SOURCES`] (and the canonical scenarios), sorted by path, each framed
//! as path length, path, content length, content (so no two file sets
//! share a byte stream). FNV-1a is written out here rather than taken
//! from a crate: no cryptographic hash is in Cargo.lock, and this needs
//! none; it only has to notice that sources changed, not resist someone
//! forging a collision, and 64 bits make an accidental match negligible.
//! Only tracked files count (untracked junk does not), read from the
//! working tree (so an uncommitted edit does).

use std::path::Path;
use std::process::Command;

/// Git pathspecs of the files that determine the canonical figures, with
/// why. The canonical scenarios are added from [`SCENARIOS`].
pub const SOURCES: &[&str] = &[
    // What runs in the guest: the policies, the libOS, the kernel and its
    // slice bookkeeping, the shared ABI, the programs, the predicates.
    "sched-*",
    "libos",
    "kernel",
    "slices",
    "abi",
    "workloads",
    "predicate",
    // How it is compiled: in deterministic runs the guest's clock counts
    // its instructions, so the toolchain, profiles and crate versions move
    // every figure.
    "Cargo.toml",
    "Cargo.lock",
    "rust-toolchain.toml",
    ".cargo/config.toml",
    "xtask/src/build.rs",
    // How it is run: QEMU's arguments (accelerator, -icount shift).
    "xtask/src/qemu*",
    // How the figures are computed and drawn, from the records the
    // guest prints.
    "xtask/src/records.rs",
    // The summary every run writes (cores' idle time, applications,
    // threads), which the canonical tables read.
    "xtask/src/summary.rs",
    "xtask/src/metrics*",
    "xtask/src/rundata.rs",
    "xtask/src/scenario*",
    "xtask/src/canonical*",
    "xtask/src/experiments.rs",
    "xtask/src/multicore.rs",
    // The statistics of trials: the lottery sweep's means and intervals,
    // every median and range.
    "xtask/src/trials.rs",
    "xtask/src/plot.rs",
    "xtask/src/plot",
];

/// The scenarios the canonical experiments run (`just experiments`): their
/// files are among the sources hashed here, so the list lives here and
/// `canonical` takes it from this module.
pub const SCENARIOS: &[&str] = &[
    "lottery-2to1",
    "lottery-20to1",
    "stride-3to1",
    "stride-101",
    "infeasible-4core",
    "swap-8core",
    "three-apps",
    "sleepers",
    "lock-transfer",
    "multicore-16",
    "multicore-96",
    "four-policies",
    "slots-3to1",
    "slots-1to2",
    "response-7to1",
    "server-batch",
    "threads-1000-16",
    "currencies",
];

/// The marker before the hash in `results/README.md`.
pub const MARK: &str = "sources-fnv1a64:";

/// The hash of the sources and how many files it covers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sources {
    pub hash: String,
    pub files: usize,
}

impl Sources {
    /// The line `just experiments` writes into `results/README.md`.
    pub fn stamp(&self) -> String {
        format!(
            "<!-- {MARK} {} over {} tracked files (xtask/src/provenance.rs lists them); written by `just experiments` -->",
            self.hash, self.files
        )
    }
}

/// The hash `text` (a `results/README.md`) records, if any.
pub fn recorded(text: &str) -> Option<&str> {
    let at = text.find(MARK)? + MARK.len();
    text[at..].split_whitespace().next()
}

/// Hashes the current sources of the workspace at `root`.
pub fn sources(root: &Path) -> Result<Sources, String> {
    let scenarios: Vec<String> = SCENARIOS
        .iter()
        .map(|s| format!("scenarios/{s}.toml"))
        .collect();
    let out = Command::new("git")
        .arg("-C")
        .arg(root)
        .args(["ls-files", "-z", "--"])
        .args(SOURCES)
        .args(&scenarios)
        .output()
        .map_err(|e| {
            format!("git ls-files: {e} (the results' sources are the files git tracks)")
        })?;
    if !out.status.success() {
        return Err(format!(
            "git ls-files: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let mut paths: Vec<&[u8]> = out
        .stdout
        .split(|&b| b == 0)
        .filter(|p| !p.is_empty())
        .collect();
    paths.sort();
    paths.dedup();
    let mut files = Vec::with_capacity(paths.len());
    for p in &paths {
        let path = String::from_utf8_lossy(p).into_owned();
        let data = std::fs::read(root.join(&path)).map_err(|e| {
            format!("{path}: {e} (tracked but unreadable: restore or remove it with git)")
        })?;
        files.push((path, data));
    }
    for scenario in &scenarios {
        if !files.iter().any(|(p, _)| p == scenario) {
            return Err(format!(
                "{scenario}: a canonical scenario git does not track"
            ));
        }
    }
    Ok(Sources {
        hash: format!("{:016x}", hash_files(&files)),
        files: files.len(),
    })
}

/// FNV-1a 64 over (path, content) pairs in the given order, each field
/// preceded by its length.
pub fn hash_files(files: &[(String, Vec<u8>)]) -> u64 {
    let mut h = Fnv1a64::new();
    for (path, data) in files {
        h.write(&(path.len() as u64).to_le_bytes());
        h.write(path.as_bytes());
        h.write(&(data.len() as u64).to_le_bytes());
        h.write(data);
    }
    h.0
}

/// FNV-1a, 64 bits (Fowler, Noll, Vo).
struct Fnv1a64(u64);

impl Fnv1a64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;

    fn new() -> Self {
        Fnv1a64(Self::OFFSET)
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(Self::PRIME);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fnv(bytes: &[u8]) -> u64 {
        let mut h = Fnv1a64::new();
        h.write(bytes);
        h.0
    }

    #[test]
    fn fnv1a64_matches_the_published_test_vectors() {
        assert_eq!(fnv(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv(b"foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn every_path_and_byte_counts_and_framing_keeps_files_apart() {
        let f = |v: &[(&str, &str)]| {
            hash_files(
                &v.iter()
                    .map(|(p, d)| (p.to_string(), d.as_bytes().to_vec()))
                    .collect::<Vec<_>>(),
            )
        };
        let base = f(&[("a.rs", "fn a() {}"), ("b.rs", "x")]);
        assert_eq!(base, f(&[("a.rs", "fn a() {}"), ("b.rs", "x")]));
        assert_ne!(base, f(&[("a.rs", "fn a() { }"), ("b.rs", "x")]));
        assert_ne!(base, f(&[("c.rs", "fn a() {}"), ("b.rs", "x")]));
        assert_ne!(base, f(&[("a.rs", "fn a() {}")]));
        // Bytes moved from one field to the next make another stream.
        assert_ne!(f(&[("ab", "c")]), f(&[("a", "bc")]));
        assert_ne!(f(&[("a", "b"), ("c", "")]), f(&[("a", ""), ("bc", "")]));
    }

    #[test]
    fn the_recorded_hash_is_read_back() {
        let s = Sources {
            hash: "0123456789abcdef".into(),
            files: 12,
        };
        let text = format!("# Results\n\n{}\n\n| a | b |\n", s.stamp());
        assert_eq!(recorded(&text), Some("0123456789abcdef"));
        assert_eq!(recorded("# no stamp here"), None);
    }

    #[test]
    fn the_sources_cover_what_determines_the_figures() {
        let root = crate::build::workspace_root();
        let listed = Command::new("git")
            .arg("-C")
            .arg(&root)
            .args(["ls-files", "--"])
            .args(SOURCES)
            .output()
            .expect("git runs");
        let listed = String::from_utf8_lossy(&listed.stdout);
        for must in [
            "sched-lottery/src/lib.rs",
            "sched-stride/src/lib.rs",
            "libos/src/threads.rs",
            "kernel/Cargo.toml",
            "slices/src/lib.rs",
            "xtask/src/metrics.rs",
            "xtask/src/metrics/fairness.rs",
            "xtask/src/records.rs",
            "xtask/src/summary.rs",
            "xtask/src/scenario_run.rs",
            "xtask/src/qemu/machine.rs",
            "xtask/src/canonical.rs",
            "xtask/src/canonical/binomial.rs",
            "xtask/src/trials.rs",
        ] {
            assert!(listed.lines().any(|l| l == must), "{must} not hashed");
        }
        for never in [
            "README.md",
            "results/README.md",
            "xtask/src/provenance.rs",
            "docs/metrics.md",
        ] {
            assert!(!listed.lines().any(|l| l == never), "{never} hashed");
        }
    }

    /// The check itself: `results/README.md` records the hash of the
    /// sources it was made from; any change since fails here.
    #[test]
    fn results_readme_was_made_from_the_current_sources() {
        let root = crate::build::workspace_root();
        let now = sources(&root).expect("hash the sources");
        let readme = root.join("results/README.md");
        let text = std::fs::read_to_string(&readme).expect("results/README.md exists");
        let made_from = recorded(&text).unwrap_or("(none recorded)");
        assert_eq!(
            made_from, now.hash,
            "results/README.md was made from other sources: run `just experiments` \
             (it records {made_from}; the {} files in xtask/src/provenance.rs::SOURCES hash to {} now)",
            now.files, now.hash
        );
    }
}
