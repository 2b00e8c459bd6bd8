//! The Slot search as asked: its parameters, dates with R4's precision rules, tokens and statuses,
//! read into a [`SlotQuery`].

use super::*;

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
pub(super) const FORMAT_PARAMETERS: [&str; 2] = ["_format", "_pretty"];

/// The R4 SlotStatus codes (required binding on `Slot.status`).
pub const SLOT_STATUSES: [&str; 5] = [
    "busy",
    "free",
    "busy-unavailable",
    "busy-tentative",
    "entered-in-error",
];

/// The SlotStatus code system, allowed as the system part of a `status` token.
pub(super) const SLOT_STATUS_SYSTEM: &str = "http://hl7.org/fhir/slotstatus";

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

pub(super) fn unsupported_parameter(name: &str) -> Issue {
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

pub(crate) fn parse_start(value: &str) -> Result<DateBound, Issue> {
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

pub(crate) fn malformed_start() -> Issue {
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
pub(super) fn time_range(day: NaiveDate, time: &str) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
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
pub(super) fn parse_offset(text: &str) -> Option<FixedOffset> {
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

pub(super) fn parse_statuses(value: &str) -> Result<Vec<String>, Issue> {
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
