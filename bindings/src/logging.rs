//! Forwarding the core's `tracing` events to a logger written in Kotlin or Swift.
//!
//! The app implements [`Logger`] (routing records to Logcat or os_log) and installs it with
//! [`set_logger`]. Events from Roundtrip's own crates are forwarded at the chosen level; events
//! from the libraries underneath only at `Warn` and above, since their detailed traces are noise
//! for an app and may describe raw protocol data. The core redacts before it logs, so records
//! carry no credentials or query strings.

use std::fmt::Write as _;
use std::sync::{Arc, Once, RwLock};

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id};
use tracing::subscriber::Interest;
use tracing::{Event, Level, Metadata, Subscriber};
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::prelude::*;
use tracing_subscriber::registry::LookupSpan;

/// A log record's severity.
#[derive(uniffi::Enum, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    /// Something failed that should not have.
    Error,
    /// A failure that was recovered from, such as a retried request.
    Warn,
    /// Lifecycle events.
    Info,
    /// State changes and request outcomes.
    Debug,
    /// Detailed chatter.
    Trace,
}

/// One log record.
#[derive(uniffi::Record, Clone, Debug)]
pub struct LogRecord {
    /// The severity.
    pub level: LogLevel,
    /// The Rust module that logged it, such as `roundtrip::internal::pipeline`.
    pub target: String,
    /// The message followed by its fields as `key=value`, already redacted.
    pub message: String,
}

/// Receives the SDK's log records. Implement it in Kotlin or Swift; it is called from the SDK's
/// own threads.
#[uniffi::export(with_foreign)]
pub trait Logger: Send + Sync {
    /// Handles one record.
    fn log(&self, record: LogRecord);
}

struct Sink {
    logger: Arc<dyn Logger>,
    level: LogLevel,
}

static SINK: RwLock<Option<Sink>> = RwLock::new(None);
static INSTALL: Once = Once::new();

/// Sends the SDK's log records at `level` and above to `logger`, replacing any previous logger.
#[uniffi::export]
pub fn set_logger(logger: Arc<dyn Logger>, level: LogLevel) {
    *SINK
        .write()
        .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(Sink { logger, level });

    INSTALL.call_once(|| {
        // Fails only if the process already has a global subscriber, which then keeps the events.
        let _ = tracing_subscriber::registry().with(ForeignLayer).try_init();
    });
    tracing::callsite::rebuild_interest_cache();
}

/// Stops sending log records.
#[uniffi::export]
pub fn clear_logger() {
    *SINK
        .write()
        .unwrap_or_else(|poisoned| poisoned.into_inner()) = None;
}

struct ForeignLayer;

/// The formatted fields of a span, kept in its extensions for the events inside it.
struct SpanFields(String);

impl<S> Layer<S> for ForeignLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn register_callsite(&self, _metadata: &'static Metadata<'static>) -> Interest {
        // The logger and its level change at run time, so decide per event.
        Interest::sometimes()
    }

    fn enabled(&self, metadata: &Metadata<'_>, _ctx: Context<'_, S>) -> bool {
        let sink = SINK.read().unwrap_or_else(|poisoned| poisoned.into_inner());
        sink.as_ref()
            .is_some_and(|sink| passes(metadata, sink.level))
    }

    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let mut fields = FieldWriter::default();
        attrs.record(&mut fields);
        if let Some(span) = ctx.span(id) {
            span.extensions_mut().insert(SpanFields(fields.fields));
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let logger = {
            let sink = SINK.read().unwrap_or_else(|poisoned| poisoned.into_inner());
            match sink.as_ref() {
                Some(sink) => sink.logger.clone(),
                None => return,
            }
        };

        let mut writer = FieldWriter::default();
        event.record(&mut writer);
        let mut message = writer.message;
        message.push_str(&writer.fields);
        if let Some(scope) = ctx.event_scope(event) {
            for span in scope.from_root() {
                if let Some(fields) = span.extensions().get::<SpanFields>() {
                    message.push_str(&fields.0);
                }
            }
        }

        let metadata = event.metadata();
        logger.log(LogRecord {
            level: level_of(metadata.level()),
            target: metadata.target().to_owned(),
            message,
        });
    }
}

fn passes(metadata: &Metadata<'_>, level: LogLevel) -> bool {
    let ours = metadata.target().starts_with("roundtrip");
    let ceiling = if ours {
        level
    } else {
        level.min(LogLevel::Warn)
    };
    level_of(metadata.level()) <= ceiling
}

fn level_of(level: &Level) -> LogLevel {
    match *level {
        Level::ERROR => LogLevel::Error,
        Level::WARN => LogLevel::Warn,
        Level::INFO => LogLevel::Info,
        Level::DEBUG => LogLevel::Debug,
        Level::TRACE => LogLevel::Trace,
    }
}

#[derive(Default)]
struct FieldWriter {
    message: String,
    fields: String,
}

impl Visit for FieldWriter {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message.push_str(value);
        } else {
            let _ = write!(self.fields, " {}={}", field.name(), value);
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.message, "{value:?}");
        } else {
            let _ = write!(self.fields, " {}={:?}", field.name(), value);
        }
    }
}
