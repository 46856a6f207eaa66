//! The launch plan of a scenario run: which applications the kernel starts,
//! where each holds slots, when it starts and stops, and the text handed to
//! each as its arguments.
//!
//! The runner validates the user's TOML scenario and compiles it to this
//! plan (a boot module named `scenario`); the kernel only needs the parts
//! that are mechanism — environments and slots. What an application does
//! with its threads is in its own arguments, which the kernel passes on
//! without reading them.
//!
//! ```text
//! exo-launch 1
//! slots <vector length>            (optional; at least what the apps hold)
//! app <name> <slots per core> <all | core,core,...> <start ms> <stop ms | -> [program] [frames=<n>]
//! <argument lines, passed to the application verbatim>
//! end
//! ```
//!
//! `program` is the boot module the environment runs: [`APP_PROGRAM`]
//! when the header does not name one (a scenario's scheduler environment
//! runs `sched_env`). `frames=<n>` sets its frame quota (the frames it may
//! allocate and map: an application of 10,000 threads maps 40,000 for
//! their stacks alone), [`MAX_FRAME_QUOTA`] at most; without it
//! [`DEFAULT_FRAME_QUOTA`].

use core::fmt;

/// The program a plan's application runs unless its header names another.
pub const APP_PROGRAM: &str = "app";

/// First line of every plan.
pub const MAGIC: &str = "exo-launch 1";
/// Most applications in one plan.
pub const MAX_APPS: usize = 32;
/// How long after its stop an application's slots are still counted as
/// held (see [`Plan::slots_at_once`]).
pub const STOP_MARGIN_MS: u64 = 1000;
/// Largest frame quota a plan may give an application (4 GiB of frames:
/// a bound on a typo, not on memory, which the runner checks).
pub const MAX_FRAME_QUOTA: usize = 1 << 20;
/// Frames an environment may own beyond its image when nothing sets its
/// quota (a plan's application without `frames=`, a child spawned
/// without one): 4096 frames of 4 KiB, 16 MiB. The kernel grants it; the
/// runner sizes `frames=` from it.
pub const DEFAULT_FRAME_QUOTA: usize = 4096;
/// Most cores a core list may name (the kernel's own limit).
pub const MAX_CORES: usize = abi::shared::MAX_CORES;

/// A validated plan.
#[derive(Clone, Copy, Debug)]
pub struct Plan<'a> {
    text: &'a str,
    apps: usize,
    /// The vector length the runner asked for (room for slice changes).
    pub slots: Option<usize>,
}

/// One application of a plan.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AppLaunch<'a> {
    pub name: &'a str,
    pub slots_per_core: usize,
    /// `None`: every core.
    cores: Option<&'a str>,
    pub start_ms: u64,
    pub stop_ms: Option<u64>,
    /// The boot module it runs.
    pub program: &'a str,
    /// Its frame quota, if the plan sets one.
    pub frame_quota: Option<usize>,
    /// The lines between the header and `end`, newline-terminated.
    pub args: &'a str,
}

impl AppLaunch<'_> {
    /// Whether the application holds slots on `core`.
    pub fn on_core(&self, core: usize) -> bool {
        self.cores
            .is_none_or(|list| list.split(',').any(|c| c.parse() == Ok(core)))
    }
}

/// Why a plan was rejected, with the 1-based line at fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LaunchError {
    pub line: usize,
    pub what: &'static str,
}

impl fmt::Display for LaunchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "launch plan line {}: {}", self.line, self.what)
    }
}

impl<'a> Plan<'a> {
    /// Validates every line of `text`.
    pub fn parse(text: &'a str) -> Result<Self, LaunchError> {
        let slots = match text.lines().nth(1).and_then(|l| l.strip_prefix("slots ")) {
            Some(n) => match n.trim().parse::<usize>() {
                Ok(n) if (1..=abi::shared::MAX_SLOTS).contains(&n) => Some(n),
                _ => {
                    return Err(LaunchError {
                        line: 2,
                        what: "slots must be 1..=MAX_SLOTS",
                    })
                }
            },
            None => None,
        };
        let plan = Plan {
            text,
            apps: 0,
            slots,
        };
        let mut apps = 0;
        for app in plan.iter() {
            app?;
            apps += 1;
            if apps > MAX_APPS {
                return Err(LaunchError {
                    line: 0,
                    what: "too many applications",
                });
            }
        }
        Ok(Plan { text, apps, slots })
    }

    /// How many applications the plan starts.
    pub fn len(&self) -> usize {
        self.apps
    }

    pub fn is_empty(&self) -> bool {
        self.apps == 0
    }

    /// The applications, in plan order.
    pub fn apps(&self) -> impl Iterator<Item = AppLaunch<'a>> + 'a {
        self.iter().map_while(Result::ok)
    }

    /// The application called `name`.
    pub fn app(&self, name: &str) -> Option<AppLaunch<'a>> {
        self.apps().find(|a| a.name == name)
    }

    /// The most slots the applications hold on `core` at any one time: an
    /// application holds its slots from its start until `STOP_MARGIN_MS`
    /// after its stop (its slots come back only once every core has let it
    /// go), and forever when it never stops.
    pub fn slots_at_once(&self, core: usize) -> usize {
        // (time, change): at equal times starts (+) sort before ends (-),
        // so back-to-back applications count as overlapping.
        let mut changes = [(0u64, 0i64); 2 * MAX_APPS];
        let mut n = 0;
        for app in self.apps().filter(|a| a.on_core(core)) {
            let slots = app.slots_per_core as i64;
            changes[n] = (app.start_ms, -slots);
            n += 1;
            if let Some(stop) = app.stop_ms {
                changes[n] = (stop.saturating_add(STOP_MARGIN_MS), slots);
                n += 1;
            }
        }
        let changes = &mut changes[..n];
        changes.sort_unstable();
        let (mut held, mut most) = (0i64, 0i64);
        for &(_, change) in changes.iter() {
            held -= change;
            most = most.max(held);
        }
        most as usize
    }

    fn iter(&self) -> Apps<'a> {
        Apps {
            rest: self.text,
            line: 0,
            started: false,
        }
    }
}

struct Apps<'a> {
    rest: &'a str,
    line: usize,
    started: bool,
}

impl<'a> Apps<'a> {
    fn next_line(&mut self) -> Option<&'a str> {
        if self.rest.is_empty() {
            return None;
        }
        let (line, rest) = self.rest.split_once('\n').unwrap_or((self.rest, ""));
        self.rest = rest;
        self.line += 1;
        Some(line)
    }

    fn err(&self, what: &'static str) -> Option<Result<AppLaunch<'a>, LaunchError>> {
        Some(Err(LaunchError {
            line: self.line,
            what,
        }))
    }
}

impl<'a> Iterator for Apps<'a> {
    type Item = Result<AppLaunch<'a>, LaunchError>;

    fn next(&mut self) -> Option<Self::Item> {
        if !self.started {
            self.started = true;
            if self.next_line() != Some(MAGIC) {
                return self.err("not a launch plan (bad first line)");
            }
            // The optional vector length (read by `Plan::parse`).
            if self.rest.starts_with("slots ") {
                self.next_line();
            }
        }
        let header = loop {
            match self.next_line() {
                None => return None,
                Some(l) if l.trim().is_empty() => continue,
                Some(l) => break l,
            }
        };
        let words: [&str; 8] = {
            let mut it = header.split_ascii_whitespace();
            let w = [(); 8].map(|()| it.next().unwrap_or(""));
            if it.next().is_some() || w[5].is_empty() {
                return self.err(
                    "app header needs: app <name> <slots> <cores> <start_ms> <stop_ms|-> [program] [frames=<n>]",
                );
            }
            w
        };
        let (mut program, mut frame_quota) = (None, None);
        for w in words[6..].iter().filter(|w| !w.is_empty()) {
            match w.strip_prefix("frames=") {
                Some(n) if frame_quota.is_none() => match n.parse::<usize>() {
                    Ok(n) if (1..=MAX_FRAME_QUOTA).contains(&n) => frame_quota = Some(n),
                    _ => return self.err("frames must be 1..=MAX_FRAME_QUOTA"),
                },
                None if program.is_none() && frame_quota.is_none() => program = Some(*w),
                _ => return self.err("after stop_ms: at most [program] [frames=<n>]"),
            }
        }
        if words[0] != "app" {
            return self.err("expected `app`");
        }
        let Ok(slots_per_core) = words[2].parse::<usize>() else {
            return self.err("slots per core is not a number");
        };
        if slots_per_core > abi::shared::MAX_SLOTS {
            return self.err("more slots per core than a vector has");
        }
        let cores = match words[3] {
            "all" => None,
            list if list
                .split(',')
                .all(|c| c.parse::<usize>().is_ok_and(|c| c < MAX_CORES)) =>
            {
                Some(list)
            }
            _ => return self.err("cores must be `all` or a list like 0,2,3"),
        };
        let Ok(start_ms) = words[4].parse() else {
            return self.err("start_ms is not a number");
        };
        let stop_ms = match words[5] {
            "-" => None,
            w => match w.parse() {
                Ok(ms) => Some(ms),
                Err(_) => return self.err("stop_ms is not a number or -"),
            },
        };
        let body = self.rest;
        let mut len = 0;
        loop {
            match self.next_line() {
                None => return self.err("application without `end`"),
                Some("end") => break,
                Some(l) => len += l.len() + 1,
            }
        }
        let args = &body[..len.min(body.len())];
        if args.len() > abi::shared::ARGS_MAX - 8 {
            return self.err("application arguments longer than ARGS_MAX");
        }
        Some(Ok(AppLaunch {
            name: words[1],
            slots_per_core,
            cores,
            start_ms,
            stop_ms,
            program: program.unwrap_or(APP_PROGRAM),
            frame_quota,
            args,
        }))
    }
}

/// One application of a plan, as the runner writes it.
#[derive(Clone, Copy, Debug)]
pub struct AppEntry<'a> {
    pub name: &'a str,
    pub slots_per_core: usize,
    /// `None`: every core.
    pub cores: Option<&'a [u32]>,
    pub start_ms: u64,
    pub stop_ms: Option<u64>,
    /// The boot module it runs (`None`: [`APP_PROGRAM`]).
    pub program: Option<&'a str>,
    /// Its frame quota (`None`: the kernel's default).
    pub frame_quota: Option<usize>,
    /// Its arguments: lines, each ending in a newline.
    pub args: &'a str,
}

/// Writes a plan: the runner's side of [`Plan::parse`], kept beside it so
/// the two cannot drift (the round trip is tested).
pub fn write_plan(
    out: &mut impl fmt::Write,
    slots: Option<usize>,
    apps: &[AppEntry<'_>],
) -> fmt::Result {
    writeln!(out, "{MAGIC}")?;
    if let Some(n) = slots {
        writeln!(out, "slots {n}")?;
    }
    for app in apps {
        write!(out, "app {} {} ", app.name, app.slots_per_core)?;
        match app.cores {
            None => write!(out, "all")?,
            Some(cores) => {
                for (k, c) in cores.iter().enumerate() {
                    write!(out, "{}{c}", if k == 0 { "" } else { "," })?;
                }
            }
        }
        write!(out, " {} ", app.start_ms)?;
        match app.stop_ms {
            None => write!(out, "-")?,
            Some(ms) => write!(out, "{ms}")?,
        }
        if let Some(p) = app.program {
            write!(out, " {p}")?;
        }
        if let Some(n) = app.frame_quota {
            write!(out, " frames={n}")?;
        }
        writeln!(out)?;
        out.write_str(app.args)?;
        if !app.args.is_empty() && !app.args.ends_with('\n') {
            writeln!(out)?;
        }
        writeln!(out, "end")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests;
