//! Free slots from Salesforce Get Slots: `GET [base]/Slot` as a `searchset` of Slots, and
//! `Appointment/$find` as a `searchset` of proposed Appointments.
//!
//! The queries are read and mapped by [`crate::mapping::slots`] and [`crate::mapping::find`];
//! these use cases decide what a mapping problem means for the caller, make the lookups the
//! search needs once everything else is known to be right, and call Salesforce only for a search
//! that can match something.

use fhirbolt::model::r4::resources::Bundle;

use crate::error::ProxyError;
use crate::fhir::outcome::{Issue, IssueCode};
use crate::fhir::search::SearchRequest;
use crate::mapping::find::{
    FindQuery, find_bundle_with, find_request, find_request_with, needed_find_lookups,
};
use crate::mapping::lookup::{ResolvedIds, is_pending_lookup};
use crate::mapping::slots::{
    SlotQuery, needed_slot_lookups, search_bundle, slots_request, slots_request_with,
};
use crate::salesforce::lookup;
use crate::tenants::Tenant;

/// Searches free slots for `query` (`GET [base]/Slot?schedule.actor=…&start=ge…`); `base` is the
/// absolute FHIR base the Bundle's URLs start with.
///
/// The Bundle is empty when only non-free statuses are asked for, or the `start` window is
/// empty: Salesforce is then not called.
///
/// # Errors
/// 400 for a search that cannot be carried out as asked (no `schedule.actor`, an actor in a form
/// or of a kind that cannot be searched), 422 when an actor has no Salesforce id or the mapping
/// cannot choose a work type or codes; Salesforce's own failures as for a booking.
pub async fn slots(
    tenant: &Tenant,
    query: &SlotQuery,
    split: &SearchRequest,
    base: &str,
) -> Result<Bundle, ProxyError> {
    let mapping = &tenant.mapping;
    let keys = needed_slot_lookups(query, mapping);
    let get_slots = if keys.is_empty() {
        slots_request(query, mapping).map_err(mapping_error)?
    } else {
        // Every other problem first: a search that cannot run costs no lookup.
        if let Err(issues) = slots_request(query, mapping) {
            pending_or_problems(issues)?;
        }
        let resolved = lookup::resolve(&tenant.salesforce, &mapping.lookup_cache, &keys)
            .await
            .map_err(ProxyError::Lookup)?;
        slots_request_with(query, mapping, &resolved).map_err(mapping_error)?
    };
    let answer = if query.can_match() {
        tenant.salesforce.get_slots(&get_slots).await?
    } else {
        Vec::new()
    };
    let path = format!("{base}/Slot");
    let mut bundle = search_bundle(&answer, &get_slots, query, base, &path);
    split.page_bundle(&mut bundle, &path);
    tracing::info!(
        resources = get_slots.resources.len(),
        slots = bundle.entry.len(),
        "slots found"
    );
    Ok(bundle)
}

/// Runs `$find`: proposed Appointments for the free slots of the named practitioners.
///
/// # Errors
/// 400 for a call that cannot be carried out (no practitioner), 422 when a practitioner has no
/// Salesforce id or the mapping cannot choose a work type or codes; Salesforce's own failures as
/// for a booking.
pub async fn find(
    tenant: &Tenant,
    find: &FindQuery,
    split: &SearchRequest,
    base: &str,
) -> Result<Bundle, ProxyError> {
    let mapping = &tenant.mapping;
    let keys = needed_find_lookups(find, mapping);
    let resolved = if keys.is_empty() {
        ResolvedIds::default()
    } else {
        // Every other problem first: an operation that cannot run costs no lookup.
        if let Err(issues) = find_request(find, mapping) {
            pending_or_problems(issues)?;
        }
        lookup::resolve(&tenant.salesforce, &mapping.lookup_cache, &keys)
            .await
            .map_err(ProxyError::Lookup)?
    };
    let get_slots = find_request_with(find, mapping, &resolved).map_err(mapping_error)?;
    let answer = tenant.salesforce.get_slots(&get_slots).await?;
    let path = format!("{base}/Appointment/$find");
    let mut bundle = find_bundle_with(&answer, find, mapping, &resolved, &path);
    split.page_bundle(&mut bundle, &path);
    tracing::info!(
        resources = get_slots.resources.len(),
        proposed = bundle.entry.len(),
        "proposed appointments found"
    );
    Ok(bundle)
}

/// `Ok` when the only issues are lookups not made yet; else the error of the others.
fn pending_or_problems(issues: Vec<Issue>) -> Result<(), ProxyError> {
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
fn mapping_error(issues: Vec<Issue>) -> ProxyError {
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
