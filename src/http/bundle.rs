//! `POST [base]` with a `batch` or `transaction` Bundle of Appointment interactions: reads the
//! Bundle on a parser thread, runs it through [`crate::booking::bundle`], and writes the
//! `batch-response` or `transaction-response` (or the transaction's OperationOutcome), noting
//! each entry in the audit trail.

use actix_web::http::StatusCode;
use actix_web::{HttpMessage, HttpRequest, HttpResponse, web};
use fhirbolt::model::r4::Resource;
use fhirbolt::model::r4::resources::{Bundle, BundleEntry, BundleEntryResponse, OperationOutcome};

use super::appointment::{location, status};
use super::audit::{self, AuditIds, EntryAudit};
use super::body::read_resource;
use super::metadata::base_url;
use super::response::{self, Failure, OrRender, ReturnPreference};
use super::tenant::RequestTenant;
use crate::auth::Access;
use crate::booking::Done;
use crate::booking::bundle::{self, EntryResult, ReadBundle, entry_issues};
use crate::error::ProxyError;
use crate::fhir::bundle::BundleType;
use crate::fhir::outcome::operation_outcome;
use crate::fhir::pool;
use crate::interaction::Interaction;
use crate::tenants::Tenant;

/// Processes a batch or transaction Bundle.
#[tracing::instrument(level = "debug", name = "fhir.bundle", skip_all)]
pub async fn process(
    request: HttpRequest,
    payload: web::Payload,
    tenant: RequestTenant,
) -> Result<HttpResponse, Failure> {
    // Left by the auth middleware; without it nothing is permitted (fails closed).
    let access = request
        .extensions()
        .get::<Access>()
        .cloned()
        .unwrap_or_else(Access::nothing);
    let (body_format, body, rendering) =
        read_resource(&request, payload, tenant.body_limit).await?;
    // SMART: batch and transaction entries are authorized one by one, before their resources
    // are read. The Bundle and every entry's resource are read in one parser job.
    let read = pool::run(move || {
        let permits = |method: &str, url: &str| {
            access
                .permits_entry(method, url)
                .map_err(ProxyError::Forbidden)
        };
        Ok(bundle::read(&body, body_format, &permits))
    })
    .await
    .map_err(ProxyError::Unparseable)
    .and_then(|read| read)
    .or_render(rendering)?;
    let ReadBundle {
        kind,
        entries,
        kinds,
    } = read;
    let answering = Answering {
        prefer: response::return_preference(&request),
        // R4: a response entry's fullUrl is absolute.
        base_url: base_url(&request, &tenant.base_path),
    };
    let mut trail = Trail {
        kinds,
        entries: Vec::new(),
    };
    let answer = match kind {
        BundleType::Batch => {
            let results = bundle::batch(&tenant, entries).await;
            Ok(batch_response(&tenant, results, &answering, &mut trail))
        }
        BundleType::Transaction => {
            let count = entries.len();
            match bundle::transaction(&tenant, entries).await {
                Ok(done) => Ok(transaction_response(&tenant, done, &answering, &mut trail)),
                Err(error) => {
                    // Every entry failed with the transaction; those booked name the records
                    // that were booked and cancelled again.
                    let status = error.outcome().status;
                    let booked: &[String] = match &error {
                        ProxyError::Transaction(failure) => &failure.booked,
                        _ => &[],
                    };
                    for index in 0..count {
                        let ids = booked
                            .get(index)
                            .map(|id| AuditIds::appointment(id))
                            .unwrap_or_default();
                        trail.note(index, ids, status);
                    }
                    Err(Failure::new(error, rendering))
                }
            }
        }
    };
    for entry in trail.entries {
        audit::note_entry(&request, entry);
    }
    answer.map(|bundle| response::resource(StatusCode::OK, &bundle, rendering))
}

/// How success entries are written: the `Prefer` return preference, and the absolute base URL
/// their `fullUrl` starts with.
struct Answering {
    prefer: ReturnPreference,
    base_url: String,
}

/// The audit trail's view of the entries: what each asked for and how it ended.
struct Trail {
    kinds: Vec<Option<Interaction>>,
    entries: Vec<EntryAudit>,
}

impl Trail {
    fn note(&mut self, index: usize, ids: AuditIds, status: StatusCode) {
        self.entries.push(EntryAudit {
            index,
            interaction: self.kinds.get(index).copied().flatten(),
            ids,
            status: status.as_u16(),
        });
    }
}

fn status_line(status: StatusCode) -> String {
    format!(
        "{} {}",
        status.as_u16(),
        status.canonical_reason().unwrap_or_default()
    )
}

fn success_entry(tenant: &Tenant, done: Done, answering: &Answering) -> BundleEntry {
    let id = done.id().to_owned();
    let last_modified = done.last_updated().map(|l| l.to_owned());
    BundleEntry {
        full_url: Some(format!("{}/Appointment/{id}", answering.base_url).into()),
        response: Some(BundleEntryResponse {
            status: status_line(status(done.effect)).into(),
            location: Some(location(tenant, &id).into()),
            last_modified: last_modified.map(Into::into),
            ..Default::default()
        }),
        resource: match answering.prefer {
            ReturnPreference::Minimal | ReturnPreference::OperationOutcome => None,
            ReturnPreference::Representation => {
                Some(Resource::Appointment(Box::new(done.appointment)))
            }
        },
        ..Default::default()
    }
}

fn failure_entry(index: usize, error: &ProxyError) -> BundleEntry {
    let outcome: OperationOutcome = operation_outcome(&entry_issues(index, error));
    BundleEntry {
        response: Some(BundleEntryResponse {
            status: status_line(error.outcome().status).into(),
            outcome: Some(Resource::OperationOutcome(Box::new(outcome))),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn batch_response(
    tenant: &Tenant,
    results: Vec<EntryResult>,
    answering: &Answering,
    trail: &mut Trail,
) -> Bundle {
    let entry = results
        .into_iter()
        .enumerate()
        .map(|(index, EntryResult { target, result })| {
            let mut ids = target
                .as_deref()
                .map(AuditIds::appointment)
                .unwrap_or_default();
            match result {
                Ok(done) => {
                    ids.add_appointment(done.id());
                    trail.note(index, ids, status(done.effect));
                    success_entry(tenant, done, answering)
                }
                Err(error) => {
                    trail.note(index, ids, error.outcome().status);
                    failure_entry(index, &error)
                }
            }
        })
        .collect();
    Bundle {
        r#type: "batch-response".into(),
        entry,
        ..Default::default()
    }
}

fn transaction_response(
    tenant: &Tenant,
    done: Vec<Done>,
    answering: &Answering,
    trail: &mut Trail,
) -> Bundle {
    for (index, d) in done.iter().enumerate() {
        trail.note(index, AuditIds::appointment(d.id()), status(d.effect));
    }
    Bundle {
        r#type: "transaction-response".into(),
        entry: done
            .into_iter()
            .map(|d| success_entry(tenant, d, answering))
            .collect(),
        ..Default::default()
    }
}
