//! `Appointment/$find` (Argonaut Scheduling, IHE ITI-115 Find Potential Appointments): the
//! operation's parameters → a Slot search → Salesforce Get Slots, and its answer → a `searchset`
//! Bundle of **proposed** Appointments, one per free slot.
//!
//! The operation is a front for the Slot search in [`super::slots`]: `start`/`end` become the
//! window, `practitioner` the schedule actors, `visit-type` the type tokens, and the mapping's
//! participants, work type rules and code tables apply exactly as for `GET [base]/Slot` and for
//! booking. Each proposed Appointment carries the slot (`Slot/{id}` with the `slotId` identifier)
//! and the practitioner as given, participants in `needs-action`, so a client adds the patient
//! and the location, sets `status` to `booked`, and POSTs it: two calls from search to booking.
//!
//! Pure and synchronous. Diagnostics name parameters, never their values.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use fhirbolt::model::r4::Resource;
use fhirbolt::model::r4::resources::{
    Appointment, AppointmentParticipant, Bundle, BundleEntry, BundleLink,
};
use fhirbolt::model::r4::types::{CodeableConcept, Coding, Reference};

use super::file::{CodedElement, Mapping};
use super::lookup::{LookupKey, ResolvedIds, needed_for_references, salesforce_id_with};
use super::reference::type_and_id;
use super::slots::{
    Comparator, DateBound, SlotQuery, Token, alternatives, date_range, fhir_id, fhir_instant,
    free_slots, is_plain_name, parse_tokens, search_mode, slots_request_with, unreadable_entry,
};
use crate::fhir::outcome::{Issue, IssueCode};
use crate::fhir::parameters::{Parameter, ParameterValue};
use crate::salesforce::wire::{GetSlotsRequest, ResourceSlots};

/// The `$find` parameters this server reads.
pub const FIND_PARAMETERS: [&str; 5] = [
    "start",
    "end",
    "practitioner",
    "visit-type",
    "patient-reference",
];

/// Result parameters that shape the answer, not the search.
const FORMAT_PARAMETERS: [&str; 2] = ["_format", "_pretty"];

/// A `$find` request as asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FindQuery {
    /// The first slot start wanted (inclusive).
    pub start: DateTime<Utc>,
    /// The first slot start no longer wanted (exclusive). A date without a time includes that
    /// whole day.
    pub end: DateTime<Utc>,
    /// `practitioner` references as given (`Practitioner/{id}`, `PractitionerRole/{id}`, an
    /// absolute URL).
    pub practitioners: Vec<String>,
    /// `visit-type` codings as `system|code`.
    pub visit_types: Vec<Token>,
    /// `patient-reference`, put on every proposed Appointment when given.
    pub patient: Option<String>,
}

/// A parameter's value before it is checked.
enum Raw {
    Text(String),
    Codings(Vec<(Option<String>, Option<String>)>),
}

impl FindQuery {
    /// Reads the operation from a query string (`GET [base]/Appointment/$find?start=…`).
    /// Commas separate alternatives of `practitioner` and `visit-type`.
    ///
    /// # Errors
    /// The first problem, as a 400-class issue (see [`FindQuery::from_parameters`]).
    pub fn from_query_string(query_string: &str) -> Result<FindQuery, Issue> {
        let mut raw = Vec::new();
        for (name, value) in url::form_urlencoded::parse(query_string.as_bytes()) {
            if FORMAT_PARAMETERS.contains(&name.as_ref()) || value.trim().is_empty() {
                continue;
            }
            match name.as_ref() {
                "practitioner" | "visit-type" => raw.extend(
                    alternatives(&value).map(|v| (name.clone().into_owned(), Raw::Text(v.into()))),
                ),
                _ => raw.push((name.into_owned(), Raw::Text(value.into_owned()))),
            }
        }
        Self::from_raw(raw)
    }

    /// Reads the operation from the parts of a `Parameters` body. `start` and `end` are dates or
    /// date-times (`valueDateTime`, `valueInstant`, `valueDate` or a string); `practitioner` a
    /// `valueUri`, `valueReference` or string; `visit-type` a `valueCoding`, `valueCodeableConcept`
    /// or a `system|code` string; `patient-reference` like `practitioner`.
    ///
    /// # Errors
    /// The first problem: `start` or `end` missing (`required`) or given twice, not a date, or not
    /// in order (`invalid`); a value of the wrong kind (`invalid`); a parameter this server cannot
    /// honour (`not-supported`): a filter it cannot apply would silently widen the answer.
    pub fn from_parameters(parameters: &[Parameter]) -> Result<FindQuery, Issue> {
        let mut raw = Vec::new();
        for p in parameters {
            let value = match &p.value {
                ParameterValue::Primitive { text, .. } => Raw::Text(text.clone()),
                ParameterValue::Reference(Some(reference)) => Raw::Text(reference.clone()),
                ParameterValue::Codings(codings) => Raw::Codings(codings.clone()),
                ParameterValue::Reference(None) | ParameterValue::Missing => continue,
                ParameterValue::Other(kind) => {
                    if !FIND_PARAMETERS.contains(&p.name.as_str()) {
                        return Err(unsupported(&p.name));
                    }
                    return Err(invalid(
                        &p.name,
                        &format!("cannot be a {}", safe_kind(kind)),
                    ));
                }
            };
            raw.push((p.name.clone(), value));
        }
        Self::from_raw(raw)
    }

    /// The operation as query-string parameters (what a `GET` of the same `$find` sends): for
    /// the `next` link of an answer to a `POST`.
    pub fn as_query_pairs(&self) -> Vec<(String, String)> {
        let instant = |t: DateTime<Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let mut pairs = vec![
            ("start".to_owned(), instant(self.start)),
            // `end` is exclusive here; as a dateTime the parameter is read as that instant.
            ("end".to_owned(), instant(self.end)),
        ];
        pairs.extend(
            self.practitioners
                .iter()
                .map(|p| ("practitioner".to_owned(), p.clone())),
        );
        pairs.extend(
            self.visit_types
                .iter()
                .map(|t| ("visit-type".to_owned(), format!("{}|{}", t.system, t.code))),
        );
        if let Some(patient) = &self.patient {
            pairs.push(("patient-reference".to_owned(), patient.clone()));
        }
        pairs
    }

    fn from_raw(raw: Vec<(String, Raw)>) -> Result<FindQuery, Issue> {
        let mut start = None;
        let mut end = None;
        let mut practitioners = Vec::new();
        let mut visit_types = Vec::new();
        let mut patient = None;
        for (name, value) in raw {
            match (name.as_str(), value) {
                ("start", Raw::Text(text)) => {
                    set_once(&mut start, "start", bound(&text, "start", false)?)?;
                }
                ("end", Raw::Text(text)) => {
                    set_once(&mut end, "end", bound(&text, "end", true)?)?;
                }
                ("practitioner", Raw::Text(text)) => practitioners.push(text),
                ("patient-reference", Raw::Text(text)) => {
                    set_once(&mut patient, "patient-reference", text)?;
                }
                ("visit-type", Raw::Text(text)) => {
                    visit_types.extend(parse_tokens(&text, "visit-type")?);
                }
                ("visit-type", Raw::Codings(codings)) => {
                    for coding in codings {
                        match coding {
                            (Some(system), Some(code))
                                if !system.is_empty() && !code.is_empty() =>
                            {
                                visit_types.push(Token { system, code });
                            }
                            _ => return Err(invalid("visit-type", "needs a system and a code")),
                        }
                    }
                }
                (known, Raw::Codings(_)) if FIND_PARAMETERS.contains(&known) => {
                    return Err(invalid(known, "cannot be a coding"));
                }
                (other, _) => return Err(unsupported(other)),
            }
        }
        let required = |name: &str| {
            Issue::general(
                IssueCode::Required,
                format!("$find needs the {name} parameter (a date or date-time)"),
            )
        };
        let start = start.ok_or_else(|| required("start"))?;
        let end = end.ok_or_else(|| required("end"))?;

        if start >= end {
            return Err(invalid("end", "must be after start"));
        }
        if practitioners.is_empty() {
            return Err(Issue::general(
                IssueCode::Required,
                "$find needs at least one practitioner parameter (Practitioner/{id} or \
                 PractitionerRole/{id}): Salesforce Get Slots finds the slots of named resources",
            ));
        }
        Ok(FindQuery {
            start,
            end,
            practitioners,
            visit_types,
            patient,
        })
    }

    /// The Slot search this operation amounts to. Each `visit-type` coding goes where the mapping
    /// will look for it when the proposed Appointment is booked: to `appointmentType` when a work
    /// type rule or the code table for appointment types names its system, else to `serviceType`.
    pub fn slot_query(&self, mapping: &Mapping) -> SlotQuery {
        let mut query = SlotQuery {
            start: vec![
                DateBound {
                    comparator: Comparator::Ge,
                    from: self.start,
                    until: self.start,
                },
                DateBound {
                    comparator: Comparator::Lt,
                    from: self.end,
                    until: self.end,
                },
            ],
            actors: self.practitioners.clone(),
            ..Default::default()
        };
        for token in &self.visit_types {
            match visit_type_element(token, mapping) {
                CodedElement::AppointmentType => query.appointment_types.push(token.clone()),
                _ => query.service_types.push(token.clone()),
            }
        }
        query
    }
}

/// The Get Slots request for a `$find`: [`slots_request`] over [`FindQuery::slot_query`], with
/// the issues speaking of `$find`'s parameters rather than the Slot search's.
///
/// # Errors
/// As [`slots_request`].
pub fn find_request(find: &FindQuery, mapping: &Mapping) -> Result<GetSlotsRequest, Vec<Issue>> {
    find_request_with(find, mapping, &ResolvedIds::default())
}

/// The external-id lookups a `$find` needs: one per `practitioner` under an `[[ids.lookup]]`
/// type rule (each key once).
pub fn needed_find_lookups(find: &FindQuery, mapping: &Mapping) -> Vec<LookupKey> {
    needed_for_references(&find.practitioners, mapping)
}

/// [`find_request`], reading the ids of practitioners under `[[ids.lookup]]` rules from
/// `resolved` (the answers to [`needed_find_lookups`]).
///
/// # Errors
/// As [`find_request`].
pub fn find_request_with(
    find: &FindQuery,
    mapping: &Mapping,
    resolved: &ResolvedIds,
) -> Result<GetSlotsRequest, Vec<Issue>> {
    slots_request_with(&find.slot_query(mapping), mapping, resolved).map_err(|issues| {
        issues
            .into_iter()
            .map(|mut issue| {
                issue.diagnostics = issue
                    .diagnostics
                    .replace("schedule.actor", "practitioner")
                    .replace(
                        "service-type, service-category or appointment-type",
                        "visit-type",
                    )
                    .replace("appointment-type", "visit-type")
                    .replace("service-type", "visit-type");
                issue
            })
            .collect()
    })
}

fn set_once<T>(slot: &mut Option<T>, name: &str, value: T) -> Result<(), Issue> {
    if slot.replace(value).is_some() {
        return Err(invalid(name, "may be given only once"));
    }
    Ok(())
}

/// A `start` or `end` value: a date-time is that instant; a date (or year-month) covers its
/// whole range, so an `end` date includes that day.
fn bound(text: &str, name: &str, is_end: bool) -> Result<DateTime<Utc>, Issue> {
    let (from, until) = date_range(text.trim()).ok_or_else(|| {
        invalid(
            name,
            "must be a FHIR date or date-time (2025-09-20 or 2025-09-20T09:00:00Z)",
        )
    })?;
    Ok(if is_end && !text.contains('T') {
        until
    } else {
        from
    })
}

fn invalid(name: &str, what: &str) -> Issue {
    Issue::general(
        IssueCode::Invalid,
        format!("the $find parameter {name} {what}"),
    )
}

fn unsupported(name: &str) -> Issue {
    let supported = FIND_PARAMETERS.join(", ");
    let named = if is_plain_name(name) {
        format!("the $find parameter `{name}` is not supported")
    } else {
        "a $find parameter is not supported".to_owned()
    };
    Issue::general(
        IssueCode::NotSupported,
        format!(
            "{named}: Salesforce Get Slots cannot filter by it, and ignoring it would widen the \
             answer; this server takes {supported}"
        ),
    )
}

fn safe_kind(kind: &str) -> &str {
    if is_plain_name(kind) {
        kind
    } else {
        "value of this kind"
    }
}

fn visit_type_element(token: &Token, mapping: &Mapping) -> CodedElement {
    let rule = mapping
        .work_type_rules
        .iter()
        .find(|r| r.system == token.system)
        .map(|r| r.element);
    let table = || {
        [CodedElement::AppointmentType, CodedElement::ServiceType]
            .into_iter()
            .find(|e| {
                mapping
                    .codes
                    .get(e)
                    .is_some_and(|rule| rule.systems.contains(&token.system))
            })
    };
    match rule.or_else(table) {
        Some(CodedElement::AppointmentType) => CodedElement::AppointmentType,
        _ => CodedElement::ServiceType,
    }
}

/// The `searchset` Bundle of proposed Appointments for a Get Slots answer: one per free slot in
/// the window, in Salesforce's order, each `search.mode` `match`, without an id (nothing is
/// created until the client books one). Slots whose times cannot be read are counted in an
/// OperationOutcome entry, as in the Slot search.
pub fn find_bundle(
    answer: &[ResourceSlots],
    find: &FindQuery,
    mapping: &Mapping,
    self_url: &str,
) -> Bundle {
    find_bundle_with(answer, find, mapping, &ResolvedIds::default(), self_url)
}

/// [`find_bundle`], knowing the ids the practitioners' lookups found, so each slot's
/// practitioner is named as the client named it.
pub fn find_bundle_with(
    answer: &[ResourceSlots],
    find: &FindQuery,
    mapping: &Mapping,
    resolved: &ResolvedIds,
    self_url: &str,
) -> Bundle {
    let query = find.slot_query(mapping);
    // Salesforce resource id → the practitioner as the client named it.
    let mut actors: HashMap<String, &str> = HashMap::new();
    for practitioner in &find.practitioners {
        if let Some((fhir_type, _)) = type_and_id(practitioner) {
            let reference = Reference {
                reference: Some(practitioner.as_str().into()),
                ..Default::default()
            };
            if let Ok(id) = salesforce_id_with(&reference, fhir_type, mapping, resolved) {
                actors.entry(id).or_insert(practitioner);
            }
        }
    }
    let concept = |tokens: &[Token]| {
        (!tokens.is_empty()).then(|| CodeableConcept {
            coding: tokens
                .iter()
                .map(|t| Coding {
                    system: Some(t.system.as_str().into()),
                    code: Some(t.code.as_str().into()),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        })
    };
    let appointment_type = concept(&query.appointment_types).map(Box::new);
    let service_type: Vec<CodeableConcept> = concept(&query.service_types).into_iter().collect();

    let (found, unreadable) = free_slots(answer, &query);
    let mut entry = Vec::with_capacity(found.len() + 1);
    for slot in found {
        let practitioner = actors.get(slot.resource_id).map_or_else(
            || format!("Practitioner/{}", slot.resource_id),
            |a| (*a).to_owned(),
        );
        let mut participant = vec![participant(&practitioner)];
        if let Some(patient) = &find.patient {
            participant.push(participant_of(patient));
        }
        let appointment = Appointment {
            status: "proposed".into(),
            appointment_type: appointment_type.clone(),
            service_type: service_type.clone(),
            start: Some(fhir_instant(slot.start).into()),
            end: Some(fhir_instant(slot.end).into()),
            slot: vec![Reference {
                reference: Some(format!("Slot/{}", fhir_id(slot.slot_id)).into()),
                identifier: Some(Box::new(slot.identifier())),
                ..Default::default()
            }],
            participant,
            ..Default::default()
        };
        entry.push(BundleEntry {
            resource: Some(Resource::Appointment(Box::new(appointment))),
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

fn participant(reference: &str) -> AppointmentParticipant {
    AppointmentParticipant {
        required: Some("required".into()),
        ..participant_of(reference)
    }
}

fn participant_of(reference: &str) -> AppointmentParticipant {
    AppointmentParticipant {
        actor: Some(Box::new(Reference {
            reference: Some(reference.into()),
            ..Default::default()
        })),
        status: "needs-action".into(),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;
    use crate::fhir::format::Format;
    use crate::fhir::parameters::read_parameters;
    use crate::mapping::EXAMPLE_MAPPING;
    use crate::salesforce::wire::AvailableSlot;

    const PRACTITIONER: &str = "0bSxx0000005JoaxxE";
    const V2_0276: &str = "http://terminology.hl7.org/CodeSystem/v2-0276";
    const SERVICE_TYPE: &str = "http://terminology.hl7.org/CodeSystem/service-type";

    fn example() -> Mapping {
        Mapping::from_toml(EXAMPLE_MAPPING, "mappings/example.toml").unwrap()
    }

    fn encoded(pairs: &[(&str, &str)]) -> String {
        url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(pairs)
            .finish()
    }

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text).unwrap().to_utc()
    }

    #[test]
    fn query_strings_and_parameters_read_the_same() {
        let from_get = FindQuery::from_query_string(&encoded(&[
            ("start", "2025-09-20T09:00:00Z"),
            ("end", "2025-09-20"),
            (
                "practitioner",
                &format!("Practitioner/{PRACTITIONER},Practitioner/b"),
            ),
            ("visit-type", &format!("{V2_0276}|FOLLOWUP")),
            ("patient-reference", "Patient/pat-1001"),
            ("_format", "json"),
        ]))
        .unwrap();
        let body = json!({
            "resourceType": "Parameters",
            "parameter": [
                {"name": "start", "valueDateTime": "2025-09-20T09:00:00Z"},
                {"name": "end", "valueDate": "2025-09-20"},
                {"name": "practitioner", "valueUri": format!("Practitioner/{PRACTITIONER}")},
                {"name": "practitioner", "valueReference": {"reference": "Practitioner/b"}},
                {"name": "visit-type", "valueCoding": {"system": V2_0276, "code": "FOLLOWUP"}},
                {"name": "patient-reference", "valueReference": {"reference": "Patient/pat-1001"}}
            ]
        });
        let parameters = read_parameters(body.to_string().as_bytes(), Format::Json).unwrap();
        let from_post = FindQuery::from_parameters(&parameters).unwrap();
        assert_eq!(from_get, from_post);
        assert_eq!(
            from_get,
            FindQuery {
                start: at("2025-09-20T09:00:00Z"),
                end: at("2025-09-21T00:00:00Z"),
                practitioners: vec![
                    format!("Practitioner/{PRACTITIONER}"),
                    "Practitioner/b".into()
                ],
                visit_types: vec![Token {
                    system: V2_0276.into(),
                    code: "FOLLOWUP".into()
                }],
                patient: Some("Patient/pat-1001".into()),
            }
        );
    }

    #[test]
    fn malformed_operations_are_refused_naming_the_parameter_only() {
        for (query, code, named) in [
            ("end=2025-09-21", IssueCode::Required, "start"),
            ("start=2025-09-20", IssueCode::Required, "end"),
            (
                "start=2025-09-21&end=2025-09-20T10:00:00Z",
                IssueCode::Invalid,
                "end",
            ),
            ("start=tomorrow&end=2025-09-21", IssueCode::Invalid, "start"),
            (
                "start=2025-09-20&start=2025-09-21&end=2025-09-22",
                IssueCode::Invalid,
                "start",
            ),
            (
                "start=2025-09-20&end=2025-09-21&visit-type=FOLLOWUP",
                IssueCode::Invalid,
                "visit-type",
            ),
            (
                "start=2025-09-20&end=2025-09-21&location-string=Secret%20Clinic",
                IssueCode::NotSupported,
                "location-string",
            ),
            (
                "start=2025-09-20&end=2025-09-21&specialty=http://s|1",
                IssueCode::NotSupported,
                "specialty",
            ),
        ] {
            let issue = FindQuery::from_query_string(query).unwrap_err();
            assert_eq!(issue.code, code, "{query}: {issue:?}");
            assert!(issue.diagnostics.contains(named), "{query}: {issue:?}");
            assert!(!issue.diagnostics.contains("Secret"), "{issue:?}");
            assert!(!issue.diagnostics.contains("tomorrow"), "{issue:?}");
        }
        let issues = find_request(
            &FindQuery::from_query_string(
                "start=2025-09-20&end=2025-09-21&practitioner=Practitioner/unknown",
            )
            .unwrap(),
            &example(),
        )
        .unwrap_err();
        assert!(
            issues[0].diagnostics.contains("practitioner value 1"),
            "{issues:?}"
        );
        assert!(!issues[0].diagnostics.contains("schedule"), "{issues:?}");
        assert_eq!(
            FindQuery::from_query_string("start=2025-09-20&end=2025-09-21")
                .unwrap_err()
                .code,
            IssueCode::Required
        );
        let resource = [Parameter {
            name: "patient-reference".into(),
            value: ParameterValue::Other("resource".into()),
        }];
        assert_eq!(
            FindQuery::from_parameters(&resource).unwrap_err().code,
            IssueCode::Invalid
        );
    }

    #[test]
    fn visit_types_go_where_the_mapping_looks_for_them() {
        let find = FindQuery::from_query_string(&encoded(&[
            ("start", "2025-09-20"),
            ("end", "2025-09-20"),
            ("practitioner", &format!("Practitioner/{PRACTITIONER}")),
            (
                "visit-type",
                &format!("{V2_0276}|FOLLOWUP,{SERVICE_TYPE}|124,http://other|9"),
            ),
        ]))
        .unwrap();
        let query = find.slot_query(&example());
        assert_eq!(
            query.appointment_types.len(),
            1,
            "v2-0276 has a work type rule"
        );
        assert_eq!(
            query.service_types.len(),
            2,
            "a code table, and the default"
        );
        let request = find_request(&find, &example()).unwrap();
        assert_eq!(request.work_type_id.as_deref(), Some("08qxx000000Axq6xxC"));
        assert_eq!(request.start_date, "2025-09-20T00:00:00.000Z");
        assert_eq!(
            request.end_date.as_deref(),
            Some("2025-09-21T00:00:00.000Z")
        );
    }

    fn bundle_json(bundle: &Bundle) -> Value {
        serde_json::from_slice(&fhirbolt::json::to_vec(bundle, None).unwrap()).unwrap()
    }

    #[test]
    fn each_free_slot_becomes_a_bookable_proposed_appointment() {
        let mapping = example();
        let find = FindQuery::from_query_string(&encoded(&[
            ("start", "2025-09-20T09:00:00Z"),
            ("end", "2025-09-20T10:00:00Z"),
            ("practitioner", &format!("Practitioner/{PRACTITIONER}")),
            ("visit-type", &format!("{V2_0276}|FOLLOWUP")),
            ("patient-reference", "Patient/pat-1001"),
        ]))
        .unwrap();
        let slot = |id: &str, start: &str, end: &str| AvailableSlot {
            slot_id: id.into(),
            slot_start_date: start.into(),
            slot_end_date: end.into(),
            source_system: None,
        };
        let answer = [ResourceSlots {
            resource_id: PRACTITIONER.into(),
            slots: vec![
                slot("s1", "2025-09-20T09:00:00Z", "2025-09-20T09:30:00Z"),
                slot("s 2", "2025-09-20T09:30:00Z", "2025-09-20T10:00:00Z"),
                // Outside the window.
                slot("s3", "2025-09-20T10:00:00Z", "2025-09-20T10:30:00Z"),
                slot("s4", "later", "2025-09-20T10:30:00Z"),
            ],
        }];
        let value = bundle_json(&find_bundle(
            &answer,
            &find,
            &mapping,
            "https://p/fhir/Appointment/$find",
        ));
        assert_eq!(value["type"], "searchset");
        assert_eq!(value["total"], 2);
        let first = &value["entry"][0];
        assert_eq!(
            first["resource"],
            json!({
                "resourceType": "Appointment",
                "status": "proposed",
                "appointmentType": {"coding": [{"system": V2_0276, "code": "FOLLOWUP"}]},
                "start": "2025-09-20T09:00:00Z",
                "end": "2025-09-20T09:30:00Z",
                "slot": [{"reference": "Slot/s1", "identifier": {"system": "urn:salesforce:slotId", "value": "s1"}}],
                "participant": [
                    {"actor": {"reference": format!("Practitioner/{PRACTITIONER}")}, "required": "required", "status": "needs-action"},
                    {"actor": {"reference": "Patient/pat-1001"}, "status": "needs-action"}
                ]
            })
        );
        assert_eq!(first["search"]["mode"], "match");
        assert_eq!(
            value["entry"][1]["resource"]["slot"][0]["identifier"]["value"],
            "s 2"
        );
        assert_eq!(value["entry"][2]["search"]["mode"], "outcome");
        assert!(!value.to_string().contains("later"));

        // Booking one needs only a location and status booked: the mapping takes it as it is.
        let mut booking = first["resource"].clone();
        booking["status"] = json!("booked");
        booking["participant"].as_array_mut().unwrap().push(json!({
            "actor": {"reference": "Location/001xx000012udqhxxA"}, "status": "accepted"
        }));
        let appointment: Appointment = fhirbolt::json::from_json_value(booking, None).unwrap();
        let request = crate::mapping::book_request(&appointment, &mapping).unwrap();
        assert_eq!(request.work_type_id.as_deref(), Some("08qxx000000Axq6xxC"));
        assert_eq!(request.slots[0].id, "s1");
    }
}
