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
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use crate::fhir::APPOINTMENT_STATUSES;
use crate::salesforce::id::is_salesforce_id;
use crate::salesforce::lookup::LookupCacheSettings;

mod model;
use model::*;

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

/// Which ServiceAppointments of the org a tenant's reads and searches show (`[read]
/// appointments`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ReadableAppointments {
    /// Every patient appointment (parent an Account) the run-as user can see, including those
    /// made in Salesforce itself.
    #[default]
    All,
    /// Only appointments booked through this tenant (kept in its store): others are 404 and are
    /// left out of searches.
    BookedHere,
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

/// What a lookup rule applies to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LookupSource {
    /// References of this FHIR type (`Patient/{id}`, or an absolute URL ending so): the id is
    /// the external id.
    Reference {
        /// The FHIR resource type, e.g. `Patient`.
        fhir_type: String,
    },
    /// Actors given by an identifier of this system: the identifier's value is the external id.
    Identifier {
        /// The identifier system URI.
        system: String,
    },
}

/// An `[[ids.lookup]]` rule: ids from `source` are found in Salesforce as the `object` record
/// whose `external_id_field` holds them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LookupRule {
    /// Which references or identifiers the rule applies to.
    pub source: LookupSource,
    /// The sObject API name, e.g. `Account`.
    pub object: String,
    /// The external id field's API name, e.g. `EHR_Patient_Id__c`.
    pub external_id_field: String,
}

/// Longest `[ids.lookup_cache]` lifetime accepted: a record merged or re-keyed in Salesforce must
/// stop being used within a month at the latest.
pub const MAX_LOOKUP_TTL_SECS: u64 = 30 * 24 * 60 * 60;

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
    /// Lookup rules by external id, at most one per FHIR type and one per identifier system.
    pub lookups: Vec<LookupRule>,
    /// How long and how many lookup answers are cached.
    pub lookup_cache: LookupCacheSettings,
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
    /// Salesforce status category (lower case) → FHIR status, for a read whose Status is not in
    /// `statuses` (an org's own picklist value).
    pub status_categories: HashMap<String, String>,
    /// Which appointments reads and searches show.
    pub readable: ReadableAppointments,
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

        let lookups = lookup_rules(&model.ids.lookup, &kinds, &fail)?;
        let lookup_cache = match &model.ids.lookup_cache {
            None => LookupCacheSettings::default(),
            Some(cache) => lookup_cache(cache.get_ref(), &fail)?,
        };

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
        let mut status_categories = default_status_categories();
        if let Some(table) = &model.response.status_category {
            for (category, fhir) in table {
                check_status(fhir).map_err(|reason| fail(Some(fhir.span()), reason))?;
                status_categories.insert(category.to_lowercase(), fhir.get_ref().clone());
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
            lookups,
            lookup_cache,
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
            status_categories,
            readable: model.read.appointments,
        })
    }
}

/// Checks the `[[ids.lookup]]` rules: exactly one of `type` and `identifier_system`, a type that
/// is an actor type with a Salesforce reference kind, API names for object and field, no two
/// rules for the same type or system.
fn lookup_rules(
    rules: &[Spanned<LookupRuleModel>],
    kinds: &HashMap<String, String>,
    fail: &impl Fn(Option<Range<usize>>, String) -> MappingFileError,
) -> Result<Vec<LookupRule>, MappingFileError> {
    let mut out: Vec<LookupRule> = Vec::new();
    for rule in rules {
        let r = rule.get_ref();
        let source = match (&r.r#type, &r.identifier_system) {
            (Some(t), None) => {
                let fhir_type = t.get_ref();
                if !FHIR_ACTOR_TYPES.contains(&fhir_type.as_str()) {
                    return Err(fail(
                        Some(t.span()),
                        format!(
                            "ids.lookup: type {fhir_type} is not an Appointment actor type (one \
                             of {})",
                            FHIR_ACTOR_TYPES.join(", ")
                        ),
                    ));
                }
                if !kinds.contains_key(fhir_type) {
                    return Err(fail(
                        Some(t.span()),
                        format!(
                            "ids.lookup: type {fhir_type} has no Salesforce reference kind in \
                             participants.kinds, so its actors are never booked"
                        ),
                    ));
                }
                LookupSource::Reference {
                    fhir_type: fhir_type.clone(),
                }
            }
            (None, Some(system)) => {
                if system.get_ref().trim().is_empty() || system.get_ref().contains('|') {
                    return Err(fail(
                        Some(system.span()),
                        "ids.lookup: identifier_system must be a system URI (not empty, no |)"
                            .to_owned(),
                    ));
                }
                LookupSource::Identifier {
                    system: system.get_ref().clone(),
                }
            }
            _ => {
                return Err(fail(
                    Some(rule.span()),
                    "ids.lookup: each rule needs exactly one of type or identifier_system"
                        .to_owned(),
                ));
            }
        };
        for (name, key) in [
            (&r.object, "object"),
            (&r.external_id_field, "external_id_field"),
        ] {
            if !is_api_name(name.get_ref()) {
                return Err(fail(
                    Some(name.span()),
                    format!(
                        "ids.lookup: {key} is not a Salesforce API name (a letter, then letters, \
                         digits and single underscores, e.g. Account or EHR_Patient_Id__c)"
                    ),
                ));
            }
        }
        if out.iter().any(|o| o.source == source) {
            return Err(fail(
                Some(rule.span()),
                match &source {
                    LookupSource::Reference { fhir_type } => {
                        format!("ids.lookup: a second rule for type {fhir_type}")
                    }
                    LookupSource::Identifier { system } => {
                        format!("ids.lookup: a second rule for identifier_system {system}")
                    }
                },
            ));
        }
        out.push(LookupRule {
            source,
            object: r.object.get_ref().clone(),
            external_id_field: r.external_id_field.get_ref().clone(),
        });
    }
    Ok(out)
}

fn lookup_cache(
    model: &LookupCacheModel,
    fail: &impl Fn(Option<Range<usize>>, String) -> MappingFileError,
) -> Result<LookupCacheSettings, MappingFileError> {
    let defaults = LookupCacheSettings::default();
    let ttl = |value: &Option<Spanned<u64>>, key: &str, default: Duration| match value {
        None => Ok(default),
        Some(v) if *v.get_ref() > MAX_LOOKUP_TTL_SECS => Err(fail(
            Some(v.span()),
            format!(
                "ids.lookup_cache.{key} is over {MAX_LOOKUP_TTL_SECS} seconds (30 days): a record \
                 merged or re-keyed in Salesforce would be booked long after"
            ),
        )),
        Some(v) => Ok(Duration::from_secs(*v.get_ref())),
    };
    let max_entries = match &model.max_entries {
        None => defaults.max_entries,
        Some(v) if *v.get_ref() == 0 => {
            return Err(fail(
                Some(v.span()),
                "ids.lookup_cache.max_entries must be at least 1".to_owned(),
            ));
        }
        Some(v) => *v.get_ref(),
    };
    Ok(LookupCacheSettings {
        found_ttl: ttl(&model.found_ttl_secs, "found_ttl_secs", defaults.found_ttl)?,
        not_found_ttl: ttl(
            &model.not_found_ttl_secs,
            "not_found_ttl_secs",
            defaults.not_found_ttl,
        )?,
        max_entries,
    })
}

/// A Salesforce API name: standard (`Account`, `Name`), custom (`EHR_Patient_Id__c`), or
/// namespaced (`HealthCloudGA__EhrPatient__c`). Letters, digits and single underscores, starting
/// with a letter; `__` only before a suffix such as `c` and after a namespace.
pub fn is_api_name(name: &str) -> bool {
    const SUFFIXES: [&str; 7] = ["c", "pc", "x", "e", "b", "mdt", "kav"];
    let part_ok = |part: &str| {
        part.starts_with(|c: char| c.is_ascii_alphabetic())
            && !part.ends_with('_')
            && !part.contains("__")
            && part.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
    };
    let parts: Vec<&str> = name.split("__").collect();
    name.len() <= 120
        && parts.iter().all(|p| part_ok(p))
        && match parts.as_slice() {
            [_] => true,
            [_, suffix] | [_, _, suffix] => SUFFIXES.contains(suffix),
            _ => false,
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

/// The status categories (a restricted picklist: `Scheduled`, `Canceled`, …) and the FHIR status
/// each means when an appointment's own Status is not in the status table.
fn default_status_categories() -> HashMap<String, String> {
    [
        ("none", "pending"),
        ("scheduled", "booked"),
        ("dispatched", "booked"),
        ("checkedin", "checked-in"),
        ("inprogress", "arrived"),
        ("completed", "fulfilled"),
        ("cannotcomplete", "cancelled"),
        ("canceled", "cancelled"),
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
mod tests;
