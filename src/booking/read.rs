//! Reading appointments as Salesforce holds them now: one by id, and the conversion of query
//! results (shared with searches) into FHIR Appointments merged with what the store recorded.
//!
//! Which ServiceAppointments a tenant may read (the rule README documents): those whose parent is
//! an Account (a patient appointment; Field Service work orders and the like are not
//! appointments), and, with the mapping's `[read] appointments = "booked-here"`, only those this
//! tenant booked or changed (kept in its store). Any other is answered as if it did not exist.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use fhirbolt::model::r4::resources::Appointment;
use fhirbolt::model::r4::types::{Identifier, Reference};

use crate::error::ProxyError;
use crate::fhir::format::Format;
use crate::fhir::parse::read_appointment;
use crate::mapping::file::{LookupSource, ReadableAppointments};
use crate::mapping::lookup::needed_lookups;
use crate::mapping::read::{KnownIds, appointment_from_record};
use crate::salesforce::id::is_salesforce_id;
use crate::salesforce::lookup;
use crate::salesforce::records::{VersionedRecord, read_datetime};
use crate::salesforce::soql::{self, Condition, IdLiteral, Order};
use crate::store::StoreError;
use crate::tenants::Tenant;

/// An appointment as read now.
#[derive(Debug)]
pub struct Current {
    /// The appointment, with `meta.versionId` and `meta.lastUpdated`.
    pub appointment: Appointment,
    /// Its version (`meta.versionId`, the ETag's value).
    pub version: String,
    /// Salesforce's `SystemModstamp`.
    pub last_updated: Option<DateTime<Utc>>,
}

/// Reads appointment `id` as Salesforce holds it now.
///
/// # Errors
/// [`ProxyError::UnknownAppointment`] (404) when neither Salesforce nor the store knows it, or the
/// tenant may not read it; [`ProxyError::Reading`] when Salesforce fails; a store error.
pub async fn read(tenant: &Tenant, id: &str) -> Result<Current, ProxyError> {
    if !is_salesforce_id(id) {
        return Err(ProxyError::UnknownAppointment);
    }
    let id_literal = IdLiteral::new(id).map_err(|_| ProxyError::UnknownAppointment)?;
    let statement = soql::select(&[Condition::id_in(&[id_literal])], Order::default(), 1);
    let page = tenant
        .salesforce
        .query(&statement)
        .await
        .map_err(ProxyError::Reading)?;
    let Some(record) = page.records.into_iter().next() else {
        // Known to the store but gone from Salesforce (deleted there, or no longer visible to
        // the run-as user): still not something the proxy can show as it is now.
        return Err(ProxyError::UnknownAppointment);
    };
    let mut shown = appointments(tenant, vec![record]).await?;
    shown.pop().ok_or(ProxyError::UnknownAppointment)
}

/// Checks `If-Match` against the appointment's version now: `W/"v"`, `"v"` or `*`.
///
/// # Errors
/// [`ProxyError::VersionConflict`] (412) for another version; every error of [`read`].
pub async fn check_version(tenant: &Tenant, id: &str, if_match: &str) -> Result<(), ProxyError> {
    let current = read(tenant, id).await?;
    let matches = if_match.split(',').any(|tag| {
        let tag = tag.trim();
        tag == "*" || etag_value(tag) == Some(current.version.as_str())
    });
    if matches {
        Ok(())
    } else {
        Err(ProxyError::VersionConflict {
            current: current.version,
        })
    }
}

/// The version an entity tag names: `W/"v"` or `"v"`.
pub fn etag_value(tag: &str) -> Option<&str> {
    let tag = tag.strip_prefix("W/").unwrap_or(tag);
    tag.strip_prefix('"')?.strip_suffix('"')
}

/// The appointments whose identifiers include one of `keys` (`system|value`): those the store
/// recorded with it, and, under the mapping's identifier system, the Salesforce id itself (when
/// it has an id's shape).
///
/// # Errors
/// A store error.
pub async fn ids_with_identifiers(
    tenant: &Tenant,
    keys: &[String],
) -> Result<BTreeSet<String>, ProxyError> {
    let own_system = format!("{}|", tenant.mapping.identifier_system);
    let mut ids: BTreeSet<String> = tenant
        .store
        .find_by_identifiers(keys)
        .await?
        .into_iter()
        .map(|a| a.id)
        .collect();
    ids.extend(
        keys.iter()
            .filter_map(|key| key.strip_prefix(&own_system))
            .filter(|id| is_salesforce_id(id))
            .map(str::to_owned),
    );
    Ok(ids)
}

/// The query records as FHIR Appointments, each merged with its stored representation, leaving
/// out those the tenant may not read.
///
/// # Errors
/// A store error; a stored representation that cannot be read.
pub async fn appointments(
    tenant: &Tenant,
    records: Vec<VersionedRecord>,
) -> Result<Vec<Current>, ProxyError> {
    let mapping = &tenant.mapping;
    let mut out = Vec::with_capacity(records.len());
    for record in records {
        if record.record.parent_record_type.as_deref() != Some("Account") {
            continue;
        }
        let stored = match tenant.store.get(&record.record.id).await? {
            Some(stored) => Some(
                read_appointment(stored.resource.into_bytes(), Format::Json)
                    .await
                    .map_err(|_| ProxyError::Store(StoreError::corrupt()))?,
            ),
            None if mapping.readable == ReadableAppointments::BookedHere => continue,
            None => None,
        };
        let known = known_ids(tenant, &record, stored.as_ref()).await;
        let last_updated = record
            .record
            .system_modstamp
            .as_deref()
            .and_then(read_datetime);
        let version = record.version.clone();
        let appointment = appointment_from_record(&record, stored, mapping, &known);
        out.push(Current {
            appointment,
            version,
            last_updated,
        });
    }
    Ok(out)
}

/// The cached lookup answers for the stored participants, and the actors the record's ids were
/// last found for. Asks Salesforce nothing.
async fn known_ids(
    tenant: &Tenant,
    record: &VersionedRecord,
    stored: Option<&Appointment>,
) -> KnownIds {
    let mapping = &tenant.mapping;
    if mapping.lookups.is_empty() {
        return KnownIds::default();
    }
    let resolved = match stored {
        Some(stored) => {
            lookup::cached(
                &tenant.salesforce,
                &mapping.lookup_cache,
                &needed_lookups(stored, mapping),
            )
            .await
        }
        None => Default::default(),
    };
    let cache = tenant.salesforce.lookup_cache(&mapping.lookup_cache);
    let mut ids: Vec<&str> = Vec::new();
    if let Some(patient) = &record.record.parent_record_id {
        ids.push(patient);
    }
    for junction in record
        .record
        .practitioners
        .iter()
        .flat_map(|rows| &rows.records)
    {
        ids.extend(junction.healthcare_practitioner_facility_id.as_deref());
        ids.extend(
            junction
                .healthcare_practitioner_facility
                .as_ref()
                .and_then(|f| f.account_id.as_deref()),
        );
    }
    let mut found = std::collections::HashMap::new();
    for id in ids {
        let Some(key) = cache.key_of(id).await else {
            continue;
        };
        let Some(rule) = mapping
            .lookups
            .iter()
            .find(|r| r.object == key.object && r.external_id_field == key.field)
        else {
            continue;
        };
        let actor = match &rule.source {
            LookupSource::Reference { fhir_type } => Reference {
                reference: Some(format!("{fhir_type}/{}", key.value).into()),
                ..Default::default()
            },
            LookupSource::Identifier { system } => Reference {
                identifier: Some(Box::new(Identifier {
                    system: Some(system.as_str().into()),
                    value: Some(key.value.as_str().into()),
                    ..Default::default()
                })),
                ..Default::default()
            },
        };
        found.insert(id.to_owned(), actor);
    }
    KnownIds { resolved, found }
}
