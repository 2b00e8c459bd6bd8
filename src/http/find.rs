//! `[base]/Appointment/$find`: proposed Appointments for the free slots of named practitioners
//! (Argonaut Scheduling / IHE ITI-115), by `GET` with the parameters in the query string or by
//! `POST` with a `Parameters` body (JSON or XML).
//!
//! Reading and mapping live in [`crate::mapping::find`] and [`crate::fhir::parameters`]; this
//! handler decides the status of what goes wrong, calls Salesforce Get Slots, and renders the
//! `searchset` Bundle (the operation's single `return` parameter, answered as the resource itself).

use actix_web::http::{Method, StatusCode};
use actix_web::{HttpRequest, HttpResponse, web};
use fhirbolt::model::r4::resources::Bundle;

use super::AppState;
use super::appointment::read_body;
use super::metadata::base_url;
use super::response;
use super::slot::{mapping_error, pending_or_problems};
use super::tenant::Tenant;
use crate::error::ProxyError;
use crate::fhir::outcome::{Issue, IssueCode};
use crate::fhir::parameters::read_parameters;
use crate::fhir::search::SearchRequest;
use crate::mapping::find::{
    FIND_PARAMETERS, FindQuery, find_bundle_with, find_request, find_request_with,
    needed_find_lookups,
};
use crate::mapping::lookup::ResolvedIds;
use crate::salesforce::lookup;

/// Runs `$find`.
///
/// 200 with a `searchset` Bundle of proposed Appointments (empty when no slot is free). 400 for a
/// malformed call (a missing or bad `start`/`end`, an unsupported parameter, no practitioner),
/// 415/413 for a body that cannot be read, 422 when a practitioner has no Salesforce id or the
/// mapping cannot choose a work type or codes; Salesforce's own failures as for a booking.
#[tracing::instrument(name = "fhir.find_appointments", skip_all)]
pub async fn find(request: HttpRequest, payload: web::Payload, state: Tenant) -> HttpResponse {
    let (body_format, rendering) = match response::formats(&request) {
        Ok(formats) => formats,
        Err(answer) => return *answer,
    };
    let lenient = response::is_lenient(&request);
    let result = async {
        let (find, mut split) = if request.method() == Method::POST {
            // The operation's parameters are in the body; the URL may carry only result
            // parameters (`_count`, `_format`, `_pretty`).
            let split = SearchRequest::split(request.query_string(), &[], lenient)
                .map_err(ProxyError::Unparseable)?;
            if !split.query.is_empty() {
                return Err(ProxyError::Unparseable(Issue::general(
                    IssueCode::NotSupported,
                    "POST $find takes its parameters in the Parameters body; the URL's query may \
                     carry only _count, _format and _pretty",
                )));
            }
            let format = body_format.map_err(ProxyError::UnsupportedMediaType)?;
            let body = read_body(&request, payload, state.body_limit).await?;
            let mut parameters = read_parameters(&body, format).map_err(ProxyError::Unparseable)?;
            if lenient {
                parameters.retain(|p| FIND_PARAMETERS.contains(&p.name.as_str()));
            }
            let find = FindQuery::from_parameters(&parameters).map_err(ProxyError::Unparseable)?;
            (find, split)
        } else {
            let split = SearchRequest::split(request.query_string(), &FIND_PARAMETERS, lenient)
                .map_err(ProxyError::Unparseable)?;
            let find =
                FindQuery::from_query_string(&split.query).map_err(ProxyError::Unparseable)?;
            (find, split)
        };
        if request.method() == Method::POST {
            // The links are GET URLs of the same search.
            split.used.extend(find.as_query_pairs());
        }
        run(&request, &state, &find, &split).await
    }
    .await;
    match result {
        Ok(bundle) => response::resource(StatusCode::OK, &bundle, rendering),
        Err(error) => {
            tracing::info!(
                http_status = error.outcome().status.as_u16(),
                "$find failed"
            );
            response::error(&error, rendering)
        }
    }
}

async fn run(
    request: &HttpRequest,
    state: &AppState,
    find: &FindQuery,
    split: &SearchRequest,
) -> Result<Bundle, ProxyError> {
    let keys = needed_find_lookups(find, &state.mapping);
    let resolved = if keys.is_empty() {
        ResolvedIds::default()
    } else {
        // Every other problem first: an operation that cannot run costs no lookup.
        if let Err(issues) = find_request(find, &state.mapping) {
            pending_or_problems(issues)?;
        }
        lookup::resolve(&state.salesforce, &state.mapping.lookup_cache, &keys)
            .await
            .map_err(ProxyError::Lookup)?
    };
    let get_slots = find_request_with(find, &state.mapping, &resolved).map_err(mapping_error)?;
    let answer = state.salesforce.get_slots(&get_slots).await?;
    let path = format!("{}/Appointment/$find", base_url(request, &state.base_path));
    let mut bundle = find_bundle_with(&answer, find, &state.mapping, &resolved, &path);
    split.page_bundle(&mut bundle, &path);
    tracing::info!(
        resources = get_slots.resources.len(),
        proposed = bundle.entry.len(),
        "proposed appointments found"
    );
    Ok(bundle)
}
