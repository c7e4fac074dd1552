//! Diagnostics: the core logs through [`tracing`] and never prints anything itself.
//!
//! A Rust program sees the records with any `tracing` subscriber it installs (targets
//! `license_backup::*`). A host that has no `tracing` of its own (a language binding) calls
//! [`install`] once with a [`LogSink`]: every record at or above the chosen level reaches the
//! sink as a plain [`LogRecord`] (level, target, message, fields), ready to hand to the host's
//! logging. Records below the level cost one comparison at the call site (`tracing`'s interest
//! cache), so an application that logs nothing pays nothing measurable.
//!
//! What is logged: operation start and end (with the outcome's code), a status callback that
//! failed (the END callback's failure at WARN), the service's CONNECTING/DISCONNECTING, retries
//! of a networked service, reservations settled from the restore journal, licenses refused by a
//! restore (counted), store and ledger errors. No record holds a content key, a wrapped key, a
//! data key, a token or any other secret: only counts, codes, paths, key IDs and messages.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, OnceLock, RwLock};

use tracing::field::{Field, Visit};
use tracing::metadata::LevelFilter;
use tracing::span::{Attributes, Id, Record};
use tracing::subscriber::Interest;
use tracing::{Event, Metadata, Subscriber};

/// How severe a record is, most severe first (the order of `tracing::Level`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum LogLevel {
    /// An operation or a store call failed; something needs attention.
    Error = 1,
    /// Something went wrong that the library handled (an END callback failed, a retry).
    Warn = 2,
    /// What a user would want in an application log: operations started and ended.
    Info = 3,
    /// Details for a developer: connections, journal settlements, counts.
    Debug = 4,
    /// Everything.
    Trace = 5,
}

impl LogLevel {
    /// The level's name in lower case: `"error"`, `"warn"`, `"info"`, `"debug"`, `"trace"`.
    pub const fn name(self) -> &'static str {
        match self {
            LogLevel::Error => "error",
            LogLevel::Warn => "warn",
            LogLevel::Info => "info",
            LogLevel::Debug => "debug",
            LogLevel::Trace => "trace",
        }
    }

    /// Looks a level up by its name (as [`LogLevel::name`] gives it; `"warning"` too).
    pub fn from_name(name: &str) -> Option<LogLevel> {
        Some(match name {
            "error" => LogLevel::Error,
            "warn" | "warning" => LogLevel::Warn,
            "info" => LogLevel::Info,
            "debug" => LogLevel::Debug,
            "trace" => LogLevel::Trace,
            _ => return None,
        })
    }

    fn from_tracing(level: &tracing::Level) -> LogLevel {
        match *level {
            tracing::Level::ERROR => LogLevel::Error,
            tracing::Level::WARN => LogLevel::Warn,
            tracing::Level::INFO => LogLevel::Info,
            tracing::Level::DEBUG => LogLevel::Debug,
            tracing::Level::TRACE => LogLevel::Trace,
        }
    }

    fn filter(self) -> LevelFilter {
        match self {
            LogLevel::Error => LevelFilter::ERROR,
            LogLevel::Warn => LevelFilter::WARN,
            LogLevel::Info => LevelFilter::INFO,
            LogLevel::Debug => LevelFilter::DEBUG,
            LogLevel::Trace => LevelFilter::TRACE,
        }
    }
}

/// One log record, as a host's logging takes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogRecord {
    /// How severe it is.
    pub level: LogLevel,
    /// Where it comes from: the core's module path, such as `license_backup::operation`.
    pub target: String,
    /// What happened, in a sentence.
    pub message: String,
    /// The structured values that go with it (`operation`, `code`, `licenses`, ...), in the
    /// order they were logged, each formatted as text.
    pub fields: Vec<(String, String)>,
}

/// Where [`install`] sends records. Called on the thread that logged (an operation's worker or
/// delivery thread, or the caller's): it must not block for long and must not call back into
/// the library.
pub trait LogSink: Send + Sync {
    /// Receives one record at or above the installed level.
    fn log(&self, record: LogRecord);
}

/// The installed sink and level, shared by every call of [`install`].
struct Installed {
    sink: RwLock<Option<Arc<dyn LogSink>>>,
    /// The most verbose level delivered, as `LogLevel as u8`; 0: none.
    max: AtomicU8,
}

static INSTALLED: OnceLock<Installed> = OnceLock::new();

/// Sends the core's records at `max_level` and above to `sink` (`None`: to nowhere), replacing
/// what an earlier call installed. The first call makes this the process's global `tracing`
/// subscriber; it fails with `INTERNAL` if the program already installed another one (a Rust
/// program that has its own subscriber sees the records there and needs no sink).
pub fn install(sink: Option<Arc<dyn LogSink>>, max_level: LogLevel) -> crate::Result<()> {
    let mut first = false;
    let installed = INSTALLED.get_or_init(|| {
        first = true;
        Installed { sink: RwLock::new(None), max: AtomicU8::new(0) }
    });
    let max = if sink.is_some() { max_level as u8 } else { 0 };
    *installed.sink.write().unwrap_or_else(|p| p.into_inner()) = sink;
    installed.max.store(max, Ordering::Release);
    if first {
        tracing::subscriber::set_global_default(Forwarder).map_err(|_| {
            crate::Error::internal("another tracing subscriber is installed: its records go there, not to this sink")
        })?;
    }
    // The call sites cached whether they are enabled: ask them again.
    tracing::callsite::rebuild_interest_cache();
    Ok(())
}

fn current_max() -> u8 {
    INSTALLED.get().map_or(0, |i| i.max.load(Ordering::Acquire))
}

fn filter_of(max: u8) -> LevelFilter {
    match max {
        1 => LogLevel::Error.filter(),
        2 => LogLevel::Warn.filter(),
        3 => LogLevel::Info.filter(),
        4 => LogLevel::Debug.filter(),
        5 => LogLevel::Trace.filter(),
        _ => LevelFilter::OFF,
    }
}

/// The `tracing` subscriber [`install`] sets: events of the core only, no spans.
struct Forwarder;

impl Forwarder {
    fn wants(metadata: &Metadata<'_>) -> bool {
        metadata.target().starts_with("license_backup")
            && (LogLevel::from_tracing(metadata.level()) as u8) <= current_max()
    }
}

impl Subscriber for Forwarder {
    fn register_callsite(&self, metadata: &'static Metadata<'static>) -> Interest {
        if !metadata.is_event() {
            return Interest::never();
        }
        if Self::wants(metadata) { Interest::always() } else { Interest::never() }
    }

    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.is_event() && Self::wants(metadata)
    }

    fn max_level_hint(&self) -> Option<LevelFilter> {
        Some(filter_of(current_max()))
    }

    fn new_span(&self, _: &Attributes<'_>) -> Id {
        Id::from_u64(1)
    }

    fn record(&self, _: &Id, _: &Record<'_>) {}

    fn record_follows_from(&self, _: &Id, _: &Id) {}

    fn event(&self, event: &Event<'_>) {
        let Some(installed) = INSTALLED.get() else { return };
        let Some(sink) = installed.sink.read().unwrap_or_else(|p| p.into_inner()).clone() else { return };
        let metadata = event.metadata();
        let mut visitor = Fields { message: String::new(), fields: Vec::new() };
        event.record(&mut visitor);
        sink.log(LogRecord {
            level: LogLevel::from_tracing(metadata.level()),
            target: metadata.target().to_string(),
            message: visitor.message,
            fields: visitor.fields,
        });
    }

    fn enter(&self, _: &Id) {}

    fn exit(&self, _: &Id) {}
}

/// Collects an event's message and fields as text.
struct Fields {
    message: String,
    fields: Vec<(String, String)>,
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message = value.to_string();
        } else {
            self.fields.push((field.name().to_string(), value.to_string()));
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.message = format!("{value:?}");
        } else {
            self.fields.push((field.name().to_string(), format!("{value:?}")));
        }
    }
}
