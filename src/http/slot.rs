//! `GET [base]/Slot`: free slots from Salesforce Get Slots ([`crate::booking::search::slots`]), as
//! a FHIR `searchset` Bundle in the negotiated format.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse};

use super::metadata::base_url;
use super::response::{self, Failure, OrRender};
use super::tenant::RequestTenant;
use crate::booking;
use crate::error::ProxyError;
use crate::fhir::search::SearchRequest;
use crate::mapping::slots::{SEARCH_PARAMETERS, SlotQuery};

/// Searches free slots: `GET [base]/Slot?schedule.actor=Practitioner/{id}&start=ge{date}…`.
///
/// 200 with a `searchset` Bundle. 400 for a malformed search (unknown parameter, bad date or
/// token, no lower bound on `start`, no `schedule.actor`); the use case's errors otherwise.
#[tracing::instrument(level = "debug", name = "fhir.search_slots", skip_all)]
pub async fn search(request: HttpRequest, tenant: RequestTenant) -> Result<HttpResponse, Failure> {
    let rendering = response::negotiate(&request, None)?;
    let split = SearchRequest::split(
        request.query_string(),
        &SEARCH_PARAMETERS,
        response::is_lenient(&request),
    )
    .map_err(ProxyError::Unparseable)
    .or_render(rendering)?;
    let query = SlotQuery::parse(&split.query)
        .map_err(ProxyError::Unparseable)
        .or_render(rendering)?;
    let base = base_url(&request, &tenant.base_path);
    let bundle = booking::search::slots(&tenant, &query, &split, &base)
        .await
        .or_render(rendering)?;
    Ok(response::resource(StatusCode::OK, &bundle, rendering))
}
