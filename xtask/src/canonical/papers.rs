//! Where each published figure in `results/README.md` comes from.
//!
//! The figures themselves were gathered from the papers and from secondary
//! summaries of them; (2°) marks a figure taken from a secondary summary,
//! not read in the paper. A location marked † is where the paper reports
//! it as far as we know its layout; no copy of the papers is kept in this
//! repository to check it against.

/// A short key for the tables and the full reference for the list.
pub struct Paper {
    pub key: &'static str,
    pub reference: &'static str,
}

pub const LOTTERY: Paper = Paper {
    key: "WW94",
    reference: "Carl A. Waldspurger and William E. Weihl. *Lottery Scheduling: Flexible Proportional-Share Resource Management.* \
                1st USENIX Symposium on Operating Systems Design and Implementation (OSDI), 1994. \
                Measured on Mach on a 25 MHz DEC5000 with a 100 ms quantum (2°).",
};

pub const STRIDE: Paper = Paper {
    key: "WW95",
    reference: "Carl A. Waldspurger and William E. Weihl. *Stride Scheduling: Deterministic Proportional-Share Resource Management.* \
                MIT Laboratory for Computer Science, Technical Memorandum MIT/LCS/TM-528, June 1995. \
                Measured on a Linux prototype and in simulation.",
};

pub const EXOKERNEL: Paper = Paper {
    key: "EKO95",
    reference: "Dawson R. Engler, M. Frans Kaashoek and James O'Toole Jr. *Exokernel: An Operating System Architecture for Application-Level Resource Management.* \
                15th ACM Symposium on Operating Systems Principles (SOSP), 1995.",
};

pub const XOK: Paper = Paper {
    key: "K97",
    reference: "M. Frans Kaashoek, Dawson R. Engler, Gregory R. Ganger et al. *Application Performance and Flexibility on Exokernel Systems.* \
                16th ACM Symposium on Operating Systems Principles (SOSP), 1997; and Xok's public source, where the scheduler skips the slots of \
                sleeping environments without charging them (a behaviour of the code, not a measured figure).",
};

pub const SFS: Paper = Paper {
    key: "CAGS00",
    reference: "Abhishek Chandra, Micah Adler, Pawan Goyal and Prashant Shenoy. *Surplus Fair Scheduling: A Proportional-Share CPU Scheduling Algorithm for Symmetric Multiprocessors.* \
                4th USENIX Symposium on Operating Systems Design and Implementation (OSDI), 2000.",
};

pub const SCHED_EXT: Paper = Paper {
    key: "scx",
    reference: "Linux sched_ext (kernel 6.12 and later), `Documentation/scheduler/sched-ext.rst`: a watchdog ejects a stalled BPF scheduler and every task \
                falls back to the fair class, losing the BPF scheduler's state. Documentation, not a measured figure.",
};

/// Every source cited, in the order of the reference list.
pub const ALL: [&Paper; 6] = [&LOTTERY, &STRIDE, &EXOKERNEL, &XOK, &SFS, &SCHED_EXT];

/// `[key]` with a location, e.g. `cite(&LOTTERY, "§5.1, Fig. 5†")`.
pub fn cite(paper: &Paper, at: &str) -> String {
    if at.is_empty() {
        format!("[{}]", paper.key)
    } else {
        format!("[{}, {at}]", paper.key)
    }
}

/// The reference list, as markdown.
pub fn references() -> String {
    let mut s = String::from(
        "## References\n\n\
         (2°): the figure comes from a secondary summary of the paper and was not read in the paper itself. \
         †: the section or figure where the paper reports it, as far as we know the paper's layout; \
         no copy of the papers is kept in this repository to check it against.\n\n",
    );
    for p in ALL {
        s.push_str(&format!("- [{}] {}\n", p.key, p.reference));
    }
    s
}
