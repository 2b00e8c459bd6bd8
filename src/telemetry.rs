//! Logging: a tracing subscriber (text or JSON lines, filtered by `RUST_LOG`), the optional audit
//! file that takes the audit trail apart from the diagnostic log (reopened on reload, for log
//! rotation), and a panic hook that keeps panic messages out of the logs, since a parser's panic
//! message can quote request data.
//!
//! Every line written while a request is served is inside its `http_request` span, whose
//! `request_id` field ([`crate::http::request_id`]) the text format prints in the span prefix and
//! the JSON format in `spans` (the list of enclosing spans, outermost first) on each line.

use std::fs::{File, OpenOptions};
use std::io::{IsTerminal as _, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};

use tracing::Level;
use tracing_subscriber::filter::{FilterExt as _, Targets, filter_fn};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::prelude::*;
use tracing_subscriber::{EnvFilter, fmt};

/// The tracing target of the audit trail's lines (see [`init`]'s `audit_file`).
pub const AUDIT_TARGET: &str = "audit";

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
/// With `audit_file`, the audit trail (target [`AUDIT_TARGET`]) goes to that file only,
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
        !(separate_audit && metadata.target() == AUDIT_TARGET)
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
            .with_filter(Targets::new().with_target(AUDIT_TARGET, Level::INFO))
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
