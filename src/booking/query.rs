//! Searching appointments in Salesforce (`GET [base]/Appointment?…`): the search resolved through
//! the mapping into one SOQL statement, run with a bound on rows, paged, and answered as a
//! `searchset` of Appointments as Salesforce holds them now.
//!
//! Each participant parameter is resolved as a booking's participants are (the `ids.table`,
//! passthrough, external-id lookups); a reference with no Salesforce id matches nothing, so the
//! answer is empty rather than an error. Business identifiers are kept by the store only, so
//! `identifier` is answered from it (or, under the mapping's identifier system, is the
//! Salesforce id). Codes are kept by Salesforce only as the work type a rule chose, so
//! `service-type` and `appointment-type` match through the mapping's work type rules.
//!
//! Pages: a `next` link carries the proxy's own `_page` token, the Salesforce query locator
//! of the batch the page starts in (or none for the first batch) and how many of its rows come
//! before the page. Salesforce keeps a query's results for two days; an older link is a 410.

use std::collections::BTreeSet;

use fhirbolt::model::r4::Resource;
use fhirbolt::model::r4::resources::{Bundle, BundleEntry, BundleEntrySearch, BundleLink};
use fhirbolt::model::r4::types::Reference;

use super::read::{Current, appointments, ids_with_identifiers};
use crate::error::ProxyError;
use crate::fhir::outcome::{Issue, IssueCode};
use crate::mapping::file::CodedElement;
use crate::mapping::lookup::{LookupAnswer, Plan, plan};
use crate::mapping::reference::type_and_id;
use crate::mapping::search::{AppointmentQuery, TotalMode, salesforce_statuses, work_types};
use crate::mapping::slots::query::Comparator;
use crate::salesforce::SalesforceClient;
use crate::salesforce::records::{QueryPage, is_locator};
use crate::salesforce::soql::{self, Condition, IdLiteral, Order};
use crate::tenants::Tenant;

/// The most rows one search asks Salesforce for (`LIMIT`): pages beyond it are not offered.
pub const MAX_ROWS: usize = 2000;
/// The most ids one `IN` list carries (Salesforce's URI limit is 16,384 bytes).
const MAX_IDS: usize = 200;

/// One page of a search's answer.
#[derive(Debug)]
pub struct Found {
    /// The appointments on this page.
    pub entries: Vec<Current>,
    /// Every match, when known.
    pub total: Option<u64>,
    /// The `_page` token of the next page, if there is one.
    pub next: Option<String>,
}

impl Found {
    fn empty() -> Found {
        Found {
            entries: Vec::new(),
            total: Some(0),
            next: None,
        }
    }
}

/// Runs a search.
///
/// # Errors
/// 400 (`too-costly`) for a search Salesforce could not answer from an index, 400
/// (`not-supported`) for participant combinations SOQL cannot express, a 410 for a `_page`
/// Salesforce no longer keeps, [`ProxyError::Reading`] and [`ProxyError::Lookup`] when Salesforce
/// fails.
pub async fn search(tenant: &Tenant, query: &AppointmentQuery) -> Result<Found, ProxyError> {
    if !query.is_selective() {
        return Err(ProxyError::Search(Issue::general(
            IssueCode::TooCostly,
            "an Appointment search needs _id, identifier, patient, actor, practitioner, location \
             or a date range bounded on both sides (date=ge…&date=lt…): Salesforce cannot \
             search every appointment of the org",
        )));
    }
    let Some(conditions) = conditions(tenant, query).await? else {
        return Ok(Found::empty());
    };
    let order = if query.descending {
        Order::StartDescending
    } else {
        Order::StartAscending
    };
    let statement = soql::select(&conditions, order, MAX_ROWS);
    let (locator, skip) = match &query.page {
        None => (None, 0),
        Some(token) => read_token(token)?,
    };
    let salesforce = &tenant.salesforce;
    let mut page = match &locator {
        None => salesforce.query(&statement).await,
        Some(locator) => salesforce.query_more(locator).await,
    }
    .map_err(ProxyError::Reading)?;
    let total_size = page.total_size;
    let mut current = locator;
    let mut skip = skip;
    let mut taken = Vec::new();
    let next = loop {
        let batch = std::mem::take(&mut page.records);
        let batch_len = batch.len();
        let wanted = query.count - taken.len();
        let start = skip.min(batch_len);
        let end = start.saturating_add(wanted).min(batch_len);
        taken.extend(batch.into_iter().skip(start).take(end - start));
        if taken.len() == query.count {
            break if end < batch_len {
                Some(token(current.as_deref(), end))
            } else {
                page.next.as_deref().map(|next| token(Some(next), 0))
            };
        }
        let Some(next) = page.next.take() else {
            break None;
        };
        page = more(salesforce, &next).await?;
        current = Some(next);
        skip = 0;
    };
    let total = match query.total {
        TotalMode::None => None,
        _ if (total_size as usize) < MAX_ROWS => Some(total_size),
        TotalMode::Accurate => Some(
            salesforce
                .query(&soql::count(&conditions))
                .await
                .map_err(ProxyError::Reading)?
                .total_size,
        ),
        TotalMode::Estimate => None,
    };
    let entries = appointments(tenant, taken).await?;
    tracing::info!(
        matches = total_size,
        page = entries.len(),
        "appointments searched"
    );
    Ok(Found {
        entries,
        total: match tenant.mapping.readable {
            // Some of Salesforce's rows are left out: its count is not the answer's.
            crate::mapping::file::ReadableAppointments::BookedHere => None,
            crate::mapping::file::ReadableAppointments::All => total,
        },
        next,
    })
}

async fn more(salesforce: &SalesforceClient, locator: &str) -> Result<QueryPage, ProxyError> {
    salesforce
        .query_more(locator)
        .await
        .map_err(ProxyError::Reading)
}

/// `{locator}~{skip}`, `0` standing for the first batch.
fn token(locator: Option<&str>, skip: usize) -> String {
    format!("{}~{skip}", locator.unwrap_or("0"))
}

fn read_token(token: &str) -> Result<(Option<String>, usize), ProxyError> {
    let expired = || ProxyError::Reading(crate::salesforce::SalesforceError::PageExpired);
    let (locator, skip) = token.split_once('~').ok_or_else(expired)?;
    let skip: usize = skip
        .parse()
        .ok()
        .filter(|s| *s <= MAX_ROWS)
        .ok_or_else(expired)?;
    match locator {
        "0" => Ok((None, skip)),
        l if is_locator(l) => Ok((Some(l.to_owned()), skip)),
        _ => Err(expired()),
    }
}

/// The search's conditions in SOQL; `None` when it can match nothing (an unknown patient, an
/// identifier never booked), so Salesforce need not be asked.
async fn conditions(
    tenant: &Tenant,
    query: &AppointmentQuery,
) -> Result<Option<Vec<Condition>>, ProxyError> {
    let mapping = &tenant.mapping;
    // Field Service work orders and the like are not appointments.
    let mut out = vec![Condition::patient_appointments()];

    let mut ids: Option<BTreeSet<String>> = None;
    let mut narrow = |these: BTreeSet<String>| {
        ids = Some(match ids.take() {
            None => these,
            Some(before) => before.intersection(&these).cloned().collect(),
        });
    };
    for list in &query.ids {
        narrow(
            list.iter()
                .filter(|id| IdLiteral::new(id).is_ok())
                .cloned()
                .collect(),
        );
    }
    for keys in &query.identifiers {
        narrow(ids_with_identifiers(tenant, keys).await?);
    }
    if let Some(ids) = ids {
        if ids.is_empty() {
            return Ok(None);
        }
        if ids.len() > MAX_IDS {
            return Err(too_many_ids());
        }
        let literals: Vec<IdLiteral> = ids.iter().filter_map(|i| IdLiteral::new(i).ok()).collect();
        out.push(Condition::id_in(&literals));
    }

    let mut semi_joins = 0;
    for (lists, parameter, types) in [
        (&query.patients, "patient", &["Patient"][..]),
        (
            &query.practitioners,
            "practitioner",
            &["Practitioner", "PractitionerRole"][..],
        ),
        (&query.locations, "location", &["Location"][..]),
        (&query.actors, "actor", &[][..]),
    ] {
        for list in lists {
            let Some((kind, found)) = participant_ids(tenant, list, types, parameter).await? else {
                return Ok(None);
            };
            let condition = match kind {
                "Patient" => Condition::patient_in(&found),
                "Practitioner" => Condition::practitioner_in(&found),
                "Facility" => Condition::facility_in(&found),
                _ => return Ok(None),
            };
            semi_joins += usize::from(condition.is_semi_join());
            out.push(condition);
        }
    }
    if semi_joins > 2 {
        return Err(ProxyError::Search(Issue::general(
            IssueCode::NotSupported,
            "at most two practitioner or location criteria (practitioner, location, actor) can \
             be searched at once: Salesforce allows two semi-joins per query",
        )));
    }

    for bound in &query.dates {
        let at = |op, when| {
            Condition::start(op, when).map_err(|e| {
                ProxyError::Search(Issue::general(IssueCode::Value, format!("date is {e}")))
            })
        };
        match bound.comparator {
            Comparator::Eq => {
                out.push(at(">=", bound.from)?);
                out.push(at("<", bound.until)?);
            }
            Comparator::Ge => out.push(at(">=", bound.from)?),
            Comparator::Gt => out.push(at(">=", bound.until)?),
            Comparator::Le => out.push(at("<", bound.until)?),
            Comparator::Lt => out.push(at("<", bound.from)?),
        }
    }

    for list in &query.statuses {
        let (statuses, categories) = salesforce_statuses(list, mapping);
        if statuses.is_empty() && categories.is_empty() {
            return Ok(None);
        }
        out.push(
            Condition::status_or_category(&statuses, &categories).map_err(|e| {
                ProxyError::Search(Issue::general(
                    IssueCode::Value,
                    format!("a status of the mapping cannot be searched: {e}"),
                ))
            })?,
        );
    }
    for (lists, element) in [
        (&query.service_types, CodedElement::ServiceType),
        (&query.appointment_types, CodedElement::AppointmentType),
    ] {
        for list in lists {
            let found: Vec<IdLiteral> = work_types(list, element, mapping)
                .iter()
                .filter_map(|w| IdLiteral::new(w).ok())
                .collect();
            if found.is_empty() {
                return Ok(None);
            }
            out.push(Condition::work_type_in(&found));
        }
    }
    Ok(Some(out))
}

fn too_many_ids() -> ProxyError {
    ProxyError::Search(Issue::general(
        IssueCode::TooCostly,
        format!("the search names more than {MAX_IDS} appointments; split it"),
    ))
}

/// The Salesforce kind and ids of one participant parameter's references (an OR list), or
/// `None` when none of them has a Salesforce id (the search then matches nothing).
async fn participant_ids(
    tenant: &Tenant,
    references: &[String],
    types: &[&str],
    parameter: &str,
) -> Result<Option<(&'static str, Vec<IdLiteral>)>, ProxyError> {
    let mapping = &tenant.mapping;
    let mut kind: Option<&'static str> = None;
    let mut ids = Vec::new();
    let mut keys = Vec::new();
    for text in references {
        let Some((fhir_type, _)) = type_and_id(text) else {
            return Err(ProxyError::Search(Issue::general(
                IssueCode::Invalid,
                format!("{parameter} takes references such as Patient/123"),
            )));
        };
        if !types.is_empty() && !types.contains(&fhir_type) {
            return Err(ProxyError::Search(Issue::general(
                IssueCode::Invalid,
                format!("{parameter} takes references to {}", types.join(" or ")),
            )));
        }
        let this_kind = match mapping.kinds.get(fhir_type).map(String::as_str) {
            Some("Patient") => "Patient",
            Some("Practitioner") => "Practitioner",
            Some("Facility") => "Facility",
            // A kind Salesforce keeps no link for (Device) or none at all: nothing to match.
            _ => continue,
        };
        if kind.is_some_and(|k| k != this_kind) {
            return Err(ProxyError::Search(Issue::general(
                IssueCode::NotSupported,
                format!(
                    "{parameter} lists participants of different kinds; Salesforce cannot search \
                     them as alternatives in one query, so repeat the search for each kind"
                ),
            )));
        }
        kind = Some(this_kind);
        let actor = Reference {
            reference: Some(text.as_str().into()),
            ..Default::default()
        };
        match plan(&actor, fhir_type, mapping) {
            Plan::Known(id) => ids.push(id),
            Plan::Lookup { key, .. } => keys.push(key),
            Plan::Unknown => {}
        }
    }
    if !keys.is_empty() {
        let resolved =
            crate::salesforce::lookup::resolve(&tenant.salesforce, &mapping.lookup_cache, &keys)
                .await
                .map_err(ProxyError::Lookup)?;
        for key in &keys {
            if let Some(LookupAnswer::Found(id)) = resolved.get(key) {
                ids.push(id.clone());
            }
        }
    }
    let literals: Vec<IdLiteral> = ids.iter().filter_map(|i| IdLiteral::new(i).ok()).collect();
    if literals.len() > MAX_IDS {
        return Err(too_many_ids());
    }
    Ok(kind.filter(|_| !literals.is_empty()).map(|k| (k, literals)))
}

/// The `searchset` Bundle of a page: `fullUrl`s under `base` (absolute), `self` and `next`
/// links under `path` repeating the search's parameters.
pub fn searchset(found: Found, query: &AppointmentQuery, base: &str) -> Bundle {
    let path = format!("{base}/Appointment");
    let url = |page: Option<&str>| {
        let mut q = url::form_urlencoded::Serializer::new(String::new());
        for (name, value) in &query.used {
            q.append_pair(name, value);
        }
        if let Some(page) = page {
            q.append_pair("_page", page);
        }
        match q.finish() {
            q if q.is_empty() => path.clone(),
            q => format!("{path}?{q}"),
        }
    };
    let link = |relation: &str, url: String| BundleLink {
        relation: relation.into(),
        url: url.into(),
        ..Default::default()
    };
    let mut links = vec![link("self", url(query.page.as_deref()))];
    if let Some(next) = &found.next {
        links.push(link("next", url(Some(next))));
    }
    let entry = found
        .entries
        .into_iter()
        .map(|current| {
            let id = current
                .appointment
                .id
                .as_ref()
                .and_then(|i| i.value.clone())
                .unwrap_or_default();
            BundleEntry {
                full_url: Some(format!("{path}/{id}").into()),
                resource: Some(Resource::Appointment(Box::new(current.appointment))),
                search: Some(BundleEntrySearch {
                    mode: Some("match".into()),
                    ..Default::default()
                }),
                ..Default::default()
            }
        })
        .collect();
    Bundle {
        r#type: "searchset".into(),
        total: found
            .total
            .map(|t| u32::try_from(t).unwrap_or(u32::MAX).into()),
        link: links,
        entry,
        ..Default::default()
    }
}
