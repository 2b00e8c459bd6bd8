//! Mapping files: their TOML model, loading, and the checks that run before the proxy starts.
//!
//! A mapping file says, for one Salesforce org and one source system, how a FHIR Appointment
//! becomes a Book Appointment request. [`Mapping::load`] and [`Mapping::from_toml`] parse it, refuse
//! unknown keys, check every Salesforce id, reference kind, status and rule, and report the file,
//! the line and the reason. The result is a plain, immutable [`Mapping`] that the pure functions in
//! [`crate::mapping`] read.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::ops::Range;
use std::path::Path;

use serde::Deserialize;
use toml::Spanned;

use crate::fhir::APPOINTMENT_STATUSES;
use crate::salesforce::id::is_salesforce_id;

/// Why a mapping file was refused.
#[derive(Debug, thiserror::Error)]
#[error("mapping file {file}{}: {reason}", line.map(|l| format!(", line {l}")).unwrap_or_default())]
pub struct MappingFileError {
    /// The file (or `<inline>`).
    pub file: String,
    /// The 1-based line, when known.
    pub line: Option<usize>,
    /// What is wrong.
    pub reason: String,
}

/// The Salesforce reference kinds a participant can become.
pub const SALESFORCE_KINDS: [&str; 4] = ["Patient", "Facility", "Practitioner", "Device"];

/// The FHIR types an `Appointment.participant.actor` may reference (R4).
pub const FHIR_ACTOR_TYPES: [&str; 7] = [
    "Patient",
    "Practitioner",
    "PractitionerRole",
    "RelatedPerson",
    "Device",
    "HealthcareService",
    "Location",
];

/// The coded Appointment elements whose codings can be sent as Salesforce code strings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
pub enum CodedElement {
    /// `Appointment.serviceCategory` → `serviceCategories`.
    #[serde(rename = "serviceCategory")]
    ServiceCategory,
    /// `Appointment.serviceType` → `serviceTypes`.
    #[serde(rename = "serviceType")]
    ServiceType,
    /// `Appointment.appointmentType` → `appointmentTypes`.
    #[serde(rename = "appointmentType")]
    AppointmentType,
    /// `Appointment.specialty` → `specialties`.
    #[serde(rename = "specialty")]
    Specialty,
}

impl CodedElement {
    /// The FHIR element name.
    pub fn fhir_name(self) -> &'static str {
        match self {
            CodedElement::ServiceCategory => "serviceCategory",
            CodedElement::ServiceType => "serviceType",
            CodedElement::AppointmentType => "appointmentType",
            CodedElement::Specialty => "specialty",
        }
    }
}

/// What to do with a coding whose code has no entry in the translation table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum UnmappedCode {
    /// Send the code unchanged.
    #[default]
    Send,
    /// Leave it out.
    Drop,
    /// Refuse the appointment (422).
    Reject,
}

/// When the code arrays and `sourceSystem` are sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SendCodes {
    /// Always, beside any workTypeId.
    #[default]
    Always,
    /// Only when no work type was chosen: Salesforce then resolves the visit type from the codes
    /// through the source system's Work Type Code Set Bundles.
    WithoutWorkType,
}

/// What to do with a participant whose actor type has no Salesforce reference kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OtherActors {
    /// Leave the participant out of the Salesforce request.
    #[default]
    Ignore,
    /// Refuse the appointment (422).
    Reject,
}

/// How a slot's `reference` names the practitioner.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SlotReferenceStyle {
    /// The bare Salesforce id, as in the documentation's sample.
    #[default]
    Id,
    /// `Practitioner/<id>`, as in `participants`.
    Prefixed,
}

// ---- The file as written -------------------------------------------------------------------

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileModel {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    defaults: DefaultsModel,
    #[serde(default)]
    participants: ParticipantsModel,
    #[serde(default)]
    ids: IdsModel,
    #[serde(default)]
    codes: CodesModel,
    #[serde(default)]
    work_types: WorkTypesModel,
    #[serde(default)]
    slots: SlotsModel,
    #[serde(default)]
    dates: DatesModel,
    #[serde(default)]
    response: ResponseModel,
    #[serde(default)]
    cancel: CancelModel,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct CancelModel {
    status: Option<Spanned<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct DefaultsModel {
    source_system: Option<Spanned<String>>,
    time_zone: Option<Spanned<String>>,
    channel_id: Option<Spanned<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ParticipantsModel {
    kinds: Option<BTreeMap<Spanned<String>, Spanned<String>>>,
    #[serde(default)]
    other_actors: OtherActors,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct IdsModel {
    passthrough: Option<bool>,
    #[serde(default)]
    table: Vec<Spanned<IdEntryModel>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct IdEntryModel {
    reference: Option<String>,
    identifier: Option<String>,
    salesforce_id: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct CodesModel {
    #[serde(default)]
    send: SendCodes,
    service_category: Option<Spanned<CodeRuleModel>>,
    service_type: Option<Spanned<CodeRuleModel>>,
    appointment_type: Option<Spanned<CodeRuleModel>>,
    specialty: Option<Spanned<CodeRuleModel>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CodeRuleModel {
    systems: Vec<String>,
    #[serde(default)]
    unmapped: UnmappedCode,
    #[serde(default)]
    translate: BTreeMap<String, String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct WorkTypesModel {
    default: Option<Spanned<String>>,
    default_channel_id: Option<Spanned<String>>,
    #[serde(default)]
    rule: Vec<Spanned<WorkTypeRuleModel>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct WorkTypeRuleModel {
    element: CodedElement,
    system: String,
    code: String,
    work_type_id: String,
    channel_id: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct SlotsModel {
    #[serde(default)]
    reference: SlotReferenceStyle,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct DatesModel {
    #[serde(default)]
    end_from_duration: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ResponseModel {
    identifier_system: Option<String>,
    status: Option<BTreeMap<String, Spanned<String>>>,
    default_status: Option<Spanned<String>>,
}

// ---- The checked mapping -------------------------------------------------------------------

/// How one coded element's codings become code strings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodeRule {
    /// Codings from these systems are sent; others are ignored.
    pub systems: Vec<String>,
    /// Code → Salesforce code.
    pub translate: HashMap<String, String>,
    /// What happens to a code with no translation.
    pub unmapped: UnmappedCode,
}

/// A rule that picks the work type (and channel) from one coding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkTypeRule {
    /// Which element's codings are looked at.
    pub element: CodedElement,
    /// The coding's system.
    pub system: String,
    /// The coding's code.
    pub code: String,
    /// The WorkType id to send.
    pub work_type_id: String,
    /// The engagement channel for this work type, if it has its own.
    pub channel_id: Option<String>,
}

/// A checked mapping, ready for [`crate::mapping::book_request`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mapping {
    /// A label for logs and errors.
    pub name: String,
    /// `sourceSystem` to send with codes.
    pub source_system: Option<String>,
    /// `timeZone` to send.
    pub time_zone: Option<String>,
    /// `channelId` when no work type rule names one.
    pub channel_id: Option<String>,
    /// FHIR actor type → Salesforce reference kind.
    pub kinds: HashMap<String, String>,
    /// What to do with actors of other types.
    pub other_actors: OtherActors,
    /// Send FHIR ids that already are Salesforce ids unchanged.
    pub passthrough: bool,
    /// `Type/id` → Salesforce id.
    pub references: HashMap<String, String>,
    /// `system|value` → Salesforce id.
    pub identifiers: HashMap<String, String>,
    /// When code arrays and sourceSystem are sent.
    pub send_codes: SendCodes,
    /// Code rules per element; an element without a rule sends no codes.
    pub codes: BTreeMap<CodedElement, CodeRule>,
    /// Work type rules, first match wins.
    pub work_type_rules: Vec<WorkTypeRule>,
    /// The work type when no rule matches.
    pub default_work_type: Option<String>,
    /// The channel that goes with the default work type.
    pub default_work_type_channel: Option<String>,
    /// How slot references name the practitioner.
    pub slot_reference: SlotReferenceStyle,
    /// Accept start + minutesDuration without end, and compute end.
    pub end_from_duration: bool,
    /// The identifier system under which the Salesforce record id is returned.
    pub identifier_system: String,
    /// Salesforce status (lower case) → FHIR Appointment status.
    pub statuses: HashMap<String, String>,
    /// FHIR status for a successful booking whose Salesforce status is not in the table.
    pub default_status: String,
    /// The cancellation status word this org's ServiceAppointment picklist uses.
    pub cancel_status: String,
}

/// The cancellation status sent when a mapping names none (Salesforce's pages use both
/// `Canceled` and `Cancelled`; orgs differ).
pub const DEFAULT_CANCEL_STATUS: &str = "Canceled";

/// The identifier system used when a mapping names none.
pub const DEFAULT_IDENTIFIER_SYSTEM: &str = "urn:salesforce:ServiceAppointment";

impl Mapping {
    /// Reads and checks a mapping file.
    ///
    /// # Errors
    /// When the file cannot be read, is not valid TOML, has unknown keys, or fails a check.
    pub fn load(path: &Path) -> Result<Mapping, MappingFileError> {
        let text = std::fs::read_to_string(path).map_err(|e| MappingFileError {
            file: path.display().to_string(),
            line: None,
            reason: format!("cannot read it: {e}"),
        })?;
        Mapping::from_toml(&text, &path.display().to_string())
    }

    /// Parses and checks mapping TOML; `file` names it in errors.
    ///
    /// # Errors
    /// When the text is not valid TOML, has unknown keys, or fails a check.
    pub fn from_toml(text: &str, file: &str) -> Result<Mapping, MappingFileError> {
        let fail = |span: Option<Range<usize>>, reason: String| MappingFileError {
            file: file.to_owned(),
            line: span.map(|s| line_of(text, s.start)),
            reason,
        };
        let model: FileModel = toml::from_str(text).map_err(|e| {
            // toml's own message already carries a snippet; keep its first line's reason.
            fail(e.span(), e.message().to_owned())
        })?;

        let check_id = |value: &Spanned<String>, key: &str| {
            if is_salesforce_id(value.get_ref()) {
                Ok(value.get_ref().clone())
            } else {
                Err(fail(
                    Some(value.span()),
                    format!("{key} is not a Salesforce id (15 or 18 letters and digits)"),
                ))
            }
        };

        let channel_id = model
            .defaults
            .channel_id
            .as_ref()
            .map(|c| check_id(c, "defaults.channel_id"))
            .transpose()?;
        let time_zone = match &model.defaults.time_zone {
            Some(tz) if !is_plausible_time_zone(tz.get_ref()) => {
                return Err(fail(
                    Some(tz.span()),
                    "defaults.time_zone must be an IANA time zone such as America/New_York"
                        .to_owned(),
                ));
            }
            other => other.as_ref().map(|t| t.get_ref().clone()),
        };
        let source_system = match &model.defaults.source_system {
            Some(s) if s.get_ref().trim().is_empty() => {
                return Err(fail(
                    Some(s.span()),
                    "defaults.source_system is empty".to_owned(),
                ));
            }
            other => other.as_ref().map(|s| s.get_ref().clone()),
        };

        let kinds = match &model.participants.kinds {
            None => default_kinds(),
            Some(table) => {
                let mut kinds = HashMap::new();
                for (fhir, kind) in table {
                    if !FHIR_ACTOR_TYPES.contains(&fhir.get_ref().as_str()) {
                        return Err(fail(
                            Some(fhir.span()),
                            format!(
                                "participants.kinds: {} is not an Appointment actor type (one of {})",
                                fhir.get_ref(),
                                FHIR_ACTOR_TYPES.join(", ")
                            ),
                        ));
                    }
                    if !SALESFORCE_KINDS.contains(&kind.get_ref().as_str()) {
                        return Err(fail(
                            Some(kind.span()),
                            format!(
                                "participants.kinds.{}: {} is not a Salesforce reference kind (one of {})",
                                fhir.get_ref(),
                                kind.get_ref(),
                                SALESFORCE_KINDS.join(", ")
                            ),
                        ));
                    }
                    kinds.insert(fhir.get_ref().clone(), kind.get_ref().clone());
                }
                kinds
            }
        };

        let mut references = HashMap::new();
        let mut identifiers = HashMap::new();
        for entry in &model.ids.table {
            let span = Some(entry.span());
            let e = entry.get_ref();
            if !is_salesforce_id(&e.salesforce_id) {
                return Err(fail(
                    span,
                    "ids.table: salesforce_id is not a Salesforce id (15 or 18 letters and digits)"
                        .to_owned(),
                ));
            }
            let (map, key) = match (&e.reference, &e.identifier) {
                (Some(r), None) => {
                    if !is_type_and_id(r) {
                        return Err(fail(
                            span,
                            "ids.table: reference must look like Type/id, e.g. Practitioner/123"
                                .to_owned(),
                        ));
                    }
                    (&mut references, r.clone())
                }
                (None, Some(i)) => {
                    if !i.contains('|') {
                        return Err(fail(
                            span,
                            "ids.table: identifier must be system|value".to_owned(),
                        ));
                    }
                    (&mut identifiers, i.clone())
                }
                _ => {
                    return Err(fail(
                        span,
                        "ids.table: each entry needs exactly one of reference or identifier"
                            .to_owned(),
                    ));
                }
            };
            if map.insert(key, e.salesforce_id.clone()).is_some() {
                return Err(fail(
                    span,
                    "ids.table: duplicate entry (the same reference or identifier appears twice)"
                        .to_owned(),
                ));
            }
        }

        let mut codes = BTreeMap::new();
        for (element, rule) in [
            (CodedElement::ServiceCategory, &model.codes.service_category),
            (CodedElement::ServiceType, &model.codes.service_type),
            (CodedElement::AppointmentType, &model.codes.appointment_type),
            (CodedElement::Specialty, &model.codes.specialty),
        ] {
            let Some(rule) = rule else { continue };
            let r = rule.get_ref();
            if r.systems.is_empty() {
                return Err(fail(
                    Some(rule.span()),
                    format!(
                        "codes.{}: systems is empty, so no coding would ever be sent",
                        snake(element)
                    ),
                ));
            }
            codes.insert(
                element,
                CodeRule {
                    systems: r.systems.clone(),
                    translate: r.translate.clone().into_iter().collect(),
                    unmapped: r.unmapped,
                },
            );
        }

        let mut work_type_rules = Vec::new();
        let mut seen = HashSet::new();
        for rule in &model.work_types.rule {
            let span = Some(rule.span());
            let r = rule.get_ref();
            if !is_salesforce_id(&r.work_type_id) {
                return Err(fail(
                    span,
                    "work_types.rule: work_type_id is not a Salesforce id (15 or 18 letters and digits)"
                        .to_owned(),
                ));
            }
            if let Some(c) = &r.channel_id
                && !is_salesforce_id(c)
            {
                return Err(fail(
                    span,
                    "work_types.rule: channel_id is not a Salesforce id (15 or 18 letters and digits)"
                        .to_owned(),
                ));
            }
            if !seen.insert((r.element, r.system.clone(), r.code.clone())) {
                return Err(fail(
                    span,
                    format!(
                        "work_types.rule: duplicate rule for {} {}|{}",
                        r.element.fhir_name(),
                        r.system,
                        r.code
                    ),
                ));
            }
            work_type_rules.push(WorkTypeRule {
                element: r.element,
                system: r.system.clone(),
                code: r.code.clone(),
                work_type_id: r.work_type_id.clone(),
                channel_id: r.channel_id.clone(),
            });
        }
        let default_work_type = model
            .work_types
            .default
            .as_ref()
            .map(|w| check_id(w, "work_types.default"))
            .transpose()?;
        let default_work_type_channel = model
            .work_types
            .default_channel_id
            .as_ref()
            .map(|c| check_id(c, "work_types.default_channel_id"))
            .transpose()?;

        let mut statuses = default_statuses();
        if let Some(table) = &model.response.status {
            for (salesforce, fhir) in table {
                check_status(fhir).map_err(|reason| fail(Some(fhir.span()), reason))?;
                statuses.insert(salesforce.to_lowercase(), fhir.get_ref().clone());
            }
        }
        let default_status = match &model.response.default_status {
            Some(s) => {
                check_status(s).map_err(|reason| fail(Some(s.span()), reason))?;
                s.get_ref().clone()
            }
            None => "booked".to_owned(),
        };

        Ok(Mapping {
            name: model.name.unwrap_or_else(|| file.to_owned()),
            source_system,
            time_zone,
            channel_id,
            kinds,
            other_actors: model.participants.other_actors,
            passthrough: model.ids.passthrough.unwrap_or(true),
            references,
            identifiers,
            send_codes: model.codes.send,
            codes,
            work_type_rules,
            default_work_type,
            default_work_type_channel,
            slot_reference: model.slots.reference,
            end_from_duration: model.dates.end_from_duration,
            identifier_system: model
                .response
                .identifier_system
                .unwrap_or_else(|| DEFAULT_IDENTIFIER_SYSTEM.to_owned()),
            statuses,
            default_status,
            cancel_status: match &model.cancel.status {
                Some(s) if s.get_ref().trim().is_empty() => {
                    return Err(fail(Some(s.span()), "cancel.status is empty".to_owned()));
                }
                Some(s) => s.get_ref().clone(),
                None => DEFAULT_CANCEL_STATUS.to_owned(),
            },
        })
    }
}

fn check_status(status: &Spanned<String>) -> Result<(), String> {
    if APPOINTMENT_STATUSES.contains(&status.get_ref().as_str()) {
        Ok(())
    } else {
        Err(format!(
            "response status {} is not an R4 Appointment status (one of {})",
            status.get_ref(),
            APPOINTMENT_STATUSES.join(", ")
        ))
    }
}

fn default_kinds() -> HashMap<String, String> {
    [
        ("Patient", "Patient"),
        ("Location", "Facility"),
        ("Practitioner", "Practitioner"),
        ("PractitionerRole", "Practitioner"),
        ("Device", "Device"),
    ]
    .into_iter()
    .map(|(a, b)| (a.to_owned(), b.to_owned()))
    .collect()
}

/// Salesforce's documented statuses (any case) and the FHIR status each means.
fn default_statuses() -> HashMap<String, String> {
    [
        ("scheduled", "booked"),
        ("booked", "booked"),
        ("confirmed", "booked"),
        ("pending", "pending"),
        ("none", "pending"),
        ("canceled", "cancelled"),
        ("cancelled", "cancelled"),
        ("completed", "fulfilled"),
    ]
    .into_iter()
    .map(|(a, b)| (a.to_owned(), b.to_owned()))
    .collect()
}

fn snake(element: CodedElement) -> &'static str {
    match element {
        CodedElement::ServiceCategory => "service_category",
        CodedElement::ServiceType => "service_type",
        CodedElement::AppointmentType => "appointment_type",
        CodedElement::Specialty => "specialty",
    }
}

fn is_type_and_id(reference: &str) -> bool {
    matches!(reference.split_once('/'), Some((t, id)) if !t.is_empty() && !id.is_empty() && !id.contains('/'))
}

/// IANA names are `Area/Location[/Sub]` or a few single names (`UTC`); a full check needs the tz
/// database, which Salesforce has and will apply.
fn is_plausible_time_zone(tz: &str) -> bool {
    tz == "UTC"
        || tz == "GMT"
        || (tz.contains('/')
            && tz
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'/' | b'_' | b'-' | b'+')))
}

fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())]
        .bytes()
        .filter(|&b| b == b'\n')
        .count()
        + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(text: &str) -> MappingFileError {
        Mapping::from_toml(text, "test.toml").expect_err("mapping should be refused")
    }

    #[test]
    fn empty_file_gives_documented_defaults() {
        let m = Mapping::from_toml("", "empty.toml").unwrap();
        assert_eq!(m.kinds["Location"], "Facility");
        assert_eq!(m.kinds["PractitionerRole"], "Practitioner");
        assert!(m.passthrough);
        assert_eq!(m.statuses["scheduled"], "booked");
        assert_eq!(m.default_status, "booked");
        assert!(m.codes.is_empty());
    }

    #[test]
    fn bad_files_are_refused_with_line_and_reason() {
        let cases: &[(&str, usize, &str)] = &[
            ("[defaults]\nsource_sistem = \"x\"\n", 2, "unknown field"),
            (
                "\n[defaults]\nchannel_id = \"0eFxx\"\n",
                3,
                "not a Salesforce id",
            ),
            (
                "[participants.kinds]\nPatient = \"Patient\"\nLocation = \"Site\"\n",
                3,
                "not a Salesforce reference kind",
            ),
            (
                "[participants.kinds]\nOrganization = \"Facility\"\n",
                2,
                "not an Appointment actor type",
            ),
            (
                "[[ids.table]]\nreference = \"Patient/1\"\nsalesforce_id = \"001xx000012udqQxxQ\"\n\
                 [[ids.table]]\nreference = \"Patient/1\"\nsalesforce_id = \"001xx000012udqQxxQ\"\n",
                4,
                "duplicate entry",
            ),
            (
                "[[ids.table]]\nreference = \"Patient/1\"\nidentifier = \"a|b\"\nsalesforce_id = \"001xx000012udqQxxQ\"\n",
                1,
                "exactly one of reference or identifier",
            ),
            (
                "[[work_types.rule]]\nelement = \"serviceType\"\nsystem = \"s\"\ncode = \"c\"\nwork_type_id = \"08qxxG000000Axq6xxC\"\n",
                1,
                "work_type_id is not a Salesforce id",
            ),
            (
                "[[work_types.rule]]\nelement = \"serviceType\"\nsystem = \"s\"\ncode = \"c\"\nwork_type_id = \"08qxx000000Axq6xxC\"\n\
                 [[work_types.rule]]\nelement = \"serviceType\"\nsystem = \"s\"\ncode = \"c\"\nwork_type_id = \"08qxx000000Axq6xxD\"\n",
                6,
                "duplicate rule",
            ),
            (
                "[[work_types.rule]]\nelement = \"reasonCode\"\nsystem = \"s\"\ncode = \"c\"\nwork_type_id = \"08qxx000000Axq6xxC\"\n",
                2,
                "unknown variant",
            ),
            (
                "[codes.service_type]\nsystems = []\n",
                1,
                "systems is empty",
            ),
            (
                "[codes.service_type]\nsystems = [\"s\"]\nunmapped = \"ignore\"\n",
                3,
                "unknown variant",
            ),
            (
                "[response.status]\nscheduled = \"done\"\n",
                2,
                "not an R4 Appointment status",
            ),
            ("[defaults]\ntime_zone = \"Eastern\"\n", 2, "IANA time zone"),
            ("not toml at all", 1, ""),
        ];
        for (text, line, reason) in cases {
            let err = refused(text);
            assert_eq!(err.line, Some(*line), "line for {text:?}: {err}");
            assert!(err.reason.contains(reason), "reason for {text:?}: {err}");
            assert!(err.to_string().starts_with("mapping file test.toml, line"));
        }
    }

    #[test]
    fn status_table_is_case_insensitive_and_overridable() {
        let m = Mapping::from_toml(
            "[response]\ndefault_status = \"pending\"\n[response.status]\nScheduled = \"pending\"\n",
            "t",
        )
        .unwrap();
        assert_eq!(m.statuses["scheduled"], "pending");
        assert_eq!(m.default_status, "pending");
    }
}
