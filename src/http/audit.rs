//! The audit trail: one line per FHIR interaction, and one per security event outside FHIR (a
//! token request, an admin reload), on the tracing target `audit`, so operators can
//! route and ship it apart from the diagnostic log (`--audit-file`, which
//! [`crate::telemetry::init`] sets up, or a filter on `target == "audit"` in the log shipper).
//!
//! One middleware ([`observe`]) writes the line and counts the request in [`Metrics`]: it knows
//! the route, tenant, status and duration; a handler only states the ids it touched with
//! [`note_ids`] (and, for a Bundle, each entry with [`note_entry`]). The line holds time, request
//! id, client id, tenant, interaction, FHIR and Salesforce ids, status, outcome and duration;
//! never a patient reference, name, identifier or body. Ids are written only when they have the
//! shape of a FHIR or Salesforce id, so a path segment cannot smuggle other text into the trail.

use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::{HttpMessage, HttpRequest, web};

use super::auth::ClientId;
use super::tenant::TENANT_SEGMENT;
use crate::interaction::Interaction;
use crate::metrics::{self, Metrics};
use crate::salesforce::id::is_salesforce_id;
use crate::tenants::Tenants;

/// The tracing target of audit lines.
pub const TARGET: &str = crate::telemetry::AUDIT_TARGET;

/// The ids one interaction touched.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditIds {
    /// FHIR resource ids.
    pub fhir: Vec<String>,
    /// Salesforce record ids.
    pub salesforce: Vec<String>,
}

impl AuditIds {
    /// An Appointment id: the proxy's FHIR id of an Appointment is its Salesforce record id, so it
    /// is written as both when it has that shape, else as a FHIR id only (when it is one).
    pub fn appointment(id: &str) -> Self {
        let mut ids = AuditIds::default();
        ids.add_appointment(id);
        ids
    }

    /// Adds an Appointment id as [`AuditIds::appointment`] does.
    pub fn add_appointment(&mut self, id: &str) {
        if is_fhir_id(id) && !self.fhir.iter().any(|i| i == id) {
            self.fhir.push(id.to_owned());
        }
        if is_salesforce_id(id) && !self.salesforce.iter().any(|i| i == id) {
            self.salesforce.push(id.to_owned());
        }
    }
}

/// One Bundle entry's part of the trail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryAudit {
    /// The entry's place in the Bundle.
    pub index: usize,
    /// What the entry asked for; `None` when it is none of the proxy's interactions.
    pub interaction: Option<Interaction>,
    /// The ids it touched.
    pub ids: AuditIds,
    /// Its HTTP status.
    pub status: u16,
}

/// What handlers noted for the audit line, kept in the request extensions.
#[derive(Debug, Default)]
struct Notes {
    ids: AuditIds,
    entries: Vec<EntryAudit>,
}

/// Notes ids the request's interaction touched (added to any noted before).
pub fn note_ids(request: &HttpRequest, ids: AuditIds) {
    let mut extensions = request.extensions_mut();
    let notes = extensions.get_mut::<Notes>();
    match notes {
        Some(notes) => {
            for id in ids.fhir {
                if !notes.ids.fhir.contains(&id) {
                    notes.ids.fhir.push(id);
                }
            }
            for id in ids.salesforce {
                if !notes.ids.salesforce.contains(&id) {
                    notes.ids.salesforce.push(id);
                }
            }
        }
        None => {
            extensions.insert(Notes {
                ids,
                entries: Vec::new(),
            });
        }
    }
}

/// Notes one Bundle entry's outcome; it gets its own audit line after the Bundle's.
pub fn note_entry(request: &HttpRequest, entry: EntryAudit) {
    let mut extensions = request.extensions_mut();
    match extensions.get_mut::<Notes>() {
        Some(notes) => notes.entries.push(entry),
        None => {
            extensions.insert(Notes {
                ids: AuditIds::default(),
                entries: vec![entry],
            });
        }
    }
}

/// A FHIR id: 1 to 64 of `A-Z a-z 0-9 - .`.
pub fn is_fhir_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
}

/// The middleware that writes the audit line of every FHIR interaction and counts every request
/// in the application's [`Metrics`] (requests, latency, in flight). Wrapped inside the request
/// span, so its lines carry the request id like every other.
///
/// # Errors
/// Whatever the wrapped service returns; it is passed on unchanged.
pub async fn observe(
    request: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let started = Instant::now();
    let metrics = request.app_data::<web::Data<Metrics>>().cloned();
    let _in_flight = metrics.as_ref().map(|m| m.in_flight());
    let request_id = super::request_id::request_id(&request);
    let interaction = super::routes::classified(request.request()).interaction;
    let event = request.match_pattern().as_deref().and_then(security_event);
    // No clone of the request is kept across the call: routing needs it unshared.
    let result = next.call(request).await;
    let status = match &result {
        Ok(response) => response.status().as_u16(),
        Err(error) => error.as_response_error().status_code().as_u16(),
    };
    let duration = started.elapsed();
    if let Some(metrics) = &metrics {
        let label = interaction.map_or(metrics::NO_INTERACTION, Interaction::name);
        metrics.request_done(label, status, duration);
    }
    match (&result, interaction) {
        (Ok(response), Some(interaction)) => {
            write_lines(
                response.request(),
                &request_id,
                interaction,
                status,
                duration,
            );
        }
        // Handlers answer errors as responses; an `Err` here comes from actix itself.
        (Err(_), Some(interaction)) => tracing::info!(
            target: TARGET,
            request_id = %request_id,
            interaction = interaction.name(),
            http_status = status,
            outcome = outcome(status),
            "FHIR interaction"
        ),
        (Ok(response), None) => {
            if let Some(event) = event {
                write_event_line(response.request(), &request_id, event, status, duration);
            }
        }
        (Err(_), None) => {}
    }
    result
}

/// The requests outside FHIR that the audit trail records: who obtained access, who changed
/// what the proxy runs with.
fn security_event(pattern: &str) -> Option<&'static str> {
    match pattern {
        crate::auth::TOKEN_PATH => Some("token"),
        super::admin::RELOAD_PATH => Some("reload"),
        _ => None,
    }
}

/// The line of a reload asked for by SIGHUP: no request and no client, so `client_id` is `-` and
/// `via` says `SIGHUP`.
pub fn signal_reload(applied: bool) {
    tracing::info!(
        target: TARGET,
        time = %now(),
        client_id = "-",
        event = "reload",
        via = "SIGHUP",
        outcome = if applied { "success" } else { "failure" },
        "security event"
    );
}

/// The line of a security event: a token request (`client_id` once its assertion's signature
/// was good) or an admin reload.
fn write_event_line(
    request: &HttpRequest,
    request_id: &str,
    event: &'static str,
    status: u16,
    duration: std::time::Duration,
) {
    let client_id = client_label(request);
    tracing::info!(
        target: TARGET,
        time = %now(),
        request_id = %request_id,
        client_id = %client_id,
        event,
        http_status = status,
        outcome = outcome(status),
        duration_ms = millis(duration),
        "security event"
    );
}

/// The authenticated client's id, `-` when there is none (auth off, or refused before).
fn client_label(request: &HttpRequest) -> String {
    request
        .extensions()
        .get::<ClientId>()
        .map_or_else(|| "-".to_owned(), |c| c.0.clone())
}

/// An audit line's `time`: RFC 3339 UTC with milliseconds.
fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn millis(duration: std::time::Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// The Bundle's (or single interaction's) line, then one per noted entry.
fn write_lines(
    request: &HttpRequest,
    request_id: &str,
    interaction: Interaction,
    status: u16,
    duration: std::time::Duration,
) {
    let client_id = client_label(request);
    let tenant = tenant_label(request);
    let notes = request
        .extensions_mut()
        .remove::<Notes>()
        .unwrap_or_default();
    let time = now();
    let duration_ms = millis(duration);
    tracing::info!(
        target: TARGET,
        time = %time,
        request_id = %request_id,
        client_id = %client_id,
        tenant = %tenant,
        interaction = interaction.name(),
        fhir_ids = %notes.ids.fhir.join(","),
        salesforce_ids = %notes.ids.salesforce.join(","),
        http_status = status,
        outcome = outcome(status),
        duration_ms,
        "FHIR interaction"
    );
    for entry in notes.entries {
        tracing::info!(
            target: TARGET,
            time = %time,
            request_id = %request_id,
            client_id = %client_id,
            tenant = %tenant,
            interaction = entry.interaction.map_or("unsupported", Interaction::name),
            bundle_entry = entry.index,
            fhir_ids = %entry.ids.fhir.join(","),
            salesforce_ids = %entry.ids.salesforce.join(","),
            http_status = entry.status,
            outcome = outcome(entry.status),
            "FHIR Bundle entry"
        );
    }
}

fn outcome(status: u16) -> &'static str {
    if status < 400 { "success" } else { "failure" }
}

/// The configured tenant a request went to: [`metrics::DEFAULT_TENANT`] for the one at the FHIR
/// base, `(unknown)` for a name no tenant has (a URL segment is not written unless configured).
pub fn tenant_label(request: &HttpRequest) -> String {
    let name = request.match_info().get(TENANT_SEGMENT);
    let known = request
        .app_data::<web::Data<Tenants>>()
        .is_some_and(|t| super::tenant::for_request(t, request).is_ok());
    match (name, known) {
        (_, false) => "(unknown)".to_owned(),
        (None, true) => metrics::DEFAULT_TENANT.to_owned(),
        (Some(name), true) => name.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_id_shaped_text_becomes_an_id() {
        let ids = AuditIds::appointment("08pxx0000004KhxxAE");
        assert_eq!(ids.fhir, vec!["08pxx0000004KhxxAE"]);
        assert_eq!(ids.salesforce, vec!["08pxx0000004KhxxAE"]);
        let ids = AuditIds::appointment("local-1");
        assert_eq!(ids.fhir, vec!["local-1"]);
        assert!(ids.salesforce.is_empty());
        let ids = AuditIds::appointment("Jane Doe/1990-01-01");
        assert_eq!(ids, AuditIds::default());
        assert!(!is_fhir_id(&"a".repeat(65)));
        assert!(!is_fhir_id(""));
    }
}
