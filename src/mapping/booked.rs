//! Salesforce's answer → the FHIR Appointment returned to the sender.

use chrono::{DateTime, Utc};
use fhirbolt::model::r4::resources::Appointment;
use fhirbolt::model::r4::types::{Identifier, Meta};

use super::book::salesforce_instant;
use super::file::Mapping;

/// The submitted Appointment as booked: the Salesforce record id as its logical id and as an
/// identifier, the FHIR status that Salesforce's status means (per the mapping's status table),
/// and `meta.lastUpdated`. Any id or meta the client sent is replaced, as R4 create requires.
pub fn booked_appointment(
    submitted: &Appointment,
    salesforce_id: &str,
    salesforce_status: Option<&str>,
    mapping: &Mapping,
    now: DateTime<Utc>,
) -> Appointment {
    let mut booked = submitted.clone();
    booked.id = Some(salesforce_id.into());
    booked.meta = Some(Box::new(Meta {
        last_updated: Some(salesforce_instant(now).into()),
        ..Default::default()
    }));
    booked.status = fhir_status(salesforce_status, mapping).into();
    booked.identifier.retain(|i| {
        i.system.as_ref().and_then(|s| s.value.as_deref()) != Some(&mapping.identifier_system)
    });
    booked.identifier.push(Identifier {
        r#use: Some("secondary".into()),
        system: Some(mapping.identifier_system.as_str().into()),
        value: Some(salesforce_id.into()),
        ..Default::default()
    });
    booked
}

/// The FHIR status for a Salesforce status, compared case-insensitively (Salesforce's pages
/// spell it `scheduled`, `Scheduled`, …).
pub fn fhir_status(salesforce_status: Option<&str>, mapping: &Mapping) -> String {
    salesforce_status
        .and_then(|s| mapping.statuses.get(&s.to_lowercase()))
        .unwrap_or(&mapping.default_status)
        .clone()
}
