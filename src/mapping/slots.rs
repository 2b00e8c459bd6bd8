//! Slot search: a FHIR `GET [base]/Slot` query → Salesforce Get Slots request, and its answer →
//! a FHIR `searchset` Bundle of free Slots.
//!
//! Pure and synchronous, like the rest of `mapping`. The search speaks FHIR R4 search syntax
//! (search.html): `start` is a date parameter with prefixes, `schedule.actor` a chained reference,
//! `service-type` and `appointment-type` tokens, `status` a SlotStatus code. Actors become
//! Salesforce resources exactly as Appointment participants do when booking, and the type
//! parameters pick the work type or codes through the same work type rules and code tables (the
//! functions of [`super::book`] are reused, not copied), so a slot found here can be booked with
//! the same mapping.
//!
//! Diagnostics name parameters, never their values: a reference or identifier can be patient data.

use std::collections::HashMap;

use chrono::{
    DateTime, FixedOffset, Months, NaiveDate, NaiveDateTime, NaiveTime, SecondsFormat, TimeDelta,
    TimeZone, Utc,
};
use fhirbolt::model::r4::Resource;
use fhirbolt::model::r4::resources::{
    Appointment, Bundle, BundleEntry, BundleEntrySearch, BundleLink, Slot,
};
use fhirbolt::model::r4::types::{CodeableConcept, Coding, Identifier, Reference};

use super::book::{coded, salesforce_instant, work_type};
use super::file::{CodedElement, Mapping, SendCodes};
use super::lookup::{LookupKey, ResolvedIds, needed_for_references, salesforce_id_with};
use super::reference::type_and_id;
use crate::fhir::outcome::{Issue, IssueCode, Severity, operation_outcome};
use crate::salesforce::id::is_salesforce_id;
use crate::salesforce::wire::{GetSlotsRequest, ResourceSlots, SlotResource};

pub(crate) mod query;
pub use super::reference::SLOT_IDENTIFIER_SYSTEM;
pub use query::*;

/// Maps a Slot search onto the Get Slots request.
///
/// Actors resolve like booking participants (the mapping's `ids.table` references, then
/// passthrough of Salesforce ids); a kind of Practitioner becomes resource type `Provider`, a kind
/// of Device `Asset`. A `schedule` (`Schedule/{id}`, as on the Slots this search returns) names the
/// Salesforce resource directly, without a type. The work type, channel, codes and `sourceSystem`
/// follow the booking rules: the first work type rule matching a `service-type`,
/// `service-category` or `appointment-type` token, else the
/// default work type; codes through the code tables, sent as `[codes] send` says; `sourceSystem`
/// with the codes, and required when there is no work type.
///
/// # Errors
/// Every problem found: no lower bound on `start` or no `schedule.actor` (`required`), an actor
/// that is not a `Type/id` reference (`invalid`) or not of a kind Salesforce keeps slots for
/// (`not-supported`): all of them mean the search is malformed (400). An actor without a Salesforce
/// id (`not-found`), a code the mapping rejects (`code-invalid`), no work type and no codes, or no
/// source system (`business-rule`): the search is well-formed but cannot be processed (422).
pub fn slots_request(query: &SlotQuery, mapping: &Mapping) -> Result<GetSlotsRequest, Vec<Issue>> {
    slots_request_with(query, mapping, &ResolvedIds::default())
}

/// The external-id lookups a Slot search needs: one per `schedule.actor` under an
/// `[[ids.lookup]]` type rule (each key once).
pub fn needed_slot_lookups(query: &SlotQuery, mapping: &Mapping) -> Vec<LookupKey> {
    needed_for_references(&query.actors, mapping)
}

/// [`slots_request`], reading the ids of actors under `[[ids.lookup]]` rules from `resolved` (the
/// answers to [`needed_slot_lookups`]).
///
/// # Errors
/// As [`slots_request`]; an actor whose lookup found no record is `not-found`, several records
/// `multiple-matches` (422).
pub fn slots_request_with(
    query: &SlotQuery,
    mapping: &Mapping,
    resolved: &ResolvedIds,
) -> Result<GetSlotsRequest, Vec<Issue>> {
    let mut issues = Vec::new();
    let start = query.lower_bound();
    if start.is_none() {
        issues.push(Issue::general(
            IssueCode::Required,
            "the search needs a lower bound on the start parameter (start=ge2025-09-20, or gt, \
             or eq): Salesforce Get Slots requires a start date",
        ));
    }
    if query.actors.is_empty() && query.schedules.is_empty() {
        issues.push(Issue::general(
            IssueCode::Required,
            "the search needs a schedule.actor parameter (Practitioner/{id}, \
             PractitionerRole/{id} or Device/{id}) or a schedule parameter (Schedule/{id} as \
             found on a Slot): Salesforce Get Slots finds the slots of named resources",
        ));
    }
    let resources = resources(query, mapping, resolved, &mut issues);

    // The booking functions read an Appointment: the tokens become its codings.
    let appointment = as_appointment(query);
    let (work_type_id, rule_channel) = work_type(&appointment, mapping);
    let channel_id = rule_channel.or_else(|| mapping.channel_id.clone());
    let mut codes = |element: CodedElement, parameter: &str| {
        let mut found = Vec::new();
        let codes = coded(&appointment, element, mapping, &mut found);
        // The booking issues point at Appointment elements; here the client sent a parameter.
        issues.extend(found.into_iter().map(|_| {
            Issue::general(
                IssueCode::CodeInvalid,
                format!(
                    "a {parameter} code has no Salesforce translation in the mapping, which \
                     rejects unmapped codes"
                ),
            )
        }));
        codes
    };
    let appointment_types = codes(CodedElement::AppointmentType, "appointment-type");
    let service_types = codes(CodedElement::ServiceType, "service-type");
    let service_categories = codes(CodedElement::ServiceCategory, "service-category");

    let codes_present = !(appointment_types.is_empty()
        && service_types.is_empty()
        && service_categories.is_empty());
    let send_codes = match mapping.send_codes {
        SendCodes::Always => true,
        SendCodes::WithoutWorkType => work_type_id.is_none(),
    };
    // Get Slots needs a start and, without a work type, a sourceSystem (salesforce-api.md §2.3);
    // visit codes only narrow the search.
    let no_work_type = work_type_id.is_none();
    if no_work_type && mapping.source_system.is_none() {
        issues.push(Issue::general(
            IssueCode::BusinessRule,
            "Salesforce Get Slots needs a sourceSystem when no work type is given (no work type \
             rule matched and the mapping has no default work type); set defaults.source_system \
             in the mapping",
        ));
    }

    match start {
        Some(start) if issues.is_empty() => {
            let keep = |v: Vec<String>| if send_codes { v } else { Vec::new() };
            Ok(GetSlotsRequest {
                start_date: salesforce_instant(start),
                end_date: query.upper_bound().map(salesforce_instant),
                resources,
                work_type_id,
                appointment_types: keep(appointment_types),
                service_types: keep(service_types),
                service_categories: keep(service_categories),
                // sourceSystem names the code sets the codes belong to, and stands in for a work
                // type: it goes out with the codes, and whenever there is no work type.
                source_system: if (send_codes && codes_present) || no_work_type {
                    mapping.source_system.clone()
                } else {
                    None
                },
                channel_id,
            })
        }
        _ => Err(issues),
    }
}

fn resources(
    query: &SlotQuery,
    mapping: &Mapping,
    resolved: &ResolvedIds,
    issues: &mut Vec<Issue>,
) -> Vec<SlotResource> {
    let mut out: Vec<SlotResource> = Vec::new();
    for (index, value) in query.schedules.iter().enumerate() {
        // A Schedule here is what a Slot of this search points at: `Schedule/{resourceId}`. Its
        // kind is not known, and Get Slots does not need it (resourceType is optional).
        match type_and_id(value) {
            Some(("Schedule", id)) if is_salesforce_id(id) => {
                if !out.iter().any(|r| r.resource_id == id) {
                    out.push(SlotResource {
                        resource_id: id.to_owned(),
                        resource_type: None,
                    });
                }
            }
            _ => issues.push(Issue::general(
                IssueCode::Invalid,
                format!(
                    "schedule value {} is not a Schedule/{{id}} reference with a Salesforce id, \
                     as the schedule of a Slot found by this search",
                    index + 1
                ),
            )),
        }
    }
    for (index, value) in query.actors.iter().enumerate() {
        let n = index + 1;
        // `type_and_id` only returns a plausible resource type name, which is safe to echo.
        let Some((fhir_type, _)) = type_and_id(value) else {
            issues.push(Issue::general(
                IssueCode::Invalid,
                format!(
                    "schedule.actor value {n} is not a Type/id reference: use Practitioner/{{id}}, \
                     PractitionerRole/{{id}} or Device/{{id}}"
                ),
            ));
            continue;
        };
        let resource_type = match mapping.kinds.get(fhir_type).map(String::as_str) {
            Some("Practitioner") => "Provider",
            Some("Device") => "Asset",
            _ => {
                issues.push(Issue::general(
                    IssueCode::NotSupported,
                    format!(
                        "schedule.actor value {n} is a {fhir_type}: Salesforce keeps slots for \
                         providers and assets only, that is actors the mapping's participants.kinds \
                         makes a Practitioner or a Device"
                    ),
                ));
                continue;
            }
        };
        let actor = Reference {
            reference: Some(value.as_str().into()),
            ..Default::default()
        };
        let id = match salesforce_id_with(&actor, fhir_type, mapping, resolved) {
            Ok(id) => id,
            Err(unresolved) => {
                let what = format!("the {fhir_type} reference in schedule.actor value {n}");
                issues.push(unresolved.lookup_issue(&what, None).unwrap_or_else(|| {
                    Issue::general(
                        IssueCode::NotFound,
                        format!(
                            "{what} has no Salesforce id: it is not a Salesforce id and the \
                             mapping's ids.table has no entry for it"
                        ),
                    )
                }));
                continue;
            }
        };
        if !out.iter().any(|r| r.resource_id == id) {
            out.push(SlotResource {
                resource_id: id,
                resource_type: Some(resource_type.to_owned()),
            });
        }
    }
    out
}

fn as_appointment(query: &SlotQuery) -> Appointment {
    let concept = |tokens: &[Token]| CodeableConcept {
        coding: tokens
            .iter()
            .map(|t| Coding {
                system: Some(t.system.as_str().into()),
                code: Some(t.code.as_str().into()),
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    };
    Appointment {
        service_category: if query.service_categories.is_empty() {
            Vec::new()
        } else {
            vec![concept(&query.service_categories)]
        },
        service_type: if query.service_types.is_empty() {
            Vec::new()
        } else {
            vec![concept(&query.service_types)]
        },
        appointment_type: (!query.appointment_types.is_empty())
            .then(|| Box::new(concept(&query.appointment_types))),
        ..Default::default()
    }
}

/// The `searchset` Bundle for a Get Slots answer.
///
/// One entry per free slot whose start satisfies `query` (Salesforce's window may be wider than
/// the FHIR `start` filter, which applies to the slot's start), each with `fullUrl`
/// `{base_url}/Slot/{id}` and `search.mode` `match`, in Salesforce's order. A slot's id is
/// Salesforce's `slotId` when that is a valid FHIR id, else a stable id minted from it; either
/// way `identifier` ([`SLOT_IDENTIFIER_SYSTEM`]) carries the `slotId` as Salesforce sent it, which
/// is what booking needs (`Appointment.slot` as `Slot/{id}`, or with that identifier when the id
/// was minted). Its schedule is `Schedule/{resourceId}`. Times without a zone are read as UTC.
/// Slots whose times cannot be read are left out and counted in an OperationOutcome entry
/// (`search.mode` `outcome`), so the client knows the answer is incomplete.
pub fn search_bundle(
    answer: &[ResourceSlots],
    request: &GetSlotsRequest,
    query: &SlotQuery,
    base_url: &str,
    self_url: &str,
) -> Bundle {
    let kinds: HashMap<&str, &str> = request
        .resources
        .iter()
        .filter_map(|r| Some((r.resource_id.as_str(), r.resource_type.as_deref()?)))
        .collect();
    let (found, unreadable) = free_slots(answer, query);
    let mut entry = Vec::with_capacity(found.len());
    for slot in found {
        let display = match kinds.get(slot.resource_id) {
            Some(&"Provider") => "Salesforce provider (Healthcare Practitioner Facility)",
            Some(&"Asset") => "Salesforce asset",
            _ => "Salesforce resource",
        };
        let id = fhir_id(slot.slot_id);
        let fhir_slot = Slot {
            id: Some(id.as_str().into()),
            identifier: vec![slot.identifier()],
            schedule: Box::new(Reference {
                reference: Some(format!("Schedule/{}", fhir_id(slot.resource_id)).into()),
                display: Some(display.into()),
                ..Default::default()
            }),
            status: "free".into(),
            start: fhir_instant(slot.start).into(),
            end: fhir_instant(slot.end).into(),
            ..Default::default()
        };
        entry.push(BundleEntry {
            full_url: Some(format!("{base_url}/Slot/{id}").into()),
            resource: Some(Resource::Slot(Box::new(fhir_slot))),
            search: Some(search_mode("match")),
            ..Default::default()
        });
    }
    let total = u32::try_from(entry.len()).unwrap_or(u32::MAX);
    if unreadable > 0 {
        entry.push(unreadable_entry(unreadable));
    }
    Bundle {
        r#type: "searchset".into(),
        total: Some(total.into()),
        link: vec![BundleLink {
            relation: "self".into(),
            url: self_url.into(),
            ..Default::default()
        }],
        entry,
        ..Default::default()
    }
}

/// A free slot from a Get Slots answer, its times read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FoundSlot<'a> {
    /// The Salesforce resource (provider or asset) the slot belongs to.
    pub resource_id: &'a str,
    /// Salesforce's `slotId`, as sent.
    pub slot_id: &'a str,
    /// Slot start.
    pub start: DateTime<Utc>,
    /// Slot end.
    pub end: DateTime<Utc>,
}

impl FoundSlot<'_> {
    /// The identifier carrying the `slotId` as Salesforce sent it.
    pub fn identifier(&self) -> Identifier {
        Identifier {
            system: Some(SLOT_IDENTIFIER_SYSTEM.into()),
            value: Some(self.slot_id.into()),
            ..Default::default()
        }
    }
}

/// The slots of `answer` whose start satisfies `query`, in Salesforce's order, and how many were
/// left out because their times could not be read. (Salesforce's window may be wider than the
/// FHIR filter, which applies to the slot's start.)
pub(crate) fn free_slots<'a>(
    answer: &'a [ResourceSlots],
    query: &SlotQuery,
) -> (Vec<FoundSlot<'a>>, usize) {
    let mut found = Vec::new();
    let mut unreadable = 0usize;
    for resource in answer {
        for slot in &resource.slots {
            let (Some(start), Some(end)) = (
                read_instant(&slot.slot_start_date),
                read_instant(&slot.slot_end_date),
            ) else {
                unreadable += 1;
                continue;
            };
            if query.matches_start(start) {
                found.push(FoundSlot {
                    resource_id: &resource.resource_id,
                    slot_id: &slot.slot_id,
                    start,
                    end,
                });
            }
        }
    }
    (found, unreadable)
}

/// The `outcome` entry saying how many slots Salesforce answered unreadably.
pub(crate) fn unreadable_entry(unreadable: usize) -> BundleEntry {
    let warning = Issue {
        severity: Severity::Warning,
        code: IssueCode::Processing,
        diagnostics: format!(
            "Salesforce answered {unreadable} slot(s) whose start or end is not a date-time; \
             they were left out"
        ),
        expression: None,
    };
    BundleEntry {
        resource: Some(Resource::OperationOutcome(Box::new(operation_outcome(&[
            warning,
        ])))),
        search: Some(search_mode("outcome")),
        ..Default::default()
    }
}

pub(crate) fn search_mode(mode: &str) -> BundleEntrySearch {
    BundleEntrySearch {
        mode: Some(mode.into()),
        ..Default::default()
    }
}

/// An ISO-8601 date-time with a zone (converted to UTC) or without one (read as UTC, as
/// Salesforce's own Get Slots sample writes them).
fn read_instant(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.to_utc())
        .ok()
        .or_else(|| {
            NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f")
                .ok()
                .map(|t| t.and_utc())
        })
}

/// An R4 instant in UTC, with fractional seconds only when there are some.
pub(crate) fn fhir_instant(instant: DateTime<Utc>) -> String {
    instant.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

/// Whether `text` is a valid R4 id: `[A-Za-z0-9\-\.]{1,64}`.
pub fn is_fhir_id(text: &str) -> bool {
    (1..=64).contains(&text.len())
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
}

/// `text` itself when it is a valid R4 id, else `sf-` and a 64-bit FNV-1a hash of it in hex:
/// stable across runs and builds, so the same Salesforce slot always gets the same FHIR id.
pub(crate) fn fhir_id(text: &str) -> String {
    if is_fhir_id(text) {
        return text.to_owned();
    }
    let hash = text.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    });
    format!("sf-{hash:016x}")
}

#[cfg(test)]
mod tests;
