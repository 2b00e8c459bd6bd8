//! Appointment interactions: create (conditional, idempotent by business identifier), update
//! (reschedule or cancel) and JSON Patch. The `*_interaction` functions hold the logic and are
//! shared with batch and transaction Bundles; the handlers only read the HTTP request and write
//! the answer.

use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, web};
use chrono::Utc;
use fhirbolt::model::r4::resources::Appointment;
use futures_util::StreamExt;

use super::AppState;
use super::response::{self, Rendering, ReturnPreference};
use super::tenant::Tenant;
use crate::audit::{self, AuditIds};
use crate::error::ProxyError;
use crate::fhir::format::Format;
use crate::fhir::outcome::{Issue, IssueCode};
use crate::fhir::parse::read_appointment;
use crate::fhir::search::IdentifierCriteria;
use crate::mapping::booked_appointment;
use crate::salesforce::wire::{CancelAppointmentRequest, UpdateAppointmentRequest};
use crate::store::{AppointmentRecord, Claim, ClaimOutcome, StoreError, StoredAppointment};
use crate::translation::{check_and_map_resolving, map_resolving};

/// The result of a successful interaction, before HTTP framing.
#[derive(Debug)]
pub struct Done {
    /// 201 for a new booking, 200 for a match or a change.
    pub status: StatusCode,
    /// The appointment as it now stands.
    pub appointment: Appointment,
}

impl Done {
    /// The Salesforce id (the FHIR id).
    pub fn id(&self) -> &str {
        self.appointment
            .id
            .as_ref()
            .and_then(|i| i.value.as_deref())
            .unwrap_or_default()
    }

    /// `meta.lastUpdated`.
    pub fn last_updated(&self) -> Option<&str> {
        self.appointment
            .meta
            .as_ref()
            .and_then(|m| m.last_updated.as_ref())
            .and_then(|l| l.value.as_deref())
    }
}

/// `POST [base]/Appointment`: books the Appointment unless one with the same business identifier
/// (from `If-None-Exist`, else from the resource) was booked before.
#[tracing::instrument(name = "fhir.create_appointment", skip_all)]
pub async fn create(request: HttpRequest, payload: web::Payload, state: Tenant) -> HttpResponse {
    let (body_format, rendering) = match response::formats(&request) {
        Ok(formats) => formats,
        Err(answer) => return *answer,
    };
    let result = async {
        let body_format = body_format.map_err(ProxyError::UnsupportedMediaType)?;
        let body = read_body(&request, payload, state.body_limit).await?;
        let if_none_exist = request
            .headers()
            .get("If-None-Exist")
            .map(|v| v.to_str().unwrap_or("\u{fffd}"));
        // Refused before the body is even parsed: a condition that cannot be evaluated must
        // never become an unconditional booking.
        let criteria = conditional(if_none_exist, request.query_string())?;
        let appointment = read_appointment(body, body_format)
            .await
            .map_err(ProxyError::Unparseable)?;
        create_interaction(&state, appointment, criteria).await
    }
    .await;
    answer(&request, &state, result, rendering)
}

/// `PUT [base]/Appointment/{id}`: reschedules (Salesforce Update) or, with status `cancelled`,
/// cancels (Salesforce Cancel).
#[tracing::instrument(name = "fhir.update_appointment", skip_all)]
pub async fn update(
    request: HttpRequest,
    payload: web::Payload,
    id: web::Path<String>,
    state: Tenant,
) -> HttpResponse {
    let (body_format, rendering) = match response::formats(&request) {
        Ok(formats) => formats,
        Err(answer) => return *answer,
    };
    audit::note_ids(&request, AuditIds::appointment(&id));
    let result = async {
        let body_format = body_format.map_err(ProxyError::UnsupportedMediaType)?;
        let body = read_body(&request, payload, state.body_limit).await?;
        let appointment = read_appointment(body, body_format)
            .await
            .map_err(ProxyError::Unparseable)?;
        update_interaction(&state, &id, appointment).await
    }
    .await;
    answer(&request, &state, result, rendering)
}

/// `PATCH [base]/Appointment/{id}` with a JSON Patch (`application/json-patch+json`), applied to
/// the appointment as last booked, then processed as an update.
#[tracing::instrument(name = "fhir.patch_appointment", skip_all)]
pub async fn patch(
    request: HttpRequest,
    payload: web::Payload,
    id: web::Path<String>,
    state: Tenant,
) -> HttpResponse {
    let content_type = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_ascii_lowercase();
    let is_json_patch = content_type
        .split(';')
        .next()
        .is_some_and(|t| t.trim() == "application/json-patch+json");
    let rendering = match response::negotiate(&request, Some(Format::Json)) {
        Ok(r) => r,
        Err((error, rendering)) => return response::error(&error, rendering),
    };
    audit::note_ids(&request, AuditIds::appointment(&id));
    let result = async {
        if !is_json_patch {
            return Err(ProxyError::UnsupportedMediaType(Issue::general(
                IssueCode::NotSupported,
                "PATCH takes a JSON Patch (Content-Type: application/json-patch+json)",
            )));
        }
        let body = read_body(&request, payload, state.body_limit).await?;
        let patch: json_patch::Patch = serde_json::from_slice(&body).map_err(|_| {
            ProxyError::Unparseable(Issue::general(
                IssueCode::Structure,
                "the body is not a JSON Patch document (an array of operations)",
            ))
        })?;
        patch_interaction(&state, &id, &patch).await
    }
    .await;
    answer(&request, &state, result, rendering)
}

/// Writes the answer of an interaction: the resource (or per `Prefer`), `Location` on 201, and
/// `Last-Modified`; or the OperationOutcome of the error.
fn answer(
    request: &HttpRequest,
    state: &AppState,
    result: Result<Done, ProxyError>,
    rendering: Rendering,
) -> HttpResponse {
    let done = match result {
        Ok(done) => done,
        Err(error) => {
            tracing::info!(
                http_status = error.outcome().status.as_u16(),
                "interaction failed"
            );
            return response::error(&error, rendering);
        }
    };
    let id = done.id().to_owned();
    audit::note_ids(request, AuditIds::appointment(&id));
    let mut response = match response::return_preference(request) {
        ReturnPreference::Minimal => HttpResponse::build(done.status).finish(),
        ReturnPreference::Representation => {
            response::resource(done.status, &done.appointment, rendering)
        }
        ReturnPreference::OperationOutcome => response::outcome(
            done.status,
            &[Issue::information(format!(
                "Appointment {id}: {}",
                describe(done.status)
            ))],
            rendering,
        ),
    };
    let headers = response.headers_mut();
    if done.status == StatusCode::CREATED
        && let Ok(value) = header::HeaderValue::from_str(&location(state, &id))
    {
        headers.insert(header::LOCATION, value);
    }
    if let Some(value) = done
        .last_updated()
        .and_then(|l| chrono::DateTime::parse_from_rfc3339(l).ok())
        .and_then(|d| header::HeaderValue::from_str(&http_date(d.to_utc())).ok())
    {
        headers.insert(header::LAST_MODIFIED, value);
    }
    response
}

fn describe(status: StatusCode) -> &'static str {
    if status == StatusCode::CREATED {
        "booked in Salesforce"
    } else {
        "done"
    }
}

/// `{base}/Appointment/{id}`.
pub fn location(state: &AppState, id: &str) -> String {
    format!("{}/Appointment/{id}", state.base_path)
}

fn http_date(date: chrono::DateTime<Utc>) -> String {
    date.format("%a, %d %b %Y %H:%M:%S GMT").to_string()
}

// ---- Interactions ----------------------------------------------------------------------------

/// Creates (books) an appointment, idempotently: when `If-None-Exist: identifier=system|value`
/// (or, without it, one of the resource's own identifiers) matches one earlier booking, that
/// booking is answered with 200 and nothing is sent; several matches are a 412.
///
/// The identifiers are claimed in the store before Salesforce is called (so a second request
/// with them, on any replica, gets a 409 instead of a second booking, and nothing is booked that
/// could not be recorded), and the booking is recorded durably, releasing the claim, before it
/// is answered.
///
/// # Errors
/// Every [`ProxyError`] of checking, mapping, the store and Salesforce.
pub async fn create_interaction(
    state: &AppState,
    appointment: Appointment,
    criteria: Option<IdentifierCriteria>,
) -> Result<Done, ProxyError> {
    // Without a condition, the resource's own identifiers: any one booked before matches.
    let criteria = criteria.or_else(|| {
        let own = identifier_keys(&appointment);
        (!own.is_empty()).then(|| IdentifierCriteria { all_of: vec![own] })
    });
    let request = check_and_map_resolving(&appointment, &state.mapping, &state.salesforce).await?;
    if let Some(done) = one_booking(matching(state, criteria.as_ref()).await?).await? {
        tracing::info!("an appointment with this identifier was booked before; nothing sent");
        return Ok(done);
    }
    let keys = criteria
        .as_ref()
        .map(IdentifierCriteria::keys)
        .unwrap_or_default();
    let claim = match state.store.claim(&keys).await? {
        ClaimOutcome::Claimed(claim) => claim,
        // Booked (and recorded) by another request since the look above.
        ClaimOutcome::Booked(_) => {
            return one_booking(matching(state, criteria.as_ref()).await?)
                .await?
                .ok_or(ProxyError::InProgress {
                    expires_in: std::time::Duration::ZERO,
                });
        }
        ClaimOutcome::Busy { expires_in } => return Err(ProxyError::InProgress { expires_in }),
    };
    let outcome = match state.salesforce.book_appointment(&request).await {
        Ok(outcome) => outcome,
        Err(error) => {
            // Not booked (or not known to be): the identifiers are free again at once. A claim
            // that cannot be released expires.
            let _ = claim.release().await;
            return Err(error.into());
        }
    };
    let id = outcome.id.clone().unwrap_or_default();
    tracing::info!(salesforce_id = %id, "appointment booked");
    let booked = booked_appointment(
        &appointment,
        &id,
        outcome.status.as_deref(),
        &state.mapping,
        Utc::now(),
    );
    let record = appointment_record(&booked, identifier_keys(&appointment));
    remember(state, &record, Some(claim))
        .await
        .map_err(|_| ProxyError::NotRecorded { id, booked: true })?;
    Ok(Done {
        status: StatusCode::CREATED,
        appointment: booked,
    })
}

/// Updates an appointment: status `cancelled` cancels it, anything else reschedules it.
///
/// # Errors
/// [`ProxyError::IdMismatch`] when the body's id is not the URL's; every error of checking,
/// mapping and Salesforce.
pub async fn update_interaction(
    state: &AppState,
    id: &str,
    appointment: Appointment,
) -> Result<Done, ProxyError> {
    if appointment.id.as_ref().and_then(|i| i.value.as_deref()) != Some(id) {
        return Err(ProxyError::IdMismatch);
    }
    let mapping = &state.mapping;
    let issues = crate::fhir::rules::check_appointment(
        &appointment,
        &crate::fhir::rules::RuleOptions {
            allow_end_from_duration: mapping.end_from_duration,
        },
    );
    if !issues.is_empty() {
        return Err(ProxyError::Unprocessable(issues));
    }
    let outcome = if appointment.status.value.as_deref() == Some("cancelled") {
        let cancel = CancelAppointmentRequest {
            id: id.to_owned(),
            status: mapping.cancel_status.clone(),
            cancellation_reason: appointment
                .cancelation_reason
                .as_deref()
                .and_then(concept_text),
            comment: None,
        };
        state.salesforce.cancel_appointment(&cancel).await?
    } else {
        let book = map_resolving(&appointment, mapping, &state.salesforce).await?;
        let update = UpdateAppointmentRequest {
            id: id.to_owned(),
            appointment: book,
        };
        state.salesforce.update_appointment(&update).await?
    };
    tracing::info!(salesforce_id = %id, "appointment changed");
    let changed = booked_appointment(
        &appointment,
        id,
        outcome.status.as_deref(),
        mapping,
        Utc::now(),
    );
    let record = appointment_record(&changed, identifier_keys(&appointment));
    remember(state, &record, None)
        .await
        .map_err(|_| ProxyError::NotRecorded {
            id: id.to_owned(),
            booked: false,
        })?;
    Ok(Done {
        status: StatusCode::OK,
        appointment: changed,
    })
}

/// Applies a JSON Patch to the appointment as last booked through this proxy, then updates.
///
/// # Errors
/// [`ProxyError::UnknownAppointment`] when it was not booked here; [`ProxyError::Patch`] when the
/// patch fails or leaves no valid Appointment; every error of [`update_interaction`].
pub async fn patch_interaction(
    state: &AppState,
    id: &str,
    patch: &json_patch::Patch,
) -> Result<Done, ProxyError> {
    let stored = state
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
    update_interaction(state, id, appointment).await
}

/// The criteria of a conditional create: `If-None-Exist`, or the same criteria as the query of
/// `POST [base]/Appointment` (as some client libraries send them), never both. `_format` and
/// `_pretty` on the URL are no criteria.
///
/// # Errors
/// 400 when the criteria cannot be evaluated (naming the parameter), or come twice.
pub(crate) fn conditional(
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
    state: &AppState,
    criteria: Option<&IdentifierCriteria>,
) -> Result<Vec<StoredAppointment>, ProxyError> {
    let Some(criteria) = criteria else {
        return Ok(Vec::new());
    };
    let mut found: Option<Vec<StoredAppointment>> = None;
    for any_of in &criteria.all_of {
        let these = state.store.find_by_identifiers(any_of).await?;
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
fn identifier_keys(appointment: &Appointment) -> Vec<String> {
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

/// The one earlier booking found (200), none, or several (412).
async fn one_booking(mut found: Vec<StoredAppointment>) -> Result<Option<Done>, ProxyError> {
    match found.len() {
        0 => Ok(None),
        1 => {
            let stored = found.remove(0).resource.into_bytes();
            let appointment = read_appointment(stored, Format::Json)
                .await
                .map_err(|_| ProxyError::Store(StoreError::corrupt()))?;
            Ok(Some(Done {
                status: StatusCode::OK,
                appointment,
            }))
        }
        _ => Err(ProxyError::MultipleMatches),
    }
}

/// What the store keeps of an appointment as answered.
pub(super) fn appointment_record(
    appointment: &Appointment,
    identifiers: Vec<String>,
) -> AppointmentRecord {
    let id = appointment
        .id
        .as_ref()
        .and_then(|i| i.value.clone())
        .unwrap_or_default();
    let resource =
        fhirbolt::json::to_json_value(appointment.clone(), None).unwrap_or(serde_json::Value::Null);
    AppointmentRecord::from_json(id, identifiers, &resource, Utc::now())
}

/// Records an appointment durably (releasing the claim it was booked under), trying a second
/// time on a fresh connection before giving up. When it cannot be recorded, the claim is kept
/// until it expires, so that a retry meanwhile is refused rather than booked a second time.
pub(super) async fn remember(
    state: &AppState,
    record: &AppointmentRecord,
    claim: Option<Claim>,
) -> Result<(), StoreError> {
    let failure = match state.store.record(record, claim).await {
        Ok(()) => return Ok(()),
        Err(failure) => failure,
    };
    match state.store.record(record, failure.claim).await {
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

/// Reads the body up to `limit` bytes; a larger body (announced or actual) is a 413.
pub(crate) async fn read_body(
    request: &HttpRequest,
    mut payload: web::Payload,
    limit: usize,
) -> Result<web::BytesMut, ProxyError> {
    let announced = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if announced.is_some_and(|n| n > limit) {
        return Err(ProxyError::PayloadTooLarge { limit });
    }
    let mut body = web::BytesMut::with_capacity(announced.unwrap_or(0).min(limit));
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|_| ProxyError::BodyRead)?;
        if body.len() + chunk.len() > limit {
            return Err(ProxyError::PayloadTooLarge { limit });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}
