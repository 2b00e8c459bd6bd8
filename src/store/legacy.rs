//! The earlier file store's `appointments.jsonl`, imported once so that nothing is lost on upgrade.
//!
//! That store appended one JSON line per write (`{"id", "identifiers", "resource"}`), the last line
//! for an id winning; a torn last line was a crash mid-write and is skipped, any other unreadable
//! line refuses the import (silently forgetting bookings would let retries book twice). Records
//! the database holds already win over the file's, so importing again changes nothing.

use std::io::BufRead;
use std::path::Path;

use chrono::{DateTime, Utc};
use serde::Deserialize;

use super::{AppointmentRecord, StoreError};

#[derive(Deserialize)]
struct Line {
    id: String,
    #[serde(default)]
    identifiers: Vec<String>,
    resource: serde_json::Value,
}

/// What an import did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportReport {
    /// The file, as its canonical path.
    pub source: String,
    /// Whether it had been imported before (then nothing was done).
    pub already_imported: bool,
    /// Appointments the file holds (its last record for each id).
    pub in_file: usize,
    /// Appointments imported.
    pub imported: usize,
    /// Appointments the store held already, which were kept as they were.
    pub kept: usize,
}

impl ImportReport {
    pub(super) fn new(source: &str, in_file: usize) -> ImportReport {
        ImportReport {
            source: source.to_owned(),
            already_imported: false,
            in_file,
            imported: 0,
            kept: 0,
        }
    }

    pub(super) fn already(source: &str) -> ImportReport {
        ImportReport {
            already_imported: true,
            ..ImportReport::new(source, 0)
        }
    }

    /// Logs the result (file and counts; never a record).
    pub fn log(&self, tenant: Option<&str>) {
        let tenant = tenant.unwrap_or(crate::metrics::DEFAULT_TENANT);
        if self.already_imported {
            tracing::debug!(file = %self.source, tenant, "file store imported before; skipped");
        } else {
            tracing::info!(
                file = %self.source,
                tenant,
                appointments = self.in_file,
                imported = self.imported,
                kept = self.kept,
                "imported the earlier file store into the database; the file is no longer used \
                 and can be deleted once checked (it holds appointment data)"
            );
        }
    }
}

/// Reads the file: each id's last record, in the order ids first appear.
pub(super) fn read_file(path: &Path) -> Result<Vec<AppointmentRecord>, StoreError> {
    let failed =
        |reason: String| StoreError::new(format!("{}: cannot import: {reason}", path.display()));
    let file = std::fs::File::open(path).map_err(|e| failed(e.kind().to_string()))?;
    let lines: Vec<String> = std::io::BufReader::new(file)
        .lines()
        .collect::<Result<_, _>>()
        .map_err(|e| failed(e.kind().to_string()))?;
    let last = lines.len().saturating_sub(1);
    let mut order: Vec<String> = Vec::new();
    let mut latest: std::collections::HashMap<String, AppointmentRecord> =
        std::collections::HashMap::new();
    for (n, text) in lines.iter().enumerate() {
        if text.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<Line>(text) {
            Ok(line) => {
                let record = AppointmentRecord::from_json(
                    line.id,
                    line.identifiers,
                    &line.resource,
                    Utc::now(),
                );
                if !latest.contains_key(&record.id) {
                    order.push(record.id.clone());
                }
                latest.insert(record.id.clone(), record);
            }
            Err(_) if n == last => {
                tracing::warn!(
                    file = %path.display(),
                    line = n + 1,
                    "skipping a torn last record of the file store (a crash mid-write)"
                );
            }
            Err(_) => {
                return Err(failed(format!(
                    "line {} is not a stored appointment",
                    n + 1
                )));
            }
        }
    }
    Ok(order
        .into_iter()
        .filter_map(|id| latest.remove(&id))
        .collect())
}

impl AppointmentRecord {
    /// The record of a FHIR Appointment in FHIR JSON: its status, start, end and participants'
    /// references read from their plain JSON paths (the resource was checked before it was
    /// booked), `updated` from `meta.lastUpdated` when it has one.
    pub fn from_json(
        id: String,
        identifiers: Vec<String>,
        resource: &serde_json::Value,
        updated: DateTime<Utc>,
    ) -> AppointmentRecord {
        let instant = |key: &str| {
            resource
                .get(key)
                .and_then(serde_json::Value::as_str)
                .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
                .map(|t| t.to_utc())
        };
        let actors: Vec<String> = resource
            .get("participant")
            .and_then(serde_json::Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|p| p.pointer("/actor/reference")?.as_str())
            .map(str::to_owned)
            .collect();
        let updated = resource
            .pointer("/meta/lastUpdated")
            .and_then(serde_json::Value::as_str)
            .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
            .map_or(updated, |t| t.to_utc());
        AppointmentRecord {
            id,
            identifiers,
            resource: resource.to_string(),
            status: resource
                .get("status")
                .and_then(serde_json::Value::as_str)
                .map(str::to_owned),
            start: instant("start"),
            end: instant("end"),
            patient: actors.iter().find(|a| a.starts_with("Patient/")).cloned(),
            actors,
            updated,
        }
    }
}
