//! `GET [base]/metadata`: the CapabilityStatement (R4 http.html §3.1.0.10), in the negotiated
//! format, with an ETag that changes exactly when its content does.

use std::hash::{DefaultHasher, Hash, Hasher};

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, web};

use super::response::{self, Failure, query_param};
use super::tenant::RequestTenant;
use crate::auth::Auth;
use crate::error::ProxyError;
use crate::fhir::capability;
use crate::fhir::outcome::{Issue, IssueCode};

/// Answers the CapabilityStatement of this server: 200 in the format `_format` or `Accept` asks
/// for (406 when neither can be met), with a weak `ETag` (the same content in JSON and XML is the
/// same statement), and 304 when `If-None-Match` already names it.
pub async fn capability_statement(
    request: HttpRequest,
    state: RequestTenant,
    auth: web::Data<Auth>,
) -> Result<HttpResponse, Failure> {
    let rendering = response::negotiate(&request, None)?;
    // `mode=normative` and `mode=terminology` ask for other statements this server cannot give;
    // answering the full one instead would claim a normative subset or a TerminologyCapabilities.
    if query_param(&request, "mode").is_some_and(|m| m != "full") {
        let error = ProxyError::Unparseable(Issue::general(
            IssueCode::NotSupported,
            "only mode=full is supported on metadata: this server has no normative subset and no \
             terminology capabilities",
        ));
        return Err(Failure::new(error, rendering));
    }
    let security = if auth.is_enabled() {
        capability::Security::Required {
            token_url: auth.registry().token_url(),
        }
    } else {
        capability::Security::Off
    };
    let statement = capability::capability_statement(
        &base_url(&request, &state.base_path),
        env!("CARGO_PKG_VERSION"),
        &security,
    );
    let etag = etag(&statement);
    if if_none_match(&request, &etag) {
        let mut response = HttpResponse::NotModified().finish();
        insert_etag(&mut response, &etag);
        return Ok(response);
    }
    let mut response = response::resource(StatusCode::OK, &statement, rendering);
    insert_etag(&mut response, &etag);
    Ok(response)
}

/// The absolute FHIR base URL as the client reached it (scheme and host from the request,
/// honouring `Forwarded` and `X-Forwarded-*` from a reverse proxy), e.g.
/// `https://proxy.example.org/fhir`. Falls back to the bare base path when the host is not a plain
/// host name, so odd header bytes never reach a response.
pub(crate) fn base_url(request: &HttpRequest, base_path: &str) -> String {
    let info = request.connection_info();
    let (scheme, host) = (info.scheme(), info.host());
    let plain_host = !host.is_empty()
        && host.len() <= 255
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-.:[]".contains(&b));
    if matches!(scheme, "http" | "https") && plain_host {
        format!("{scheme}://{host}{base_path}")
    } else {
        base_path.to_owned()
    }
}

/// A weak ETag over the statement's JSON: the same content gives the same tag, in any format.
fn etag(statement: &fhirbolt::model::r4::resources::CapabilityStatement) -> String {
    let json = fhirbolt::json::to_vec(statement, None).unwrap_or_default();
    let mut hasher = DefaultHasher::new();
    json.hash(&mut hasher);
    format!("W/\"{:016x}\"", hasher.finish())
}

fn insert_etag(response: &mut HttpResponse, etag: &str) {
    if let Ok(value) = HeaderValue::from_str(etag) {
        response.headers_mut().insert(header::ETAG, value);
    }
}

/// Whether `If-None-Match` names `etag` (or is `*`), compared weakly as RFC 9110 §13.1.2 says.
fn if_none_match(request: &HttpRequest, etag: &str) -> bool {
    let opaque = |tag: &str| tag.trim().trim_start_matches("W/").to_owned();
    request
        .headers()
        .get_all(header::IF_NONE_MATCH)
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|tag| tag.trim() == "*" || opaque(tag) == opaque(etag))
}
