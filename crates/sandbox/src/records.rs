//! The records behind the sandbox's appointments, as a Health Cloud org keeps them: one
//! ServiceAppointment per booking and one CarePractnFacilityAppt junction per practitioner, whose
//! HealthcarePractitionerFacility is the practitioner at the booking's facility
//! (`salesforce-api.md` §5.1; the field names are from Salesforce's object references).
//!
//! What the Book request carries lands where Intelligent Appointment Management puts it: the
//! patient in `ParentRecordId` (an Account, `ParentRecordType` `Account`, mirrored in
//! `AccountId`), the times in `SchedStartTime`/`SchedEndTime`, `workTypeId` in `WorkTypeId`,
//! `channelId` in `EngagementChannelTypeId`, `description` in `Description`, `comment` in
//! `Comments`. Device participants (ServiceAppointmentAsset) are not kept. Datetimes are written
//! the way Salesforce answers them (`2023-03-13T17:31:23.000+0000`, whole seconds), and every
//! change moves `LastModifiedDate` and `SystemModstamp`.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};

use crate::soql::{Fields, Item};

/// The ServiceAppointment object's API name.
pub(crate) const SERVICE_APPOINTMENT: &str = "ServiceAppointment";
/// The practitioner junction's API name, and its child relationship name on ServiceAppointment.
pub(crate) const JUNCTION: &str = "CarePractnFacilityAppt";
pub(crate) const JUNCTIONS: &str = "CarePractnFacilityAppts";

/// Status categories of the default Status values (the category is a restricted picklist).
const CATEGORIES: [(&str, &str); 8] = [
    ("None", "None"),
    ("Scheduled", "Scheduled"),
    ("Dispatched", "Dispatched"),
    ("In Progress", "InProgress"),
    ("Completed", "Completed"),
    ("Cannot Complete", "CannotComplete"),
    ("Checked In", "CheckedIn"),
    ("Canceled", "Canceled"),
];

/// One ServiceAppointment and its practitioner junctions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Record {
    /// The ServiceAppointment's fields, by API name.
    pub fields: Map<String, Value>,
    /// Its CarePractnFacilityAppt rows, each with its HealthcarePractitionerFacility's fields
    /// under `HealthcarePractitionerFacility`.
    pub junctions: Vec<Map<String, Value>>,
}

/// A datetime as Salesforce answers it: milliseconds (always `.000`) and `+0000`.
pub(crate) fn salesforce_datetime(when: DateTime<Utc>) -> String {
    when.format("%Y-%m-%dT%H:%M:%S.000+0000").to_string()
}

fn request_time(request: &Value, name: &str) -> Value {
    request
        .get(name)
        .and_then(Value::as_str)
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map_or(Value::Null, |t| {
            Value::String(salesforce_datetime(t.with_timezone(&Utc)))
        })
}

fn text(request: &Value, name: &str) -> Value {
    request.get(name).cloned().unwrap_or(Value::Null)
}

/// The `<Kind>/<id>` participants of a request of one kind.
fn participants<'a>(request: &'a Value, kind: &'a str) -> impl Iterator<Item = (&'a str, bool)> {
    request
        .get("participants")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(move |p| {
            let reference = p.get("reference")?.as_str()?;
            let id = reference.strip_prefix(kind)?.strip_prefix('/')?;
            let required = p
                .get("isReferenceRequired")
                .and_then(Value::as_bool)
                .unwrap_or(false);
            Some((id, required))
        })
}

impl Record {
    /// The records a booking creates.
    pub(crate) fn booked(id: &str, serial: usize, request: &Value, now: DateTime<Utc>) -> Record {
        let stamp = Value::String(salesforce_datetime(now));
        let patient = participants(request, "Patient")
            .next()
            .map_or(Value::Null, |(id, _)| json!(id));
        let mut fields = Map::new();
        fields.insert("Id".into(), json!(id));
        fields.insert("AppointmentNumber".into(), json!(format!("SA-{serial:04}")));
        fields.insert("ParentRecordId".into(), patient.clone());
        fields.insert(
            "ParentRecordType".into(),
            if patient.is_null() {
                Value::Null
            } else {
                json!("Account")
            },
        );
        fields.insert("AccountId".into(), patient);
        fields.insert("ContactId".into(), Value::Null);
        fields.insert("CancellationReason".into(), Value::Null);
        fields.insert("CreatedDate".into(), stamp.clone());
        fields.insert("IsDeleted".into(), json!(false));
        let mut record = Record {
            fields,
            junctions: Vec::new(),
        };
        record.set_status("Scheduled");
        record.apply_request(request, now);
        record
    }

    /// What an Update changes: the times, the visit type, the texts and the practitioners.
    pub(crate) fn apply_request(&mut self, request: &Value, now: DateTime<Utc>) {
        let id = self.id().to_owned();
        let f = &mut self.fields;
        f.insert("SchedStartTime".into(), request_time(request, "startDate"));
        f.insert("SchedEndTime".into(), request_time(request, "endDate"));
        f.insert("WorkTypeId".into(), text(request, "workTypeId"));
        f.insert("EngagementChannelTypeId".into(), text(request, "channelId"));
        f.insert("Description".into(), text(request, "description"));
        f.insert("Comments".into(), text(request, "comment"));
        let facility = participants(request, "Facility")
            .next()
            .map_or(Value::Null, |(id, _)| json!(id));
        self.junctions = participants(request, "Practitioner")
            .enumerate()
            .map(|(n, (practitioner, required))| {
                let mut junction = Map::new();
                junction.insert("Id".into(), json!(junction_id(&id, n)));
                junction.insert("ServiceAppointmentId".into(), json!(id));
                junction.insert(
                    "HealthcarePractitionerFacilityId".into(),
                    json!(practitioner),
                );
                junction.insert("IsRequired".into(), json!(required));
                junction.insert("Name".into(), json!(practitioner));
                junction.insert(
                    "HealthcarePractitionerFacility".into(),
                    json!({"Id": practitioner, "AccountId": facility}),
                );
                junction
            })
            .collect();
        self.touch(now);
    }

    /// A cancellation: the status, its category, the reason.
    pub(crate) fn cancel(&mut self, status: &str, reason: Option<&str>, now: DateTime<Utc>) {
        self.set_status(status);
        // Whatever the org's cancellation word, Cancel puts it in the Canceled category.
        self.fields
            .insert("StatusCategory".into(), json!("Canceled"));
        if let Some(reason) = reason {
            self.fields
                .insert("CancellationReason".into(), json!(reason));
        }
        self.touch(now);
    }

    /// A change made by a Salesforce user: the fields given, by API name. Status moves its
    /// category with it.
    pub(crate) fn edit(&mut self, changes: &Map<String, Value>, now: DateTime<Utc>) {
        for (name, value) in changes {
            if let Some(status) = value.as_str()
                && name == "Status"
            {
                self.set_status(status);
                continue;
            }
            self.fields.insert(name.clone(), value.clone());
        }
        self.touch(now);
    }

    /// Sets Status and moves StatusCategory with it: a default value's own category, a
    /// cancellation word's (`Cancelled`) Canceled; an org's own value keeps the category the record
    /// had (the sandbox cannot know which one its org gave it).
    fn set_status(&mut self, status: &str) {
        let category = if status.to_ascii_lowercase().starts_with("cancel") {
            Some("Canceled")
        } else {
            CATEGORIES
                .iter()
                .find(|(s, _)| s.eq_ignore_ascii_case(status))
                .map(|(_, c)| *c)
        };
        self.fields.insert("Status".into(), json!(status));
        if let Some(category) = category {
            self.fields.insert("StatusCategory".into(), json!(category));
        }
    }

    fn touch(&mut self, now: DateTime<Utc>) {
        let stamp = json!(salesforce_datetime(now));
        self.fields.insert("LastModifiedDate".into(), stamp.clone());
        self.fields.insert("SystemModstamp".into(), stamp);
    }

    pub(crate) fn id(&self) -> &str {
        self.fields.get("Id").and_then(Value::as_str).unwrap_or("")
    }

    /// The record as a query answers it: `attributes`, then the selected fields and children.
    pub(crate) fn render(&self, select: &[Item], version: &str) -> Value {
        let mut out = Map::new();
        out.insert(
            "attributes".into(),
            attributes(SERVICE_APPOINTMENT, self.id(), version),
        );
        for item in select {
            match item {
                Item::Field(path) => put_path(&mut out, path, &self.fields, version),
                Item::Children {
                    relationship,
                    fields,
                } => {
                    // An empty child relationship comes back as null, not as an empty list.
                    let value = if self.junctions.is_empty() {
                        Value::Null
                    } else {
                        let records: Vec<Value> = self
                            .junctions
                            .iter()
                            .map(|junction| {
                                let id = junction.get("Id").and_then(Value::as_str).unwrap_or("");
                                let mut row = Map::new();
                                row.insert("attributes".into(), attributes(JUNCTION, id, version));
                                for path in fields {
                                    put_path(&mut row, path, junction, version);
                                }
                                Value::Object(row)
                            })
                            .collect();
                        json!({"totalSize": records.len(), "done": true, "records": records})
                    };
                    out.insert(relationship.clone(), value);
                }
            }
        }
        Value::Object(out)
    }

    /// The flat record of an sObject GET: every field, or those `fields` names.
    pub(crate) fn flat(&self, fields: Option<&[String]>, version: &str) -> Value {
        let mut out = Map::new();
        out.insert(
            "attributes".into(),
            attributes(SERVICE_APPOINTMENT, self.id(), version),
        );
        for (name, value) in &self.fields {
            if fields.is_none_or(|f| f.iter().any(|n| n.eq_ignore_ascii_case(name))) {
                out.insert(name.clone(), value.clone());
            }
        }
        Value::Object(out)
    }
}

/// The junction ids: `0ch` (a prefix of the sandbox's own), the appointment's id digits, the
/// junction's place.
fn junction_id(appointment: &str, n: usize) -> String {
    let digits = appointment.get(6..15).unwrap_or("000000000");
    crate::id::case_safe(&format!("0chSB{n}{digits}"))
}

fn attributes(object: &str, id: &str, version: &str) -> Value {
    json!({"type": object, "url": format!("/services/data/{version}/sobjects/{object}/{id}")})
}

/// Copies `path` (`Field` or `Parent.Field`) from `fields` into `out`, nesting parents the way
/// Salesforce answers them (`{"Parent": {"attributes": …, "Field": …}}`, null for no parent).
fn put_path(out: &mut Map<String, Value>, path: &str, fields: &Map<String, Value>, version: &str) {
    match path.split_once('.') {
        None => {
            let (name, value) = fields
                .iter()
                .find(|(name, _)| name.eq_ignore_ascii_case(path))
                .map_or((path.to_owned(), Value::Null), |(n, v)| {
                    (n.clone(), v.clone())
                });
            out.insert(name, value);
        }
        Some((parent, rest)) => {
            let Some(Value::Object(parent_fields)) = fields
                .iter()
                .find(|(name, _)| name.eq_ignore_ascii_case(parent))
                .map(|(_, v)| v)
            else {
                out.insert(parent.to_owned(), Value::Null);
                return;
            };
            let entry = out.entry(parent.to_owned()).or_insert_with(|| {
                let id = parent_fields
                    .get("Id")
                    .and_then(Value::as_str)
                    .unwrap_or("");
                let mut nested = Map::new();
                nested.insert(
                    "attributes".into(),
                    attributes("HealthcarePractitionerFacility", id, version),
                );
                Value::Object(nested)
            });
            if let Value::Object(nested) = entry {
                put_path(nested, rest, parent_fields, version);
            }
        }
    }
}

/// Whether a field exists on ServiceAppointment or the junction: an unknown one is Salesforce's
/// `INVALID_FIELD`.
pub(crate) fn known_field(object: &str, path: &str) -> bool {
    const SA: [&str; 27] = [
        "Id",
        "AppointmentNumber",
        "Status",
        "StatusCategory",
        "SchedStartTime",
        "SchedEndTime",
        "WorkTypeId",
        "EngagementChannelTypeId",
        "Description",
        "Comments",
        "CancellationReason",
        "ParentRecordId",
        "ParentRecordType",
        "AccountId",
        "ContactId",
        "CreatedDate",
        "LastModifiedDate",
        "SystemModstamp",
        "IsDeleted",
        "Subject",
        "DueDate",
        "EarliestStartTime",
        "Duration",
        "DurationType",
        "ServiceTerritoryId",
        "AppointmentType",
        "OwnerId",
    ];
    const JUNCTION_FIELDS: [&str; 7] = [
        "Id",
        "ServiceAppointmentId",
        "HealthcarePractitionerFacilityId",
        "IsRequired",
        "Name",
        "HealthcarePractitionerFacility.AccountId",
        "HealthcarePractitionerFacility.Id",
    ];
    let list: &[&str] = if object == SERVICE_APPOINTMENT {
        &SA
    } else {
        &JUNCTION_FIELDS
    };
    list.iter().any(|f| f.eq_ignore_ascii_case(path))
}

impl Fields for Record {
    fn field(&self, path: &str) -> Option<Value> {
        lookup(&self.fields, path)
    }
}

/// A junction row, for a semi-join's conditions.
pub(crate) struct Junction<'a>(pub &'a Map<String, Value>);

impl Fields for Junction<'_> {
    fn field(&self, path: &str) -> Option<Value> {
        lookup(self.0, path)
    }
}

fn lookup(fields: &Map<String, Value>, path: &str) -> Option<Value> {
    match path.split_once('.') {
        None => fields
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(path))
            .map(|(_, v)| v.clone()),
        Some((parent, rest)) => match fields
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(parent))
            .map(|(_, v)| v)
        {
            Some(Value::Object(nested)) => lookup(nested, rest),
            _ => Some(Value::Null),
        },
    }
}
