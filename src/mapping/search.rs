//! An Appointment search as asked (`GET [base]/Appointment?…`), read into an
//! [`AppointmentQuery`], and the parts of it the mapping turns into Salesforce terms: statuses
//! into Status and StatusCategory values, codes into work types.
//!
//! R4's rules: a comma is OR within one parameter, repeated parameters are AND; `date` takes the
//! prefixes `eq` `ge` `gt` `le` `lt` with the precision of its value (`2025-07-21` is the whole
//! day). Unknown parameters and modifiers are refused by name (a misspelt filter must not widen
//! a search silently).

use std::collections::BTreeSet;

use super::file::{CodedElement, Mapping};
use super::slots::query::{Comparator, DateBound, parse_start};
use crate::fhir::APPOINTMENT_STATUSES;
use crate::fhir::outcome::{Issue, IssueCode};
use crate::fhir::search::split_or;

/// The search parameters served.
pub const SEARCH_PARAMETERS: [&str; 10] = [
    "_id",
    "identifier",
    "patient",
    "actor",
    "practitioner",
    "location",
    "date",
    "status",
    "service-type",
    "appointment-type",
];

/// The result parameters served.
pub const RESULT_PARAMETERS: [&str; 6] =
    ["_count", "_sort", "_total", "_format", "_pretty", "_page"];

/// `_count` when none is given, and the largest honoured.
pub const DEFAULT_COUNT: usize = 20;
/// The largest `_count` honoured (R4 lets a server choose its page size).
pub const MAX_COUNT: usize = 200;

/// What `_total` asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TotalMode {
    /// `none`: no total.
    None,
    /// `estimate` (the default): the total when the proxy knows it without another call.
    #[default]
    Estimate,
    /// `accurate`: the total, counted by Salesforce when the search reached its row bound.
    Accurate,
}

/// A search token: `system|code` or a bare `code` (any system).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodeToken {
    /// The system; `None` for any.
    pub system: Option<String>,
    /// The code.
    pub code: String,
}

/// An Appointment search as asked, before any id is resolved.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AppointmentQuery {
    /// `_id`: each parameter an OR list.
    pub ids: Vec<Vec<String>>,
    /// `identifier`: `system|value` keys.
    pub identifiers: Vec<Vec<String>>,
    /// `patient` references.
    pub patients: Vec<Vec<String>>,
    /// `actor` references (any type).
    pub actors: Vec<Vec<String>>,
    /// `practitioner` references.
    pub practitioners: Vec<Vec<String>>,
    /// `location` references.
    pub locations: Vec<Vec<String>>,
    /// `date` bounds on the start, ANDed.
    pub dates: Vec<DateBound>,
    /// `status` codes.
    pub statuses: Vec<Vec<String>>,
    /// `service-type` tokens.
    pub service_types: Vec<Vec<CodeToken>>,
    /// `appointment-type` tokens.
    pub appointment_types: Vec<Vec<CodeToken>>,
    /// `_count`.
    pub count: usize,
    /// `_sort=-date`.
    pub descending: bool,
    /// `_total`.
    pub total: TotalMode,
    /// `_page`: where this page starts (the proxy's own token, from a `next` link).
    pub page: Option<String>,
    /// The parameters as given (search and format ones, not `_page`), for the links.
    pub used: Vec<(String, String)>,
}

impl AppointmentQuery {
    /// Reads a percent-encoded query string (or `_search` form body).
    ///
    /// # Errors
    /// A 400 issue: an unknown parameter or modifier, a malformed date, token, status, `_count`,
    /// `_sort` or `_total`.
    pub fn parse(query: &str) -> Result<AppointmentQuery, Issue> {
        let mut q = AppointmentQuery {
            count: DEFAULT_COUNT,
            ..Default::default()
        };
        for (name, value) in url::form_urlencoded::parse(query.as_bytes()) {
            let (name, value) = (name.into_owned(), value.into_owned());
            if name != "_page" {
                q.used.push((name.clone(), value.clone()));
            }
            if value.trim().is_empty() && SEARCH_PARAMETERS.contains(&name.as_str()) {
                continue;
            }
            let list = || -> Vec<String> {
                split_or(&value)
                    .into_iter()
                    .map(|v| v.replace("\\,", ",").trim().to_owned())
                    .filter(|v| !v.is_empty())
                    .collect()
            };
            match name.as_str() {
                "_id" => q.ids.push(list()),
                "identifier" => {
                    let keys = list();
                    if keys.iter().any(|k| {
                        !matches!(k.split_once('|'), Some((s, v)) if !s.is_empty() && !v.is_empty())
                    }) {
                        return Err(Issue::general(
                            IssueCode::Invalid,
                            "identifier takes system|value (the proxy keeps identifiers with \
                             their system)",
                        ));
                    }
                    q.identifiers.push(keys);
                }
                "patient" => q.patients.push(list()),
                "actor" => q.actors.push(list()),
                "practitioner" => q.practitioners.push(list()),
                "location" => q.locations.push(list()),
                "date" => q.dates.push(parse_start(&value).map_err(|issue| Issue {
                    diagnostics: issue.diagnostics.replace("start", "date"),
                    ..issue
                })?),
                "status" => {
                    let codes = list();
                    if codes
                        .iter()
                        .any(|c| !APPOINTMENT_STATUSES.contains(&c.as_str()))
                    {
                        return Err(Issue::general(
                            IssueCode::Value,
                            format!(
                                "status takes R4 AppointmentStatus codes: {}",
                                APPOINTMENT_STATUSES.join(", ")
                            ),
                        ));
                    }
                    q.statuses.push(codes);
                }
                "service-type" => q.service_types.push(tokens(&list())),
                "appointment-type" => q.appointment_types.push(tokens(&list())),
                "_count" => {
                    let n: usize = value.trim().parse().map_err(|_| {
                        Issue::general(IssueCode::Invalid, "_count must be a whole number")
                    })?;
                    q.count = n.clamp(1, MAX_COUNT);
                }
                "_sort" => match value.trim() {
                    "date" => q.descending = false,
                    "-date" => q.descending = true,
                    _ => {
                        return Err(Issue::general(
                            IssueCode::NotSupported,
                            "_sort takes date or -date",
                        ));
                    }
                },
                "_total" => {
                    q.total = match value.trim() {
                        "none" => TotalMode::None,
                        "estimate" => TotalMode::Estimate,
                        "accurate" => TotalMode::Accurate,
                        _ => {
                            return Err(Issue::general(
                                IssueCode::Invalid,
                                "_total takes none, estimate or accurate",
                            ));
                        }
                    }
                }
                "_page" => q.page = Some(value),
                "_format" | "_pretty" => {}
                other => return Err(unsupported(other)),
            }
        }
        Ok(q)
    }

    /// Whether the search names something Salesforce can find by an index: an id, an
    /// identifier, a participant, or a start bounded on both sides.
    pub fn is_selective(&self) -> bool {
        let bounded_below = self.dates.iter().any(|d| {
            matches!(
                d.comparator,
                Comparator::Eq | Comparator::Ge | Comparator::Gt
            )
        });
        let bounded_above = self.dates.iter().any(|d| {
            matches!(
                d.comparator,
                Comparator::Eq | Comparator::Le | Comparator::Lt
            )
        });
        !self.ids.is_empty()
            || !self.identifiers.is_empty()
            || !self.patients.is_empty()
            || !self.actors.is_empty()
            || !self.practitioners.is_empty()
            || !self.locations.is_empty()
            || (bounded_below && bounded_above)
    }
}

fn tokens(values: &[String]) -> Vec<CodeToken> {
    values
        .iter()
        .map(|v| match v.split_once('|') {
            Some((system, code)) => CodeToken {
                system: (!system.is_empty()).then(|| system.to_owned()),
                code: code.to_owned(),
            },
            None => CodeToken {
                system: None,
                code: v.clone(),
            },
        })
        .collect()
}

fn unsupported(name: &str) -> Issue {
    let base = name.split(':').next().unwrap_or(name);
    let supported = SEARCH_PARAMETERS.join(", ");
    let text = if name.contains(':') && SEARCH_PARAMETERS.contains(&base) {
        format!("search parameter modifiers are not supported (on `{base}`)")
    } else if super::slots::query::is_plain_name(name) {
        format!(
            "the search parameter `{name}` is not supported; Appointment searches take \
             {supported}, and _count, _sort, _total"
        )
    } else {
        format!("a search parameter is not supported; Appointment searches take {supported}")
    };
    Issue::general(IssueCode::NotSupported, text)
}

/// The Salesforce Status values and status categories that mean one of `fhir` statuses, per
/// the mapping's tables.
pub fn salesforce_statuses(fhir: &[String], mapping: &Mapping) -> (Vec<String>, Vec<String>) {
    let pick = |table: &std::collections::HashMap<String, String>| -> Vec<String> {
        table
            .iter()
            .filter(|(_, f)| fhir.contains(f))
            .map(|(s, _)| s.clone())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect()
    };
    (pick(&mapping.statuses), pick(&mapping.status_categories))
}

/// The work types whose rules pick one of `tokens` in `element`: Salesforce keeps no codes, only
/// the work type a rule chose.
pub fn work_types(tokens: &[CodeToken], element: CodedElement, mapping: &Mapping) -> Vec<String> {
    mapping
        .work_type_rules
        .iter()
        .filter(|rule| {
            rule.element == element
                && tokens.iter().any(|t| {
                    t.code == rule.code && t.system.as_deref().is_none_or(|s| s == rule.system)
                })
        })
        .map(|rule| rule.work_type_id.clone())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mapping::EXAMPLE_MAPPING;

    #[test]
    fn reads_every_parameter_with_r4s_or_and_and() {
        let q = AppointmentQuery::parse(
            "patient=Patient/pat-1001,Patient/pat-1002&date=ge2025-07-21&date=lt2025-07-22\
             &status=booked,cancelled&identifier=http://h.org|A\\,1&_count=500&_sort=-date\
             &_total=accurate&_format=json",
        )
        .unwrap();
        assert_eq!(
            q.patients,
            vec![vec!["Patient/pat-1001", "Patient/pat-1002"]]
        );
        assert_eq!(q.dates.len(), 2);
        assert_eq!(q.statuses, vec![vec!["booked", "cancelled"]]);
        assert_eq!(q.identifiers, vec![vec!["http://h.org|A,1"]]);
        assert_eq!(q.count, MAX_COUNT);
        assert!(q.descending);
        assert_eq!(q.total, TotalMode::Accurate);
        assert!(q.is_selective());
        assert_eq!(q.used.len(), 9);
    }

    #[test]
    fn refuses_what_it_cannot_evaluate_by_name() {
        for (query, words) in [
            ("subject=Patient/1", "`subject` is not supported"),
            ("patient:missing=true", "modifiers are not supported"),
            ("date=ne2025-07-21", "not supported"),
            ("date=tomorrow", "date must be"),
            ("status=gone", "AppointmentStatus"),
            ("_sort=status", "_sort takes"),
            ("identifier=nosystem", "system|value"),
        ] {
            let issue = AppointmentQuery::parse(query).unwrap_err();
            assert!(
                issue.diagnostics.contains(words),
                "{query}: {}",
                issue.diagnostics
            );
        }
        assert!(
            !AppointmentQuery::parse("date=ge2025-01-01")
                .unwrap()
                .is_selective()
        );
        assert!(
            !AppointmentQuery::parse("status=booked")
                .unwrap()
                .is_selective()
        );
    }

    #[test]
    fn statuses_and_codes_in_salesforce_terms() {
        let mapping = Mapping::from_toml(EXAMPLE_MAPPING, "example.toml").unwrap();
        let (statuses, categories) = salesforce_statuses(&["cancelled".to_owned()], &mapping);
        assert_eq!(statuses, vec!["canceled", "cancelled"]);
        assert_eq!(categories, vec!["canceled", "cannotcomplete"]);
        let follow_up = [CodeToken {
            system: None,
            code: "FOLLOWUP".to_owned(),
        }];
        assert_eq!(
            work_types(&follow_up, CodedElement::AppointmentType, &mapping),
            vec!["08qxx000000Axq6xxC"]
        );
        assert!(work_types(&follow_up, CodedElement::ServiceType, &mapping).is_empty());
    }
}
