//! `POST [base]/Appointment`: read, parse, check, map, book, answer.

use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, web};
use chrono::Utc;
use futures_util::StreamExt;

use super::AppState;
use super::response::{self, Rendering, ReturnPreference};
use crate::error::ProxyError;
use crate::fhir::format::{self, Format};
use crate::fhir::outcome::Issue;
use crate::mapping::booked_appointment;
use crate::translation::translate;

/// Books the posted Appointment in Salesforce and answers 201 with the booked Appointment, or an
/// OperationOutcome saying what was wrong. Nothing reaches Salesforce unless the resource passes
/// every R4 rule and maps completely.
#[tracing::instrument(name = "fhir.create_appointment", skip_all)]
pub async fn create(
    request: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> HttpResponse {
    let content_type = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    let body_format = format::request_format(content_type);
    let rendering = match response::negotiate(&request, body_format.as_ref().ok().copied()) {
        Ok(r) => r,
        Err((error, rendering)) => return response::error(&error, rendering),
    };
    match book(&request, payload, &state, body_format).await {
        Ok(booked) => created(&request, &state, &booked, rendering),
        Err(error) => {
            let decided = error.outcome();
            tracing::info!(
                http_status = decided.status.as_u16(),
                "appointment not booked"
            );
            response::error(&error, rendering)
        }
    }
}

async fn book(
    request: &HttpRequest,
    payload: web::Payload,
    state: &AppState,
    body_format: Result<Format, Issue>,
) -> Result<fhirbolt::model::r4::resources::Appointment, ProxyError> {
    let body_format = body_format.map_err(ProxyError::UnsupportedMediaType)?;
    let body = read_body(request, payload, state.body_limit).await?;
    let mapping = &state.mapping;
    let (appointment, book) = translate(&body, body_format, mapping)?;
    let outcome = state.salesforce.book_appointment(&book).await?;
    let id = outcome.id.as_deref().unwrap_or_default();
    tracing::info!(salesforce_id = id, "appointment booked");
    Ok(booked_appointment(
        &appointment,
        id,
        outcome.status.as_deref(),
        mapping,
        Utc::now(),
    ))
}

fn created(
    request: &HttpRequest,
    state: &AppState,
    booked: &fhirbolt::model::r4::resources::Appointment,
    rendering: Rendering,
) -> HttpResponse {
    let id = booked
        .id
        .as_ref()
        .and_then(|i| i.value.as_deref())
        .unwrap_or_default();
    let location = format!("{}/Appointment/{id}", state.base_path);
    let last_modified = booked
        .meta
        .as_ref()
        .and_then(|m| m.last_updated.as_ref())
        .and_then(|l| l.value.clone());
    let mut response = match response::return_preference(request) {
        ReturnPreference::Minimal => HttpResponse::Created().finish(),
        ReturnPreference::Representation => {
            response::resource(StatusCode::CREATED, booked, rendering)
        }
        ReturnPreference::OperationOutcome => response::outcome(
            StatusCode::CREATED,
            &[Issue::information(format!(
                "Appointment booked in Salesforce as {id}"
            ))],
            rendering,
        ),
    };
    let headers = response.headers_mut();
    if let Ok(value) = header::HeaderValue::from_str(&location) {
        headers.insert(header::LOCATION, value);
    }
    if let Some(value) = last_modified
        .and_then(|l| chrono::DateTime::parse_from_rfc3339(&l).ok())
        .and_then(|d| {
            header::HeaderValue::from_str(
                &d.to_utc().format("%a, %d %b %Y %H:%M:%S GMT").to_string(),
            )
            .ok()
        })
    {
        headers.insert(header::LAST_MODIFIED, value);
    }
    response
}

/// Reads the body up to `limit` bytes; a larger body (announced or actual) is a 413.
async fn read_body(
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
