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

/// The search parameters this search understands.
pub const SEARCH_PARAMETERS: [&str; 7] = [
    "start",
    "schedule",
    "schedule.actor",
    "service-type",
    "service-category",
    "appointment-type",
    "status",
];

/// Result parameters that shape the answer, not the search; the HTTP edge reads them.
const FORMAT_PARAMETERS: [&str; 2] = ["_format", "_pretty"];

/// The R4 SlotStatus codes (required binding on `Slot.status`).
pub const SLOT_STATUSES: [&str; 5] = [
    "busy",
    "free",
    "busy-unavailable",
    "busy-tentative",
    "entered-in-error",
];

/// The SlotStatus code system, allowed as the system part of a `status` token.
const SLOT_STATUS_SYSTEM: &str = "http://hl7.org/fhir/slotstatus";

pub use super::reference::SLOT_IDENTIFIER_SYSTEM;

/// A date search prefix this search supports (R4 search.html §3.1.1.4.2). `ne`, `sa`, `eb` and
/// `ap` are refused: none of them narrows a window Salesforce could be asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Comparator {
    /// `eq` (or no prefix): the start lies within the value's range.
    Eq,
    /// `ge`: at or after the start of the value's range.
    Ge,
    /// `gt`: after the value's range.
    Gt,
    /// `le`: at or before the end of the value's range.
    Le,
    /// `lt`: before the value's range.
    Lt,
}

/// One `start` value: its prefix and the range its value covers, `[from, until)` in UTC.
/// `2025-09-20` covers the whole day; `2025-09-20T09:00` the minute; `2025-09-20T09:00:00` the
/// second.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DateBound {
    /// The prefix.
    pub comparator: Comparator,
    /// First instant of the value's range.
    pub from: DateTime<Utc>,
    /// First instant after the value's range.
    pub until: DateTime<Utc>,
}

/// A `system|code` token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    /// The code system.
    pub system: String,
    /// The code.
    pub code: String,
}

/// A Slot search as asked, parsed from the query string; no mapping applied yet.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SlotQuery {
    /// Every `start` value (repeats are ANDed).
    pub start: Vec<DateBound>,
    /// `schedule` references as given (`Schedule/{id}`, the ids this search hands out).
    pub schedules: Vec<String>,
    /// `schedule.actor` references as given (`Practitioner/{id}` or an absolute URL).
    pub actors: Vec<String>,
    /// `service-type` tokens.
    pub service_types: Vec<Token>,
    /// `service-category` tokens.
    pub service_categories: Vec<Token>,
    /// `appointment-type` tokens.
    pub appointment_types: Vec<Token>,
    /// `status` codes; empty means any.
    pub statuses: Vec<String>,
}

impl SlotQuery {
    /// Reads a percent-encoded query string.
    ///
    /// Empty values are ignored (R4 search.html: a parameter without a value does not restrict
    /// the search). Commas separate alternatives of `schedule`, `schedule.actor`, `service-type`,
    /// `service-category`, `appointment-type` and `status`.
    ///
    /// # Errors
    /// The first problem found: an unknown parameter or a modifier (`not-supported`: a FHIR server
    /// may ignore unknown parameters, but then a misspelt filter silently widens the search, and
    /// integrators learn of the typo only from wrong results), a malformed date or token
    /// (`invalid`), an unsupported prefix (`not-supported`), or a status outside SlotStatus
    /// (`value`). Every one is a 400.
    pub fn parse(query_string: &str) -> Result<SlotQuery, Issue> {
        let mut query = SlotQuery::default();
        for (name, value) in url::form_urlencoded::parse(query_string.as_bytes()) {
            if FORMAT_PARAMETERS.contains(&name.as_ref()) {
                continue;
            }
            if !SEARCH_PARAMETERS.contains(&name.as_ref()) {
                return Err(unsupported_parameter(&name));
            }
            if value.trim().is_empty() {
                continue;
            }
            match name.as_ref() {
                "start" => query.start.push(parse_start(&value)?),
                "schedule" => query
                    .schedules
                    .extend(alternatives(&value).map(str::to_owned)),
                "schedule.actor" => query.actors.extend(alternatives(&value).map(str::to_owned)),
                "service-category" => query
                    .service_categories
                    .extend(parse_tokens(&value, "service-category")?),
                "service-type" => query
                    .service_types
                    .extend(parse_tokens(&value, "service-type")?),
                "appointment-type" => query
                    .appointment_types
                    .extend(parse_tokens(&value, "appointment-type")?),
                _ => query.statuses.extend(parse_statuses(&value)?),
            }
        }
        Ok(query)
    }

    /// The earliest slot start asked for (inclusive), from the `ge`, `gt` and `eq` values.
    pub fn lower_bound(&self) -> Option<DateTime<Utc>> {
        self.start
            .iter()
            .filter_map(|b| match b.comparator {
                Comparator::Ge | Comparator::Eq => Some(b.from),
                Comparator::Gt => Some(b.until),
                Comparator::Le | Comparator::Lt => None,
            })
            .max()
    }

    /// The first slot start no longer asked for (exclusive), from the `lt`, `le` and `eq` values.
    pub fn upper_bound(&self) -> Option<DateTime<Utc>> {
        self.start
            .iter()
            .filter_map(|b| match b.comparator {
                Comparator::Le | Comparator::Eq => Some(b.until),
                Comparator::Lt => Some(b.from),
                Comparator::Ge | Comparator::Gt => None,
            })
            .min()
    }

    /// Whether free slots are asked for: Get Slots knows no others.
    pub fn wants_free(&self) -> bool {
        self.statuses.is_empty() || self.statuses.iter().any(|s| s == "free")
    }

    /// Whether any slot can match at all: free slots are asked for and the window is not empty.
    /// When not, the answer is an empty Bundle and Salesforce need not be asked.
    pub fn can_match(&self) -> bool {
        let empty_window = matches!(
            (self.lower_bound(), self.upper_bound()),
            (Some(lower), Some(upper)) if lower >= upper
        );
        self.wants_free() && !empty_window
    }

    /// Whether a slot starting at `start` satisfies every `start` value.
    pub fn matches_start(&self, start: DateTime<Utc>) -> bool {
        self.lower_bound().is_none_or(|l| start >= l)
            && self.upper_bound().is_none_or(|u| start < u)
    }
}

fn unsupported_parameter(name: &str) -> Issue {
    let (base, modifier) = match name.split_once(':') {
        Some((base, _)) => (base, true),
        None => (name, false),
    };
    let supported = SEARCH_PARAMETERS.join(", ");
    let diagnostics = if modifier && SEARCH_PARAMETERS.contains(&base) {
        format!("search parameter modifiers are not supported (on `{base}`)")
    } else if is_plain_name(name) {
        format!("the search parameter `{name}` is not supported; Slot searches take {supported}")
    } else {
        format!("a search parameter is not supported; Slot searches take {supported}")
    };
    Issue::general(IssueCode::NotSupported, diagnostics)
}

/// Parameter names are echoed only when they look like parameter names.
pub(crate) fn is_plain_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-.:".contains(&b))
}

/// The comma-separated alternatives of a value, trimmed, empty ones dropped.
pub(crate) fn alternatives(value: &str) -> impl Iterator<Item = &str> {
    value.split(',').map(str::trim).filter(|v| !v.is_empty())
}

fn parse_start(value: &str) -> Result<DateBound, Issue> {
    if value.contains(',') {
        return Err(Issue::general(
            IssueCode::NotSupported,
            "start does not take alternatives separated by commas; repeat the parameter for a \
             window (start=ge…&start=lt…)",
        ));
    }
    let value = value.trim();
    let prefix = value
        .get(..2)
        .filter(|p| p.bytes().all(|b| b.is_ascii_lowercase()));
    let (comparator, text) = match prefix {
        None => (Comparator::Eq, value),
        Some(p) => {
            let comparator = match p {
                "eq" => Comparator::Eq,
                "ge" => Comparator::Ge,
                "gt" => Comparator::Gt,
                "le" => Comparator::Le,
                "lt" => Comparator::Lt,
                "ne" | "sa" | "eb" | "ap" => {
                    return Err(Issue::general(
                        IssueCode::NotSupported,
                        "the start prefixes ne, sa, eb and ap are not supported; use ge, gt, le, \
                         lt or eq",
                    ));
                }
                _ => return Err(malformed_start()),
            };
            (comparator, &value[2..])
        }
    };
    let (from, until) = date_range(text).ok_or_else(malformed_start)?;
    Ok(DateBound {
        comparator,
        from,
        until,
    })
}

fn malformed_start() -> Issue {
    Issue::general(
        IssueCode::Invalid,
        "start must be a FHIR date or dateTime with an optional prefix, for example \
         start=ge2025-09-20 or start=lt2025-09-21T12:00:00Z",
    )
}

/// The range `[from, until)` a FHIR date or dateTime search value covers: `YYYY`, `YYYY-MM`,
/// `YYYY-MM-DD`, or `YYYY-MM-DDThh:mm[:ss[.fff]]` with an optional zone (`Z` or `±hh:mm`). Values
/// without a zone are read as UTC: the proxy has no time zone of its own, and Salesforce's samples
/// treat zone-less times so too.
pub(crate) fn date_range(text: &str) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
    // A `+` in a query string decodes to a space: restore it before reading a zone.
    let text = text.replace(' ', "+");
    let (date, time) = match text.split_once('T') {
        Some((date, time)) => (date, Some(time)),
        None => (text.as_str(), None),
    };
    let b = date.as_bytes();
    let digits = |range: std::ops::Range<usize>| {
        b.get(range)
            .is_some_and(|d| d.iter().all(u8::is_ascii_digit))
    };
    let at_midnight = |d: NaiveDate| d.and_time(NaiveTime::MIN).and_utc();
    match (b.len(), time) {
        (4, None) if digits(0..4) => {
            let year = date.parse().ok()?;
            let from = NaiveDate::from_ymd_opt(year, 1, 1)?;
            let until = NaiveDate::from_ymd_opt(year.checked_add(1)?, 1, 1)?;
            Some((at_midnight(from), at_midnight(until)))
        }
        (7, None) if digits(0..4) && b[4] == b'-' && digits(5..7) => {
            let from =
                NaiveDate::from_ymd_opt(date[..4].parse().ok()?, date[5..].parse().ok()?, 1)?;
            let until = from.checked_add_months(Months::new(1))?;
            Some((at_midnight(from), at_midnight(until)))
        }
        (10, _)
            if digits(0..4) && b[4] == b'-' && digits(5..7) && b[7] == b'-' && digits(8..10) =>
        {
            let day = NaiveDate::from_ymd_opt(
                date[..4].parse().ok()?,
                date[5..7].parse().ok()?,
                date[8..].parse().ok()?,
            )?;
            match time {
                None => Some((at_midnight(day), at_midnight(day.succ_opt()?))),
                Some(time) => time_range(day, time),
            }
        }
        _ => None,
    }
}

/// The range of `hh:mm[:ss[.fff]][zone]` on `day`: a minute, a second, or a millisecond wide.
fn time_range(day: NaiveDate, time: &str) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
    let (local, offset) = if let Some(local) = time.strip_suffix('Z') {
        (local, Some(FixedOffset::east_opt(0)?))
    } else if let Some(at) = time.rfind(['+', '-']) {
        (&time[..at], Some(parse_offset(&time[at..])?))
    } else {
        (time, None)
    };
    let b = local.as_bytes();
    let two_digits = |at: usize| {
        b.get(at..at + 2)
            .is_some_and(|d| d.iter().all(u8::is_ascii_digit))
    };
    if !(two_digits(0) && b.get(2) == Some(&b':') && two_digits(3)) {
        return None;
    }
    let (parsed, width) = match b.len() {
        5 => (
            NaiveTime::parse_from_str(local, "%H:%M").ok()?,
            TimeDelta::minutes(1),
        ),
        8 if b[5] == b':' && two_digits(6) => (
            NaiveTime::parse_from_str(local, "%H:%M:%S").ok()?,
            TimeDelta::seconds(1),
        ),
        n if n > 9
            && b[5] == b':'
            && two_digits(6)
            && b[8] == b'.'
            && b[9..].iter().all(u8::is_ascii_digit) =>
        {
            (
                NaiveTime::parse_from_str(local, "%H:%M:%S%.f").ok()?,
                TimeDelta::milliseconds(1),
            )
        }
        _ => return None,
    };
    let naive = NaiveDateTime::new(day, parsed);
    let from = match offset {
        Some(offset) => offset.from_local_datetime(&naive).single()?.to_utc(),
        None => naive.and_utc(),
    };
    Some((from, from.checked_add_signed(width)?))
}

/// `+hh:mm` or `-hh:mm`.
fn parse_offset(text: &str) -> Option<FixedOffset> {
    let b = text.as_bytes();
    let shaped =
        b.len() == 6 && b[3] == b':' && [1, 2, 4, 5].iter().all(|&i| b[i].is_ascii_digit());
    if !shaped {
        return None;
    }
    let hours: i32 = text[1..3].parse().ok()?;
    let minutes: i32 = text[4..6].parse().ok()?;
    if hours > 14 || minutes > 59 {
        return None;
    }
    let seconds = hours * 3600 + minutes * 60;
    if b[0] == b'-' {
        FixedOffset::west_opt(seconds)
    } else {
        FixedOffset::east_opt(seconds)
    }
}

pub(crate) fn parse_tokens(value: &str, parameter: &str) -> Result<Vec<Token>, Issue> {
    alternatives(value)
        .map(|token| match token.split_once('|') {
            Some((system, code)) if !system.is_empty() && !code.is_empty() => Ok(Token {
                system: system.to_owned(),
                code: code.to_owned(),
            }),
            // A bare code or a bare system cannot be matched against a mapping, whose rules and
            // tables are keyed by system and code.
            _ => Err(Issue::general(
                IssueCode::Invalid,
                format!(
                    "{parameter} must be system|code (both parts): the mapping picks work types \
                     and codes by system and code"
                ),
            )),
        })
        .collect()
}

fn parse_statuses(value: &str) -> Result<Vec<String>, Issue> {
    alternatives(value)
        .map(|token| {
            let code = match token.split_once('|') {
                Some(("" | SLOT_STATUS_SYSTEM, code)) => code,
                Some(_) => "",
                None => token,
            };
            if SLOT_STATUSES.contains(&code) {
                Ok(code.to_owned())
            } else {
                Err(Issue::general(
                    IssueCode::Value,
                    format!(
                        "status must be a SlotStatus code: {}",
                        SLOT_STATUSES.join(", ")
                    ),
                ))
            }
        })
        .collect()
}

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
mod tests {
    use serde_json::{Value, json};

    use super::*;
    use crate::mapping::EXAMPLE_MAPPING;
    use crate::salesforce::wire::AvailableSlot;

    const PRACTITIONER: &str = "0bSxx0000005JoaxxE";
    const DEVICE: &str = "02ixx0000000001AAA";
    const WORK_TYPE: &str = "08qxx000000Axq6xxC";
    const CHANNEL: &str = "0eFxx000000NNOVxx0";
    const V2_0276: &str = "http://terminology.hl7.org/CodeSystem/v2-0276";
    const SERVICE_TYPE: &str = "http://terminology.hl7.org/CodeSystem/service-type";

    fn example() -> Mapping {
        Mapping::from_toml(EXAMPLE_MAPPING, "mappings/example.toml").unwrap()
    }

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text).unwrap().to_utc()
    }

    fn query(text: &str) -> SlotQuery {
        SlotQuery::parse(text).unwrap_or_else(|i| panic!("{text}: {i:?}"))
    }

    fn encoded(pairs: &[(&str, &str)]) -> String {
        url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(pairs)
            .finish()
    }

    fn refused(text: &str) -> Issue {
        SlotQuery::parse(text).expect_err(text)
    }

    #[test]
    fn start_values_cover_their_precision_and_prefixes_make_bounds() {
        // (value, lower bound, upper bound)
        let cases: &[(&str, Option<&str>, Option<&str>)] = &[
            ("ge2025-09-20", Some("2025-09-20T00:00:00Z"), None),
            ("gt2025-09-20", Some("2025-09-21T00:00:00Z"), None),
            (
                "2025-09-20",
                Some("2025-09-20T00:00:00Z"),
                Some("2025-09-21T00:00:00Z"),
            ),
            (
                "eq2025-09",
                Some("2025-09-01T00:00:00Z"),
                Some("2025-10-01T00:00:00Z"),
            ),
            (
                "eq2025",
                Some("2025-01-01T00:00:00Z"),
                Some("2026-01-01T00:00:00Z"),
            ),
            ("lt2025-09-21", None, Some("2025-09-21T00:00:00Z")),
            ("le2025-09-21", None, Some("2025-09-22T00:00:00Z")),
            ("ge2025-09-20T09:00", Some("2025-09-20T09:00:00Z"), None),
            ("gt2025-09-20T09:00", Some("2025-09-20T09:01:00Z"), None),
            ("gt2025-09-20T09:00:00Z", Some("2025-09-20T09:00:01Z"), None),
            (
                "ge2025-09-20T09:00:00.250Z",
                Some("2025-09-20T09:00:00.250Z"),
                None,
            ),
            (
                "ge2025-09-20T11:00:00+02:00",
                Some("2025-09-20T09:00:00Z"),
                None,
            ),
            // `+` decoded to a space by the query string.
            (
                "ge2025-09-20T11:00:00 02:00",
                Some("2025-09-20T09:00:00Z"),
                None,
            ),
            (
                "ge2025-09-20T04:00:00-05:00",
                Some("2025-09-20T09:00:00Z"),
                None,
            ),
            // No zone: UTC.
            ("ge2025-09-20T09:00:00", Some("2025-09-20T09:00:00Z"), None),
        ];
        for (value, lower, upper) in cases {
            let q = query(&encoded(&[("start", value)]));
            assert_eq!(q.lower_bound(), lower.map(at), "{value}");
            assert_eq!(q.upper_bound(), upper.map(at), "{value}");
        }
        // Repeats are ANDed: the narrowest window wins.
        let q =
            query("start=ge2025-09-19&start=ge2025-09-20&start=lt2025-09-23&start=le2025-09-21");
        assert_eq!(q.lower_bound(), Some(at("2025-09-20T00:00:00Z")));
        assert_eq!(q.upper_bound(), Some(at("2025-09-22T00:00:00Z")));
        assert!(q.matches_start(at("2025-09-21T23:59:00Z")));
        assert!(!q.matches_start(at("2025-09-22T00:00:00Z")));
        assert!(!q.matches_start(at("2025-09-19T12:00:00Z")));
    }

    #[test]
    fn malformed_or_unsupported_start_values_are_refused() {
        let cases: &[(&str, IssueCode)] = &[
            ("2025-9-20", IssueCode::Invalid),
            ("2025-02-30", IssueCode::Invalid),
            ("ge20250920", IssueCode::Invalid),
            ("ge2025-09-20T9:00", IssueCode::Invalid),
            ("ge2025-09-20T25:00", IssueCode::Invalid),
            ("ge2025-09-20T09:00:00+2", IssueCode::Invalid),
            ("ge2025-09-20T09:00:00+15:00", IssueCode::Invalid),
            ("xx2025-09-20", IssueCode::Invalid),
            ("tomorrow", IssueCode::Invalid),
            ("ne2025-09-20", IssueCode::NotSupported),
            ("ap2025-09-20", IssueCode::NotSupported),
            ("ge2025-09-20,ge2025-09-21", IssueCode::NotSupported),
        ];
        for (value, code) in cases {
            let issue = refused(&encoded(&[("start", value)]));
            assert_eq!(issue.code, *code, "{value}: {issue:?}");
            assert!(issue.diagnostics.contains("start"), "{value}: {issue:?}");
            assert!(!issue.diagnostics.contains(value), "{value} echoed");
        }
    }

    #[test]
    fn unknown_parameters_and_modifiers_are_refused_by_name() {
        let issue = refused("start=ge2025-09-20&patient=Patient/123");
        assert_eq!(issue.code, IssueCode::NotSupported);
        assert!(issue.diagnostics.contains("`patient`"), "{issue:?}");
        assert!(!issue.diagnostics.contains("123"));

        let issue = refused("start:missing=true");
        assert_eq!(issue.code, IssueCode::NotSupported);
        assert!(issue.diagnostics.contains("modifiers"), "{issue:?}");

        let issue = refused("%3Cscript%3E=1");
        assert!(!issue.diagnostics.contains("<script>"), "{issue:?}");

        // Format parameters and empty values are not search criteria.
        let q = query("_format=json&_pretty=true&start=&status=&schedule.actor=");
        assert_eq!(q, SlotQuery::default());
    }

    #[test]
    fn tokens_actors_and_statuses_are_read() {
        let q = query(&encoded(&[
            ("schedule.actor", "Practitioner/a,Practitioner/b"),
            ("schedule.actor", "Device/c"),
            ("service-type", "http://s|1,http://s|2"),
            ("appointment-type", &format!("{V2_0276}|FOLLOWUP")),
            ("status", "http://hl7.org/fhir/slotstatus|busy,free"),
        ]));
        assert_eq!(q.actors, ["Practitioner/a", "Practitioner/b", "Device/c"]);
        assert_eq!(
            q.service_types,
            [
                Token {
                    system: "http://s".into(),
                    code: "1".into()
                },
                Token {
                    system: "http://s".into(),
                    code: "2".into()
                },
            ]
        );
        assert_eq!(q.appointment_types[0].code, "FOLLOWUP");
        assert_eq!(q.statuses, ["busy", "free"]);
        assert!(q.wants_free());

        for (text, code) in [
            ("service-type=124", IssueCode::Invalid),
            ("appointment-type=http://s|", IssueCode::Invalid),
            ("status=open", IssueCode::Value),
            ("status=http://other|free", IssueCode::Value),
        ] {
            assert_eq!(refused(text).code, code, "{text}");
        }
    }

    #[test]
    fn only_free_slots_in_a_non_empty_window_can_match() {
        assert!(query("start=ge2025-09-20").can_match());
        assert!(!query("start=ge2025-09-20&status=busy").can_match());
        assert!(query("start=ge2025-09-20&status=busy,free").can_match());
        assert!(!query("start=ge2025-09-21&start=lt2025-09-21").can_match());
    }

    fn search(extra: &[(&str, &str)]) -> SlotQuery {
        let mut pairs = vec![
            ("start", "ge2025-09-20"),
            ("start", "lt2025-09-21"),
            ("schedule.actor", "Practitioner/0bSxx0000005JoaxxE"),
        ];
        pairs.extend_from_slice(extra);
        query(&encoded(&pairs))
    }

    fn wire(request: &GetSlotsRequest) -> Value {
        serde_json::to_value(request).unwrap()
    }

    #[test]
    fn a_work_type_rule_picks_work_type_and_channel() {
        let follow_up = format!("{V2_0276}|FOLLOWUP");
        let request =
            slots_request(&search(&[("appointment-type", &follow_up)]), &example()).unwrap();
        assert_eq!(
            wire(&request),
            json!({
                "startDate": "2025-09-20T00:00:00.000Z",
                "endDate": "2025-09-21T00:00:00.000Z",
                "resources": [{"resourceId": PRACTITIONER, "resourceType": "Provider"}],
                "workTypeId": WORK_TYPE,
                "channelId": CHANNEL
            })
        );
    }

    #[test]
    fn without_a_work_type_codes_go_out_translated_with_the_source_system() {
        let general = format!("{SERVICE_TYPE}|124");
        let walk_in = format!("{V2_0276}|WALKIN");
        let request = slots_request(
            &search(&[("service-type", &general), ("appointment-type", &walk_in)]),
            &example(),
        )
        .unwrap();
        assert_eq!(request.work_type_id, None);
        assert_eq!(request.service_types, ["GENERAL_PRACTICE"]);
        assert_eq!(request.appointment_types, ["WALK_IN"]);
        assert_eq!(request.source_system.as_deref(), Some("cerner"));
        assert_eq!(request.channel_id.as_deref(), Some(CHANNEL));
    }

    #[test]
    fn actors_resolve_like_participants() {
        let mapping = Mapping::from_toml(
            &format!(
                "[defaults]\nsource_system = \"ehr\"\n[work_types]\ndefault = \"{WORK_TYPE}\"\n\
                 [[ids.table]]\nreference = \"PractitionerRole/dr-who\"\nsalesforce_id = \"{PRACTITIONER}\"\n"
            ),
            "t.toml",
        )
        .unwrap();
        let request = slots_request(
            &query(&encoded(&[
                ("start", "ge2025-09-20T09:00:00Z"),
                (
                    "schedule.actor",
                    "https://ehr.example/fhir/PractitionerRole/dr-who",
                ),
                ("schedule.actor", &format!("Device/{DEVICE}")),
                // The same provider twice is asked for once.
                ("schedule.actor", &format!("Practitioner/{PRACTITIONER}")),
            ])),
            &mapping,
        )
        .unwrap();
        assert_eq!(
            wire(&request),
            json!({
                "startDate": "2025-09-20T09:00:00.000Z",
                "resources": [
                    {"resourceId": PRACTITIONER, "resourceType": "Provider"},
                    {"resourceId": DEVICE, "resourceType": "Asset"}
                ],
                "workTypeId": WORK_TYPE
            })
        );
    }

    #[test]
    fn schedules_name_salesforce_resources_and_categories_pick_work_types_or_codes() {
        const CATEGORY: &str = "http://terminology.hl7.org/CodeSystem/service-category";
        let mapping = Mapping::from_toml(
            &format!(
                "[defaults]\nsource_system = \"ehr\"\n\
                 [codes.service_category]\nsystems = [\"{CATEGORY}\"]\ntranslate = {{ \"17\" = \"GP\" }}\n\
                 [[work_types.rule]]\nelement = \"serviceCategory\"\nsystem = \"{CATEGORY}\"\ncode = \"35\"\n\
                 work_type_id = \"{WORK_TYPE}\"\n"
            ),
            "t.toml",
        )
        .unwrap();
        let by_code = slots_request(
            &query(&encoded(&[
                ("start", "ge2025-09-20"),
                (
                    "schedule",
                    &format!("Schedule/{PRACTITIONER},Schedule/{DEVICE}"),
                ),
                // The same resource named twice is asked for once.
                (
                    "schedule",
                    &format!("https://p.example/fhir/Schedule/{PRACTITIONER}"),
                ),
                ("service-category", &format!("{CATEGORY}|17")),
            ])),
            &mapping,
        )
        .unwrap();
        assert_eq!(
            wire(&by_code),
            json!({
                "startDate": "2025-09-20T00:00:00.000Z",
                "resources": [{"resourceId": PRACTITIONER}, {"resourceId": DEVICE}],
                "serviceCategories": ["GP"],
                "sourceSystem": "ehr"
            })
        );

        let by_rule = slots_request(
            &query(&encoded(&[
                ("start", "ge2025-09-20"),
                ("schedule", &format!("Schedule/{PRACTITIONER}")),
                ("service-category", &format!("{CATEGORY}|35")),
            ])),
            &mapping,
        )
        .unwrap();
        assert_eq!(by_rule.work_type_id.as_deref(), Some(WORK_TYPE));

        for bad in [
            "Schedule/not-a-salesforce-id",
            &format!("Practitioner/{PRACTITIONER}"),
        ] {
            let found = problems(
                &query(&encoded(&[("start", "ge2025-09-20"), ("schedule", bad)])),
                &mapping,
            );
            assert_eq!(found[0].0, IssueCode::Invalid, "{bad}: {found:?}");
            assert!(found[0].1.contains("schedule value 1"), "{found:?}");
            assert!(!found[0].1.contains("not-a-salesforce-id"));
        }
    }

    fn problems(query: &SlotQuery, mapping: &Mapping) -> Vec<(IssueCode, String)> {
        slots_request(query, mapping)
            .expect_err("the mapping should fail")
            .into_iter()
            .map(|i| {
                assert_eq!(i.expression, None, "search issues name parameters");
                (i.code, i.diagnostics)
            })
            .collect()
    }

    #[test]
    fn every_problem_is_reported_naming_the_parameter_not_the_value() {
        let follow_up = format!("{V2_0276}|FOLLOWUP");
        let found = problems(
            &query(&encoded(&[
                ("start", "lt2025-09-21"),
                ("schedule.actor", "Practitioner/secret-doctor-42"),
                ("schedule.actor", "Location/001xx000012udqhxxA"),
                ("schedule.actor", "secret-doctor-43"),
                ("appointment-type", &follow_up),
            ])),
            &example(),
        );
        let codes: Vec<IssueCode> = found.iter().map(|(c, _)| *c).collect();
        assert_eq!(
            codes,
            [
                IssueCode::Required,
                IssueCode::NotFound,
                IssueCode::NotSupported,
                IssueCode::Invalid
            ]
        );
        assert!(found[0].1.contains("start"));
        assert!(
            found[1].1.contains("schedule.actor value 1"),
            "{}",
            found[1].1
        );
        assert!(found[2].1.contains("Location"), "{}", found[2].1);
        assert!(
            found[3].1.contains("schedule.actor value 3"),
            "{}",
            found[3].1
        );
        for (_, diagnostics) in &found {
            assert!(!diagnostics.contains("secret"), "{diagnostics}");
        }

        // No visit code is no problem (Get Slots does not need one); no actor is.
        let found = problems(&query("start=ge2025-09-20"), &example());
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].0, IssueCode::Required);
        assert!(found[0].1.contains("schedule.actor"));
    }

    #[test]
    fn rejected_codes_and_a_missing_source_system_are_business_problems() {
        let mapping = Mapping::from_toml(
            &format!(
                "[codes.service_type]\nsystems = [\"{SERVICE_TYPE}\"]\nunmapped = \"reject\"\n"
            ),
            "t.toml",
        )
        .unwrap();
        let found = problems(
            &search(&[("service-type", &format!("{SERVICE_TYPE}|999"))]),
            &mapping,
        );
        let codes: Vec<IssueCode> = found.iter().map(|(c, _)| *c).collect();
        assert_eq!(codes, [IssueCode::CodeInvalid, IssueCode::BusinessRule]);
        assert!(found[0].1.contains("service-type"), "{}", found[0].1);
        assert!(!found[0].1.contains("999"));
        assert!(found[1].1.contains("defaults.source_system"));
    }

    #[test]
    fn a_search_by_start_and_practitioner_alone_sends_the_source_system() {
        // What Salesforce requires and nothing more: a start, and a sourceSystem for want of a
        // work type. The example mapping has a default work type; this one has none.
        let mapping =
            Mapping::from_toml("[defaults]\nsource_system = \"cerner\"\n", "t.toml").unwrap();
        let request = slots_request(
            &query(&format!(
                "start=ge2025-09-20&schedule.actor=Practitioner/{PRACTITIONER}"
            )),
            &mapping,
        )
        .unwrap();
        assert_eq!(request.work_type_id, None);
        assert_eq!(request.source_system.as_deref(), Some("cerner"));
        assert!(request.service_types.is_empty() && request.appointment_types.is_empty());
    }

    fn answer(resource_id: &str, slots: &[(&str, &str, &str)]) -> ResourceSlots {
        ResourceSlots {
            resource_id: resource_id.to_owned(),
            slots: slots
                .iter()
                .map(|(id, start, end)| AvailableSlot {
                    slot_id: (*id).to_owned(),
                    slot_start_date: (*start).to_owned(),
                    slot_end_date: (*end).to_owned(),
                    source_system: None,
                })
                .collect(),
        }
    }

    fn bundle_json(bundle: &Bundle) -> Value {
        serde_json::from_slice(&fhirbolt::json::to_vec(bundle, None).unwrap()).unwrap()
    }

    #[test]
    fn the_bundle_holds_one_free_slot_per_answer_slot() {
        let q = search(&[]);
        let request = GetSlotsRequest {
            resources: vec![SlotResource {
                resource_id: PRACTITIONER.into(),
                resource_type: Some("Provider".into()),
            }],
            ..Default::default()
        };
        let slots = [answer(
            PRACTITIONER,
            &[
                (
                    "0bSxx0000005JoaxxE-20250920T0900",
                    "2025-09-20T09:00:00Z",
                    "2025-09-20T09:30:00Z",
                ),
                // The Action page's zone-less spelling, read as UTC.
                (
                    "ce5b28b6-7c1d",
                    "2025-09-20T09:30:00.000",
                    "2025-09-20T10:00:00.000",
                ),
                // Not a FHIR id: a minted id, the slotId in the identifier.
                (
                    "slot/with spaces",
                    "2025-09-20T12:00:00+02:00",
                    "2025-09-20T12:30:00+02:00",
                ),
                // Before the FHIR window: Salesforce's window can be wider.
                ("early", "2025-09-19T16:30:00Z", "2025-09-19T17:00:00Z"),
            ],
        )];
        let bundle = search_bundle(
            &slots,
            &request,
            &q,
            "https://p.example/fhir",
            "https://p.example/fhir/Slot?x",
        );
        let value = bundle_json(&bundle);
        assert_eq!(value["type"], "searchset");
        assert_eq!(value["total"], 3);
        assert_eq!(
            value["link"],
            json!([{"relation": "self", "url": "https://p.example/fhir/Slot?x"}])
        );
        let entries = value["entry"].as_array().unwrap();
        assert_eq!(entries.len(), 3);
        assert_eq!(
            entries[0],
            json!({
                "fullUrl": "https://p.example/fhir/Slot/0bSxx0000005JoaxxE-20250920T0900",
                "resource": {
                    "resourceType": "Slot",
                    "id": "0bSxx0000005JoaxxE-20250920T0900",
                    "identifier": [{"system": SLOT_IDENTIFIER_SYSTEM, "value": "0bSxx0000005JoaxxE-20250920T0900"}],
                    "schedule": {
                        "reference": "Schedule/0bSxx0000005JoaxxE",
                        "display": "Salesforce provider (Healthcare Practitioner Facility)"
                    },
                    "status": "free",
                    "start": "2025-09-20T09:00:00Z",
                    "end": "2025-09-20T09:30:00Z"
                },
                "search": {"mode": "match"}
            })
        );
        assert_eq!(entries[1]["resource"]["start"], "2025-09-20T09:30:00Z");
        let minted = entries[2]["resource"]["id"].as_str().unwrap();
        assert!(minted.starts_with("sf-") && is_fhir_id(minted), "{minted}");
        assert_eq!(fhir_id("slot/with spaces"), minted, "stable");
        assert_eq!(
            entries[2]["resource"]["identifier"][0]["value"],
            "slot/with spaces"
        );
        assert_eq!(entries[2]["resource"]["start"], "2025-09-20T10:00:00Z");
        assert_eq!(
            entries[2]["fullUrl"],
            format!("https://p.example/fhir/Slot/{minted}")
        );

        // The Bundle is valid R4 in both formats.
        let strict = Some(fhirbolt::serde::DeserializationConfig {
            mode: fhirbolt::serde::DeserializationMode::Strict,
        });
        let xml = fhirbolt::xml::to_vec(&bundle, None).unwrap();
        let back: Bundle = fhirbolt::xml::from_slice(&xml, strict).unwrap();
        assert_eq!(back, bundle);
    }

    #[test]
    fn unreadable_slots_are_left_out_and_reported_in_an_outcome_entry() {
        let slots = [answer(
            "r",
            &[
                ("a", "2025-09-20T09:00:00Z", "2025-09-20T09:30:00Z"),
                ("b", "soon", "2025-09-20T10:00:00Z"),
            ],
        )];
        let value = bundle_json(&search_bundle(
            &slots,
            &GetSlotsRequest::default(),
            &search(&[]),
            "b",
            "b/Slot",
        ));
        assert_eq!(value["total"], 1);
        assert_eq!(
            value["entry"][0]["resource"]["schedule"]["display"],
            "Salesforce resource"
        );
        assert_eq!(value["entry"][1]["search"]["mode"], "outcome");
        assert_eq!(
            value["entry"][1]["resource"]["issue"][0]["severity"],
            "warning"
        );
        assert!(!value.to_string().contains("soon"));
    }

    #[test]
    fn an_empty_answer_is_an_empty_searchset() {
        let value = bundle_json(&search_bundle(
            &[],
            &GetSlotsRequest::default(),
            &search(&[]),
            "b",
            "b/Slot",
        ));
        assert_eq!(value["type"], "searchset");
        assert_eq!(value["total"], 0);
        assert!(value.get("entry").is_none());
    }
}
