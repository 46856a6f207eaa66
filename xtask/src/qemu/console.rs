//! Watching QEMU's console: streaming it to the terminal and `console.log`
//! line by line, typing input into the serial port, and stopping QEMU on a
//! timeout or Ctrl-C.

use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::path::Path;
use std::process::Child;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

use super::live::Live;
use super::RunOptions;
use crate::Error;

/// The SIGINT flags [`install_interrupt_handler`] registers: (Ctrl-C was
/// pressed during a run, no run is being watched).
static SIGINT_FLAGS: OnceLock<(Arc<AtomicBool>, Arc<AtomicBool>)> = OnceLock::new();

/// Makes Ctrl-C during a run stop QEMU and still write the results (exit
/// "interrupted"). Outside a run (while building, say) Ctrl-C terminates as
/// usual. For the command-line runner; tests do not need it.
pub fn install_interrupt_handler() -> std::io::Result<()> {
    use signal_hook::{consts::SIGINT, flag};
    let pressed = Arc::new(AtomicBool::new(false));
    let outside_run = Arc::new(AtomicBool::new(true));
    flag::register_conditional_default(SIGINT, Arc::clone(&outside_run))?;
    flag::register(SIGINT, Arc::clone(&pressed))?;
    let _ = SIGINT_FLAGS.set((pressed, outside_run));
    Ok(())
}

pub(super) fn set_watching(on: bool) {
    if let Some((pressed, outside_run)) = SIGINT_FLAGS.get() {
        pressed.store(false, Ordering::SeqCst);
        outside_run.store(!on, Ordering::SeqCst);
    }
}

fn interrupted() -> bool {
    SIGINT_FLAGS
        .get()
        .is_some_and(|(pressed, _)| pressed.load(Ordering::SeqCst))
}

/// Asks QEMU to stop (SIGTERM, so it restores a terminal it put in raw
/// mode), then kills it if it has not ended within a second.
fn stop(child: &mut Child) {
    if let Ok(pid) = libc::pid_t::try_from(child.id()) {
        // SAFETY: kill(2) on our own child's pid (not yet reaped, so the pid
        // cannot have been reused); no memory is involved.
        unsafe { libc::kill(pid, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(1);
        while Instant::now() < deadline {
            if matches!(child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    let _ = child.kill();
}

/// Splits a byte stream into lines (without `\r`/`\n`), tolerating
/// non-UTF-8 bytes (a garbled console must not stop the capture).
#[derive(Default)]
pub struct LineSplitter {
    partial: Vec<u8>,
}

impl LineSplitter {
    /// Feeds `bytes`; returns the lines they completed.
    pub fn feed(&mut self, bytes: &[u8]) -> Vec<String> {
        let mut lines = Vec::new();
        for &b in bytes {
            if b == b'\n' {
                lines.push(Self::text(&std::mem::take(&mut self.partial)));
            } else {
                self.partial.push(b);
            }
        }
        lines
    }

    /// The unterminated last line, if any.
    pub fn finish(&mut self) -> Option<String> {
        (!self.partial.is_empty()).then(|| Self::text(&std::mem::take(&mut self.partial)))
    }

    fn text(bytes: &[u8]) -> String {
        String::from_utf8_lossy(bytes)
            .trim_end_matches('\r')
            .to_string()
    }
}

/// Types `input` into QEMU's serial port, each line at its time after the
/// kernel's boot record. Not after QEMU's start: a byte that arrives
/// before the kernel has set up the port is dropped when it resets the
/// UART's FIFOs, and QEMU, the firmware and the boot take from a fraction
/// of a second to seconds, by host load (a command typed 1.5 s after
/// QEMU started could lose its first letter).
pub(super) fn type_input(
    mut stdin: std::process::ChildStdin,
    input: Vec<(Duration, String)>,
    acks: ConsoleAcks,
) {
    std::thread::spawn(move || {
        acks.wait_booted();
        let started = Instant::now();
        for (at, line) in input {
            if let Some(wait) = at.checked_sub(started.elapsed()) {
                std::thread::sleep(wait);
            }
            if stdin
                .write_all(format!("{line}\r").as_bytes())
                .and_then(|()| stdin.flush())
                .is_err()
            {
                return;
            }
        }
        // Keep the pipe open (EOF is not a command) until QEMU goes.
        std::thread::sleep(Duration::from_secs(3600));
    });
}

/// Whether the kernel is up (its boot record: the serial port is set up,
/// so typed bytes are kept) and how many typed console commands have been
/// carried out, so piped input is sent a line at a time, each once the one
/// before has taken effect (the kernel's input ring holds 256 bytes, and a
/// `stop` must not overtake the `swap` before it).
#[derive(Clone, Default)]
pub(super) struct ConsoleAcks(Arc<(Mutex<AckState>, Condvar)>);

#[derive(Default)]
struct AckState {
    booted: bool,
    /// Typed commands carried out.
    done: u64,
    /// Typed commands forwarded to an application and not yet answered:
    /// (env, inbox sequence number).
    forwarded: std::collections::BTreeSet<(u64, u64)>,
}

impl ConsoleAcks {
    /// Takes one console line: the boot record, or a typed command's
    /// outcome (the kernel's `console` event, or for a command it forwarded
    /// to an application the application's reply).
    fn take(&self, line: &str) {
        let Some((kind, payload)) = abi::record::parse_record_line(line) else {
            return;
        };
        let wanted = match kind {
            abi::record::RecordKind::Boot => true,
            // Only typed commands (`source` `console`) answer typed lines:
            // the runner's script (`source` `script`) runs in the kernel on
            // its own clock, and counting its commands let a typed line go
            // before the one before it was carried out. Its forwarded
            // commands stay out of `forwarded`, so their replies are not
            // counted either.
            abi::record::RecordKind::Event => {
                payload.contains("\"event\":\"console\"")
                    && payload.contains("\"source\":\"console\"")
            }
            abi::record::RecordKind::User => payload.contains("\"what\":\"console\""),
            _ => false,
        };
        if !wanted {
            return;
        }
        let v: serde_json::Value = serde_json::from_str(payload).unwrap_or_default();
        let key = (
            v["env"].as_u64().unwrap_or(0),
            v["seq"].as_u64().unwrap_or(0),
        );
        let (state, cv) = &*self.0;
        let mut s = state.lock().unwrap_or_else(|e| e.into_inner());
        match kind {
            abi::record::RecordKind::Boot => s.booted = true,
            abi::record::RecordKind::Event if v["outcome"] == "forwarded" => {
                s.forwarded.insert(key);
            }
            abi::record::RecordKind::Event => s.done += 1,
            // Replies to what the kernel itself posted (its `list`) or the
            // script forwarded are not commands of ours.
            _ if s.forwarded.remove(&key) => s.done += 1,
            _ => return,
        }
        cv.notify_all();
    }

    /// Waits until the kernel is up, however long that takes (a thread
    /// that types input waits here; if QEMU ends first, it waits on
    /// unseen, as it would for its next line).
    fn wait_booted(&self) {
        let (state, cv) = &*self.0;
        let mut s = state.lock().unwrap_or_else(|e| e.into_inner());
        while !s.booted {
            s = cv.wait(s).unwrap_or_else(|e| e.into_inner());
        }
    }

    /// Waits until the kernel is up and more than `n` commands were
    /// carried out, or `limit` passed.
    fn wait_beyond(&self, n: Option<u64>, limit: Duration) {
        let (state, cv) = &*self.0;
        let guard = state.lock().unwrap_or_else(|e| e.into_inner());
        let _ = cv.wait_timeout_while(guard, limit, |s| {
            !s.booted || n.is_some_and(|n| s.done <= n)
        });
    }
}

/// Sends our own stdin (a terminal, a pipe or a file) to QEMU's serial port a line at a
/// time, once the kernel is up (however long its boot takes: a byte sent
/// before would be lost), each once the one before was carried out (or
/// after 10 s: a run without a console, say). Blank lines are skipped (the console
/// ignores them, so they would never be acknowledged). At the end of the
/// input the pipe stays open: end of input is not `quit`.
pub(super) fn forward_stdin(mut to: std::process::ChildStdin, acks: ConsoleAcks) {
    std::thread::spawn(move || {
        let mut sent = 0u64;
        for line in std::io::stdin().lines() {
            let Ok(line) = line else { break };
            let line = line.trim();
            if line.is_empty() {
                continue;
            }
            acks.wait_booted();
            acks.wait_beyond(sent.checked_sub(1), Duration::from_secs(10));
            if to
                .write_all(format!("{line}\r").as_bytes())
                .and_then(|()| to.flush())
                .is_err()
            {
                return;
            }
            sent += 1;
        }
        std::thread::sleep(Duration::from_secs(24 * 3600));
    });
}

/// What watching QEMU gave.
pub(super) struct Watched {
    pub(super) console: String,
    pub(super) status: Option<i32>,
    pub(super) timed_out: bool,
    pub(super) interrupted: bool,
    pub(super) stderr: String,
    pub(super) wall: Duration,
}

/// Streams QEMU's console (to the terminal when `stream`, always into
/// `console.log` and the returned text) until it ends, times out or is
/// interrupted.
pub(super) fn watch(
    mut child: Child,
    opts: &RunOptions,
    started: Instant,
    log_path: &Path,
    mut live: Option<&mut Live>,
    acks: &ConsoleAcks,
) -> Result<Watched, Error> {
    let mut log = BufWriter::new(File::create(log_path).map_err(Error::io(log_path))?);
    let (tx, rx) = mpsc::channel::<Vec<u8>>();
    let mut stdout = child.stdout.take().expect("piped stdout");
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = stdout.read(&mut buf) {
            if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                break;
            }
        }
    });
    let mut stderr = child.stderr.take().expect("piped stderr");
    let stderr_thread = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = stderr.read_to_end(&mut s);
        String::from_utf8_lossy(&s).into_owned()
    });

    let mut console = String::new();
    let mut lines = LineSplitter::default();
    let mut term = std::io::stdout();
    let by_line = live.is_some();
    let mut keep = |line: String, log: &mut BufWriter<File>| -> Result<(), Error> {
        writeln!(log, "{line}").map_err(Error::io(log_path))?;
        acks.take(&line);
        if let Some(live) = live.as_deref_mut() {
            live.line(&line);
        }
        console.push_str(&line);
        console.push('\n');
        Ok(())
    };
    let (mut timed_out, mut was_interrupted) = (false, false);
    loop {
        match rx.recv_timeout(Duration::from_millis(50)) {
            Ok(chunk) => {
                // A scenario's samples go to the live table, not the
                // terminal: there the console is shown line by line without
                // the records.
                if opts.stream && !by_line {
                    let _ = term.write_all(&chunk);
                    let _ = term.flush();
                }
                for line in lines.feed(&chunk) {
                    if opts.stream && by_line && !line.starts_with(abi::record::RECORD_PREFIX) {
                        let _ = writeln!(term, "{line}");
                    }
                    keep(line, &mut log)?;
                }
                log.flush().map_err(Error::io(log_path))?;
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
            Err(mpsc::RecvTimeoutError::Timeout) => {}
        }
        if !opts.timeout.is_zero() && started.elapsed() > opts.timeout {
            timed_out = true;
            stop(&mut child);
            break;
        }
        if interrupted() {
            was_interrupted = true;
            stop(&mut child);
            break;
        }
    }
    // QEMU closed its console (it is exiting) or was stopped: reap it, but
    // never hang on one that lingers.
    let deadline = Instant::now() + Duration::from_secs(5);
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(10)),
            Ok(None) => {
                stop(&mut child);
                break child.wait().ok();
            }
            Err(_) => break None,
        }
    };
    let wall = started.elapsed();
    // Whatever QEMU printed before it went.
    while let Ok(chunk) = rx.recv_timeout(Duration::from_millis(100)) {
        for line in lines.feed(&chunk) {
            keep(line, &mut log)?;
        }
    }
    if let Some(line) = lines.finish() {
        keep(line, &mut log)?;
    }
    log.flush().map_err(Error::io(log_path))?;
    was_interrupted |= interrupted();
    Ok(Watched {
        console,
        status: status.and_then(|s| s.code()),
        timed_out,
        interrupted: was_interrupted,
        stderr: stderr_thread.join().unwrap_or_default(),
        wall,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn console_lines_survive_chunking_and_bad_bytes() {
        let mut l = LineSplitter::default();
        assert!(l.feed(b"@@exo bo").is_empty());
        assert_eq!(l.feed(b"ot {}\r\n[c1 "), vec!["@@exo boot {}"]);
        assert_eq!(
            l.feed(b"\xff\xfeok\n\n"),
            vec!["[c1 \u{fffd}\u{fffd}ok", ""]
        );
        assert_eq!(l.feed(b"tail"), Vec::<String>::new());
        assert_eq!(l.finish().as_deref(), Some("tail"));
        assert_eq!(l.finish(), None);
    }

    /// Typed commands carried out so far, as the forwarding thread counts.
    fn typed_done(acks: &ConsoleAcks) -> u64 {
        acks.0 .0.lock().unwrap().done
    }

    /// The kernel's record of one console command, typed (`console`) or
    /// from the runner's `script`; `seq` when forwarded to an application.
    fn command(line: &str, source: &str, seq: Option<u64>) -> String {
        let (outcome, seq) = match seq {
            Some(n) => ("forwarded", format!(",\"seq\":{n}")),
            None => ("ok", String::new()),
        };
        format!(
            r#"@@exo event {{"event":"console","env":4,"core":0,"t_ns":1,"command":"{line}","outcome":"{outcome}","source":"{source}"{seq}}}"#
        )
    }

    /// An application's reply to the forwarded message `seq` (it does not
    /// know who sent it: its `source` is always `console`).
    fn reply(seq: u64) -> String {
        format!(
            r#"@@exo user {{"env":4,"name":"a","core":1,"kind":"app_event","t_ns":2,"what":"console","thread":0,"seq":{seq},"detail":"swap rr","outcome":"ok","source":"console"}}"#
        )
    }

    #[test]
    fn only_typed_commands_acknowledge_typed_lines() {
        let acks = ConsoleAcks::default();
        acks.take(r#"@@exo boot {"cpus_online":2}"#);
        // The script's commands run in the kernel on their own schedule:
        // carried out here, or forwarded and answered, they are no answer
        // to a line typed meanwhile.
        acks.take(&command("window 5", "script", None));
        acks.take(&command("swap a rr", "script", Some(0)));
        acks.take(&reply(0));
        assert_eq!(typed_done(&acks), 0, "the script acknowledged typed lines");
        // A typed `swap` counts once its application has answered.
        acks.take(&command("swap a stride", "console", Some(1)));
        acks.take(&command("stop b", "script", None));
        assert_eq!(typed_done(&acks), 0);
        acks.take(&reply(1));
        assert_eq!(typed_done(&acks), 1);
        // One the kernel carries out itself counts at once.
        acks.take(&command("list", "console", None));
        assert_eq!(typed_done(&acks), 2);
    }
}
