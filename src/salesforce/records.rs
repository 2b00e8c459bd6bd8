//! ServiceAppointment records as the REST API's `query` resource answers them, with the API's own
//! field names, and what a page of results carries (`totalSize`, `done`, `nextRecordsUrl`).
//!
//! Field names are from Salesforce's ServiceAppointment and CarePractnFacilityAppt object
//! references; which IAM fills in which is recorded in README ("Reading from Salesforce").

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

/// One ServiceAppointment, with its practitioner junctions.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ServiceAppointmentRecord {
    /// The record id (`08p…`).
    pub id: String,
    /// The Status picklist value (customisable per org).
    #[serde(default)]
    pub status: Option<String>,
    /// The status category: a restricted picklist, the stable signal.
    #[serde(default)]
    pub status_category: Option<String>,
    /// Scheduled start.
    #[serde(default)]
    pub sched_start_time: Option<String>,
    /// Scheduled end.
    #[serde(default)]
    pub sched_end_time: Option<String>,
    /// The visit type.
    #[serde(default)]
    pub work_type_id: Option<String>,
    /// The engagement channel.
    #[serde(default)]
    pub engagement_channel_type_id: Option<String>,
    /// Free text.
    #[serde(default)]
    pub description: Option<String>,
    /// The Book request's `comment`.
    #[serde(default)]
    pub comments: Option<String>,
    /// Why it was cancelled (free text).
    #[serde(default)]
    pub cancellation_reason: Option<String>,
    /// The patient's Account (for a patient appointment).
    #[serde(default)]
    pub parent_record_id: Option<String>,
    /// `Account` for a patient appointment; Field Service parents differ.
    #[serde(default)]
    pub parent_record_type: Option<String>,
    /// Last change by a user.
    #[serde(default)]
    pub last_modified_date: Option<String>,
    /// Last change by a user or the system.
    #[serde(default)]
    pub system_modstamp: Option<String>,
    /// The practitioner junctions (`null` when there are none).
    #[serde(default, rename = "CarePractnFacilityAppts")]
    pub practitioners: Option<ChildRows<PractitionerJunction>>,
}

/// A parent-to-child subquery's rows.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ChildRows<T> {
    /// The rows.
    #[serde(default = "Vec::new")]
    pub records: Vec<T>,
}

/// One CarePractnFacilityAppt: the practitioner at a facility, for this appointment.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PractitionerJunction {
    /// The HealthcarePractitionerFacility id: what Book's `Practitioner/…` names.
    #[serde(default)]
    pub healthcare_practitioner_facility_id: Option<String>,
    /// Whether the practitioner must attend.
    #[serde(default)]
    pub is_required: Option<bool>,
    /// The HealthcarePractitionerFacility's own fields.
    #[serde(default)]
    pub healthcare_practitioner_facility: Option<PractitionerFacility>,
}

/// The fields read from a HealthcarePractitionerFacility.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PractitionerFacility {
    /// The facility's Account: what Book's `Facility/…` names.
    #[serde(default)]
    pub account_id: Option<String>,
}

/// A record as read, with the version it has now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionedRecord {
    /// The fields.
    pub record: ServiceAppointmentRecord,
    /// A digest of every field read, junctions included (see [`version_of`]).
    pub version: String,
}

/// One page of a query's results.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryPage {
    /// Every row the statement matched (not only this page's).
    pub total_size: u64,
    /// The records of this page.
    pub records: Vec<VersionedRecord>,
    /// The locator of the next page (`01g…-2000`), when there is one.
    pub next: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct QueryPageWire {
    total_size: u64,
    #[serde(default)]
    next_records_url: Option<String>,
    #[serde(default)]
    records: Vec<Value>,
}

/// A query answer that is not the documented shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a query answer the proxy cannot read")]
pub struct PageShapeError;

/// Reads a query answer.
///
/// # Errors
/// When it is not the documented shape, a record lacks an id, or `nextRecordsUrl` does not end
/// in a locator.
pub fn parse_page(body: &[u8]) -> Result<QueryPage, PageShapeError> {
    let wire: QueryPageWire = serde_json::from_slice(body).map_err(|_| PageShapeError)?;
    let records = wire
        .records
        .into_iter()
        .map(|mut raw| {
            if let Some(fields) = raw.as_object_mut() {
                fields.remove("attributes");
            }
            let version = version_of(&raw);
            let record = serde_json::from_value(raw).map_err(|_| PageShapeError)?;
            Ok(VersionedRecord { record, version })
        })
        .collect::<Result<Vec<_>, PageShapeError>>()?;
    let next = match wire.next_records_url {
        None => None,
        Some(url) => Some(locator_of(&url).ok_or(PageShapeError)?.to_owned()),
    };
    Ok(QueryPage {
        total_size: wire.total_size,
        records,
        next,
    })
}

/// The locator at the end of a `nextRecordsUrl` (`/services/data/vNN.N/query/01g…-2000`), if it
/// is one: letters and digits, a dash, digits.
pub fn locator_of(url: &str) -> Option<&str> {
    let (path, locator) = url.rsplit_once('/')?;
    path.ends_with("/query").then_some(())?;
    is_locator(locator).then_some(locator)
}

/// Whether `text` has the shape of a query locator (`01gD0000002HU6KIAW-2000`).
pub fn is_locator(text: &str) -> bool {
    let Some((id, offset)) = text.split_once('-') else {
        return false;
    };
    (15..=18).contains(&id.len())
        && id.bytes().all(|b| b.is_ascii_alphanumeric())
        && !offset.is_empty()
        && offset.len() <= 9
        && offset.bytes().all(|b| b.is_ascii_digit())
}

/// A record's version: the first 16 hex digits of the SHA-256 of its fields as read. Salesforce
/// offers no ETag for ServiceAppointment (only Account rows have one), and `SystemModstamp` has
/// whole-second resolution and does not move when a junction row changes; a digest of what was
/// read changes whenever anything the proxy shows changes.
pub fn version_of(fields: &Value) -> String {
    let digest = Sha256::digest(fields.to_string().as_bytes());
    hex::encode(&digest[..8])
}

/// Reads a datetime as Salesforce answers it (`2023-03-13T17:31:23.000+0000`) or as RFC 3339.
pub fn read_datetime(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f%z")
        .or_else(|_| DateTime::parse_from_rfc3339(text))
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_documented_page_with_junctions_and_a_next_locator() {
        let body = br#"{"totalSize":3,"done":false,
          "nextRecordsUrl":"/services/data/v65.0/query/01gD0000002HU6KIAW-2",
          "records":[{"attributes":{"type":"ServiceAppointment","url":"/x"},
            "Id":"08pS7000000019BIAQ","Status":"Scheduled","StatusCategory":"Scheduled",
            "SchedStartTime":"2023-03-13T17:30:00.000+0000","ParentRecordId":"001S7000001pFlJIAU",
            "CarePractnFacilityAppts":{"totalSize":1,"done":true,"records":[{"attributes":{},
              "HealthcarePractitionerFacilityId":"0bSxx0000005JoaxxE","IsRequired":true,
              "HealthcarePractitionerFacility":{"attributes":{},"AccountId":"001xx000012udqhxxA"}}]}},
            {"Id":"08pS7000000019CIAQ","CarePractnFacilityAppts":null}]}"#;
        let page = parse_page(body).unwrap();
        assert_eq!(page.total_size, 3);
        assert_eq!(page.next.as_deref(), Some("01gD0000002HU6KIAW-2"));
        let first = &page.records[0].record;
        assert_eq!(first.id, "08pS7000000019BIAQ");
        let junction = &first.practitioners.as_ref().unwrap().records[0];
        assert_eq!(
            junction.healthcare_practitioner_facility_id.as_deref(),
            Some("0bSxx0000005JoaxxE")
        );
        assert_eq!(
            junction
                .healthcare_practitioner_facility
                .as_ref()
                .unwrap()
                .account_id
                .as_deref(),
            Some("001xx000012udqhxxA")
        );
        assert!(page.records[1].record.practitioners.is_none());
        assert_ne!(page.records[0].version, page.records[1].version);
        assert_eq!(
            read_datetime("2023-03-13T17:30:00.000+0000").unwrap(),
            read_datetime("2023-03-13T17:30:00Z").unwrap()
        );
    }

    #[test]
    fn a_next_url_must_end_in_a_locator() {
        for bad in [
            r#"{"totalSize":1,"done":false,"nextRecordsUrl":"/services/data/v65.0/sobjects/Account/001","records":[]}"#,
            r#"{"totalSize":1,"done":false,"nextRecordsUrl":"/services/data/v65.0/query/../x-1","records":[]}"#,
            r#"{"totalSize":1,"records":[{"Status":"Scheduled"}]}"#,
            r#"[]"#,
        ] {
            assert_eq!(parse_page(bad.as_bytes()), Err(PageShapeError), "{bad}");
        }
    }
}
