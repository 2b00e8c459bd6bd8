//! The request id every log line of a request, its audit line and its `X-Request-Id` answer carry,
//! and the request span that records it (with the route pattern, never the raw path or query).

use actix_web::HttpMessage;
use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use tracing::Span;
use tracing_actix_web::{RequestId, RootSpanBuilder};

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

/// Puts the request's id ([`request_id`]: the caller's well-formed one, else
/// the generated one) into the `X-Request-Id` response header.
pub async fn request_id_header(
    request: ServiceRequest,
    next: actix_web::middleware::Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let id = request_id(&request);
    let mut response = next.call(request).await?;
    if let Ok(value) = HeaderValue::from_str(&id) {
        response
            .headers_mut()
            .insert(HeaderName::from_static(REQUEST_ID_HEADER), value);
    }
    Ok(response)
}

/// Request spans that record the route pattern, never the raw path or query: those can carry
/// patient identifiers (`?patient=…`, `?identifier=…`).
pub struct RedactingRootSpan;

impl RootSpanBuilder for RedactingRootSpan {
    fn on_request_start(request: &ServiceRequest) -> Span {
        let request_id = request_id(request);
        let route = request
            .match_pattern()
            .unwrap_or_else(|| "(unmatched)".to_owned());
        tracing::info_span!(
            "http_request",
            http.method = %request.method(),
            http.route = %route,
            request_id = %request_id,
            http.status_code = tracing::field::Empty,
        )
    }

    fn on_request_end<B: MessageBody>(
        span: Span,
        outcome: &Result<ServiceResponse<B>, actix_web::Error>,
    ) {
        let status = match outcome {
            Ok(response) => response.status().as_u16(),
            Err(error) => error.as_response_error().status_code().as_u16(),
        };
        span.record("http.status_code", status);
        // The audit line (at `info`) already says how every request ended: one line per request
        // at `info` is what the proxy costs to log.
        span.in_scope(|| tracing::debug!(http.status_code = status, "request finished"));
    }
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
