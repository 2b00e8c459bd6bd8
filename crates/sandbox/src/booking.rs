//! The sandbox's reading of a Book or Update Appointment body: the documented rules of
//! `salesforce-api.md` §1.2–1.3 and §2.1, applied strictly so that a proxy bug shows up here
//! rather than against a real org.
//!
//! Two stages, like Salesforce's own: the JSON parser first (not JSON, not an object, a field it
//! does not know: `JSON_PARSER_ERROR`, first problem only, since a parser stops there), then the
//! business rules, which collect every violation (`INVALID_INPUT`, `MALFORMED_ID`).
//!
//! Update is Book plus `id` with `endDate` required (§2.1), so both go through [`validate`]; the
//! parser stage and the small rule helpers are shared with Cancel (`cancel`) and Get Slots
//! (`slots`), so the three resources word the same mistake the same way.

use chrono::{DateTime, FixedOffset};
use serde_json::{Map, Value};

use crate::id::is_record_id;
use crate::platform::PlatformError;

/// Error code for a body the JSON parser refuses.
pub(super) const JSON_PARSER_ERROR: &str = "JSON_PARSER_ERROR";
/// Error code for a business-rule violation.
pub(super) const INVALID_INPUT: &str = "INVALID_INPUT";
/// Error code for a value that should be a Salesforce id but is not.
pub(super) const MALFORMED_ID: &str = "MALFORMED_ID";

/// Every field of the Book Appointment request on either documentation page (§1.2).
const BOOK_FIELDS: &[&str] = &[
    "appointmentTypes",
    "channelId",
    "comment",
    "description",
    "endDate",
    "participants",
    "serviceCategories",
    "serviceTypes",
    "slots",
    "sourceSystem",
    "specialties",
    "startDate",
    "timeZone",
    "workTypeId",
];
/// What Update adds to Book's fields: the appointment's id, "part of the request URL" (§2.1).
const UPDATE_ONLY_FIELDS: &[&str] = &["id"];
const PARTICIPANT_FIELDS: &[&str] = &["reference", "isReferenceRequired"];
const SLOT_FIELDS: &[&str] = &["id", "reference"];
const NESTED_FIELDS: &[(&str, &[&str])] =
    &[("participants", PARTICIPANT_FIELDS), ("slots", SLOT_FIELDS)];
/// The code lists that the Connect page types as "An array of strings." (§1.3).
const CODE_LISTS: [&str; 4] = [
    "appointmentTypes",
    "serviceTypes",
    "serviceCategories",
    "specialties",
];
const PARTICIPANT_KINDS: [&str; 4] = ["Patient", "Facility", "Practitioner", "Device"];
/// "Maximum length is 256 characters." (Action page).
const MAX_COMMENT_CHARS: usize = 256;

/// Which request a body is read as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Action<'a> {
    /// Book Appointment (`POST …/appointment`).
    Book,
    /// Update Appointment (`PUT …/appointment/{url_id}`): Book's fields plus `id`, which must
    /// equal `url_id`, and `endDate` becomes required.
    Update {
        /// The appointment id in the request URL, as sent.
        url_id: &'a str,
    },
}

/// A body that passed every rule.
#[derive(Debug)]
pub(super) struct ValidBooking {
    /// The request as sent, kept for [`super::Booking`] and [`super::StoredAppointment`].
    pub request: Value,
    /// The `slots[].id` values, to check and mark as taken.
    pub slot_ids: Vec<String>,
}

/// Checks a Book or Update Appointment body. On refusal, returns the platform errors to answer
/// 400 with.
pub(super) fn validate(
    body: &[u8],
    action: Action<'_>,
) -> Result<ValidBooking, Vec<PlatformError>> {
    let url_id = match action {
        Action::Book => None,
        Action::Update { url_id } => Some(url_id),
    };
    let known: &[&[&str]] = if url_id.is_some() {
        &[BOOK_FIELDS, UPDATE_ONLY_FIELDS]
    } else {
        &[BOOK_FIELDS]
    };
    let map = parse_object(body, known, NESTED_FIELDS)?;
    let object = &map;

    let mut errors = Vec::new();
    if let Some(url_id) = url_id {
        // First: a body for another appointment is the most telling mistake.
        check_url_id(object, url_id, &mut errors);
    }
    // The Connect Update page marks endDate "Required"; Book's pages disagree, so Book keeps the
    // lenient reading (§1.2, §2.1).
    check_dates(object, url_id.is_some(), &mut errors);
    check_participants(object, &mut errors);
    let work_type = check_id(object, "workTypeId", &mut errors);
    check_id(object, "channelId", &mut errors);
    let mut codes_given = [false; CODE_LISTS.len()];
    for (given, name) in codes_given.iter_mut().zip(CODE_LISTS) {
        *given = check_code_list(object, name, &mut errors);
    }
    // specialties (the last list) narrows a search; it does not say what is booked.
    let source_system = check_string(object, "sourceSystem", &mut errors);
    require_service(
        work_type,
        codes_given[..3].iter().any(|g| *g),
        source_system,
        &mut errors,
    );
    if let Some(comment) = check_string(object, "comment", &mut errors) {
        let length = comment.chars().count();
        if length > MAX_COMMENT_CHARS {
            errors.push(invalid(
                "comment",
                format!("comment is {length} characters long; the maximum is {MAX_COMMENT_CHARS}"),
            ));
        }
    }
    check_string(object, "description", &mut errors);
    check_string(object, "timeZone", &mut errors);
    let slot_ids = check_slots(object, &mut errors);

    if errors.is_empty() {
        Ok(ValidBooking {
            request: Value::Object(map),
            slot_ids,
        })
    } else {
        Err(errors)
    }
}

/// The parser stage: the body must be a JSON object whose fields are all in one of the `known`
/// lists, and whose `nested` arrays (`(field, known fields of its elements)`) hold objects with
/// known fields only. Returns the body's object, or the first parser error.
pub(super) fn parse_object(
    body: &[u8],
    known: &[&[&str]],
    nested: &[(&str, &[&str])],
) -> Result<Map<String, Value>, Vec<PlatformError>> {
    let request: Value = serde_json::from_slice(body)
        .map_err(|e| vec![parser_error(format!("Invalid JSON body: {e}"))])?;
    let Value::Object(object) = request else {
        return Err(vec![parser_error(
            "Expected a JSON object at the top level of the request body".to_owned(),
        )]);
    };
    if let Some(error) = unrecognized_field(&object, known, nested) {
        return Err(vec![error]);
    }
    Ok(object)
}

/// The rule shared by Book, Update and Get Slots on what is asked for: a `workTypeId`, or codes
/// (`appointmentTypes`, `serviceTypes`, `serviceCategories`) together with the `sourceSystem`
/// they come from. `work_type` and `codes` say whether each was given at all.
pub(super) fn require_service(
    work_type: bool,
    codes: bool,
    source_system: Option<&str>,
    errors: &mut Vec<PlatformError>,
) {
    if !work_type && !codes {
        errors.push(PlatformError {
            message: "One of workTypeId, appointmentTypes, serviceTypes or serviceCategories \
                      is required"
                .to_owned(),
            error_code: INVALID_INPUT.to_owned(),
            fields: [
                "workTypeId",
                "appointmentTypes",
                "serviceTypes",
                "serviceCategories",
            ]
            .map(str::to_owned)
            .to_vec(),
        });
    }
    require_source_system(work_type, source_system, errors);
}

/// `sourceSystem` "Required, if workTypeId is not provided" (Book §1.2 and Get Slots §2.3 alike).
pub(super) fn require_source_system(
    work_type: bool,
    source_system: Option<&str>,
    errors: &mut Vec<PlatformError>,
) {
    if !work_type && source_system.is_none_or(str::is_empty) {
        errors.push(invalid(
            "sourceSystem",
            "sourceSystem is required when workTypeId is not provided".to_owned(),
        ));
    }
}

/// `id` in an Update or Cancel body: required, and the very id of the URL (compared exactly, as
/// sent: a body meant for another appointment must not change this one).
pub(super) fn check_url_id(
    object: &Map<String, Value>,
    url_id: &str,
    errors: &mut Vec<PlatformError>,
) {
    match field(object, "id") {
        None => errors.push(invalid(
            "id",
            format!("id is required and must equal the appointment id in the URL, \"{url_id}\""),
        )),
        Some(Value::String(id)) if id == url_id => {}
        Some(Value::String(id)) => errors.push(invalid(
            "id",
            format!("id \"{id}\" does not match the appointment id in the URL, \"{url_id}\""),
        )),
        Some(other) => errors.push(invalid(
            "id",
            format!("id must be a string; got {}", type_name(other)),
        )),
    }
}

fn parser_error(message: String) -> PlatformError {
    PlatformError {
        message,
        error_code: JSON_PARSER_ERROR.to_owned(),
        fields: Vec::new(),
    }
}

/// An `INVALID_INPUT` violation of `field`.
pub(super) fn invalid(field: &str, message: String) -> PlatformError {
    violation(INVALID_INPUT, field, message)
}

/// A violation with its code, naming `field` in `fields`.
pub(super) fn violation(code: &str, field: &str, message: String) -> PlatformError {
    PlatformError {
        message,
        error_code: code.to_owned(),
        fields: vec![field.to_owned()],
    }
}

/// The first field the parser would not know, at the top level or inside an element of a nested
/// array (Salesforce maps the body onto fixed input classes, so an extra field fails the parse).
fn unrecognized_field(
    object: &Map<String, Value>,
    known: &[&[&str]],
    nested: &[(&str, &[&str])],
) -> Option<PlatformError> {
    let unknown = |map: &Map<String, Value>, at: &str, is_known: &dyn Fn(&str) -> bool| {
        map.keys().find(|k| !is_known(k)).map(|k| {
            parser_error(format!(
                "Unrecognized field \"{k}\"{at}, not marked as ignorable"
            ))
        })
    };
    let top_level = |name: &str| known.iter().any(|list| list.contains(&name));
    if let Some(error) = unknown(object, "", &top_level) {
        return Some(error);
    }
    for (list, element_fields) in nested {
        let Some(Value::Array(items)) = object.get(*list) else {
            continue;
        };
        for (i, item) in items.iter().enumerate() {
            if let Some(map) = item.as_object()
                && let Some(error) = unknown(map, &format!(" in {list}[{i}]"), &|name| {
                    element_fields.contains(&name)
                })
            {
                return Some(error);
            }
        }
    }
    None
}

/// A field's value, with JSON `null` read as absent (as Salesforce's parser does).
pub(super) fn field<'a>(object: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    object.get(name).filter(|v| !v.is_null())
}

/// A short name of a JSON value's type, for messages.
pub(super) fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// An optional string field; a non-string is a violation.
pub(super) fn check_string<'a>(
    object: &'a Map<String, Value>,
    name: &str,
    errors: &mut Vec<PlatformError>,
) -> Option<&'a str> {
    match field(object, name)? {
        Value::String(s) => Some(s),
        other => {
            errors.push(invalid(
                name,
                format!("{name} must be a string; got {}", type_name(other)),
            ));
            None
        }
    }
}

/// ISO-8601 with a zone: Salesforce stores instants, and a zone-less time is ambiguous.
fn parse_date(
    object: &Map<String, Value>,
    name: &str,
    errors: &mut Vec<PlatformError>,
) -> Option<DateTime<FixedOffset>> {
    let text = check_string(object, name, errors)?;
    let parsed = DateTime::parse_from_rfc3339(text).ok();
    if parsed.is_none() {
        errors.push(invalid(
            name,
            format!(
                "{name} must be an ISO-8601 date-time with a time zone, for example \
                 2025-07-21T18:00:00.000Z; got \"{text}\""
            ),
        ));
    }
    parsed
}

/// `startDate` (required), `endDate` (required when `end_required`), and their order.
fn check_dates(object: &Map<String, Value>, end_required: bool, errors: &mut Vec<PlatformError>) {
    let mut date = |name: &str, required: bool| {
        if field(object, name).is_some() {
            parse_date(object, name, errors)
        } else {
            if required {
                errors.push(invalid(name, format!("{name} is required")));
            }
            None
        }
    };
    let start = date("startDate", true);
    let end = date("endDate", end_required);
    if let (Some(start), Some(end)) = (start, end)
        && end <= start
    {
        errors.push(invalid(
            "endDate",
            format!("endDate ({end}) must be after startDate ({start})"),
        ));
    }
}

/// An optional Salesforce id field. Returns whether a value was given at all, so a malformed id
/// does not also count as missing.
pub(super) fn check_id(
    object: &Map<String, Value>,
    name: &str,
    errors: &mut Vec<PlatformError>,
) -> bool {
    let Some(id) = check_string(object, name, errors) else {
        return field(object, name).is_some();
    };
    if !is_record_id(id) {
        errors.push(violation(
            MALFORMED_ID,
            name,
            format!("{name}: \"{id}\" is not a valid Salesforce id (15 or 18 letters and digits)"),
        ));
    }
    true
}

/// An optional array of code strings. Returns whether a non-empty value was given.
pub(super) fn check_code_list(
    object: &Map<String, Value>,
    name: &str,
    errors: &mut Vec<PlatformError>,
) -> bool {
    let Some(value) = field(object, name) else {
        return false;
    };
    let problem = match value {
        Value::Array(items) => items
            .iter()
            .enumerate()
            .find(|(_, item)| !item.is_string())
            .map(|(i, item)| format!("element {i} is {}", type_name(item))),
        other => Some(format!("got {}", type_name(other))),
    };
    if let Some(problem) = problem {
        // Named after the common mistake: sending FHIR-style {code, system} objects.
        errors.push(invalid(
            name,
            format!(
                "{name} must be an array of strings (codes such as \"FOLLOWUP\"); \
                 appointmentTypes, serviceTypes, serviceCategories and specialties are arrays \
                 of strings, not objects: {problem}"
            ),
        ));
    }
    value.as_array().is_none_or(|items| !items.is_empty())
}

/// `participants`: `Kind/id` references, exactly one Patient, at least one Facility, at least one
/// Practitioner or Device (§1.2).
fn check_participants(object: &Map<String, Value>, errors: &mut Vec<PlatformError>) {
    let items = match field(object, "participants") {
        None => {
            errors.push(invalid(
                "participants",
                "participants is required: one Patient, at least one Facility and at least one \
                 Practitioner or Device"
                    .to_owned(),
            ));
            return;
        }
        Some(Value::Array(items)) => items,
        Some(other) => {
            errors.push(invalid(
                "participants",
                format!(
                    "participants must be an array of {{reference, isReferenceRequired}} \
                     objects; got {}",
                    type_name(other)
                ),
            ));
            return;
        }
    };
    let mut counts = [0usize; PARTICIPANT_KINDS.len()];
    for (i, item) in items.iter().enumerate() {
        let Some(map) = item.as_object() else {
            errors.push(invalid(
                "participants",
                format!(
                    "participants[{i}] must be an object with a reference; got {}",
                    type_name(item)
                ),
            ));
            continue;
        };
        if let Some(required) = field(map, "isReferenceRequired")
            && !required.is_boolean()
        {
            errors.push(invalid(
                "participants",
                format!(
                    "participants[{i}].isReferenceRequired must be true or false; got {}",
                    type_name(required)
                ),
            ));
        }
        let Some(reference) = field(map, "reference").and_then(Value::as_str) else {
            errors.push(invalid(
                "participants",
                format!("participants[{i}].reference is required, as a \"Kind/id\" string"),
            ));
            continue;
        };
        let Some((kind, id)) = reference.split_once('/') else {
            errors.push(invalid(
                "participants",
                format!(
                    "participants[{i}].reference must be \"Kind/id\", for example \
                     \"Patient/001xx000012udqQxxQ\"; got \"{reference}\""
                ),
            ));
            continue;
        };
        let Some(k) = PARTICIPANT_KINDS.iter().position(|known| *known == kind) else {
            errors.push(invalid(
                "participants",
                format!(
                    "participants[{i}].reference has unknown kind \"{kind}\"; expected Patient, \
                     Facility, Practitioner or Device"
                ),
            ));
            continue;
        };
        // Counted even with a malformed id, so one bad id is reported once, not twice.
        counts[k] += 1;
        if !is_record_id(id) {
            errors.push(violation(
                MALFORMED_ID,
                "participants",
                format!(
                    "participants[{i}].reference: \"{id}\" is not a valid Salesforce id \
                     (15 or 18 letters and digits)"
                ),
            ));
        }
    }
    let [patients, facilities, practitioners, devices] = counts;
    if patients != 1 {
        errors.push(invalid(
            "participants",
            format!("participants must include exactly one Patient; found {patients}"),
        ));
    }
    if facilities == 0 {
        errors.push(invalid(
            "participants",
            "participants must include at least one Facility".to_owned(),
        ));
    }
    if practitioners + devices == 0 {
        errors.push(invalid(
            "participants",
            "participants must include at least one Practitioner or Device".to_owned(),
        ));
    }
}

/// `slots`: `{id, reference}` strings. Returns the ids of well-formed slots.
fn check_slots(object: &Map<String, Value>, errors: &mut Vec<PlatformError>) -> Vec<String> {
    let items = match field(object, "slots") {
        None => return Vec::new(),
        Some(Value::Array(items)) => items,
        Some(other) => {
            errors.push(invalid(
                "slots",
                format!(
                    "slots must be an array of {{id, reference}} objects; got {}",
                    type_name(other)
                ),
            ));
            return Vec::new();
        }
    };
    let mut ids = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let text = |name| {
            item.get(name)
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
        };
        match (text("id"), text("reference")) {
            (Some(id), Some(_)) => ids.push(id.to_owned()),
            _ => errors.push(invalid(
                "slots",
                format!(
                    "slots[{i}] must be an object with non-empty string id and reference; \
                     got {item}"
                ),
            )),
        }
    }
    ids
}
