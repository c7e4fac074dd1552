//! The core's diagnostics into Swift: each record is handed to a foreign [`RawLogSink`] on the
//! thread that logged it. The Swift overlay (`Sources/LicenseBackup/Logging.swift`) implements
//! the sink over the application's handler.

use std::sync::Arc;

use license_backup::diagnostics::{self, LogLevel, LogRecord, LogSink};

use crate::{FfiResult, guarded};

/// How severe a record is, most severe first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, uniffi::Enum)]
pub enum RawLogLevel {
    /// Something failed.
    Error,
    /// Something went wrong that the library handled.
    Warn,
    /// Operations started and ended.
    Info,
    /// Details for a developer.
    Debug,
    /// Everything.
    Trace,
}

impl RawLogLevel {
    fn to_core(self) -> LogLevel {
        match self {
            RawLogLevel::Error => LogLevel::Error,
            RawLogLevel::Warn => LogLevel::Warn,
            RawLogLevel::Info => LogLevel::Info,
            RawLogLevel::Debug => LogLevel::Debug,
            RawLogLevel::Trace => LogLevel::Trace,
        }
    }

    fn from_core(level: LogLevel) -> Self {
        match level {
            LogLevel::Error => RawLogLevel::Error,
            LogLevel::Warn => RawLogLevel::Warn,
            LogLevel::Info => RawLogLevel::Info,
            LogLevel::Debug => RawLogLevel::Debug,
            LogLevel::Trace => RawLogLevel::Trace,
        }
    }
}

/// One structured value of a record.
#[derive(Clone, Debug, PartialEq, Eq, uniffi::Record)]
pub struct RawLogField {
    /// Its name (`operation`, `outcome`, `licenses`, ...).
    pub name: String,
    /// Its value, as text.
    pub value: String,
}

/// One record of the core's log.
#[derive(Clone, Debug, PartialEq, Eq, uniffi::Record)]
pub struct RawLogRecord {
    /// How severe it is.
    pub level: RawLogLevel,
    /// The core module that logged it (`license_backup::operation`).
    pub target: String,
    /// What happened.
    pub message: String,
    /// Its structured values, in logging order.
    pub fields: Vec<RawLogField>,
}

/// Receives the core's records, on the thread that logged them.
#[uniffi::export(foreign)]
pub trait RawLogSink: Send + Sync {
    /// Called with one record at or above the installed level.
    fn log(&self, record: RawLogRecord);
}

struct ForeignSink(Arc<dyn RawLogSink>);

impl LogSink for ForeignSink {
    fn log(&self, record: LogRecord) {
        let LogRecord { level, target, message, fields } = record;
        let fields = fields.into_iter().map(|(name, value)| RawLogField { name, value }).collect();
        // A handler that traps is the host's; nothing the core does depends on it returning.
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            self.0.log(RawLogRecord { level: RawLogLevel::from_core(level), target, message, fields })
        }));
    }
}

/// Sends the core's records at `level` and above to `sink` (`nil`: nowhere).
#[uniffi::export]
pub fn set_raw_log_sink(sink: Option<Arc<dyn RawLogSink>>, level: RawLogLevel) -> FfiResult<()> {
    guarded(|| {
        let sink = sink.map(|s| Arc::new(ForeignSink(s)) as Arc<dyn LogSink>);
        Ok(diagnostics::install(sink, level.to_core())?)
    })
}
