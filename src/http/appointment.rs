//! Appointment interactions over HTTP: create (conditional), read (with `ETag`, `Last-Modified`
//! and `If-None-Match`), update (reschedule or cancel; conditional by identifier; `If-Match`)
//! and JSON Patch (`If-Match`). Each handler negotiates, reads the body, calls one use case of
//! [`crate::booking`] and writes the answer.

use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, web};
use chrono::Utc;

use super::audit::{self, AuditIds};
use super::body::{read_body, read_resource};
use super::response::{self, Failure, OrRender, Rendering, ReturnPreference};
use super::tenant::RequestTenant;
use crate::booking::{self, Done, Effect};
use crate::error::ProxyError;
use crate::fhir::format::Format;
use crate::fhir::outcome::{Issue, IssueCode};
use crate::fhir::parse::read_appointment;
use crate::tenants::Tenant;

/// `POST [base]/Appointment`: books the Appointment unless one with the same business identifier
/// (from `If-None-Exist`, else from the resource) was booked before.
#[tracing::instrument(level = "debug", name = "fhir.create_appointment", skip_all)]
pub async fn create(
    request: HttpRequest,
    payload: web::Payload,
    tenant: RequestTenant,
) -> Result<HttpResponse, Failure> {
    let (body_format, body, rendering) =
        read_resource(&request, payload, tenant.body_limit).await?;
    let if_none_exist = request
        .headers()
        .get("If-None-Exist")
        .map(|v| v.to_str().unwrap_or("\u{fffd}"));
    // Refused before the body is even parsed: a condition that cannot be evaluated must never
    // become an unconditional booking.
    let criteria =
        booking::create::criteria(if_none_exist, request.query_string()).or_render(rendering)?;
    let appointment = read_appointment(body, body_format)
        .await
        .map_err(ProxyError::Unparseable)
        .or_render(rendering)?;
    let done = booking::create::create(&tenant, appointment, criteria)
        .await
        .or_render(rendering)?;
    Ok(answer(&request, &tenant, done, rendering))
}

/// `GET [base]/Appointment/{id}`: the appointment as Salesforce holds it now, with its version
/// as `ETag` and `meta.versionId`; 304 when `If-None-Match` names that version.
#[tracing::instrument(level = "debug", name = "fhir.read_appointment", skip_all)]
pub async fn read(
    request: HttpRequest,
    id: web::Path<String>,
    tenant: RequestTenant,
) -> Result<HttpResponse, Failure> {
    let rendering = response::negotiate(&request, None)?;
    audit::note_ids(&request, AuditIds::appointment(&id));
    let current = booking::read::read(&tenant, &id)
        .await
        .or_render(rendering)?;
    let etag = format!("W/\"{}\"", current.version);
    let not_modified = request
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|tags| {
            tags.split(',').any(|tag| {
                let tag = tag.trim();
                tag == "*" || booking::read::etag_value(tag) == Some(current.version.as_str())
            })
        });
    let mut response = if not_modified {
        HttpResponse::NotModified().finish()
    } else {
        response::resource(StatusCode::OK, &current.appointment, rendering)
    };
    let headers = response.headers_mut();
    if let Ok(value) = header::HeaderValue::from_str(&etag) {
        headers.insert(header::ETAG, value);
    }
    if let Some(value) = current
        .last_updated
        .and_then(|t| header::HeaderValue::from_str(&http_date(t)).ok())
    {
        headers.insert(header::LAST_MODIFIED, value);
    }
    Ok(response)
}

/// `PUT [base]/Appointment/{id}`: reschedules (Salesforce Update) or, with status `cancelled`,
/// cancels (Salesforce Cancel). `PUT [base]/Appointment?identifier=S|V` does the same to the one
/// appointment with that identifier (404 for none, 412 for several). With `If-Match`, only
/// while the appointment still has that version (412 otherwise).
#[tracing::instrument(level = "debug", name = "fhir.update_appointment", skip_all)]
pub async fn update(
    request: HttpRequest,
    payload: web::Payload,
    tenant: RequestTenant,
) -> Result<HttpResponse, Failure> {
    let (body_format, body, rendering) =
        read_resource(&request, payload, tenant.body_limit).await?;
    let id = match request.match_info().get("id") {
        Some(id) => id.to_owned(),
        None => {
            let criteria =
                booking::change::update_criteria(request.query_string()).or_render(rendering)?;
            booking::change::the_one_matching(&tenant, &criteria)
                .await
                .or_render(rendering)?
        }
    };
    audit::note_ids(&request, AuditIds::appointment(&id));
    let appointment = read_appointment(body, body_format)
        .await
        .map_err(ProxyError::Unparseable)
        .or_render(rendering)?;
    if let Some(if_match) = if_match(&request) {
        booking::read::check_version(&tenant, &id, if_match)
            .await
            .or_render(rendering)?;
    }
    let done = booking::change::update(&tenant, &id, appointment)
        .await
        .or_render(rendering)?;
    Ok(answer(&request, &tenant, done, rendering))
}

/// The `If-Match` header, when there is one (unreadable text counts as a tag that matches
/// nothing).
fn if_match(request: &HttpRequest) -> Option<&str> {
    request
        .headers()
        .get(header::IF_MATCH)
        .map(|v| v.to_str().unwrap_or("\"\u{fffd}\""))
}

/// `PATCH [base]/Appointment/{id}` with a JSON Patch (`application/json-patch+json`), applied to
/// the appointment as last booked, then processed as an update.
#[tracing::instrument(level = "debug", name = "fhir.patch_appointment", skip_all)]
pub async fn patch(
    request: HttpRequest,
    payload: web::Payload,
    id: web::Path<String>,
    tenant: RequestTenant,
) -> Result<HttpResponse, Failure> {
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
    let rendering = response::negotiate(&request, Some(Format::Json))?;
    audit::note_ids(&request, AuditIds::appointment(&id));
    if !is_json_patch {
        return Err(Failure::new(
            ProxyError::UnsupportedMediaType(Issue::general(
                IssueCode::NotSupported,
                "PATCH takes a JSON Patch (Content-Type: application/json-patch+json)",
            )),
            rendering,
        ));
    }
    let body = read_body(&request, payload, tenant.body_limit)
        .await
        .or_render(rendering)?;
    let patch = booking::change::read_patch(&body).or_render(rendering)?;
    if let Some(if_match) = if_match(&request) {
        booking::read::check_version(&tenant, &id, if_match)
            .await
            .or_render(rendering)?;
    }
    let done = booking::change::patch(&tenant, &id, &patch)
        .await
        .or_render(rendering)?;
    Ok(answer(&request, &tenant, done, rendering))
}

/// The HTTP status of what an interaction did.
pub(super) fn status(effect: Effect) -> StatusCode {
    match effect {
        Effect::Booked => StatusCode::CREATED,
        Effect::Found | Effect::Changed => StatusCode::OK,
    }
}

/// Writes the answer of an interaction: the resource (or per `Prefer`), `Location` on 201, and
/// `Last-Modified`.
fn answer(
    request: &HttpRequest,
    tenant: &Tenant,
    done: Done,
    rendering: Rendering,
) -> HttpResponse {
    let id = done.id().to_owned();
    let status = status(done.effect);
    audit::note_ids(request, AuditIds::appointment(&id));
    let last_modified = done
        .last_updated()
        .and_then(|l| chrono::DateTime::parse_from_rfc3339(l).ok())
        .and_then(|d| header::HeaderValue::from_str(&http_date(d.to_utc())).ok());
    let mut response = match response::return_preference(request) {
        ReturnPreference::Minimal => HttpResponse::build(status).finish(),
        ReturnPreference::Representation => match done.json {
            // Written once, for the store and for this answer.
            Some(json) if rendering.format == Format::Json && !rendering.pretty => {
                HttpResponse::build(status)
                    .insert_header((header::CONTENT_TYPE, Format::Json.content_type()))
                    .body(json)
            }
            _ => response::resource(status, &done.appointment, rendering),
        },
        ReturnPreference::OperationOutcome => response::outcome(
            status,
            &[Issue::information(format!(
                "Appointment {id}: {}",
                describe(done.effect)
            ))],
            rendering,
        ),
    };
    let headers = response.headers_mut();
    if done.effect == Effect::Booked
        && let Ok(value) = header::HeaderValue::from_str(&location(tenant, &id))
    {
        headers.insert(header::LOCATION, value);
    }
    if let Some(value) = last_modified {
        headers.insert(header::LAST_MODIFIED, value);
    }
    response
}

fn describe(effect: Effect) -> &'static str {
    if effect == Effect::Booked {
        "booked in Salesforce"
    } else {
        "done"
    }
}

/// `{base}/Appointment/{id}`.
pub fn location(tenant: &Tenant, id: &str) -> String {
    format!("{}/Appointment/{id}", tenant.base_path)
}

fn http_date(date: chrono::DateTime<Utc>) -> String {
    date.format("%a, %d %b %Y %H:%M:%S GMT").to_string()
}
