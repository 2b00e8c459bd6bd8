//! Creating (booking) an appointment, idempotently by business identifier, and the criteria of a
//! conditional create.

use chrono::Utc;
use fhirbolt::model::r4::resources::Appointment;

use super::resolve::check_and_map_resolving;
use super::{Done, Effect};
use crate::error::ProxyError;
use crate::fhir::format::Format;
use crate::fhir::outcome::{Issue, IssueCode};
use crate::fhir::parse::read_appointment;
use crate::fhir::search::IdentifierCriteria;
use crate::mapping::booked_appointment;
use crate::salesforce::wire::BookAppointmentRequest;
use crate::store::{AppointmentRecord, Claim, ClaimOutcome, StoreError, StoredAppointment};
use crate::tenants::Tenant;

/// Creates (books) an appointment, idempotently: when `criteria` (from `If-None-Exist`, or
/// without it one of the resource's own identifiers) match one earlier booking, that booking is
/// answered ([`Effect::Found`]) and nothing is sent; several matches are a 412.
///
/// The identifiers are claimed in the store before Salesforce is called (so a second request
/// with them, on any replica, gets a 409 instead of a second booking, and nothing is booked that
/// could not be recorded), and the booking is recorded durably, releasing the claim, before it
/// is answered.
///
/// # Errors
/// Every [`ProxyError`] of checking, mapping, the store and Salesforce.
pub async fn create(
    tenant: &Tenant,
    appointment: Appointment,
    criteria: Option<IdentifierCriteria>,
) -> Result<Done, ProxyError> {
    let prepared = prepare(tenant, appointment, criteria).await?;
    book(tenant, prepared).await
}

/// An Appointment checked and mapped, ready to be booked: what a transaction holds between
/// checking every entry and booking the first.
pub struct Prepared {
    appointment: Appointment,
    criteria: Option<IdentifierCriteria>,
    request: BookAppointmentRequest,
}

/// Checks and maps an Appointment for booking (lookups included), and settles the criteria that
/// find an earlier booking of it: the given ones, else the resource's own identifiers.
///
/// # Errors
/// Every [`ProxyError`] of checking and mapping.
pub async fn prepare(
    tenant: &Tenant,
    appointment: Appointment,
    criteria: Option<IdentifierCriteria>,
) -> Result<Prepared, ProxyError> {
    // Without a condition, the resource's own identifiers: any one booked before matches.
    let criteria = criteria.or_else(|| {
        let own = identifier_keys(&appointment);
        (!own.is_empty()).then(|| IdentifierCriteria { all_of: vec![own] })
    });
    let request =
        check_and_map_resolving(&appointment, &tenant.mapping, &tenant.salesforce).await?;
    Ok(Prepared {
        appointment,
        criteria,
        request,
    })
}

/// Books a prepared Appointment, unless its criteria find an earlier booking (see [`create`]).
///
/// # Errors
/// Every [`ProxyError`] of the store and Salesforce.
pub async fn book(tenant: &Tenant, prepared: Prepared) -> Result<Done, ProxyError> {
    let Prepared {
        appointment,
        criteria,
        request,
    } = prepared;
    let keys = criteria
        .as_ref()
        .map(IdentifierCriteria::keys)
        .unwrap_or_default();
    // The claim looks for an earlier booking itself, in the same write: no read beforehand.
    let claim = match tenant.store.claim(&keys).await? {
        ClaimOutcome::Claimed(claim) => claim,
        ClaimOutcome::Booked(found) => {
            // With one `identifier` parameter (or the resource's own identifiers) what the claim
            // found is the match; with several, each must have found it.
            let found = match &criteria {
                Some(c) if c.all_of.len() > 1 => matching(tenant, Some(c)).await?,
                _ => found,
            };
            let done = one_booking(found).await?.ok_or(ProxyError::InProgress {
                expires_in: std::time::Duration::ZERO,
            })?;
            tracing::info!("an appointment with this identifier was booked before; nothing sent");
            return Ok(done);
        }
        ClaimOutcome::Busy { expires_in } => return Err(ProxyError::InProgress { expires_in }),
    };
    let outcome = match tenant.salesforce.book_appointment(&request).await {
        Ok(outcome) => outcome,
        Err(error) => {
            // Not booked (or not known to be): the identifiers are free again at once. A claim
            // that cannot be released expires.
            let _ = claim.release().await;
            return Err(error.into());
        }
    };
    let id = outcome.id.clone().unwrap_or_default();
    tracing::debug!(salesforce_id = %id, "appointment booked");
    let booked = booked_appointment(
        &appointment,
        &id,
        outcome.status.as_deref(),
        &tenant.mapping,
        Utc::now(),
    );
    let record = appointment_record(&booked, identifier_keys(&appointment));
    remember(tenant, &record, Some(claim))
        .await
        .map_err(|_| ProxyError::NotRecorded { id, booked: true })?;
    Ok(Done {
        effect: Effect::Booked,
        appointment: booked,
        json: Some(record.resource),
    })
}

/// The criteria of a conditional create: `If-None-Exist`, or the same criteria as the query of
/// `POST [base]/Appointment` (as some client libraries send them), never both. `_format` and
/// `_pretty` on the URL are no criteria.
///
/// # Errors
/// 400 when the criteria cannot be evaluated (naming the parameter), or come twice.
pub fn criteria(
    if_none_exist: Option<&str>,
    query: &str,
) -> Result<Option<IdentifierCriteria>, ProxyError> {
    const NOT_CRITERIA: [&str; 2] = ["_format", "_pretty"];
    let in_query = url::form_urlencoded::parse(query.as_bytes())
        .any(|(name, _)| !NOT_CRITERIA.contains(&name.as_ref()));
    let refused =
        |text: String| ProxyError::Unparseable(Issue::general(IssueCode::NotSupported, text));
    match (if_none_exist, in_query) {
        (Some(_), true) => Err(refused(
            "a conditional create names its criteria once: in If-None-Exist or in the URL's \
             query, not both"
                .to_owned(),
        )),
        (Some(header), false) => IdentifierCriteria::parse(header, &[])
            .map(Some)
            .map_err(|reason| refused(format!("If-None-Exist: {reason}"))),
        (None, true) => IdentifierCriteria::parse(query, &NOT_CRITERIA)
            .map(Some)
            .map_err(|reason| {
                refused(format!(
                    "POST Appointment with a query is a conditional create, like If-None-Exist: \
                     {reason}"
                ))
            }),
        (None, false) => Ok(None),
    }
}

/// The appointments recorded that meet the criteria: for each `identifier` parameter, those with
/// any of its identifiers; with several parameters, those every one of them found.
async fn matching(
    tenant: &Tenant,
    criteria: Option<&IdentifierCriteria>,
) -> Result<Vec<StoredAppointment>, ProxyError> {
    let Some(criteria) = criteria else {
        return Ok(Vec::new());
    };
    let mut found: Option<Vec<StoredAppointment>> = None;
    for any_of in &criteria.all_of {
        let these = tenant.store.find_by_identifiers(any_of).await?;
        found = Some(match found {
            None => these,
            Some(before) => before
                .into_iter()
                .filter(|a| these.iter().any(|t| t.id == a.id))
                .collect(),
        });
    }
    Ok(found.unwrap_or_default())
}

/// The resource's business identifiers as `system|value`.
pub(super) fn identifier_keys(appointment: &Appointment) -> Vec<String> {
    appointment
        .identifier
        .iter()
        .filter_map(|i| {
            let system = i.system.as_ref()?.value.as_deref()?;
            let value = i.value.as_ref()?.value.as_deref()?;
            Some(format!("{system}|{value}"))
        })
        .collect()
}

/// The one earlier booking found, none, or several (412).
async fn one_booking(mut found: Vec<StoredAppointment>) -> Result<Option<Done>, ProxyError> {
    match found.len() {
        0 => Ok(None),
        1 => {
            let stored = found.remove(0).resource.into_bytes();
            let appointment = read_appointment(stored, Format::Json)
                .await
                .map_err(|_| ProxyError::Store(StoreError::corrupt()))?;
            Ok(Some(Done {
                effect: Effect::Found,
                appointment,
                json: None,
            }))
        }
        _ => Err(ProxyError::MultipleMatches),
    }
}

/// What the store keeps of an appointment as answered: its FHIR JSON, written once from the
/// resource (no copy of it, no JSON tree in between), and the columns read off the resource.
pub(super) fn appointment_record(
    appointment: &Appointment,
    identifiers: Vec<String>,
) -> AppointmentRecord {
    let text = |value: Option<&str>| value.map(str::to_owned);
    let instant = |value: Option<&str>| {
        value
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.to_utc())
    };
    let actors: Vec<String> = appointment
        .participant
        .iter()
        .filter_map(|p| p.actor.as_ref()?.reference.as_ref()?.value.clone())
        .collect();
    let json = crate::fhir::format::serialize(appointment, Format::Json, false);
    AppointmentRecord {
        id: appointment
            .id
            .as_ref()
            .and_then(|i| i.value.clone())
            .unwrap_or_default(),
        identifiers,
        resource: String::from_utf8(json).unwrap_or_default(),
        status: text(appointment.status.value.as_deref()),
        start: instant(appointment.start.as_ref().and_then(|s| s.value.as_deref())),
        end: instant(appointment.end.as_ref().and_then(|s| s.value.as_deref())),
        patient: actors.iter().find(|a| a.starts_with("Patient/")).cloned(),
        updated: instant(
            appointment
                .meta
                .as_ref()
                .and_then(|m| m.last_updated.as_ref())
                .and_then(|l| l.value.as_deref()),
        )
        .unwrap_or_else(Utc::now),
        actors,
    }
}

/// Records an appointment durably (releasing the claim it was booked under), trying a second
/// time on a fresh connection before giving up. When it cannot be recorded, the claim is kept
/// until it expires, so that a retry meanwhile is refused rather than booked a second time.
pub(super) async fn remember(
    tenant: &Tenant,
    record: &AppointmentRecord,
    claim: Option<Claim>,
) -> Result<(), StoreError> {
    let failure = match tenant.store.record(record, claim).await {
        Ok(()) => return Ok(()),
        Err(failure) => failure,
    };
    match tenant.store.record(record, failure.claim).await {
        Ok(()) => Ok(()),
        Err(again) => {
            if let Some(claim) = again.claim {
                claim.keep();
            }
            tracing::error!(
                salesforce_id = %record.id,
                error = %again.error,
                "Salesforce acted but the store could not record it; its identifiers stay \
                 claimed until the claim expires"
            );
            Err(again.error)
        }
    }
}
