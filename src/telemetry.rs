//! Logging: a tracing subscriber (text or JSON lines, filtered by `RUST_LOG`), the request id
//! every line of a request carries, and a panic hook that keeps panic messages out of the logs,
//! since a parser's panic message can quote request data.
//!
//! Every line written while a request is served is inside its `http_request` span, whose
//! `request_id` field the text format prints in the span prefix and the JSON format in `spans`
//! (the list of enclosing spans, outermost first) on each line. The same id goes back in the
//! `X-Request-Id` response header.

use actix_web::HttpMessage;
use actix_web::dev::ServiceRequest;
use tracing_actix_web::RequestId;
use tracing_subscriber::EnvFilter;

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
pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,actix_server=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        // The span context (and with it the request id) on every line: the current span and
        // the list of enclosing ones, outermost (`http_request`, with `request_id`) first.
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(true)
            .try_init(),
    };
    install_panic_hook();
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
