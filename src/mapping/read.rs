//! A ServiceAppointment as Salesforce holds it now → the FHIR Appointment a read answers.
//!
//! Salesforce is the truth for what it keeps: status, start, end, description, comment,
//! cancellation reason, the patient (`ParentRecordId`), the practitioners (the
//! CarePractnFacilityAppt junctions' HealthcarePractitionerFacility ids) and the facility (each
//! HealthcarePractitionerFacility's Account), and the visit type (`WorkTypeId`, through the
//! mapping's work type rules). The stored representation (what the proxy answered when it
//! booked or changed it) fills in what Salesforce does not keep: identifiers, codings, displays,
//! participants of kinds Salesforce has no place for. A stored participant stays when its
//! Salesforce id (by the mapping, as for booking) is still among Salesforce's; one Salesforce
//! names that the stored representation does not is named from the mapping's `ids.table`, from
//! a cached external-id lookup, or else as `Type/<Salesforce id>`.

use std::collections::{HashMap, HashSet};

use fhirbolt::model::r4::resources::{Appointment, AppointmentParticipant};
use fhirbolt::model::r4::types::{CodeableConcept, Coding, Identifier, Meta, Reference};

use super::file::{CodedElement, Mapping};
use super::lookup::{ResolvedIds, salesforce_id_with};
use super::reference::actor_type;
use crate::salesforce::records::{VersionedRecord, read_datetime};

/// What a read knows of Salesforce ids beyond the mapping's tables.
#[derive(Debug, Default)]
pub struct KnownIds {
    /// Cached lookup answers for the stored participants' references and identifiers.
    pub resolved: ResolvedIds,
    /// Salesforce id → the actor it was found for by a cached external-id lookup.
    pub found: HashMap<String, Reference>,
}

/// The Salesforce reference kinds a ServiceAppointment keeps.
const KEPT_KINDS: [&str; 3] = ["Patient", "Practitioner", "Facility"];

/// The appointment as Salesforce holds it now, merged with `stored` (see the module's text).
pub fn appointment_from_record(
    read: &VersionedRecord,
    stored: Option<Appointment>,
    mapping: &Mapping,
    known: &KnownIds,
) -> Appointment {
    let record = &read.record;
    let mut appointment = stored.unwrap_or_default();
    appointment.id = Some(record.id.as_str().into());
    appointment.meta = Some(Box::new(Meta {
        version_id: Some(read.version.as_str().into()),
        last_updated: record
            .system_modstamp
            .as_deref()
            .and_then(read_datetime)
            .map(|t| super::book::salesforce_instant(t).into()),
        ..Default::default()
    }));
    appointment.status = fhir_status_of(
        record.status.as_deref(),
        record.status_category.as_deref(),
        mapping,
    )
    .into();
    let instant = |text: &Option<String>| {
        text.as_deref()
            .and_then(read_datetime)
            .map(|t| super::book::salesforce_instant(t).into())
    };
    appointment.start = instant(&record.sched_start_time);
    appointment.end = instant(&record.sched_end_time);
    appointment.description = record.description.as_deref().map(Into::into);
    appointment.comment = record.comments.as_deref().map(Into::into);
    appointment.cancelation_reason = match &record.cancellation_reason {
        None => None,
        Some(reason) => match appointment.cancelation_reason.take() {
            Some(kept) if kept.text.as_ref().and_then(|t| t.value.as_deref()) == Some(reason) => {
                Some(kept)
            }
            _ => Some(Box::new(CodeableConcept {
                text: Some(reason.as_str().into()),
                ..Default::default()
            })),
        },
    };
    if !appointment.identifier.iter().any(|i| {
        i.system.as_ref().and_then(|s| s.value.as_deref()) == Some(&mapping.identifier_system)
    }) {
        appointment.identifier.push(Identifier {
            r#use: Some("secondary".into()),
            system: Some(mapping.identifier_system.as_str().into()),
            value: Some(record.id.as_str().into()),
            ..Default::default()
        });
    }
    apply_work_type(&mut appointment, record.work_type_id.as_deref(), mapping);
    appointment.participant = participants(read, appointment.participant, mapping, known);
    appointment
}

/// The FHIR status: the status table, else the category table, else the default.
pub fn fhir_status_of(status: Option<&str>, category: Option<&str>, mapping: &Mapping) -> String {
    status
        .and_then(|s| mapping.statuses.get(&s.to_lowercase()))
        .or_else(|| category.and_then(|c| mapping.status_categories.get(&c.to_lowercase())))
        .unwrap_or(&mapping.default_status)
        .clone()
}

/// The coding a work type rule picks, put where the rule looks, unless it is there already.
fn apply_work_type(appointment: &mut Appointment, work_type: Option<&str>, mapping: &Mapping) {
    let Some(rule) = work_type.and_then(|w| {
        mapping
            .work_type_rules
            .iter()
            .find(|rule| rule.work_type_id == w)
    }) else {
        return;
    };
    let has = |concept: &CodeableConcept| {
        concept.coding.iter().any(|c| {
            c.system.as_ref().and_then(|s| s.value.as_deref()) == Some(rule.system.as_str())
                && c.code.as_ref().and_then(|s| s.value.as_deref()) == Some(rule.code.as_str())
        })
    };
    let concept = CodeableConcept {
        coding: vec![Coding {
            system: Some(rule.system.as_str().into()),
            code: Some(rule.code.as_str().into()),
            ..Default::default()
        }],
        ..Default::default()
    };
    match rule.element {
        CodedElement::AppointmentType => {
            if !appointment.appointment_type.as_deref().is_some_and(has) {
                appointment.appointment_type = Some(Box::new(concept));
            }
        }
        CodedElement::ServiceType => {
            if !appointment.service_type.iter().any(has) {
                appointment.service_type = vec![concept];
            }
        }
        CodedElement::ServiceCategory => {
            if !appointment.service_category.iter().any(has) {
                appointment.service_category = vec![concept];
            }
        }
        CodedElement::Specialty => {
            if !appointment.specialty.iter().any(has) {
                appointment.specialty = vec![concept];
            }
        }
    }
}

/// Salesforce's participants by kind: id and whether required.
fn salesforce_actors(read: &VersionedRecord) -> Vec<(&'static str, String, Option<bool>)> {
    let record = &read.record;
    let mut actors = Vec::new();
    if let Some(patient) = &record.parent_record_id
        && record.parent_record_type.as_deref() == Some("Account")
    {
        actors.push(("Patient", patient.clone(), None));
    }
    let junctions = record
        .practitioners
        .as_ref()
        .map(|rows| rows.records.as_slice())
        .unwrap_or_default();
    for junction in junctions {
        if let Some(hpf) = &junction.healthcare_practitioner_facility_id {
            actors.push(("Practitioner", hpf.clone(), junction.is_required));
        }
    }
    let mut facilities = HashSet::new();
    for junction in junctions {
        if let Some(account) = junction
            .healthcare_practitioner_facility
            .as_ref()
            .and_then(|f| f.account_id.clone())
            && facilities.insert(account.clone())
        {
            actors.push(("Facility", account, None));
        }
    }
    actors
}

fn participants(
    read: &VersionedRecord,
    stored: Vec<AppointmentParticipant>,
    mapping: &Mapping,
    known: &KnownIds,
) -> Vec<AppointmentParticipant> {
    let mut remaining = salesforce_actors(read);
    let mut kept = Vec::new();
    let mut unresolved = Vec::new();
    for participant in stored {
        let Some(actor) = participant.actor.as_deref() else {
            kept.push(participant);
            continue;
        };
        let Some(fhir_type) = actor_type(actor) else {
            kept.push(participant);
            continue;
        };
        let Some(kind) = mapping.kinds.get(&fhir_type).map(String::as_str) else {
            kept.push(participant);
            continue;
        };
        if !KEPT_KINDS.contains(&kind) {
            kept.push(participant);
            continue;
        }
        match salesforce_id_with(actor, &fhir_type, mapping, &known.resolved) {
            Ok(id) => {
                if let Some(at) = remaining
                    .iter()
                    .position(|(k, i, _)| *k == kind && *i == id)
                {
                    remaining.remove(at);
                    kept.push(participant);
                }
                // Otherwise Salesforce no longer has it: it was changed there.
            }
            Err(_) => unresolved.push((kind, participant)),
        }
    }
    // A stored participant whose id cannot be worked out now (its lookup is no longer cached)
    // stands for one Salesforce actor of its kind that nothing else claimed.
    for (kind, participant) in unresolved {
        if let Some(at) = remaining.iter().position(|(k, _, _)| *k == kind) {
            remaining.remove(at);
            kept.push(participant);
        }
    }
    for (kind, id, required) in remaining {
        let fhir_type = fhir_type_for(kind, mapping);
        let actor = known
            .found
            .get(&id)
            .cloned()
            .map(|mut actor| {
                // A lookup by identifier names no type; the kind says which.
                if actor.reference.is_none() && actor.r#type.is_none() {
                    actor.r#type = Some(fhir_type.as_str().into());
                }
                actor
            })
            .or_else(|| from_table(&id, &fhir_type, mapping))
            .unwrap_or_else(|| Reference {
                reference: Some(format!("{fhir_type}/{id}").into()),
                ..Default::default()
            });
        kept.push(AppointmentParticipant {
            actor: Some(Box::new(actor)),
            required: required.map(|r| if r { "required" } else { "optional" }.into()),
            status: "accepted".into(),
            ..Default::default()
        });
    }
    kept
}

/// The FHIR type a Salesforce kind is read back as: the type of the same name when the mapping
/// maps it so (`Practitioner`), the usual one (`Location` for `Facility`), else the first.
pub fn fhir_type_for(kind: &str, mapping: &Mapping) -> String {
    let usual = match kind {
        "Facility" => "Location",
        other => other,
    };
    if mapping.kinds.get(usual).is_some_and(|k| k == kind) {
        return usual.to_owned();
    }
    let mut types: Vec<&String> = mapping
        .kinds
        .iter()
        .filter(|(_, k)| *k == kind)
        .map(|(t, _)| t)
        .collect();
    types.sort();
    types
        .first()
        .map_or_else(|| usual.to_owned(), |t| (*t).clone())
}

/// The actor the mapping's `ids.table` names for a Salesforce id: its reference, else its
/// identifier (with the type).
fn from_table(id: &str, fhir_type: &str, mapping: &Mapping) -> Option<Reference> {
    let mut references: Vec<&String> = mapping
        .references
        .iter()
        .filter(|(reference, sf)| *sf == id && reference.starts_with(&format!("{fhir_type}/")))
        .map(|(reference, _)| reference)
        .collect();
    references.sort();
    if let Some(reference) = references.first() {
        return Some(Reference {
            reference: Some(reference.as_str().into()),
            ..Default::default()
        });
    }
    let mut identifiers: Vec<&String> = mapping
        .identifiers
        .iter()
        .filter(|(_, sf)| *sf == id)
        .map(|(key, _)| key)
        .collect();
    identifiers.sort();
    let (system, value) = identifiers.first()?.split_once('|')?;
    Some(Reference {
        r#type: Some(fhir_type.into()),
        identifier: Some(Box::new(Identifier {
            system: Some(system.into()),
            value: Some(value.into()),
            ..Default::default()
        })),
        ..Default::default()
    })
}

#[cfg(test)]
mod tests;
