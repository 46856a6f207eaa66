//! A console script: commands typed into a scenario run's console at given
//! times, for experiments that must be repeatable (`console=<file>`).
//!
//! The runner validates the user's file and hands it to the kernel as the
//! boot module `console`; the kernel runs each command at its time on the
//! run's own clock (virtual time in a deterministic run, so a scripted
//! session is as repeatable as the rest of the run), exactly as if it had
//! been typed, and records it as a `console` event with `source` `script`.
//!
//! ```text
//! # comment; blank lines are ignored
//! <t_ms> <command>      e.g. `1500 swap demo lottery`, `2000 tickets demo t300 5`
//! ```
//! `t_ms` is milliseconds since the run started; times never decrease. A
//! command is what the console takes (`help` lists them), at most
//! [`MAX_COMMAND`] printable ASCII bytes.

use core::fmt;

/// Longest command (the console's own line limit).
pub const MAX_COMMAND: usize = 200;

/// Why a script was rejected, with its 1-based line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ScriptError {
    pub line: usize,
    pub what: &'static str,
}

impl fmt::Display for ScriptError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "console script line {}: {}", self.line, self.what)
    }
}

/// A validated script.
#[derive(Clone, Copy, Debug)]
pub struct Script<'a> {
    text: &'a str,
}

/// One line: `None` for blank lines and comments.
fn line(text: &str) -> Result<Option<(u64, &str)>, &'static str> {
    let text = text.trim();
    if text.is_empty() || text.starts_with('#') {
        return Ok(None);
    }
    let (t, command) = text
        .split_once(char::is_whitespace)
        .ok_or("a line is `<t_ms> <command>`")?;
    let t = t
        .parse::<u64>()
        .map_err(|_| "the time must be whole milliseconds")?;
    let command = command.trim();
    if command.len() > MAX_COMMAND {
        return Err("command longer than 200 bytes");
    }
    if !command.bytes().all(|b| b == b' ' || b.is_ascii_graphic()) {
        return Err("a command is printable ASCII");
    }
    Ok(Some((t, command)))
}

impl<'a> Script<'a> {
    /// Validates every line of `text`.
    pub fn parse(text: &'a str) -> Result<Script<'a>, ScriptError> {
        let mut last = 0;
        for (i, l) in text.lines().enumerate() {
            let err = |what| ScriptError { line: i + 1, what };
            if let Some((t, _)) = line(l).map_err(err)? {
                if t < last {
                    return Err(err("times must not decrease"));
                }
                last = t;
            }
        }
        Ok(Script { text })
    }

    /// The commands in order: `(t_ms, command)`.
    pub fn commands(&self) -> impl Iterator<Item = (u64, &'a str)> + 'a {
        self.text.lines().filter_map(|l| line(l).ok().flatten())
    }

    /// How many commands.
    pub fn len(&self) -> usize {
        self.commands().count()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Writes one script line (the runner's side).
pub fn write_command(out: &mut impl fmt::Write, t_ms: u64, command: &str) -> fmt::Result {
    writeln!(out, "{t_ms} {}", command.trim())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_come_back_as_written() {
        let cmds = [
            (0, "list"),
            (1500, "swap demo lottery"),
            (1500, "tickets demo t300 5"),
            (2000, "stop demo"),
        ];
        let mut text = String::from("# a session\n\n");
        for (t, c) in cmds {
            write_command(&mut text, t, c).unwrap();
        }
        let s = Script::parse(&text).unwrap();
        assert_eq!(s.commands().collect::<Vec<_>>(), cmds);
        assert_eq!(s.len(), 4);
    }

    #[test]
    fn comments_blank_lines_and_spacing_are_ignored() {
        let s = Script::parse("  # hi\n\n  10   swap demo rr  \n20\tquit\n").unwrap();
        assert_eq!(
            s.commands().collect::<Vec<_>>(),
            [(10, "swap demo rr"), (20, "quit")]
        );
        assert!(Script::parse("").unwrap().is_empty());
    }

    #[test]
    fn bad_lines_are_rejected_by_number() {
        let bad = |text: &str, line: usize| {
            assert_eq!(Script::parse(text).unwrap_err().line, line, "{text:?}")
        };
        bad("list\n", 1);
        bad("10 list\nsoon swap demo rr\n", 2);
        bad("10 list\n5 list\n", 2);
        bad("-1 list\n", 1);
        bad("10\n", 1);
        bad(&format!("1 {}\n", "x".repeat(201)), 1);
        bad("1 swap d\u{e9}mo rr\n", 1);
        assert!(Script::parse(&format!("1 {}\n", "x".repeat(200))).is_ok());
    }
}
