//! Changing an appointment booked through this proxy: an update reschedules it (Salesforce
//! Update) or, with status `cancelled`, cancels it (Salesforce Cancel); a JSON Patch is applied to
//! the appointment as last recorded, then processed as an update.

use chrono::Utc;
use fhirbolt::model::r4::resources::Appointment;

use super::create::{appointment_record, identifier_keys, remember};
use super::read::ids_with_identifiers;
use super::resolve::{check_rules, map_resolving};
use super::{Done, Effect};
use crate::error::ProxyError;
use crate::fhir::format::Format;
use crate::fhir::outcome::{Issue, IssueCode};
use crate::fhir::parse::read_appointment;
use crate::fhir::search::IdentifierCriteria;
use crate::mapping::booked_appointment;
use crate::salesforce::wire::{
    AppointmentOutcome, CancelAppointmentRequest, UpdateAppointmentRequest,
};
use crate::store::StoreError;
use crate::tenants::Tenant;

/// Updates an appointment: status `cancelled` cancels it, anything else reschedules it.
///
/// # Errors
/// [`ProxyError::IdMismatch`] when the body's id is not the URL's; every error of checking,
/// mapping and Salesforce.
pub async fn update(
    tenant: &Tenant,
    id: &str,
    appointment: Appointment,
) -> Result<Done, ProxyError> {
    if appointment.id.as_ref().and_then(|i| i.value.as_deref()) != Some(id) {
        return Err(ProxyError::IdMismatch);
    }
    let mapping = &tenant.mapping;
    check_rules(&appointment, mapping)?;
    let outcome = if appointment.status.value.as_deref() == Some("cancelled") {
        let reason = appointment
            .cancelation_reason
            .as_deref()
            .and_then(concept_text);
        cancel(tenant, id, reason).await?
    } else {
        let book = map_resolving(&appointment, mapping, &tenant.salesforce).await?;
        let update = UpdateAppointmentRequest {
            id: id.to_owned(),
            appointment: book,
        };
        tenant.salesforce.update_appointment(&update).await?
    };
    tracing::debug!(salesforce_id = %id, "appointment changed");
    let changed = booked_appointment(
        &appointment,
        id,
        outcome.status.as_deref(),
        mapping,
        Utc::now(),
    );
    let record = appointment_record(&changed, identifier_keys(&appointment));
    remember(tenant, &record, None)
        .await
        .map_err(|_| ProxyError::NotRecorded {
            id: id.to_owned(),
            booked: false,
        })?;
    Ok(Done {
        effect: Effect::Changed,
        appointment: changed,
        json: Some(record.resource),
    })
}

/// Cancels appointment `id` in Salesforce with the mapping's cancel status.
pub(super) async fn cancel(
    tenant: &Tenant,
    id: &str,
    reason: Option<String>,
) -> Result<AppointmentOutcome, ProxyError> {
    let cancel = CancelAppointmentRequest {
        id: id.to_owned(),
        status: tenant.mapping.cancel_status.clone(),
        cancellation_reason: reason,
        comment: None,
    };
    Ok(tenant.salesforce.cancel_appointment(&cancel).await?)
}

/// Applies a JSON Patch to the appointment as last booked through this proxy, then updates.
///
/// # Errors
/// [`ProxyError::UnknownAppointment`] when it was not booked here; [`ProxyError::Patch`] when the
/// patch fails or leaves no valid Appointment; every error of [`update`].
pub async fn patch(
    tenant: &Tenant,
    id: &str,
    patch: &json_patch::Patch,
) -> Result<Done, ProxyError> {
    let stored = tenant
        .store
        .get(id)
        .await?
        .ok_or(ProxyError::UnknownAppointment)?;
    let mut document: serde_json::Value = serde_json::from_str(&stored.resource)
        .map_err(|_| ProxyError::Store(StoreError::corrupt()))?;
    json_patch::patch(&mut document, patch).map_err(|e| {
        // The operation index and kind help; the value it carried is not echoed.
        ProxyError::Patch(Issue::general(
            IssueCode::Processing,
            format!("JSON Patch operation {} cannot be applied", e.operation),
        ))
    })?;
    let body = serde_json::to_vec(&document).unwrap_or_default();
    let appointment = read_appointment(body, Format::Json)
        .await
        .map_err(|issue| {
            ProxyError::Patch(Issue {
                diagnostics: format!(
                    "the patched resource is not a valid Appointment: {}",
                    issue.diagnostics
                ),
                code: IssueCode::Processing,
                ..issue
            })
        })?;
    update(tenant, id, appointment).await
}

/// The criteria of a conditional update (`PUT [base]/Appointment?identifier=S|V`).
///
/// # Errors
/// 400 when they cannot be evaluated, naming the parameter.
pub fn update_criteria(query: &str) -> Result<IdentifierCriteria, ProxyError> {
    IdentifierCriteria::parse(query, &["_format", "_pretty"]).map_err(|reason| {
        ProxyError::Unparseable(Issue::general(
            IssueCode::NotSupported,
            format!("a conditional update names identifier=system|value: {reason}"),
        ))
    })
}

/// The id of the one appointment the criteria match: by the Salesforce id itself (the mapping's
/// identifier system), or by the business identifiers the store recorded.
///
/// # Errors
/// [`ProxyError::UnknownAppointment`] (404) for none: this proxy books only with POST;
/// [`ProxyError::AmbiguousUpdate`] (412) for several.
pub async fn the_one_matching(
    tenant: &Tenant,
    criteria: &IdentifierCriteria,
) -> Result<String, ProxyError> {
    let mut found: Option<Vec<String>> = None;
    for any_of in &criteria.all_of {
        let these = ids_with_identifiers(tenant, any_of).await?;
        found = Some(match found {
            None => these.into_iter().collect(),
            Some(before) => before.into_iter().filter(|id| these.contains(id)).collect(),
        });
    }
    let mut found = found.unwrap_or_default();
    match found.len() {
        0 => Err(ProxyError::UnknownAppointment),
        1 => Ok(found.remove(0)),
        _ => Err(ProxyError::AmbiguousUpdate),
    }
}

/// Reads a JSON Patch document.
///
/// # Errors
/// 400 when the body is not an array of JSON Patch operations.
pub fn read_patch(body: &[u8]) -> Result<json_patch::Patch, ProxyError> {
    serde_json::from_slice(body).map_err(|_| {
        ProxyError::Unparseable(Issue::general(
            IssueCode::Structure,
            "the body is not a JSON Patch document (an array of operations)",
        ))
    })
}

fn concept_text(concept: &fhirbolt::model::r4::types::CodeableConcept) -> Option<String> {
    concept
        .text
        .as_ref()
        .and_then(|t| t.value.clone())
        .or_else(|| {
            concept.coding.iter().find_map(|c| {
                c.display
                    .as_ref()
                    .and_then(|d| d.value.clone())
                    .or_else(|| c.code.as_ref().and_then(|c| c.value.clone()))
            })
        })
}
