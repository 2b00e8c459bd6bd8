//! The sandbox's Get Slots (`salesforce-api.md` §2.3): reading the request and making up an
//! availability.
//!
//! The request is checked like Book's (same parser stage, same rule helpers): `startDate`
//! required, `resources` of `{resourceId, serviceTerritoryId?, serviceResourceId?, resourceType?,
//! assetCategory?}`, and a `sourceSystem` when there is no `workTypeId`. Two departures, both
//! documented Salesforce behaviour rather than leniency: dates may come without a zone (the
//! Action page's own sample, `2025-07-14T00:12:00.7912`, has none) and are then read as UTC; and
//! `specialties`, which Get Slots does not list, is an unknown field.
//!
//! The sandbox has no resource catalogue and no calendars, so `resources` is required here and
//! every resource is open 09:00–17:00 UTC every day, in 30-minute slots. A slot's id is
//! `<resourceId>-<yyyymmddThhmm>` (its start, UTC): deterministic, so a client can find a slot,
//! book it (`slots: [{"id": slotId, "reference": resourceId}]`), and see it gone from the next
//! answer, and see it back once the appointment is cancelled or moved.

use chrono::{DateTime, NaiveDateTime, NaiveTime, TimeDelta, Utc};
use serde::Serialize;
use serde_json::{Map, Value};

use super::booking::{
    MALFORMED_ID, check_code_list, check_id, check_string, field, invalid, parse_object,
    require_source_system, type_name, violation,
};
use crate::id::is_record_id;
use crate::platform::PlatformError;

/// Every field of the Get Slots request (§2.3).
const SLOTS_FIELDS: &[&str] = &[
    "appointmentTypes",
    "channelId",
    "endDate",
    "resources",
    "serviceCategories",
    "serviceTypes",
    "sourceSystem",
    "startDate",
    "workTypeId",
];
/// The Resources Input fields, spelled as the samples spell them (the property table's
/// `assestCategory` is a typo no sample uses).
const RESOURCE_FIELDS: &[&str] = &[
    "resourceId",
    "serviceTerritoryId",
    "serviceResourceId",
    "resourceType",
    "assetCategory",
];
/// The code lists that filter the slots (with `sourceSystem` naming their code sets).
const CODE_LISTS: [&str; 3] = ["appointmentTypes", "serviceTypes", "serviceCategories"];

/// Every slot lasts this long.
pub(super) const SLOT_MINUTES: i64 = 30;
/// The first slot of a day starts at this hour, UTC.
pub(super) const OPENING_HOUR: i64 = 9;
/// The last slot of a day ends at this hour, UTC.
pub(super) const CLOSING_HOUR: i64 = 17;
/// Longest window answered, from `startDate`; a longer one is cut, not refused, as a search
/// engine would page rather than fail.
pub(super) const MAX_DAYS: i64 = 14;
/// Most slots in one answer, over all resources (filled in the order the resources were listed).
pub(super) const MAX_SLOTS: usize = 500;
/// The window when `endDate` is absent (optional on the page, default undocumented): a day.
const DEFAULT_HOURS: i64 = 24;

/// A Get Slots request that passed every rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct SlotsQuery {
    /// `startDate`, in UTC.
    pub start: DateTime<Utc>,
    /// `endDate`, in UTC, or a day after `start` when absent; always after `start`.
    pub end: DateTime<Utc>,
    /// The `resources[].resourceId` values, in order, each once.
    pub resource_ids: Vec<String>,
}

/// One element of the answer's outer array.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct ResourceSlots {
    /// The resource, as asked for.
    pub resource_id: String,
    /// Its free slots, earliest first.
    pub available_slots: Vec<AvailableSlot>,
}

/// One free slot, as in the documented example.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct AvailableSlot {
    /// `<resourceId>-<yyyymmddThhmm>`.
    pub slot_id: String,
    /// `2025-09-20T09:00:00Z`.
    pub slot_start_date: String,
    /// `2025-09-20T09:30:00Z`.
    pub slot_end_date: String,
    /// Always `null`, as in the documented example: these are the org's own slots.
    pub source_system: Option<String>,
}

/// Checks a Get Slots body. On refusal, returns the platform errors to answer 400 with.
pub(super) fn validate(body: &[u8]) -> Result<SlotsQuery, Vec<PlatformError>> {
    let map = parse_object(body, &[SLOTS_FIELDS], &[("resources", RESOURCE_FIELDS)])?;
    let object = &map;
    let mut errors = Vec::new();

    let start = if field(object, "startDate").is_some() {
        parse_instant(object, "startDate", &mut errors)
    } else {
        errors.push(invalid("startDate", "startDate is required".to_owned()));
        None
    };
    let end = parse_instant(object, "endDate", &mut errors);
    if let (Some(start), Some(end)) = (start, end)
        && end <= start
    {
        errors.push(invalid(
            "endDate",
            format!("endDate ({end}) must be after startDate ({start})"),
        ));
    }
    let resource_ids = check_resources(object, &mut errors);
    let work_type = check_id(object, "workTypeId", &mut errors);
    check_id(object, "channelId", &mut errors);
    for name in CODE_LISTS {
        check_code_list(object, name, &mut errors);
    }
    let source_system = check_string(object, "sourceSystem", &mut errors);
    // §2.3: Get Slots needs only a startDate and, without a workTypeId, a sourceSystem; codes are
    // filters, not a requirement (Book is another matter: it needs a work type or codes).
    require_source_system(work_type, source_system, &mut errors);

    match start {
        Some(start) if errors.is_empty() => Ok(SlotsQuery {
            start,
            end: end.unwrap_or_else(|| {
                start
                    .checked_add_signed(TimeDelta::hours(DEFAULT_HOURS))
                    .unwrap_or(DateTime::<Utc>::MAX_UTC)
            }),
            resource_ids,
        }),
        _ => Err(errors),
    }
}

/// An ISO-8601 date-time: with a zone (converted to UTC) or without one (read as UTC, since
/// Salesforce's own sample sends it so).
fn parse_instant(
    object: &Map<String, Value>,
    name: &str,
    errors: &mut Vec<PlatformError>,
) -> Option<DateTime<Utc>> {
    let text = check_string(object, name, errors)?;
    let parsed = DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .ok()
        .or_else(|| {
            NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f")
                .ok()
                .map(|t| t.and_utc())
        });
    if parsed.is_none() {
        errors.push(invalid(
            name,
            format!(
                "{name} must be an ISO-8601 date-time, for example 2025-09-20T09:00:00Z (without \
                 a zone it is read as UTC); got \"{text}\""
            ),
        ));
    }
    parsed
}

/// `resources`: a non-empty array of Resources Input objects. Returns the well-formed
/// `resourceId`s, in order, each once.
fn check_resources(object: &Map<String, Value>, errors: &mut Vec<PlatformError>) -> Vec<String> {
    let items = match field(object, "resources") {
        None => {
            errors.push(invalid(
                "resources",
                "resources is required by the sandbox, which has no catalogue to search: list \
                 the resources to find slots for, as [{\"resourceId\": \"0bS…\"}]"
                    .to_owned(),
            ));
            return Vec::new();
        }
        Some(Value::Array(items)) => items,
        Some(other) => {
            errors.push(invalid(
                "resources",
                format!(
                    "resources must be an array of {{resourceId, serviceTerritoryId, \
                     serviceResourceId, resourceType, assetCategory}} objects; got {}",
                    type_name(other)
                ),
            ));
            return Vec::new();
        }
    };
    if items.is_empty() {
        errors.push(invalid(
            "resources",
            "resources must list at least one resource".to_owned(),
        ));
    }
    let mut ids: Vec<String> = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let Some(map) = item.as_object() else {
            errors.push(invalid(
                "resources",
                format!(
                    "resources[{i}] must be an object with a resourceId; got {}",
                    type_name(item)
                ),
            ));
            continue;
        };
        let id = resource_id(map, i, "resourceId", errors);
        for name in ["serviceTerritoryId", "serviceResourceId"] {
            resource_id(map, i, name, errors);
        }
        for name in ["resourceType", "assetCategory"] {
            if let Some(value) = field(map, name)
                && !value.is_string()
            {
                errors.push(invalid(
                    "resources",
                    format!(
                        "resources[{i}].{name} must be a string; got {}",
                        type_name(value)
                    ),
                ));
            }
        }
        if let Some(id) = id
            && !ids.contains(&id)
        {
            ids.push(id);
        }
    }
    ids
}

/// An id field of `resources[i]`; `resourceId` is required (without it there is nothing to
/// answer for), the others optional. Returns the id when well-formed.
fn resource_id(
    map: &Map<String, Value>,
    i: usize,
    name: &str,
    errors: &mut Vec<PlatformError>,
) -> Option<String> {
    let id = match field(map, name) {
        None if name == "resourceId" => {
            errors.push(invalid(
                "resources",
                format!(
                    "resources[{i}].resourceId is required: the Healthcare Practitioner Facility \
                     id of a provider, or the Asset id of a device"
                ),
            ));
            return None;
        }
        None => return None,
        Some(Value::String(id)) => id,
        Some(other) => {
            errors.push(invalid(
                "resources",
                format!(
                    "resources[{i}].{name} must be a string; got {}",
                    type_name(other)
                ),
            ));
            return None;
        }
    };
    if is_record_id(id) {
        Some(id.clone())
    } else {
        errors.push(violation(
            MALFORMED_ID,
            "resources",
            format!(
                "resources[{i}].{name}: \"{id}\" is not a valid Salesforce id (15 or 18 letters \
                 and digits)"
            ),
        ));
        None
    }
}

/// The id of `resource_id`'s slot starting at `start`.
pub(super) fn slot_id(resource_id: &str, start: DateTime<Utc>) -> String {
    format!("{resource_id}-{}", start.format("%Y%m%dT%H%M"))
}

/// The free slots of each resource in `query`, leaving out those `taken` says are booked, within
/// [`MAX_DAYS`] of the start and [`MAX_SLOTS`] in all.
pub(super) fn available(query: &SlotsQuery, taken: impl Fn(&str) -> bool) -> Vec<ResourceSlots> {
    let cut = query
        .start
        .checked_add_signed(TimeDelta::days(MAX_DAYS))
        .unwrap_or(DateTime::<Utc>::MAX_UTC);
    let end = query.end.min(cut);
    let length = TimeDelta::minutes(SLOT_MINUTES);
    let mut left = MAX_SLOTS;
    let mut answer = Vec::with_capacity(query.resource_ids.len());
    for resource_id in &query.resource_ids {
        let mut slots = Vec::new();
        for start in slot_starts(query.start, end) {
            if left == 0 {
                break;
            }
            let id = slot_id(resource_id, start);
            if taken(&id) {
                continue;
            }
            slots.push(AvailableSlot {
                slot_id: id,
                slot_start_date: utc_text(start),
                slot_end_date: utc_text(start + length),
                source_system: None,
            });
            left -= 1;
        }
        answer.push(ResourceSlots {
            resource_id: resource_id.clone(),
            available_slots: slots,
        });
    }
    answer
}

/// Starts of the opening-hours slots lying wholly within `[from, to)`, earliest first.
fn slot_starts(from: DateTime<Utc>, to: DateTime<Utc>) -> impl Iterator<Item = DateTime<Utc>> {
    let length = TimeDelta::minutes(SLOT_MINUTES);
    let per_day = (CLOSING_HOUR - OPENING_HOUR) * 60 / SLOT_MINUTES;
    std::iter::successors(Some(from.date_naive()), |day| day.succ_opt())
        .map_while(|day| {
            day.and_time(NaiveTime::MIN)
                .and_utc()
                .checked_add_signed(TimeDelta::hours(OPENING_HOUR))
        })
        .take_while(move |opening| *opening < to)
        .flat_map(move |opening| {
            (0..per_day).filter_map(move |k| {
                opening.checked_add_signed(TimeDelta::minutes(SLOT_MINUTES * k))
            })
        })
        // Checked: near chrono's last representable instant a slot's end may not exist.
        .filter(move |start| {
            start
                .checked_add_signed(length)
                .is_some_and(|end| *start >= from && end <= to)
        })
}

/// `2025-09-20T09:00:00Z`, the documented example's spelling.
fn utc_text(instant: DateTime<Utc>) -> String {
    instant.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&Utc)
    }

    fn query(start: &str, end: &str, resources: &[&str]) -> SlotsQuery {
        SlotsQuery {
            start: at(start),
            end: at(end),
            resource_ids: resources.iter().map(|r| (*r).to_owned()).collect(),
        }
    }

    fn starts(answer: &[ResourceSlots]) -> Vec<Vec<&str>> {
        answer
            .iter()
            .map(|r| {
                r.available_slots
                    .iter()
                    .map(|s| s.slot_start_date.as_str())
                    .collect()
            })
            .collect()
    }

    #[test]
    fn only_slots_wholly_inside_the_window_and_opening_hours() {
        // 08:00–10:15: 09:00 and 09:30 fit; 10:00 would end after 10:15.
        let answer = available(
            &query(
                "2025-09-20T08:00:00Z",
                "2025-09-20T10:15:00Z",
                &["0bSxx0000005JoaxxE"],
            ),
            |_| false,
        );
        assert_eq!(
            answer,
            [ResourceSlots {
                resource_id: "0bSxx0000005JoaxxE".to_owned(),
                available_slots: vec![
                    AvailableSlot {
                        slot_id: "0bSxx0000005JoaxxE-20250920T0900".to_owned(),
                        slot_start_date: "2025-09-20T09:00:00Z".to_owned(),
                        slot_end_date: "2025-09-20T09:30:00Z".to_owned(),
                        source_system: None,
                    },
                    AvailableSlot {
                        slot_id: "0bSxx0000005JoaxxE-20250920T0930".to_owned(),
                        slot_start_date: "2025-09-20T09:30:00Z".to_owned(),
                        slot_end_date: "2025-09-20T10:00:00Z".to_owned(),
                        source_system: None,
                    },
                ],
            }]
        );

        // 16:40 on one day to 09:31 the next: 16:30 starts too early, 09:00 fits, 09:30 ends late.
        let answer = available(
            &query("2025-09-20T16:20:00Z", "2025-09-21T09:31:00Z", &["r"]),
            |_| false,
        );
        assert_eq!(
            starts(&answer),
            [["2025-09-20T16:30:00Z", "2025-09-21T09:00:00Z"]]
        );
    }

    #[test]
    fn a_whole_day_has_sixteen_slots_and_taken_ones_are_left_out() {
        let q = query("2025-09-20T00:00:00Z", "2025-09-21T00:00:00Z", &["r"]);
        let all = available(&q, |_| false);
        assert_eq!(all[0].available_slots.len(), 16);
        assert_eq!(
            all[0].available_slots[15].slot_end_date,
            "2025-09-20T17:00:00Z"
        );
        let some = available(&q, |id| id == "r-20250920T0900" || id == "r-20250920T1630");
        let first_and_last = (
            some[0].available_slots.first().unwrap().slot_id.as_str(),
            some[0].available_slots.last().unwrap().slot_id.as_str(),
        );
        assert_eq!(some[0].available_slots.len(), 14);
        assert_eq!(first_and_last, ("r-20250920T0930", "r-20250920T1600"));
    }

    #[test]
    fn windows_are_cut_at_fourteen_days_and_answers_at_five_hundred_slots() {
        let q = query(
            "2025-09-01T00:00:00Z",
            "2025-12-01T00:00:00Z",
            &["a", "b", "c"],
        );
        let answer = available(&q, |_| false);
        let counts: Vec<usize> = answer.iter().map(|r| r.available_slots.len()).collect();
        assert_eq!(
            counts,
            [224, 224, 52],
            "14 days × 16 slots, then 500 in all"
        );
        assert_eq!(
            answer[0].available_slots.last().unwrap().slot_start_date,
            "2025-09-14T16:30:00Z",
            "the 14th day is the last"
        );
    }

    #[test]
    fn zone_less_dates_are_utc_and_other_zones_are_converted() {
        let body =
            br#"{"startDate":"2025-07-14T00:12:00.7912","endDate":"2025-07-14T12:00:00+02:00",
            "resources":[{"resourceId":"0bSxx0000005JoaxxE"},{"resourceId":"0bSxx0000005JoaxxE"}],
            "workTypeId":"08qxx000000Axq6xxC"}"#;
        assert_eq!(
            validate(body).unwrap(),
            SlotsQuery {
                start: at("2025-07-14T00:12:00.7912Z"),
                end: at("2025-07-14T10:00:00Z"),
                resource_ids: vec!["0bSxx0000005JoaxxE".to_owned()],
            },
            "a repeated resource is answered once"
        );
        let body = br#"{"startDate":"2025-07-14T08:00:00Z","resources":[{"resourceId":"0bSxx0000005JoaxxE"}],
            "serviceTypes":["X"],"sourceSystem":"Salesforce"}"#;
        assert_eq!(
            validate(body).unwrap().end,
            at("2025-07-15T08:00:00Z"),
            "no endDate: a day"
        );
    }
}
