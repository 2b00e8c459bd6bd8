//! The HTTP side of inbound auth: the middleware that authenticates and authorizes every request
//! before routing, the SMART token endpoint (`POST /auth/token`) and the SMART configuration
//! documents (`GET {base}/.well-known/smart-configuration`, and per tenant).
//!
//! Open without credentials: `{base}[/{tenant}]/metadata`, the SMART configuration, the token
//! endpoint (it authenticates the assertion itself), `/status`, `/healthz`, `/readyz` and
//! `/metrics`. Everything else, including paths that do not exist, needs credentials, so an
//! unauthenticated caller learns nothing about what is served. `/admin/*` needs an admin client.

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{HttpMessage, HttpRequest, HttpResponse, web};

use super::response;
use super::routes::{Classified, RouteTable, SMART_CONFIGURATION, TENANT_SCOPE, classified};
use crate::auth::smart::{self, OAuthError, TokenRequest};
use crate::auth::{Access, Auth, AuthFailure, Credentials, Denial, TOKEN_PATH};
use crate::error::ProxyError;
use crate::metrics::Metrics;
use crate::tenants::Tenants;

/// The authenticated client's id, put into the request extensions by inbound auth.
///
/// The audit line reads it; when auth is off or the request is not authenticated the line says
/// `-`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ClientId(pub String);

/// The realm named in `WWW-Authenticate`.
pub const REALM: &str = "fhir-salesforce-proxy";
/// The header carrying a static API key.
pub const API_KEY_HEADER: &str = "x-api-key";

/// Registers the token endpoint and the SMART configuration documents. Call before the FHIR
/// scope: once the base path matches, that scope answers alone.
pub fn configure(cfg: &mut web::ServiceConfig, base_path: &str) {
    cfg.route(TOKEN_PATH, web::post().to(token))
        .route(
            &format!("{base_path}{SMART_CONFIGURATION}"),
            web::get().to(smart_configuration),
        )
        .route(
            &format!("{base_path}{TENANT_SCOPE}{SMART_CONFIGURATION}"),
            web::get().to(smart_configuration),
        );
}

/// Authenticates and authorizes a request before it is routed; puts the [`Access`] and the
/// audit [`ClientId`] into the request extensions.
pub async fn authorize(
    request: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    let Some(auth) = request.app_data::<web::Data<Auth>>().cloned() else {
        // Fail closed: a server built without auth state serves nobody.
        return Ok(refuse(request, &ProxyError::AuthUnavailable));
    };
    let route = classified(request.request());
    let operations = is_operations_path(request.path());
    if route.open && !(operations && auth.status_needs_admin()) {
        return next.call(request).await.map(|r| r.map_into_left_body());
    }
    let metrics = request.app_data::<web::Data<Metrics>>().cloned();
    let peer = request.peer_addr().map(|a| a.ip());
    let credentials = credentials(request.request());
    // An address that has failed too often is not checked at all: no hash, no signature.
    if !matches!(credentials, Credentials::Missing)
        && let Some(address) = peer
        && let Err(retry_after_secs) = auth.failures().admit(address)
    {
        if let Some(metrics) = &metrics {
            metrics.auth_held_back("credentials");
        }
        return Ok(refuse(
            request,
            &ProxyError::TooManyFailures { retry_after_secs },
        ));
    }
    let access = match auth.authenticate(credentials).await {
        Ok(access) => access,
        Err(failure) => {
            if failure == AuthFailure::Invalid {
                if let Some(address) = peer {
                    auth.failures().failed(address);
                }
                if let Some(metrics) = &metrics {
                    metrics.auth_failure("credentials");
                }
            }
            let error = match failure {
                AuthFailure::Missing => ProxyError::Unauthenticated { presented: false },
                AuthFailure::Invalid => ProxyError::Unauthenticated { presented: true },
                AuthFailure::Unavailable => ProxyError::AuthUnavailable,
            };
            return Ok(refuse(request, &error));
        }
    };
    // Known from here on, refused or not: the audit line names the client.
    if let Some(id) = access.client_id() {
        request.extensions_mut().insert(ClientId(id.to_owned()));
    }
    if let Err(denial) = authorize_request(&access, &request, &route) {
        tracing::info!(
            client_id = access.client_id().unwrap_or("-"),
            "request outside the client's rights"
        );
        return Ok(refuse(request, &ProxyError::Forbidden(denial)));
    }
    request.extensions_mut().insert(access);
    next.call(request).await.map(|r| r.map_into_left_body())
}

fn authorize_request(
    access: &Access,
    request: &ServiceRequest,
    route: &Classified,
) -> Result<(), Denial> {
    let path = request.path();
    // `/status` and `/metrics` reach here only when `auth.status_needs_admin` is set.
    if path == "/admin" || path.starts_with("/admin/") || is_operations_path(path) {
        return access.permits_admin();
    }
    // The tenant segment as the URL wrote it; a percent-encoded variant of a name does not equal
    // the name and is refused for bound clients (fails closed).
    let in_fhir = request
        .match_pattern()
        .is_some_and(|p| p.starts_with(base_of(request).as_str()));
    if in_fhir {
        access.permits_tenant(route.tenant.as_deref())?;
    }
    match route.interaction {
        Some(interaction) => access.permits(interaction),
        None => Ok(()), // no such endpoint: the 404 says so to an authenticated caller
    }
}

/// `/status` and `/metrics`: open, unless `auth.status_needs_admin` says they need an admin (they
/// name tenants and failure reasons).
fn is_operations_path(path: &str) -> bool {
    matches!(path, "/status" | "/metrics")
}

fn base_of(request: &ServiceRequest) -> String {
    request
        .app_data::<web::Data<RouteTable>>()
        .map(|t| t.base_path().to_owned())
        .unwrap_or_default()
}

/// The credentials a request carries: one `Authorization: Bearer` or one `X-API-Key`.
fn credentials(request: &HttpRequest) -> Credentials<'_> {
    let headers = request.headers();
    let authorization: Vec<&HeaderValue> = headers.get_all(header::AUTHORIZATION).collect();
    let api_keys: Vec<&HeaderValue> = headers.get_all(API_KEY_HEADER).collect();
    match (authorization.as_slice(), api_keys.as_slice()) {
        ([], []) => Credentials::Missing,
        ([value], []) => match value.to_str().ok().and_then(bearer_token) {
            Some(token) => Credentials::Bearer(token),
            None => Credentials::Unusable,
        },
        ([], [value]) => match value.to_str().ok().filter(|k| !k.is_empty()) {
            Some(key) => Credentials::ApiKey(key),
            None => Credentials::Unusable,
        },
        // Two credentials, or one header repeated: ambiguous, so neither is tried.
        _ => Credentials::Unusable,
    }
}

fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty() && !token.contains(' '))
        .then_some(token)
}

/// The OperationOutcome for an auth failure, in the negotiated format, with its challenge.
fn refuse<B>(request: ServiceRequest, error: &ProxyError) -> ServiceResponse<EitherBody<B>> {
    let rendering = response::rendering_for(request.request());
    let mut answer = response::error(error, rendering);
    if let Some(challenge) = challenge(error)
        && let Ok(value) = HeaderValue::from_str(&challenge)
    {
        answer.headers_mut().insert(header::WWW_AUTHENTICATE, value);
    }
    request.into_response(answer).map_into_right_body()
}

/// The `WWW-Authenticate` value for an auth error (RFC 6750 §3).
fn challenge(error: &ProxyError) -> Option<String> {
    let code = match error {
        ProxyError::Unauthenticated { presented: false } => None,
        ProxyError::Unauthenticated { presented: true } => Some("invalid_token"),
        ProxyError::Forbidden(_) => Some("insufficient_scope"),
        _ => return None,
    };
    Some(match code {
        None => format!("Bearer realm=\"{REALM}\""),
        Some(code) => format!("Bearer realm=\"{REALM}\", error=\"{code}\""),
    })
}

/// `POST /auth/token`: SMART Backend Services `client_credentials` with a JWT client assertion.
#[tracing::instrument(level = "debug", name = "auth.token", skip_all)]
pub async fn token(request: HttpRequest, body: web::Bytes, auth: web::Data<Auth>) -> HttpResponse {
    let metrics = request.app_data::<web::Data<Metrics>>().cloned();
    let peer = request.peer_addr().map(|a| a.ip());
    if let Some(address) = peer
        && let Err(retry_after_secs) = auth.failures().admit(address)
    {
        if let Some(metrics) = &metrics {
            metrics.auth_held_back("token");
        }
        let mut answer = HttpResponse::TooManyRequests().json(OAuthError::request(format!(
            "too many refused token requests from this address; retry after              {retry_after_secs} seconds"
        )));
        let headers = answer.headers_mut();
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if let Ok(value) = HeaderValue::from_str(&retry_after_secs.to_string()) {
            headers.insert(header::RETRY_AFTER, value);
        }
        return answer;
    }
    let form = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .filter(|v| {
            v.split(';').next().is_some_and(|t| {
                t.trim()
                    .eq_ignore_ascii_case("application/x-www-form-urlencoded")
            })
        })
        .ok_or_else(|| OAuthError::request("the body must be application/x-www-form-urlencoded"))
        .and_then(|_| TokenRequest::from_form(&body));
    let result = match form {
        Ok(form) => auth.issue_token(&form).await,
        Err(error) => Err(error),
    };
    if let Err(error) = &result
        && error.error == "invalid_client"
    {
        // A refused assertion is one guess (and cost a signature check).
        if let Some(address) = peer {
            auth.failures().failed(address);
        }
        if let Some(metrics) = &metrics {
            metrics.auth_failure("token");
        }
    }
    let client = match &result {
        Ok(token) => Some(token.client_id.clone()),
        Err(error) => error.client_id.clone(),
    };
    if let Some(client) = client {
        request.extensions_mut().insert(ClientId(client));
    }
    let mut answer = match result {
        Ok(token) => HttpResponse::Ok().json(token),
        Err(error) => HttpResponse::build(
            StatusCode::from_u16(error.status()).unwrap_or(StatusCode::BAD_REQUEST),
        )
        .json(error),
    };
    // Tokens and refusals must not be cached anywhere on the way (RFC 6749 §5.1).
    let headers = answer.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    answer
}

/// `GET {base}[/{tenant}]/.well-known/smart-configuration`.
pub async fn smart_configuration(
    request: HttpRequest,
    auth: web::Data<Auth>,
    tenants: web::Data<Tenants>,
) -> HttpResponse {
    let rendering = response::rendering_for(&request);
    if let Err(error) = super::tenant::for_request(&tenants, &request) {
        return response::error(&error, rendering);
    }
    match smart::smart_configuration(&auth.registry()) {
        Some(document) => HttpResponse::Ok().json(document),
        None => response::error(&ProxyError::SmartNotConfigured, rendering),
    }
}
