//! The HTTP edge: routes, middleware (request ids and spans, limits, auth, the audit trail), and
//! the FHIR answers for paths and methods the proxy does not serve. Handlers negotiate, read the body, call one use case of
//! [`crate::booking`] and render; every failure becomes an OperationOutcome through
//! [`response::Failure`].

pub mod admin;
pub mod appointment;
pub mod audit;
pub mod auth;
pub mod body;
pub mod bundle;
pub mod find;
pub mod health;
pub mod limit;
pub mod metadata;
pub mod request_id;
pub mod response;
pub mod routes;
pub mod search;
pub mod slot;
pub mod status;
pub mod tenant;
pub mod validate;

use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::Method;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, web};

use crate::fhir::search::printable;
use crate::interaction::Interaction;
use routes::{FHIR_ROUTES, OTHER_TYPE, TENANT_SCOPE, UNKNOWN_OPERATION};

use crate::error::ProxyError;

/// Registers every route: the probes, auth and admin endpoints at the root, and the FHIR routes
/// under `base_path` (the unnamed tenant) and `{base_path}/{tenant}` (named tenants).
pub fn configure(cfg: &mut web::ServiceConfig, base_path: &str) {
    cfg.route("/status", web::get().to(status::status)); // at the root, before any FHIR scope
    // Before the FHIR scope, which would otherwise answer for `{base}/.well-known/…` alone.
    auth::configure(cfg, base_path);
    cfg.route(admin::RELOAD_PATH, web::post().to(admin::reload));
    cfg.route("/healthz", web::get().to(health::healthz));
    cfg.route("/readyz", web::get().to(health::readyz));
    cfg.route("/metrics", web::get().to(health::metrics));
    // Named tenants are a scope inside the base, after the unnamed tenant's routes: actix tries
    // a scope's services in order. (Two sibling scopes would not do: once `/fhir` matches, its
    // scope answers alone.)
    let named = fhir_routes(web::scope(TENANT_SCOPE));
    cfg.service(fhir_routes(web::scope(base_path)).service(named));
}

/// The FHIR interactions of one tenant, from [`FHIR_ROUTES`].
fn fhir_routes<T>(mut scope: actix_web::Scope<T>) -> actix_web::Scope<T>
where
    T: actix_web::dev::ServiceFactory<
            ServiceRequest,
            Config = (),
            Response = ServiceResponse,
            Error = actix_web::Error,
            InitError = (),
        >,
{
    for route in &FHIR_ROUTES {
        let paths: Vec<&str> = if route.path.is_empty() {
            vec!["", "/"]
        } else {
            vec![route.path]
        };
        let mut resource = web::resource(paths);
        for (method, interaction) in route.methods {
            resource = resource.route(handler(method, *interaction));
        }
        scope = scope.service(resource.default_service(not_allowed(route.allow())));
    }
    scope
        .service(web::resource(UNKNOWN_OPERATION).to(unknown_operation))
        .service(web::resource(OTHER_TYPE).to(unsupported_type))
}

/// The handler of an interaction, for one method.
fn handler(method: &Method, interaction: Interaction) -> actix_web::Route {
    let route = web::method(method.clone());
    match interaction {
        Interaction::Capabilities => route.to(metadata::capability_statement),
        Interaction::Create => route.to(appointment::create),
        Interaction::Read => route.to(appointment::read),
        Interaction::Search => route.to(search::search),
        Interaction::Update => route.to(appointment::update),
        Interaction::Patch => route.to(appointment::patch),
        Interaction::Validate => route.to(validate::validate),
        Interaction::Find => route.to(find::find),
        Interaction::SlotSearch => route.to(slot::search),
        Interaction::Bundle => route.to(bundle::process),
    }
}

/// A FHIR 405 naming the methods the resource does support.
fn not_allowed(allow: String) -> actix_web::Route {
    let value = HeaderValue::from_str(&allow).unwrap_or(HeaderValue::from_static(""));
    web::to(move |request: HttpRequest| {
        let value = value.clone();
        async move {
            let mut response = respond(&request, &ProxyError::MethodNotAllowed);
            response.headers_mut().insert(header::ALLOW, value);
            response
        }
    })
}

async fn unknown_operation(request: HttpRequest) -> HttpResponse {
    let name = request.match_info().get("operation").unwrap_or_default();
    respond(
        &request,
        &ProxyError::UnknownOperation {
            name: printable(name),
        },
    )
}

async fn unsupported_type(request: HttpRequest) -> HttpResponse {
    let name = request.match_info().get("type").unwrap_or_default();
    respond(
        &request,
        &ProxyError::UnsupportedType {
            name: printable(name),
        },
    )
}

fn respond(request: &HttpRequest, error: &ProxyError) -> HttpResponse {
    let rendering = response::rendering_for(request);
    response::error(error, rendering)
}

/// A FHIR 404 for every path the proxy does not serve (instead of actix's empty 404).
pub async fn not_found(request: HttpRequest) -> HttpResponse {
    response::error(&ProxyError::NotFound, response::rendering_for(&request))
}
