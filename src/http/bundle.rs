//! `POST [base]` with a `batch` or `transaction` Bundle of Appointment interactions.
//!
//! The Bundle (JSON or XML) is read by [`crate::fhir::bundle`], and each entry's resource is parsed
//! on its own through the guarded Appointment parser, never through fhirbolt's `Resource` enum
//! (which panics on some malformed entries). A batch runs every entry on its own and answers a `batch-response` in
//! request order. A transaction checks and maps every entry before anything is booked; if a
//! booking then fails, the bookings already made are cancelled again and one OperationOutcome
//! says which entry failed and what was undone. Salesforce has no transactions, so this is
//! compensation, not atomicity: see README.

use actix_web::http::StatusCode;
use actix_web::{HttpMessage, HttpRequest, HttpResponse, web};
use base64::Engine;
use fhirbolt::model::r4::Resource;
use fhirbolt::model::r4::resources::{
    Appointment, Bundle, BundleEntry, BundleEntryResponse, OperationOutcome,
};

use super::AppState;
use super::appointment::{
    Done, appointment_record, conditional, create_interaction, location, patch_interaction,
    read_body, remember, update_interaction,
};
use super::metadata::base_url;
use super::response::{self, Rendering, ReturnPreference};
use super::tenant::Tenant;
use crate::audit::{self, AuditIds, EntryAudit};
use crate::auth::Access;
use crate::error::ProxyError;
use crate::fhir::bundle::{self, BundleType, EntryResource, RawEntry};
use crate::fhir::format::Format;
use crate::fhir::outcome::{Issue, IssueCode, Severity, operation_outcome};
use crate::fhir::pool;
use crate::fhir::search::IdentifierCriteria;
use crate::salesforce::wire::CancelAppointmentRequest;
use crate::translation::check_and_map_resolving;

/// The most entries one Bundle may carry: each is a Salesforce call.
pub const MAX_ENTRIES: usize = 100;

/// One entry's interaction, read from `entry.request`.
enum Interaction {
    Create {
        appointment: Box<Appointment>,
        criteria: Option<IdentifierCriteria>,
    },
    Update {
        id: String,
        appointment: Box<Appointment>,
    },
    Patch {
        id: String,
        patch: json_patch::Patch,
    },
}

/// Processes a batch or transaction Bundle.
#[tracing::instrument(name = "fhir.bundle", skip_all)]
pub async fn process(request: HttpRequest, payload: web::Payload, state: Tenant) -> HttpResponse {
    let (body_format, rendering) = match response::formats(&request) {
        Ok(formats) => formats,
        Err(answer) => return *answer,
    };
    // Left by the auth middleware; without it nothing is permitted (fails closed).
    let access = request
        .extensions()
        .get::<Access>()
        .cloned()
        .unwrap_or_else(Access::nothing);
    let result = async {
        let body_format = body_format.map_err(ProxyError::UnsupportedMediaType)?;
        let body = read_body(&request, payload, state.body_limit).await?;
        // The Bundle and every entry's resource are read in one parser job.
        pool::run(move || Ok(read_bundle(&body, body_format, &access)))
            .await
            .map_err(ProxyError::Unparseable)?
    }
    .await;
    let (kind, entries, kinds) = match result {
        Ok(read) => read,
        Err(error) => return response::error(&error, rendering),
    };
    let answering = Answering {
        prefer: response::return_preference(&request),
        // R4: a response entry's fullUrl is absolute.
        base_url: base_url(&request, &state.base_path),
    };
    let mut trail = Trail {
        kinds,
        entries: Vec::new(),
    };
    let answer = match kind {
        BundleType::Batch => batch(&state, entries, &answering, rendering, &mut trail).await,
        BundleType::Transaction => {
            transaction(&state, entries, &answering, rendering, &mut trail).await
        }
    };
    for entry in trail.entries {
        audit::note_entry(&request, entry);
    }
    answer
}

/// How success entries are written: the `Prefer` return preference, and the absolute base URL
/// their `fullUrl` starts with.
struct Answering {
    prefer: ReturnPreference,
    base_url: String,
}

/// The audit trail's view of the entries: what each asked for and how it ended.
struct Trail {
    kinds: Vec<Option<crate::interaction::Interaction>>,
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

/// The id an entry's URL names (updates and patches), for the audit trail.
fn entry_ids(interaction: &Interaction) -> AuditIds {
    match interaction {
        Interaction::Create { .. } => AuditIds::default(),
        Interaction::Update { id, .. } | Interaction::Patch { id, .. } => AuditIds::appointment(id),
    }
}

/// What [`read_bundle`] read: the type, each entry's interaction (or why it cannot be done), and
/// what each entry asked for by its method and URL (for the audit trail).
type ReadBundle = (
    BundleType,
    Vec<Result<Interaction, ProxyError>>,
    Vec<Option<crate::interaction::Interaction>>,
);

/// Reads the Bundle: its type and each entry's interaction (or why the entry cannot be done).
fn read_bundle(body: &[u8], format: Format, access: &Access) -> Result<ReadBundle, ProxyError> {
    let bundle = bundle::read_bundle(body, format).map_err(ProxyError::Unparseable)?;
    if bundle.entries.len() > MAX_ENTRIES {
        return Err(ProxyError::Unprocessable(vec![Issue::at(
            IssueCode::TooCostly,
            "Bundle.entry",
            format!("a Bundle may hold at most {MAX_ENTRIES} entries"),
        )]));
    }
    let kinds = bundle
        .entries
        .iter()
        .map(|entry| {
            entry.request.as_ref().and_then(|r| {
                crate::interaction::Interaction::from_entry(r.method.as_str(), &r.url)
            })
        })
        .collect();
    Ok((
        bundle.bundle_type,
        bundle
            .entries
            .into_iter()
            .enumerate()
            .map(|(i, entry)| read_entry(i, entry, access))
            .collect(),
        kinds,
    ))
}

fn read_entry(index: usize, entry: RawEntry, access: &Access) -> Result<Interaction, ProxyError> {
    let at = |path: &str| format!("Bundle.entry[{index}]{path}");
    let request = entry.request.ok_or_else(|| {
        ProxyError::Unparseable(Issue::at(
            IssueCode::Required,
            at(".request"),
            "each entry needs a request (bdl-3)",
        ))
    })?;
    // SMART: batch and transaction entries are authorized one by one, before their resources
    // are read (a caller without the right learns nothing about its content's validity).
    access
        .permits_entry(&request.method, &request.url)
        .map_err(ProxyError::Forbidden)?;
    let url = request
        .url
        .split('?')
        .next()
        .unwrap_or_default()
        .trim_start_matches('/');
    let resource = entry.resource;
    let appointment = |resource: Option<EntryResource>| -> Result<Box<Appointment>, ProxyError> {
        let resource = resource.ok_or_else(|| {
            ProxyError::Unparseable(Issue::at(
                IssueCode::Required,
                at(".resource"),
                "POST and PUT entries need a resource",
            ))
        })?;
        resource
            .appointment()
            .map(Box::new)
            .map_err(|issue| ProxyError::Unparseable(in_entry(index, issue)))
    };
    let segments: Vec<&str> = url.split('/').collect();
    match (request.method.as_str(), segments.as_slice()) {
        ("POST", ["Appointment"]) => {
            // `ifNoneExist`, or the same criteria as the url's query, as for a single POST.
            let query = request.url.split_once('?').map_or("", |(_, q)| q);
            let criteria =
                conditional(request.if_none_exist.as_deref(), query).map_err(|e| match e {
                    ProxyError::Unparseable(issue) => ProxyError::Unparseable(Issue {
                        expression: Some(at(".request")),
                        ..issue
                    }),
                    other => other,
                })?;
            Ok(Interaction::Create {
                appointment: appointment(resource)?,
                criteria,
            })
        }
        ("PUT", ["Appointment", id]) => Ok(Interaction::Update {
            id: (*id).to_owned(),
            appointment: appointment(resource)?,
        }),
        ("PATCH", ["Appointment", id]) => {
            // In a Bundle a JSON Patch travels as a Binary resource.
            let patch = resource
                .as_ref()
                .and_then(EntryResource::binary)
                .filter(|(content_type, _)| content_type.starts_with("application/json-patch+json"))
                .and_then(|(_, data)| base64::engine::general_purpose::STANDARD.decode(data).ok())
                .and_then(|bytes| serde_json::from_slice::<json_patch::Patch>(&bytes).ok());
            match patch {
                Some(patch) => Ok(Interaction::Patch {
                    id: (*id).to_owned(),
                    patch,
                }),
                None => Err(ProxyError::Unparseable(Issue::at(
                    IssueCode::Structure,
                    at(".resource"),
                    "a PATCH entry needs a Binary resource with contentType \
                     application/json-patch+json and the patch in data",
                ))),
            }
        }
        (_, ["Appointment", ..]) => Err(ProxyError::MethodNotAllowed),
        _ => Err(ProxyError::Unparseable(Issue::at(
            IssueCode::NotSupported,
            at(".request.url"),
            "this proxy handles only Appointment create, update and patch entries",
        ))),
    }
}

/// Re-roots an issue's expression from the Appointment to its place in the Bundle.
fn in_entry(index: usize, mut issue: Issue) -> Issue {
    let prefix = format!("Bundle.entry[{index}].resource");
    issue.expression = Some(match issue.expression.take() {
        Some(e) if e.starts_with("Bundle.") => e,
        Some(e) => match e.strip_prefix("Appointment") {
            Some(rest) => format!("{prefix}{rest}"),
            None => format!("{prefix}.{e}"),
        },
        None => format!("Bundle.entry[{index}]"),
    });
    issue
}

fn in_entry_all(index: usize, error: &ProxyError) -> Vec<Issue> {
    error
        .outcome()
        .issues
        .into_iter()
        .map(|i| in_entry(index, i))
        .collect()
}

async fn run(state: &AppState, interaction: Interaction) -> Result<Done, ProxyError> {
    match interaction {
        Interaction::Create {
            appointment,
            criteria,
        } => create_interaction(state, *appointment, criteria).await,
        Interaction::Update { id, appointment } => {
            update_interaction(state, &id, *appointment).await
        }
        Interaction::Patch { id, patch } => patch_interaction(state, &id, &patch).await,
    }
}

fn status_line(status: StatusCode) -> String {
    format!(
        "{} {}",
        status.as_u16(),
        status.canonical_reason().unwrap_or_default()
    )
}

fn success_entry(state: &AppState, done: Done, answering: &Answering) -> BundleEntry {
    let id = done.id().to_owned();
    let last_modified = done.last_updated().map(|l| l.to_owned());
    BundleEntry {
        full_url: Some(format!("{}/Appointment/{id}", answering.base_url).into()),
        resource: match answering.prefer {
            ReturnPreference::Minimal | ReturnPreference::OperationOutcome => None,
            ReturnPreference::Representation => {
                Some(Resource::Appointment(Box::new(done.appointment)))
            }
        },
        response: Some(BundleEntryResponse {
            status: status_line(done.status).into(),
            location: Some(location(state, &id).into()),
            last_modified: last_modified.map(Into::into),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn failure_entry(index: usize, error: &ProxyError) -> BundleEntry {
    let decided = error.outcome();
    let outcome: OperationOutcome = operation_outcome(&in_entry_all(index, error));
    BundleEntry {
        response: Some(BundleEntryResponse {
            status: status_line(decided.status).into(),
            outcome: Some(Resource::OperationOutcome(Box::new(outcome))),
            ..Default::default()
        }),
        ..Default::default()
    }
}

async fn batch(
    state: &AppState,
    entries: Vec<Result<Interaction, ProxyError>>,
    answering: &Answering,
    rendering: Rendering,
    trail: &mut Trail,
) -> HttpResponse {
    let mut out = Vec::with_capacity(entries.len());
    for (index, entry) in entries.into_iter().enumerate() {
        let mut ids = AuditIds::default();
        let result = match entry {
            Ok(interaction) => {
                ids = entry_ids(&interaction);
                run(state, interaction).await
            }
            Err(error) => Err(error),
        };
        out.push(match result {
            Ok(done) => {
                ids.add_appointment(done.id());
                trail.note(index, ids, done.status);
                success_entry(state, done, answering)
            }
            Err(error) => {
                trail.note(index, ids, error.outcome().status);
                failure_entry(index, &error)
            }
        });
    }
    let bundle = Bundle {
        r#type: "batch-response".into(),
        entry: out,
        ..Default::default()
    };
    response::resource(StatusCode::OK, &bundle, rendering)
}

async fn transaction(
    state: &AppState,
    entries: Vec<Result<Interaction, ProxyError>>,
    answering: &Answering,
    rendering: Rendering,
    trail: &mut Trail,
) -> HttpResponse {
    let count = entries.len();
    // Authorization first: one entry outside the client's rights refuses the whole transaction
    // before anything is checked against or sent to Salesforce.
    let denied: Vec<Issue> = entries
        .iter()
        .enumerate()
        .filter_map(|(index, entry)| match entry {
            Err(error @ ProxyError::Forbidden(_)) => Some(in_entry_all(index, error)),
            _ => None,
        })
        .flatten()
        .collect();
    if !denied.is_empty() {
        for index in 0..count {
            trail.note(index, AuditIds::default(), StatusCode::FORBIDDEN);
        }
        return response::outcome(StatusCode::FORBIDDEN, &denied, rendering);
    }
    // Phase 1: everything is read, checked and mapped before anything is booked.
    let mut creates = Vec::with_capacity(entries.len());
    let mut issues = Vec::new();
    let mut status = StatusCode::BAD_REQUEST;
    for (index, entry) in entries.into_iter().enumerate() {
        match entry {
            Ok(Interaction::Create {
                appointment,
                criteria,
            }) => match check_and_map_resolving(&appointment, &state.mapping, &state.salesforce)
                .await
            {
                Ok(_) => creates.push((appointment, criteria)),
                Err(error) => {
                    status = error.outcome().status;
                    issues.extend(in_entry_all(index, &error));
                }
            },
            // Updates and cancellations cannot be undone in Salesforce (a cancellation cannot be
            // reverted), so a transaction that promised atomicity could not keep it.
            Ok(_) => issues.push(Issue::at(
                IssueCode::NotSupported,
                format!("Bundle.entry[{index}].request"),
                "a transaction may only create appointments (a change or cancellation could not \
                 be undone if a later entry failed); send changes in a batch",
            )),
            Err(error) => {
                status = error.outcome().status;
                issues.extend(in_entry_all(index, &error));
            }
        }
    }
    if !issues.is_empty() {
        // Nothing was done: every entry ends with the transaction's failure.
        for index in 0..count {
            trail.note(index, AuditIds::default(), status);
        }
        let error = ProxyError::Unprocessable(issues);
        return response::outcome(status, &error.outcome().issues, rendering);
    }

    // Phase 2: book in order; on a failure, cancel what this transaction booked.
    let mut done: Vec<Done> = Vec::with_capacity(creates.len());
    for (index, (appointment, criteria)) in creates.into_iter().enumerate() {
        match create_interaction(state, *appointment, criteria).await {
            Ok(d) => done.push(d),
            Err(error) => {
                let decided = error.outcome();
                // Every entry failed with the transaction; those booked name the records that
                // were booked and cancelled again.
                for i in 0..count {
                    let ids = done
                        .get(i)
                        .map(|d| AuditIds::appointment(d.id()))
                        .unwrap_or_default();
                    trail.note(i, ids, decided.status);
                }
                let mut issues = in_entry_all(index, &error);
                issues.extend(undo(state, &done).await);
                tracing::warn!(
                    entry = index,
                    "transaction failed; bookings made by it were cancelled"
                );
                return response::outcome(decided.status, &issues, rendering);
            }
        }
    }
    for (index, d) in done.iter().enumerate() {
        trail.note(index, AuditIds::appointment(d.id()), d.status);
    }
    let bundle = Bundle {
        r#type: "transaction-response".into(),
        entry: done
            .into_iter()
            .map(|d| success_entry(state, d, answering))
            .collect(),
        ..Default::default()
    };
    response::resource(StatusCode::OK, &bundle, rendering)
}

/// Cancels the bookings a failed transaction made (not those it found already booked).
async fn undo(state: &AppState, done: &[Done]) -> Vec<Issue> {
    let mut notes = Vec::new();
    for (index, d) in done.iter().enumerate() {
        if d.status != StatusCode::CREATED {
            notes.push(Issue::information(format!(
                "Bundle.entry[{index}] matched an earlier booking ({}), which was left as it was",
                d.id()
            )));
            continue;
        }
        let cancel = CancelAppointmentRequest {
            id: d.id().to_owned(),
            status: state.mapping.cancel_status.clone(),
            cancellation_reason: Some("FHIR transaction failed".to_owned()),
            comment: None,
        };
        notes.push(match state.salesforce.cancel_appointment(&cancel).await {
            Ok(_) => {
                // Remember it as cancelled and without its identifiers, so that a retry of the
                // whole transaction books afresh instead of matching this undone booking.
                let mut cancelled = d.appointment.clone();
                cancelled.status = "cancelled".into();
                // A failure is logged; the cancellation itself happened.
                let _ = remember(state, &appointment_record(&cancelled, Vec::new()), None).await;
                Issue::information(format!(
                    "Bundle.entry[{index}] had been booked as {} and was cancelled again",
                    d.id()
                ))
            }
            Err(error) => Issue {
                severity: Severity::Error,
                code: IssueCode::Incomplete,
                diagnostics: format!(
                    "Bundle.entry[{index}] was booked as {} but could not be cancelled again \
                     ({error}): cancel it in Salesforce",
                    d.id()
                ),
                expression: Some(format!("Bundle.entry[{index}]")),
            },
        });
    }
    notes
}
