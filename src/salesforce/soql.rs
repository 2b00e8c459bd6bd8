//! SOQL statements over ServiceAppointment, built only from checked and escaped values.
//!
//! Nothing from a request reaches a statement as text: record ids are checked to be 15 or 18
//! letters and digits ([`IdLiteral`]), datetimes are written by the proxy from parsed instants,
//! picklist and free-text values go through [`quote`], which escapes them as Salesforce's "Quoted
//! String Escape Sequences" page says (`\'`, `\"`, `\\`, `\n`, `\r`, `\t`, `\b`, `\f`) and
//! refuses other control characters. `%` and `_` mean nothing outside LIKE, and the proxy sends
//! no LIKE, so they are sent as they are. Keywords inside a quoted literal are only text.

use std::fmt::Write as _;

use chrono::{DateTime, Utc};

use super::id::is_salesforce_id;

/// What every read selects: the appointment, its practitioner junctions and their facility.
pub const SELECT: &str = "SELECT Id, Status, StatusCategory, SchedStartTime, SchedEndTime, \
    WorkTypeId, EngagementChannelTypeId, Description, Comments, CancellationReason, \
    ParentRecordId, ParentRecordType, CreatedDate, LastModifiedDate, SystemModstamp, \
    (SELECT Id, HealthcarePractitionerFacilityId, HealthcarePractitionerFacility.AccountId, \
    IsRequired FROM CarePractnFacilityAppts) FROM ServiceAppointment";

/// Salesforce's earliest and latest valid datetimes ("Minimum and Maximum Dates").
const EARLIEST: &str = "1700-01-01T00:00:00Z";
const LATEST: &str = "4000-12-31T00:00:00Z";

/// A value that cannot be put into a statement.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LiteralError {
    /// Not a Salesforce record id.
    #[error("not a Salesforce record id")]
    NotAnId,
    /// A control character SOQL has no escape for.
    #[error("a control character SOQL cannot express")]
    ControlCharacter,
    /// Longer than the 4,000 characters a WHERE string may have.
    #[error("longer than the 4,000 characters Salesforce allows in a WHERE string")]
    TooLong,
    /// Outside 1700-01-01 .. 4000-12-31, which Salesforce cannot compare.
    #[error("outside the dates Salesforce can compare (1700-01-01 to 4000-12-31)")]
    DateOutOfRange,
}

/// A checked record id, safe to quote as it is.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct IdLiteral(String);

impl IdLiteral {
    /// Checks `id`.
    ///
    /// # Errors
    /// [`LiteralError::NotAnId`] unless it is 15 or 18 ASCII letters and digits.
    pub fn new(id: &str) -> Result<IdLiteral, LiteralError> {
        if is_salesforce_id(id) {
            Ok(IdLiteral(id.to_owned()))
        } else {
            Err(LiteralError::NotAnId)
        }
    }

    /// The id.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A string literal: quoted, with SOQL's escapes.
///
/// # Errors
/// [`LiteralError::ControlCharacter`] for a control character other than the escapable ones,
/// [`LiteralError::TooLong`] past 4,000 characters.
pub fn quote(text: &str) -> Result<String, LiteralError> {
    if text.chars().count() > 4000 {
        return Err(LiteralError::TooLong);
    }
    let mut out = String::with_capacity(text.len() + 2);
    out.push('\'');
    for c in text.chars() {
        match c {
            '\'' => out.push_str("\\'"),
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if c.is_control() => return Err(LiteralError::ControlCharacter),
            c => out.push(c),
        }
    }
    out.push('\'');
    Ok(out)
}

/// An unquoted datetime literal in UTC, whole seconds (`2025-07-21T09:00:00Z`).
///
/// # Errors
/// [`LiteralError::DateOutOfRange`] outside what Salesforce can compare.
pub fn datetime(when: DateTime<Utc>) -> Result<String, LiteralError> {
    let text = when.format("%Y-%m-%dT%H:%M:%SZ").to_string();
    // Same width and format: text order is time order.
    if text.len() != EARLIEST.len() || text.as_str() < EARLIEST || text.as_str() > LATEST {
        return Err(LiteralError::DateOutOfRange);
    }
    Ok(text)
}

/// `(…, …)`, for `IN`.
fn list(items: impl IntoIterator<Item = String>) -> String {
    let items: Vec<String> = items.into_iter().collect();
    format!("({})", items.join(", "))
}

/// A condition on ServiceAppointment, ready to AND with others.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Condition(String);

impl Condition {
    /// `Id IN (…)`.
    pub fn id_in(ids: &[IdLiteral]) -> Condition {
        Condition(format!(
            "Id IN {}",
            list(ids.iter().map(|i| format!("'{}'", i.0)))
        ))
    }

    /// `ParentRecordId IN (…)`: the patient (an Account).
    pub fn patient_in(ids: &[IdLiteral]) -> Condition {
        Condition(format!(
            "ParentRecordId IN {}",
            list(ids.iter().map(|i| format!("'{}'", i.0)))
        ))
    }

    /// `WorkTypeId IN (…)`.
    pub fn work_type_in(ids: &[IdLiteral]) -> Condition {
        Condition(format!(
            "WorkTypeId IN {}",
            list(ids.iter().map(|i| format!("'{}'", i.0)))
        ))
    }

    /// `Status IN (…)` (quoted picklist values).
    ///
    /// # Errors
    /// When a value cannot be quoted.
    pub fn status_in(values: &[String]) -> Result<Condition, LiteralError> {
        let quoted = values
            .iter()
            .map(|v| quote(v))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Condition(format!("Status IN {}", list(quoted))))
    }

    /// `ParentRecordType = 'Account'`: patient appointments only.
    pub fn patient_appointments() -> Condition {
        Condition("ParentRecordType = 'Account'".to_owned())
    }

    /// `(Status IN (…) OR StatusCategory IN (…))`, either list possibly empty (not both).
    ///
    /// # Errors
    /// When a value cannot be quoted.
    pub fn status_or_category(
        statuses: &[String],
        categories: &[String],
    ) -> Result<Condition, LiteralError> {
        let quoted = |values: &[String]| {
            values
                .iter()
                .map(|v| quote(v))
                .collect::<Result<Vec<_>, _>>()
        };
        let mut alternatives = Vec::new();
        if !statuses.is_empty() {
            alternatives.push(format!("Status IN {}", list(quoted(statuses)?)));
        }
        if !categories.is_empty() {
            alternatives.push(format!("StatusCategory IN {}", list(quoted(categories)?)));
        }
        Ok(Condition(format!("({})", alternatives.join(" OR "))))
    }

    /// `SchedStartTime <op> <datetime>`, `op` one of `<`, `<=`, `>`, `>=`.
    ///
    /// # Errors
    /// When the instant is out of Salesforce's range.
    pub fn start(op: &'static str, when: DateTime<Utc>) -> Result<Condition, LiteralError> {
        debug_assert!(["<", "<=", ">", ">="].contains(&op));
        Ok(Condition(format!(
            "SchedStartTime {op} {}",
            datetime(when)?
        )))
    }

    /// A semi-join on the practitioner junction: appointments with a practitioner among `hpf`
    /// (HealthcarePractitionerFacility ids).
    pub fn practitioner_in(hpf: &[IdLiteral]) -> Condition {
        Condition(format!(
            "Id IN (SELECT ServiceAppointmentId FROM CarePractnFacilityAppt WHERE \
             HealthcarePractitionerFacilityId IN {})",
            list(hpf.iter().map(|i| format!("'{}'", i.0)))
        ))
    }

    /// A semi-join on the practitioner junction: appointments at one of the facilities
    /// (Accounts) of their practitioner facility.
    pub fn facility_in(accounts: &[IdLiteral]) -> Condition {
        Condition(format!(
            "Id IN (SELECT ServiceAppointmentId FROM CarePractnFacilityAppt WHERE \
             HealthcarePractitionerFacility.AccountId IN {})",
            list(accounts.iter().map(|i| format!("'{}'", i.0)))
        ))
    }

    /// Whether this is a semi-join (Salesforce allows two per statement).
    pub fn is_semi_join(&self) -> bool {
        self.0.starts_with("Id IN (SELECT")
    }
}

/// The order of a search: by start, then by id so that pages are stable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Order {
    /// Earliest first.
    #[default]
    StartAscending,
    /// Latest first.
    StartDescending,
}

/// A statement: [`SELECT`] (or `SELECT COUNT()`), the conditions AND-ed, the order and a bound.
pub fn select(conditions: &[Condition], order: Order, limit: usize) -> String {
    let mut soql = String::from(SELECT);
    where_clause(&mut soql, conditions);
    let direction = match order {
        Order::StartAscending => "ASC",
        Order::StartDescending => "DESC",
    };
    let _ = write!(
        soql,
        " ORDER BY SchedStartTime {direction}, Id {direction} LIMIT {limit}"
    );
    soql
}

/// `SELECT COUNT() FROM ServiceAppointment WHERE …`.
pub fn count(conditions: &[Condition]) -> String {
    let mut soql = String::from("SELECT COUNT() FROM ServiceAppointment");
    where_clause(&mut soql, conditions);
    soql
}

fn where_clause(soql: &mut String, conditions: &[Condition]) {
    for (n, condition) in conditions.iter().enumerate() {
        soql.push_str(if n == 0 { " WHERE " } else { " AND " });
        soql.push_str(&condition.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_escape_every_character_that_could_end_or_bend_the_literal() {
        assert_eq!(quote("Scheduled").unwrap(), "'Scheduled'");
        assert_eq!(
            quote("O'Brien \\ \"x\"\n\r\t").unwrap(),
            r#"'O\'Brien \\ \"x\"\n\r\t'"#
        );
        // `%` and `_` are only wildcards in LIKE, which is never sent.
        assert_eq!(quote("50%_off").unwrap(), "'50%_off'");
        assert_eq!(
            quote("' OR Id != '").unwrap(),
            r"'\' OR Id != \''",
            "a quote cannot close the literal"
        );
        assert_eq!(quote("a\u{0}b"), Err(LiteralError::ControlCharacter));
        assert_eq!(quote(&"x".repeat(4001)), Err(LiteralError::TooLong));
    }

    #[test]
    fn ids_are_checked_not_escaped() {
        assert!(IdLiteral::new("001xx000012udqQxxQ").is_ok());
        for bad in [
            "001xx' OR ''='",
            "001xx000012udq",
            "",
            "001xx000012udqQxxQ\n",
        ] {
            assert_eq!(IdLiteral::new(bad), Err(LiteralError::NotAnId), "{bad:?}");
        }
    }

    #[test]
    fn datetimes_are_utc_whole_seconds_within_salesforces_range() {
        let when = DateTime::parse_from_rfc3339("2025-07-21T09:00:00.250+02:00")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(datetime(when).unwrap(), "2025-07-21T07:00:00Z");
        let early = DateTime::parse_from_rfc3339("1600-01-01T00:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(datetime(early), Err(LiteralError::DateOutOfRange));
    }

    #[test]
    fn statements_and_their_conditions() {
        let patient = IdLiteral::new("001xx000012udqQxxQ").unwrap();
        let hpf = IdLiteral::new("0bSxx0000005JoaxxE").unwrap();
        let when = DateTime::parse_from_rfc3339("2025-07-21T00:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let soql = select(
            &[
                Condition::patient_in(std::slice::from_ref(&patient)),
                Condition::start(">=", when).unwrap(),
                Condition::status_in(&["Scheduled".to_owned()]).unwrap(),
                Condition::practitioner_in(&[hpf]),
            ],
            Order::StartDescending,
            201,
        );
        assert!(soql.starts_with(SELECT), "{soql}");
        assert!(
            soql.ends_with(
                " WHERE ParentRecordId IN ('001xx000012udqQxxQ') AND SchedStartTime >= \
                 2025-07-21T00:00:00Z AND Status IN ('Scheduled') AND Id IN (SELECT \
                 ServiceAppointmentId FROM CarePractnFacilityAppt WHERE \
                 HealthcarePractitionerFacilityId IN ('0bSxx0000005JoaxxE')) ORDER BY \
                 SchedStartTime DESC, Id DESC LIMIT 201"
            ),
            "{soql}"
        );
        assert_eq!(
            count(&[Condition::id_in(&[patient])]),
            "SELECT COUNT() FROM ServiceAppointment WHERE Id IN ('001xx000012udqQxxQ')"
        );
    }
}
