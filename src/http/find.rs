//! `[base]/Appointment/$find`: proposed Appointments for the free slots of named practitioners
//! (Argonaut Scheduling / IHE ITI-115), by `GET` with the parameters in the query string or by
//! `POST` with a `Parameters` body (JSON or XML).
//!
//! Reading lives in [`crate::mapping::find`] and [`crate::fhir::parameters`], the search in
//! [`crate::booking::search::find`]; this handler reads the call and renders the `searchset`
//! Bundle (the operation's single `return` parameter, answered as the resource itself).

use actix_web::http::{Method, StatusCode};
use actix_web::{HttpRequest, HttpResponse, web};

use super::body::read_body;
use super::metadata::base_url;
use super::response::{self, Failure, OrRender};
use super::tenant::RequestTenant;
use crate::booking;
use crate::error::ProxyError;
use crate::fhir::outcome::{Issue, IssueCode};
use crate::fhir::parameters::read_parameters;
use crate::fhir::search::SearchRequest;
use crate::mapping::find::{FIND_PARAMETERS, FindQuery};
use crate::tenants::Tenant;

/// Runs `$find`.
///
/// 200 with a `searchset` Bundle of proposed Appointments (empty when no slot is free). 400 for a
/// malformed call (a missing or bad `start`/`end`, an unsupported parameter, no practitioner),
/// 415/413 for a body that cannot be read; the use case's errors otherwise.
#[tracing::instrument(level = "debug", name = "fhir.find_appointments", skip_all)]
pub async fn find(
    request: HttpRequest,
    payload: web::Payload,
    tenant: RequestTenant,
) -> Result<HttpResponse, Failure> {
    let (body_format, rendering) = response::formats(&request)?;
    let (find, split) = read_call(&request, payload, &tenant, body_format)
        .await
        .or_render(rendering)?;
    let base = base_url(&request, &tenant.base_path);
    let bundle = booking::search::find(&tenant, &find, &split, &base)
        .await
        .or_render(rendering)?;
    Ok(response::resource(StatusCode::OK, &bundle, rendering))
}

/// The operation's parameters and the search's result parameters (`_count`).
async fn read_call(
    request: &HttpRequest,
    payload: web::Payload,
    tenant: &Tenant,
    body_format: Result<crate::fhir::format::Format, Issue>,
) -> Result<(FindQuery, SearchRequest), ProxyError> {
    let lenient = response::is_lenient(request);
    if request.method() != Method::POST {
        let split = SearchRequest::split(request.query_string(), &FIND_PARAMETERS, lenient)
            .map_err(ProxyError::Unparseable)?;
        let find = FindQuery::from_query_string(&split.query).map_err(ProxyError::Unparseable)?;
        return Ok((find, split));
    }
    // The operation's parameters are in the body; the URL may carry only result parameters
    // (`_count`, `_format`, `_pretty`).
    let mut split = SearchRequest::split(request.query_string(), &[], lenient)
        .map_err(ProxyError::Unparseable)?;
    if !split.query.is_empty() {
        return Err(ProxyError::Unparseable(Issue::general(
            IssueCode::NotSupported,
            "POST $find takes its parameters in the Parameters body; the URL's query may carry \
             only _count, _format and _pretty",
        )));
    }
    let format = body_format.map_err(ProxyError::UnsupportedMediaType)?;
    let body = read_body(request, payload, tenant.body_limit).await?;
    let mut parameters = read_parameters(&body, format).map_err(ProxyError::Unparseable)?;
    if lenient {
        parameters.retain(|p| FIND_PARAMETERS.contains(&p.name.as_str()));
    }
    let find = FindQuery::from_parameters(&parameters).map_err(ProxyError::Unparseable)?;
    // The links are GET URLs of the same search.
    split.used.extend(find.as_query_pairs());
    Ok((find, split))
}
