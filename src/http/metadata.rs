//! `GET [base]/metadata`: the CapabilityStatement (R4 http.html §3.1.0.10), in the negotiated
//! format, with an ETag that changes exactly when its content does.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Arc;

use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, web};

use super::response::{self, Failure, query_param};
use super::tenant::RequestTenant;
use crate::auth::Auth;
use crate::error::ProxyError;
use crate::fhir::capability;
use crate::fhir::format::Format;
use crate::fhir::outcome::{Issue, IssueCode};

/// Answers the CapabilityStatement of this server: 200 in the format `_format` or `Accept` asks
/// for (406 when neither can be met), with a weak `ETag` (the same content in JSON and XML is the
/// same statement), and 304 when `If-None-Match` already names it.
pub async fn capability_statement(
    request: HttpRequest,
    state: RequestTenant,
    auth: web::Data<Auth>,
    cache: web::Data<StatementCache>,
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
    let base = base_url(&request, &state.base_path);
    let token_url = auth.is_enabled().then(|| auth.registry().token_url());
    let key = (base, token_url, rendering.format, rendering.pretty);
    let written = match cache.0.get(&key) {
        Some(written) => written,
        None => {
            let written = Arc::new(write_statement(&key.0, key.1.clone(), rendering));
            cache.0.insert(key, written.clone());
            written
        }
    };
    let (etag, body) = (&written.0, &written.1);
    let mut response = if if_none_match(&request, etag) {
        HttpResponse::NotModified().finish()
    } else {
        HttpResponse::Ok()
            .insert_header((header::CONTENT_TYPE, rendering.format.content_type()))
            .body(body.clone())
    };
    insert_etag(&mut response, etag);
    Ok(response)
}

/// The statements written so far, by base URL (as clients reach the server), token URL and
/// rendering: the statement of a running server changes with none of its requests, so it is built,
/// checked and serialized once per key rather than per request. Bounded, since the base URL comes
/// from the request's `Host`.
pub struct StatementCache(moka::sync::Cache<StatementKey, Arc<(String, web::Bytes)>>);

type StatementKey = (String, Option<Option<String>>, Format, bool);

impl Default for StatementCache {
    fn default() -> Self {
        StatementCache(moka::sync::Cache::new(64))
    }
}

/// The statement for `base` in `rendering`: its `ETag` and its body.
fn write_statement(
    base: &str,
    token_url: Option<Option<String>>,
    rendering: response::Rendering,
) -> (String, web::Bytes) {
    let security = match token_url {
        Some(token_url) => capability::Security::Required { token_url },
        None => capability::Security::Off,
    };
    let statement = capability::capability_statement(base, env!("CARGO_PKG_VERSION"), &security);
    let body = crate::fhir::format::serialize(&statement, rendering.format, rendering.pretty);
    (etag(&statement), web::Bytes::from(body))
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
