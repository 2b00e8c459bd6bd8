//! `GET [base]/Slot`: free slots from Salesforce Get Slots, as a FHIR `searchset` Bundle.
//!
//! The query is read and mapped by [`crate::mapping::slots`]; this handler decides the status of
//! what goes wrong, calls Salesforce only for a search that can match something, and renders the
//! Bundle in the negotiated format.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse};
use fhirbolt::model::r4::resources::Bundle;

use super::AppState;
use super::metadata::base_url;
use super::response;
use super::tenant::Tenant;
use crate::error::ProxyError;
use crate::fhir::outcome::{Issue, IssueCode};
use crate::fhir::search::SearchRequest;
use crate::mapping::lookup::is_pending_lookup;
use crate::mapping::slots::{
    SEARCH_PARAMETERS, SlotQuery, needed_slot_lookups, search_bundle, slots_request,
    slots_request_with,
};
use crate::salesforce::lookup;

/// Searches free slots: `GET [base]/Slot?schedule.actor=Practitioner/{id}&start=ge{date}…`.
///
/// 200 with a `searchset` Bundle (empty when only non-free statuses are asked for, or the `start`
/// window is empty: Salesforce is then not called). 400 for a malformed search (unknown
/// parameter, bad date or token, no lower bound on `start`, no `schedule.actor`), 422 when an
/// actor has no Salesforce id or the mapping cannot choose a work type or codes; Salesforce's own
/// failures as for a booking.
#[tracing::instrument(name = "fhir.search_slots", skip_all)]
pub async fn search(request: HttpRequest, state: Tenant) -> HttpResponse {
    let rendering = match response::negotiate(&request, None) {
        Ok(r) => r,
        Err((error, rendering)) => return response::error(&error, rendering),
    };
    match find(&request, &state).await {
        Ok(bundle) => response::resource(StatusCode::OK, &bundle, rendering),
        Err(error) => {
            tracing::info!(
                http_status = error.outcome().status.as_u16(),
                "slot search failed"
            );
            response::error(&error, rendering)
        }
    }
}

async fn find(request: &HttpRequest, state: &AppState) -> Result<Bundle, ProxyError> {
    let split = SearchRequest::split(
        request.query_string(),
        &SEARCH_PARAMETERS,
        response::is_lenient(request),
    )
    .map_err(ProxyError::Unparseable)?;
    let query = SlotQuery::parse(&split.query).map_err(ProxyError::Unparseable)?;
    let keys = needed_slot_lookups(&query, &state.mapping);
    let get_slots = if keys.is_empty() {
        slots_request(&query, &state.mapping).map_err(mapping_error)?
    } else {
        // Every other problem first: a search that cannot run costs no lookup.
        if let Err(issues) = slots_request(&query, &state.mapping) {
            pending_or_problems(issues)?;
        }
        let resolved = lookup::resolve(&state.salesforce, &state.mapping.lookup_cache, &keys)
            .await
            .map_err(ProxyError::Lookup)?;
        slots_request_with(&query, &state.mapping, &resolved).map_err(mapping_error)?
    };
    let answer = if query.can_match() {
        state.salesforce.get_slots(&get_slots).await?
    } else {
        Vec::new()
    };
    let base = base_url(request, &state.base_path);
    let path = format!("{base}/Slot");
    let mut bundle = search_bundle(&answer, &get_slots, &query, &base, &path);
    split.page_bundle(&mut bundle, &path);
    tracing::info!(
        resources = get_slots.resources.len(),
        slots = bundle.entry.len(),
        "slots found"
    );
    Ok(bundle)
}

/// `Ok` when the only issues are lookups not made yet; else the error of the others.
pub(crate) fn pending_or_problems(issues: Vec<Issue>) -> Result<(), ProxyError> {
    let problems: Vec<Issue> = issues
        .into_iter()
        .filter(|issue| !is_pending_lookup(issue))
        .collect();
    if problems.is_empty() {
        Ok(())
    } else {
        Err(mapping_error(problems))
    }
}

/// A search missing a required parameter, or naming an actor in a form or of a kind that cannot
/// be searched, is malformed: 400 with the first such issue. Otherwise the search is well-formed
/// but the mapping cannot carry it out (no Salesforce id, a rejected code, no work type): 422
/// with every issue, as for a booking.
pub(crate) fn mapping_error(issues: Vec<Issue>) -> ProxyError {
    let malformed = issues.iter().find(|i| {
        matches!(
            i.code,
            IssueCode::Required | IssueCode::Invalid | IssueCode::NotSupported
        )
    });
    match malformed {
        Some(issue) => ProxyError::Unparseable(issue.clone()),
        None => ProxyError::Unprocessable(issues),
    }
}
