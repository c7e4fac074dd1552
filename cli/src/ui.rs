//! How the tool talks: for people (lines, colours and a progress bar, only on a terminal) or
//! for scripts (`--json`: one JSON object a line on standard output).
//!
//! Standard output carries results (license lines, summaries, JSON); standard error carries
//! errors, notices and the progress bar.

use std::io::{IsTerminal, Write};

use serde_json::Value;

use crate::args::{ColorChoice, OutputArgs};
use crate::exit::Failure;

/// A colour or weight for a piece of text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Paint {
    /// Errors.
    Error,
    /// Warnings: restricted licenses, refusals, cancels.
    Warn,
    /// A successful summary.
    Good,
    /// Labels and codes.
    Bold,
    /// Hints and secondary text.
    Dim,
}

impl Paint {
    fn sgr(self) -> &'static str {
        match self {
            Paint::Error => "1;31",
            Paint::Warn => "33",
            Paint::Good => "32",
            Paint::Bold => "1",
            Paint::Dim => "2",
        }
    }
}

/// The output settings of this run.
#[derive(Clone, Debug)]
pub struct Ui {
    /// `--json`: events and the summary as JSON lines, nothing else on standard output.
    pub json: bool,
    /// `--verbose`: every event as a line.
    pub verbose: bool,
    /// Draw a progress bar: standard error is a terminal, no `--json`, no `--no-progress`.
    pub bar: bool,
    /// Standard output is a terminal (lines printed while the bar is drawn go around it).
    pub stdout_is_terminal: bool,
    color_out: bool,
    color_err: bool,
}

/// Whether colours are wanted on a stream: `always`, `never`, or on a terminal unless
/// `NO_COLOR` is set to a non-empty value (no-color.org) or the terminal is dumb.
fn colors(choice: ColorChoice, is_terminal: bool) -> bool {
    match choice {
        ColorChoice::Always => true,
        ColorChoice::Never => false,
        ColorChoice::Auto => {
            is_terminal
                && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
                && std::env::var_os("TERM").is_none_or(|t| t != "dumb")
        }
    }
}

impl Ui {
    /// The settings for these options and the streams this process has.
    pub fn new(args: &OutputArgs) -> Ui {
        let (out, err) = (std::io::stdout().is_terminal(), std::io::stderr().is_terminal());
        Ui {
            json: args.json,
            verbose: args.verbose && !args.json,
            bar: err && !args.json && !args.no_progress,
            stdout_is_terminal: out,
            color_out: colors(args.color, out),
            color_err: colors(args.color, err),
        }
    }

    /// Whether colours are used on standard error (the bar's stream).
    pub fn color_err(&self) -> bool {
        self.color_err
    }

    /// `text` painted for standard output.
    pub fn out(&self, text: &str, paint: Paint) -> String {
        painted(text, paint, self.color_out)
    }

    /// `text` painted for standard error.
    pub fn err(&self, text: &str, paint: Paint) -> String {
        painted(text, paint, self.color_err)
    }

    /// Prints a line for people on standard output (nothing with `--json`). A closed output
    /// (`| head`) is not an error here: the command goes on and its exit code says how it ended.
    pub fn line(&self, text: &str) {
        if !self.json {
            let _ = writeln!(std::io::stdout().lock(), "{text}");
        }
    }

    /// Prints a JSON object as one line on standard output (only with `--json`).
    pub fn json_line(&self, value: &Value) {
        if self.json {
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{value}");
            let _ = out.flush();
        }
    }

    /// Prints a line on standard error.
    pub fn eprint(text: &str) {
        let _ = writeln!(std::io::stderr().lock(), "{text}");
    }

    /// The one line that reports a failure on standard error: code, message, hint.
    pub fn error_line(&self, failure: &Failure) -> String {
        let mut line = format!(
            "{} {}: {}",
            self.err("error:", Paint::Error),
            self.err(failure.code.name(), Paint::Bold),
            printable(&failure.message)
        );
        if let Some(hint) = &failure.hint {
            line.push_str(&format!(" {}", self.err(&format!("({hint})"), Paint::Dim)));
        }
        line
    }
}

fn painted(text: &str, paint: Paint, on: bool) -> String {
    if on { format!("\x1b[{}m{text}\x1b[0m", paint.sgr()) } else { text.to_string() }
}

/// `text` with control characters escaped, so text from a store, an archive or a service (a
/// title, a refusal message) cannot move the cursor or recolour a terminal.
pub fn printable(text: &str) -> String {
    if !text.chars().any(char::is_control) {
        return text.to_string();
    }
    text.chars().map(|c| if c.is_control() { c.escape_default().to_string() } else { c.to_string() }).collect()
}

/// A quoted, printable title.
pub fn quoted(text: &str) -> String {
    format!("\"{}\"", printable(text))
}

/// 16 bytes as 32 lowercase hex digits (the form of `LicenseStore::device_id`).
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A byte count for people: `812 bytes`, `12.3 KiB`, `4.0 MiB`.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if n < 1024 {
        return format!("{n} bytes");
    }
    let mut v = n as f64 / 1024.0;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.1} {}", UNITS[unit])
}

/// Seconds since the Unix epoch as `2024-05-01 12:00:00 UTC`.
pub fn utc(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC", rem / 3600, rem % 3600 / 60, rem % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_bytes_and_control_characters() {
        assert_eq!(utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc(1_700_000_000), "2023-11-14 22:13:20 UTC");
        assert_eq!(utc(951_782_400), "2000-02-29 00:00:00 UTC");
        assert_eq!(utc(-1), "1969-12-31 23:59:59 UTC");
        assert_eq!(bytes(812), "812 bytes");
        assert_eq!(bytes(12_595), "12.3 KiB");
        assert_eq!(bytes(4 << 20), "4.0 MiB");
        assert_eq!(printable("Blue in Green"), "Blue in Green");
        assert_eq!(printable("evil\x1b[2Jtitle\n"), "evil\\u{1b}[2Jtitle\\n");
        assert_eq!(quoted("Café"), "\"Café\"");
    }
}
