//! FHIR responses: the negotiated format of a request, rendering resources and errors in it, and
//! the `Prefer` header.

use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse};

use crate::error::ProxyError;
use crate::fhir::format::{self, Format};
use crate::fhir::outcome::{Issue, operation_outcome};

/// How the answer to one request is written.
#[derive(Debug, Clone, Copy)]
pub struct Rendering {
    /// JSON or XML.
    pub format: Format,
    /// `_pretty=true`.
    pub pretty: bool,
}

/// What `Prefer: return=…` asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReturnPreference {
    /// No body.
    Minimal,
    /// The resource (the default).
    Representation,
    /// An OperationOutcome about the interaction.
    OperationOutcome,
}

/// Reads `Prefer` (`return=minimal|representation|OperationOutcome`); the default is the resource.
pub fn return_preference(request: &HttpRequest) -> ReturnPreference {
    let prefer = request
        .headers()
        .get_all("Prefer")
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split([',', ';']))
        .filter_map(|p| p.trim().strip_prefix("return="))
        .map(|v| v.trim_matches('"').to_owned())
        .next();
    match prefer.as_deref() {
        Some("minimal") => ReturnPreference::Minimal,
        Some("OperationOutcome") => ReturnPreference::OperationOutcome,
        _ => ReturnPreference::Representation,
    }
}

/// Whether the request asks for lenient handling of unknown search parameters
/// (`Prefer: handling=lenient`); strict is the default.
pub fn is_lenient(request: &HttpRequest) -> bool {
    crate::fhir::search::is_lenient(
        request
            .headers()
            .get_all("Prefer")
            .filter_map(|v| v.to_str().ok()),
    )
}

/// The value of a query parameter (first occurrence), percent-decoded.
pub fn query_param(request: &HttpRequest, name: &str) -> Option<String> {
    url::form_urlencoded::parse(request.query_string().as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// Decides the response format: `_format`, then `Accept`, then the request body's own format.
///
/// # Errors
/// [`ProxyError::NotAcceptable`] when nothing acceptable can be produced; the error itself is then
/// rendered as JSON.
pub fn negotiate(
    request: &HttpRequest,
    body_format: Option<Format>,
) -> Result<Rendering, (ProxyError, Rendering)> {
    let pretty = format::wants_pretty(query_param(request, "_pretty").as_deref());
    let accept = request
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok());
    let fallback = body_format.unwrap_or(Format::Json);
    match format::response_format(accept, query_param(request, "_format").as_deref(), fallback) {
        Ok(format) => Ok(Rendering { format, pretty }),
        Err(issue) => Err((
            ProxyError::NotAcceptable(issue),
            Rendering {
                format: Format::Json,
                pretty,
            },
        )),
    }
}

/// The request body's format (or the 415 issue saying why it cannot be read) and the answer's
/// rendering; when no answer format fits, the ready 406 response instead.
pub fn formats(
    request: &HttpRequest,
) -> Result<(Result<Format, Issue>, Rendering), Box<HttpResponse>> {
    let content_type = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    let body_format = format::request_format(content_type);
    match negotiate(request, body_format.as_ref().ok().copied()) {
        Ok(rendering) => Ok((body_format, rendering)),
        Err((error, rendering)) => Err(Box::new(self::error(&error, rendering))),
    }
}

/// A resource response with the FHIR content type.
pub fn resource<T>(
    status: actix_web::http::StatusCode,
    resource: &T,
    rendering: Rendering,
) -> HttpResponse
where
    T: fhirbolt::serde::SerializeResource,
{
    HttpResponse::build(status)
        .insert_header((header::CONTENT_TYPE, rendering.format.content_type()))
        .body(format::serialize(
            resource,
            rendering.format,
            rendering.pretty,
        ))
}

/// An OperationOutcome response for `issues`.
pub fn outcome(
    status: actix_web::http::StatusCode,
    issues: &[Issue],
    rendering: Rendering,
) -> HttpResponse {
    resource(status, &operation_outcome(issues), rendering)
}

/// The response for an error: status, issues and `Retry-After` from [`ProxyError::outcome`].
pub fn error(error: &ProxyError, rendering: Rendering) -> HttpResponse {
    let decided = error.outcome();
    let mut response = outcome(decided.status, &decided.issues, rendering);
    if let Some(seconds) = decided.retry_after
        && let Ok(value) = HeaderValue::from_str(&seconds.to_string())
    {
        response.headers_mut().insert(header::RETRY_AFTER, value);
    }
    response
}
