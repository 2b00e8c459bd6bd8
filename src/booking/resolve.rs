//! The one resolve-then-map step every use case shares: Appointment (parsed, R4-checked) → Book
//! Appointment request. Also used by the `translate` command, so the CLI and the HTTP handlers give
//! the same answer for the same input.
//!
//! A mapping with `[[ids.lookup]]` rules needs Salesforce's answers before it can finish:
//! [`map_resolving`] makes those lookups (through the org's cache) once everything else about the
//! Appointment is known to be bookable; [`translate_cached`] uses only answers already cached, for the
//! `$validate` dry run; [`translate`] (the CLI) makes none and says so.

use fhirbolt::model::r4::resources::Appointment;

use crate::error::ProxyError;
use crate::fhir::format::Format;
use crate::fhir::outcome::Issue;
use crate::fhir::parse::{parse_appointment, read_appointment};
use crate::fhir::rules::{RuleOptions, check_appointment};
use crate::mapping::lookup::{is_pending_lookup, needed_lookups};
use crate::mapping::{Mapping, book_request, book_request_with};
use crate::salesforce::SalesforceClient;
use crate::salesforce::lookup;
use crate::salesforce::wire::BookAppointmentRequest;

/// The note in front of the answer of [`translate`] when participants need lookups.
pub const NO_LOOKUPS_NOTE: &str = "some participants get their Salesforce id from a lookup by \
     external id (the mapping's ids.lookup rules), which only the running proxy makes when it \
     books: translating offline asks Salesforce nothing, so the request cannot be completed here";

/// Parses, checks and maps an Appointment body, making no external-id lookups.
///
/// # Errors
/// [`ProxyError::Unparseable`] when the body is not an Appointment (400; 503 when no parser
/// thread could be started, a `transient` issue), or
/// [`ProxyError::Unprocessable`] (422) with every R4 rule or mapping problem found; when the only
/// thing missing is ids that lookups would give, [`NO_LOOKUPS_NOTE`] and one informational issue
/// per such participant.
pub fn translate(
    body: &[u8],
    format: Format,
    mapping: &Mapping,
) -> Result<(Appointment, BookAppointmentRequest), ProxyError> {
    let appointment = parse_appointment(body, format).map_err(ProxyError::Unparseable)?;
    let request = check_and_map(&appointment, mapping).map_err(|error| match error {
        ProxyError::Unprocessable(issues) if issues.iter().all(is_pending_lookup) => {
            let mut all = vec![Issue::information(NO_LOOKUPS_NOTE)];
            all.extend(issues);
            ProxyError::Unprocessable(all)
        }
        other => other,
    })?;
    Ok((appointment, request))
}

/// Checks a parsed Appointment against the R4 rules and maps it, making no external-id lookups.
///
/// # Errors
/// [`ProxyError::Unprocessable`] (422) with every R4 rule or mapping problem found.
pub fn check_and_map(
    appointment: &Appointment,
    mapping: &Mapping,
) -> Result<BookAppointmentRequest, ProxyError> {
    check_rules(appointment, mapping)?;
    book_request(appointment, mapping).map_err(ProxyError::Unprocessable)
}

/// Checks a parsed Appointment against the R4 rules, then [`map_resolving`].
///
/// # Errors
/// As [`map_resolving`], after the R4 rules' 422.
pub async fn check_and_map_resolving(
    appointment: &Appointment,
    mapping: &Mapping,
    salesforce: &SalesforceClient,
) -> Result<BookAppointmentRequest, ProxyError> {
    check_rules(appointment, mapping)?;
    map_resolving(appointment, mapping, salesforce).await
}

/// Maps an R4-checked Appointment, looking up (through the org's cache) the ids its
/// participants have under `[[ids.lookup]]` rules. Salesforce is asked only when nothing else is
/// wrong: an Appointment that cannot be booked anyway costs no API call.
///
/// # Errors
/// [`ProxyError::Unprocessable`] (422) with every mapping problem found, a lookup that found no
/// record (`not-found`) or several (`multiple-matches`) among them; [`ProxyError::Lookup`] when a
/// lookup call failed.
pub async fn map_resolving(
    appointment: &Appointment,
    mapping: &Mapping,
    salesforce: &SalesforceClient,
) -> Result<BookAppointmentRequest, ProxyError> {
    let keys = needed_lookups(appointment, mapping);
    let without = book_request(appointment, mapping);
    if keys.is_empty() {
        return without.map_err(ProxyError::Unprocessable);
    }
    if let Err(issues) = without {
        let problems: Vec<Issue> = issues
            .into_iter()
            .filter(|issue| !is_pending_lookup(issue))
            .collect();
        if !problems.is_empty() {
            return Err(ProxyError::Unprocessable(problems));
        }
    }
    let resolved = lookup::resolve(salesforce, &mapping.lookup_cache, &keys)
        .await
        .map_err(ProxyError::Lookup)?;
    book_request_with(appointment, mapping, &resolved).map_err(ProxyError::Unprocessable)
}

/// Parses, checks and maps an Appointment body for a dry run: lookups are answered from the org's
/// cache only, never by Salesforce.
///
/// # Errors
/// As [`translate`]; a participant whose lookup is not cached gets an informational issue (see
/// [`is_pending_lookup`]), one whose cached answer is "none" or "several" the 422 issue a booking
/// would get.
pub async fn translate_cached(
    body: &[u8],
    format: Format,
    mapping: &Mapping,
    salesforce: &SalesforceClient,
) -> Result<(Appointment, BookAppointmentRequest), ProxyError> {
    let appointment = read_appointment(body.to_vec(), format)
        .await
        .map_err(ProxyError::Unparseable)?;
    check_rules(&appointment, mapping)?;
    let keys = needed_lookups(&appointment, mapping);
    let resolved = lookup::cached(salesforce, &mapping.lookup_cache, &keys).await;
    let request =
        book_request_with(&appointment, mapping, &resolved).map_err(ProxyError::Unprocessable)?;
    Ok((appointment, request))
}

pub(super) fn check_rules(appointment: &Appointment, mapping: &Mapping) -> Result<(), ProxyError> {
    let issues = check_appointment(
        appointment,
        &RuleOptions {
            allow_end_from_duration: mapping.end_from_duration,
        },
    );
    // R4 problems come first: mapping an invalid resource would only add noise.
    if issues.is_empty() {
        Ok(())
    } else {
        Err(ProxyError::Unprocessable(issues))
    }
}
