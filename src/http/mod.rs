//! The HTTP edge: routes, shared state, request spans and ids, and the FHIR answers for paths and
//! methods the proxy does not serve. Handlers negotiate, read the body, call one use case of
//! [`crate::booking`] and render; every failure becomes an OperationOutcome through
//! [`response::Failure`].

pub mod admin;
pub mod appointment;
pub mod auth;
pub mod body;
pub mod bundle;
pub mod find;
pub mod health;
pub mod limit;
pub mod metadata;
pub mod response;
pub mod routes;
pub mod slot;
pub mod status;
pub mod tenant;
pub mod validate;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, web};
use tracing::Span;
use tracing_actix_web::RootSpanBuilder;

use crate::error::ProxyError;

/// Registers every route (see [`routes`]).
pub fn configure(cfg: &mut web::ServiceConfig, base_path: &str) {
    routes::configure(cfg, base_path);
}

/// A FHIR 404 for every path the proxy does not serve (instead of actix's empty 404).
pub async fn not_found(request: HttpRequest) -> HttpResponse {
    response::error(&ProxyError::NotFound, response::rendering_for(&request))
}

/// The response header carrying the request id that also appears on every log line of the request.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// Puts the request's id ([`crate::telemetry::request_id`]: the caller's well-formed one, else
/// the generated one) into the `X-Request-Id` response header.
pub async fn request_id_header(
    request: ServiceRequest,
    next: actix_web::middleware::Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let id = crate::telemetry::request_id(&request);
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
        let request_id = crate::telemetry::request_id(request);
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
        span.in_scope(|| tracing::info!(http.status_code = status, "request finished"));
    }
}
