//! Status events, delivered to a [`StatusCallback`] while an operation runs, mirroring
//! `IWMStatusCallback::OnStatus`.

use crate::error::{Error, ErrorCode};
use crate::interface::{self, Field, Type};
use crate::key_id::KeyId;

/// Which operation an event belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OperationKind {
    /// `backup_licenses`.
    Backup,
    /// `restore_licenses`.
    Restore,
}

impl OperationKind {
    /// `"backup"` or `"restore"`.
    pub const fn name(self) -> &'static str {
        match self {
            OperationKind::Backup => "backup",
            OperationKind::Restore => "restore",
        }
    }
}

/// What a finished operation did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    /// Licenses written to the archive (backup) or added to the store (restore).
    pub licenses: u64,
    /// Licenses a backup left out because their owner forbids backup.
    pub restricted: u64,
    /// Archived licenses a restore did not apply because the device already had them.
    pub skipped: u64,
    /// Archive bytes written (backup) or read (restore).
    pub bytes: u64,
    /// Wall time of the operation, in milliseconds.
    pub duration_ms: u64,
}

/// How an operation ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// It completed; a restore that skipped licenses the device already had is still complete.
    Completed(Summary),
    /// It failed or was cancelled (`CANCELLED`); nothing was lost.
    Failed(Error),
}

impl Outcome {
    /// The summary, or the error.
    pub fn into_result(self) -> Result<Summary, Error> {
        match self {
            Outcome::Completed(s) => Ok(s),
            Outcome::Failed(e) => Err(e),
        }
    }

    /// The error code, if the operation failed.
    pub fn error_code(&self) -> Option<ErrorCode> {
        match self {
            Outcome::Completed(_) => None,
            Outcome::Failed(e) => Some(e.code()),
        }
    }
}

/// A status event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StatusEvent {
    /// The operation's work begins (for a restore: after the service has answered).
    Begin {
        /// The operation.
        operation: OperationKind,
    },
    /// `done` of `total` licenses processed. Sent every `ProgressInterval` licenses and once
    /// at `total`/`total`, so a given store and settings always give the same sequence.
    Progress {
        /// The operation.
        operation: OperationKind,
        /// Licenses processed so far.
        done: u64,
        /// Licenses to process in all.
        total: u64,
    },
    /// A license was not backed up because its content owner did not grant the right.
    RestrictedLicense {
        /// The license's key ID.
        key_id: KeyId,
        /// The title from the application's catalog, when it has one.
        title: Option<String>,
    },
    /// A restore is connecting to the License Management Service.
    Connecting,
    /// The service has answered; the restore disconnects from it.
    Disconnecting,
    /// The service refused the restore; `url` is a page the application can show.
    Refused {
        /// Why, as a stable code (`RESTORE_LIMIT_EXCEEDED`, ...).
        code: ErrorCode,
        /// A human-readable reason.
        message: String,
        /// Where the user can learn more or act.
        url: String,
    },
    /// The operation ended. Always the last event, exactly once per operation.
    End {
        /// The operation.
        operation: OperationKind,
        /// The outcome.
        outcome: Outcome,
    },
}

macro_rules! event_kinds {
    ($(
        $(#[$doc:meta])*
        $variant:ident = $name:literal, $desc:literal,
        { $( $field:ident : $fty:expr, $fdoc:literal; )* }
        [ $( $nfield:literal : $nty:literal ),* ];
    )*) => {
        /// The kind of a [`StatusEvent`], without its data.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum EventKind {
            $( #[doc = $desc] $variant, )*
        }

        impl EventKind {
            /// Every kind of event.
            pub const ALL: &'static [EventKind] = &[ $( EventKind::$variant, )* ];

            /// The event's name in the normalized form (`"restricted_license"`).
            pub const fn name(self) -> &'static str {
                match self { $( EventKind::$variant => $name, )* }
            }

            /// What the event means.
            pub const fn description(self) -> &'static str {
                match self { $( EventKind::$variant => $desc, )* }
            }

            /// The event's fields as the bindings present them, with their types and
            /// documentation, in order: the fields of its [`StatusEvent`] variant.
            pub const fn surface(self) -> &'static [Field] {
                match self {
                    $( EventKind::$variant => {
                        const FIELDS: &[Field] = &[ $( Field::new(stringify!($field), $fty, $fdoc), )* ];
                        FIELDS
                    } )*
                }
            }

            /// The fields of the event's normalized form, with their types, in order
            /// (the `event` field itself excluded).
            pub const fn fields(self) -> &'static [(&'static str, &'static str)] {
                match self { $( EventKind::$variant => &[ $( ($nfield, $nty), )* ], )* }
            }
        }

        impl StatusEvent {
            /// The kind of this event.
            pub fn kind(&self) -> EventKind {
                match self { $( StatusEvent::$variant { .. } => EventKind::$variant, )* }
            }

            /// The event's fields as values, named and in the order of
            /// [`EventKind::surface`]: for consumers that handle every kind alike (logs,
            /// conformance runners).
            pub fn surface_values(&self) -> Vec<(&'static str, FieldValue<'_>)> {
                match self {
                    $( StatusEvent::$variant { $( $field ),* } => vec![ $( (stringify!($field), FieldValue::from($field)), )* ], )*
                }
            }
        }

        /// Fails to compile unless every variant of [`StatusEvent`] is listed with exactly its
        /// fields, so the surface the bindings are generated from is the enum's.
        #[allow(dead_code)]
        fn surface_lists_every_field(event: &StatusEvent) {
            match event { $( StatusEvent::$variant { $( $field: _ ),* } => {} )* }
        }
    };
}

event_kinds! {
    Begin = "begin", "The operation's work begins (for a restore: after the service has answered).",
        { operation: Type::OperationKind, "The operation."; }
        ["operation": "operation"];
    Progress = "progress", "done of total licenses processed (every ProgressInterval licenses, and at the end).",
        {
            operation: Type::OperationKind, "The operation.";
            done: interface::COUNT, "Licenses processed so far.";
            total: interface::COUNT, "Licenses to process in all.";
        }
        ["operation": "operation", "done": "u64", "total": "u64"];
    RestrictedLicense = "restricted_license", "A license that may not be backed up: its content owner did not grant the right.",
        {
            key_id: Type::KeyId, "The license's key ID.";
            title: Type::Optional(&interface::STRING), "The title from the application's catalog, when it has one.";
        }
        ["key_id": "key_id", "title": "string?"];
    Connecting = "connecting", "A restore is connecting to the License Management Service.", {} [];
    Disconnecting = "disconnecting", "The service has answered; the restore disconnects from it.", {} [];
    Refused = "refused", "The service refused the restore; url is a page the application can show.",
        {
            code: Type::ErrorCode, "Why, as a stable code (RESTORE_LIMIT_EXCEEDED, ...).";
            message: interface::STRING, "A human-readable reason.";
            url: interface::STRING, "Where the user can learn more or act.";
        }
        ["code": "error_code", "url": "string"];
    End = "end", "The operation ended: always the last event, exactly once per operation.",
        {
            operation: Type::OperationKind, "The operation.";
            outcome: Type::Outcome, "Its summary when it completed, its error when it failed or was cancelled.";
        }
        ["operation": "operation", "error": "error_code?", "licenses": "u64", "restricted": "u64", "skipped": "u64"];
}

impl StatusEvent {
    /// An example event of every kind (for describing the interface and testing bindings).
    pub fn example(kind: EventKind) -> StatusEvent {
        let op = OperationKind::Backup;
        match kind {
            EventKind::Begin => StatusEvent::Begin { operation: op },
            EventKind::Progress => StatusEvent::Progress { operation: op, done: 1, total: 2 },
            EventKind::RestrictedLicense => {
                StatusEvent::RestrictedLicense { key_id: KeyId::from_bytes([1; 16]), title: Some("Title".into()) }
            }
            EventKind::Connecting => StatusEvent::Connecting,
            EventKind::Disconnecting => StatusEvent::Disconnecting,
            EventKind::Refused => StatusEvent::Refused {
                code: ErrorCode::RestoreLimitExceeded,
                message: "limit".into(),
                url: "https://example.invalid".into(),
            },
            EventKind::End => StatusEvent::End { operation: op, outcome: Outcome::Completed(Summary::default()) },
        }
    }
}

/// A field of a [`StatusEvent`], borrowed ([`StatusEvent::surface_values`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum FieldValue<'a> {
    /// An operation kind.
    Operation(OperationKind),
    /// A count.
    Count(u64),
    /// A key ID.
    KeyId(KeyId),
    /// A text.
    Text(&'a str),
    /// A text that may be absent.
    OptionalText(Option<&'a str>),
    /// An error code.
    Code(ErrorCode),
    /// How an operation ended.
    Outcome(&'a Outcome),
}

impl From<&OperationKind> for FieldValue<'_> {
    fn from(v: &OperationKind) -> Self {
        FieldValue::Operation(*v)
    }
}

impl From<&u64> for FieldValue<'_> {
    fn from(v: &u64) -> Self {
        FieldValue::Count(*v)
    }
}

impl From<&KeyId> for FieldValue<'_> {
    fn from(v: &KeyId) -> Self {
        FieldValue::KeyId(*v)
    }
}

impl<'a> From<&'a String> for FieldValue<'a> {
    fn from(v: &'a String) -> Self {
        FieldValue::Text(v)
    }
}

impl<'a> From<&'a Option<String>> for FieldValue<'a> {
    fn from(v: &'a Option<String>) -> Self {
        FieldValue::OptionalText(v.as_deref())
    }
}

impl From<&ErrorCode> for FieldValue<'_> {
    fn from(v: &ErrorCode) -> Self {
        FieldValue::Code(*v)
    }
}

impl<'a> From<&'a Outcome> for FieldValue<'a> {
    fn from(v: &'a Outcome) -> Self {
        FieldValue::Outcome(v)
    }
}

/// The error a status callback returns to stop the operation. The operation then ends with
/// `CALLBACK_FAILED` and this message.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct CallbackError {
    /// What went wrong, as the host language described it.
    pub message: String,
}

impl CallbackError {
    /// A callback error with a message.
    pub fn new(message: impl Into<String>) -> Self {
        CallbackError { message: message.into() }
    }
}

/// An event as the engine queued it: the event and when it was emitted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Emitted {
    /// The event.
    pub event: StatusEvent,
    /// When the engine emitted it, on the platform's monotonic clock in nanoseconds
    /// ([`monotonic_ns`](crate::monotonic_ns): the clock of Python's `time.monotonic_ns()`,
    /// Node's `process.hrtime.bigint()` and Swift's `DispatchTime.now().uptimeNanoseconds`),
    /// so a host can tell how long the event waited for delivery.
    pub emitted_ns: u64,
}

/// Receives the status events of an operation, in order and one call at a time, on the
/// operation's delivery thread (not the caller's thread, and not the thread doing the work:
/// the engine queues PROGRESS and RESTRICTED_LICENSE events and goes on while they are
/// delivered). Returning an error (or panicking) stops the operation, which then ends with
/// `CALLBACK_FAILED`; the END event is still delivered, last. Once the operation is stopping
/// (a cancel was requested or a callback failed), queued PROGRESS and RESTRICTED_LICENSE
/// events are dropped, so a callback that cancels at the n-th event sees END next, as if the
/// engine had stopped right there. Nothing is committed (archive renamed, store changed)
/// before every earlier event has been delivered.
pub trait StatusCallback: Send + Sync {
    /// Called for each event.
    fn on_status(&self, event: &StatusEvent) -> Result<(), CallbackError>;

    /// Called with the events that queued up since the last call (one or more), in order.
    /// Hosts where each call has a fixed cost (a language boundary, a thread hop) implement it
    /// to deliver many events per crossing; they must deliver in order, call `stop()` after
    /// each event and drop the rest of the batch when it returns true, and stop at the first
    /// error. The default calls [`StatusCallback::on_status`] for each event.
    fn on_status_batch(&self, batch: &[Emitted], stop: &dyn Fn() -> bool) -> Result<(), CallbackError> {
        for emitted in batch {
            self.on_status(&emitted.event)?;
            if stop() {
                break;
            }
        }
        Ok(())
    }
}

impl<F> StatusCallback for F
where
    F: Fn(&StatusEvent) -> Result<(), CallbackError> + Send + Sync,
{
    fn on_status(&self, event: &StatusEvent) -> Result<(), CallbackError> {
        self(event)
    }
}
