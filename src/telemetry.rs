//! Logging: a tracing subscriber (text or JSON lines, filtered by `RUST_LOG`), the optional audit
//! file that takes the audit trail apart from the diagnostic log (reopened on reload, for log
//! rotation), the request id every line of a request carries, and a panic hook that keeps panic
//! messages out of the logs, since a parser's panic message can quote request data.
//!
//! Every line written while a request is served is inside its `http_request` span, whose
//! `request_id` field the text format prints in the span prefix and the JSON format in `spans`
//! (the list of enclosing spans, outermost first) on each line. The same id goes back in the
//! `X-Request-Id` response header.

use actix_web::HttpMessage;
use actix_web::dev::ServiceRequest;
use std::fs::{File, OpenOptions};
use std::io::{IsTerminal as _, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use tracing_actix_web::RequestId;

use tracing::Level;
use tracing_subscriber::filter::{FilterExt as _, Targets, filter_fn};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::prelude::*;
use tracing_subscriber::{EnvFilter, fmt};

/// The request header a caller may send its own request id in (see [`request_id`]).
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// The request id a request's log lines, audit line and `X-Request-Id` answer carry, once decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedRequestId(pub String);

/// The request's id: the caller's `X-Request-Id` when it is well formed (see
/// [`is_acceptable_request_id`]), so a caller can follow its request through the proxy's logs;
/// else the one tracing-actix-web generated (a UUID). Decided once and kept in the request's
/// extensions, so the span, the audit line and the response header agree.
pub fn request_id(request: &ServiceRequest) -> String {
    if let Some(resolved) = request.extensions().get::<ResolvedRequestId>() {
        return resolved.0.clone();
    }
    let id = request
        .headers()
        .get(REQUEST_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|v| is_acceptable_request_id(v))
        .map(str::to_owned)
        .or_else(|| {
            request
                .extensions()
                .get::<RequestId>()
                .map(|id| id.to_string())
        })
        .unwrap_or_default();
    request
        .extensions_mut()
        .insert(ResolvedRequestId(id.clone()));
    id
}

/// Whether a caller's request id is taken as it is: 8 to 64 characters of `A-Z a-z 0-9 - _ . :`.
/// Anything else (longer, shorter, spaces, quotes, control characters) is replaced by a generated
/// id, so a header cannot forge or break log lines. It is written to every log line of the
/// request, so callers must not put patient data in it.
pub fn is_acceptable_request_id(value: &str) -> bool {
    (8..=64).contains(&value.len())
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line, for log shippers.
    Json,
}

/// Installs the global subscriber (once; later calls do nothing) and the panic hook.
///
/// With `audit_file`, the audit trail (target [`crate::audit::TARGET`]) goes to that file only,
/// as JSON lines appended to it, whatever `RUST_LOG` says: an audit trail that a log level could
/// switch off would not be one. The diagnostic log keeps going to standard error without it.
///
/// # Errors
/// The audit file cannot be opened for appending (the message names the file and the reason).
pub fn init(format: LogFormat, audit_file: Option<&Path>) -> Result<(), String> {
    let audit = audit_file.map(open_audit_file).transpose()?;
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,actix_server=warn"));
    let diagnostic = match format {
        // Colours only for a terminal: escape codes in a file or a journal are noise.
        LogFormat::Text => fmt::layer()
            .with_ansi(std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none())
            .with_writer(std::io::stderr)
            .boxed(),
        // The span context (and with it the request id) on every line: the current span and
        // the list of enclosing ones, outermost (`http_request`, with `request_id`) first.
        LogFormat::Json => fmt::layer()
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(true)
            .with_writer(std::io::stderr)
            .boxed(),
    };
    let separate_audit = audit.is_some();
    let diagnostic = diagnostic.with_filter(filter.and(filter_fn(move |metadata| {
        !(separate_audit && metadata.target() == crate::audit::TARGET)
    })));
    // The audit line carries its own request id, so the span list is left out.
    let audit = audit.map(|file| {
        let file = Arc::new(file);
        let _ = AUDIT_FILE.set(file.clone());
        fmt::layer()
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .with_writer(AuditSink(file))
            .with_filter(Targets::new().with_target(crate::audit::TARGET, Level::INFO))
    });
    let _ = tracing_subscriber::registry()
        .with(diagnostic)
        .with(audit)
        .try_init();
    install_panic_hook();
    Ok(())
}

/// The audit file of [`init`], kept so [`reopen_audit_file`] can reach it.
static AUDIT_FILE: OnceLock<Arc<AuditFile>> = OnceLock::new();

/// The audit trail's file: appended to, one whole line per write under the lock, and reopened
/// on reload so that rotation by renaming works.
struct AuditFile {
    path: PathBuf,
    file: Mutex<File>,
}

/// Opens the audit file for appending, creating it readable by its owner only: its lines name
/// clients and the FHIR and Salesforce ids of what they booked.
fn open_audit_file(path: &Path) -> Result<AuditFile, String> {
    Ok(AuditFile {
        path: path.to_owned(),
        file: Mutex::new(open_for_append(path)?),
    })
}

fn open_for_append(path: &Path) -> Result<File, String> {
    let mut options = OpenOptions::new();
    options.create(true).append(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path).map_err(|e| {
        format!(
            "cannot open the audit file {}: {}",
            path.display(),
            e.kind()
        )
    })
}

/// Opens the audit file again by its path, so a file renamed away by log rotation is closed and
/// a new one started; called on every reload (SIGHUP or `POST /admin/reload`). Does nothing
/// without an audit file. If the file cannot be opened, the old one is kept and the error logged.
pub fn reopen_audit_file() {
    let Some(audit) = AUDIT_FILE.get() else {
        return;
    };
    match open_for_append(&audit.path) {
        Ok(file) => {
            *audit.file.lock().unwrap_or_else(PoisonError::into_inner) = file;
            tracing::info!(path = %audit.path.display(), "audit file reopened");
        }
        Err(problem) => {
            tracing::error!(%problem, "audit lines keep going to the file opened before");
        }
    }
}

/// The audit layer's writer: holds the file's lock for one line.
struct AuditSink(Arc<AuditFile>);

/// One audit line being written.
struct AuditLine<'a>(MutexGuard<'a, File>);

impl<'a> MakeWriter<'a> for AuditSink {
    type Writer = AuditLine<'a>;

    fn make_writer(&'a self) -> AuditLine<'a> {
        AuditLine(self.0.file.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

impl Write for AuditLine<'_> {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.write(bytes)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}

/// Replaces the default panic hook (which prints the panic message) with one that logs only where
/// the panic happened.
pub fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let location = info
            .location()
            .map(|l| format!("{}:{}", l.file(), l.line()))
            .unwrap_or_else(|| "unknown".to_owned());
        tracing::error!(
            panic.location = %location,
            "a panic occurred; its message is withheld because it may contain request data"
        );
    }));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_short_ids_are_taken_from_callers() {
        assert!(is_acceptable_request_id(
            "0f8fad5b-d9cb-469f-a165-70867728950e"
        ));
        assert!(is_acceptable_request_id("engine:42.abc_DEF"));
        assert!(!is_acceptable_request_id("short"));
        assert!(!is_acceptable_request_id(&"a".repeat(65)));
        assert!(!is_acceptable_request_id("has space in it"));
        assert!(!is_acceptable_request_id("quote\"injected\""));
        assert!(!is_acceptable_request_id("line\nbreak-xxxx"));
    }
}
