//! Scenario files: the TOML a researcher writes to describe an experiment,
//! validated here before QEMU starts (errors name the line and the field),
//! and compiled to the kernel's launch plan (`kernel::launch`) with each
//! application's arguments (`workloads::appspec`).
//!
//! The schema is documented, with an example of every field, in
//! `docs/scenarios.md`.

use std::ops::Range;
use std::path::Path;

use kernel::launch::{write_plan, AppEntry, DEFAULT_FRAME_QUOTA};
use serde::{Deserialize, Serialize};
use toml::Spanned;
use workloads::appspec::{
    Action, AppSpec, Behaviour, CurrencySpec, Event as SpecEvent, Requests, Service, ThreadSpec,
};

/// How long after its stop an application's slots still count as held
/// (the kernel's `kernel::launch::STOP_MARGIN_MS`).
pub const STOP_MARGIN_MS: u64 = 1000;

/// A whole scenario file.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Defaults to the file's stem.
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// Cores to boot when the command line does not say (`cpus=`).
    pub cores: Option<u32>,
    #[serde(default = "defaults::duration_ms")]
    pub duration_ms: u64,
    #[serde(default = "defaults::slice_us")]
    pub slice_us: u64,
    #[serde(default = "defaults::grace_us")]
    pub grace_us: u64,
    #[serde(default = "defaults::seed")]
    pub seed: u64,
    /// How often applications report their threads.
    #[serde(default = "defaults::sample_ms")]
    pub sample_ms: u64,
    /// Applications report which thread ran on which core, when (the
    /// trace's thread tracks); off by default, as the reports cost the
    /// applications time (`run-smp thread_trace=1` turns it on).
    #[serde(default)]
    pub thread_trace: bool,
    #[serde(rename = "app")]
    pub apps: Vec<Spanned<App>>,
    #[serde(default, rename = "event")]
    pub events: Vec<Spanned<Event>>,
    /// Aegis's scheduler environment: donates its slots to client
    /// applications by a policy over their tickets.
    pub scheduler_env: Option<Spanned<SchedulerEnv>>,
}

/// `[scheduler_env]`: an environment of its own (the `sched_env` program)
/// that holds `slices` slots on each of its cores from the start and
/// donates every one, by directed yield, to a client chosen by `scheduler`
/// over the clients' tickets, charging each what it used. Clients are
/// applications of the scenario that hold no slots of their own.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SchedulerEnv {
    #[serde(default = "defaults::sched_env_name")]
    pub name: String,
    pub scheduler: String,
    #[serde(default = "defaults::slices")]
    pub slices: u32,
    /// Cores it holds slots on (all when absent).
    pub cores: Option<Vec<u32>>,
    #[serde(rename = "client")]
    pub clients: Vec<SchedClient>,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SchedClient {
    /// An application of the scenario, with `slices = 0`.
    pub app: String,
    #[serde(default = "defaults::tickets")]
    pub tickets: u32,
}

mod defaults {
    pub fn duration_ms() -> u64 {
        5000
    }
    pub fn slice_us() -> u64 {
        2000
    }
    pub fn grace_us() -> u64 {
        200
    }
    pub fn seed() -> u64 {
        1
    }
    pub fn sample_ms() -> u64 {
        100
    }
    pub fn slices() -> u32 {
        1
    }
    pub fn tickets() -> u32 {
        100
    }
    pub fn count() -> u32 {
        1
    }
    pub fn sched_env_name() -> String {
        "sched_env".into()
    }
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct App {
    pub name: String,
    /// A registered policy's name (`sched_registry::names`).
    pub scheduler: String,
    /// Slots held on each of its cores.
    #[serde(default = "defaults::slices")]
    pub slices: u32,
    /// Cores it holds slots on (all when absent).
    pub cores: Option<Vec<u32>>,
    #[serde(default)]
    pub start_ms: u64,
    pub stop_ms: Option<u64>,
    #[serde(rename = "thread")]
    pub threads: Vec<Spanned<Thread>>,
    /// `[[app.currency]]`: ticket currencies (a scheduler with currencies
    /// only: lottery), each funded by tickets of its parent.
    #[serde(default, rename = "currency")]
    pub currencies: Vec<Spanned<CurrencyDecl>>,
    /// The open-loop request stream its `serve` threads serve.
    pub requests: Option<Spanned<RequestStream>>,
}

/// `[app.requests]`: Poisson arrivals at `rate_per_s`, each needing
/// `service_us` of CPU (fixed, or the mean of an exponential), or for
/// `bimodal`, `long_us` for a `long_fraction` of them.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RequestStream {
    pub rate_per_s: u64,
    /// `fixed`, `exponential` or `bimodal`.
    pub service: String,
    pub service_us: u64,
    pub long_us: Option<u64>,
    pub long_fraction: Option<f64>,
}

impl RequestStream {
    /// The stream as the application runs it, or the field at fault.
    pub fn requests(&self) -> Result<Requests, (&'static str, &'static str)> {
        use workloads::requests::{MAX_RATE_PER_S, MAX_SERVICE_US};
        if !(1..=MAX_RATE_PER_S).contains(&self.rate_per_s) {
            return Err(("rate_per_s", "must be 1..=1000000"));
        }
        if !(1..=MAX_SERVICE_US).contains(&self.service_us) {
            return Err(("service_us", "must be 1..=10000000 (10 s)"));
        }
        let service = match self.service.as_str() {
            "fixed" => Service::Fixed {
                us: self.service_us,
            },
            "exponential" => Service::Exponential {
                mean_us: self.service_us,
            },
            "bimodal" => match (self.long_us, self.long_fraction) {
                (Some(long_us), _) if long_us > MAX_SERVICE_US => {
                    return Err(("long_us", "must be at most 10000000 (10 s)"))
                }
                // Drawn in permille: a fraction that would round to none
                // (or all) of the requests is refused, not silently lost.
                (Some(_), Some(f)) if (f > 0.0 && f < 0.0005) || (0.9995..1.0).contains(&f) => {
                    return Err((
                        "long_fraction",
                        "is drawn in thousandths: use 0, 1, or 0.001..=0.999",
                    ))
                }
                (Some(long_us), Some(f)) if long_us > 0 && (0.0..=1.0).contains(&f) => {
                    Service::Bimodal {
                        short_us: self.service_us,
                        long_us,
                        long_permille: (f * 1000.0).round() as u64,
                    }
                }
                (Some(0) | None, _) => {
                    return Err(("long_us", "`bimodal` needs a positive `long_us`"))
                }
                _ => return Err(("long_fraction", "`bimodal` needs 0 <= long_fraction <= 1")),
            },
            _ => return Err(("service", "must be fixed, exponential or bimodal")),
        };
        if self.service != "bimodal" && (self.long_us.is_some() || self.long_fraction.is_some()) {
            return Err((
                "long_us",
                "only `bimodal` has `long_us` and `long_fraction`",
            ));
        }
        Ok(Requests {
            rate_per_s: self.rate_per_s,
            service,
        })
    }
}

/// `[[app.currency]]`: a ticket currency named `name`, funded by `funding`
/// tickets of `parent` (an earlier currency's name; the base currency when
/// absent). A thread's tickets in it are worth their share of its active
/// tickets times its worth, so more tickets issued in it dilute only it.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CurrencyDecl {
    pub name: String,
    pub funding: u32,
    pub parent: Option<String>,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Thread {
    /// Defaults to `t<id>`; with `count` > 1, `<name>.<k>`.
    pub name: Option<String>,
    #[serde(default = "defaults::tickets")]
    pub tickets: u32,
    /// The `[[app.currency]]` its tickets are of (the base currency when
    /// absent).
    pub currency: Option<String>,
    /// `cpu`, `sleep`, `fraction`, `bursty`, `watch`, `poke` or `lock`.
    pub behaviour: String,
    pub run_us: Option<u64>,
    pub sleep_us: Option<u64>,
    /// Fraction of each quantum used before blocking (0 < f <= 1).
    pub fraction: Option<f64>,
    pub on_us: Option<u64>,
    pub off_us: Option<u64>,
    pub period_us: Option<u64>,
    /// `lock`: time computed holding the application's lock, and outside it.
    pub hold_us: Option<u64>,
    pub think_us: Option<u64>,
    /// This many identical threads.
    #[serde(default = "defaults::count")]
    pub count: u32,
    #[serde(default)]
    pub join_ms: u64,
    pub leave_ms: Option<u64>,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Event {
    pub at_ms: u64,
    pub app: String,
    /// Swap the application's scheduler to this one.
    pub swap: Option<String>,
    /// With `tickets`: the thread (by name) whose tickets change.
    pub thread: Option<String>,
    pub tickets: Option<u32>,
    /// Change the application's slots per core to this many (on the cores
    /// it holds slots on).
    pub slices: Option<u32>,
}

/// A scenario that did not validate: where and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScenarioError {
    /// 1-based line in the file (0 when the whole file is at fault).
    pub line: usize,
    /// The field at fault, as a path (`app[1].thread[0].tickets`).
    pub field: String,
    pub message: String,
}

impl std::fmt::Display for ScenarioError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {}: {}: {}", self.line, self.field, self.message)
    }
}

/// A registered policy's name.
fn is_scheduler(name: &str) -> bool {
    sched_registry::by_name(name).is_some()
}

/// What a scheduler field must be: every registered policy's name.
fn scheduler_expected() -> String {
    format!("must be {}", sched_registry::names_sentence())
}

/// Most threads an application may describe (`workloads::appspec`; the
/// libOS's table holds these and the main thread).
pub const MAX_THREADS_PER_APP: u32 = workloads::appspec::MAX_THREADS as u32;

/// Frames an application's quota grows by per thread: the thread's 16 KiB
/// stack (4 frames), its slot in the thread table (~2 KiB) and the
/// application's per-thread records (its wait histogram, ~1.2 KiB, and
/// for a sleeping thread its 8 KiB sleep log), the policy's record, and
/// the page tables of the stack region, with room to spare: a bound the
/// libOS allocates within, not memory taken at start.
pub const FRAMES_PER_THREAD: usize = 10;
/// Guest memory (MiB) not available to applications' frames: the kernel,
/// its tables and every application's image.
pub const MEMORY_RESERVED_MIB: u64 = 128;
/// An application's image (3.1 MiB of BSS: the libOS's 1 MiB heap and 2
/// MiB of worker stacks, and its code) and the heap it may grow beyond
/// that (within its default quota, which the thread part leaves out).
const IMAGE_MIB: u64 = 12;

/// An application's currencies as the figures value them
/// (`metrics::Currency`, in declaration order, parents by their id from 1),
/// and each of its threads' currency by thread id (ids from 1, as its
/// arguments number them; 0 the base currency).
pub type CurrencyPlan = (Vec<crate::metrics::Currency>, Vec<(u32, u32)>);

impl App {
    /// Its [`CurrencyPlan`].
    pub fn currency_plan(&self) -> CurrencyPlan {
        let currencies = self
            .currencies
            .iter()
            .map(Spanned::get_ref)
            .map(|c| crate::metrics::Currency {
                parent: c.parent.as_ref().map_or(0, |p| currency_id(self, p)),
                funding: u64::from(c.funding),
            })
            .collect();
        let threads = expand_threads(self)
            .iter()
            .enumerate()
            .map(|(k, (_, th))| {
                let c = th.currency.as_ref().map_or(0, |c| currency_id(self, c));
                (k as u32 + 1, c)
            })
            .collect();
        (currencies, threads)
    }
}

/// The application's arguments' id of its currency `name` (validated: it
/// is declared), from 1 in declaration order.
fn currency_id(app: &App, name: &str) -> u32 {
    app.currencies
        .iter()
        .position(|c| c.get_ref().name == name)
        .expect("validated") as u32
        + 1
}

fn line_of(text: &str, span: Range<usize>) -> usize {
    text[..span.start.min(text.len())].matches('\n').count() + 1
}

/// Parses and validates scenario `text` (`stem` names it when it has no
/// `name`). `cpus` is the core count it will run on.
pub fn parse(text: &str, stem: &str, cpus: u32) -> Result<Scenario, ScenarioError> {
    let mut s: Scenario = toml::from_str(text).map_err(|e| ScenarioError {
        line: e.span().map_or(0, |s| line_of(text, s)),
        field: String::from("(syntax)"),
        message: e.message().trim().to_string(),
    })?;
    if s.name.is_empty() {
        s.name = stem.to_string();
    }
    validate(&s, text, cpus)?;
    Ok(s)
}

/// Reads and parses a scenario file.
pub fn load(path: &Path, cpus: u32) -> Result<Scenario, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let stem = path
        .file_stem()
        .map_or("scenario".into(), |s| s.to_string_lossy());
    parse(&text, &stem, cpus).map_err(|e| format!("{}: {e}", path.display()))
}

fn validate(s: &Scenario, text: &str, cpus: u32) -> Result<(), ScenarioError> {
    // The line of the key itself when the table spells it, else the table's.
    let err = |span: Range<usize>, field: String, message: &str| {
        let key = field.rsplit('.').next().unwrap_or("");
        let table = &text[span.start.min(text.len())..span.end.min(text.len())];
        let at = table
            .match_indices(key)
            .map(|(i, _)| span.start + i)
            .find(|&i| {
                text[..i].ends_with('\n') && text[i + key.len()..].trim_start().starts_with('=')
            });
        ScenarioError {
            line: line_of(text, at.map_or(span.clone(), |i| i..i)),
            field,
            message: message.to_string(),
        }
    };
    let top = |field: &str, message: &str| ScenarioError {
        line: 0,
        field: field.into(),
        message: message.into(),
    };
    if !(50..=1_000_000).contains(&s.slice_us) {
        return Err(top("slice_us", "must be 50..=1000000"));
    }
    if s.grace_us > 1_000_000 {
        return Err(top("grace_us", "must be at most 1000000"));
    }
    if s.duration_ms == 0 || s.sample_ms == 0 {
        return Err(top(
            if s.duration_ms == 0 {
                "duration_ms"
            } else {
                "sample_ms"
            },
            "must be positive",
        ));
    }
    if s.apps.is_empty() {
        return Err(top("app", "a scenario needs at least one [[app]]"));
    }
    if s.apps.len() > 32 {
        return Err(top("app", "at most 32 applications"));
    }
    for (a, app) in s.apps.iter().enumerate() {
        let (span, app) = (app.span(), app.get_ref());
        let field = |f: &str| format!("app[{a}].{f}");
        if app.name.is_empty()
            || app.name.len() > 31
            || !app
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            return Err(err(
                span,
                field("name"),
                "1-31 characters of letters, digits, _ and -",
            ));
        }
        if s.apps
            .iter()
            .filter(|o| o.get_ref().name == app.name)
            .count()
            > 1
        {
            return Err(err(span, field("name"), "two applications with this name"));
        }
        if !is_scheduler(&app.scheduler) {
            return Err(err(span, field("scheduler"), &scheduler_expected()));
        }
        let client = s
            .scheduler_env
            .as_ref()
            .is_some_and(|e| e.get_ref().clients.iter().any(|c| c.app == app.name));
        if app.slices == 0 && !client {
            return Err(err(
                span,
                field("slices"),
                "must be at least 1 (0 only for a client of the scheduler_env)",
            ));
        }
        if app.slices > 0 && client {
            return Err(err(
                span,
                field("slices"),
                "a client of the scheduler_env holds no slots of its own: set slices = 0",
            ));
        }
        if let Some(cores) = &app.cores {
            if cores.is_empty() || cores.iter().any(|&c| c >= cpus) {
                return Err(err(
                    span,
                    field("cores"),
                    &format!("must list cores below {cpus}"),
                ));
            }
        }
        if app.stop_ms.is_some_and(|t| t <= app.start_ms) {
            return Err(err(span, field("stop_ms"), "must be after start_ms"));
        }
        for (c, cur) in app.currencies.iter().enumerate() {
            let (span, cur) = (cur.span(), cur.get_ref());
            let field = |f: &str| format!("app[{a}].currency[{c}].{f}");
            let earlier = &app.currencies[..c];
            if !AppSpec::nameable(&cur.name) || earlier.iter().any(|o| o.get_ref().name == cur.name)
            {
                return Err(err(
                    span,
                    field("name"),
                    "one word, not a number, and not another currency's",
                ));
            }
            if cur.funding == 0 {
                return Err(err(span, field("funding"), "must be positive"));
            }
            if let Some(parent) = &cur.parent {
                if !earlier.iter().any(|o| &o.get_ref().name == parent) {
                    return Err(err(
                        span,
                        field("parent"),
                        "must name a currency declared before this one",
                    ));
                }
            }
        }
        let has_currencies = sched_registry::by_name(&app.scheduler).is_some_and(|p| p.currencies);
        if let Some(first) = app.currencies.first().filter(|_| !has_currencies) {
            return Err(err(
                first.span(),
                format!("app[{a}].currency"),
                &format!(
                    "currencies need a scheduler that has them ({}); a swap away keeps them",
                    sched_registry::POLICIES
                        .iter()
                        .filter(|p| p.currencies)
                        .map(|p| p.kind.name())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ));
        }
        let mut total = 0u32;
        for (t, th) in app.threads.iter().enumerate() {
            let (span, th) = (th.span(), th.get_ref());
            let field = |f: &str| format!("app[{a}].thread[{t}].{f}");
            if th.tickets == 0 {
                return Err(err(span, field("tickets"), "must be positive"));
            }
            if let Some(c) = &th.currency {
                if !app.currencies.iter().any(|o| &o.get_ref().name == c) {
                    return Err(err(span, field("currency"), "no such [[app.currency]]"));
                }
            }
            if th.count == 0 {
                return Err(err(span, field("count"), "must be positive"));
            }
            total = total.saturating_add(th.count);
            if th.leave_ms.is_some_and(|l| l <= th.join_ms) {
                return Err(err(span, field("leave_ms"), "must be after join_ms"));
            }
            behaviour(th).map_err(|(f, m)| err(span, field(f), &m))?;
        }
        if total == 0 || total > MAX_THREADS_PER_APP {
            return Err(err(
                span,
                field("thread"),
                &format!("1..={MAX_THREADS_PER_APP} threads per application"),
            ));
        }
        let serves = app.threads.iter().any(|t| t.get_ref().behaviour == "serve");
        match &app.requests {
            Some(r) => {
                r.get_ref()
                    .requests()
                    .map_err(|(f, m)| err(r.span(), field(&format!("requests.{f}")), m))?;
                if !serves {
                    return Err(err(
                        r.span(),
                        field("requests"),
                        "requests need at least one `serve` thread",
                    ));
                }
            }
            None if serves => {
                return Err(err(
                    span,
                    field("requests"),
                    "`serve` threads need an [app.requests] table",
                ))
            }
            None => {}
        }
        let names = thread_names(app);
        let mut seen = std::collections::HashSet::new();
        if let Some(dup) = names.iter().find(|n| !seen.insert(n.as_str())) {
            return Err(err(
                span,
                field("thread"),
                &format!("two threads named `{dup}`"),
            ));
        }
    }
    if let Some(env) = &s.scheduler_env {
        let (span, env) = (env.span(), env.get_ref());
        let field = |f: &str| format!("scheduler_env.{f}");
        if !is_scheduler(&env.scheduler) {
            return Err(err(span, field("scheduler"), &scheduler_expected()));
        }
        if env.slices == 0 {
            return Err(err(span, field("slices"), "must be at least 1"));
        }
        if env.name.is_empty()
            || env.name.len() > 31
            || !env
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
            || s.apps.iter().any(|a| a.get_ref().name == env.name)
        {
            return Err(err(
                span,
                field("name"),
                "1-31 letters, digits, _ and -, not an application's name",
            ));
        }
        if let Some(cores) = &env.cores {
            if cores.is_empty() || cores.iter().any(|&c| c >= cpus) {
                return Err(err(
                    span,
                    field("cores"),
                    &format!("must list cores below {cpus}"),
                ));
            }
        }
        if env.clients.is_empty() {
            return Err(err(span, field("client"), "at least one client"));
        }
        for (k, c) in env.clients.iter().enumerate() {
            let field = |f: &str| format!("scheduler_env.client[{k}].{f}");
            if !s.apps.iter().any(|a| a.get_ref().name == c.app) {
                return Err(err(span.clone(), field("app"), "no such application"));
            }
            if env.clients[..k].iter().any(|o| o.app == c.app) {
                return Err(err(span.clone(), field("app"), "a client named twice"));
            }
            if c.tickets == 0 {
                return Err(err(span.clone(), field("tickets"), "must be positive"));
            }
        }
    }
    if s.vector_len(cpus) as usize > abi::shared::MAX_SLOTS {
        return Err(top(
            "app",
            &format!(
                "a core would need more than {} slots at once",
                abi::shared::MAX_SLOTS
            ),
        ));
    }
    for (e, ev) in s.events.iter().enumerate() {
        let (span, ev) = (ev.span(), ev.get_ref());
        let field = |f: &str| format!("event[{e}].{f}");
        let Some(app) = s
            .apps
            .iter()
            .map(Spanned::get_ref)
            .find(|a| a.name == ev.app)
        else {
            return Err(err(span, field("app"), "no such application"));
        };
        if let Some(n) = ev.slices {
            if ev.swap.is_some() || ev.thread.is_some() || ev.tickets.is_some() {
                return Err(err(
                    span,
                    field("slices"),
                    "an event changing `slices` changes nothing else",
                ));
            }
            if n == 0 {
                return Err(err(
                    span,
                    field("slices"),
                    "must be at least 1 (stop the application instead)",
                ));
            }
            continue;
        }
        match (&ev.swap, &ev.thread, ev.tickets) {
            (Some(to), None, None) if is_scheduler(to) => {}
            (Some(_), None, None) => return Err(err(span, field("swap"), &scheduler_expected())),
            (None, Some(t), Some(n)) if n > 0 => {
                if !thread_names(app).contains(t) {
                    return Err(err(
                        span,
                        field("thread"),
                        "no such thread in that application",
                    ));
                }
            }
            (None, Some(_), Some(_)) => {
                return Err(err(span, field("tickets"), "must be positive"))
            }
            _ => {
                return Err(err(
                    span,
                    field("swap"),
                    "an event sets either `swap`, or `thread` and `tickets`",
                ))
            }
        }
    }
    // Last: the arguments are written from everything validated above.
    for (a, app) in s.apps.iter().enumerate() {
        let (span, app) = (app.span(), app.get_ref());
        let field = |f: &str| format!("app[{a}].{f}");
        let mut args = String::new();
        // Sized as a deterministic run writes it (the core speed's line).
        s.app_spec(app, Some(u64::MAX))
            .write(&mut args)
            .expect("a String takes every write");
        if args.len() > abi::shared::ARGS_MAX - 8 {
            return Err(err(
                span,
                field("thread"),
                &format!(
                    "the application's description takes {} bytes, more than the {} its \
                         arguments hold: give alike threads one table with `count`",
                    args.len(),
                    abi::shared::ARGS_MAX - 8
                ),
            ));
        }
    }
    Ok(())
}

/// The behaviour as the application will run it, or the field at fault.
fn behaviour(th: &Thread) -> Result<Behaviour, (&'static str, String)> {
    let need = |v: Option<u64>, f: &'static str| {
        v.filter(|&x| x > 0)
            .ok_or((f, format!("`{}` needs a positive `{f}`", th.behaviour)))
    };
    Ok(match th.behaviour.as_str() {
        "cpu" => Behaviour::Cpu,
        "sleep" => Behaviour::Sleep {
            run_us: need(th.run_us, "run_us")?,
            sleep_us: need(th.sleep_us, "sleep_us")?,
        },
        "fraction" => match th.fraction {
            Some(f) if f > 0.0 && f <= 1.0 => Behaviour::Fraction {
                permille: ((f * 1000.0).round() as u64).max(1),
            },
            _ => return Err(("fraction", "`fraction` needs 0 < fraction <= 1".into())),
        },
        "bursty" => Behaviour::Bursty {
            on_us: need(th.on_us, "on_us")?,
            off_us: need(th.off_us, "off_us")?,
        },
        "watch" => Behaviour::Watch,
        "poke" => Behaviour::Poke {
            period_us: need(th.period_us, "period_us")?,
        },
        "lock" => Behaviour::Lock {
            hold_us: need(th.hold_us, "hold_us")?,
            think_us: need(th.think_us, "think_us")?,
        },
        "serve" => Behaviour::Serve,
        _ => {
            return Err((
                "behaviour",
                "must be cpu, sleep, fraction, bursty, watch, poke, lock or serve".into(),
            ))
        }
    })
}

/// Every thread of `app` in id order (ids count from 1): its name and spec.
pub fn expand_threads(app: &App) -> Vec<(String, &Thread)> {
    let mut out = Vec::new();
    for (t, th) in app.threads.iter().map(Spanned::get_ref).enumerate() {
        let base = th.name.clone();
        for k in 0..th.count {
            let id = out.len() + 1;
            let name = match (&base, th.count) {
                (Some(n), 1) => n.clone(),
                (Some(n), _) => format!("{n}.{k}"),
                (None, _) => format!("t{id}"),
            };
            let _ = t;
            out.push((name, th));
        }
    }
    out
}

/// How many threads `app` runs.
pub fn thread_count(app: &App) -> u32 {
    app.threads.iter().map(|t| t.get_ref().count).sum()
}

/// The frame quota `app` runs with: the kernel's default, and
/// [`FRAMES_PER_THREAD`] for each of its threads and its main thread.
pub fn frame_quota(app: &App) -> usize {
    DEFAULT_FRAME_QUOTA + (thread_count(app) as usize + 1) * FRAMES_PER_THREAD
}

fn thread_names(app: &App) -> Vec<String> {
    expand_threads(app).into_iter().map(|(n, _)| n).collect()
}

impl Scenario {
    /// Every application's scheduler replaced by `sched` (`sched=` on the
    /// command line), swaps included: how many swap events were dropped.
    pub fn override_scheduler(&mut self, sched: &str) -> usize {
        for app in &mut self.apps {
            app.get_mut().scheduler = sched.to_string();
        }
        let before = self.events.len();
        self.events.retain(|e| e.get_ref().swap.is_none());
        before - self.events.len()
    }

    /// The kernel's launch plan (`kernel::launch`): a header per
    /// application, its arguments (`workloads::appspec`) below, each
    /// written by its reader's own writer.
    pub fn launch_plan(&self) -> String {
        self.launch_plan_at(None)
    }

    /// [`launch_plan`](Self::launch_plan) for a deterministic run whose
    /// cores each execute `core_speed` instructions per second
    /// (`qemu::det_core_speed`): the applications are told it
    /// (`AppSpec::core_speed`).
    pub fn launch_plan_at(&self, core_speed: Option<u64>) -> String {
        let args: Vec<String> = self
            .apps
            .iter()
            .map(|a| {
                let mut text = String::new();
                self.app_spec(a.get_ref(), core_speed)
                    .write(&mut text)
                    .expect("a String takes every write");
                text
            })
            .collect();
        let entries: Vec<AppEntry<'_>> = self
            .apps
            .iter()
            .map(Spanned::get_ref)
            .zip(&args)
            .map(|(app, args)| AppEntry {
                name: &app.name,
                slots_per_core: app.slices as usize,
                cores: app.cores.as_deref(),
                start_ms: app.start_ms,
                stop_ms: app.stop_ms,
                program: None,
                frame_quota: Some(frame_quota(app)),
                args,
            })
            .collect();
        // The scheduler environment last: its clients are spawned (and
        // named) before it looks for them.
        let env_args = self.scheduler_env.as_ref().map(|e| {
            let e = e.get_ref();
            let mut text = String::new();
            workloads::sched_env::Spec {
                policy: Some(e.scheduler.clone()),
                clients: e
                    .clients
                    .iter()
                    .map(|c| (c.app.clone(), c.tickets))
                    .collect(),
            }
            .write(&mut text)
            .expect("a String takes every write");
            text
        });
        let mut entries = entries;
        if let (Some(e), Some(args)) = (&self.scheduler_env, &env_args) {
            let e = e.get_ref();
            entries.push(AppEntry {
                name: &e.name,
                slots_per_core: e.slices as usize,
                cores: e.cores.as_deref(),
                start_ms: 0,
                stop_ms: None,
                program: Some("sched_env"),
                frame_quota: None,
                args,
            });
        }
        let mut out = String::new();
        write_plan(&mut out, Some(self.vector_len(u32::MAX) as usize), &entries)
            .expect("a String takes every write");
        out
    }

    /// An application's arguments: its scheduler, threads (with the names
    /// the console accepts for their ids) and timed events.
    fn app_spec(&self, app: &App, core_speed: Option<u64>) -> AppSpec {
        let names = expand_threads(app);
        let threads = names
            .iter()
            .enumerate()
            .map(|(k, (_, th))| ThreadSpec {
                id: k as u32 + 1,
                tickets: th.tickets,
                currency: th.currency.as_ref().map_or(0, |c| currency_id(app, c)),
                join_ms: th.join_ms,
                leave_ms: th.leave_ms,
                behaviour: behaviour(th).expect("validated"),
            })
            .collect();
        let events = self
            .events
            .iter()
            .map(Spanned::get_ref)
            .filter(|e| e.app == app.name)
            .filter_map(|ev| {
                let action = match (ev.slices, &ev.swap, &ev.thread, ev.tickets) {
                    (Some(n), ..) => Action::Slices(n),
                    (None, Some(to), ..) => {
                        Action::Swap(sched_registry::kind(to).expect("validated"))
                    }
                    (None, None, Some(t), Some(n)) => Action::Tickets {
                        thread: names
                            .iter()
                            .position(|(name, _)| name == t)
                            .expect("validated") as u32
                            + 1,
                        tickets: n,
                    },
                    _ => return None,
                };
                Some(SpecEvent {
                    at_ms: ev.at_ms,
                    action,
                })
            })
            .collect();
        AppSpec {
            policy: Some(sched_registry::kind(&app.scheduler).expect("validated")),
            sample_ms: self.sample_ms,
            seed: self.seed,
            thread_trace: self.thread_trace,
            threads,
            currencies: app
                .currencies
                .iter()
                .map(|c| {
                    let c = c.get_ref();
                    CurrencySpec {
                        parent: c.parent.as_ref().map_or(0, |p| currency_id(app, p)),
                        funding: c.funding,
                    }
                })
                .collect(),
            names: names
                .iter()
                .enumerate()
                // `t<id>` is what an unnamed thread answers to anyway.
                .filter(|(k, (name, _))| AppSpec::nameable(name) && *name != format!("t{}", k + 1))
                .map(|(k, (name, _))| (k as u32 + 1, name.clone()))
                .collect(),
            events,
            requests: app
                .requests
                .as_ref()
                .map(|r| r.get_ref().requests().expect("validated")),
            core_speed,
        }
    }

    /// The most slots an application ever holds per core (slice events included).
    fn most_slices(&self, app: &App) -> u32 {
        self.events
            .iter()
            .map(Spanned::get_ref)
            .filter(|e| e.app == app.name)
            .filter_map(|e| e.slices)
            .fold(app.slices, u32::max)
    }

    /// Length of every core's slice vector: the most slots any core's
    /// applications hold at one time (on at most `cpus` cores). An
    /// application holds the most its events ask for from its start until
    /// [`STOP_MARGIN_MS`] after its stop — the kernel's own rule
    /// (`kernel::launch::Plan::slots_at_once`), so applications that come
    /// and go share slots rather than leaving idle ones behind.
    pub fn vector_len(&self, cpus: u32) -> u32 {
        let on = |app: &App, c: u32| app.cores.as_ref().is_none_or(|l| l.contains(&c));
        let cores = self
            .apps
            .iter()
            .map(Spanned::get_ref)
            .flat_map(|a| a.cores.clone().unwrap_or_default())
            .chain(
                self.scheduler_env
                    .iter()
                    .flat_map(|e| e.get_ref().cores.clone().unwrap_or_default()),
            )
            .max()
            .map_or(1, |c| c + 1)
            .max(1);
        (0..cores.min(cpus).max(1))
            .map(|c| {
                // (time, change): starts (negative) before ends at equal times.
                let mut changes: Vec<(u64, i64)> = Vec::new();
                for a in self.apps.iter().map(Spanned::get_ref).filter(|a| on(a, c)) {
                    let slots = i64::from(self.most_slices(a));
                    changes.push((a.start_ms, -slots));
                    if let Some(stop) = a.stop_ms {
                        changes.push((stop.saturating_add(STOP_MARGIN_MS), slots));
                    }
                }
                if let Some(e) = &self.scheduler_env {
                    let e = e.get_ref();
                    if e.cores.as_ref().is_none_or(|l| l.contains(&c)) {
                        changes.push((0, -i64::from(e.slices)));
                    }
                }
                changes.sort_unstable();
                let mut held = 0i64;
                changes
                    .iter()
                    .map(|&(_, change)| {
                        held -= change;
                        held
                    })
                    .max()
                    .unwrap_or(0) as u32
            })
            .max()
            .unwrap_or(1)
            .max(1)
    }

    /// Each application's currencies as the figures value them (see
    /// [`App::currency_plan`]), for those that have any.
    pub fn currency_plans(&self) -> std::collections::BTreeMap<String, CurrencyPlan> {
        self.apps
            .iter()
            .map(Spanned::get_ref)
            .filter(|a| !a.currencies.is_empty())
            .map(|a| (a.name.clone(), a.currency_plan()))
            .collect()
    }

    /// Each application's capacity on `cpus` cores: how many of its
    /// threads can run at once, the number of cores it holds slots on (what
    /// its libOS computes, `libos::slices::capacity`).
    pub fn capacities(&self, cpus: u32) -> std::collections::BTreeMap<String, u32> {
        self.apps
            .iter()
            .map(Spanned::get_ref)
            .map(|a| {
                let cores = (0..cpus)
                    .filter(|c| a.cores.as_ref().is_none_or(|l| l.contains(c)))
                    .count() as u32;
                // A client of the scheduler environment holds no slots: it
                // runs wherever the environment donates, on up to as many
                // cores at once as that holds slots on (its libOS counts one,
                // `libos::slices::capacity`, but a thread still runs on one
                // core at a time and the application on several).
                let cores = match (&self.scheduler_env, a.slices) {
                    (Some(e), 0) => (0..cpus)
                        .filter(|c| e.get_ref().cores.as_ref().is_none_or(|l| l.contains(c)))
                        .count() as u32,
                    _ => cores,
                };
                (a.name.clone(), cores.max(1))
            })
            .collect()
    }

    /// Checks that the applications' threads fit in `memory_mib` of guest
    /// memory: each may take up to its frame quota's thread part (see
    /// [`FRAMES_PER_THREAD`]) beyond its image, all of them at once.
    pub fn check_memory(&self, memory_mib: u32) -> Result<(), String> {
        let apps = self.apps.iter().map(Spanned::get_ref);
        let need_mib: u64 = apps
            .clone()
            .map(|a| {
                let threads = (frame_quota(a) - DEFAULT_FRAME_QUOTA) as u64;
                threads * 4096 / (1 << 20) + IMAGE_MIB
            })
            .sum::<u64>()
            + MEMORY_RESERVED_MIB;
        if need_mib > u64::from(memory_mib) {
            let threads: u32 = apps.map(thread_count).sum();
            return Err(format!(
                "{threads} threads in {} applications need about {need_mib} MiB of guest memory \
                 ({FRAMES_PER_THREAD} frames a thread, {IMAGE_MIB} MiB an application, \
                 {MEMORY_RESERVED_MIB} MiB for the kernel), more than the {memory_mib} MiB \
                 the guest has: give it more (memory=<MiB>) or run fewer threads",
                self.apps.len()
            ));
        }
        Ok(())
    }

    /// Kernel command-line words for this scenario.
    pub fn cmdline(&self) -> Vec<String> {
        vec![
            format!("slice_us={}", self.slice_us),
            format!("grace_us={}", self.grace_us),
        ]
    }
}

#[cfg(test)]
mod tests;
