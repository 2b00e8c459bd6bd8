//! The limits that protect the process, as one middleware in front of every route: the size of a
//! request's head (`server.max_header_bytes`, 431), the number of requests handled at once
//! (`server.max_concurrent_requests`, 503 with `Retry-After`) and the time a request may take
//! (`server.request_timeout_secs`, 504 or 503). Each is answered with an OperationOutcome in the
//! negotiated format. The body size limit (413) is enforced where bodies are read
//! ([`super::appointment::read_body`]), since only the handler knows it reads one.
//!
//! Limits past which actix-web answers by itself, before this middleware runs: a head over
//! [`crate::config::ACTIX_MAX_HEAD_BYTES`] or with more than 96 headers (a bare 431, connection
//! closed), and headers arriving slower than the client request timeout (a bare 408).

use std::sync::Arc;
use std::time::Duration;

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::error::InternalError;
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{HttpRequest, web};
use tokio::sync::Semaphore;

use super::response;
use crate::config::ServerSettings;
use crate::error::ProxyError;
use crate::interaction::Interaction;

/// Paths not counted against the concurrency bound: probes and scrapes must answer under load.
pub const UNCOUNTED_PATHS: [&str; 3] = ["/healthz", "/readyz", "/metrics"];

/// The limits of one server, shared by every worker.
pub struct Limits {
    max_header_bytes: usize,
    request_timeout: Duration,
    max_concurrent: usize,
    permits: Arc<Semaphore>,
}

impl Limits {
    /// The limits of `server`.
    pub fn new(server: &ServerSettings) -> Self {
        Limits {
            max_header_bytes: server.max_header_bytes,
            request_timeout: server.request_timeout,
            max_concurrent: server.max_concurrent_requests,
            permits: Arc::new(Semaphore::new(server.max_concurrent_requests)),
        }
    }

    /// Requests being handled now (counted ones only).
    pub fn in_flight(&self) -> usize {
        self.max_concurrent - self.permits.available_permits()
    }
}

/// The middleware: checks the head, takes a place among the requests handled at once, and runs
/// the rest of the chain under the request timeout. Needs [`Limits`] as `web::Data`; without it
/// the request passes unchecked.
///
/// # Errors
/// Only those of the services it wraps.
pub async fn limits(
    request: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let Some(limits) = request.app_data::<web::Data<Limits>>().cloned() else {
        return next.call(request).await.map(|r| r.map_into_boxed_body());
    };
    let head_bytes: usize = request
        .headers()
        .iter()
        // Name, ": ", value, CRLF: as the head arrived on the wire.
        .map(|(name, value)| name.as_str().len() + value.len() + 4)
        .sum::<usize>()
        + request.uri().to_string().len();
    if head_bytes > limits.max_header_bytes {
        let error = ProxyError::HeadersTooLarge {
            limit: limits.max_header_bytes,
        };
        return Ok(refuse(request, &error));
    }
    let _permit = if UNCOUNTED_PATHS.contains(&request.path()) {
        None
    } else {
        match limits.permits.clone().try_acquire_owned() {
            Ok(permit) => Some(permit),
            Err(_) => {
                tracing::warn!(
                    max_concurrent_requests = limits.max_concurrent,
                    "request refused: the proxy is at its bound on requests handled at once"
                );
                let error = ProxyError::Overloaded {
                    max: limits.max_concurrent,
                };
                return Ok(refuse(request, &error));
            }
        }
    };
    // Decided now, to answer after the timeout when the request itself has gone into the chain
    // (it cannot be cloned before routing: the router needs it unshared).
    let rendering = response::rendering_for(request.request());
    let interaction = super::routes::classified(request.request()).interaction;
    let request_id = super::request_id::request_id(&request);
    match tokio::time::timeout(limits.request_timeout, next.call(request)).await {
        Ok(result) => result.map(|r| r.map_into_boxed_body()),
        Err(_) => {
            // Reads and dry runs change nothing; anything else may have reached Salesforce
            // before the handler was dropped.
            let may_have_acted = !matches!(
                interaction,
                Some(
                    Interaction::Capabilities
                        | Interaction::Read
                        | Interaction::Search
                        | Interaction::Validate
                        | Interaction::Find
                        | Interaction::SlotSearch
                )
            );
            tracing::warn!(
                timeout_secs = limits.request_timeout.as_secs(),
                interaction = interaction.map_or("(none)", Interaction::name),
                may_have_acted,
                "request abandoned at the request timeout"
            );
            let error = ProxyError::RequestTimeout {
                secs: limits.request_timeout.as_secs(),
                may_have_acted,
            };
            // Returned as an error carrying the ready answer: actix writes that answer, and the
            // outer middleware (span, audit) see the failure.
            let mut answer = response::error(&error, rendering);
            // The error bypasses `request_id_header`, which only sees responses; the caller
            // needs the id most on exactly this answer, to ask what became of the request.
            if let Ok(value) = HeaderValue::from_str(&request_id) {
                answer.headers_mut().insert(
                    HeaderName::from_static(super::request_id::REQUEST_ID_HEADER),
                    value,
                );
            }
            Err(InternalError::from_response("request timeout", answer).into())
        }
    }
}

fn refuse(request: ServiceRequest, error: &ProxyError) -> ServiceResponse<BoxBody> {
    let answer = answer(request.request(), error);
    request.into_response(answer)
}

fn answer(request: &HttpRequest, error: &ProxyError) -> actix_web::HttpResponse {
    let rendering = response::rendering_for(request);
    response::error(error, rendering)
}
