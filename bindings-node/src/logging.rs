//! The core's diagnostics into JavaScript: each record is posted to the main thread through a
//! weak thread-safe function (it never keeps Node alive, never blocks the thread that logged)
//! and handed to the function `logging.js` registered, which calls the application's logger.

use std::sync::Arc;

use license_backup::diagnostics::{self, LogLevel, LogRecord, LogSink};
use napi::Status;
use napi::bindgen_prelude::Function;
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi_derive::napi;

use crate::{Result, invalid, js_error};

/// One record of the core's log, as `setLogger`'s logger receives it.
#[napi(object)]
pub struct NativeLogRecord {
    /// `"error"`, `"warn"`, `"info"`, `"debug"` or `"trace"`.
    pub level: String,
    /// The core module that logged it (`license_backup::operation`).
    pub target: String,
    /// What happened.
    pub message: String,
    /// The record's structured values, as `[name, value]` pairs of text, in logging order.
    pub fields: Vec<Vec<String>>,
}

/// Weak: a logger never keeps Node alive.
type LogThreadsafe = ThreadsafeFunction<NativeLogRecord, (), NativeLogRecord, Status, false, true>;

struct JsSink(LogThreadsafe);

impl LogSink for JsSink {
    fn log(&self, record: LogRecord) {
        let LogRecord { level, target, message, fields } = record;
        let fields = fields.into_iter().map(|(k, v)| vec![k, v]).collect();
        // Never blocks the thread that logged; a record posted while Node exits is dropped.
        let _ = self.0.call(
            NativeLogRecord { level: level.name().to_string(), target, message, fields },
            ThreadsafeFunctionCallMode::NonBlocking,
        );
    }
}

/// Sends the core's records at `level` and above to `callback` on the main thread (`null`:
/// nowhere). For `setLogger` in `logging.js`.
#[napi(ts_args_type = "callback: ((record: NativeLogRecord) => void) | null, level: string")]
pub fn set_log_sink(callback: Option<Function<'_, NativeLogRecord, ()>>, level: String) -> Result<()> {
    let level = LogLevel::from_name(&level).ok_or_else(|| invalid(format!("unknown log level {level:?}")))?;
    let sink = match callback {
        None => None,
        Some(f) => {
            let tsfn: LogThreadsafe = f
                .build_threadsafe_function::<NativeLogRecord>()
                .weak::<true>()
                .build()
                .map_err(|e| invalid(e.reason.clone()))?;
            Some(Arc::new(JsSink(tsfn)) as Arc<dyn LogSink>)
        }
    };
    diagnostics::install(sink, level).map_err(js_error)
}
