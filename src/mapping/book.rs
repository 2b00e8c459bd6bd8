//! Appointment → Book Appointment request: participants and their Salesforce ids, codings → code
//! strings, work type rules, slots and dates, plus the checks Book Appointment itself needs.
//!
//! Pure and synchronous: every problem found is collected and returned, so one answer tells the
//! sender everything that is wrong. Diagnostics name elements by FHIRPath and never echo their
//! values (a reference or identifier can be patient data).

use chrono::{DateTime, Duration, SecondsFormat, Utc};
use fhirbolt::model::r4::resources::{Appointment, AppointmentParticipant};
use fhirbolt::model::r4::types::CodeableConcept;

use super::file::{
    CodedElement, Mapping, OtherActors, SendCodes, SlotReferenceStyle, UnmappedCode,
};
use super::lookup::{ResolvedIds, salesforce_id_with};
use super::reference::{SLOT_IDENTIFIER_SYSTEM, actor_type, reference, type_and_id};
use crate::fhir::outcome::{Issue, IssueCode};
use crate::salesforce::wire::{BookAppointmentRequest, Participant, SlotReference};

/// Salesforce's documented limit on `comment`.
pub const MAX_COMMENT_CHARS: usize = 256;

/// FHIR statuses that describe an appointment one can book.
const BOOKABLE_STATUSES: [&str; 3] = ["proposed", "pending", "booked"];

/// Maps a validated Appointment onto the Book Appointment request, for callers that make no
/// external-id lookups: [`book_request_with`] with no answers.
///
/// # Errors
/// As [`book_request_with`]; a participant whose id needs a lookup gets an `informational` issue
/// (see [`super::lookup::is_pending_lookup`]).
pub fn book_request(
    appointment: &Appointment,
    mapping: &Mapping,
) -> Result<BookAppointmentRequest, Vec<Issue>> {
    book_request_with(appointment, mapping, &ResolvedIds::default())
}

/// Maps a validated Appointment onto the Book Appointment request, reading the ids of
/// participants under `[[ids.lookup]]` rules from `resolved` (the answers to
/// [`super::lookup::needed_lookups`]).
///
/// # Errors
/// Every problem found, each with the FHIRPath of the element concerned: a reference without a
/// Salesforce id, a lookup that found no record (`not-found`) or several (`multiple-matches`), a
/// missing Patient, Facility or Practitioner/Device, no work type and no codes, no source system,
/// a comment over 256 characters, an unbookable status, a slot without a practitioner, a code the
/// mapping rejects. A lookup without an answer in `resolved` is an `information` issue instead,
/// so a caller can tell "only lookups missing" from a real problem.
pub fn book_request_with(
    appointment: &Appointment,
    mapping: &Mapping,
    resolved: &ResolvedIds,
) -> Result<BookAppointmentRequest, Vec<Issue>> {
    let mut issues = Vec::new();

    if let Some(status) = appointment.status.value.as_deref()
        && !BOOKABLE_STATUSES.contains(&status)
    {
        issues.push(Issue::at(
            IssueCode::BusinessRule,
            "Appointment.status",
            "only a proposed, pending or booked Appointment can be booked",
        ));
    }

    let (start_date, end_date) = dates(appointment, mapping, &mut issues);
    let (participants, practitioner_unresolved) =
        participants(appointment, mapping, resolved, &mut issues);
    let slots = slots(
        appointment,
        &participants,
        practitioner_unresolved,
        mapping,
        &mut issues,
    );

    let (work_type_id, rule_channel) = work_type(appointment, mapping);
    let channel_id = rule_channel.or_else(|| mapping.channel_id.clone());

    let mut codes = |element| coded(appointment, element, mapping, &mut issues);
    let appointment_types = codes(CodedElement::AppointmentType);
    let service_categories = codes(CodedElement::ServiceCategory);
    let service_types = codes(CodedElement::ServiceType);
    let specialties = codes(CodedElement::Specialty);

    let send_codes = match mapping.send_codes {
        SendCodes::Always => true,
        SendCodes::WithoutWorkType => work_type_id.is_none(),
    };
    let visit_codes_present = !(appointment_types.is_empty()
        && service_categories.is_empty()
        && service_types.is_empty());
    let any_codes_sent = send_codes && (visit_codes_present || !specialties.is_empty());
    if work_type_id.is_none() {
        if !visit_codes_present {
            issues.push(Issue::at(
                IssueCode::BusinessRule,
                "Appointment",
                "Salesforce needs a work type or codes: no work type rule matched, the mapping has \
                 no default work type, and no serviceType, serviceCategory or appointmentType \
                 coding comes from a system the mapping sends",
            ));
        }
        if mapping.source_system.is_none() {
            issues.push(Issue::at(
                IssueCode::BusinessRule,
                "Appointment",
                "Salesforce needs a sourceSystem when no work type is given; set \
                 defaults.source_system in the mapping",
            ));
        }
    }

    let comment = text(appointment.comment.as_ref());
    if let Some(c) = &comment
        && c.chars().count() > MAX_COMMENT_CHARS
    {
        issues.push(Issue::at(
            IssueCode::TooLong,
            "Appointment.comment",
            format!(
                "comment has {} characters; Salesforce accepts at most {MAX_COMMENT_CHARS}",
                c.chars().count()
            ),
        ));
    }

    if !issues.is_empty() {
        return Err(issues);
    }
    let keep = |v: Vec<String>| if send_codes { v } else { Vec::new() };
    Ok(BookAppointmentRequest {
        work_type_id,
        channel_id,
        description: text(appointment.description.as_ref()),
        start_date: start_date.unwrap_or_default(),
        end_date,
        comment,
        // sourceSystem names the code sets the codes belong to, so it goes out exactly when they do.
        source_system: if any_codes_sent {
            mapping.source_system.clone()
        } else {
            None
        },
        time_zone: mapping.time_zone.clone(),
        appointment_types: keep(appointment_types),
        service_categories: keep(service_categories),
        service_types: keep(service_types),
        specialties: keep(specialties),
        slots,
        participants: participants.into_iter().map(|p| p.wire).collect(),
    })
}

fn text(value: Option<&fhirbolt::model::r4::types::String>) -> Option<String> {
    value
        .and_then(|v| v.value.clone())
        .filter(|v| !v.is_empty())
}

/// Formats an instant the way Salesforce's samples do: UTC with milliseconds.
pub fn salesforce_instant(instant: DateTime<Utc>) -> String {
    instant.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// The R4 instant check the rules use, so mapping never accepts a value the rules would refuse.
fn parse_instant(value: &str) -> Option<DateTime<Utc>> {
    crate::fhir::rules::parse_instant(value).map(|d| d.with_timezone(&Utc))
}

fn dates(
    appointment: &Appointment,
    mapping: &Mapping,
    issues: &mut Vec<Issue>,
) -> (Option<String>, Option<String>) {
    let start = match appointment.start.as_ref().and_then(|s| s.value.as_deref()) {
        None => {
            issues.push(Issue::at(
                IssueCode::Required,
                "Appointment.start",
                "Salesforce Book Appointment needs a start",
            ));
            return (None, None);
        }
        Some(value) => match parse_instant(value) {
            Some(s) => s,
            None => {
                issues.push(Issue::at(
                    IssueCode::Value,
                    "Appointment.start",
                    "start is not an instant with seconds and a time zone",
                ));
                return (None, None);
            }
        },
    };
    let end = match appointment.end.as_ref().and_then(|e| e.value.as_deref()) {
        Some(value) => match parse_instant(value) {
            Some(e) => Some(e),
            None => {
                issues.push(Issue::at(
                    IssueCode::Value,
                    "Appointment.end",
                    "end is not an instant with seconds and a time zone",
                ));
                None
            }
        },
        // Without `end`, R4 app-2 fails unless the mapping opted into computing it.
        None if mapping.end_from_duration => appointment
            .minutes_duration
            .as_ref()
            .and_then(|m| m.value)
            .map(|minutes| start + Duration::minutes(i64::from(minutes))),
        None => None,
    };
    if let Some(e) = end
        && e <= start
    {
        issues.push(Issue::at(
            IssueCode::Value,
            "Appointment.end",
            "end must be after start",
        ));
    }
    (Some(salesforce_instant(start)), end.map(salesforce_instant))
}

/// A participant on its way to Salesforce, with the kind kept for the checks and for slots.
struct Mapped {
    kind: String,
    id: String,
    wire: Participant,
}

/// The participants Salesforce books, and whether a Practitioner among them has no id (already
/// reported, so a slot needing it is not reported again).
fn participants(
    appointment: &Appointment,
    mapping: &Mapping,
    resolved: &ResolvedIds,
    issues: &mut Vec<Issue>,
) -> (Vec<Mapped>, bool) {
    let mut out: Vec<Mapped> = Vec::new();
    let mut practitioner_unresolved = false;
    // Kinds named by the appointment, resolved or not: an unresolvable Patient is reported once,
    // as unresolvable, not a second time as missing.
    let mut named_kinds: Vec<String> = Vec::new();
    for (i, participant) in appointment.participant.iter().enumerate() {
        let path = format!("Appointment.participant[{i}].actor");
        // Someone who declined does not attend: booking them would reserve their time for nothing.
        if participant.status.value.as_deref() == Some("declined") {
            continue;
        }
        let Some(actor) = participant.actor.as_deref() else {
            continue; // a type-only participant (app-1) names nobody Salesforce could book
        };
        let Some(fhir_type) = actor_type(actor) else {
            issues.push(Issue::at(
                IssueCode::Required,
                &path,
                if reference(actor).is_some_and(|r| r.starts_with('#')) {
                    "a contained actor cannot be booked in Salesforce: reference the resource itself"
                } else {
                    "the actor's type cannot be told: use a Type/id reference or set actor.type"
                },
            ));
            continue;
        };
        let Some(kind) = mapping.kinds.get(&fhir_type) else {
            if mapping.other_actors == OtherActors::Reject {
                issues.push(Issue::at(
                    IssueCode::BusinessRule,
                    &path,
                    format!(
                        "a {fhir_type} actor has no Salesforce reference kind in the mapping \
                         (participants.kinds)"
                    ),
                ));
            }
            continue;
        };
        named_kinds.push(kind.clone());
        let id = match salesforce_id_with(actor, &fhir_type, mapping, resolved) {
            Ok(id) => id,
            Err(unresolved) => {
                if kind == "Practitioner" {
                    practitioner_unresolved = true;
                }
                let what = format!("the {fhir_type} actor at {path}");
                issues.push(unresolved.lookup_issue(&what, Some(&path)).unwrap_or_else(|| {
                    Issue::at(
                        IssueCode::NotFound,
                        &path,
                        format!(
                            "the {fhir_type} reference at {path} has no Salesforce id: it is not \
                             a Salesforce id and the mapping's ids.table has no entry for it"
                        ),
                    )
                }));
                continue;
            }
        };
        let wire = Participant {
            reference: format!("{kind}/{id}"),
            is_reference_required: is_required(participant),
        };
        if out.iter().any(|m| m.wire.reference == wire.reference) {
            named_kinds.pop();
            continue; // the same record twice (e.g. Practitioner and PractitionerRole): send once
        }
        out.push(Mapped {
            kind: kind.clone(),
            id,
            wire,
        });
    }

    let count = |kind: &str| named_kinds.iter().filter(|k| *k == kind).count();
    if count("Patient") == 0 {
        issues.push(Issue::at(
            IssueCode::Required,
            "Appointment.participant",
            "Salesforce needs a Patient participant",
        ));
    } else if count("Patient") > 1 {
        issues.push(Issue::at(
            IssueCode::BusinessRule,
            "Appointment.participant",
            "Salesforce books one Patient per appointment; this one has several",
        ));
    }
    if count("Facility") == 0 {
        issues.push(Issue::at(
            IssueCode::Required,
            "Appointment.participant",
            "Salesforce needs a Location participant (a Facility)",
        ));
    }
    if count("Practitioner") == 0 && count("Device") == 0 {
        issues.push(Issue::at(
            IssueCode::Required,
            "Appointment.participant",
            "Salesforce needs a Practitioner, PractitionerRole or Device participant",
        ));
    }
    (out, practitioner_unresolved)
}

fn is_required(participant: &AppointmentParticipant) -> Option<bool> {
    match participant.required.as_ref()?.value.as_deref()? {
        "required" => Some(true),
        "optional" | "information-only" => Some(false),
        _ => None,
    }
}

fn slots(
    appointment: &Appointment,
    participants: &[Mapped],
    practitioner_unresolved: bool,
    mapping: &Mapping,
    issues: &mut Vec<Issue>,
) -> Vec<SlotReference> {
    let practitioner = participants.iter().find(|p| p.kind == "Practitioner");
    let mut out = Vec::new();
    for (i, slot) in appointment.slot.iter().enumerate() {
        let path = format!("Appointment.slot[{i}]");
        let identifier = slot.identifier.as_deref();
        let identifier_value = identifier
            .and_then(|i| i.value.as_ref())
            .and_then(|v| v.value.clone());
        // A Slot found through `GET [base]/Slot` whose Salesforce slot id is not a valid FHIR id
        // carries that id as an identifier; it wins over the minted FHIR id in the reference.
        let from_search = identifier
            .and_then(|i| i.system.as_ref())
            .and_then(|s| s.value.as_deref())
            == Some(SLOT_IDENTIFIER_SYSTEM);
        let id = if from_search {
            identifier_value
        } else {
            reference(slot)
                .and_then(|r| type_and_id(r).map(|(_, id)| id.to_owned()))
                .or(identifier_value)
        };
        let Some(id) = id else {
            issues.push(Issue::at(
                IssueCode::Required,
                path,
                "a slot needs a Slot/id reference or an identifier value",
            ));
            continue;
        };
        let Some(practitioner) = practitioner else {
            // A Practitioner without an id is reported as such, not a second time as missing.
            if practitioner_unresolved {
                continue;
            }
            issues.push(Issue::at(
                IssueCode::BusinessRule,
                path,
                "Salesforce books a slot for a practitioner, but no Practitioner participant was \
                 mapped",
            ));
            continue;
        };
        out.push(SlotReference {
            id,
            reference: match mapping.slot_reference {
                SlotReferenceStyle::Id => practitioner.id.clone(),
                SlotReferenceStyle::Prefixed => practitioner.wire.reference.clone(),
            },
        });
    }
    out
}

fn concepts(appointment: &Appointment, element: CodedElement) -> Vec<&CodeableConcept> {
    match element {
        CodedElement::ServiceCategory => appointment.service_category.iter().collect(),
        CodedElement::ServiceType => appointment.service_type.iter().collect(),
        CodedElement::AppointmentType => appointment
            .appointment_type
            .as_deref()
            .into_iter()
            .collect(),
        CodedElement::Specialty => appointment.specialty.iter().collect(),
    }
}

/// Each coding as (FHIRPath, system, code).
fn codings(appointment: &Appointment, element: CodedElement) -> Vec<(String, &str, &str)> {
    let single = element == CodedElement::AppointmentType;
    let mut out = Vec::new();
    for (i, concept) in concepts(appointment, element).into_iter().enumerate() {
        for (j, coding) in concept.coding.iter().enumerate() {
            let (Some(system), Some(code)) = (
                coding.system.as_ref().and_then(|s| s.value.as_deref()),
                coding.code.as_ref().and_then(|c| c.value.as_deref()),
            ) else {
                continue;
            };
            let path = if single {
                format!("Appointment.{}.coding[{j}]", element.fhir_name())
            } else {
                format!("Appointment.{}[{i}].coding[{j}]", element.fhir_name())
            };
            out.push((path, system, code));
        }
    }
    out
}

pub(crate) fn work_type(
    appointment: &Appointment,
    mapping: &Mapping,
) -> (Option<String>, Option<String>) {
    for rule in &mapping.work_type_rules {
        let matched = codings(appointment, rule.element)
            .iter()
            .any(|(_, system, code)| *system == rule.system && *code == rule.code);
        if matched {
            return (Some(rule.work_type_id.clone()), rule.channel_id.clone());
        }
    }
    (
        mapping.default_work_type.clone(),
        mapping
            .default_work_type
            .as_ref()
            .and(mapping.default_work_type_channel.clone()),
    )
}

pub(crate) fn coded(
    appointment: &Appointment,
    element: CodedElement,
    mapping: &Mapping,
    issues: &mut Vec<Issue>,
) -> Vec<String> {
    let Some(rule) = mapping.codes.get(&element) else {
        return Vec::new();
    };
    let mut out: Vec<String> = Vec::new();
    for (path, system, code) in codings(appointment, element) {
        if !rule.systems.iter().any(|s| s == system) {
            continue;
        }
        let code = match (rule.translate.get(code), rule.unmapped) {
            (Some(translated), _) => translated.clone(),
            (None, UnmappedCode::Send) => code.to_owned(),
            (None, UnmappedCode::Drop) => continue,
            (None, UnmappedCode::Reject) => {
                issues.push(Issue::at(
                    IssueCode::CodeInvalid,
                    path,
                    format!(
                        "this {} code has no Salesforce translation in the mapping, which \
                         rejects unmapped codes",
                        element.fhir_name()
                    ),
                ));
                continue;
            }
        };
        if !out.contains(&code) {
            out.push(code);
        }
    }
    out
}

#[cfg(test)]
mod tests;
