//! Batch and transaction Bundles of Appointment interactions.
//!
//! [`read`] reads the Bundle (JSON or XML, [`crate::fhir::bundle`]) and each entry's interaction;
//! each entry's resource is parsed on its own from the Bundle's own parse, never through
//! fhirbolt's `Resource` enum (which panics on some malformed entries). A batch runs every entry
//! on its own, in request order. A transaction checks and maps every entry before anything is
//! booked; if a booking then fails, the bookings already made are cancelled again and one failure
//! says which entry failed and what was undone. Salesforce has no transactions, so this is
//! compensation, not atomicity: see README.

use base64::Engine;
use fhirbolt::model::r4::resources::Appointment;

use super::change::{cancel, patch, update};
use super::create::{Prepared, appointment_record, book, create, criteria, prepare, remember};
use super::{Done, Effect};
use crate::error::{ProxyError, TransactionFailure};
use crate::fhir::bundle::{self, BundleType, EntryResource, RawEntry};
use crate::fhir::format::Format;
use crate::fhir::outcome::{Issue, IssueCode, Severity};
use crate::fhir::search::IdentifierCriteria;
use crate::interaction::Interaction;
use crate::tenants::Tenant;

/// The most entries one Bundle may carry: each is a Salesforce call.
pub const MAX_ENTRIES: usize = 100;

/// One entry's interaction, read from `entry.request`.
pub enum EntryRequest {
    /// `POST Appointment`, conditional on `ifNoneExist` or the URL's query.
    Create {
        /// The resource.
        appointment: Box<Appointment>,
        /// Its conditional create criteria.
        criteria: Option<IdentifierCriteria>,
    },
    /// `PUT Appointment/{id}`.
    Update {
        /// The id.
        id: String,
        /// The resource.
        appointment: Box<Appointment>,
    },
    /// `PATCH Appointment/{id}` with a JSON Patch in a Binary.
    Patch {
        /// The id.
        id: String,
        /// The patch.
        patch: json_patch::Patch,
    },
}

impl EntryRequest {
    /// The id the entry's URL names (updates and patches).
    pub fn target(&self) -> Option<&str> {
        match self {
            EntryRequest::Create { .. } => None,
            EntryRequest::Update { id, .. } | EntryRequest::Patch { id, .. } => Some(id),
        }
    }
}

/// A Bundle as read: its type, each entry's interaction (or why it cannot be done), and what each
/// entry asked for by its method and URL (for the audit trail and metrics).
pub struct ReadBundle {
    /// `batch` or `transaction`.
    pub kind: BundleType,
    /// Each entry's interaction, or why it cannot be done.
    pub entries: Vec<Result<EntryRequest, ProxyError>>,
    /// What each entry's method and URL ask for.
    pub kinds: Vec<Option<Interaction>>,
}

/// Whether the caller may make an entry's request (method, URL): checked for each entry before
/// its resource is read, so a caller without the right learns nothing about its content.
pub type Permits<'a> = &'a dyn Fn(&str, &str) -> Result<(), ProxyError>;

/// Reads the Bundle: its type and each entry's interaction (or why the entry cannot be done).
/// Blocking (it parses every resource): run it on a parser thread.
///
/// # Errors
/// 400 when the body is no batch or transaction Bundle; 422 `too-costly` beyond [`MAX_ENTRIES`].
pub fn read(body: &[u8], format: Format, permits: Permits) -> Result<ReadBundle, ProxyError> {
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
            entry
                .request
                .as_ref()
                .and_then(|r| Interaction::from_entry(r.method.as_str(), &r.url))
        })
        .collect();
    Ok(ReadBundle {
        kind: bundle.bundle_type,
        entries: bundle
            .entries
            .into_iter()
            .enumerate()
            .map(|(i, entry)| read_entry(i, entry, permits))
            .collect(),
        kinds,
    })
}

fn read_entry(index: usize, entry: RawEntry, permits: Permits) -> Result<EntryRequest, ProxyError> {
    let at = |path: &str| format!("Bundle.entry[{index}]{path}");
    let request = entry.request.ok_or_else(|| {
        ProxyError::Unparseable(Issue::at(
            IssueCode::Required,
            at(".request"),
            "each entry needs a request (bdl-3)",
        ))
    })?;
    permits(&request.method, &request.url)?;
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
                criteria(request.if_none_exist.as_deref(), query).map_err(|e| match e {
                    ProxyError::Unparseable(issue) => ProxyError::Unparseable(Issue {
                        expression: Some(at(".request")),
                        ..issue
                    }),
                    other => other,
                })?;
            Ok(EntryRequest::Create {
                appointment: appointment(resource)?,
                criteria,
            })
        }
        ("PUT", ["Appointment", id]) => Ok(EntryRequest::Update {
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
                Some(patch) => Ok(EntryRequest::Patch {
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

/// The issues of an entry's failure, with expressions at the entry's place in the Bundle.
pub fn entry_issues(index: usize, error: &ProxyError) -> Vec<Issue> {
    error
        .outcome()
        .issues
        .into_iter()
        .map(|i| in_entry(index, i))
        .collect()
}

/// One batch entry's end: the id its URL named, and what came of it.
pub struct EntryResult {
    /// The id the entry's URL named (updates and patches).
    pub target: Option<String>,
    /// The interaction's result.
    pub result: Result<Done, ProxyError>,
}

/// Runs every entry of a batch on its own, in order.
pub async fn batch(
    tenant: &Tenant,
    entries: Vec<Result<EntryRequest, ProxyError>>,
) -> Vec<EntryResult> {
    let mut out = Vec::with_capacity(entries.len());
    for entry in entries {
        out.push(match entry {
            Ok(request) => EntryResult {
                target: request.target().map(str::to_owned),
                result: run(tenant, request).await,
            },
            Err(error) => EntryResult {
                target: None,
                result: Err(error),
            },
        });
    }
    out
}

async fn run(tenant: &Tenant, request: EntryRequest) -> Result<Done, ProxyError> {
    match request {
        EntryRequest::Create {
            appointment,
            criteria,
        } => create(tenant, *appointment, criteria).await,
        EntryRequest::Update { id, appointment } => update(tenant, &id, *appointment).await,
        EntryRequest::Patch { id, patch: p } => patch(tenant, &id, &p).await,
    }
}

/// Runs a transaction: every entry is checked and mapped first (authorization first of all);
/// then the appointments are booked in order, and a failure cancels what this transaction booked.
///
/// # Errors
/// [`ProxyError::Transaction`], whose status is that of the entry that failed (403 when any entry
/// is outside the caller's rights), with every entry's issues or the failed entry's and what was
/// undone.
pub async fn transaction(
    tenant: &Tenant,
    entries: Vec<Result<EntryRequest, ProxyError>>,
) -> Result<Vec<Done>, ProxyError> {
    // Authorization first: one entry outside the client's rights refuses the whole transaction
    // before anything is checked against or sent to Salesforce.
    let mut denied = None;
    let mut denied_issues = Vec::new();
    for (index, entry) in entries.iter().enumerate() {
        if let Err(error @ ProxyError::Forbidden(_)) = entry {
            denied_issues.extend(entry_issues(index, error));
            denied.get_or_insert(index);
        }
    }
    let mut entries = entries;
    if let Some(index) = denied {
        let cause = entries
            .swap_remove(index)
            .err()
            .unwrap_or(ProxyError::MethodNotAllowed);
        return Err(refused(cause, denied_issues, Vec::new()));
    }
    // Phase 1: everything is read, checked and mapped before anything is booked.
    let mut prepared: Vec<Prepared> = Vec::with_capacity(entries.len());
    let mut issues = Vec::new();
    let mut cause: Option<ProxyError> = None;
    for (index, entry) in entries.into_iter().enumerate() {
        let error = match entry {
            Ok(EntryRequest::Create {
                appointment,
                criteria,
            }) => match prepare(tenant, *appointment, criteria).await {
                Ok(ready) => {
                    prepared.push(ready);
                    continue;
                }
                Err(error) => error,
            },
            // Updates and cancellations cannot be undone in Salesforce (a cancellation cannot be
            // reverted), so a transaction that promised atomicity could not keep it.
            Ok(_) => {
                let issue = Issue::at(
                    IssueCode::NotSupported,
                    format!("Bundle.entry[{index}].request"),
                    "a transaction may only create appointments (a change or cancellation could \
                     not be undone if a later entry failed); send changes in a batch",
                );
                issues.push(issue.clone());
                // A 400, unless an entry fails in its own right.
                cause.get_or_insert(ProxyError::Unparseable(issue));
                continue;
            }
            Err(error) => error,
        };
        issues.extend(entry_issues(index, &error));
        // The status is that of the last entry that failed.
        cause = Some(error);
    }
    if let Some(cause) = cause {
        return Err(refused(cause, issues, Vec::new()));
    }

    // Phase 2: book in order; on a failure, cancel what this transaction booked.
    let mut done: Vec<Done> = Vec::with_capacity(prepared.len());
    for (index, ready) in prepared.into_iter().enumerate() {
        match book(tenant, ready).await {
            Ok(d) => done.push(d),
            Err(error) => {
                let mut issues = entry_issues(index, &error);
                issues.extend(undo(tenant, &done).await);
                tracing::warn!(
                    entry = index,
                    "transaction failed; bookings made by it were cancelled"
                );
                let booked = done.iter().map(|d| d.id().to_owned()).collect();
                return Err(refused(error, issues, booked));
            }
        }
    }
    Ok(done)
}

fn refused(cause: ProxyError, issues: Vec<Issue>, booked: Vec<String>) -> ProxyError {
    ProxyError::Transaction(Box::new(TransactionFailure {
        cause,
        issues,
        booked,
    }))
}

/// Cancels the bookings a failed transaction made (not those it found already booked).
async fn undo(tenant: &Tenant, done: &[Done]) -> Vec<Issue> {
    let mut notes = Vec::new();
    for (index, d) in done.iter().enumerate() {
        if d.effect != Effect::Booked {
            notes.push(Issue::information(format!(
                "Bundle.entry[{index}] matched an earlier booking ({}), which was left as it was",
                d.id()
            )));
            continue;
        }
        let reason = Some("FHIR transaction failed".to_owned());
        notes.push(match cancel(tenant, d.id(), reason).await {
            Ok(_) => {
                // Remember it as cancelled and without its identifiers, so that a retry of the
                // whole transaction books afresh instead of matching this undone booking.
                let mut cancelled = d.appointment.clone();
                cancelled.status = "cancelled".into();
                // A failure is logged; the cancellation itself happened.
                let _ = remember(tenant, &appointment_record(&cancelled, Vec::new()), None).await;
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
