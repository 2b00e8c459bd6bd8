//! FHIR responses: the negotiated format of a request, rendering resources and errors in it, and
//! the `Prefer` header.

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, ResponseError};

use crate::error::{ErrorOutcome, ProxyError};
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
/// The 406 [`Failure`] when nothing acceptable can be produced; it is rendered as JSON.
pub fn negotiate(request: &HttpRequest, body_format: Option<Format>) -> Result<Rendering, Failure> {
    let pretty = format::wants_pretty(query_param(request, "_pretty").as_deref());
    let accept = request
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok());
    let fallback = body_format.unwrap_or(Format::Json);
    match format::response_format(accept, query_param(request, "_format").as_deref(), fallback) {
        Ok(format) => Ok(Rendering { format, pretty }),
        Err(issue) => Err(Failure::new(
            ProxyError::NotAcceptable(issue),
            Rendering {
                format: Format::Json,
                pretty,
            },
        )),
    }
}

/// The rendering of an error answer to `request`: as negotiated, else JSON.
pub fn rendering_for(request: &HttpRequest) -> Rendering {
    negotiate(request, None).unwrap_or_else(|failure| failure.rendering)
}

/// The request body's format (or the 415 issue saying why it cannot be read) and the answer's
/// rendering.
///
/// # Errors
/// The 406 [`Failure`] when no answer format fits.
pub fn formats(request: &HttpRequest) -> Result<(Result<Format, Issue>, Rendering), Failure> {
    let content_type = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    let body_format = format::request_format(content_type);
    let rendering = negotiate(request, body_format.as_ref().ok().copied())?;
    Ok((body_format, rendering))
}

/// A request that failed, with the rendering its OperationOutcome is written in: what every
/// handler returns as its error. Its [`ResponseError`] implementation is the one place an error
/// becomes a response (status, issues and `Retry-After` from [`ProxyError::outcome`], computed
/// once) and is logged, with its cause chain (texts of the proxy's own, never a value from the
/// body).
#[derive(Debug)]
pub struct Failure {
    error: ProxyError,
    outcome: ErrorOutcome,
    rendering: Rendering,
}

impl Failure {
    /// `error`, to be answered in `rendering`.
    pub fn new(error: ProxyError, rendering: Rendering) -> Failure {
        Failure {
            outcome: error.outcome(),
            error,
            rendering,
        }
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        Chain(&self.error).fmt(f)
    }
}

impl ResponseError for Failure {
    fn status_code(&self) -> StatusCode {
        self.outcome.status
    }

    fn error_response(&self) -> HttpResponse {
        respond(&self.error, &self.outcome, self.rendering)
    }
}

/// Logs an error with its cause chain and writes its OperationOutcome response.
fn respond(error: &ProxyError, decided: &ErrorOutcome, rendering: Rendering) -> HttpResponse {
    let status = decided.status.as_u16();
    let chain = Chain(error);
    if status >= 500 {
        tracing::warn!(http.status_code = status, error = %chain, "request failed");
    } else {
        tracing::info!(http.status_code = status, error = %chain, "request refused");
    }
    let mut response = outcome(decided.status, &decided.issues, rendering);
    if let Some(seconds) = decided.retry_after
        && let Ok(value) = HeaderValue::from_str(&seconds.to_string())
    {
        response.headers_mut().insert(header::RETRY_AFTER, value);
    }
    response
}

/// An error and its sources, `: `-separated.
struct Chain<'a>(&'a ProxyError);

impl std::fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = std::error::Error::source(self.0);
        while let Some(cause) = source {
            write!(f, ": {cause}")?;
            source = cause.source();
        }
        Ok(())
    }
}

/// Renders a use case's error in the request's rendering, for `?`.
pub trait OrRender<T> {
    /// `Err(error)` becomes the [`Failure`] answered in `rendering`.
    ///
    /// # Errors
    /// When `self` is an error.
    fn or_render(self, rendering: Rendering) -> Result<T, Failure>;
}

impl<T> OrRender<T> for Result<T, ProxyError> {
    fn or_render(self, rendering: Rendering) -> Result<T, Failure> {
        self.map_err(|error| Failure::new(error, rendering))
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

/// The response for an error (see [`Failure`]).
pub fn error(error: &ProxyError, rendering: Rendering) -> HttpResponse {
    respond(error, &error.outcome(), rendering)
}
