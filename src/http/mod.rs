//! The HTTP edge: routes, shared state, request spans and ids, and the FHIR answers for paths and
//! methods the proxy does not serve. Handlers turn wire bytes into calls on `fhir`, `mapping` and
//! `salesforce`, and every failure into an OperationOutcome via [`crate::error::ProxyError`].

pub mod admin;
pub mod appointment;
pub mod auth;
pub mod bundle;
pub mod find;
pub mod health;
pub mod limit;
pub mod metadata;
pub mod response;
pub mod slot;
pub mod status;
pub mod tenant;
pub mod validate;

use std::sync::Arc;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, web};
use tracing::Span;
use tracing_actix_web::RootSpanBuilder;

use crate::error::ProxyError;
use crate::mapping::Mapping;
use crate::salesforce::SalesforceClient;
use crate::store::TenantStore;
use response::Rendering;

/// What every handler shares.
pub struct AppState {
    /// The checked mapping (this version's: a reload makes a new [`AppState`] around the new one).
    pub mapping: Arc<Mapping>,
    /// The Salesforce client (shared HTTP pool and token cache).
    pub salesforce: SalesforceClient,
    /// Largest accepted body, in bytes.
    pub body_limit: usize,
    /// The FHIR base path, e.g. `/fhir`.
    pub base_path: String,
    /// This tenant's rows of the store: booked appointments by identifier (idempotent creates,
    /// patches) and the identifiers being booked right now (claims, shared by every replica).
    pub store: TenantStore,
}

/// Registers the FHIR routes under `base_path` (the unnamed tenant) and under
/// `{base_path}/{tenant}` (named tenants).
pub fn configure(cfg: &mut web::ServiceConfig, base_path: &str) {
    cfg.route("/status", web::get().to(status::status)); // at the root, before any FHIR scope
    // Before the FHIR scope, which would otherwise answer for `{base}/.well-known/…` alone.
    auth::configure(cfg, base_path);
    cfg.route(admin::RELOAD_PATH, web::post().to(admin::reload));
    cfg.route("/healthz", web::get().to(health::healthz));
    cfg.route("/readyz", web::get().to(health::readyz));
    cfg.route("/metrics", web::get().to(health::metrics));
    // Named tenants are a scope inside the base, after the unnamed tenant's routes: actix tries
    // a scope's services in order, and a tenant segment must not take `Appointment` in
    // `/fhir/Appointment/{id}`. (Two sibling scopes would not do: once `/fhir` matches, its
    // scope answers alone.)
    let named = fhir_routes(web::scope(&format!("/{{{}}}", tenant::TENANT_SEGMENT)));
    cfg.service(fhir_routes(web::scope(base_path)).service(named));
}

/// The FHIR interactions of one tenant.
fn fhir_routes<T>(scope: actix_web::Scope<T>) -> actix_web::Scope<T>
where
    T: actix_web::dev::ServiceFactory<
            ServiceRequest,
            Config = (),
            Response = ServiceResponse,
            Error = actix_web::Error,
            InitError = (),
        >,
{
    scope
        .service(
            web::resource("/metadata")
                .route(web::get().to(metadata::capability_statement))
                .default_service(not_allowed("GET")),
        )
        // Before `/Appointment/{id}`, which would otherwise take `$validate` and `$find` for ids.
        .service(
            web::resource("/Appointment/$validate")
                .route(web::post().to(validate::validate))
                .default_service(not_allowed("POST")),
        )
        .service(
            web::resource("/Appointment/$find")
                .route(web::get().to(find::find))
                .route(web::post().to(find::find))
                .default_service(not_allowed("GET, POST")),
        )
        .service(
            web::resource("/Appointment")
                .route(web::post().to(appointment::create))
                .default_service(not_allowed("POST")),
        )
        .service(
            web::resource("/Appointment/{id}")
                .route(web::put().to(appointment::update))
                .route(web::patch().to(appointment::patch))
                .default_service(not_allowed("PUT, PATCH")),
        )
        .service(
            web::resource("/Slot")
                .route(web::get().to(slot::search))
                .default_service(not_allowed("GET")),
        )
        .service(
            web::resource(["", "/"])
                .route(web::post().to(bundle::process))
                .default_service(not_allowed("POST")),
        )
}

/// A FHIR 404 for every path the proxy does not serve (instead of actix's empty 404).
pub async fn not_found(request: HttpRequest) -> HttpResponse {
    respond_error(&request, &ProxyError::NotFound)
}

/// A FHIR 405 naming the methods the resource does support.
fn not_allowed(allow: &'static str) -> actix_web::Route {
    web::to(move |request: HttpRequest| async move {
        let mut response = respond_error(&request, &ProxyError::MethodNotAllowed);
        response.headers_mut().insert(
            actix_web::http::header::ALLOW,
            HeaderValue::from_static(allow),
        );
        response
    })
}

fn respond_error(request: &HttpRequest, error: &ProxyError) -> HttpResponse {
    let rendering = response::negotiate(request, None).unwrap_or_else(|(_, rendering)| rendering);
    response::error(error, Rendering { ..rendering })
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
