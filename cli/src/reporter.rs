//! The status callback of a backup or restore: a progress bar and lines for people, JSON lines
//! for scripts.

use std::io::Write;
use std::sync::Mutex;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressState, ProgressStyle};
use license_backup::{CallbackError, Emitted, OperationKind, Outcome, StatusCallback, StatusEvent, monotonic_ns};

use crate::ui::{Paint, Ui, printable, quoted};

/// Reports the events of one operation.
pub struct Reporter {
    ui: Ui,
    bar: Option<ProgressBar>,
    refused: Mutex<bool>,
}

/// Licenses a second, from the bar's position and elapsed time: steady, unlike an estimate
/// from the last few updates when PROGRESS comes every N licenses.
fn rate(state: &ProgressState, w: &mut dyn std::fmt::Write) {
    let secs = state.elapsed().as_secs_f64();
    if secs > 0.0 && state.pos() > 0 {
        let _ = write!(w, "{} licenses/s", grouped((state.pos() as f64 / secs) as u64));
    }
}

/// `1234567` as `1,234,567`.
pub fn grouped(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

impl Reporter {
    /// A reporter for `operation`; with a bar (a spinner showing `status` until the first
    /// PROGRESS) when the settings allow one.
    pub fn new(ui: &Ui, operation: OperationKind, status: &str) -> Reporter {
        let bar = ui.bar.then(|| {
            let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
            let prefix = if ui.color_err() { "{prefix:.bold}" } else { "{prefix}" };
            let style = ProgressStyle::with_template(&format!("{{spinner}} {prefix} {{msg}}"))
                .expect("a valid template")
                .tick_chars("⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏ ");
            bar.set_style(style);
            bar.set_prefix(operation.name());
            bar.set_message(status.to_string());
            bar.enable_steady_tick(Duration::from_millis(100));
            bar
        });
        Reporter { ui: ui.clone(), bar, refused: Mutex::new(false) }
    }

    /// Whether the service refused the operation (a REFUSED event was delivered).
    pub fn refused(&self) -> bool {
        *self.refused.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Prints a notice on standard error, above the bar if one is drawn.
    pub fn notice(&self, text: &str) {
        match &self.bar {
            Some(bar) if !bar.is_hidden() => bar.println(text),
            _ => Ui::eprint(text),
        }
    }

    fn switch_to_bar(&self, bar: &ProgressBar, total: u64) {
        if bar.length().is_some() {
            return;
        }
        let (prefix, fill) =
            if self.ui.color_err() { ("{prefix:.bold}", "{bar:30.cyan/blue}") } else { ("{prefix}", "{bar:30}") };
        let template = format!("{prefix} [{fill}] {{human_pos}}/{{human_len}} licenses  {{rate}}  {{elapsed}}");
        let style = ProgressStyle::with_template(&template)
            .expect("a valid template")
            .with_key("rate", rate)
            .progress_chars("=> ");
        bar.disable_steady_tick();
        bar.set_style(style);
        bar.set_length(total);
        bar.reset_elapsed();
    }

    /// Writes a line for people on standard output, around the bar when both share the
    /// terminal.
    fn say(&self, text: &str) -> std::io::Result<()> {
        let write = || {
            let mut out = std::io::stdout().lock();
            writeln!(out, "{text}")?;
            out.flush()
        };
        match &self.bar {
            Some(bar) if self.ui.stdout_is_terminal && !bar.is_hidden() => bar.suspend(write),
            _ => write(),
        }
    }

    fn human(&self, event: &StatusEvent) -> std::io::Result<()> {
        let ui = &self.ui;
        if let Some(bar) = &self.bar {
            match event {
                StatusEvent::Connecting => bar.set_message("connecting to the License Management Service"),
                StatusEvent::Disconnecting => bar.set_message("the service answered"),
                StatusEvent::Begin { operation: OperationKind::Backup } => bar.set_message("backing up"),
                StatusEvent::Begin { operation: OperationKind::Restore } => bar.set_message("restoring"),
                StatusEvent::Progress { done, total, .. } => {
                    self.switch_to_bar(bar, *total);
                    bar.set_position(*done);
                }
                _ => {}
            }
        }
        match event {
            StatusEvent::RestrictedLicense { key_id, title } => {
                let what = title.as_deref().map_or_else(|| "(no title in the catalog)".to_string(), quoted);
                let tag = ui.out("RESTRICTED_LICENSE", Paint::Warn);
                self.say(&format!("{tag} {key_id} {what} may not be backed up: its owner does not allow it"))?;
            }
            StatusEvent::Refused { code, message, url } => {
                let tag = ui.out("REFUSED", Paint::Warn);
                self.say(&format!("{tag} {code}: {} (see {})", printable(message), printable(url)))?;
            }
            _ if ui.verbose => self.say(&verbose_line(event))?,
            _ => {}
        }
        if let StatusEvent::End { outcome, .. } = event {
            if let Some(bar) = &self.bar {
                // A finished bar stays, as the last state of a failed one; a spinner goes.
                match (outcome, bar.length()) {
                    (_, None) => bar.finish_and_clear(),
                    (Outcome::Completed(_), Some(_)) => bar.finish(),
                    (Outcome::Failed(_), Some(_)) => bar.abandon(),
                }
            }
        }
        Ok(())
    }

    fn report(&self, event: &StatusEvent, emitted_ns: u64) -> Result<(), CallbackError> {
        if matches!(event, StatusEvent::Refused { .. }) {
            *self.refused.lock().unwrap_or_else(|p| p.into_inner()) = true;
        }
        let written = if self.ui.json {
            let mut out = std::io::stdout().lock();
            writeln!(out, "{}", crate::json::event(event, emitted_ns)).and_then(|()| out.flush())
        } else {
            self.human(event)
        };
        written.map_err(|e| CallbackError::new(format!("cannot write to standard output: {e}")))
    }
}

/// Every event as a line, for `--verbose`.
fn verbose_line(event: &StatusEvent) -> String {
    match event {
        StatusEvent::Begin { operation } => format!("BEGIN {}", operation.name()),
        StatusEvent::Progress { done, total, .. } => format!("PROGRESS {done}/{total}"),
        StatusEvent::End { operation, outcome: Outcome::Completed(s) } => format!(
            "END {}: {} licenses, {} restricted, {} skipped, {} bytes, {} ms",
            operation.name(),
            s.licenses,
            s.restricted,
            s.skipped,
            s.bytes,
            s.duration_ms
        ),
        StatusEvent::End { operation, outcome: Outcome::Failed(e) } => {
            format!("END {} failed: {}: {}", operation.name(), e.code(), printable(e.message()))
        }
        // Printed by `human` in every mode.
        StatusEvent::RestrictedLicense { .. } | StatusEvent::Refused { .. } => String::new(),
        // Every other kind (CONNECTING, DISCONNECTING, ...): its name and its fields.
        other => {
            let fields: Vec<String> = other
                .surface_values()
                .iter()
                .map(|(name, value)| format!(" {name}={}", crate::json::field_value(value)))
                .collect();
            format!("{}{}", other.kind().name().to_uppercase(), fields.concat())
        }
    }
}

impl StatusCallback for Reporter {
    fn on_status(&self, event: &StatusEvent) -> Result<(), CallbackError> {
        self.report(event, monotonic_ns())
    }

    fn on_status_batch(&self, batch: &[Emitted], stop: &dyn Fn() -> bool) -> Result<(), CallbackError> {
        for emitted in batch {
            self.report(&emitted.event, emitted.emitted_ns)?;
            if stop() {
                break;
            }
        }
        Ok(())
    }
}
