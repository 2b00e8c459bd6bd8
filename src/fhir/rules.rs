//! The R4 Appointment rules fhirbolt does not check.
//!
//! fhirbolt checks the shape of a resource (element names and primitive types) but no
//! cardinalities, value sets, invariants or primitive formats. This module checks the ones that
//! matter for booking, against the R4 (4.0.1) StructureDefinition:
//! - `status` 1..1 from AppointmentStatus; `participant` 1..*; each participant's `status` 1..1
//!   from ParticipationStatus and `required` from ParticipantRequired (all required bindings);
//! - invariants app-1 … app-4 (app-4 with the intended `noshow` code, see [`check_appointment`]);
//! - the actor reference's target type;
//! - `instant` format for `start`, `end` and `meta.lastUpdated`; `positiveInt` and `unsignedInt`
//!   ranges; no empty strings.
//!
//! It returns every problem at once, each with an exact FHIRPath `expression`. Diagnostics name
//! the rule and the element, never the value (values can be patient data); the only exception is
//! a code from a required value set, echoed when it is a short plain token, since seeing the
//! rejected code is what lets a sender fix it.

use chrono::{DateTime, FixedOffset};
use fhirbolt::model::r4::resources::{Appointment, AppointmentParticipant};
use fhirbolt::model::r4::types::{Code, Instant, Reference};

use crate::fhir::APPOINTMENT_STATUSES;
use crate::fhir::outcome::{Issue, IssueCode};

/// The R4 ParticipationStatus codes (required binding on `participant.status`).
pub const PARTICIPATION_STATUSES: [&str; 4] = ["accepted", "declined", "tentative", "needs-action"];

/// The R4 ParticipantRequired codes (required binding on `participant.required`).
pub const PARTICIPANT_REQUIRED: [&str; 3] = ["required", "optional", "information-only"];

/// The resource types `participant.actor` may reference in R4.
pub const ACTOR_TYPES: [&str; 7] = [
    "Patient",
    "Practitioner",
    "PractitionerRole",
    "RelatedPerson",
    "Device",
    "HealthcareService",
    "Location",
];

/// app-3: the statuses that may omit start and end. The human text says "proposed or cancelled",
/// the expression also allows waitlist; the expression is normative.
const STATUSES_WITHOUT_TIMES: [&str; 3] = ["proposed", "cancelled", "waitlist"];

/// app-4: the statuses that may carry a cancelationReason, with the code spelled as the
/// AppointmentStatus code system spells it (see [`check_appointment`]).
const STATUSES_WITH_CANCELATION_REASON: [&str; 2] = ["noshow", "cancelled"];

/// The upper bound of R4 `positiveInt` and `unsignedInt` (fhirbolt stores them as `u32`).
const MAX_FHIR_INT: u32 = i32::MAX as u32;

/// Deliberate, opt-in deviations from R4.
#[derive(Debug, Clone, Copy, Default)]
pub struct RuleOptions {
    /// When true, app-2 (and app-3) accept an appointment with `start` and `minutesDuration` but
    /// no `end`: the mapping computes `end = start + minutesDuration`. For senders that omit
    /// `end`; strict R4 rejects them.
    pub allow_end_from_duration: bool,
}

/// Checks an Appointment against the R4 rules fhirbolt does not enforce. Returns every issue found
/// (empty means valid); each carries a FHIRPath `expression` such as
/// `Appointment.participant[1].status`.
///
/// Decisions worth knowing:
/// - **app-4 uses `noshow`.** The published R4 expression tests `status='no-show'`, a code that does
///   not exist, so a literal evaluator rejects every no-show appointment that has a cancelation
///   reason. This is a known bug in the R4 spec (medplum #4444, LinuxForHealth/FHIR #4224), fixed
///   the same way by other servers.
/// - A primitive "exists" here when it has a value: an element carrying only extensions (say a
///   data-absent-reason) gives nothing to book with, so app-2/app-3 treat it as absent.
/// - app-3 and app-4 are only evaluated when `status` has a value; a missing status is reported
///   once, as missing.
pub fn check_appointment(appointment: &Appointment, options: &RuleOptions) -> Vec<Issue> {
    let mut issues = Vec::new();

    let status = check_code(
        &mut issues,
        Some(&appointment.status),
        "Appointment.status",
        "AppointmentStatus",
        &APPOINTMENT_STATUSES,
        true,
    );

    if appointment.participant.is_empty() {
        issues.push(Issue::at(
            IssueCode::Required,
            "Appointment.participant",
            "Appointment.participant is required: an appointment has at least one participant (1..*)",
        ));
    }
    for (index, participant) in appointment.participant.iter().enumerate() {
        check_participant(&mut issues, index, participant);
    }

    let start = check_instant(&mut issues, appointment.start.as_ref(), "Appointment.start");
    let end = check_instant(&mut issues, appointment.end.as_ref(), "Appointment.end");
    let last_updated = appointment
        .meta
        .as_ref()
        .and_then(|meta| meta.last_updated.as_ref());
    check_instant(&mut issues, last_updated, "Appointment.meta.lastUpdated");

    let duration = appointment.minutes_duration.as_ref().and_then(|d| d.value);
    if duration.is_some_and(|d| d == 0 || d > MAX_FHIR_INT) {
        issues.push(Issue::at(
            IssueCode::Value,
            "Appointment.minutesDuration",
            "Appointment.minutesDuration must be a positiveInt (1..2147483647)",
        ));
    }
    let priority = appointment.priority.as_ref().and_then(|p| p.value);
    if priority.is_some_and(|p| p > MAX_FHIR_INT) {
        issues.push(Issue::at(
            IssueCode::Value,
            "Appointment.priority",
            "Appointment.priority must be an unsignedInt (0..2147483647)",
        ));
    }

    // The invariants look at presence only: a malformed start is reported above, not again here.
    let end_from_duration = options.allow_end_from_duration
        && start.is_present()
        && !end.is_present()
        && duration.is_some();
    let has_end = end.is_present() || end_from_duration;
    if start.is_present() != has_end {
        let which = if start.is_present() {
            "start is present, end is missing"
        } else {
            "end is present, start is missing"
        };
        issues.push(Issue::at(
            IssueCode::Invariant,
            "Appointment",
            format!("app-2: either start and end are specified, or neither ({which})"),
        ));
    }
    if let Some(status) = status {
        // (start.exists() and end.exists()) or (status in ('proposed' | 'cancelled' | 'waitlist'))
        let has_times = start.is_present() && has_end;
        if !(has_times || STATUSES_WITHOUT_TIMES.contains(&status)) {
            issues.push(Issue::at(
                IssueCode::Invariant,
                "Appointment",
                "app-3: only proposed, cancelled or waitlist appointments can be missing start and end",
            ));
        }
        if appointment.cancelation_reason.is_some()
            && !STATUSES_WITH_CANCELATION_REASON.contains(&status)
        {
            issues.push(Issue::at(
                IssueCode::Invariant,
                "Appointment.cancelationReason",
                "app-4: a cancelation reason is only used for appointments that have been cancelled or are noshow",
            ));
        }
    }

    let strings = [
        (
            "Appointment.description",
            appointment.description.as_ref().map(|s| &s.value),
        ),
        (
            "Appointment.comment",
            appointment.comment.as_ref().map(|s| &s.value),
        ),
        (
            "Appointment.patientInstruction",
            appointment.patient_instruction.as_ref().map(|s| &s.value),
        ),
    ];
    for (expression, value) in strings {
        if value.is_some_and(|v| v.as_deref() == Some("")) {
            issues.push(empty(expression));
        }
    }

    issues
}

/// Parses an R4 `instant`: `YYYY-MM-DDThh:mm:ss(.fraction)?(Z|(+|-)hh:mm)`, a real calendar date
/// and time, with a zone. A date alone, a time without a zone or a lower-case `t`/`z` is not an
/// instant.
pub fn parse_instant(value: &str) -> Option<DateTime<FixedOffset>> {
    if !has_instant_shape(value.as_bytes()) {
        return None;
    }
    // The shape is the R4 regex; chrono then rejects impossible dates and times (Feb 30, 24:00).
    DateTime::parse_from_rfc3339(value).ok()
}

/// The R4 instant regex, minus the calendar checks chrono does.
fn has_instant_shape(b: &[u8]) -> bool {
    let digits = |from: usize, to: usize| {
        b.get(from..to)
            .is_some_and(|d| d.iter().all(u8::is_ascii_digit))
    };
    let at = |i: usize, c: u8| b.get(i) == Some(&c);
    let date_time = digits(0, 4)
        && at(4, b'-')
        && digits(5, 7)
        && at(7, b'-')
        && digits(8, 10)
        && at(10, b'T')
        && digits(11, 13)
        && at(13, b':')
        && digits(14, 16)
        && at(16, b':')
        && digits(17, 19);
    // Year 0000 does not exist in the R4 regex.
    if !date_time || &b[0..4] == b"0000" {
        return false;
    }
    let mut rest = &b[19..];
    if let Some(fraction) = rest.strip_prefix(b".") {
        let len = fraction.iter().take_while(|c| c.is_ascii_digit()).count();
        if len == 0 {
            return false;
        }
        rest = &fraction[len..];
    }
    match rest {
        b"Z" => true,
        [b'+' | b'-', h1, h2, b':', m1, m2]
            if [h1, h2, m1, m2].iter().all(|d| d.is_ascii_digit()) =>
        {
            let hours = (h1 - b'0') * 10 + (h2 - b'0');
            let minutes = (m1 - b'0') * 10 + (m2 - b'0');
            // R4 offsets run from -14:00 to +14:00.
            minutes < 60 && (hours < 14 || (hours == 14 && minutes == 0))
        }
        _ => false,
    }
}

/// What an instant element held, as far as the invariants care.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Presence {
    Absent,
    Present,
}

impl Presence {
    fn is_present(self) -> bool {
        self == Presence::Present
    }
}

fn check_instant(issues: &mut Vec<Issue>, element: Option<&Instant>, expression: &str) -> Presence {
    match element.and_then(|e| e.value.as_deref()) {
        None => Presence::Absent,
        Some("") => {
            issues.push(empty(expression));
            Presence::Present
        }
        Some(value) => {
            if parse_instant(value).is_none() {
                issues.push(Issue::at(
                    IssueCode::Value,
                    expression,
                    format!(
                        "{expression} is not a valid instant: R4 needs a real date and time to the \
                         second with a time zone, YYYY-MM-DDThh:mm:ss[.fff](Z|+hh:mm|-hh:mm)"
                    ),
                ));
            }
            Presence::Present
        }
    }
}

fn check_participant(issues: &mut Vec<Issue>, index: usize, participant: &AppointmentParticipant) {
    let path = format!("Appointment.participant[{index}]");
    check_code(
        issues,
        Some(&participant.status),
        &format!("{path}.status"),
        "ParticipationStatus",
        &PARTICIPATION_STATUSES,
        true,
    );
    check_code(
        issues,
        participant.required.as_ref(),
        &format!("{path}.required"),
        "ParticipantRequired",
        &PARTICIPANT_REQUIRED,
        false,
    );
    if participant.r#type.is_empty() && participant.actor.is_none() {
        issues.push(Issue::at(
            IssueCode::Invariant,
            path.as_str(),
            format!("app-1: either the type or actor on {path} SHALL be specified"),
        ));
    }
    if let Some(actor) = participant.actor.as_deref() {
        check_actor(issues, &path, actor);
    }
}

fn check_actor(issues: &mut Vec<Issue>, participant_path: &str, actor: &Reference) {
    let expression = format!("{participant_path}.actor");
    let reference = actor.reference.as_ref().and_then(|r| r.value.as_deref());
    let declared = actor.r#type.as_ref().and_then(|t| t.value.as_deref());
    if reference == Some("") {
        issues.push(empty(&format!("{expression}.reference")));
    }
    if declared == Some("") {
        issues.push(empty(&format!("{expression}.type")));
    }
    // Both places can name the target type; either one naming a type outside the list is wrong.
    // Neither is echoed: a "type" segment is whatever the sender wrote, which need not be a type.
    let targets = [
        reference.and_then(reference_target_type),
        declared.and_then(declared_target_type),
    ];
    if targets
        .iter()
        .flatten()
        .any(|target| !ACTOR_TYPES.contains(target))
    {
        issues.push(Issue::at(
            IssueCode::Value,
            expression.as_str(),
            format!(
                "{expression} references a resource type that is not allowed; a participant's \
                 actor is a {}",
                ACTOR_TYPES.join(" | ")
            ),
        ));
    }
}

/// The target type of a literal reference, when it can be read: `Type/id`,
/// `Type/id/_history/vid`, or an absolute URL ending in either. Contained (`#id`), `urn:` and
/// conditional references name no type.
fn reference_target_type(reference: &str) -> Option<&str> {
    if reference.starts_with('#') || reference.starts_with("urn:") {
        return None;
    }
    let path = reference.split(['?', '#']).next()?;
    let segments: Vec<&str> = path.split('/').collect();
    let n = segments.len();
    let (kind, id) = if n >= 4 && segments[n - 2] == "_history" {
        (segments[n - 4], segments[n - 3])
    } else if n >= 2 {
        (segments[n - 2], segments[n - 1])
    } else {
        return None;
    };
    (is_type_name(kind) && is_id(id)).then_some(kind)
}

/// The target type in `Reference.type`: a type name, or the canonical URL of a core resource.
/// Other URLs name logical models and are left alone.
fn declared_target_type(declared: &str) -> Option<&str> {
    let name = declared
        .strip_prefix("http://hl7.org/fhir/StructureDefinition/")
        .unwrap_or(declared);
    is_type_name(name).then_some(name)
}

fn is_type_name(name: &str) -> bool {
    name.len() <= 64
        && name.starts_with(|c: char| c.is_ascii_uppercase())
        && name.bytes().all(|b| b.is_ascii_alphabetic())
}

/// The R4 `id` regex: `[A-Za-z0-9\-\.]{1,64}`.
fn is_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
}

/// Checks a code bound to a required value set. Returns the code when it has a non-empty value
/// (valid or not), so callers can evaluate invariants on it.
fn check_code<'a>(
    issues: &mut Vec<Issue>,
    code: Option<&'a Code>,
    expression: &str,
    value_set: &str,
    allowed: &[&str],
    required: bool,
) -> Option<&'a str> {
    match code.and_then(|c| c.value.as_deref()) {
        None => {
            if required {
                issues.push(Issue::at(
                    IssueCode::Required,
                    expression,
                    format!("{expression} is required (1..1)"),
                ));
            }
            None
        }
        Some("") => {
            issues.push(empty(expression));
            None
        }
        Some(value) => {
            if !allowed.contains(&value) {
                let hint = if value == "no-show" {
                    " (R4 spells it noshow)"
                } else {
                    ""
                };
                issues.push(Issue::at(
                    IssueCode::CodeInvalid,
                    expression,
                    format!(
                        "{expression} has {}, which is not in the R4 {value_set} value set ({}){hint}",
                        describe_code(value),
                        allowed.join(" | ")
                    ),
                ));
            }
            Some(value)
        }
    }
}

/// A rejected code for a diagnostic: echoed only when it is a short plain token, which a code
/// from these value sets always is; anything else may be free text.
fn describe_code(value: &str) -> String {
    let plain = value.len() <= 64
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-');
    if plain {
        format!("the code `{value}`")
    } else {
        "an unknown code".to_string()
    }
}

fn empty(expression: &str) -> Issue {
    Issue::at(
        IssueCode::Value,
        expression,
        format!(
            "{expression} is empty: R4 strings and codes are never empty; leave the element out instead"
        ),
    )
}

#[cfg(test)]
mod tests;
